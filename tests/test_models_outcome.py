"""Alliance -> outcome models: recovery of the simulated truth, missing data, refusals.

Recovery runs on a simulated study of 60 therapists x 20 clients x 16 planned sessions
(seed 11) and on the same design with the effects set to zero (``NULL``): each recovery band
is checked to hold for the true effect *and* to fail for the zeroed one, so the tests can fail.

Tolerances, and why they are not centred on the generating value: the simulation scores
alliance and symptoms as rounded, clipped item responses (WAI-SR 1-5, PHQ-9 0-3). Measurement
error in the predictor attenuates within-client effects (the within-client reliability of the
WAI-SR item mean is about .7 here, so the -2.0 within effect is observed near -1.4), the PHQ-9
floor compresses slopes late in treatment, and therapist means of client alliance carry client
variance. The bands below contain the attenuated values and exclude zero.
"""

from __future__ import annotations

import sys
import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.models import (
    ModelResult,
    early_alliance,
    mediation,
    moderation,
    rupture_outcome,
    therapist_contributions,
    within_between,
)
from alliance.models._prep import check_sessions, decompose, lead
from alliance.simulate import simulate_study

NULL = {
    "within": 0.0,
    "reverse": 0.0,
    "between_therapist": 0.0,
    "between_client": 0.0,
    "reflection_effect": 0.0,
}


def _sim(effects):
    study = simulate_study(60, 20, seed=11, effects=effects)
    study.sessions["wai"] = study.sessions["wai_sr"] / 12  # the item-mean scale of the truth
    return study


@pytest.fixture(scope="module")
def truth():
    return _sim({})


@pytest.fixture(scope="module")
def null():
    return _sim(NULL)


@pytest.fixture(scope="module")
def demo():
    study = alliance.datasets.load_dataset("demo")
    study.sessions["wai"] = study.sessions["wai_sr"] / 12
    return study


def _est(result, term, col="estimate"):
    return float(result.params.set_index("term").loc[term, col])


def _within(lo, hi):
    return lambda v: lo <= v <= hi


# --------------------------------------------------------------------------- _prep


def test_lead_steps_by_session_number_not_by_row():
    d = pd.DataFrame({"client": ["a"] * 4, "session": [1, 2, 4, 5], "y": [1.0, 2.0, 4.0, 5.0]})
    # session 2 has no session 3 after it, so its lead is missing (not session 4's score)
    np.testing.assert_array_equal(lead(d, "y", "client", "session"), [2.0, np.nan, 5.0, np.nan])
    np.testing.assert_array_equal(
        lead(d, "y", "client", "session", lag=2), [np.nan, 4.0, np.nan, np.nan]
    )


def test_decompose_detrended_within_is_orthogonal_to_session():
    d = pd.DataFrame(
        {"client": np.repeat(["a", "b"], 5), "session": np.tile(np.arange(1, 6), 2)}
    ).assign(x=lambda f: f["session"] * 0.5 + np.sin(np.arange(10)))
    out = decompose(d, "x", "client", "session")
    for _, part in out.groupby(d["client"]):
        s = d.loc[part.index, "session"]
        assert abs(np.dot(part["within"], s - s.mean())) < 1e-9
        assert abs(part["within"].sum()) < 1e-9
    short = decompose(d.iloc[[0, 1, 5]], "x", "client", "session")
    assert (short["within"] == 0).all()  # fewer than three values: within part 0


def test_non_integer_sessions_are_refused():
    d = pd.DataFrame({"client": ["a", "a"], "session": [1, 1.5]})
    with pytest.raises(ValueError, match="whole numbers"):
        check_sessions(d, "session", "client")


# --------------------------------------------------------------------------- within / between


def test_within_effect_recovers_truth_and_fails_when_zero(truth, null):
    ok = _within(-2.2, -1.0)
    got = [
        _est(
            within_between(s, alliance="wai", outcome="phq9", therapist="therapist", method="mlm"),
            "wai_within",
        )
        for s in (truth, null)
    ]
    assert ok(got[0]), got
    assert not ok(got[1]), got
    assert abs(got[1]) < 0.4


