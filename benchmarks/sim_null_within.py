"""Simulation study: no within-client effect, three confounds, the default model (issue 16).

Each replication simulates a study with ``alliance.simulate.simulate_study`` (20
therapists x 6 clients, 6 sessions, latent session scores: no item noise) in which the
alliance has **no** effect on the next session's symptoms (``within = 0``, ``reverse = 0``),
but three things that make naive estimators reject:

* symptom autoregression (``symptom_autoregression = 0.5``) and alliance and symptom
  innovations correlated within a session (``residual_correlation = -0.5``);
* a time trend in both series (the default alliance growth and symptom slope);
* a between-client correlation: clients with a higher alliance improve faster
  (``between_client = -1.0`` PHQ-9 points per session per item-mean point).

``within_between`` is fitted with its default method (the dynamic panel model from 3
starting points; ``fit_indices=False`` only skips the chi-square, which leaves the
estimate unchanged). The type-I error rate at alpha = .05 is reported with a Wilson 95% CI.

Run: ``python benchmarks/sim_null_within.py --reps 400`` (writes
``benchmarks/results/sim_null_within.json``; the write-up is
``benchmarks/results/sim_null_within.md``). joblib with ``--jobs 1`` by default.
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
    "between_client": -1.0,
    "reflection_effect": 0.0,
    "residual_correlation": -0.5,
    "symptom_autoregression": 0.5,
    "growth_sd": 0.0,
    "prior_negative_growth": 0.0,
    "symptom_slope_sd": 0.0,
    "alliance_residual_sd": 0.4,
}
DESIGN = {"n_therapists": 20, "clients_per_therapist": 6, "n_sessions": 6}


def one(seed: int, effects: dict | None = None, options: dict | None = None) -> dict:
    study = simulate_study(
        DESIGN["n_therapists"],
        DESIGN["clients_per_therapist"],
        DESIGN["n_sessions"],
        effects=EFFECTS if effects is None else effects,
        seed=seed,
        latent=True,
    )
    lat = study.truth["latent"]
    lat = lat[lat["attended"]].rename(columns={"alliance": "wai", "symptoms": "phq9"})
    fit = within_between(lat, alliance="wai", outcome="phq9", fit_indices=False, **(options or {}))
    row = fit.params.iloc[0]
    return {
        "seed": seed,
        "estimate": float(row["estimate"]),
        "se": float(row["se"]),
        "p": float(row["p"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "converged": bool(fit.converged),
        "trends_dropped": "trends dropped" in fit.model,
    }


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summary(rows: list[dict], truth: float = 0.0) -> dict:
    """Rejection rate at .05 with its Wilson 95% CI; bias (with its Monte Carlo SE), the
    estimates' SD, the mean SE and the coverage of the 95% CI of the true path."""
    n = len(rows)
    k = sum(r["p"] < 0.05 for r in rows)
    lo, hi = wilson(k, n)
    est = [r["estimate"] for r in rows]
    mean = sum(est) / n
    sd = math.sqrt(sum((e - mean) ** 2 for e in est) / (n - 1))
    out = {
        "reps": n,
        "truth": truth,
        "rejections": k,
        "rate": k / n,
        "wilson_95": [round(lo, 4), round(hi, 4)],
        "mean_estimate": mean,
        "bias": mean - truth,
        "bias_mcse": sd / math.sqrt(n),
        "sd_estimate": sd,
        "mean_se": sum(r["se"] for r in rows) / n,
        "not_converged": sum(not r["converged"] for r in rows),
        "trends_dropped": sum(bool(r.get("trends_dropped")) for r in rows),
    }
    if all("ci_low" in r for r in rows):
        c = sum(r["ci_low"] <= truth <= r["ci_high"] for r in rows)
        out["coverage"] = c / n
        out["coverage_wilson_95"] = [round(v, 4) for v in wilson(c, n)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--between-client",
        type=float,
        default=EFFECTS["between_client"],
        help="the between-client confound (0 removes it: a diagnostic run)",
    )
    ap.add_argument(
        "--within",
        type=float,
        default=EFFECTS["within"],
        help="the true lagged alliance -> symptoms path (0: the null; -1.0: the recovery study)",
    )
    ap.add_argument(
        "--slopes",
        choices=("default", "true", "false"),
        default="default",
        help="within_between's slopes= (default: leave it at the default; false: the old "
        "default, fixed effects for levels only)",
    )
    ap.add_argument("--truth", type=float, default=None, help="for --summarize")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in the .partial.jsonl log and fit only the missing seeds",
    )
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "sim_null_within.json")
    )
    ap.add_argument(
        "--summarize",
        metavar="JSONL",
        nargs="+",
        help="summarize the rows logged by runs (several logs are pooled, each seed once)",
    )
    ap.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="fit seeds first-seed .. reps - 1 (to split a study over two processes)",
    )
    args = ap.parse_args()
    if args.summarize:
        by_seed = {}
        for name in args.summarize:
            for line in Path(name).read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    by_seed.setdefault(row["seed"], row)
        rows = [by_seed[k] for k in sorted(by_seed)]
        print(json.dumps(summary(rows, args.truth or 0.0), indent=1))
        return
    effects = {**EFFECTS, "between_client": args.between_client, "within": args.within}
    options = {} if args.slopes == "default" else {"slopes": args.slopes == "true"}
    t0 = time.time()
    rows = []
    partial = Path(args.out).with_suffix(".partial.jsonl")
    if args.resume and partial.exists():
        rows = [json.loads(line) for line in partial.read_text().splitlines() if line.strip()]
    done = {r["seed"] for r in rows}
    todo = [s for s in range(args.first_seed, args.reps) if s not in done]
    with partial.open("a" if args.resume else "w", encoding="utf-8") as log:  # as they come
        for row in Parallel(n_jobs=args.jobs, return_as="generator")(
            delayed(one)(s, effects, options) for s in todo
        ):
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
    rows = sorted(rows, key=lambda r: r["seed"])[: args.reps]
    out = {
        "reps": len(rows),
        "design": DESIGN,
        "effects": effects,
        "options": options,
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds_main": round(time.process_time(), 1),
        **summary(rows, args.within),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
