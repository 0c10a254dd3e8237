"""Simulation study: a cross-level interaction with a true random slope (issue 16).

The within-client effect of the alliance on the next session's outcome differs between
clients: part of it by a client-level moderator (``severity``, standard normal), part of
it at random. Each replication draws ``N_CLIENTS`` clients with ``N_SESSIONS`` sessions::

    alliance[i, t] = mu_i + a[i, t]                       a ~ N(0, 1), mu_i ~ N(0, 0.5^2)
    outcome[i, t + 1] = 10 + alpha_i + g_i t + RHO outcome[i, t]
                        + (GAMMA + DELTA severity_i + u_i) a[i, t] + e[i, t + 1]

with alpha_i ~ N(0, 1), g_i ~ N(0, 0.1^2), u_i ~ N(0, SLOPE_SD^2) and e ~ N(0, 1). The
truth of the cross-level interaction ``alliance_within:severity`` is ``DELTA``.

:func:`alliance.models.moderation` is fitted with ``model="within_between"``: its default
for a continuous moderator (``method="mlm"``: lagged outcome and the random slope of the
within effect, Heisig & Schaeffer 2019) and, for comparison, ``random_slope=False``. The
coverage of the 95% CI of the interaction is reported with a Wilson 95% CI, and the bias.

Run: ``python benchmarks/sim_moderation.py --reps 400`` (writes
``benchmarks/results/sim_moderation.json``; the write-up is
``benchmarks/results/sim_moderation.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.models import moderation

N_CLIENTS = 100
N_SESSIONS = 8
RHO = 0.3
GAMMA = -0.5
DELTA = 0.3
SLOPE_SD = 0.5


def simulate(
    rng: np.random.Generator,
    n_clients: int = N_CLIENTS,
    n_sessions: int = N_SESSIONS,
    *,
    delta: float = DELTA,
    slope_sd: float = SLOPE_SD,
) -> pd.DataFrame:
    """Long data: client, session, alliance, outcome, severity (one value per client)."""
    severity = rng.standard_normal(n_clients)
    mu = 0.5 * rng.standard_normal(n_clients)
    alpha = rng.standard_normal(n_clients)
    trend = 0.1 * rng.standard_normal(n_clients)
    u = slope_sd * rng.standard_normal(n_clients)
    a = rng.standard_normal((n_clients, n_sessions))
    y = np.empty((n_clients, n_sessions))
    y[:, 0] = (10 + alpha) / (1 - RHO) + rng.standard_normal(n_clients)
    slope = GAMMA + delta * severity + u
    for t in range(1, n_sessions):
        y[:, t] = (
            10
            + alpha
            + trend * t
            + RHO * y[:, t - 1]
            + slope * a[:, t - 1]
            + rng.standard_normal(n_clients)
        )
    clients = np.repeat([f"C{i:03d}" for i in range(n_clients)], n_sessions)
    return pd.DataFrame(
        {
            "client": clients,
            "session": np.tile(np.arange(1, n_sessions + 1), n_clients),
            "alliance": (mu[:, None] + a).ravel().round(6),
            "outcome": y.ravel().round(6),
            "severity": np.repeat(severity, n_sessions).round(6),
        }
    )


def one(seed: int, n_clients: int = N_CLIENTS, n_sessions: int = N_SESSIONS) -> dict:
    data = simulate(np.random.default_rng(seed), n_clients, n_sessions)
    row = {"seed": seed}
    for name, options in (("random_slope", {}), ("no_random_slope", {"random_slope": False})):
        fit = moderation(
            data,
            "severity",
            alliance="alliance",
            outcome="outcome",
            model="within_between",
            **options,
        )
        r = fit.params.set_index("term").loc["alliance_within:severity"]
        row[name] = {
            "estimate": float(r["estimate"]),
            "se": float(r["se"]),
            "covered": bool(r["ci_low"] <= DELTA <= r["ci_high"]),
            "converged": bool(fit.converged),
        }
    return row


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summary(rows: list[dict], name: str) -> dict:
    """Coverage with its Wilson 95% CI, bias, SD of the estimates and mean SE."""
    part = [r[name] for r in rows]
    n = len(part)
    k = sum(p["covered"] for p in part)
    est = np.array([p["estimate"] for p in part])
    lo, hi = wilson(k, n)
    return {
        "reps": n,
        "covered": k,
        "coverage": k / n,
        "wilson_95": [round(lo, 4), round(hi, 4)],
        "bias": float(est.mean() - DELTA),
        "mc_se_bias": float(est.std(ddof=1) / math.sqrt(n)),
        "sd_estimate": float(est.std(ddof=1)),
        "mean_se": float(np.mean([p["se"] for p in part])),
        "not_converged": sum(not p["converged"] for p in part),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sim_moderation.json"))
    args = ap.parse_args()
    t0 = time.time()
    rows = [one(seed) for seed in range(args.reps)]
    out = {
        "design": {
            "n_clients": N_CLIENTS,
            "n_sessions": N_SESSIONS,
            "rho": RHO,
            "gamma": GAMMA,
            "delta": DELTA,
            "slope_sd": SLOPE_SD,
        },
        "seconds": round(time.time() - t0, 1),
        "random_slope": summary(rows, "random_slope"),
        "no_random_slope": summary(rows, "no_random_slope"),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