def test_reverse_effect_recovers_truth_and_fails_when_zero(truth, null):
    ok = _within(-0.025, -0.005)
    got = [
        _est(
            within_between(
                s,
                alliance="wai",
                outcome="phq9",
                therapist="therapist",
                effect="outcome->alliance",
                method="mlm",
            ),
            "phq9_within",
        )
        for s in (truth, null)
    ]
    assert ok(got[0]), got
    assert not ok(got[1]), got


def test_within_between_counts_every_row_and_handles_messy_data(demo):
    d = demo.sessions.copy()
    d.loc[d.index[::37], "wai"] = np.nan  # missing predictor
    d.loc[d.index[5::41], "phq9"] = np.nan  # missing response
    d = d.drop(index=d.index[3::29])  # more missed sessions (unbalanced)
    single = d.iloc[[0]].assign(client="X1", session=1)
    d = pd.concat([d, single], ignore_index=True)
    fit = within_between(d, alliance="wai", outcome="phq9", therapist="therapist", method="mlm")
    ex = fit.excluded.set_index("reason")
    assert fit.nobs + ex["n_rows"].sum() == len(d)
    assert ex.loc["single-session client", "n_clients"] == 1
    assert (
        ex.loc["missing wai at t", "n_rows"]
        == d["wai"].isna().sum() - d.loc[d["client"] == "X1", "wai"].isna().sum()
    )
    assert {"missing phq9 at t + 1", "session t + 1 missed"} <= set(ex.index)
    assert "missing at random" in fit.missing_data
    assert np.isfinite(_est(fit, "wai_within", "std_estimate"))


def test_within_between_study_and_frame_agree(demo):
    kw = {"alliance": "wai_sr", "outcome": "phq9", "therapist": "therapist", "method": "mlm"}
    a = within_between(demo, **kw)
    b = within_between(demo.sessions, **kw)
    pd.testing.assert_frame_equal(a.params, b.params)


def test_lagged_outcome_warns_of_nickell_bias(demo):
    fit = within_between(demo, alliance="wai", outcome="phq9", lagged_outcome=True, method="mlm")
    assert any("Nickell" in n for n in fit.notes)
    assert "phq9_lag1" in fit.params["term"].tolist()


def test_random_slope_and_lag_two(demo):
    fit = within_between(
        demo, alliance="wai", outcome="phq9", random_slope=True, lag=2, method="mlm"
    )
    assert "x_within" in fit.formula
    assert "no session t + 2 (last session of the client)" in fit.excluded["reason"].tolist()


# the concurrent confound: no lagged effect, alliance and symptom innovations correlated -.5
# within a session, symptoms autoregressive .5 (issue 16); latent scores, no measurement error
CONFOUND = {
    **NULL,
    "residual_correlation": -0.5,
    "symptom_autoregression": 0.5,
    "growth_sd": 0.0,
    "prior_negative_growth": 0.0,
    "symptom_slope_sd": 0.0,
    "alliance_residual_sd": 0.4,
}


def _latent(effects, seed):
    study = simulate_study(40, 10, 8, effects=effects, seed=seed, latent=True)
    lat = study.truth["latent"]
    return study, lat[lat["attended"]].rename(columns={"alliance": "wai", "symptoms": "phq9"})


def test_default_dpm_is_unconfounded_where_the_mlm_is_not():
    _, lat = _latent(CONFOUND, 4)
    dpm = within_between(lat, alliance="wai", outcome="phq9")
    row = dpm.params.iloc[0]
    assert row["term"] == "wai[t-1] -> phq9[t]"
    assert abs(row["estimate"]) < 3 * row["se"], row  # truth 0
    assert len(dpm.starts) == 3 and dpm.starts["kept"].sum() == 1
    mlm = within_between(lat, alliance="wai", outcome="phq9", method="mlm")
    naive = mlm.params.set_index("term").loc["wai_within"]
    assert naive["p"] < 0.01 and naive["estimate"] < 0  # the false effect (-0.34, SE 0.11)
    assert any("Concurrent confound" in n for n in mlm.notes)


