"""Tests of alliance.models.sem: lavaan agreement, recovery of simulated truth, data handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.models import _sem_core as core
from alliance.models import sem
from alliance.simulate import simulate_study

REF = Path(__file__).parent / "reference"


# --------------------------------------------------------------------------- lavaan


@pytest.fixture(scope="module")
def panel_long():
    return pd.read_csv(REF / "data" / "sem_panel_long.csv")


@pytest.fixture(scope="module")
def lavaan():
    return json.loads((REF / "lavaan_sem.json").read_text())


@pytest.fixture(scope="module")
def fits(panel_long):
    return {
        "dpm": sem.dynamic_panel(panel_long),
        "dpm_slopes": sem.dynamic_panel(panel_long, slopes=True),
        "riclpm": sem.riclpm(panel_long),
    }


def _key(lhs, op, rhs):
    return ("~~", *sorted([lhs, rhs])) if op == "~~" else (op, lhs, rhs)


@pytest.mark.parametrize("model", ["dpm", "dpm_slopes", "riclpm"])
def test_agrees_with_lavaan(fits, lavaan, model):
    fit, ref = fits[model], lavaan[model]
    assert fit.converged
    assert fit.fit_measures["npar"] == ref["npar"]
    assert fit.nobs == ref["nobs"]
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    ours = fit.parameter_table
    theirs = pd.DataFrame(ref["params"])
    theirs["key"] = [_key(*k) for k in zip(theirs.lhs, theirs.op, theirs.rhs, strict=True)]
    ours = ours.assign(key=[_key(*k) for k in zip(ours.lhs, ours.op, ours.rhs, strict=True)])
    both = ours[ours["free"]].merge(theirs, on="key", suffixes=("", "_lavaan"))
    assert len(both) == int(ours["free"].sum())  # every free parameter has a lavaan twin
    # ML estimates: lavaan stops at its own convergence tolerance, ours after Newton steps
    scale = np.maximum(np.abs(both["est_lavaan"]), both["se_lavaan"])
    assert np.max(np.abs(both["est"] - both["est_lavaan"]) / scale) < 1e-4
    assert np.max(np.abs(both["se"] / both["se_lavaan"] - 1)) < 5e-5
    paths = both[both["op"] == "~"]
    assert np.max(np.abs(paths["std_all"] - paths["std.all"])) < 1e-5


def test_lavaan_found_a_worse_local_maximum_that_we_avoid(fits, lavaan):
    # the DPM likelihood of these data has two maxima; the reference keeps lavaan's best
    found = lavaan["dpm"]["local_maxima"]
    assert min(found.values()) < lavaan["dpm"]["loglik"] - 10
    assert fits["dpm"].loglik == pytest.approx(max(found.values()), abs=1e-6)


FIT_MEASURES = [
    "chisq",
    "df",
    "pvalue",
    "baseline.chisq",
    "baseline.df",
    "cfi",
    "tli",
    "rmsea",
    "rmsea.ci.lower",
    "rmsea.ci.upper",
    "rmsea.pvalue",
    "srmr",
    "unrestricted.logl",
]


@pytest.fixture(scope="module")
def lavaan_fit():
    return json.loads((REF / "lavaan_fit_measures.json").read_text())


@pytest.mark.parametrize("model", ["dpm", "dpm_slopes", "riclpm"])
def test_fit_measures_agree_with_lavaan(fits, lavaan_fit, model):
    # lavaan_fit_measures.R: fitMeasures with the EM of the unrestricted model (H1) run to
    # convergence; the chi-square needs both log-likelihoods, so 1e-5 absolute on every index
    ours, ref = fits[model].fit_measures, lavaan_fit[model]["converged_h1"]
    assert ours["df"] == ref["df"] and ours["baseline.df"] == ref["baseline.df"]
    for name in FIT_MEASURES:
        assert ours[name] == pytest.approx(ref[name], abs=1e-5), name


@pytest.mark.parametrize("model", ["dpm", "dpm_slopes", "riclpm"])
def test_fit_measures_agree_with_lavaan_defaults(fits, lavaan_fit, model):
    # on these data lavaan's default EM (em.h1.tol = 1e-5) already reaches the H1 maximum
    ours, ref = fits[model].fit_measures, lavaan_fit[model]["default"]
    gap = lavaan_fit[model]["converged_h1"]["unrestricted.logl"] - ref["unrestricted.logl"]
    assert abs(gap) < 1e-6
    for name in FIT_MEASURES:
        assert ours[name] == pytest.approx(ref[name], abs=1e-5), name


def test_fit_measures_can_be_skipped(panel_long):
    fit = sem.riclpm(panel_long, fit_indices=False)
    assert "chisq" not in fit.fit_measures and "loglik" in fit.fit_measures


def test_gradient_is_the_derivative_of_the_loglik(panel_long):
    panel = sem._prepare(
        panel_long,
        "alliance",
        "outcome",
        "client",
        "session",
        lag=1,
        max_sessions=4,
        min_clients=10,
        n_waves_needed=3,
    )
    data = np.hstack([panel.y, panel.x])
    rng = np.random.default_rng(3)
    for table in (
        sem.dpm_table(4, slopes=True, starts=sem._starts(panel)),
        sem.riclpm_table(4, starts=sem._starts(panel)),
    ):
        ram = core._Ram(table)
        obj = core._Objective(ram, core._patterns(data)[0])
        theta = ram.start + rng.normal(0, 0.01, ram.n_par)
        _, grad = obj.loglik(theta, gradient=True)
        eye = np.eye(ram.n_par) * 1e-6
        numeric = [(obj.loglik(theta + e) - obj.loglik(theta - e)) / 2e-6 for e in eye]
        assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- recovery


def _dpm_data(n=800, waves=6, rho_y=0.3, beta_yx=-0.5, rho_x=0.4, beta_xy=-0.1, seed=5):
    """A dynamic panel with fixed effects correlated with the predictors (long format)."""
    rng = np.random.default_rng(seed)
    eta = rng.multivariate_normal([0, 0], [[1.0, 0.4], [0.4, 1.0]], n)
    y = np.empty((n, waves))
    x = np.empty((n, waves))
    y[:, 0] = 2 * eta[:, 0] + rng.normal(0, 1, n)
    x[:, 0] = 2 * eta[:, 1] + rng.normal(0, 1, n)
    for t in range(1, waves):
        y[:, t] = 10 - 0.3 * t + rho_y * y[:, t - 1] + beta_yx * x[:, t - 1] + eta[:, 0]
        y[:, t] += rng.normal(0, 1, n)
        x[:, t] = 3 + rho_x * x[:, t - 1] + beta_xy * y[:, t - 1] + eta[:, 1]
        x[:, t] += rng.normal(0, 0.8, n)
    long = pd.DataFrame(
        {
            "client": np.repeat(np.arange(n), waves),
            "session": np.tile(np.arange(1, waves + 1), n),
            "outcome": y.ravel(),
            "alliance": x.ravel(),
        }
    )
    drop = rng.random(len(long)) < 0.08  # missed sessions
    return long[~drop | (long["session"] == 1)].reset_index(drop=True)


@pytest.fixture(scope="module")
def clean_panel():
    return _dpm_data()


def test_dpm_recovers_lagged_effects_of_a_dynamic_panel(clean_panel):
    fit = sem.dynamic_panel(clean_panel)
    p = fit.params.set_index("label")
    truth = {"rho_y": 0.3, "beta_yx": -0.5, "rho_x": 0.4, "beta_xy": -0.1}
    for label, value in truth.items():
        assert abs(p.loc[label, "estimate"] - value) < 3 * p.loc[label, "se"], label
    assert p.loc["beta_yx", "ci_low"] < -0.5 < p.loc["beta_yx", "ci_high"]


def test_naive_fixed_effects_regression_has_nickell_bias(clean_panel):
    # within-client OLS of y_t on y_{t-1} and x_{t-1} (the "naive" model): rho is biased
    # down by about (1 + rho) / (T - 1) (Nickell, 1981); the DPM is not
    wide = clean_panel.pivot(index="client", columns="session")
    y, x = wide["outcome"].to_numpy(), wide["alliance"].to_numpy()
    rows = pd.DataFrame(
        {
            "client": np.repeat(np.arange(len(y)), y.shape[1] - 1),
            "y": y[:, 1:].ravel(),
            "ylag": y[:, :-1].ravel(),
            "xlag": x[:, :-1].ravel(),
        }
    ).dropna()
    demeaned = rows[["y", "ylag", "xlag"]] - rows.groupby("client")[
        ["y", "ylag", "xlag"]
    ].transform("mean")
    coef = np.linalg.lstsq(demeaned[["ylag", "xlag"]], demeaned["y"], rcond=None)[0]
    dpm = sem.dynamic_panel(clean_panel).params.set_index("label")
    assert coef[0] < 0.3 - 0.1  # biased towards zero and beyond
    assert abs(dpm.loc["rho_y", "estimate"] - 0.3) < 0.08


@pytest.fixture(scope="module")
def simulated_fits():
    # reliable within-client alliance variation and no unexplained symptom slopes, so that
    # the observed-score model can see the generating within effect
    out = {}
    for within in (-2.0, 0.0):
        study = simulate_study(
            n_therapists=50,
            clients_per_therapist=10,
            n_sessions=8,
            effects={"within": within, "symptom_slope_sd": 0.0, "alliance_residual_sd": 0.5},
            seed=7,
        )
        sessions = study.sessions.assign(alliance_item=study.sessions["wai_sr"] / 12)
        out[within] = (
            study,
            sem.dynamic_panel(sessions, alliance="alliance_item", outcome="phq9"),
            sessions,
        )
    return out


def test_dpm_recovers_the_simulated_within_effect(simulated_fits):
    study, fit, _ = simulated_fits[-2.0]
    truth = study.truth["effects"]["within"]
    est = fit.params.set_index("label").loc["beta_yx"]
    # item-level measurement error in the WAI-SR total attenuates any observed-score effect
    # (reliability of the within-client deviation about .9 here), hence the band below -2
    assert truth - 0.4 < est["estimate"] < truth + 0.6
    assert est["ci_high"] < -1.0


def test_dpm_finds_no_effect_when_the_within_effect_is_zero(simulated_fits):
    _, fit, _ = simulated_fits[0.0]
    est = fit.params.set_index("label").loc["beta_yx"]
    assert abs(est["estimate"]) < 0.4
    assert not (-2.4 < est["estimate"] < -1.4)  # the recovery band above rejects it


def test_alliance_scale_only_rescales_the_paths(simulated_fits):
    _, item_fit, sessions = simulated_fits[-2.0]
    total_fit = sem.dynamic_panel(sessions, alliance="wai_sr", outcome="phq9")
    a = item_fit.params.set_index("label")
    b = total_fit.params.set_index("label")
    # wai_sr = 12 x item mean: alliance -> outcome shrinks by 12, outcome -> alliance grows
    assert b.loc["beta_yx", "estimate"] * 12 == pytest.approx(a.loc["beta_yx", "estimate"], 1e-5)
    assert b.loc["beta_xy", "estimate"] / 12 == pytest.approx(a.loc["beta_xy", "estimate"], 1e-5)
    assert b.loc["beta_yx", "std_estimate"] == pytest.approx(a.loc["beta_yx", "std_estimate"], 1e-5)
    # the likelihood changes by the Jacobian of the rescaling only
    used = sessions[sessions["session"] <= item_fit.sessions[-1]]
    n_alliance = int(used["alliance_item"].notna().sum())
    assert total_fit.loglik == pytest.approx(item_fit.loglik - n_alliance * np.log(12), abs=1e-5)


# --------------------------------------------------------------------------- results


def test_result_object(fits):
    fit = fits["dpm"]
    assert fit.params["term"].tolist() == [
        "alliance[t-1] -> outcome[t]",
        "outcome[t-1] -> alliance[t]",
        "outcome[t-1] -> outcome[t]",
        "alliance[t-1] -> alliance[t]",
    ]
    assert fit.focal_term == "alliance[t-1] -> outcome[t]"
    assert fit.params["std_estimate"].notna().all()
    assert set(fit.params["path"]) == {"cross-lagged", "autoregressive"}
    assert "FIML" in fit.missing_data and "missing at random" in fit.missing_data
    assert "Allison" in fit.citation
    assert "dynamic panel" in fit.summary()
    assert fit.to_frame()["model"].iloc[0] == fit.model
    assert fit.apa_table().to_frame().columns.tolist() == ["Term", "b", "SE", "95% CI", "β", "p"]
    assert fit.sessions == [1, 2, 3, 4, 5, 6]
    vc = fits["riclpm"].variance_components
    assert vc["group"].eq("client (random intercept)").all() and len(vc) == 3
    assert "Hamaker" in fits["riclpm"].citation


def test_reverse_leads_with_outcome_to_alliance(panel_long, fits):
    fit = sem.dynamic_panel(panel_long, effect="outcome->alliance")
    assert fit.focal_term == "outcome[t-1] -> alliance[t]"
    a = fit.params.set_index("label")["estimate"]
    b = fits["dpm"].params.set_index("label")["estimate"]
    assert np.allclose(a[b.index], b, rtol=1e-6)


def test_single_session_clients_are_kept_and_missing_rows_counted(panel_long, fits):
    data = panel_long.copy()
    n_single = int((data.groupby("client").size() == 1).sum())
    assert n_single > 0
    assert fits["dpm"].nobs == data["client"].nunique()
    assert any("rated only one session" in n for n in fits["dpm"].notes)
    # a row without either score is left out and counted
    empty = data["alliance"].isna() & data["outcome"].isna()
    assert empty.sum() == 2  # the reference data have two already
    data.loc[[3, 4], ["alliance", "outcome"]] = np.nan
    fit = sem.dynamic_panel(data, max_sessions=5)
    ex = fit.excluded.set_index("reason")
    assert ex.loc["no alliance or outcome score at the session", "n_rows"] == 4
    scored = data["alliance"].notna() | data["outcome"].notna()
    late = int(((data["session"] > 5) & scored).sum())
    assert ex.loc["session after max_sessions=5", "n_rows"] == late
    assert fit.sessions == [1, 2, 3, 4, 5]


def test_thin_late_sessions_are_cut_and_counted(panel_long):
    late = panel_long[panel_long["session"] == 6].head(3).assign(session=7)
    data = pd.concat([panel_long, late], ignore_index=True)
    fit = sem.riclpm(data, min_clients=10)
    assert fit.sessions[-1] == 6
    ex = fit.excluded.set_index("reason")["n_rows"]
    assert ex[ex.index.str.startswith("session after 6")].sum() == 3


def test_accepts_a_study():
    study = simulate_study(n_therapists=6, clients_per_therapist=10, n_sessions=4, seed=3)
    fit = sem.dynamic_panel(study, alliance="wai_sr", outcome="phq9", therapist="therapist")
    assert fit.nobs == study.sessions["client"].nunique()
    assert any("therapist" in n for n in fit.notes)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(alliance="wai"), KeyError, "alliance column"),
        (dict(alliance="outcome"), ValueError, "two\\s+different series"),
        (dict(lag=0), ValueError, "lag must be"),
        (dict(lag=5), ValueError, "consecutive"),
        (dict(max_sessions=1), ValueError, "raise max_sessions"),
    ],
)
def test_refuses_what_it_cannot_fit(panel_long, change, error, match):
    with pytest.raises(error, match=match):
        sem.dynamic_panel(panel_long, **change)


def test_refuses_bad_sessions(panel_long):
    bad = panel_long.copy()
    bad["session"] = bad["session"].astype(float)
    bad.loc[5, "session"] = 2.5
    with pytest.raises(ValueError, match="non-integer"):
        sem.riclpm(bad)
    dup = pd.concat([panel_long, panel_long.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="repeat a client x session"):
        sem.riclpm(dup)
    few = panel_long[panel_long["client"].isin(panel_long["client"].unique()[:12])]
    with pytest.raises(ValueError, match="too few|consecutive"):
        sem.dynamic_panel(few, min_clients=2)


# --------------------------------------------------------------------------- robust (MLR)


@pytest.fixture(scope="module")
def lavaan_mlr():
    return json.loads((REF / "lavaan_mlr_cluster.json").read_text())


@pytest.fixture(scope="module")
def nested_panel(panel_long):
    therapists = pd.read_csv(REF / "data" / "sem_panel_therapists.csv")
    return panel_long.merge(therapists, on="client", how="left", validate="many_to_one")


ROBUST_FITS = {
    "dpm": lambda d, **k: sem.dynamic_panel(d, **k),
    "dpm_slopes": lambda d, **k: sem.dynamic_panel(d, slopes=True, **k),
    "riclpm": lambda d, **k: sem.riclpm(d, **k),
}


def _compare_with_lavaan(fit, ref):
    ours = fit.parameter_table
    theirs = pd.DataFrame(ref["params"])
    theirs["key"] = [_key(*k) for k in zip(theirs.lhs, theirs.op, theirs.rhs, strict=True)]
    ours = ours.assign(key=[_key(*k) for k in zip(ours.lhs, ours.op, ours.rhs, strict=True)])
    both = ours[ours["free"]].merge(theirs, on="key", suffixes=("", "_lavaan"))
    assert len(both) == int(ours["free"].sum())
    # lavaan_mlr_cluster.R: estimator = "MLR", cluster = "therapist"; stated tolerance 1e-4
    assert np.max(np.abs(both["se"] / both["se_lavaan"] - 1)) < 1e-4
    ref_fm, ours_fm = ref["converged_h1"], fit.fit_measures
    assert ours_fm["chisq.scaled"] == pytest.approx(ref_fm["chisq.scaled"], rel=1e-4)
    assert ours_fm["chisq.scaling.factor"] == pytest.approx(
        ref_fm["chisq.scaling.factor"], abs=1e-4
    )
    assert ours_fm["pvalue.scaled"] == pytest.approx(ref_fm["pvalue.scaled"], abs=1e-4)
    assert ours_fm["df.scaled"] == ref_fm["df.scaled"]
    return both


@pytest.mark.parametrize("model", ["dpm", "dpm_slopes", "riclpm"])
def test_cluster_robust_se_and_scaled_chisq_agree_with_lavaan(nested_panel, lavaan_mlr, model):
    ref = lavaan_mlr[model]
    assert ref["se"] == "robust.cluster" and ref["test"] == "yuan.bentler.mplus"
    fit = ROBUST_FITS[model](nested_panel, therapist="therapist", se="robust")
    assert fit.se_type == "MLR, clustered by therapist" and fit.n_clusters == 20
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    both = _compare_with_lavaan(fit, ref)
    # the robust SEs are not the ML SEs (the comparison above could fail)
    assert np.max(np.abs(both["se"] / both["se_ml"] - 1)) > 0.05
    # params (the four lagged paths) carry the robust SEs
    p = fit.params.set_index("label")
    table = fit.parameter_table.drop_duplicates("label").set_index("label")
    assert np.allclose(p["se"], table.loc[p.index, "se"])
    assert any("clustered by 'therapist'" in n for n in fit.notes)
    assert "MLR" in fit.citation


def test_mlr_without_clusters_agrees_with_lavaan(panel_long, lavaan_mlr):
    # no therapist column: se="robust" is lavaan's plain MLR (clients independent)
    fit = sem.dynamic_panel(panel_long, se="robust")
    assert fit.se_type == "MLR" and fit.n_clusters == 0
    _compare_with_lavaan(fit, lavaan_mlr["mlr_no_cluster"])


def test_casewise_scores_sum_to_the_gradient(panel_long):
    panel = sem._prepare(
        panel_long,
        "alliance",
        "outcome",
        "client",
        "session",
        lag=1,
        max_sessions=4,
        min_clients=10,
        n_waves_needed=3,
    )
    data = np.hstack([panel.y, panel.x])
    data = np.vstack([data, np.full(data.shape[1], np.nan)])  # an empty row scores 0
    rng = np.random.default_rng(4)
    for table in (
        sem.dpm_table(4, slopes=True, starts=sem._starts(panel)),
        sem.riclpm_table(4, starts=sem._starts(panel)),
    ):
        ram = core._Ram(table)
        obj = core._Objective(ram, core._patterns(data)[0])
        theta = ram.start + rng.normal(0, 0.01, ram.n_par)
        _, grad = obj.loglik(theta, gradient=True)
        scores = core.casewise_scores(table, data, theta)
        assert scores.shape == (len(data), ram.n_par)
        assert np.all(scores[-1] == 0)
        assert np.allclose(scores.sum(axis=0), grad, rtol=1e-9, atol=1e-8)


def test_se_auto_clusters_only_with_enough_therapists(nested_panel, fits):
    # 20 therapists >= 15: auto clusters by therapist, with the few-cluster note (< 30)
    fit = sem.riclpm(nested_panel, therapist="therapist", fit_indices=False)
    assert fit.se_type == "MLR, clustered by therapist" and fit.n_clusters == 20
    assert any("only 20 therapists may be somewhat too small" in n for n in fit.notes)
    assert not any("does not model" in n for n in fit.notes)
    assert "chisq.scaled" not in fit.fit_measures  # fit_indices=False skips every test
    # 10 therapists (pairs merged) < 15: auto keeps the ML SEs (equal to the ML fit), says why
    number = nested_panel["therapist"].str[1:].astype(int)
    merged = nested_panel.assign(therapist="P" + ((number + 1) // 2).astype(str))
    fit = sem.riclpm(merged, therapist="therapist", fit_indices=False)
    assert fit.se_type == "ML" and fit.n_clusters == 0
    assert np.allclose(fit.params["se"], fits["riclpm"].params["se"], rtol=1e-6)
    assert any("only 10 therapists" in n and "se='robust'" in n for n in fit.notes)
    assert any("does not model" in n for n in fit.notes)
    # no therapist column: ML unless asked
    assert sem.riclpm(nested_panel, fit_indices=False).se_type == "ML"


def test_se_refuses_bad_input(nested_panel):
    with pytest.raises(ValueError, match="se must be one of"):
        sem.riclpm(nested_panel, se="mlr")
    bad = nested_panel.copy()
    bad.loc[bad["client"] == bad["client"].iloc[0], "therapist"] = np.nan
    with pytest.raises(ValueError, match="no 'therapist' value"):
        sem.riclpm(bad, therapist="therapist", se="robust")
    two = nested_panel.copy()
    two.loc[two.index[0], "therapist"] = "T99"
    with pytest.raises(ValueError, match="more than one 'therapist'"):
        sem.riclpm(two, therapist="therapist", se="robust")
    with pytest.raises(KeyError):
        sem.riclpm(nested_panel, therapist="therapist_id", se="robust")


def test_saturated_information_is_minus_the_hessian(panel_long):
    # the analytic observed information of the unrestricted model behind chisq.scaled,
    # against central differences of the analytic gradient, away from the maximum
    panel = sem._prepare(
        panel_long,
        "alliance",
        "outcome",
        "client",
        "session",
        lag=1,
        max_sessions=4,
        min_clients=10,
        n_waves_needed=3,
    )
    data = np.hstack([panel.y, panel.x])
    rng = np.random.default_rng(1)
    mean1 = np.nanmean(data, axis=0) + rng.normal(0, 0.1, data.shape[1])
    cov1 = pd.DataFrame(data).cov().to_numpy()
    table = core._saturated_table(mean1, cov1)
    ram = core._Ram(table)
    obj = core._Objective(ram, core._patterns(data)[0])
    numeric = -core._hessian(lambda t: obj.loglik(t, gradient=True)[1], ram.start.copy())
    analytic = core.saturated_information(data, mean1, cov1)
    assert np.max(np.abs(numeric - analytic)) < 1e-6 * np.max(np.abs(analytic))
