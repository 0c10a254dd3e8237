"""Write tests/reference/data/nlme_mediation_stacked.csv: a stacked 1-1-1 mediation data set.

The data come from ``benchmarks/sim_mediation.py`` (60 clients x 8 sessions, random a and b
paths with a covariance, outcome residual SD twice the alliance's, the same-session confound
scenario ``CONFOUND``), stacked by
``alliance.models.mediation`` (``fit.stacked.model_frame()``): one alliance row and one outcome
row per session, ``dv`` the equation. ``nlme_varident.R`` fits it with nlme.

Run from the repository root: ``python tests/reference/make_mediation_data.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    spec = importlib.util.spec_from_file_location(
        "sim_mediation", ROOT / "benchmarks" / "sim_mediation.py"
    )
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    from alliance.models import mediation

    data = sim.simulate(60, 8, sim.CONFOUND, seed=11)
    fit = mediation(data, "reflection", detrend=False, n_mc=200, seed=1)
    frame = fit.stacked.model_frame().round(10)
    frame.to_csv(ROOT / "tests" / "reference" / "data" / "nlme_mediation_stacked.csv", index=False)


if __name__ == "__main__":
    main()
