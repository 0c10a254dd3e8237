"""Simulation study: therapist-mean alliance with small caseloads (issue 16).

Therapists have 1-4 clients each (mean 2.5); a therapist's clients share a latent therapist
alliance ``u_a`` (ICC of alliance ``icc``) and the end outcome depends on it with slope
``between`` (the therapist effect) and on the client's deviation with slope ``within``,
given the baseline:

    a_ij   = u_a_j + e_ij
    end_ij = 10 + 0.5 (baseline_ij - 15) + between u_a_j + within e_ij + u_y_j + r_ij

The data are written in long format (alliance at sessions 1-3, baseline outcome at
session 1, end outcome at session 4) and fitted with ``therapist_contributions``'s default
(``outcome_model="end"``, latent therapist means, Lüdtke et al. 2008) and with
``centering="observed"`` (observed caseload means, Baldwin et al. 2007). The observed mean's
reliability is ``n ICC / (1 + (n - 1) ICC)`` (about .35 here), so its slope is pulled
towards the within slope (Lüdtke et al. 2008, eq. 9).

Run: ``python benchmarks/sim_therapist_small.py --reps 200`` (writes
``benchmarks/results/therapist_small.json``; the write-up is
``benchmarks/results/therapist_small.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.models import therapist_contributions

TRUTH = {"between": -3.0, "within": -0.5, "icc": 0.15, "n_therapists": 80, "max_caseload": 4}


def simulate(seed: int, truth: dict | None = None) -> pd.DataFrame:
    """Long-format sessions 1-4 of every client (see the module docstring)."""
    t = {**TRUTH, **(truth or {})}
    rng = np.random.default_rng(seed)
    n_t = t["n_therapists"]
    sizes = rng.integers(1, t["max_caseload"] + 1, size=n_t)
    ther = np.repeat(np.arange(n_t), sizes)
    u_a = rng.normal(0, math.sqrt(t["icc"]), n_t)[ther]
    u_y = rng.normal(0, 2.0, n_t)[ther]
    e = rng.normal(0, math.sqrt(1 - t["icc"]), len(ther))
    base = 15 + rng.normal(0, 4, len(ther))
    end = (
        10
        + 0.5 * (base - 15)
        + t["between"] * u_a
        + t["within"] * e
        + u_y
        + rng.normal(0, 3, len(ther))
    )
    a = 4 + u_a + e
    clients = [f"C{i:04d}" for i in range(len(ther))]
    rows = []
    for s in (1, 2, 3, 4):
        rows.append(
            pd.DataFrame(
                {
                    "client": clients,
                    "therapist": [f"T{j:03d}" for j in ther],
                    "session": s,
                    "alliance": a if s <= 3 else np.nan,
                    "outcome": base if s == 1 else (end if s == 4 else np.nan),
                }
            )
        )
    return pd.concat(rows, ignore_index=True).sort_values(["client", "session"])


def one(seed: int, truth: dict | None = None) -> dict:
    d = simulate(seed, truth)
    out = {"seed": seed}
    for name, centering in (("latent", None), ("observed", "observed")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = therapist_contributions(
                d, alliance="alliance", outcome="outcome", early=3, centering=centering
            )
        row = fit.params.set_index("term").loc["alliance_therapist"]
        out[name] = {
            "estimate": float(row["estimate"]),
            "se": float(row["se"]),
            "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]),
            "converged": bool(fit.converged),
        }
    return out


def summary(rows: list[dict], name: str, truth: float) -> dict:
    r = [x[name] for x in rows]
    ok = [x for x in r if x["converged"] and np.isfinite(x["se"])]
    est = np.array([x["estimate"] for x in ok])
    cover = np.mean([x["ci_low"] <= truth <= x["ci_high"] for x in ok])
    return {
        "fits": len(r),
        "proper": len(ok),
        "mean_estimate": float(est.mean()),
        "median_estimate": float(np.median(est)),
        "bias": float(est.mean() - truth),
        "bias_mcse": float(est.std(ddof=1) / math.sqrt(len(est))),
        "sd_estimate": float(est.std(ddof=1)),
        "mean_se": float(np.mean([x["se"] for x in ok])),
        "coverage": float(cover),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "therapist_small.json")
    )
    args = ap.parse_args()
    t0 = time.time()
    rows = [one(s) for s in range(args.reps)]
    out = {
        "reps": args.reps,
        "truth": TRUTH,
        "seconds": round(time.time() - t0, 1),
        "latent": summary(rows, "latent", TRUTH["between"]),
        "observed": summary(rows, "observed", TRUTH["between"]),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
