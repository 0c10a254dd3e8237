"""Session-level (multilevel) RSA and the two-outcome APIM of alliance.dyad.

References: tests/reference/dyad_multilevel_reference.R (lme4 + lmerTest::contest for the
multilevel polynomial, nlme::lme with varIdent and corCompSymm for the two-outcome APIM),
on the CSVs it simulates. Tolerance 1e-5 relative (REML optima of two optimizers; achieved
about 1e-8 for the lmer fits and 2e-6 for nlme's SEs); the REML log-likelihood to 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance import dyad
from alliance.results import PARAM_COLUMNS

REF = Path(__file__).parent / "reference"
R = json.loads((REF / "dyad_multilevel_reference.json").read_text())


@pytest.fixture(scope="module")
def ml_sessions():
    return pd.read_csv(REF / "data" / "dyad_ml_sessions.csv")


@pytest.fixture(scope="module")
def two_outcome():
    return pd.read_csv(REF / "data" / "dyad_two_outcome.csv")


def close(ours, theirs, tol=1e-5):
    np.testing.assert_allclose(
        np.asarray(ours, float), np.asarray(theirs, float), rtol=tol, atol=tol
    )


@pytest.mark.parametrize("key, therapist", [("rsa_client", None), ("rsa_therapist", "therapist")])
def test_session_level_rsa_matches_lmer(ml_sessions, key, therapist):
    ref = R[key]
    fit = dyad.rsa(ml_sessions, x="x", y="y", outcome="z", therapist=therapist, unit="session")
    assert fit.unit == "session"
    assert fit.params.columns[:8].tolist() == PARAM_COLUMNS
    assert fit.centre == pytest.approx(ref["centre"], abs=1e-12)
    close(fit.params["estimate"], ref["estimate"])
    close(fit.params["se"], ref["se"])
    close(fit.params["df"], ref["df"], 1e-4)
    assert fit.mixed_model.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    for ours, name in ((fit.surface, "within"), (fit.surface_between, "between")):
        theirs = pd.DataFrame(ref[name]).set_index("term")
        assert ours.index.tolist() == ["a1", "a2", "a3", "a4", "a5"]
        close(ours["estimate"], theirs["estimate"])
        close(ours["se"], theirs["se"])
        close(ours["df"], theirs["df"], 1e-4)
    # the simulated within-client discrepancy effect (-0.8 (x - y)^2): a4 = -3.2 in truth
    assert fit.surface.loc["a4", "ci_low"] < -3.2 < fit.surface.loc["a4", "ci_high"]
    assert fit.n["sessions"] == len(ml_sessions) and fit.n["clients"] == 60


def test_session_level_rsa_refuses_client_level_input(ml_sessions):
    means = ml_sessions.groupby("client", as_index=False)[["x", "y", "z"]].mean()
    with pytest.raises(ValueError, match="unit='client'"):
        dyad.rsa(means, x="x", y="y", outcome="z", unit="session")
    with pytest.raises(ValueError, match="unit must be"):
        dyad.rsa(ml_sessions, x="x", y="y", outcome="z", unit="dyad")


def test_session_level_null_surface_is_flat():
    """No effect of either rating: no surface parameter is significant at .001."""
    rng = np.random.default_rng(8)
    rows = [(f"c{i:02d}", t) for i in range(40) for t in range(6)]
    d = pd.DataFrame(rows, columns=["client", "session"])
    d["x"] = rng.normal(4, 0.6, len(d))
    d["y"] = rng.normal(4, 0.6, len(d))
    d["z"] = rng.normal(0, 1, len(d)) + np.repeat(rng.normal(0, 1, 40), 6)
    fit = dyad.rsa(d, x="x", y="y", outcome="z", unit="session")
    assert (fit.surface["p"] > 0.001).all() and (fit.surface_between["p"] > 0.001).all()


def test_two_outcome_apim_matches_nlme(two_outcome):
    ref = R["apim2"]
    fit = dyad.apim(
        two_outcome,
        client_rating="wai_client",
        therapist_rating="wai_therapist",
        outcome="outcome_client",
        therapist_outcome="outcome_therapist",
    )
    # nlme's order: both intercepts, then the client outcome's slopes, then the therapist's
    order = [0, 2, 3, 4, 5, 1, 6, 7, 8, 9]
    close(fit.params["estimate"], np.asarray(ref["estimate"])[order])
    close(fit.params["se"], np.asarray(ref["se"])[order])
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    vc = fit.variance_components
    g = np.asarray(ref["therapist_cov"])
    close(vc["vcov"].iloc[:3], [g[0, 0], g[1, 1], g[0, 1]])
    close(vc["sdcor"].iloc[3:5], ref["residual_sd"])
    close(vc["sdcor"].iloc[5], ref["residual_cor"])
    assert fit.params["term"].iloc[1] == "outcome_client: wai_client within therapist"
    assert fit.params["df"].iloc[1] == 120 - 15 - 2 and fit.params["df"].iloc[2] == 15 - 3
    assert fit.nobs == 240 and fit.n["therapists"] == 15 and fit.converged
    # the simulated actor effects (1.0, 0.9) lie in their intervals
    p = fit.params.set_index("term")
    for term, truth in (
        ("outcome_client: wai_client within therapist", 1.0),
        ("outcome_therapist: wai_therapist within therapist", 0.9),
    ):
        assert p.loc[term, "ci_low"] < truth < p.loc[term, "ci_high"]


def test_two_outcome_apim_counts_missing_second_outcomes(two_outcome):
    gap = two_outcome.copy()
    gap.loc[:2, "outcome_therapist"] = np.nan
    fit = dyad.apim(
        gap,
        client_rating="wai_client",
        therapist_rating="wai_therapist",
        outcome="outcome_client",
        therapist_outcome="outcome_therapist",
    )
    assert fit.n["clients"] == 117
    assert fit.excluded["n_rows"].sum() == 3
