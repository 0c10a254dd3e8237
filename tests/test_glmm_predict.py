"""GlmmResult.predict against lme4 + emmeans on cbpp (tests/reference/glmm_predict_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import glmm

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def case():
    ref = json.loads((REF / "glmm_predict.json").read_text())
    d = pd.read_csv(REF / ref["data"], dtype={"herd": str, "period": str})
    fit = glmm(ref["formula"], d)
    new = pd.DataFrame({"period": ref["period"]})
    return ref, d, fit, new


@pytest.mark.parametrize("scale", ["link", "response"])
def test_matches_emmeans(case, scale):
    ref, _d, fit, new = case
    out = fit.predict(new, type=scale, interval="confidence")
    want = ref[scale]
    # glmm tolerances: estimates 1e-4, SEs 1e-3 (glmer's finite-difference Hessian)
    np.testing.assert_allclose(out["estimate"], want["estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["se"], want["se"], rtol=1e-3)
    np.testing.assert_allclose(out["lower"], want["lower"], rtol=1e-3)
    np.testing.assert_allclose(out["upper"], want["upper"], rtol=1e-3)
    assert out.index.equals(new.index) and np.isinf(out["df"]).all()


def test_fit_rows_series_and_errors(case):
    _ref, d, fit, new = case
    eta = fit.predict()
    assert len(eta) == fit.nobs and eta.index.equals(fit.rows)
    np.testing.assert_allclose(fit.predict(d), eta)
    mu = fit.predict(new, type="response")
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-fit.predict(new))))
    shifted = fit.predict(new, offset=np.ones(len(new)))
    np.testing.assert_allclose(shifted, fit.predict(new) + 1)
    with pytest.raises(ValueError, match="type must be"):
        fit.predict(new, type="probability")
    with pytest.raises(ValueError, match="interval must be"):
        fit.predict(new, interval="prediction")
    with pytest.raises(KeyError, match="period"):
        fit.predict(pd.DataFrame({"Period": ["1"]}))
    with pytest.raises(ValueError, match="missing values"):
        fit.predict(pd.DataFrame({"period": ["1", None]}))
