"""Benchmark: alliance.score on up to 1,000,000 session rows of a 12-item instrument.

Run:  python benchmarks/bench_scoring.py
Prints a table (rows, seconds, peak memory of the call) and writes
benchmarks/results/scoring.md. Goal: 1,000,000 rows of the WAI-SR score in under 2 s.
"""

from __future__ import annotations

import logging
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import alliance

RESULTS = Path(__file__).parent / "results" / "scoring.md"


def make_items(n_rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, 6, size=(n_rows, 12)).astype(float)
    items[rng.random(items.shape) < 0.01] = np.nan
    frame = pd.DataFrame(items, columns=alliance.instruments.get("wai_sr").items)
    frame.insert(0, "client", np.arange(n_rows) // 20)
    frame.insert(1, "session", np.arange(n_rows) % 20 + 1)
    return frame


def run(n_rows: int, repeats: int = 3) -> dict[str, float]:
    data = make_items(n_rows)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        alliance.score(data, "wai_sr", prorate=2)
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    alliance.score(data, "wai_sr", prorate=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": n_rows, "seconds": best, "peak_mb": peak / 2**20}


def main() -> None:
    logging.getLogger("alliance.scoring").setLevel(logging.ERROR)  # rows over the limit
    rows = [run(n) for n in (10_000, 100_000, 1_000_000)]
    table = pd.DataFrame(rows)
    lines = [
        "# Scoring benchmark",
        "",
        '`alliance.score(data, "wai_sr", prorate=2)`: 12 items, 1% missing, total + 3',
        "subscales + missing count. Best of 3 runs; peak memory of one call (tracemalloc).",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}.",
        "",
        "| rows | seconds | peak MB |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {r['rows']:,} | {r['seconds']:.3f} | {r['peak_mb']:.0f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
