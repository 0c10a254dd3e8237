"""Write the sessions and model frames of the dropout GLMM reference (for R's glmer).

Run from the repository root: python tests/reference/make_dropout_glmm_data.py
Then: Rscript tests/reference/dropout_glmm_reference.R

Sessions come from :func:`alliance.simulate.simulate_study` without its own dropout; dropout
is planted here by a discrete-time hazard that depends on the session's alliance and on a
therapist random intercept (SD 0.8 on the logit scale), so the therapist variance of the
reference fits is not at its boundary. The model frames are those of
``dropout_model(..., engine="glmm")`` (the R script fits glmer to them). The bundled demo is
not used (it is regenerated independently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import alliance

HERE = Path(__file__).parent


def sessions() -> pd.DataFrame:
    study = alliance.simulate.simulate_study(
        24, 10, 12, n_sites=1, seed=1819, effects={"dropout_base": -30.0}
    )
    s = study.sessions[["client", "therapist", "session", "wai_sr"]].merge(
        study.clients[["client", "prior_negative_therapy"]], on="client", how="left"
    )
    s["prior_negative_therapy"] = s["prior_negative_therapy"].astype(int)
    s = s.sort_values(["client", "session"]).reset_index(drop=True)
    rng = np.random.default_rng(1819)
    ther = pd.factorize(s["therapist"])[0]
    u = rng.normal(0, 0.8, ther.max() + 1)
    z = (s["wai_sr"] - s["wai_sr"].mean()) / s["wai_sr"].std()
    eta = -3.0 - 0.6 * z.fillna(0) + 0.4 * s["prior_negative_therapy"] + u[ther]
    leave = rng.random(len(s)) < 1 / (1 + np.exp(-eta.to_numpy()))
    leave &= s["session"].to_numpy() < s["session"].max()
    # a client's rows end at the first session after which they leave
    gone = (
        pd.Series(leave, index=s.index)
        .groupby(s["client"])
        .transform(lambda v: v.shift(1, fill_value=False).cummax())
    )
    return s[~gone.to_numpy()].reset_index(drop=True)


def main() -> None:
    s = sessions()
    s.to_csv(HERE / "data" / "dropout_glmm_sessions.csv", index=False)
    therapist = s[["client", "therapist"]].drop_duplicates()
    for method, name in (("logistic", "logistic"), ("discrete_time", "person_period")):
        fit = alliance.models.dropout_model(
            s,
            alliance="wai_sr",
            method=method,
            covariates=["prior_negative_therapy"],
            engine="glmm",
        )
        table = fit.data.merge(therapist, on="client", how="left")
        table.to_csv(HERE / "data" / f"dropout_glmm_{name}.csv", index=False)


if __name__ == "__main__":
    main()
