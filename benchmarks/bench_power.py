"""Simulations per second of power analysis, with the package's engine and with statsmodels.

Run: .venv/bin/python benchmarks/bench_power.py [--sims N]
Writes benchmarks/results/power.md. One design (20 therapists x 8 clients x 12 sessions),
model "within" (random client intercept, detrended person-mean-centred alliance), on all
local cores (joblib/loky) and in one process.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from alliance.power import simulate_power

OUT = Path(__file__).parent / "results" / "power.md"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=60)
    args = parser.parse_args()
    grid = pd.DataFrame({"n_therapists": [20], "clients_per_therapist": [8], "n_sessions": [12]})
    rows = []
    for engine in ("alliance", "statsmodels"):
        for backend, jobs in (("sequential", 1), ("loky", os.cpu_count())):
            start = time.perf_counter()
            table = simulate_power(
                grid,
                model="within",
                n_sims=args.sims,
                engine=engine,
                backend=backend,
                n_jobs=jobs,
                seed=1,
            )
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "engine": engine,
                    "backend": backend,
                    "processes": jobs,
                    "simulations": args.sims,
                    "seconds": round(seconds, 1),
                    "sims_per_second": round(args.sims / seconds, 2),
                    "power": round(float(table["power"].iloc[0]), 3),
                }
            )
    grid3 = pd.DataFrame(
        {"n_therapists": [10, 20, 40], "clients_per_therapist": [8] * 3, "n_sessions": [12] * 3}
    )
    for nested in (False, True):
        start = time.perf_counter()
        simulate_power(
            grid3,
            model="within",
            n_sims=args.sims // 2,
            backend="sequential",
            nested=nested,
            seed=1,
        )
        seconds = time.perf_counter() - start
        fits = 3 * (args.sims // 2)
        rows.append(
            {
                "engine": "alliance",
                "backend": "sequential" + (", nested" if nested else ""),
                "processes": 1,
                "simulations": fits,
                "seconds": round(seconds, 1),
                "sims_per_second": round(fits / seconds, 2),
                "power": float("nan"),
            }
        )
    result = pd.DataFrame(rows)
    text = result.to_markdown(index=False) if hasattr(result, "to_markdown") else result.to_string()
    header = (
        f"# Power analysis throughput\n\nMachine: {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}.\n"
        "Design: 20 therapists x 8 clients x 12 sessions; model `within`.\n"
        "Process start-up (importing the package in each worker) is included.\n"
        "Last two rows: a grid of 10, 20 and 40 therapists; `nested` simulates the largest "
        "design once per draw and fits the smaller ones on its first therapists.\n\n"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(header + text + "\n", encoding="utf-8")
    print(result.to_string(index=False))


if __name__ == "__main__":
    main()
