"""Time the default ``within_between`` fit (dynamic panel model) on the demo, beside lavaan.

Issue 16: "a default fit of the demo stays under 2 s" (power, the report and the notebooks
call it many times). Run from the repository root::

    python benchmarks/bench_dpm.py [--reps 3] [--no-lavaan]

Each run prints the machine load (``uptime``), then for each configuration the wall-clock
and process CPU seconds of ``--reps`` fits (after one warm-up fit, so imports are not
timed), then lavaan's times on the same model and data (``benchmarks/bench_dpm_lavaan.R``,
when ``Rscript`` is on the PATH). The machine may be shared: the CPU time is the steadier
number, the wall-clock time is what a user waits. Results are written down in
``benchmarks/results/dpm_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import alliance
from alliance.models import sem, within_between

RUNS = [
    ("default (slopes, 3 starts, fit indices)", {}),
    ("fit_indices=False", {"fit_indices": False}),
    ("n_starts=1", {"n_starts": 1}),
    ("max_sessions=8", {"max_sessions": 8}),
]


def _time(fun, reps: int) -> tuple[list[float], list[float]]:
    fun()  # warm-up: imports, caches
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fun()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _lavaan(sessions: pd.DataFrame) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    panel = sem.dynamic_panel(sessions, alliance="wai", outcome="phq9", slopes=True)
    waves = panel.sessions
    wide = sessions.pivot(index="client", columns="session", values=["phq9", "wai"])
    frame = pd.DataFrame(
        {
            **{f"y{t + 1}": wide[("phq9", w)] for t, w in enumerate(waves)},
            **{f"x{t + 1}": wide[("wai", w)] for t, w in enumerate(waves)},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.csv"
        frame.to_csv(path, index=False, na_rep="NA")
        out = subprocess.run(
            ["Rscript", "benchmarks/bench_dpm_lavaan.R", str(path), str(len(waves))],
            capture_output=True,
            text=True,
            check=True,
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["ours_loglik"] = float(panel.loglik)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-lavaan", action="store_true")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    study = alliance.datasets.load_dataset("demo")
    sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    for name, options in RUNS:
        wall, cpu = _time(
            lambda o=options: within_between(sessions, alliance="wai", outcome="phq9", **o),
            args.reps,
        )
        print(
            f"{name}: wall median {np.median(wall):.2f} s (min {min(wall):.2f}), "
            f"cpu median {np.median(cpu):.2f} s (min {min(cpu):.2f})"
        )
    if not args.no_lavaan:
        res = _lavaan(sessions)
        if res is None:
            print("lavaan: Rscript not found")
        else:
            print("lavaan:", json.dumps(res))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
