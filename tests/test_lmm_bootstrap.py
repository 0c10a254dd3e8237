"""Parametric bootstrap: LmmResult.simulate / refit(response=), confint(method="boot") and
compare(bootstrap=). Checked by reproducibility by seed and agreement with the profile
intervals and the chi-square test within Monte Carlo error (sleepstudy, from lme4)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.models import compare, glmm, lmm

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def sleep():
    return pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")


@pytest.fixture(scope="module")
def fit(sleep):
    return lmm("Reaction ~ Days + (1 | Subject)", sleep)


def test_simulate_and_refit_to_a_new_response(fit, sleep):
    y = fit.simulate(3, seed=7)
    assert y.shape == (3, fit.nobs)
    np.testing.assert_array_equal(y, fit.simulate(3, seed=7))
    assert not np.array_equal(y, fit.simulate(3, seed=8))
    # the simulated spread matches the model: residual + subject variance
    vc = fit.variance_components.set_index("group")["vcov"]
    many = fit.simulate(400, seed=1)
    resid = many - fit.predict(random=False).to_numpy()
    assert resid.var() == pytest.approx(vc.sum(), rel=0.05)
    # refit(response=) with the observed response gives the fit itself
    same = fit.refit(response=sleep["Reaction"].to_numpy())
    np.testing.assert_allclose(same.params["estimate"], fit.params["estimate"], rtol=1e-8)
    assert same.loglik == pytest.approx(fit.loglik, rel=1e-10)
    with pytest.raises(ValueError, match="one value per row"):
        fit.refit(response=np.zeros(3))


def test_boot_intervals_are_reproducible_by_seed_and_jobs(fit):
    a = fit.confint("boot", nsim=4, seed=4)
    b = fit.confint("boot", nsim=4, seed=4, n_jobs=2)
    c = fit.confint("boot", nsim=4, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["ci_low", "ci_high"]].equals(c[["ci_low", "ci_high"]])
    assert a.attrs == {"n_boot": 4, "n_failed": 0}
    assert a.columns.tolist() == fit.confint("wald").columns.tolist()
    assert a["lme4_name"].tolist() == [".sig01", ".sigma", "(Intercept)", "Days"]
    fixed = fit.confint("boot", nsim=4, seed=4, parm="fixed")
    assert fixed["lme4_name"].tolist() == ["(Intercept)", "Days"]


def test_boot_intervals_agree_with_profile_within_monte_carlo_error(fit):
    boot = fit.confint("boot", nsim=200, seed=11).set_index("lme4_name")
    prof = fit.confint("profile").set_index("lme4_name")
    se = fit.params.set_index("term")["se"]
    # a 2.5% quantile of 200 draws has a Monte Carlo SE of about 0.2 SE of the estimate
    for name, term in (("(Intercept)", "Intercept"), ("Days", "Days")):
        for bound in ("ci_low", "ci_high"):
            assert abs(boot.loc[name, bound] - prof.loc[name, bound]) < 0.5 * se[term]
    # variance parameters: the profile is on the ML deviance, the bootstrap refits by REML
    for name in (".sig01", ".sigma"):
        for bound in ("ci_low", "ci_high"):
            assert boot.loc[name, bound] == pytest.approx(prof.loc[name, bound], rel=0.12)


def test_compare_bootstrap_agrees_with_the_chi_square_for_a_fixed_effect(sleep):
    d = sleep.assign(noise=np.random.default_rng(2).normal(size=len(sleep)))
    m0 = lmm("Reaction ~ 1 + (1 | Subject)", d, reml=False)
    m1 = lmm("Reaction ~ noise + (1 | Subject)", d, reml=False)
    out = compare(m0, m1, bootstrap=100, seed=3)
    again = compare(m0, m1, bootstrap=100, seed=3)
    pd.testing.assert_frame_equal(out.table, again.table)
    p, pb = out.table["p"].iloc[1], out.table["p_boot"].iloc[1]
    assert abs(pb - p) < 3 * np.sqrt(p * (1 - p) / 100)
    row = out.bootstrap.iloc[0]
    assert row["n_boot"] == 100 and row["n_failed"] == 0
    sims = out.boot_chisq[row["term"]]
    assert len(sims) == 100 and (sims >= 0).all()
    assert pb == pytest.approx((1 + np.sum(sims >= row["chisq"] - 1e-10)) / 101)
    # under the null the simulated statistics are about chi-square(1): mean near 1
    assert sims.mean() == pytest.approx(stats.chi2(1).mean(), abs=0.5)
    assert "PBmodcomp" in out.notes[-1]
    assert "p_boot" not in compare(m0, m1).table.columns


def test_bootstrap_errors(fit, sleep):
    with pytest.raises(ValueError, match="method must be"):
        fit.confint("bootstrap")
    with pytest.raises(ValueError, match="nsim must be"):
        fit.confint("boot", nsim=1)
    d = sleep.assign(y=(sleep["Reaction"] > 300).astype(int))
    g0 = glmm("y ~ 1 + (1 | Subject)", d)
    g1 = glmm("y ~ Days + (1 | Subject)", d)
    with pytest.raises(ValueError, match="linear mixed models"):
        compare(g0, g1, bootstrap=10)
    m0 = lmm("Reaction ~ 1 + (1 | Subject)", sleep)
    with pytest.raises(ValueError, match="positive number"):
        compare(m0, fit, bootstrap=0)
