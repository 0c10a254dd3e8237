"""alliance.models.glmm against lme4's glmer (tests/reference/glmer_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models.glmm import glmm

REF = Path(__file__).parent / "reference"


def _load(name):
    ref = json.loads((REF / f"glmer_{name}.json").read_text())
    d = pd.read_csv(REF / ref["data"])
    for c in ("period", "YEAR"):
        if c in d:
            d[c] = d[c].astype(str)
    return ref, d


def test_cbpp_agq5_matches_glmer():
    ref, d = _load("cbpp_agq5")
    fit = glmm(ref["formula"], d, nagq=5)
    assert fit.params["term"].tolist() == ["(Intercept)", "period2", "period3", "period4"]
    np.testing.assert_allclose(fit.params["estimate"], ref["fixef"]["estimate"], atol=1e-4)
    np.testing.assert_allclose(fit.params["se"], ref["fixef"]["se"], rtol=1e-3)
    assert fit.loglik >= ref["loglik"] - 1e-6 * abs(ref["loglik"])
    np.testing.assert_allclose(fit.theta, ref["theta"], atol=1e-4)


def test_cbpp_laplace_close_to_glmer():
    # Known gap (see docs/glmm.md): the Laplace fit reaches a log-likelihood 3e-4 above
    # glmer's, with fixed effects within 1e-3 and SEs within 2%, not yet the 1e-4 / 1e-3 target.
    ref, d = _load("cbpp")
    fit = glmm(ref["formula"], d)
    np.testing.assert_allclose(fit.params["estimate"], ref["fixef"]["estimate"], atol=1e-3)
    np.testing.assert_allclose(fit.params["se"], ref["fixef"]["se"], rtol=2e-2)
    assert fit.loglik >= ref["loglik"] - 1e-6 * abs(ref["loglik"])
    assert fit.loglik - ref["loglik"] < 1e-3
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * 5)


def test_refusals():
    ref, d = _load("cbpp")
    with pytest.raises(ValueError, match="single scalar random effect"):
        glmm("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", d, nagq=3)
    with pytest.raises(ValueError, match="no random-effect term"):
        glmm("cbind(incidence, size - incidence) ~ period", d)
    sep = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "x": np.tile([0, 0, 0, 1, 1, 1], 10)})
    sep["y"] = sep["x"]
    with pytest.raises(ValueError, match="separation"):
        glmm("y ~ x + (1 | g)", sep)
