"""Benchmark the crossed mixed-model engine: G-studies and InstEval, beside lme4's lmer.

Run from the repository root::

    python benchmarks/bench_gstudy.py             # all designs, lme4 too if Rscript is installed
    python benchmarks/bench_gstudy.py --no-r      # alliance only
    python benchmarks/bench_gstudy.py --only insteval

Designs:

* ``dyads session``: :func:`alliance.reliability.g_study` of the rupture-marker count per
  session and coder of the bundled ``dyads`` segments (sessions nested in clients, crossed with
  coders; what ``observer.coder_reliability(unit="session", g_coders=2)`` fits);
* ``dyads segment``: the same per 5-minute segment (segments nested in sessions in clients,
  crossed with coders; ``unit="segment"``), the significance-weighted marker score;
* ``simulated session``: 600 clients x 10 sessions x 3 coders, the session design;
* ``InstEval``: ``y ~ service + (1 | s) + (1 | d) + (1 | dept)`` by ML on lme4's full InstEval
  data (73,421 ratings; exported from R, so only with Rscript).

lme4 fits the same model on the same rows written to a temporary CSV, in the same run
(``lmer`` with REML for the G-studies, ``REML = FALSE`` for InstEval, default lmerControl; the
G-study formula names the same effects with ``:`` interactions). Seconds are wall-clock of one
call (alliance: ``g_study`` / ``lmm`` from the data frame; lme4: ``system.time(lmer(...))``,
data loading excluded), median of ``--repeats`` runs; the CPU columns are process CPU time
(alliance: ``time.process_time``; lme4: user + system of ``system.time``), which a machine
shared with other jobs inflates far less than wall-clock. ``loglik - lme4`` is alliance's REML/ML
log-likelihood minus lme4's (positive: alliance found a higher optimum). Results are appended
to benchmarks/results/gstudy.md under a heading given by ``--label``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "gstudy.md"
sys.path.insert(0, str(HERE))

from bench_lmm import machine  # noqa: E402

import alliance  # noqa: E402
from alliance.models import lmm  # noqa: E402
from alliance.reliability import g_study  # noqa: E402

R_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

R_FIT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = "character")
d[[args[4]]] <- as.numeric(d[[args[4]]])
if ("service" %in% names(d)) d$service <- factor(d$service)
f <- as.formula(args[2])
reml <- args[3] == "REML"
times <- c(); cpu <- c()
for (i in seq_len(as.integer(args[5]))) {
  t <- system.time(fit <- lmer(f, data = d, REML = reml))
  times <- c(times, t[["elapsed"]]); cpu <- c(cpu, t[["user.self"]] + t[["sys.self"]])
}
cat(sprintf('{"seconds": %.6f, "cpu": %.6f, "loglik": %.10f, "lme4": "%s"}\n', median(times),
            median(cpu), as.numeric(logLik(fit)), as.character(packageVersion("lme4"))))
"""

R_INSTEVAL = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data(InstEval)
d <- data.frame(y = InstEval$y, service = as.integer(InstEval$service == "1"),
                s = paste0("s", InstEval$s), d = paste0("d", InstEval$d),
                dept = paste0("p", InstEval$dept))
write.csv(d, args[1], row.names = FALSE)
"""

G_LMER = {
    "session": "score ~ 1 + (1 | client) + (1 | coder) + (1 | client:session) + (1 | client:coder)",
    "segment": (
        "score ~ 1 + (1 | client) + (1 | coder) + (1 | client:session) + (1 | client:coder)"
        " + (1 | client:session:segment) + (1 | client:session:coder)"
    ),
}
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def dyads(unit: str) -> pd.DataFrame:
    """The G-study data of ``coder_reliability(unit=...)``: one score per unit and coder."""
    seg = alliance.datasets.load_dataset("dyads").segments
    if unit == "session":
        return (
            seg.assign(score=seg["marker"].notna().astype(float))
            .groupby(["client", "session", "coder"], as_index=False)["score"]
            .sum()
        )
    score = seg["significance"].where(seg["marker"].notna(), 0.0).fillna(0.0)
    return seg.assign(score=score)[["client", "session", "segment", "coder", "score"]]


def simulated(clients: int = 600, sessions: int = 10, coders: int = 3, seed: int = 19):
    rng = np.random.default_rng(seed)
    c = np.repeat(np.arange(clients), sessions * coders)
    s = np.tile(np.repeat(np.arange(sessions), coders), clients)
    k = np.tile(np.arange(coders), clients * sessions)
    cs = c * sessions + s
    score = (
        rng.normal(0, 0.6, clients)[c]
        + rng.normal(0, 0.8, clients * sessions)[cs]
        + rng.normal(0, 0.3, coders)[k]
        + rng.normal(0, 0.2, clients * coders)[c * coders + k]
        + rng.normal(0, 0.7, len(c))
    )
    return pd.DataFrame(
        {
            "client": [f"c{i}" for i in c],
            "session": s,
            "coder": [f"k{i}" for i in k],
            "score": score,
        }
    )


def time_it(fn, repeats: int):
    """Median wall-clock and process CPU seconds of ``fn()``, and its last result."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return (statistics.median(times), statistics.median(cpu)), out