def test_dpm_estimates_the_average_of_client_varying_effects():
    effects = {**CONFOUND, "within": -2.0, "within_sd": 1.0}
    study, lat = _latent(effects, 5)
    fit = within_between(lat, alliance="wai", outcome="phq9")
    row = fit.params.iloc[0]
    assert "average" in fit.estimand
    # the estimand is the mean effect -2.0 (tolerance: 3 SE, about 0.45 here)
    assert abs(row["estimate"] - (-2.0)) < 3 * row["se"], row
    assert len(study.truth["within_by_client"]) == 400


# the design of benchmarks/sim_null_within.py (issue 16): the concurrent confound and, on top,
# clients with a higher alliance improve faster (between_client -1.0 PHQ-9 points per session
# per item-mean point), which a DPM with fixed effects for levels only mistakes for a lagged
# effect (type-I rate .13 in 116 replications); 2000 clients here, so one fit has the
# precision of about 17 of the benchmark's replications
TRENDS = {**CONFOUND, "between_client": -1.0}


def _trend_study(within, seed):
    study = simulate_study(200, 10, 6, effects={**TRENDS, "within": within}, seed=seed, latent=True)
    lat = study.truth["latent"]
    return lat[lat["attended"]].rename(columns={"alliance": "wai", "symptoms": "phq9"})


def test_default_dpm_has_no_false_effect_when_alliance_predicts_the_rate_of_change():
    lat = _trend_study(0.0, 12)
    fit = within_between(lat, alliance="wai", outcome="phq9", fit_indices=False)
    row = fit.params.iloc[0]
    assert not any("slopes=True" in n for n in fit.notes)  # the default has the trends
    assert abs(row["estimate"]) < 2 * row["se"], row  # truth 0 (+0.07, SE 0.11)
    # the old default (fixed effects for levels only) on the same data: the false effect
    old = within_between(lat, alliance="wai", outcome="phq9", fit_indices=False, slopes=False)
    bad = old.params.iloc[0]
    assert bad["estimate"] > 2.5 * bad["se"], bad  # +0.27, SE 0.08
    assert any("slopes=True" in n for n in old.notes)


def test_default_dpm_recovers_a_lagged_effect_under_the_same_confounds():
    lat = _trend_study(-1.0, 11)
    row = within_between(lat, alliance="wai", outcome="phq9", fit_indices=False).params.iloc[0]
    assert row["ci_low"] < -1.0 < row["ci_high"], row  # -1.00, SE 0.10
    assert abs(row["estimate"] - (-1.0)) < 2 * row["se"], row
    assert row["ci_high"] < -0.5  # and far from 0


def test_default_slopes_need_enough_sessions(demo):
    short = demo.sessions[demo.sessions["session"] <= 3]
    with pytest.raises(ValueError, match="slopes=False"):
        within_between(short, alliance="wai", outcome="phq9")
    fit = within_between(short, alliance="wai", outcome="phq9", slopes=False, fit_indices=False)
    assert fit.sessions == [1, 2, 3]


def test_within_between_refusals(demo):
    with pytest.raises(ValueError, match="lag"):
        within_between(demo, alliance="wai", outcome="phq9", lag=0)
    with pytest.raises(ValueError, match="method"):
        within_between(demo, alliance="wai", outcome="phq9", method="gee")
    with pytest.raises(KeyError, match="wai_s"):
        within_between(demo.sessions, alliance="wai_s", outcome="phq9")
    only_first = demo.sessions[demo.sessions["session"] == 1]
    with pytest.raises(ValueError, match="no model can be fitted"):
        within_between(only_first, alliance="wai", outcome="phq9", method="mlm")
    with pytest.raises(TypeError, match="dpm"):
        within_between(demo, alliance="wai", outcome="phq9", n_boot=3, method="mlm")
    with pytest.raises(TypeError, match="method='mlm'"):
        within_between(demo, alliance="wai", outcome="phq9", lagged_outcome=True)


