"""Make the bundled synthetic meta-analysis dataset ``meta_alliance_outcome.csv``.

SYNTHETIC DATA. The studies, authors and numbers are invented. The generator is
calibrated only to the published summary of Flückiger, Del Re, Wampold & Horvath
(2018): a pooled alliance-outcome correlation near r = .28 with moderate
between-study heterogeneity. Moderator effects (rater, measure, treatment) are
small, made-up values so that meta-regression has something to find.

Run from the repository root to regenerate the file (same seed, same numbers)::

    python src/alliance/datasets/make_meta_example.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20180
K = 60
#: Pooled correlation on Fisher's z scale for client-rated WAI studies of CBT.
Z_BASE = float(np.arctanh(0.28))
#: Between-study SD on Fisher's z scale (tau); gives I^2 of roughly 50-60 % here.
TAU = 0.10
RATER = {"client": 0.0, "therapist": -0.05, "observer": 0.03}
MEASURE = {"WAI": 0.0, "CALPAS": 0.01, "HAq": -0.02, "other": -0.03}
TREATMENT = {"CBT": 0.0, "psychodynamic": 0.01, "humanistic": 0.02, "other": -0.01}


def make(seed: int = SEED, k: int = K) -> pd.DataFrame:
    """Return the synthetic study-level table (one row per study)."""
    rng = np.random.default_rng(seed)
    rater = rng.choice(list(RATER), size=k, p=[0.55, 0.2, 0.25])
    measure = rng.choice(list(MEASURE), size=k, p=[0.5, 0.15, 0.15, 0.2])
    treatment = rng.choice(list(TREATMENT), size=k, p=[0.4, 0.25, 0.15, 0.2])
    year = rng.integers(1985, 2017, size=k)
    n = np.clip(np.round(np.exp(rng.normal(np.log(70), 0.8, size=k))), 12, 1500).astype(int)
    theta = (
        Z_BASE
        + np.array([RATER[x] for x in rater])
        + np.array([MEASURE[x] for x in measure])
        + np.array([TREATMENT[x] for x in treatment])
        + rng.normal(0.0, TAU, size=k)
    )
    z = rng.normal(theta, 1.0 / np.sqrt(n - 3))
    r = np.round(np.tanh(z), 3)
    frame = pd.DataFrame(
        {
            "study": [f"Study {i + 1:02d}" for i in range(k)],
            "year": year,
            "n": n,
            "r": r,
            "rater": rater,
            "measure": measure,
            "treatment": treatment,
        }
    )
    return frame.sort_values(["year", "study"], kind="stable").reset_index(drop=True)


if __name__ == "__main__":
    out = Path(__file__).with_name("meta_alliance_outcome.csv")
    make().to_csv(out, index=False)
