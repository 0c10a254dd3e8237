"""Benchmark alliance.models.glmm beside R's lme4::glmer on the same data, in one run.

Run from the repository root::

    python benchmarks/bench_glmm.py          # alliance and glmer (if Rscript is installed)
    python benchmarks/bench_glmm.py --no-r   # alliance only

Design: a binary outcome in 2,000 clients x 20 sessions in 50 therapists (40,000 rows),
``rupture ~ session + x + (1 | client) + (1 | therapist)``, Laplace (glmer's default).
Times are wall-clock and process CPU seconds for the whole call on an in-memory data frame
(median of three runs each; glmer inside one R session with default glmerControl, BLAS one
thread). Writes benchmarks/results/glmm.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.models import glmm

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "glmm.md"
FORMULA = "rupture ~ session + x + (1 | client) + (1 | therapist)"

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$client <- factor(d$client); d$therapist <- factor(d$therapist)
f <- as.formula(args[2])
el <- c(); cpu <- c()
for (i in 1:3) {
  t <- system.time(fit <- glmer(f, data = d, family = binomial))
  el <- c(el, t[["elapsed"]]); cpu <- c(cpu, t[["user.self"]] + t[["sys.self"]])
}
cat(sprintf('{"elapsed": %.6f, "cpu": %.6f, "loglik": %.10f, "fixef": [%s], "version": "%s"}',
    median(el), median(cpu), as.numeric(logLik(fit)), paste(sprintf("%.10f", fixef(fit)),
    collapse = ","), as.character(packageVersion("lme4"))))
"""


def simulate(clients=2000, sessions=20, therapists=50, seed=18) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    client = np.repeat(np.arange(clients), sessions)
    session = np.tile(np.arange(sessions), clients)
    therapist = client % therapists
    x = rng.normal(size=len(client))
    eta = (
        -1.0
        - 0.05 * session
        + 0.4 * x
        + rng.normal(0, 0.8, clients)[client]
        + rng.normal(0, 0.4, therapists)[therapist]
    )
    y = (rng.random(len(client)) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame(
        {"client": client, "therapist": therapist, "session": session, "x": x, "rupture": y}
    )


def run_r(data: pd.DataFrame) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "d.csv"
        script = Path(tmp) / "bench.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(
            ["Rscript", str(script), str(csv), FORMULA],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    d = simulate()
    load_before = os.getloadavg()
    glmm(FORMULA, d)  # warm-up (imports)
    el, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fit = glmm(FORMULA, d)
        el.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    r = None if args.no_r else run_r(d)
    load_after = os.getloadavg()
    a_el, a_cpu = statistics.median(el), statistics.median(cpu)
    if r is not None:
        ratio = f"{r['elapsed'] / a_el:.1f}x"
        ratio_cpu = f"{r['cpu'] / a_cpu:.1f}x"
        dll = f"{fit.loglik - r['loglik']:+.1e}"
        dfe = f"{np.max(np.abs(fit.params['estimate'].to_numpy() - r['fixef'])):.1e}"
        rs = f"{r['elapsed']:.2f}"
        rc = f"{r['cpu']:.2f}"
    else:
        ratio = ratio_cpu = dll = dfe = rs = rc = "n/a"
    lines = [
        "# alliance.models.glmm benchmark",
        "",
        "| design | rows | alliance s | alliance CPU s | glmer s | glmer CPU s "
        "| glmer / alliance | CPU ratio | loglik - glmer | max abs fixef diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| binary, client + therapist intercepts | {len(d):,} | {a_el:.3f} | {a_cpu:.3f} "
        f"| {rs} | {rc} | {ratio} | {ratio_cpu} | {dll} | {dfe} |",
        "",
        f"Formula: `{FORMULA}`, Laplace. Machine: {platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; lme4 {r['version'] if r else 'n/a'} with default "
        "glmerControl. Median of three runs each, in the same run of this script; the machine "
        "may be shared with other jobs, so the CPU columns show each engine's own cost. "
        "`loglik - glmer` > 0: alliance reached a higher Laplace optimum (glmer's default "
        "PIRLS tolerance, see docs/glmm.md).",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)} (on {os.cpu_count()} cores: "
        "above that, both engines wait for the CPU and the wall-clock columns grow).",
        "Command: `python benchmarks/bench_glmm.py`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