def test_dpm_delegates_to_the_sem_module(demo, monkeypatch):
    calls = {}

    def dynamic_panel(data, **kwargs):
        calls.update(kwargs, n=len(data))
        return "dpm result"

    fake = types.ModuleType("alliance.models.sem")
    fake.dynamic_panel = dynamic_panel
    monkeypatch.setitem(sys.modules, "alliance.models.sem", fake)
    monkeypatch.setattr(alliance.models, "sem", fake, raising=False)
    out = within_between(
        demo, alliance="wai", outcome="phq9", method="dpm", effect="outcome->alliance", lag=1
    )
    assert out == "dpm result"
    assert calls["effect"] == "outcome->alliance" and calls["alliance"] == "wai"
    assert calls["lag"] == 1
    with pytest.warns(DeprecationWarning, match="pass effect="):
        within_between(demo, alliance="wai", outcome="phq9", method="dpm", reverse=True)
    assert calls["effect"] == "outcome->alliance"
    with pytest.raises(ValueError, match="not understood"):
        within_between(demo, alliance="wai", outcome="phq9", effect="alliance<-outcome")


# --------------------------------------------------------------------------- early alliance


def test_early_alliance_r_near_meta_analytic_and_fails_when_zero(truth, null):
    ok = _within(0.15, 0.40)  # Flückiger et al. (2018): r = .278
    got = [
        early_alliance(s, alliance="wai", outcome="phq9", therapist="therapist").r.loc[
            "partial r", "r_benefit"
        ]
        for s in (truth, null)
    ]
    assert ok(got[0]), got
    assert not ok(got[1]), got


def test_early_alliance_direction_of_the_outcome(truth):
    def r_benefit(**kwargs):
        fit = early_alliance(truth.sessions, alliance="wai", outcome="phq9", **kwargs)
        return fit.r.loc["partial r", "r_benefit"]

    default = r_benefit()  # phq9 is a registered symptom scale: lower is better
    assert default > 0
    assert r_benefit(direction="lower_is_better") == default
    assert r_benefit(direction="higher_is_better") == -default
    with pytest.warns(DeprecationWarning, match="pass direction="):
        assert r_benefit(lower_is_better=False) == -default
    with pytest.raises(ValueError, match="not understood"):
        r_benefit(direction="down")
    # an outcome column the registry does not know: lower is better unless told
    renamed = truth.sessions.rename(columns={"phq9": "symptoms"})
    fit = early_alliance(renamed, alliance="wai", outcome="symptoms")
    assert fit.r.loc["partial r", "r_benefit"] == default


def test_early_alliance_slope_matches_generating_slopes(truth, null):
    # at equal treatment length the early-alliance effect on the end outcome is implied by the
    # slope effects: elapsed sessions x (b_T var_T + b_C var_C) / var(early alliance)
    def ratio(study):
        fit = early_alliance(
            study, alliance="wai", outcome="phq9", therapist="therapist", adjust_length=True
        )
        table, eff = fit.table, truth.truth["effects"]
        cov = -0.5 * eff["therapist_sd"] ** 2 - 0.15 * eff["client_sd"] ** 2
        implied = table["sessions_elapsed"].mean() * cov / table["alliance_early"].var()
        return _est(fit, "alliance_early") / implied

    ok = _within(0.3, 1.2)  # PHQ-9 floor and item rounding attenuate
    got = [ratio(truth), ratio(null)]
    assert ok(got[0]), got
    assert not ok(got[1]), got


def test_early_alliance_exclusions_and_session_window(demo):
    d = pd.concat([demo.sessions, demo.sessions.iloc[[0]].assign(client="X1")], ignore_index=True)
    fit = early_alliance(d, alliance="wai", outcome="phq9", early=3)
    ex = fit.excluded.set_index("reason")
    assert ex.loc["single-session client", "n_clients"] == 1
    assert fit.nobs + ex["n_clients"].sum() == d["client"].nunique()
    at2 = early_alliance(d, alliance="wai", outcome="phq9", early=2, how="session")
    assert "session 2" in at2.model
    with pytest.raises(ValueError, match="how"):
        early_alliance(d, alliance="wai", outcome="phq9", how="median")


