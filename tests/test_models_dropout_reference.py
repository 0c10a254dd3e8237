"""Dropout models against R: glm(binomial) with sandwich::vcovCL(type = "HC1") by therapist.

Reference values: tests/reference/sandwich_dropout.R (run on the tables that
tests/reference/make_dropout_data.py writes from the demo study).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alliance

REF = json.loads((Path(__file__).parent / "reference" / "sandwich_dropout.json").read_text())
RTOL = 1e-6  # both converge to ~1e-14; the CSV round trip keeps 17 digits


@pytest.mark.parametrize(
    ("method", "key"), [("logistic", "logistic"), ("discrete_time", "person_period")]
)
def test_dropout_matches_glm_with_sandwich(method, key):
    study = alliance.datasets.load_dataset("demo")
    # the self-reported events, as make_dropout_data.py (the default rule separates)
    fit = alliance.models.dropout_model(
        study, alliance="wai_sr", method=method, ruptures=study.events
    )
    ref = REF[key]
    assert fit.nobs == ref["n"]
    np.testing.assert_allclose(fit.params["estimate"].to_numpy(), ref["estimate"], rtol=RTOL)
    np.testing.assert_allclose(fit.params["se"].to_numpy(), ref["se"], rtol=RTOL)
    np.testing.assert_allclose(fit.loglik, ref["loglik"], rtol=RTOL)
