"""dropout_model(engine="glmm"): a therapist random intercept instead of sandwich SEs.

The reference is lme4's glmer on the model frames of an exported simulation with a planted
therapist effect (tests/reference/make_dropout_glmm_data.py, dropout_glmm_reference.R).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.models import dropout_model

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def reference():
    ref = json.loads((REF / "glmer_dropout.json").read_text())
    sessions = pd.read_csv(REF / ref["sessions"], dtype={"client": str, "therapist": str})
    return ref, sessions


def _fit(sessions, method, **kw):
    return dropout_model(
        sessions,
        alliance="wai_sr",
        method=method,
        covariates=["prior_negative_therapy"],
        engine="glmm",
        **kw,
    )


@pytest.mark.parametrize("method", ["logistic", "discrete_time"])
def test_matches_glmer(reference, method):
    ref, sessions = reference
    r = ref[method]
    fit = _fit(sessions, method)
    assert fit.engine == "glmm" and fit.glm is None
    assert isinstance(fit.mixed_model, alliance.models.GlmmResult)
    assert len(fit.params) == len(r["fixef"]["term"])
    # glmm tolerances: fixed effects 1e-4, SEs 1e-3 (glmer's finite-difference Hessian)
    np.testing.assert_allclose(fit.params["estimate"], r["fixef"]["estimate"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(fit.params["se"], r["fixef"]["se"], rtol=1e-3)
    np.testing.assert_allclose(fit.params["p"], r["fixef"]["p"], rtol=5e-3, atol=1e-6)
    vc = fit.variance_components
    assert vc["group"].tolist() == ["therapist"]
    assert vc["variance"].iloc[0] == pytest.approx(r["varcorr"]["vcov"], rel=1e-3)
    assert fit.loglik >= r["loglik"] - 1e-6 * abs(r["loglik"])
    assert fit.aic == pytest.approx(r["aic"], abs=1e-3)
    assert fit.nobs == r["nobs"] and fit.n_clusters == r["ngroups"]["therapist"]
    assert fit.converged and fit.singular is False
    np.testing.assert_allclose(fit.params["odds_ratio"], np.exp(fit.params["estimate"]))
    assert any("random intercept for 'therapist'" in n for n in fit.notes)


def test_same_model_frame_and_point_estimates_differ_from_the_marginal_glm(reference):
    _ref, sessions = reference
    glmm_fit = _fit(sessions, "logistic")
    glm_fit = dropout_model(
        sessions, alliance="wai_sr", method="logistic", covariates=["prior_negative_therapy"]
    )
    pd.testing.assert_frame_equal(glmm_fit.data, glm_fit.data)
    assert glmm_fit.params["term"].tolist() == glm_fit.params["term"].tolist()
    # conditional log odds are larger in size than the marginal ones with a therapist variance
    assert abs(glmm_fit.params["estimate"].iloc[1]) > abs(glm_fit.params["estimate"].iloc[1])
    assert glm_fit.engine == "glm" and glm_fit.mixed_model is None


def test_engine_errors(reference):
    _ref, sessions = reference
    with pytest.raises(ValueError, match="engine='gee' is not known"):
        dropout_model(sessions, alliance="wai_sr", engine="gee")
    with pytest.raises(ValueError, match="needs therapist="):
        dropout_model(sessions, alliance="wai_sr", therapist=None, engine="glmm")
