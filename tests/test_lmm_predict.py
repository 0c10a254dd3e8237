"""LmmResult.predict(interval=) against lme4 + emmeans on sleepstudy
(tests/reference/lmm_predict_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import lmm

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def ref():
    r = json.loads((REF / "lmm_predict.json").read_text())
    r["frame"] = pd.read_csv(REF / r["data"])
    r["new"] = pd.DataFrame({"Days": r["days"]})
    return r


def _check(out, want, df=True):
    # lmm tolerances: estimates 1e-5, SEs 1e-4 (relative), df 1e-3
    np.testing.assert_allclose(out["estimate"], want["estimate"], rtol=1e-7, atol=1e-5)
    np.testing.assert_allclose(out["se"], want["se"], rtol=1e-4)
    np.testing.assert_allclose(out["lower"], want["lower"], rtol=1e-5)
    np.testing.assert_allclose(out["upper"], want["upper"], rtol=1e-5)
    if df:
        np.testing.assert_allclose(out["df"], want["df"], rtol=1e-3)


def test_confidence_interval_matches_emmeans_satterthwaite(ref):
    fit = lmm(ref["formula"], ref["frame"])
    out = fit.predict(ref["new"], interval="confidence")
    assert out.columns.tolist() == ["estimate", "se", "df", "lower", "upper"]
    assert out.index.equals(ref["new"].index)
    _check(out, ref["confidence_satterthwaite"])
    # the point prediction is the population one, as predict(random=False)
    np.testing.assert_allclose(out["estimate"], fit.predict(ref["new"], random=False))


def test_confidence_interval_matches_emmeans_kenward_roger(ref):
    fit = lmm(ref["formula"], ref["frame"], ddf="kenward-roger")
    _check(fit.predict(ref["new"], interval="confidence"), ref["confidence_kenward_roger"])
    # and on request from a Satterthwaite fit
    fit2 = lmm(ref["formula"], ref["frame"])
    out = fit2.predict(ref["new"], interval="confidence", ddf="kenward-roger")
    _check(out, ref["confidence_kenward_roger"])


def test_prediction_interval_matches_the_x_v_x_formula(ref):
    fit = lmm(ref["formula"], ref["frame"])
    out = fit.predict(ref["new"], interval="prediction")
    _check(out, ref["prediction"], df=False)
    assert np.isinf(out["df"]).all()
    fit2 = lmm(ref["formula_ml"], ref["frame"], reml=False)
    _check(fit2.predict(ref["new"], interval="prediction"), ref["prediction_ml"], df=False)


def test_level_and_errors(ref):
    fit = lmm(ref["formula"], ref["frame"])
    wide = fit.predict(ref["new"], interval="confidence", level=0.99)
    narrow = fit.predict(ref["new"], interval="confidence")
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    with pytest.raises(ValueError, match="interval must be"):
        fit.predict(ref["new"], interval="credible")
    with pytest.raises(ValueError, match="random=False"):
        fit.predict(ref["frame"], interval="confidence", random=True)
    with pytest.raises(ValueError, match="level must be"):
        fit.predict(ref["new"], interval="confidence", level=95)
    with pytest.raises(KeyError, match="Days"):
        fit.predict(pd.DataFrame({"days": [1.0]}), interval="confidence")
    # without interval: unchanged behaviour (a Series with the conditional modes)
    assert isinstance(fit.predict(), pd.Series)
    assert len(fit.predict(interval="confidence")) == fit.nobs
