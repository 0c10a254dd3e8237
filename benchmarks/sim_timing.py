"""Time the default within_between fit (dynamic panel model, 3 starts) on the demo.

Run: ``python benchmarks/sim_timing.py``; the numbers are written down in
``benchmarks/results/science_models.md``. Each line gives the wall-clock time and the
process CPU time (the machine is shared, so the CPU time is the steadier number).
"""

from __future__ import annotations

import time

import alliance


def main() -> None:
    study = alliance.datasets.load_dataset("demo")
    sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    runs = [
        {},  # the default: slopes=True, 3 starts, fit indices
        {"fit_indices": False},
        {"n_starts": 1},
        {"slopes": False},
        {"max_sessions": 8},
        {"max_sessions": 8, "fit_indices": False},
    ]
    for options in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        alliance.models.within_between(sessions, alliance="wai", outcome="phq9", **options)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{options or 'default'}: wall {wall:.2f} s, cpu {cpu:.2f} s")


if __name__ == "__main__":
    main()
