"""lmm(..., residual_groups=): group-specific residual SDs against nlme's lme + varIdent.

References: ``tests/reference/nlme_varident.R`` (its JSON committed beside it) on Orthodont
(residual SD by sex, REML and ML; by age, four groups) and on a stacked 1-1-1 mediation data
set (``make_mediation_data.py``). Tolerances: fixed effects 1e-5, SEs 1e-4, logLik 1e-6
(relative), SD ratios and random-effect covariances 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import lmm

REF = Path(__file__).parent / "reference"
CASES = json.loads((REF / "nlme_varident.json").read_text())


def _data(name: str) -> pd.DataFrame:
    d = pd.read_csv(REF / "data" / f"{name}.csv")
    if name == "lme4_orthodont":
        d["sex"] = np.where(d["female"] == 1, "F", "M")
        d["agegroup"] = [f"a{a:02d}" for a in d["age"]]
    return d


def _name(term: str) -> str:
    return {"(Intercept)": "Intercept"}.get(term, term)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    ref = CASES[request.param]
    fit = lmm(
        ref["formula"],
        _data(ref["data"]),
        reml=ref["reml"],
        residual_groups=ref["residual_groups"],
    )
    return ref, fit


def test_fixed_effects_ses_and_loglik_match_nlme(case):
    ref, fit = case
    p = fit.params.set_index("term")
    for term, value in ref["fixef"].items():
        assert p.loc[_name(term), "estimate"] == pytest.approx(value, rel=1e-5, abs=1e-7), term
        assert p.loc[_name(term), "se"] == pytest.approx(ref["se"][term], rel=1e-4), term
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert fit.n_params == ref["df"]  # the ratios count as parameters (AIC, compare)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert fit.converged


def test_ratios_sigma_and_random_covariance_match_nlme(case):
    ref, fit = case
    ratios = pd.Series(ref["ratios"])
    assert fit.residual_ratios.index.astype(str).tolist() == ratios.index.tolist()
    np.testing.assert_allclose(fit.residual_ratios.to_numpy(), ratios.to_numpy(), rtol=1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    level = next(iter(fit.covariances))
    names = [_name(n) for n in np.atleast_1d(ref["varcov_names"])]
    cov = fit.covariances[level].loc[names, names].to_numpy()
    want = np.atleast_2d(np.asarray(ref["varcov"], dtype=float))
    np.testing.assert_allclose(cov, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_equal_ratio_data_give_the_unweighted_fit():
    # one residual group split in two by an unrelated label: the ratio is estimated near 1
    # and the fit is close to (not equal to) the homoscedastic one; the likelihood can only go up
    d = _data("lme4_orthodont")
    d["half"] = np.where(d.index % 2 == 0, "x", "y")
    plain = lmm("distance ~ age + (1 | Subject)", d)
    split = lmm("distance ~ age + (1 | Subject)", d, residual_groups="half")
    assert split.loglik >= plain.loglik - 1e-8
    assert split.residual_ratios.iloc[0] == 1.0
    assert plain.residual_ratios is None


def test_residual_groups_errors_say_what_to_do():
    d = _data("lme4_orthodont")
    d["one"] = "a"
    with pytest.raises(ValueError, match="two or more"):
        lmm("distance ~ age + (1 | Subject)", d, residual_groups="one")
    with pytest.raises(ValueError, match="Kenward-Roger"):
        lmm("distance ~ age + (1 | Subject)", d, residual_groups="sex", ddf="kenward-roger")
    fit = lmm("distance ~ age + (1 | Subject)", d, residual_groups="sex")
    with pytest.raises(ValueError, match="profile"):
        fit.confint("profile")
    assert fit.refit(reml=False).residual_ratios is not None
    assert any("varIdent" in n for n in fit.notes)


def test_covariance_of_random_paths_and_its_se_match_nlme():
    # the SE of cov(a_j, b_j) (delta method on the inverse Hessian of the REML deviance,
    # the SD ratio included) against nlme's apVar by the delta method (its finite-difference
    # Hessian with .relStep = 1e-3, see the R script): 1e-3
    from alliance.models._lmm_varident import random_covariance_vcov

    ref = CASES["mediation_stacked"]
    fit = lmm(ref["formula"], _data(ref["data"]), residual_groups="dv")
    value, var = random_covariance_vcov(fit, [("client", "a_xw", "b_mw")])
    assert value[0] == pytest.approx(ref["cov_ab"], rel=1e-4)
    assert np.sqrt(var[0, 0]) == pytest.approx(ref["cov_ab_se"], rel=1e-3)


def test_crossed_design_with_residual_groups_runs_and_only_raises_the_likelihood():
    # the crossed engine's path (rows rescaled and the structure rebuilt for each ratio): no
    # nlme reference (lme's crossed syntax is awkward); the fit with a free ratio can only
    # reach a likelihood at least as high as the homoscedastic fit, whose ratio it nests
    d = pd.read_csv(REF / "data" / "lme4_penicillin.csv")
    d["half"] = np.where(d["sample"].isin(sorted(d["sample"].unique())[:3]), "a", "b")
    plain = lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    split = lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", d, residual_groups="half")
    assert split.loglik >= plain.loglik - 1e-8
    assert split.converged and split.residual_ratios.index.tolist() == ["a", "b"]
    assert split.params["estimate"].iloc[0] == pytest.approx(
        plain.params["estimate"].iloc[0], abs=0.5
    )


def test_compare_refits_by_ml_and_counts_the_ratio():
    # the REML fit refitted by ML reaches nlme's ML logLik; the LRT against the
    # homoscedastic model has 1 df (the SD ratio)
    from alliance.models import compare

    d = _data("lme4_orthodont")
    f = "distance ~ age * female + (1 + age | Subject)"
    table = compare(lmm(f, d), lmm(f, d, residual_groups="sex")).table
    assert table["loglik"].iloc[1] == pytest.approx(CASES["orthodont_sex_ml"]["loglik"], rel=1e-6)
    assert table["df"].iloc[1] == 1
    assert table["chisq"].iloc[1] == pytest.approx(2 * table["loglik"].diff().iloc[1])
