"""Benchmark alliance.models.lmm against statsmodels MixedLM and R's lme4 on the same data.

Run from the repository root::

    python benchmarks/bench_lmm.py            # the standard designs
    python benchmarks/bench_lmm.py --huge     # also 200,000 clients x 20 sessions (alliance only)
    python benchmarks/bench_lmm.py --no-r     # skip lme4 even if Rscript is installed

Prints one table (design, rows, seconds per engine, ratios, agreement of the log-likelihood with
lme4) and writes it to benchmarks/results/lmm.md. Times are wall-clock seconds for the whole
call from a pandas DataFrame (formula parsing included): the median of several runs for alliance,
one run for statsmodels, the median of three ``system.time(lmer(...))`` runs inside one R session
for lme4 (one run above 100,000 rows; default lmerControl, i.e. what users run; data loading
excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.models import lmm

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "lmm.md"


@dataclass
class Design:
    name: str
    clients: int
    sessions: int
    therapists: int
    formula: str  # alliance / lme4 formula (same syntax)
    statsmodels: dict | None  # keyword arguments of smf.mixedlm, or None if it cannot
    repeats: int = 5
    lme4: bool = True


def simulate(clients: int, sessions: int, therapists: int, seed: int = 2024) -> pd.DataFrame:
    """Balanced sessions with correlated client intercepts/slopes and therapist intercepts."""
    rng = np.random.default_rng(seed)
    client = np.repeat(np.arange(clients), sessions)
    session = np.tile(np.arange(sessions), clients)
    therapist = client % therapists
    b = rng.multivariate_normal([0, 0], [[9.0, -0.3], [-0.3, 0.04]], size=clients)
    t = rng.normal(0, 1.5, therapists)
    wai = rng.normal(size=clients)[client] * 0.5 + rng.normal(size=len(client))
    wai_between = pd.Series(wai).groupby(client).transform("mean").to_numpy()
    phq9 = (
        15
        + b[client, 0]
        + (b[client, 1] - 0.5) * session
        + t[therapist]
        - 1.0 * (wai - wai_between)
        - 0.8 * wai_between
        + rng.normal(0, 2.0, len(client))
    )
    return pd.DataFrame(
        {
            "client": client,
            "therapist": therapist,
            "session": session,
            "alliance_within": wai - wai_between,
            "alliance_between": wai_between,
            "phq9": phq9,
        }
    )


FIXED = "phq9 ~ alliance_within + alliance_between + session"
DESIGNS = [
    Design(
        "random intercept",
        2000,
        20,
        50,
        f"{FIXED} + (1 | client)",
        {"re_formula": "~1"},
    ),
    Design(
        "correlated slope",
        2000,
        20,
        50,
        f"{FIXED} + (1 + session | client)",
        {"re_formula": "~session"},
    ),
    Design(
        "slope + therapist",
        2000,
        20,
        50,
        f"{FIXED} + (1 + session | client) + (1 | therapist)",
        None,
    ),
    Design(
        "slope + therapist",
        20000,
        20,
        500,
        f"{FIXED} + (1 + session | client) + (1 | therapist)",
        None,
        repeats=3,
    ),
]
HUGE = Design(
    "slope + therapist",
    200000,
    20,
    5000,
    f"{FIXED} + (1 + session | client) + (1 | therapist)",
    None,
    repeats=1,
    lme4=False,
)


def time_alliance(design: Design, data: pd.DataFrame) -> tuple[float, float, float]:
    """Median wall-clock and CPU seconds of the whole call, and the log-likelihood."""
    lmm(design.formula, data.iloc[: min(len(data), 4000)])  # warm-up (imports, caches)
    times, cpu, fit = [], [], None
    for _ in range(design.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fit = lmm(design.formula, data)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert fit is not None and fit.converged
    return statistics.median(times), statistics.median(cpu), fit.loglik


def time_statsmodels(design: Design, data: pd.DataFrame) -> tuple[float, float] | None:
    if design.statsmodels is None:
        return None
    import statsmodels.formula.api as smf

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(FIXED, data, groups=data["client"], **design.statsmodels)
        res = model.fit(reml=True)
    return time.perf_counter() - start, float(res.llf)


R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$client <- factor(d$client); d$therapist <- factor(d$therapist)
f <- as.formula(args[2])
times <- c()
for (i in seq_len(as.integer(args[3]))) {
  t <- system.time(fit <- lmer(f, data = d, REML = TRUE))[["elapsed"]]
  times <- c(times, t)
}
cat(sprintf('{"seconds": %.6f, "loglik": %.10f, "lme4": "%s"}\n', median(times),
            as.numeric(logLik(fit)), as.character(packageVersion("lme4"))))
"""