# --------------------------------------------------------------------------- therapist vs client


def test_therapist_and_client_slopes_recover_truth_and_fail_when_zero(truth, null):
    t_ok, c_ok = _within(-0.75, -0.2), _within(-0.25, -0.04)
    fits = [
        therapist_contributions(s, alliance="wai", outcome="phq9", k=None, outcome_model="slope")
        for s in (truth, null)
    ]
    t = [_est(f, "session:alliance_therapist") for f in fits]
    c = [_est(f, "session:alliance_client") for f in fits]
    assert t_ok(t[0]) and c_ok(c[0]), (t, c)
    assert not t_ok(t[1]) and not c_ok(c[1]), (t, c)
    icc = fits[0].icc.set_index(["variable", "level"])["icc"]
    assert 0 < icc[("wai", "therapist")] < icc[("wai", "client")]


def test_therapist_model_end_design_and_refusal(demo):
    fit = therapist_contributions(demo, alliance="wai", outcome="phq9", outcome_model="end")
    assert {"alliance_therapist", "alliance_client"} <= set(fit.params["term"])
    assert set(fit.difference.index) >= {"estimate", "p"}
    with pytest.raises(ValueError, match="therapist column"):
        therapist_contributions(demo, alliance="wai", outcome="phq9", therapist=None)


# --------------------------------------------------------------------------- moderation


def _plant_interaction(study, gamma):
    """Add gamma x (detrended within alliance at t) to PHQ-9 at t + 1 for prior-negative clients."""
    d = study.sessions.merge(study.clients[["client", "prior_negative_therapy"]], on="client")
    d = d.sort_values(["client", "session"]).reset_index(drop=True)
    w = decompose(d, "wai", "client", "session")["within"]
    shift = (
        pd.Series((gamma * w * d["prior_negative_therapy"]).to_numpy(), index=d.index)
        .groupby(d["client"])
        .shift(1)
    )
    contiguous = d.groupby("client")["session"].diff().eq(1)
    d["phq9"] = d["phq9"] + shift.where(contiguous, 0.0).fillna(0.0)
    return d


def test_moderation_recovers_a_planted_interaction(truth):
    ok = _within(-1.5 - 0.5, -1.5 + 0.5)
    got = []
    for gamma in (-1.5, 0.0):
        fit = moderation(
            _plant_interaction(truth, gamma),
            alliance="wai",
            outcome="phq9",
            therapist="therapist",
            model="within_between",
            method="mlm",
        )
        got.append(_est(fit, "wai_within:prior_negative_therapy"))
        slopes = fit.simple_slopes.set_index("value")["estimate"]
        assert slopes[1.0] - slopes[0.0] == pytest.approx(got[-1])
    assert ok(got[0]), got
    assert not ok(got[1]), got  # the generating model has no moderation
    assert abs(got[1]) < 0.5


def test_moderation_early_and_plot(demo):
    fit = moderation(demo, alliance="wai_sr", outcome="phq9", therapist="therapist")
    slopes = fit.simple_slopes
    assert slopes["label"].tolist() == [
        "prior_negative_therapy=False",
        "prior_negative_therapy=True",
    ]
    assert (slopes["ci_low"] < slopes["estimate"]).all()
    ax = alliance.plots.simple_slopes(fit)
    assert len(ax.get_lines()) == 2
    assert ax.get_xlabel() == "Early alliance"
    _, ax2 = plt.subplots()
    assert alliance.plots.simple_slopes(fit, ax=ax2) is ax2
    with pytest.raises(ValueError, match="moderation"):
        alliance.plots.simple_slopes(within_between(demo, alliance="wai", outcome="phq9"))


