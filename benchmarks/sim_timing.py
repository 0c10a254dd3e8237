"""Time the default within_between fit (dynamic panel model, 3 starts) on the demo.

Run: ``python benchmarks/sim_timing.py``; the numbers are written down in
``benchmarks/results/science_models.md``.
"""

from __future__ import annotations

import time

import alliance


def main() -> None:
    study = alliance.datasets.load_dataset("demo")
    sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    for max_sessions in (8, None):
        for n_starts in (1, 3):
            t0 = time.perf_counter()
            alliance.models.within_between(
                sessions,
                alliance="wai",
                outcome="phq9",
                max_sessions=max_sessions,
                n_starts=n_starts,
            )
            print(
                f"max_sessions={max_sessions} n_starts={n_starts}: {time.perf_counter() - t0:.2f} s"
            )


if __name__ == "__main__":
    main()