def time_lme4(design: Design, data: pd.DataFrame, tmp: Path) -> dict | None:
    if not design.lme4 or shutil.which("Rscript") is None:
        return None
    csv = tmp / "data.csv"
    data.to_csv(csv, index=False)
    script = tmp / "bench.R"
    script.write_text(R_SCRIPT)
    out = subprocess.run(
        ["Rscript", str(script), str(csv), design.formula, str(3 if len(data) < 100_000 else 1)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import scipy

    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}"
    )


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--huge", action="store_true", help="add 200,000 clients x 20 sessions")
    parser.add_argument("--no-r", action="store_true", help="do not run lme4")
    parser.add_argument("--no-statsmodels", action="store_true", help="do not run statsmodels")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    designs = DESIGNS + ([HUGE] if args.huge else [])
    header = (
        "| design | clients | rows | alliance s | alliance CPU s | statsmodels s | lme4 s "
        "| lme4 / alliance | statsmodels / alliance | loglik - lme4 |"
    )
    rows = [header, "|" + "---|" * 10]
    print(header, flush=True)
    print(rows[1], flush=True)
    lme4_version = None
    with tempfile.TemporaryDirectory() as tmp:
        for design in designs:
            data = simulate(design.clients, design.sessions, design.therapists)
            t_a, cpu_a, ll_a = time_alliance(design, data)
            sm = None if args.no_statsmodels else time_statsmodels(design, data)
            r = None if args.no_r else time_lme4(design, data, Path(tmp))
            if r:
                lme4_version = r["lme4"]
            t_sm = sm[0] if sm else None
            t_r = r["seconds"] if r else None
            agree = "n/a" if not r else f"{ll_a - r['loglik']:+.1e}"
            line = (
                f"| {design.name} | {design.clients:,} | {len(data):,} | {t_a:.3f} | {cpu_a:.3f} | "
                f"{fmt(t_sm, 2)} | {fmt(t_r, 2)} | "
                f"{fmt(t_r / t_a if t_r else None, 0)}x | "
                f"{fmt(t_sm / t_a if t_sm else None, 0)}x | "
                f"{agree} |"
            )
            line = line.replace("n/ax", "n/a")
            rows.append(line)
            print(line, flush=True)
    note = [
        "",
        f"Machine: {machine()}; BLAS pinned to one thread for alliance (threadpoolctl) and for "
        "R (OPENBLAS_NUM_THREADS=1).",
        f"lme4 {lme4_version or 'not run'} with its default settings (REML, nloptwrap). "
        "statsmodels MixedLM with its defaults (REML) can express only the first two designs.",
        "Seconds are wall-clock for the whole call on an in-memory data frame, formula parsing "
        "included: median of repeated runs for alliance and lme4 (one lme4 run above 100,000 rows), "
        "one run for statsmodels. "
        "`alliance CPU s`: process CPU time of the same calls (single-threaded, so it shows the "
        "engine's own cost when other jobs share the machine). `loglik - lme4`: REML "
        "log-likelihood of alliance minus lme4's (positive = alliance found a higher optimum).",
        f"Command: `python benchmarks/bench_lmm.py{' --huge' if args.huge else ''}`",
    ]
    print("\n".join(note))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# alliance.models.lmm benchmark\n\n" + "\n".join(rows) + "\n" + "\n".join(note) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
