"""Benchmark: reading, validating and scoring 1, 3 and 10 million session rows.

Run ``python benchmarks/bench_scale.py`` (several minutes; ``--quick`` for 1,000,000
rows only). The data are made once with ``alliance.simulate.simulate_rom`` into
``benchmarks/out/`` (ignored by git) and reused. Each task runs in a fresh Python
process, so that its peak memory (the process's maximum resident set size, imports
included) is its own. Prints the table (task, rows, seconds, peak memory) and writes
``benchmarks/results/scale.md`` and ``docs/figures/scale.png`` (time and peak memory
against rows).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results" / "scale.md"
FIGURE = HERE.parent / "docs" / "figures" / "scale.png"
SIZES = (1_000_000, 3_000_000, 10_000_000)
ROWS_PER_CLIENT = 13.5  # simulate_rom with 20 planned sessions gives ~14.1 rows per client
SEED = 2026

#: task -> what its time measures (shown under the table)
TASKS = {
    "read (pandas)": "read_study(engine='pandas'): pandas.read_parquet, default dtypes",
    "read (DuckDB)": "read_study(engine='duckdb'): DuckDB batches, compact dtypes",
    "validate (in memory)": "read_study(engine='duckdb') + validate(study)",
    "validate (streaming)": "schema.validate_file(folder, batch_rows=1_000_000)",
    "score (in memory)": "read_study(engine='duckdb', usecols=ids + items) + score WAI-SR "
    "and PHQ-9",
    "score (streaming)": "scoring.score_file(sessions.parquet, out.parquet, 'wai_sr')",
    "per-client summaries": "reliable_change + sudden_gains + ruptures.detect + "
    "ruptures.summarize on a loaded table (time of the analyses only)",
}


def data_folder(rows: int) -> Path:
    return OUT / f"rom_{rows}"


def make_data(sizes: list[int]) -> None:
    """Simulate enough clients for the largest size once; cut the smaller ones from it."""
    import duckdb

    from alliance.simulate import simulate_rom

    biggest = max(sizes)
    source = OUT / "rom_source"
    marker = source / "rows.txt"
    have = int(marker.read_text()) if marker.exists() else 0
    if have < biggest:
        n_clients = int(biggest / ROWS_PER_CLIENT) + 1
        print(f"simulating {n_clients:,} clients into {source} (once) ...", flush=True)
        start = time.perf_counter()
        simulate_rom(n_clients, source, n_sessions=20, seed=SEED, progress=True)
        rows = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{source / 'sessions.parquet'}')"
        ).fetchall()[0][0]
        marker.write_text(str(rows))
        print(f"  {rows:,} rows in {time.perf_counter() - start:.0f} s", flush=True)
        if rows < biggest:
            raise SystemExit(f"the simulation made {rows:,} rows, fewer than {biggest:,}")
    for rows in sizes:
        folder = data_folder(rows)
        target = folder / "sessions.parquet"
        if target.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{source / 'sessions.parquet'}') LIMIT {rows}) "
            f"TO '{target}' (FORMAT parquet)"
        )
        for table in ("clients", "events"):
            duckdb.sql(
                f"COPY (SELECT * FROM read_parquet('{source / table}.parquet') WHERE client IN "
                f"(SELECT DISTINCT client FROM read_parquet('{target}'))) "
                f"TO '{folder / table}.parquet' (FORMAT parquet)"
            )
        shutil.copy(source / "datapackage.json", folder / "datapackage.json")


def run_task(task: str, rows: int) -> dict:
    """In this (child) process: run one task and return its time and peak memory."""
    import alliance
    from alliance import change, ruptures
    from alliance.schema import validate_file
    from alliance.scoring import score_file

    logging.getLogger("alliance").setLevel(logging.ERROR)
    folder = data_folder(rows)
    wai = alliance.instruments.get("wai_sr").items
    phq = alliance.instruments.get("phq9").items
    start = time.perf_counter()
    if task == "read (pandas)":
        study = alliance.read_study(folder, engine="pandas")
        assert len(study.sessions) == rows
    elif task == "read (DuckDB)":
        study = alliance.read_study(folder, engine="duckdb")
        assert len(study.sessions) == rows
    elif task == "validate (in memory)":
        study = alliance.read_study(folder, engine="duckdb")
        alliance.validate(study)
    elif task == "validate (streaming)":
        report = validate_file(folder, batch_rows=1_000_000)
        assert report.n_sessions == rows
    elif task == "score (in memory)":
        ids = ["client", "therapist", "session"]
        study = alliance.read_study(folder, engine="duckdb", usecols=[*ids, *wai, *phq])
        scored = alliance.score(study.sessions, "wai_sr")
        scored = alliance.score(scored, "phq9")
        assert len(scored) == rows
    elif task == "score (streaming)":
        info = score_file(folder / "sessions.parquet", OUT / f"scores_{rows}.parquet", "wai_sr")
        assert info["n_rows"] == rows
    elif task == "per-client summaries":
        study = alliance.read_study(
            folder, engine="duckdb", usecols=["client", "session", "wai_sr", "phq9"]
        )
        data = study.sessions
        start = time.perf_counter()
        change.reliable_change(data, outcome="phq9", sd="pre", reliability=0.84)
        change.sudden_gains(data, outcome="phq9", cutoff=6)
        found = ruptures.detect(data, alliance="wai_sr", threshold=8)
        ruptures.summarize(found, data=data)
    else:
        raise SystemExit(f"unknown task {task!r}")
    seconds = time.perf_counter() - start
    return {"task": task, "rows": rows, "seconds": seconds, "peak_mb": peak_memory() / 2**20}


def peak_memory() -> int:
    """This process's peak resident set size in bytes.

    VmHWM from /proc on Linux: ``getrusage``'s ru_maxrss survives ``exec`` there, so a
    child would report its parent's peak when that is larger.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(task: str, rows: int) -> dict:
    """Run one task in a fresh process (its own peak memory)."""
    done = subprocess.run(
        [sys.executable, __file__, "--task", task, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{task} at {rows:,} rows failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GB RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, pandas {pd.__version__}, "
        f"numpy {np.__version__}, DuckDB {duckdb.__version__}, pyarrow {pa.__version__}"
    )


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(results)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110)
    for task, part in frame.groupby("task", sort=False):
        part = part.sort_values("rows")
        millions = part["rows"] / 1e6
        ax_t.plot(millions, part["seconds"], marker="o", label=task)
        ax_m.plot(millions, part["peak_mb"] / 1024, marker="o", label=task)
    ax_m.axhline(4, color="grey", linestyle="--", linewidth=1)
    ax_m.text(0.05, 4.05, "4 GB", color="grey", transform=ax_m.get_yaxis_transform())
    ax_t.set(xlabel="session rows (millions)", ylabel="seconds", title="Time")
    ax_m.set(xlabel="session rows (millions)", ylabel="peak memory (GB)", title="Peak memory")
    for ax in (ax_t, ax_m):
        ax.set_xlim(0, None)
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
    ax_t.legend(fontsize=7.5, frameon=False)
    fig.suptitle("alliance at routine-outcome-monitoring scale (simulate_rom data, Parquet)")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, metadata={"Software": None})
    plt.close(fig)


