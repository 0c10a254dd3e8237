"""Model comparison and inference for mixed models (issue 18) against lme4, pbkrtest, emmeans.

Reference values: tests/reference/lmer_inference.json, written by
tests/reference/lmer_inference.R (lme4 ``anova``, ``confint.merMod``, pbkrtest/lmerTest
Kenward-Roger, emmeans) on the committed sleepstudy and Machines data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.models import ComparisonResult, compare, glmm, lmm

REF = Path(__file__).parent / "reference"
INFERENCE = json.loads((REF / "lmer_inference.json").read_text())


def _num(values) -> np.ndarray:
    return np.array([np.nan if v == "NA" else v for v in values], dtype=float)


def _data(case: dict) -> pd.DataFrame:
    return pd.read_csv(REF / case["data"])


# --------------------------------------------------------------------------- compare


@pytest.mark.parametrize("case", INFERENCE["anova"], ids=[c["name"] for c in INFERENCE["anova"]])
def test_compare_matches_lme4_anova(case):
    data = _data(case)
    if case.get("glmm"):
        data = data.astype({"period": str})
        fits = [glmm(f, data, nagq=case["nagq"]) for f in case["formulas"]]
    else:
        fits = [lmm(f, data, reml=r) for f, r in zip(case["formulas"], case["reml"], strict=True)]
    out = compare(*fits, refit=case["refit"])
    t = out.table
    assert t["model"].tolist() == case["order"]
    assert t["npar"].tolist() == case["npar"]
    np.testing.assert_allclose(t["loglik"], case["logLik"], rtol=1e-6)
    np.testing.assert_allclose(t["aic"], case["AIC"], rtol=1e-6)
    np.testing.assert_allclose(t["bic"], case["BIC"], rtol=1e-6)
    np.testing.assert_allclose(t["deviance"], case["deviance"], rtol=1e-6)
    np.testing.assert_allclose(t["chisq"][1:], _num(case["Chisq"])[1:], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(t["df"][1:], _num(case["Df"])[1:])
    np.testing.assert_allclose(t["p"][1:], _num(case["p"])[1:], rtol=1e-5)
    refit_expected = case["refit"] and any(case["reml"])
    assert out.refitted is refit_expected
    assert (out.notes[:1] == ["refitting model(s) with ML (instead of REML)"]) is refit_expected
    assert isinstance(out, ComparisonResult)
    assert list(out.params.columns[:8]) == [
        "term",
        "estimate",
        "se",
        "df",
        "statistic",
        "p",
        "ci_low",
        "ci_high",
    ]


def test_compare_boundary_p_is_the_chi_bar_square_mixture():
    case = INFERENCE["anova"][0]  # (1 | Subject) against (Days | Subject)
    data = _data(case)
    out = compare(*[lmm(f, data) for f in case["formulas"]])
    row = out.table.iloc[1]
    from scipy import stats

    expected = 0.5 * stats.chi2.sf(row.chisq, 1) + 0.5 * stats.chi2.sf(row.chisq, 2)
    assert row.p_boundary == pytest.approx(expected, rel=1e-12)
    assert row.p_boundary < row.p
    assert any("chi-bar-square" in n for n in out.notes)
    # one variance alone (Machines: adding (1 | Worker:Machine)): half the chi-square p
    mach = pd.read_csv(REF / "data" / "lme4_machines.csv")
    small = lmm("score ~ Machine + (1 | Worker)", mach)
    big = lmm("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", mach)
    two = compare(small, big).table.iloc[1]
    assert two.p_boundary == pytest.approx(two.p / 2, rel=1e-12)


def test_compare_fixed_effects_have_no_boundary_p():
    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    out = compare(
        lmm("Reaction ~ 1 + (Days | Subject)", sleep),
        lmm("Reaction ~ Days + (Days | Subject)", sleep),
    )
    assert np.isnan(out.table["p_boundary"]).all()
    assert "model 1 vs model 0" in out.params["term"].tolist()
    assert "chisq" in out.summary()


def test_compare_refuses_different_rows_and_outcomes():
    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    full = lmm("Reaction ~ Days + (1 | Subject)", sleep)
    fewer = lmm("Reaction ~ Days + (1 | Subject)", sleep.iloc[:-10])
    with pytest.raises(ValueError, match="same rows"):
        compare(full, fewer)
    shifted = sleep.set_axis(sleep.index + 1000)
    with pytest.raises(ValueError, match="different rows"):
        compare(full, lmm("Reaction ~ Days + (Days | Subject)", shifted))
    logged = sleep.assign(logrt=np.log(sleep["Reaction"]))
    with pytest.raises(ValueError, match="different outcomes"):
        compare(full, lmm("logrt ~ Days + (1 | Subject)", logged))
    with pytest.raises(ValueError, match="at least two"):
        compare(full)
    with pytest.raises(TypeError, match="lmm or alliance.models.glmm"):
        compare(full, "not a fit")


def test_compare_glmm_refuses_other_rows_and_mixing():
    cbpp = pd.read_csv(REF / "data" / "glmer_cbpp.csv").astype({"period": str})
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    g1 = glmm(formula, cbpp, nagq=5)
    with pytest.raises(ValueError, match="different rows"):
        compare(g1, glmm(formula, cbpp.set_axis(cbpp.index + 100), nagq=5))
    with pytest.raises(ValueError, match="different outcomes or weights"):
        compare(g1, glmm("cbind(incidence, size) ~ period + (1 | herd)", cbpp, nagq=5))
    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    with pytest.raises(ValueError, match="cannot mix"):
        compare(g1, lmm("Reaction ~ Days + (1 | Subject)", sleep))
    g1_laplace = glmm(formula, cbpp)
    g0 = glmm("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp, nagq=5)
    out = compare(g0, g1_laplace)
    assert any("quadrature" in n for n in out.notes)
    assert out.table["method"].tolist() == ["AGQ(5)", "Laplace"]


def test_compare_without_refit_refuses_different_fixed_effects():
    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    m0 = lmm("Reaction ~ 1 + (1 | Subject)", sleep)
    m1 = lmm("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(ValueError, match="REML likelihoods"):
        compare(m0, m1, refit=False)
    with pytest.raises(ValueError, match="same criterion"):
        compare(m0, m1.refit(reml=False), refit=False)


def test_refit_keeps_the_model_and_options():
    sessions = alliance.datasets.load_dataset("demo").sessions
    fit = lmm("phq9 ~ session + (1 | client)", sessions, ddf="wald")
    ml = fit.refit(reml=False)
    assert ml.method == "ML" and ml.ddf == "wald" and ml.formula == fit.formula
    assert ml.refit(reml=False) is ml
    assert ml.loglik != fit.loglik  # the ML likelihood of the same model is not REML's
    changed = sessions.copy()
    again = lmm("phq9 ~ session + (1 | client)", changed)
    changed.loc[changed.index[0], "phq9"] = 99.0
    with pytest.raises(ValueError, match="has changed"):
        again.refit(reml=False)


# --------------------------------------------------------------------------- confint

CI_CASES = [c for c in INFERENCE["confint"] if c["name"] != "sleepstudy_ml"]


@pytest.fixture(scope="module", params=CI_CASES, ids=[c["name"] for c in CI_CASES])
def profile_case(request):
    case = request.param
    fit = lmm(case["formula"], _data(case), reml=case["reml"])
    return case, fit, fit.confint("profile")


def test_profile_confint_matches_lme4(profile_case):
    case, _, ci = profile_case
    assert ci["lme4_name"].tolist() == [
        n.replace("MachineB", "Machine[T.B]").replace("MachineC", "Machine[T.C]")
        for n in case["parm"]
    ]
    low, high = np.array(case["profile_low"]), np.array(case["profile_high"])
    # relative, with an absolute floor for a bound at zero (a boundary SD)
    np.testing.assert_allclose(ci["ci_low"], low, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(ci["ci_high"], high, rtol=1e-3, atol=1e-6)


def test_profile_confint_brackets_the_estimate(profile_case):
    case, fit, ci = profile_case
    assert (ci["ci_low"] <= ci["estimate"] + 1e-12).all()
    assert (ci["estimate"] <= ci["ci_high"]).all()
    assert ci["estimate"].iloc[-len(fit.params) :].tolist() == fit.params["estimate"].tolist()
    if case["name"] == "boundary":  # the therapist SD is 0: its lower bound is 0
        row = ci.set_index("lme4_name").loc[".sig02"]
        assert row["estimate"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] > 0.5


def test_wald_confint_matches_lme4():
    case = CI_CASES[0]
    fit = lmm(case["formula"], _data(case), reml=case["reml"])
    ci = fit.confint("wald")
    np.testing.assert_allclose(ci["ci_low"], _num(case["wald_low"]), rtol=1e-6)
    np.testing.assert_allclose(ci["ci_high"], _num(case["wald_high"]), rtol=1e-6)
    assert ci["ci_low"].isna().sum() == 4  # no Wald interval for variance parameters
    fixed = fit.confint("wald", parm="fixed", level=0.9)
    assert fixed["parameter"].tolist() == ["Intercept", "Days"]
    assert fixed["ci_high"].iloc[1] < ci["ci_high"].iloc[-1]
    with pytest.raises(ValueError, match="'profile', 'wald' or 'boot'"):
        fit.confint("bayes")
    with pytest.raises(ValueError, match="parm"):
        fit.confint("wald", parm="beta_")


# --------------------------------------------------------------------------- Kenward-Roger


def _kr_data(case: dict) -> pd.DataFrame:
    data = _data(case)
    if case["name"] == "sleepstudy_unbalanced":  # R dropped rows 1, 8, 15, ... (1-based)
        data = data.drop(index=range(0, len(data), 7))
    return data


@pytest.mark.parametrize(
    "case", INFERENCE["kenward_roger"], ids=[c["name"] for c in INFERENCE["kenward_roger"]]
)
def test_kenward_roger_matches_pbkrtest(case):
    fit = lmm(case["formula"], _kr_data(case), ddf="kenward-roger")
    np.testing.assert_allclose(fit.params["df"], case["df"], rtol=1e-3)
    np.testing.assert_allclose(fit.params["se"], case["se"], rtol=1e-4)
    np.testing.assert_allclose(fit.cov_params, case["vcov_adj"], rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(fit.params["p"], case["p"], rtol=1e-3)
    assert "Kenward-Roger" in fit.summary()
    # contrast() of a Satterthwaite fit on request gives the same df
    sat = lmm(case["formula"], _kr_data(case))
    last = np.eye(len(sat.params))[-1]
    assert sat.contrast(last, ddf="kenward-roger")["df"] == pytest.approx(case["df"][-1], rel=1e-3)


def test_kenward_roger_differs_from_satterthwaite_when_unbalanced():
    case = next(c for c in INFERENCE["kenward_roger"] if c["name"] == "partially_crossed")
    kr = lmm(case["formula"], _kr_data(case), ddf="kenward-roger")
    sat = lmm(case["formula"], _kr_data(case))
    assert not np.allclose(kr.params["df"], sat.params["df"], rtol=1e-3)
    assert (kr.params["se"] >= sat.params["se"] * (1 - 1e-12)).all()  # adjusted SEs


def test_kenward_roger_refuses_ml():
    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    with pytest.raises(ValueError, match="REML"):
        lmm("Reaction ~ Days + (1 | Subject)", sleep, reml=False, ddf="kenward-roger")
    ml = lmm("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    with pytest.raises(ValueError, match="REML"):
        ml.marginal_means("Days", at={"Days": [0, 9]}, ddf="kenward-roger")


# --------------------------------------------------------------------------- emmeans


@pytest.mark.parametrize(
    "case", INFERENCE["emmeans"], ids=[c["name"] for c in INFERENCE["emmeans"]]
)
def test_marginal_means_match_emmeans(case):
    fit = lmm(case["formula"], _data(case))
    emm = fit.marginal_means(case["specs"], ddf=case["lmer_df"], adjust="none")
    means = {k: np.atleast_1d(v) for k, v in case["means"].items()}
    cons = {k: np.atleast_1d(v) for k, v in case["contrasts"].items()}
    assert emm.means[case["specs"]].tolist() == means["level"].tolist()
    assert emm.contrasts["contrast"].tolist() == cons["contrast"].tolist()
    np.testing.assert_allclose(emm.means["estimate"], means["estimate"], rtol=1e-6)
    np.testing.assert_allclose(emm.means["se"], means["se"], rtol=1e-4)
    np.testing.assert_allclose(emm.means["df"], means["df"], rtol=1e-4)
    np.testing.assert_allclose(emm.means["ci_low"], means["low"], rtol=1e-4)
    np.testing.assert_allclose(emm.means["ci_high"], means["high"], rtol=1e-4)
    np.testing.assert_allclose(emm.contrasts["estimate"], cons["estimate"], rtol=1e-6)
    np.testing.assert_allclose(emm.contrasts["se"], cons["se"], rtol=1e-4)
    np.testing.assert_allclose(emm.contrasts["df"], cons["df"], rtol=1e-4)
    np.testing.assert_allclose(emm.contrasts["statistic"], cons["t"], rtol=1e-4)
    np.testing.assert_allclose(emm.contrasts["p"], cons["p"], rtol=1e-3)
    tukey = fit.marginal_means(case["specs"], ddf=case["lmer_df"])
    assert tukey.adjust == "tukey"
    np.testing.assert_allclose(tukey.contrasts["p"], np.atleast_1d(cons["p_tukey"]), rtol=1e-3)


def test_marginal_means_grid_and_options():
    case = next(c for c in INFERENCE["emmeans"] if c["name"] == "lmm_main")
    data = _data(case)
    fit = lmm(case["formula"], data)
    emm = fit.marginal_means("prior")
    assert len(emm.grid) == 2
    # numeric variables at their means over the rows of the fit (rows with a missing value
    # in a model variable are not in the fit, as in emmeans' model frame)
    used = fit.model_frame()
    assert len(used) == fit.nobs < len(data)
    assert emm.grid["session"].iloc[0] == pytest.approx(used["session"].mean(), rel=1e-12)
    assert any("session" in n for n in emm.notes)
    assert any("prior interact" in n for n in emm.notes)  # prior * alliance_within
    # at: a covariate set to a value moves the means by its slope
    at0 = fit.marginal_means("prior", at={"session": 0.0})
    slope = fit.params.set_index("term").loc["session", "estimate"]
    shift = (emm.means["estimate"] - at0.means["estimate"]).to_numpy()
    np.testing.assert_allclose(shift, slope * used["session"].mean(), rtol=1e-10)
    # a numeric spec with values
    by_session = fit.marginal_means("session", at={"session": [0, 5]}, adjust="none")
    assert by_session.contrasts["estimate"].iloc[0] == pytest.approx(-5 * slope, rel=1e-10)
    assert list(emm.params.columns[:8]) == [
        "term",
        "estimate",
        "se",
        "df",
        "statistic",
        "p",
        "ci_low",
        "ci_high",
    ]
    with pytest.raises(ValueError, match="not a variable of the fixed part"):
        fit.marginal_means("therapist")
    with pytest.raises(ValueError, match="numeric"):
        fit.marginal_means("session")
    with pytest.raises(ValueError, match="adjust"):
        fit.marginal_means("prior", adjust="scheffe")
    with pytest.raises(ValueError, match="not levels"):
        fit.marginal_means("prior", at={"prior": ["maybe"]})


def test_marginal_means_holm_and_bonferroni():
    sessions = alliance.datasets.load_dataset("demo").sessions
    fit = lmm("phq9 ~ phase + session + (1 | client)", sessions)
    raw = fit.marginal_means("phase", adjust="none").contrasts["p"].to_numpy()
    bonf = fit.marginal_means("phase", adjust="bonferroni").contrasts["p"].to_numpy()
    holm = fit.marginal_means("phase", adjust="holm").contrasts["p"].to_numpy()
    np.testing.assert_allclose(bonf, np.minimum(3 * raw, 1))
    assert (holm <= bonf + 1e-15).all() and (holm >= raw - 1e-15).all()


# --------------------------------------------------------------------------- plots


def test_fitted_trajectories_draws_observed_and_fitted():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sleep = pd.read_csv(REF / "data" / "lme4_sleepstudy.csv")
    fit = lmm("Reaction ~ Days + (Days | Subject)", sleep)
    fig, ax = plt.subplots()
    out = alliance.plots.fitted_trajectories(fit, ["S308", "S309"], ax=ax)
    assert out is ax
    lines = ax.get_lines()
    assert len(lines) == 3  # two subjects and the population course
    # each subject's line is its fitted course: fixed effects plus its conditional modes
    x, y = lines[0].get_data()
    b = fit.random_effects["Subject"].loc["S308"]
    beta = fit.params.set_index("term")["estimate"]
    expected = beta["Intercept"] + b["Intercept"] + (beta["Days"] + b["Days"]) * np.asarray(x)
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    assert len(ax.collections) == 2  # observed points per subject
    assert ax.get_xlabel() == "Days" and ax.get_ylabel() == "Reaction"
    with pytest.raises(ValueError, match="not in the fit"):
        alliance.plots.fitted_trajectories(fit, ["nobody"])
    with pytest.raises(TypeError, match="alliance.models.lmm"):
        alliance.plots.fitted_trajectories(sleep)
    plt.close("all")
