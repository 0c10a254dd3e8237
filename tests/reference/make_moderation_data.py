"""Make the seeded data that ``moderation_reference.R`` computes its references on.

Run from the repository root::

    PYTHONPATH=src python tests/reference/make_moderation_data.py
    Rscript tests/reference/moderation_reference.R

Two synthetic data sets (no real clients):

* ``moderation_panel_long.csv`` / ``moderation_panel_wide.csv``: six sessions of alliance
  (WAI-SR item mean) and PHQ-9 from ``alliance.simulate.simulate_study`` with the client's
  ``prior_negative_therapy`` as the group, for the multi-group dynamic panel model
  (lavaan ``group=``; the wide file has ``y1..y6`` outcome and ``x1..x6`` alliance).
* ``moderation_mlm_long.csv``: the cross-level design of ``benchmarks/sim_moderation.py``
  (continuous client moderator ``severity``, a true random slope), and
  ``moderation_mlm_pairs.csv``: the session pairs ``moderation(model="within_between",
  method="mlm")`` builds from it (detrended within part, client mean, lagged outcome), which
  lme4 is fitted to. The tests check that the pairs are rebuilt identically.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from alliance.io import long_to_wide
from alliance.models import moderation
from alliance.simulate import simulate_study

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "data"
N_SESSIONS = 6


def _sim_moderation():
    spec = importlib.util.spec_from_file_location(
        "sim_moderation", ROOT / "benchmarks" / "sim_moderation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panel_long(seed: int = 5):
    study = simulate_study(
        n_therapists=25, clients_per_therapist=12, n_sessions=N_SESSIONS, seed=seed
    )
    long = study.sessions[["client", "session"]].copy()
    long["alliance"] = (study.sessions["wai_sr"] / 12).round(4)
    long["outcome"] = study.sessions["phq9"].round(4)
    groups = study.clients.set_index("client")["prior_negative_therapy"]
    long["prior_negative_therapy"] = long["client"].map(groups).astype(int)
    return long.reset_index(drop=True)


def panel_wide(long):
    wide = long_to_wide(long, ["outcome", "alliance"])
    out = wide[["client"]].copy()
    out["group"] = out["client"].map(long.groupby("client")["prior_negative_therapy"].first())
    for t in range(1, N_SESSIONS + 1):
        out[f"y{t}"] = wide[f"outcome_{t}"]
    for t in range(1, N_SESSIONS + 1):
        out[f"x{t}"] = wide[f"alliance_{t}"]
    return out


def mlm_long(seed: int = 3):
    return _sim_moderation().simulate(np.random.default_rng(seed), n_clients=80, n_sessions=7)


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    long = panel_long()
    long.to_csv(HERE / "moderation_panel_long.csv", index=False)
    panel_wide(long).to_csv(HERE / "moderation_panel_wide.csv", index=False, na_rep="NA")
    mlm = mlm_long()
    mlm.to_csv(HERE / "moderation_mlm_long.csv", index=False)
    fit = moderation(
        mlm, "severity", alliance="alliance", outcome="outcome", model="within_between"
    )
    fit.pairs.to_csv(HERE / "moderation_mlm_pairs.csv", index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
