"""Refit the seeds of a logged ``sim_null_within.py`` run whose default fit did not converge.

The default's rule for such fits changed (issue 16: refit without the trends, or report
``converged=False``); fits that converged are unchanged by it (checked: identical
estimates, SEs and p-values to 1e-9 on the seeds rerun in full). So the current default's
400 replications are the converged rows of the old log plus these refits.

Run: ``python benchmarks/sim_null_within_rerun.py OLD.jsonl OUT.jsonl [--part 0 --parts 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sim_null_within import one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("out")
    ap.add_argument("--part", type=int, default=0)
    ap.add_argument("--parts", type=int, default=1)
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.old).read_text().splitlines() if line.strip()]
    seeds = sorted(r["seed"] for r in rows if not r["converged"])[args.part :: args.parts]
    with Path(args.out).open("w", encoding="utf-8") as log:
        for seed in seeds:
            log.write(json.dumps(one(seed)) + "\n")
            log.flush()


if __name__ == "__main__":
    main()