def test_moderation_numeric_and_refusals(demo):
    fit = moderation(demo, "age", alliance="wai", outcome="phq9", model="within_between")
    assert len(fit.simple_slopes) == 3
    with pytest.raises(ValueError, match="text levels"):
        moderation(demo, "gender", alliance="wai", outcome="phq9")
    with pytest.raises(ValueError, match="varies within clients"):
        moderation(demo.sessions, "phase", alliance="wai", outcome="phq9")
    with pytest.raises(ValueError, match="model"):
        moderation(demo, alliance="wai", outcome="phq9", model="sem")


# --------------------------------------------------------------------------- ruptures


def _true_events(study):
    r = study.truth["ruptures"]
    return r[r["observed"]].assign(resolved=lambda f: f["repaired"])


def test_session_rupture_effect_recovers_truth_and_fails_when_zero(truth, null):
    # a rupture of depth d (item mean, mean 0.85) raises PHQ-9 at t + 1 by -within x d = 1.7
    ok = _within(1.0, 2.4)
    got = [
        _est(
            rupture_outcome(
                s, outcome="phq9", therapist="therapist", events=_true_events(s), unit="session"
            ),
            "rupture",
        )
        for s in (truth, null)
    ]
    assert ok(got[0]), got
    assert not ok(got[1]), got


def test_client_rupture_classes_recover_a_planted_difference(truth):
    events = _true_events(truth)
    base = rupture_outcome(truth, outcome="phq9", therapist="therapist", events=events)
    unrep = base.table.loc[lambda t: t["class"] == "unrepaired", "client"]
    d = truth.sessions.copy()
    d.loc[d["client"].isin(unrep) & (d["session"] > 1), "phq9"] += 3.0
    planted = rupture_outcome(d, outcome="phq9", therapist="therapist", events=events)
    diff = _est(planted, "rupture_unrepaired") - _est(base, "rupture_unrepaired")
    assert diff == pytest.approx(3.0, abs=0.3)
    assert abs(_est(planted, "rupture_repaired") - _est(base, "rupture_repaired")) < 0.3


def test_rupture_outcome_detects_from_alliance(demo):
    fit = rupture_outcome(
        demo,
        alliance="wai_sr",
        outcome="phq9",
        therapist="therapist",
        detect={"method": "drop", "threshold": 8},
    )
    assert fit.classes["n_clients"].sum() == fit.nobs
    with pytest.raises(ValueError, match="threshold"):
        rupture_outcome(demo, alliance="wai_sr", outcome="phq9")  # no RC size for WAI-SR
    with pytest.raises(ValueError, match="unit must be"):
        rupture_outcome(demo, outcome="phq9", events=demo.events, unit="therapist")
    with pytest.warns(DeprecationWarning, match="pass unit="):
        old = rupture_outcome(demo, outcome="phq9", events=demo.events, level="session")
    new = rupture_outcome(demo, outcome="phq9", events=demo.events, unit="session")
    pd.testing.assert_frame_equal(old.params, new.params)
    assert "session level" in new.model


# --------------------------------------------------------------------------- mediation


def test_mediation_recovers_a_path_and_indirect_effect(truth, null):
    ok = _within(0.03, 0.05)  # reflection_effect = 0.04 per reflection (alliance is the response)
    fits = [
        mediation(
            s, "reflection", alliance="wai", outcome="phq9", therapist="therapist", n_boot=0, seed=1
        )
        for s in (truth, null)
    ]
    a = [_est(f, "a_within") for f in fits]
    assert ok(a[0]) and not ok(a[1]), a
    ind = [fits[i].params.set_index("term").loc["indirect_within"] for i in (0, 1)]
    assert ind[0]["ci_high"] < 0  # 0.04 x (attenuated) -2.0
    assert ind[1]["ci_low"] <= 0 <= ind[1]["ci_high"]


