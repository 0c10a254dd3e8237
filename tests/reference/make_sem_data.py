"""Make the seeded panel data that the lavaan references in this folder are computed on.

Run from the repository root::

    python tests/reference/make_sem_data.py

then ``Rscript tests/reference/lavaan_reference.R`` to refresh ``lavaan_sem.json``.
The data are synthetic (no real clients): a small simulated study of session-level
alliance (WAI-SR item mean) and symptoms (PHQ-9), six sessions, with dropout, missed
sessions, single-session clients and a few missing scores. ``sem_panel_long.csv`` is what
the Python tests read; ``sem_panel_wide.csv`` (``y1..y6`` outcome, ``x1..x6`` alliance) is
what lavaan reads, made with ``alliance.io.long_to_wide``. ``sem_panel_therapists.csv``
(client, therapist) is the simulated study's nesting of clients in its 20 therapists, the
clusters of the cluster-robust (MLR) references (``lavaan_mlr_cluster.R``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alliance.io import long_to_wide
from alliance.simulate import simulate_study

HERE = Path(__file__).parent / "data"
N_SESSIONS = 6


def panel_long(seed: int = 11):
    """Long table: client, session, alliance, outcome."""
    study = simulate_study(
        n_therapists=20, clients_per_therapist=10, n_sessions=N_SESSIONS, seed=seed
    )
    long = study.sessions[["client", "session"]].copy()
    long["alliance"] = (study.sessions["wai_sr"] / 12).round(4)
    long["outcome"] = study.sessions["phq9"].round(4)
    rng = np.random.default_rng(seed)
    # a few missing scores, and eight clients who came only once
    long.loc[rng.random(len(long)) < 0.03, "alliance"] = np.nan
    long.loc[rng.random(len(long)) < 0.03, "outcome"] = np.nan
    once = rng.choice(long["client"].unique(), 8, replace=False)
    long = long[~(long["client"].isin(once) & (long["session"] > 1))]
    return long.reset_index(drop=True)


def panel_wide(long):
    wide = long_to_wide(long, ["outcome", "alliance"])
    out = wide[["client"]].copy()
    for t in range(1, N_SESSIONS + 1):
        out[f"y{t}"] = wide[f"outcome_{t}"]
    for t in range(1, N_SESSIONS + 1):
        out[f"x{t}"] = wide[f"alliance_{t}"]
    return out


def therapists(seed: int = 11):
    """Client -> therapist of the same simulated study (the clusters for MLR)."""
    study = simulate_study(
        n_therapists=20, clients_per_therapist=10, n_sessions=N_SESSIONS, seed=seed
    )
    return study.sessions[["client", "therapist"]].drop_duplicates().reset_index(drop=True)


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    long = panel_long()
    long.to_csv(HERE / "sem_panel_long.csv", index=False)
    panel_wide(long).to_csv(HERE / "sem_panel_wide.csv", index=False, na_rep="NA")
    therapists().to_csv(HERE / "sem_panel_therapists.csv", index=False)


if __name__ == "__main__":
    main()
