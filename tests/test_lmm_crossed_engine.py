"""The crossed engine's fast paths agree with its reference paths.

* the analytic gradient (scalar terms, dense Schur complement) against central differences
  of the deviance, REML and ML, inside and at the boundary (relative 1e-5: the differences'
  own error at step 1e-6);
* the sparse Schur complement (SuperLU) against the dense Cholesky: the same deviance to 1e-9
  relative and the same fixed and random effects to 1e-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import _lmm_crossed as crossed
from alliance.models._lmm_core import LevelSpec

DATA = Path(__file__).parent / "reference" / "data" / "lme4_insteval.csv"


def _structure(columns=("s", "d", "dept")):
    data = pd.read_csv(DATA, dtype={"s": str, "d": str, "dept": str})
    levels = []
    for col in columns:
        codes = pd.factorize(data[col])[0]
        levels.append(LevelSpec(col, codes, np.ones((len(data), 1)), np.zeros((1, 1), int)))
    x = np.column_stack([np.ones(len(data)), data["service"].to_numpy(float)])
    return data["y"].to_numpy(float), x, levels


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("theta", [[0.3, 0.45, 0.07], [1e-3, 0.45, 0.0], [1.2, 0.02, 0.5]])
def test_analytic_gradient_matches_central_differences(reml, theta):
    st = crossed.build_crossed(*_structure())
    dev = crossed.CrossedDeviance(st, reml=reml)
    assert dev._analytic()
    theta = np.array(theta)
    value, grad = dev.deviance_and_gradient(theta)
    assert value == pytest.approx(dev.deviance(theta), rel=1e-12)
    h = 1e-6
    fd = [(dev.deviance(theta + h * e) - dev.deviance(theta - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-4)
    _, g_ld, g_r2, _, _ = dev.varpar_parts(theta)
    nr = st.n - st.p if reml else st.n
    np.testing.assert_allclose(g_ld + nr / dev.factor(theta).r2 * g_r2, grad, rtol=1e-10)


def test_sparse_schur_complement_matches_dense(monkeypatch):
    y, x, levels = _structure()
    dense = crossed.build_crossed(y, x, levels)
    assert not dense.sparse_schur
    monkeypatch.setattr(crossed, "SPARSE_MIN", 10)
    monkeypatch.setattr(crossed, "SPARSE_DENSITY", 1.0)
    sparse_st = crossed.build_crossed(y, x, levels)
    assert sparse_st.sparse_schur
    theta = np.array([0.4, 0.5, 0.1])
    for reml in (True, False):
        a = crossed.CrossedDeviance(dense, reml=reml)
        b = crossed.CrossedDeviance(sparse_st, reml=reml)
        assert b.deviance(theta) == pytest.approx(a.deviance(theta), rel=1e-9)
        # the ordering found at the first evaluation is reused at the next
        assert b.deviance(theta * 1.5) == pytest.approx(a.deviance(theta * 1.5), rel=1e-9)
        beta_a, u_a = a.solve(a.factor(theta))
        beta_b, u_b = b.solve(b.factor(theta))
        np.testing.assert_allclose(beta_b, beta_a, rtol=1e-8)
        for ua, ub in zip(u_a, u_b, strict=True):
            np.testing.assert_allclose(ub, ua, rtol=1e-8, atol=1e-10)
