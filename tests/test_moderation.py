"""Tests of alliance.models.moderation's session-level models (issue 16).

References (``tests/reference/moderation_reference.R``, data made by
``make_moderation_data.py``):

* multi-group dynamic panel model: lavaan ``group=`` with every parameter free per group and
  ``lavTestWald``; tolerance 1e-4 on estimates (relative to max(|est|, se)) and SEs
  (relative), 1e-6 on the log-likelihood, 1e-4 (relative) on the Wald statistics;
* lagged-outcome multilevel model with a random slope: lme4/lmerTest; fixed effects 1e-5,
  SEs 1e-4 (relative), Satterthwaite df 1e-3 (relative); simple slopes (``contest1D``) and the
  Johnson-Neyman bounds computed by hand from R's ``vcov`` 1e-4.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import moderation
from alliance.models.moderation import johnson_neyman_region

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF / "moderation_reference.json").read_text())


@pytest.fixture(scope="module")
def panel():
    return pd.read_csv(REF / "data" / "moderation_panel_long.csv")


@pytest.fixture(scope="module")
def mlm_long():
    return pd.read_csv(REF / "data" / "moderation_mlm_long.csv")


@pytest.fixture(scope="module")
def mlm_fit(mlm_long):
    return moderation(
        mlm_long, "severity", alliance="alliance", outcome="outcome", model="within_between"
    )


def _sim():
    spec = importlib.util.spec_from_file_location(
        "sim_moderation", ROOT / "benchmarks" / "sim_moderation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(lhs, op, rhs):
    return ("~~", *sorted([lhs, rhs])) if op == "~~" else (op, lhs, rhs)


# --------------------------------------------------------------------------- multi-group DPM


@pytest.mark.parametrize("slopes", [False, True], ids=["dpm", "dpm_slopes"])
def test_multigroup_dpm_agrees_with_lavaan(panel, ref, slopes):
    theirs_all = ref["multigroup_slopes" if slopes else "multigroup"]
    fit = moderation(
        panel,
        alliance="alliance",
        outcome="outcome",
        model="within_between",
        slopes=slopes,
        fit_indices=not slopes,
    )
    assert fit.method == "multigroup"
    assert fit.converged
    assert fit.loglik == pytest.approx(theirs_all["loglik"], abs=1e-6)
    assert fit.fit_measures["npar"] == theirs_all["npar"]
    assert fit.bic == pytest.approx(theirs_all["bic"], abs=1e-5)
    if not slopes:
        assert fit.fit_measures["chisq"] == pytest.approx(theirs_all["chisq"], abs=1e-5)
        assert fit.fit_measures["df"] == theirs_all["df"]
    theirs_all = pd.DataFrame(theirs_all["params"])
    for group, label in enumerate(["prior_negative_therapy=0", "prior_negative_therapy=1"]):
        group_fit = fit.group_fits[label]
        assert group_fit.nobs == ref["multigroup"]["nobs"][group]
        theirs = theirs_all[theirs_all["group"] == group + 1].copy()
        theirs["key"] = [_key(*k) for k in zip(theirs.lhs, theirs.op, theirs.rhs, strict=True)]
        ours = group_fit.parameter_table
        ours = ours[ours["free"]]
        ours = ours.assign(key=[_key(*k) for k in zip(ours.lhs, ours.op, ours.rhs, strict=True)])
        both = ours.merge(theirs, on="key", suffixes=("", "_lavaan"))
        assert len(both) == len(ours)
        scale = np.maximum(np.abs(both["est_lavaan"]), both["se_lavaan"])
        assert np.max(np.abs(both["est"] - both["est_lavaan"]) / scale) < 1e-4
        assert np.max(np.abs(both["se"] / both["se_lavaan"] - 1)) < 1e-4
    wald = fit.wald.set_index("df")
    for df, key in ((1, "wald_focal"), (2, "wald_both")):
        theirs = ref["multigroup_slopes" if slopes else "multigroup"][key]
        assert wald.loc[df, "chisq"] == pytest.approx(theirs["stat"], rel=1e-4)
        assert wald.loc[df, "p"] == pytest.approx(theirs["p"], abs=1e-5)
    # the difference row is the 1-df Wald test as a z test
    diff = fit.params.set_index("term").loc["alliance[t-1] -> outcome[t]:prior_negative_therapy"]
    assert diff["statistic"] ** 2 == pytest.approx(wald.loc[1, "chisq"], rel=1e-10)
    slopes_ = fit.simple_slopes.set_index("label")["estimate"]
    assert slopes_.iloc[1] - slopes_.iloc[0] == pytest.approx(diff["estimate"])


def test_multigroup_counts_missing_moderator_and_refuses_bad_options(panel):
    d = panel.copy()
    d.loc[d["client"] == d["client"].iloc[0], "prior_negative_therapy"] = np.nan
    fit = moderation(
        d, alliance="alliance", outcome="outcome", model="within_between", fit_indices=False
    )
    row = fit.excluded.set_index("reason").loc["missing moderator prior_negative_therapy"]
    assert row["n_clients"] == 1
    assert fit.n_by_level["clients"] == d["client"].nunique() - 1
    with pytest.raises(TypeError, match="at= is an option of method='mlm'"):
        moderation(d, alliance="alliance", outcome="outcome", model="within_between", at=[0, 1])
    with pytest.raises(ValueError, match="single value"):
        moderation(
            d[d["prior_negative_therapy"] == 1],
            alliance="alliance",
            outcome="outcome",
            model="within_between",
            method="multigroup",
        )


# --------------------------------------------------------------------------- multilevel model


def test_mlm_pairs_are_the_ones_lme4_was_fitted_to(mlm_fit):
    committed = pd.read_csv(REF / "data" / "moderation_mlm_pairs.csv")
    pd.testing.assert_frame_equal(
        mlm_fit.pairs.reset_index(drop=True), committed, check_dtype=False, rtol=1e-13
    )


def test_mlm_agrees_with_lme4(mlm_fit, ref):
    r = ref["mlm"]
    lm = mlm_fit.mixed_model
    assert mlm_fit.method == "mlm"
    assert mlm_fit.formula == (
        "y ~ x_within + x_between + session + y_now + mod + x_within:mod + x_between:mod"
        " + (1 + session + x_within | client)"
    )
    ours = lm.params.set_index("term")
    terms = [t.replace("(Intercept)", "Intercept") for t in r["terms"]]
    assert list(ours.index) == terms
    np.testing.assert_allclose(ours["estimate"], r["estimate"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours["se"], r["se"], rtol=1e-4)
    np.testing.assert_allclose(ours["df"], r["df"], rtol=1e-3)
    assert lm.loglik == pytest.approx(r["loglik"], abs=1e-5)
    # public names in the result's params
    p = mlm_fit.params.set_index("term")
    assert p.loc["alliance_within:severity", "estimate"] == pytest.approx(
        ours.loc["x_within:mod", "estimate"]
    )
    assert "outcome_lag1" in p.index
    for ours_row, theirs in zip(
        mlm_fit.simple_slopes.itertuples(), r["simple_slopes"], strict=True
    ):
        assert ours_row.value == pytest.approx(theirs["at"], abs=1e-10)
        assert ours_row.estimate == pytest.approx(theirs["estimate"], abs=1e-5)
        assert ours_row.se == pytest.approx(theirs["se"], rel=1e-4)
        assert ours_row.df == pytest.approx(theirs["df"], rel=1e-3)
        assert ours_row.p == pytest.approx(theirs["p"], abs=1e-4)


def test_johnson_neyman_bounds_match_the_hand_computation_from_r(mlm_fit, ref):
    jn, theirs = mlm_fit.johnson_neyman, ref["mlm"]["johnson_neyman"]
    assert jn["region"] == theirs["region"] == "outside"
    assert jn["df"] == pytest.approx(theirs["df"], rel=1e-3)
    assert jn["critical"] == pytest.approx(theirs["critical"], abs=1e-4)
    assert jn["lower"] == pytest.approx(theirs["lower"], abs=1e-4)
    assert jn["upper"] == pytest.approx(theirs["upper"], abs=1e-4)
    # at a bound the simple slope's t equals the critical value
    lm = mlm_fit.mixed_model
    terms = lm.params["term"].tolist()
    for bound in (jn["lower"], jn["upper"]):
        w = np.zeros(len(terms))
        w[terms.index("x_within")] = 1.0
        w[terms.index("x_within:mod")] = bound
        est = w @ lm.params["estimate"].to_numpy()
        se = np.sqrt(w @ lm.cov_params.to_numpy() @ w)
        assert abs(est / se) == pytest.approx(jn["critical"], rel=1e-8)
    mods = mlm_fit.pairs.groupby("client")["mod"].first()
    inside = (mods < jn["lower"]) | (mods > jn["upper"])
    assert jn["share_significant"] == pytest.approx(inside.mean())


def test_johnson_neyman_regions_cover_the_four_cases():
    class Fit:
        def __init__(self, b1, b3, v):
            self.params = pd.DataFrame({"term": ["x", "x:m"], "estimate": [b1, b3], "df": 30.0})
            self.cov_params = pd.DataFrame(v, index=["x", "x:m"], columns=["x", "x:m"])

    m = np.linspace(-2, 2, 5)
    big = johnson_neyman_region(Fit(5.0, 0.0, np.diag([0.1, 0.0])), "x", "x:m", m)
    assert big["region"] == "all" and np.isnan(big["lower"]) and big["share_significant"] == 1
    none = johnson_neyman_region(Fit(0.0, 0.0, np.diag([1.0, 1.0])), "x", "x:m", m)
    assert none["region"] == "none" and none["share_significant"] == 0
    out = johnson_neyman_region(Fit(0.0, 1.0, np.diag([0.01, 0.01])), "x", "x:m", m)
    assert out["region"] == "outside" and out["lower"] < 0 < out["upper"]
    inside = johnson_neyman_region(Fit(1.0, 0.0, np.diag([0.01, 1.0])), "x", "x:m", m)
    assert inside["region"] == "inside" and inside["lower"] < 0 < inside["upper"]
    with pytest.raises(KeyError, match="no term"):
        johnson_neyman_region(Fit(1.0, 0.0, np.eye(2)), "x", "x:z", m)


def test_mlm_notes_and_options(mlm_long):
    fit = moderation(
        mlm_long,
        "severity",
        alliance="alliance",
        outcome="outcome",
        model="within_between",
        random_slope=False,
        lagged_outcome=False,
        session_slope=False,
        at=[-1, 0, 2],
    )
    assert fit.simple_slopes["value"].tolist() == [-1.0, 0.0, 2.0]
    assert any("Heisig & Schaeffer" in n for n in fit.notes)
    assert any("Concurrent confound" in n for n in fit.notes)
    assert "y_now" not in fit.formula and "x_within |" not in fit.formula
    default = moderation(
        mlm_long, "severity", alliance="alliance", outcome="outcome", model="within_between"
    )
    assert any("Nickell" in n for n in default.notes)
    with pytest.raises(TypeError, match="unexpected options for method='mlm'"):
        moderation(
            mlm_long,
            "severity",
            alliance="alliance",
            outcome="outcome",
            model="within_between",
            slopes=True,
        )
    with pytest.raises(ValueError, match="method must be"):
        moderation(
            mlm_long,
            "severity",
            alliance="alliance",
            outcome="outcome",
            model="within_between",
            method="sem",
        )
    with pytest.raises(TypeError, match="model='within_between'"):
        moderation(mlm_long, "severity", alliance="alliance", outcome="outcome", method="mlm")


# --------------------------------------------------------------------------- simulation


def test_cross_level_interaction_coverage_small_simulation():
    """A small version of benchmarks/sim_moderation.py (400 reps: coverage .935 there).

    With a true random slope, the default (random slope of the within effect) covers the
    true interaction in at least 17 of 20 replications (P(fewer) = .016 at a true .95), its
    mean is within 3 Monte Carlo SEs of the truth, and leaving the random slope out makes
    the standard errors clearly smaller (the anti-conservative test of Heisig & Schaeffer).
    """
    sim = _sim()
    covered, est, se_rs, se_no = 0, [], [], []
    for seed in range(20):
        data = sim.simulate(np.random.default_rng(1000 + seed), n_clients=50, n_sessions=8)
        row = {}
        for name, opts in (("rs", {}), ("no", {"random_slope": False})):
            fit = moderation(
                data,
                "severity",
                alliance="alliance",
                outcome="outcome",
                model="within_between",
                session_slope=False,
                **opts,
            )
            row[name] = fit.params.set_index("term").loc["alliance_within:severity"]
        covered += row["rs"]["ci_low"] <= sim.DELTA <= row["rs"]["ci_high"]
        est.append(row["rs"]["estimate"])
        se_rs.append(row["rs"]["se"])
        se_no.append(row["no"]["se"])
    est = np.array(est)
    assert covered >= 17, covered
    assert abs(est.mean() - sim.DELTA) < 3 * est.std(ddof=1) / np.sqrt(len(est))
    assert np.mean(se_no) < 0.85 * np.mean(se_rs)


def test_simple_slopes_plot_refuses_the_multigroup_result(panel):
    import alliance

    fit = moderation(
        panel, alliance="alliance", outcome="outcome", model="within_between", fit_indices=False
    )
    assert fit.lines.empty and len(fit.simple_slopes) == 2
    with pytest.raises(ValueError, match="no prediction lines"):
        alliance.plots.simple_slopes(fit)
