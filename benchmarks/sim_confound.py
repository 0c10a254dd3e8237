"""Simulation study: the concurrent-confound null (issue 16).

No lagged alliance effect (``within = 0``); alliance and symptom innovations of a session
correlate -0.5 and symptoms are autoregressive 0.5. Each replication simulates a study
(``alliance.simulate.simulate_study``: 20 therapists x 10 clients, 6 sessions) and fits the
default dynamic panel model and the naive multilevel model (``method="mlm"``) to the latent
session scores (``latent=True``: no item noise, so the DPM is correctly specified). The
rejection rates at alpha = .05 are reported with Wilson 95% CIs.

Run: ``python benchmarks/sim_confound.py --reps 400`` (writes
``benchmarks/results/sim_confound.json``). joblib with ``--jobs 1`` by default.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from joblib import Parallel, delayed

from alliance.models import within_between
from alliance.simulate import simulate_study

EFFECTS = {
    "within": 0.0,
    "reverse": 0.0,
    "between_therapist": 0.0,
    "between_client": 0.0,
    "reflection_effect": 0.0,
    "residual_correlation": -0.5,
    "symptom_autoregression": 0.5,
    "growth_sd": 0.0,
    "prior_negative_growth": 0.0,
    "symptom_slope_sd": 0.0,
    "alliance_residual_sd": 0.4,
}


def one(seed: int, n_starts: int) -> dict:
    study = simulate_study(20, 10, 6, effects=EFFECTS, seed=seed, latent=True)
    lat = study.truth["latent"]
    lat = lat[lat["attended"]].rename(columns={"alliance": "wai", "symptoms": "phq9"})
    dpm = within_between(lat, alliance="wai", outcome="phq9", n_starts=n_starts).params.iloc[0]
    mlm = (
        within_between(lat, alliance="wai", outcome="phq9", method="mlm")
        .params.set_index("term")
        .loc["wai_within"]
    )
    return {
        "seed": seed,
        "dpm_est": float(dpm["estimate"]),
        "dpm_p": float(dpm["p"]),
        "mlm_est": float(mlm["estimate"]),
        "mlm_p": float(mlm["p"]),
    }


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sim_confound.json"))
    args = ap.parse_args()
    t0 = time.time()
    rows = Parallel(n_jobs=args.jobs)(delayed(one)(s, args.starts) for s in range(args.reps))
    out = {"reps": args.reps, "n_starts": args.starts, "seconds": round(time.time() - t0, 1)}
    for m in ("dpm", "mlm"):
        k = sum(r[f"{m}_p"] < 0.05 for r in rows)
        lo, hi = wilson(k, args.reps)
        out[m] = {
            "rejections": k,
            "rate": k / args.reps,
            "wilson_95": [round(lo, 4), round(hi, 4)],
            "mean_estimate": sum(r[f"{m}_est"] for r in rows) / args.reps,
        }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
