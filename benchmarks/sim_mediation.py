"""Simulation study: 1-1-1 mediation with random a and b paths that covary (issue 16).

Each client j has its own a path (technique -> alliance) and b path (alliance -> next
session's outcome), drawn with a correlation, so the average within-client indirect effect is
``E[a_j b_j] = a b + cov(a_j, b_j)`` (Kenny, Korchmaros & Bolger 2003). The outcome is
autocorrelated (``rho``) and the alliance's residual is correlated with the outcome's
same-session innovation (``r_my``), the confound that the b path's adjustment for the outcome
at the mediator's session removes; the outcome's residual SD differs from the alliance's, so
the stacked model needs outcome-specific residual variances.

Scenarios: ``effect`` (no same-session correlation), ``null`` (``a = 0``, no covariance),
and ``confound`` (``r_my = -0.3``) fitted with and without the b path's adjustment for the
outcome at t (half the replications each): the adjustment removes most of the confound; what
is left is the Nickell bias of the outcome's own coefficient passed on to b.

``alliance.models.mediation`` (default: the stacked model of Bauer, Preacher & Gil 2006,
``random_paths=True``) is compared with the naive product of the fixed a and b paths
(``ab_within``: what the fixed-path model estimates). Reported: bias and the coverage of the
95% Monte Carlo interval of the indirect effect, and under the null (``a = 0``, no
covariance) the rate at which the interval excludes 0.

Run: ``python benchmarks/sim_mediation.py --reps 200`` (writes
``benchmarks/results/sim_mediation.json``; the write-up is
``benchmarks/results/sim_mediation.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

TRUTH = {
    "a": 0.3,
    "b": 0.3,
    "sd_a": 0.3,
    "sd_b": 0.3,
    "corr_ab": 0.6,
    "c": 0.1,
    "rho": 0.3,
    "r_my": 0.0,
    "sd_m": 1.0,
    "sd_y": 2.0,
}
NULL = TRUTH | {"a": 0.0, "corr_ab": 0.0}
# the same-session confound: alliance residual and outcome innovation correlated
CONFOUND = TRUTH | {"r_my": -0.3}
DESIGN = {"n_clients": 100, "n_sessions": 10}


def simulate(
    n_clients: int = 100, n_sessions: int = 10, truth: dict | None = None, seed: int = 0
) -> pd.DataFrame:
    """Long data (client, session, reflection, alliance, outcome) with random a and b paths."""
    t = TRUTH if truth is None else truth
    rng = np.random.default_rng(seed)
    cov_ab = t["corr_ab"] * t["sd_a"] * t["sd_b"]
    paths = rng.multivariate_normal(
        [t["a"], t["b"]], [[t["sd_a"] ** 2, cov_ab], [cov_ab, t["sd_b"] ** 2]], n_clients
    )
    rows = []
    for j in range(n_clients):
        a_j, b_j = paths[j]
        x_mean = rng.normal(0.0, 0.5)
        m_int = rng.normal(4.0, 0.5)
        y_int = rng.normal(10.0, 2.0)
        x = x_mean + rng.normal(0.0, 1.0, n_sessions)
        # alliance residual correlated with the same session's outcome innovation
        z1 = rng.normal(size=n_sessions)
        z2 = rng.normal(size=n_sessions)
        e_y = t["sd_y"] * z1
        e_m = t["sd_m"] * (t["r_my"] * z1 + math.sqrt(1 - t["r_my"] ** 2) * z2)
        m = m_int + a_j * (x - x_mean) + e_m
        m_centre = m_int  # the client's mean alliance (the within part's reference)
        y = np.empty(n_sessions)
        y[0] = y_int + e_y[0]
        for s in range(1, n_sessions):
            y[s] = (
                (1 - t["rho"]) * y_int
                + t["rho"] * y[s - 1]
                + b_j * (m[s - 1] - m_centre)
                + t["c"] * (x[s - 1] - x_mean)
                + e_y[s]
            )
        for s in range(n_sessions):
            rows.append((f"c{j:03d}", s + 1, x[s], m[s], y[s]))
    return pd.DataFrame(rows, columns=["client", "session", "reflection", "alliance", "outcome"])


def true_indirect(truth: dict) -> float:
    return truth["a"] * truth["b"] + truth["corr_ab"] * truth["sd_a"] * truth["sd_b"]


def one(
    seed: int, truth: dict, design: dict, n_mc: int = 4000, adjust_outcome: bool = True
) -> dict:
    from alliance.models import mediation

    data = simulate(design["n_clients"], design["n_sessions"], truth, seed)
    fit = mediation(
        data,
        "reflection",
        n_boot=0,
        n_mc=n_mc,
        seed=seed,
        detrend=False,
        adjust_outcome=adjust_outcome,
    )
    p = fit.params.set_index("term")
    target = true_indirect(truth)
    return {
        "seed": seed,
        "indirect": float(p.loc["indirect_within", "estimate"]),
        "ab": float(p.loc["ab_within", "estimate"]),
        "cov_ab": float(p.loc["cov_ab_within", "estimate"]),
        "b": float(p.loc["b_within", "estimate"]),
        "covered": bool(
            p.loc["indirect_within", "ci_low"] <= target <= p.loc["indirect_within", "ci_high"]
        ),
        "excludes_zero": bool(
            p.loc["indirect_within", "ci_low"] > 0 or p.loc["indirect_within", "ci_high"] < 0
        ),
        "converged": bool(fit.converged),
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summarise(rows: list[dict], truth: dict) -> dict:
    frame = pd.DataFrame(rows)
    target = true_indirect(truth)
    n = len(frame)
    cov_k = int(frame["covered"].sum())
    rej_k = int(frame["excludes_zero"].sum())
    return {
        "reps": n,
        "true_indirect": target,
        "true_ab": truth["a"] * truth["b"],
        "mean_indirect": float(frame["indirect"].mean()),
        "bias_indirect": float(frame["indirect"].mean() - target),
        "mc_se_bias": float(frame["indirect"].std(ddof=1) / math.sqrt(n)),
        "mean_cov_ab": float(frame["cov_ab"].mean()),
        "true_cov_ab": truth["corr_ab"] * truth["sd_a"] * truth["sd_b"],
        "mean_b": float(frame["b"].mean()),
        "true_b": truth["b"],
        "mean_naive_ab": float(frame["ab"].mean()),
        "bias_naive_ab": float(frame["ab"].mean() - target),
        "coverage": cov_k / n,
        "coverage_ci": wilson(cov_k, n),
        "rejection_rate": rej_k / n,
        "rejection_ci": wilson(rej_k, n),
        "converged": int(frame["converged"].sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sim_mediation.json"))
    args = ap.parse_args()
    from joblib import Parallel, delayed

    out = {"design": DESIGN, "truth": TRUTH, "null_truth": NULL, "confound_truth": CONFOUND}
    scenarios = [
        ("effect", TRUTH, True, args.reps),
        ("null", NULL, True, args.reps),
        ("confound_adjusted", CONFOUND, True, args.reps // 2),
        ("confound_unadjusted", CONFOUND, False, args.reps // 2),
    ]
    for name, truth, adjust, reps in scenarios:
        start = time.perf_counter()
        rows = Parallel(n_jobs=args.jobs)(
            delayed(one)(seed, truth, DESIGN, adjust_outcome=adjust) for seed in range(reps)
        )
        out[name] = summarise(rows, truth) | {"seconds": time.perf_counter() - start}
        print(name, json.dumps(out[name], indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
