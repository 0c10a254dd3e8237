"""Write the tables the dropout models fit on the demo study, for the R reference.

The ruptures are the demo's self-reported events (``ruptures=study.events``): with the
default prospective dip rule only 4 clients of the demo have a rupture in sessions 1-3 and
none of them dropped out, a quasi-complete separation where the logistic MLE does not
exist (R and alliance stop at different points of the ridge), so no reference can be made
from it.

Run from the repository root: python tests/reference/make_dropout_data.py
Then: Rscript tests/reference/sandwich_dropout.R
"""

from __future__ import annotations

from pathlib import Path

import alliance

HERE = Path(__file__).parent


def main() -> None:
    study = alliance.datasets.load_dataset("demo")
    therapist = study.clients[["client", "therapist"]]
    for method, name in (("logistic", "logistic"), ("discrete_time", "person_period")):
        fit = alliance.models.dropout_model(
            study, alliance="wai_sr", method=method, ruptures=study.events
        )
        table = fit.data.merge(therapist, on="client", how="left")
        table.drop(columns=["client"]).to_csv(HERE / "data" / f"dropout_{name}.csv", index=False)


if __name__ == "__main__":
    main()
