"""The latent therapist-mean engine against lavaan (two-level) and nlme (bivariate ML).

References: tests/reference/lavaan_therapist_latent.R -> lavaan_therapist_latent.json.
Tolerances: estimates rtol 1e-4 (lavaan stops at its own tolerance; our log-likelihood is
never below lavaan's), observed-information SEs rtol 1e-3, log-likelihood 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models._latent_means import fit_latent_means

REF = Path(__file__).parent / "reference"
DATA = json.loads((REF / "lavaan_therapist_latent.json").read_text())


def _slopes(s):
    return np.linalg.solve(s[1:, 1:], s[1:, 0])


@pytest.mark.parametrize("name", ["demo", "small"])
def test_saturated_two_level_matches_lavaan(name):
    d = pd.read_csv(REF / "data" / f"therapist_{name}.csv")
    fit = fit_latent_means(d[["end", "baseline", "alliance"]].to_numpy(), d["therapist"])
    ref = DATA[name]["observed"]
    assert fit.loglik >= ref["loglik"] - 1e-8
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    est, cov = fit.delta(lambda mu, g, sw, sb: np.r_[_slopes(sw), _slopes(sb)])
    se = np.sqrt(np.diag(cov))
    keys = ["baseline_client", "alliance_client", "baseline_therapist", "alliance_therapist"]
    for i, key in enumerate(keys):
        assert est[i] == pytest.approx(ref[key]["est"], rel=1e-4), key
        assert se[i] == pytest.approx(ref[key]["se"], rel=1e-3), key


def test_baseline_covariate_model_matches_nlme():
    d = pd.read_csv(REF / "data" / "therapist_small.csv")
    fit = fit_latent_means(d[["end", "alliance"]].to_numpy(), d["therapist"], d[["baseline"]])
    ref = DATA["small_conditional"]
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert not fit.singular
    assert np.allclose(fit.mu, ref["mu"], rtol=1e-4)
    assert np.allclose(fit.gamma.ravel(), ref["gamma"], rtol=1e-4, atol=1e-6)
    assert np.allclose(fit.sigma_b, ref["sigma_b"], rtol=1e-4)
    assert np.allclose(fit.sigma_w, ref["sigma_w"], rtol=1e-4)
    assert _slopes(fit.sigma_b)[0] == pytest.approx(ref["alliance_therapist"], rel=1e-4)
    assert _slopes(fit.sigma_w)[0] == pytest.approx(ref["alliance_client"], rel=1e-4)