def run_lme4(data: pd.DataFrame, formula: str, method: str, score: str, tmp: Path, repeats: int):
    if shutil.which("Rscript") is None:
        return None
    csv = tmp / "data.csv"
    data.to_csv(csv, index=False)
    script = tmp / "fit.R"
    script.write_text(R_FIT)
    out = subprocess.run(
        ["Rscript", str(script), str(csv), formula, method, score, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        env=R_ENV,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-r", action="store_true")
    parser.add_argument(
        "--only", nargs="*", default=None, help="run the designs whose name contains one of these"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--label", default="current")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    lmm("y ~ 1 + (1 | g)", pd.DataFrame({"y": np.arange(20.0) % 7, "g": np.arange(20) % 4}))

    header = (
        "| design | rows | alliance s | lme4 s | lme4 / alliance | alliance CPU s | lme4 CPU s "
        "| CPU ratio | loglik - lme4 |"
    )
    rows = [header, "|" + "---|" * 9]
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cases = []
        for unit in ("session", "segment"):
            data = dyads(unit)
            nested = {"session": "client"} | ({"segment": "session"} if unit == "segment" else {})
            cases.append((f"dyads {unit}", data, unit, nested, G_LMER[unit]))
        sim = simulated()
        cases.append(
            ("simulated session", sim, "session", {"session": "client"}, G_LMER["session"])
        )
        for name, data, unit, nested, formula in cases:
            if args.only and not any(o in name for o in args.only):
                continue
            t_a, g = time_it(
                lambda data=data, unit=unit, nested=nested: g_study(
                    data, score="score", object=unit, facets=["coder"], nested=nested, n=2
                ),
                args.repeats,
            )
            r = None if args.no_r else run_lme4(data, formula, "REML", "score", tmp, args.repeats)
            rows.append(line(name, len(data), t_a, r, g.loglik))
            print(rows[-1], flush=True)
        if (args.only is None or "InstEval" in args.only) and not args.no_r:
            if shutil.which("Rscript") is not None:
                csv = tmp / "insteval.csv"
                (tmp / "export.R").write_text(R_INSTEVAL)
                subprocess.run(["Rscript", str(tmp / "export.R"), str(csv)], check=True, env=R_ENV)
                data = pd.read_csv(csv, dtype={"s": str, "d": str, "dept": str})
                t_a, fit = time_it(lambda: lmm(INSTEVAL, data, reml=False), args.repeats)
                r = run_lme4(data, INSTEVAL, "ML", "y", tmp, args.repeats)
                rows.append(line("InstEval (ML)", len(data), t_a, r, fit.loglik))
                print(rows[-1], flush=True)
    text = [
        f"## {args.label}",
        "",
        *rows,
        "",
        f"Machine: {machine()}; R with OPENBLAS_NUM_THREADS=1. "
        f"Command: `python benchmarks/bench_gstudy.py {' '.join(argv or sys.argv[1:])}`",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a") as fh:
        fh.write("\n".join(text) + "\n")
    return 0


def line(name: str, n: int, t_a: tuple[float, float], r: dict | None, loglik: float) -> str:
    (wall, cpu) = t_a
    if not r:
        return f"| {name} | {n:,} | {wall:.2f} | n/a | n/a | {cpu:.2f} | n/a | n/a | n/a |"
    return (
        f"| {name} | {n:,} | {wall:.2f} | {r['seconds']:.2f} | {r['seconds'] / wall:.1f}x "
        f"| {cpu:.2f} | {r['cpu']:.2f} | {r['cpu'] / cpu:.1f}x | {loglik - r['loglik']:+.1e} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
