"""Simulation study: ML vs cluster-robust (MLR) standard errors of the dynamic panel model.

Why ``dynamic_panel(se="auto")`` clusters by therapist when there are at least 30
therapists (issue 16). Each replication simulates a bivariate dynamic panel (the model of
``alliance.models.sem.dynamic_panel``: client fixed effects correlated with the first
session, autoregression 0.3 in both series) of ``--therapists`` therapists x 8 clients x 5
sessions, in which the alliance has on average **no** effect on the next session's
symptoms: the cross-lagged path of a therapist's clients is drawn from N(0, ``tau``^2)
(``--tau 0``: no therapist heterogeneity). Therapist level differences in the series are
absorbed by the client fixed effects; what clusters the clients' scores is the
therapist-specific path. One fit per replication with ``se="robust"`` gives both standard
errors (the ML SEs are in ``parameter_table["se_ml"]``). Reported: the type-I rate of the
alliance -> outcome path at alpha = .05 with each SE, with Wilson 95% CIs.

Run: ``python benchmarks/sim_mlr_cluster.py --reps 200 --tau 0.3`` (writes
``benchmarks/results/sim_mlr_cluster_tau0.3_k30.json``; the write-up is
``benchmarks/results/sim_mlr_cluster.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alliance.models.sem import dynamic_panel

CLIENTS, WAVES = 8, 5


def panel(seed: int, n_therapists: int, tau: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_therapists * CLIENTS
    therapist = np.repeat(np.arange(n_therapists), CLIENTS)
    beta = rng.normal(0.0, tau, n_therapists)[therapist]  # therapist-specific path, mean 0
    eta = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 1.0]], n)
    y = np.empty((n, WAVES))
    x = np.empty((n, WAVES))
    y[:, 0] = 1.5 * eta[:, 0] + rng.normal(0, 1, n)
    x[:, 0] = 1.5 * eta[:, 1] + rng.normal(0, 1, n)
    for t in range(1, WAVES):
        y[:, t] = 0.3 * y[:, t - 1] + beta * x[:, t - 1] + eta[:, 0] + rng.normal(0, 1, n)
        x[:, t] = 0.3 * x[:, t - 1] + eta[:, 1] + rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "client": np.repeat(np.arange(n), WAVES),
            "therapist": np.repeat(therapist, WAVES),
            "session": np.tile(np.arange(1, WAVES + 1), n),
            "outcome": y.ravel(),
            "alliance": x.ravel(),
        }
    )


def one(seed: int, n_therapists: int, tau: float) -> dict:
    fit = dynamic_panel(
        panel(seed, n_therapists, tau), therapist="therapist", se="robust", fit_indices=False
    )
    row = fit.parameter_table.query("label == 'beta_yx'").iloc[0]
    out = {"seed": seed, "estimate": float(row["est"]), "converged": bool(fit.converged)}
    for name, col in (("ml", "se_ml"), ("robust", "se")):
        se = float(row[col])
        out[f"se_{name}"] = se
        out[f"p_{name}"] = float(2 * stats.norm.sf(abs(row["est"] / se)))
    return out


def wilson(k: int, n: int, z: float = 1.959964) -> list[float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    est = np.array([r["estimate"] for r in rows])
    out = {"reps": n, "sd_estimate": float(est.std(ddof=1)), "mean_estimate": float(est.mean())}
    for name in ("ml", "robust"):
        k = sum(r[f"p_{name}"] < 0.05 for r in rows)
        out[name] = {
            "rejections": k,
            "rate": k / n,
            "wilson_95": wilson(k, n),
            "mean_se": float(np.mean([r[f"se_{name}"] for r in rows])),
        }
    out["not_converged"] = sum(not r["converged"] for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--therapists", type=int, default=30)
    ap.add_argument("--tau", type=float, default=0.3)
    args = ap.parse_args()
    t0 = time.time()
    rows = [one(s, args.therapists, args.tau) for s in range(args.reps)]
    out = {
        "design": {
            "therapists": args.therapists,
            "clients_per_therapist": CLIENTS,
            "sessions": WAVES,
            "tau": args.tau,
        },
        "seconds": round(time.time() - t0, 1),
        **summary(rows),
        "rows": rows,
    }
    name = f"sim_mlr_cluster_tau{args.tau:g}_k{args.therapists}.json"
    path = Path(__file__).parent / "results" / name
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
