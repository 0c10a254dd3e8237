"""alliance.reliability.g_study against lme4 and psych (tests/reference/gstudy_reference.R).

Tolerances: variance components 1e-5 relative (both optimizers stop at tight tolerances;
the criterion is flat near the optimum, so components agree to about 1e-6), the REML
log-likelihood 1e-6, and G and phi (functions of the components) 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.observer import coder_reliability
from alliance.reliability import g_study
from alliance.simulate import simulate_study

REF = Path(__file__).parent / "reference"
GS = json.loads((REF / "gstudy_reference.json").read_text())


def test_crossed_design_matches_lme4_and_psych_iccs():
    data = pd.read_csv(REF / "data" / "glmer_gstudy.csv")
    g = g_study(data, score="rating", object="session", facets=["coder"], n=[1, 8])
    ref = GS["crossed"]
    comps = g.components.set_index("component")
    for grp, v in zip(ref["grp"], ref["vcov"], strict=True):
        assert comps.loc[grp, "variance"] == pytest.approx(v, rel=1e-5), grp
    assert comps["share"].sum() == pytest.approx(1.0)
    assert comps.loc["session", "role"] == "universe"
    assert comps.loc["coder", "role"] == "absolute"
    one, eight = g.coefficients.iloc[0], g.coefficients.iloc[1]
    # a balanced one-facet design: G and phi are Shrout & Fleiss's ICC(3,k), ICC(2,k)
    assert one["g"] == pytest.approx(ref["ICC3"], abs=1e-5)
    assert one["phi"] == pytest.approx(ref["ICC2"], abs=1e-5)
    assert eight["g"] == pytest.approx(ref["ICC3k"], abs=1e-5)
    assert eight["phi"] == pytest.approx(ref["ICC2k"], abs=1e-5)
    assert g.n_observed == {"coder": 8.0}
    assert g.coefficients.loc[0, "sem_absolute"] ** 2 == pytest.approx(
        comps.loc["coder", "variance"] + comps.loc["Residual", "variance"]
    )


def test_sessions_nested_in_clients_crossed_with_coders_match_lme4():
    ref = GS["nested"]
    data = pd.read_csv(REF / ref["data"])
    g = g_study(
        data,
        score="rating",
        object="session",
        facets=["coder"],
        nested={"session": "client"},
        n=[2, 3],
    )
    comps = g.components.set_index("component")
    for grp, v in zip(ref["grp"], ref["vcov"], strict=True):
        assert comps.loc[grp, "variance"] == pytest.approx(v, rel=1e-5), grp
    assert g.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert comps.loc["client", "role"] == comps.loc["client:session", "role"] == "universe"
    assert comps.loc["client:coder", "role"] == "relative"
    for row, key in zip(g.coefficients.itertuples(), ["session_n2", "session_n3"], strict=True):
        assert row.g == pytest.approx(ref[key]["g"], abs=1e-5)
        assert row.phi == pytest.approx(ref[key]["phi"], abs=1e-5)
    # the same components with the client as the object: sessions become a facet
    h = g_study(
        data,
        score="rating",
        object="client",
        facets=["session", "coder"],
        nested={"session": "client"},
    )
    assert h.n_observed == {"session": 4.0, "coder": 3.0}
    assert h.components.set_index("component").loc["client:session", "role"] == "relative"
    d = h.d_study({"session": [4, 8], "coder": [2, 1]}).set_index(["n_session", "n_coder"])
    for (ns, ni), key in (((4, 2), "client_s4_i2"), ((8, 1), "client_s8_i1")):
        assert d.loc[(ns, ni), "g"] == pytest.approx(ref[key]["g"], abs=1e-5)
        assert d.loc[(ns, ni), "phi"] == pytest.approx(ref[key]["phi"], abs=1e-5)
    # more coders never lower G or phi
    grid = h.d_study({"coder": [1, 2, 3, 4, 5]})
    assert grid["g"].is_monotonic_increasing and grid["phi"].is_monotonic_increasing


def test_ratings_of_noise_have_no_universe_score():
    rng = np.random.default_rng(3)
    data = pd.DataFrame(
        [(f"s{i}", f"k{j}") for i in range(60) for j in range(3)], columns=["session", "coder"]
    )
    data["rating"] = rng.normal(size=len(data))
    g = g_study(data, score="rating", object="session", facets=["coder"])
    assert g.coefficients.loc[0, "g"] < 0.25


def test_bad_input_is_refused_with_a_fix():
    data = pd.read_csv(REF / "data" / "gstudy_nested.csv")
    unique = data.assign(session=data["client"] + "_" + data["session"].astype(str))
    with pytest.raises(ValueError, match=r"nested=\{'session': 'client'\}"):
        g_study(unique, score="rating", object="client", facets=["session", "coder"])
    with pytest.raises(ValueError, match="non-numeric"):
        g_study(data.assign(rating="x"), score="rating", object="session", facets=["coder"])
    with pytest.raises(KeyError):
        g_study(data, score="rating", object="session", facets=["rater"])
    with pytest.raises(ValueError, match="nested in a facet"):
        g_study(
            data, score="rating", object="session", facets=["coder"], nested={"session": "coder"}
        )
    g = g_study(
        data, score="rating", object="session", facets=["coder"], nested={"session": "client"}
    )
    with pytest.raises(KeyError, match="not facets"):
        g.d_study({"rater": 2})
    # a missing score is counted, not dropped silently
    gap = data.copy()
    gap.loc[:4, "rating"] = np.nan
    g = g_study(
        gap, score="rating", object="session", facets=["coder"], nested={"session": "client"}
    )
    assert g.excluded["n_rows"].sum() == 5 and g.nobs == len(data) - 5


def test_observer_g_rows_agree_with_the_balanced_iccs():
    """Two coders coding every session: phi(1 coder) is ICC(2,1) (balanced), within .005."""
    study = simulate_study(6, 4, 8, n_sites=1, seed=11, observer=True)
    rel = coder_reliability(study.segments, unit="session", g_coders=1)
    rel = rel.set_index(["marker", "statistic"])["estimate"]
    for marker in ("withdrawal", "rupture"):
        assert abs(rel[(marker, "phi")] - rel[(marker, "ICC2")]) < 0.005, marker
        assert rel[(marker, "G")] >= rel[(marker, "phi")] - 1e-9
    with pytest.raises(ValueError, match="g_coders"):
        coder_reliability(study.segments, unit="session", g_coders=0)
