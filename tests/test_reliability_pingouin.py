"""A second reference: pingouin's alpha and ICC agree with ours on the demo data.

psych (tests/test_reliability.py) is the primary reference; pingouin is the Python
implementation most users know, so disagreement with it would need explaining.
"""

from __future__ import annotations

import numpy as np
import pingouin as pg
import pytest

import alliance

RTOL = 1e-10  # same formulas, double precision


@pytest.fixture(scope="module")
def sessions():
    return alliance.datasets.load_dataset("demo").sessions


def test_alpha_matches_pingouin(sessions):
    items = alliance.instruments.get("wai_sr").items
    complete = sessions.dropna(subset=items)
    ours = alliance.reliability.alpha(complete, items)["alpha"].iloc[0]
    theirs, _ = pg.cronbach_alpha(complete[items])
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)


def test_icc_matches_pingouin(sessions):
    wide = (
        sessions[sessions["session"] <= 4]
        .pivot(index="client", columns="session", values="wai_sr")
        .dropna()
    )
    wide.columns = [f"s{c}" for c in wide.columns]
    ours = alliance.reliability.icc(wide).set_index("type")
    long = wide.reset_index().melt(id_vars="client", var_name="rater", value_name="score")
    theirs = pg.intraclass_corr(long, targets="client", raters="rater", ratings="score")
    theirs = theirs.set_index("Type")
    # pingouin names the Shrout & Fleiss forms after McGraw & Wong (1996)
    names = {
        "ICC1": "ICC(1,1)",
        "ICC2": "ICC(A,1)",
        "ICC3": "ICC(C,1)",
        "ICC1k": "ICC(1,k)",
        "ICC2k": "ICC(A,k)",
        "ICC3k": "ICC(C,k)",
    }
    for form, theirs_name in names.items():
        np.testing.assert_allclose(ours.loc[form, "icc"], theirs.loc[theirs_name, "ICC"], rtol=RTOL)
        np.testing.assert_allclose(ours.loc[form, "f"], theirs.loc[theirs_name, "F"], rtol=RTOL)
