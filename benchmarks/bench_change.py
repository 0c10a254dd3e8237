"""Benchmark: per-client change and rupture functions on 1,000,000 session rows.

Run ``python benchmarks/bench_change.py [--rows N]``. Prints one line per task (task,
rows, seconds, peak memory) and writes ``benchmarks/results/change.md``. The data are
simulated: clients with 20 sessions each, about 10% of sessions absent, an alliance
score with occasional dips and a symptom score that falls over time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from alliance import change, ruptures

RESULTS = Path(__file__).parent / "results" / "change.md"


def make_data(rows: int, sessions: int = 20, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    target = rows
    rows = int(rows / 0.9) + sessions  # ~10% of sessions are absent below
    n_clients = int(np.ceil(rows / sessions))
    client = np.repeat(np.arange(n_clients), sessions)[:rows]
    session = np.tile(np.arange(1, sessions + 1), n_clients)[:rows]
    level = rng.normal(45, 6, n_clients)[client]
    dip = np.where(rng.random(rows) < 0.05, rng.gamma(6, 10 / 6, rows), 0.0)
    alliance = np.clip(np.round(level + 0.3 * session - dip + rng.normal(0, 3, rows)), 12, 60)
    phq = np.clip(
        np.round(rng.normal(17, 4, n_clients)[client] - 0.5 * session + rng.normal(0, 3, rows)),
        0,
        27,
    )
    frame = pd.DataFrame({"client": client, "session": session, "wai_sr": alliance, "phq9": phq})
    keep = rng.random(rows) > 0.10  # absent sessions
    keep[session == 1] = True
    frame = frame[keep].iloc[:target]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted


def timed(task: str, func, rows: int) -> dict:
    """Wall time of a plain call, then peak memory in a second, traced call."""
    start = time.perf_counter()
    out = func()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "task": task,
        "rows": rows,
        "seconds": seconds,
        "peak_mb": peak / 1e6,
        "result_rows": len(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    data = make_data(args.rows)
    n = len(data)
    found = ruptures.detect(data, alliance="wai_sr", threshold=8)
    tasks = [
        (
            "reliable_change",
            lambda: change.reliable_change(data, outcome="phq9", sd="pre", reliability=0.84),
        ),
        (
            "clinical_significance",
            lambda: change.clinical_significance(
                data, outcome="phq9", instrument="phq9", sd="pre", reliability=0.84
            ),
        ),
        *[
            (
                f"clinical_significance {m}",
                lambda m=m: change.clinical_significance(
                    data,
                    outcome="phq9",
                    instrument="phq9",
                    reliability=0.84,
                    reliability_post=0.8,
                    method=m,
                ),
            )
            for m in ("GLN", "HLL", "EN", "NK", "HA")
        ],
        (
            "clinical_significance percentage",
            lambda: change.clinical_significance(
                data,
                outcome="phq9",
                instrument="phq9",
                threshold=5,
                approach="percentage",
                pct_improvement=0.5,
                with_cutoff=True,
            ),
        ),
        (
            "reliable_change HLM",
            lambda: change.reliable_change(data, outcome="phq9", method="HLM"),
        ),
        ("within_effect_size", lambda: change.within_effect_size(data, outcome="phq9")),
        ("sudden_gains", lambda: change.sudden_gains(data, outcome="phq9", cutoff=6)),
        ("ruptures.detect (drop)", lambda: ruptures.detect(data, alliance="wai_sr", threshold=8)),
        (
            "ruptures.detect (dip)",
            lambda: ruptures.detect(data, alliance="wai_sr", method="dip", spread="pooled"),
        ),
        ("ruptures.summarize", lambda: ruptures.summarize(found, data=data)),
        (
            "ruptures.event_locked",
            lambda: ruptures.event_locked(data, found, alliance="wai_sr", outcome="phq9"),
        ),
    ]
    results = [timed(name, func, n) for name, func in tasks]
    lines = [
        "# Benchmark: change and ruptures",
        "",
        f"Command: `python benchmarks/bench_change.py --rows {args.rows}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, numpy {np.__version__}  ",
        f"Data: {n:,} session rows (unsorted, ~10% of sessions absent), "
        f"{data['client'].nunique():,} clients. Peak memory is what tracemalloc saw "
        "during a second, traced call (Python and numpy allocations); the time is that "
        "of an untraced call.",
        "",
        "| task | rows | seconds | peak memory (MB) | result rows |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        print(
            f"{r['task']:<26} rows={r['rows']:>9,}  {r['seconds']:6.2f} s  "
            f"peak {r['peak_mb']:7.1f} MB  -> {r['result_rows']:,} rows"
        )
        lines.append(
            f"| {r['task']} | {r['rows']:,} | {r['seconds']:.2f} | "
            f"{r['peak_mb']:.0f} | {r['result_rows']:,} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