def test_mediation_monte_carlo_se_matches_the_delta_method(demo):
    # the MC draws of a x b with (a, b) jointly normal from the stacked model: their SD equals
    # the exact SD of a product of correlated normals, sqrt(a^2 s_b^2 + b^2 s_a^2 + 2ab s_ab +
    # s_a^2 s_b^2 + s_ab^2); within, plus the variance of cov(a_j, b_j) (drawn independently);
    # to Monte Carlo error, 5% with 20000 draws
    fit = mediation(
        demo, "reflection", alliance="wai", outcome="phq9", therapist="therapist", n_boot=0, seed=2
    )
    p = fit.params.set_index("term")
    vc = fit.stacked.cov_params
    for part, (ta, tb) in {"within": ("a_xw", "b_mw"), "between": ("a_xb", "b_mb")}.items():
        a, b = p.loc[f"a_{part}", "estimate"], p.loc[f"b_{part}", "estimate"]
        va, vb, cab = vc.loc[ta, ta], vc.loc[tb, tb], vc.loc[ta, tb]
        var = a**2 * vb + b**2 * va + 2 * a * b * cab + va * vb + cab**2
        if part == "within":
            var += p.loc["cov_ab_within", "se"] ** 2
        assert p.loc[f"indirect_{part}", "se"] == pytest.approx(np.sqrt(var), rel=0.05), part
    assert p.loc["indirect_within", "estimate"] == pytest.approx(
        p.loc["ab_within", "estimate"] + p.loc["cov_ab_within", "estimate"]
    )
    terms = fit.stacked.params["term"].tolist()
    assert {"b_mw", "b_mb", "b_xw", "b_xb", "b_yw"} <= set(terms)  # b adjusts for x and y at t
    assert any("Nickell" in n for n in fit.notes)
    assert fit.stacked.residual_ratios.index.tolist() == ["alliance", "outcome"]


def test_mediation_cluster_bootstrap_is_reproducible(demo):
    few = demo.sessions[demo.sessions["therapist"].isin(demo.sessions["therapist"].unique()[:8])]
    kw = dict(alliance="wai", outcome="phq9", therapist="therapist", n_boot=3, seed=3)
    a = mediation(few, "reflection", random_paths=False, **kw)
    b = mediation(few, "reflection", random_paths=False, **kw)
    pd.testing.assert_frame_equal(a.params, b.params)
    assert len(a.boot) + a.n_boot_failed == 3
    row = a.params.set_index("term").loc["indirect_within"]
    assert row["ci_low"] < row["ci_high"]
    assert any("resampling therapists" in n for n in a.notes)
    assert a.params.set_index("term").loc["cov_ab_within", "estimate"] == 0.0


# --------------------------------------------------------------------------- results API


def test_every_result_has_the_common_api(demo):
    results = [
        within_between(demo, alliance="wai", outcome="phq9", therapist="therapist"),
        early_alliance(demo, alliance="wai", outcome="phq9"),
        therapist_contributions(demo, alliance="wai", outcome="phq9"),
        moderation(demo, alliance="wai", outcome="phq9"),
        rupture_outcome(demo, outcome="phq9", events=demo.events, unit="session"),
    ]
    for res in results:
        assert isinstance(res, ModelResult)
        assert list(res.params.columns[:9]) == [
            "term",
            "estimate",
            "se",
            "df",
            "statistic",
            "p",
            "ci_low",
            "ci_high",
            "std_estimate",
        ]
        assert res.params["std_estimate"].notna().any()
        assert list(res.excluded.columns) == ["reason", "column", "n_rows", "n_clients"]
        assert res.citation and res.missing_data
        assert res.nobs > 0 and np.isfinite(res.loglik)
        assert "model" in res.to_frame().columns
        assert isinstance(res.summary(), str)
        assert list(res.apa_table().to_frame().columns) == ["Term", "b", "SE", "95% CI", "β", "p"]


def test_lazy_submodules():
    with pytest.raises(AttributeError):
        alliance.models.no_such_module  # noqa: B018


def test_dpm_runs_the_sem_module(demo):
    fit = within_between(
        demo, alliance="wai", outcome="phq9", method="dpm", max_sessions=6, therapist=None
    )
    assert isinstance(fit, ModelResult)
    assert len(fit.params)
