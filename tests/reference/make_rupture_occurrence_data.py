"""Write the session table the rupture-occurrence reference is fitted to (for R's glmer).

Run from the repository root: python tests/reference/make_rupture_occurrence_data.py
Then: Rscript tests/reference/rupture_occurrence_reference.R

The sessions, clients, phases and technique counts come from
:func:`alliance.simulate.simulate_study`; the rupture onsets are drawn here from a logistic
model with client and therapist random intercepts (so the reference fit is not singular).
The bundled demo is not used (it is regenerated independently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import alliance

HERE = Path(__file__).parent


def main() -> None:
    study = alliance.simulate.simulate_study(20, 8, 12, n_sites=1, seed=1818)
    s = study.sessions.merge(
        study.clients[["client", "prior_negative_therapy"]], on="client", how="left"
    )
    rng = np.random.default_rng(1818)
    clients = pd.factorize(s["client"])[0]
    therapists = pd.factorize(s["therapist"])[0]
    u_c = rng.normal(0, 0.7, clients.max() + 1)
    u_t = rng.normal(0, 0.5, therapists.max() + 1)
    phase = s["phase"].astype(str)
    eta = (
        -2.2
        + 0.6 * s["prior_negative_therapy"].astype(float)
        + 0.4 * (phase == "assessment")
        + 0.2 * (phase == "treatment")
        + 0.3 * s["confrontation"]
        - 0.05 * s["reflection"]
        - 0.04 * s["session"]
        + u_c[clients]
        + u_t[therapists]
    )
    s["rupture"] = rng.binomial(1, 1 / (1 + np.exp(-eta.to_numpy())))
    keep = ["client", "therapist", "session", "phase", "paraphrasing", "reflection"]
    keep += ["confrontation", "prior_negative_therapy", "rupture"]
    out = s[keep].copy()
    out["prior_negative_therapy"] = out["prior_negative_therapy"].astype(int)
    out.to_csv(HERE / "data" / "rupture_occurrence.csv", index=False)


if __name__ == "__main__":
    main()
