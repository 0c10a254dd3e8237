"""mediation with random a and b paths: small versions of ``benchmarks/sim_mediation.py``.

The data-generating model is the benchmark's (loaded from its file): client-specific a and b
paths with a covariance, so the average indirect effect is ``a b + cov(a_j, b_j)`` (Kenny,
Korchmaros & Bolger 2003); the naive product of the fixed paths misses the covariance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from alliance.models import mediation

_SPEC = importlib.util.spec_from_file_location(
    "sim_mediation", Path(__file__).resolve().parents[1] / "benchmarks" / "sim_mediation.py"
)
sim = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sim)


def _fit(data, **kw):
    return mediation(data, "reflection", detrend=False, n_mc=4000, seed=1, **kw)


def test_indirect_effect_with_a_path_covariance_is_recovered_and_the_naive_product_is_not():
    # 4 data sets of 200 clients x 10 sessions (the benchmark: 200 of 100 clients, bias
    # -0.004, coverage .94); averages over the 4 have SEs of about 0.012
    truth = sim.TRUTH
    target = sim.true_indirect(truth)  # a b + cov = 0.09 + 0.054
    rows = []
    for seed in range(4):
        p = _fit(sim.simulate(200, 10, truth, seed=20 + seed)).params.set_index("term")
        rows.append(p.loc[["ab_within", "cov_ab_within", "indirect_within"], "estimate"])
        lo, hi = p.loc["indirect_within", ["ci_low", "ci_high"]]
        assert lo < hi
    mean = np.mean(rows, axis=0)
    cov_true = truth["corr_ab"] * truth["sd_a"] * truth["sd_b"]
    assert mean[1] == pytest.approx(cov_true, abs=0.025)
    assert mean[2] == pytest.approx(target, abs=0.035)
    # the product of the fixed paths estimates a b, not the average indirect effect
    assert mean[0] < target - 0.025


def test_no_indirect_effect_is_rarely_found():
    # a = 0 with client-varying a and b paths that do not covary: the 95% Monte Carlo
    # interval of the indirect effect excludes 0 in at most 2 of 8 data sets (under a
    # correct 5% level, P(>= 3 of 8) = 0.006); the benchmark runs 200
    rejected = 0
    for seed in range(8):
        fit = _fit(sim.simulate(40, 8, sim.NULL, seed=100 + seed))
        row = fit.params.set_index("term").loc["indirect_within"]
        rejected += int(row["ci_low"] > 0 or row["ci_high"] < 0)
    assert rejected <= 2


def test_outcome_at_t_adjustment_removes_the_same_session_confound():
    # alliance residual and outcome innovation correlated -.3 within a session, outcome
    # autocorrelated .3: without the outcome at t, b is biased well below its 0.3; with it,
    # what is left is the (smaller) Nickell bias stated in the notes
    data = sim.simulate(300, 10, sim.CONFOUND, seed=7)
    adj = _fit(data, random_paths=False)
    raw = _fit(data, random_paths=False, adjust_outcome=False)
    b_adj = adj.params.set_index("term").loc["b_within", "estimate"]
    b_raw = raw.params.set_index("term").loc["b_within", "estimate"]
    assert b_raw < b_adj - 0.05
    assert abs(b_adj - 0.3) < abs(b_raw - 0.3)
    assert any("Nickell" in n for n in adj.notes)
    assert any("confounds b" in n for n in raw.notes)
    assert np.isfinite(adj.params["estimate"]).all()