def write_results(results: list[dict], command: str) -> None:
    lines = [
        "# Benchmark: data at scale",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        "Data: `alliance.simulate.simulate_rom(seed=2026)` (20 planned sessions, ~14 rows per "
        "client, WAI-SR and PHQ-9 items, 32 columns), the first N rows of one simulation. "
        "Each task runs in a fresh Python process; peak memory is that process's peak "
        "resident set size (VmHWM; imports, about 0.2 GB, included).",
        "",
        "| task | rows | seconds | peak memory (GB) |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['task']} | {r['rows']:,} | {r['seconds']:.1f} | {r['peak_mb'] / 1024:.2f} |"
        )
    lines += ["", "What each task times:", ""]
    lines += [f"- **{task}**: {what}" for task, what in TASKS.items()]
    lines += ["", "Figure: `docs/figures/scale.png`.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows only")
    parser.add_argument("--sizes", type=int, nargs="*", help="row counts to run")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        print(json.dumps(run_task(args.task, args.rows)))
        return
    sizes = args.sizes or ([SIZES[0]] if args.quick else list(SIZES))
    make_data(sizes)
    results = []
    print(f"{'task':<24}{'rows':>12}{'seconds':>10}{'peak GB':>10}", flush=True)
    for rows in sizes:
        for task in TASKS:
            r = measure(task, rows)
            results.append(r)
            print(
                f"{r['task']:<24}{r['rows']:>12,}{r['seconds']:>10.1f}{r['peak_mb'] / 1024:>10.2f}",
                flush=True,
            )
    command = "python benchmarks/bench_scale.py" + (" --quick" if args.quick else "")
    if args.sizes:
        command += " --sizes " + " ".join(map(str, args.sizes))
    write_results(results, command)
    plot(results)
    print(f"wrote {RESULTS.relative_to(HERE.parent)} and {FIGURE.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
