"""alliance.dyad: agreement, response surface analysis and the one-with-many model.

Reference values come from tests/reference/dyad_reference.R (lm + vcov, deriv() for the delta
method, lme4/lmerTest) on the committed CSVs written by tests/reference/make_dyad_data.py.
Tolerance: 1e-6 relative (absolute for values near zero) for OLS and closed-form values,
1e-5 for the mixed models (two optimizers reach the same REML optimum to about 1e-7).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import dyad
from alliance.results import PARAM_COLUMNS, Result

REF = Path(__file__).parent / "reference"
R = json.loads((REF / "dyad_reference.json").read_text())
X, Y = "wai_client", "wai_therapist"


@pytest.fixture(scope="module")
def clients():
    return pd.read_csv(REF / "data" / "dyad_clients.csv", dtype={"client": str})


@pytest.fixture(scope="module")
def sessions():
    return pd.read_csv(REF / "data" / "dyad_sessions.csv", dtype={"client": str})


def close(ours, theirs, tol):
    np.testing.assert_allclose(
        np.asarray(ours, float), np.asarray(theirs, float), rtol=tol, atol=tol
    )


# ---------------------------------------------------------------- references (R)


def test_rsa_ols_matches_lm_and_its_covariance(clients):
    fit = dyad.rsa(clients, x=X, y=Y, outcome="outcome")
    ref = R["rsa_ols"]
    assert fit.centre == pytest.approx(ref["centre"], rel=1e-12)
    close(fit.params["estimate"], ref["coef"], 1e-6)
    close(fit.params["se"], ref["se"], 1e-6)
    assert (fit.params["df"] == ref["df"]).all()
    surf = pd.DataFrame(ref["surface"]).set_index("term")
    assert fit.surface.index.tolist() == ["a1", "a2", "a3", "a4", "a5"]
    for col in ("estimate", "se", "df", "statistic", "p"):
        close(fit.surface[col], surf[col], 1e-6)
    for term, row in ref["stationary"].items():
        close(fit.stationary.loc[term, ["estimate", "se"]], [row["estimate"], row["se"]], 1e-6)


def test_rsa_with_therapists_matches_lmer_and_contest(clients):
    fit = dyad.rsa(clients, x=X, y=Y, outcome="outcome", therapist="therapist")
    ref = R["rsa_lmm"]
    close(fit.params["estimate"], ref["coef"], 1e-5)
    close(fit.params["se"], ref["se"], 1e-5)
    surf = pd.DataFrame(ref["surface"]).set_index("term")
    for col in ("estimate", "se", "df", "statistic", "p"):
        close(fit.surface[col], surf[col], 1e-5)
    for term, row in ref["stationary"].items():
        close(fit.stationary.loc[term, ["estimate", "se"]], [row["estimate"], row["se"]], 1e-5)
    assert fit.mixed_model.sigma == pytest.approx(ref["sigma"], rel=1e-5)


def test_apim_matches_lmer(clients):
    fit = dyad.apim(clients, client_rating=X, therapist_rating=Y, outcome="outcome")
    ref = R["apim"]
    assert fit.params["term"].tolist() == [
        "Intercept",
        f"{X} within therapist",
        f"{X} therapist mean",
        f"{Y} within therapist",
        f"{Y} therapist mean",
    ]
    order = [
        ref["terms"].index(t)
        for t in ("(Intercept)", "c_within", "c_between", "t_within", "t_between")
    ]
    for col in ("estimate", "se", "df", "p"):
        close(fit.params[col], np.asarray(ref[col])[order], 1e-5)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-7)
    close(fit.variance_components["vcov"], ref["vcov"], 1e-5)
    assert any("not a full APIM" in n for n in fit.notes)


def test_agreement_matches_r(sessions):
    fit = dyad.agreement(sessions, x=X, y=Y, random_slope=False)
    ref = R["agreement"]
    p = fit.params.set_index("term")
    assert ref["within_r"] == pytest.approx(ref["within_r_rmcorr"], rel=1e-12)
    assert p.loc["within-client r", "estimate"] == pytest.approx(ref["within_r"], rel=1e-10)
    assert p.loc["within-client r", "df"] == ref["within_df"]
    assert p.loc["between-client r", "estimate"] == pytest.approx(ref["between_r"], rel=1e-10)
    assert p.loc["between-client r", "p"] == pytest.approx(ref["between_p"], rel=1e-8)
    # cor.test's Fisher interval uses se 1/sqrt(k - 3), ours 1/sqrt(df - 1) with df = k - 2
    close(p.loc["between-client r", ["ci_low", "ci_high"]], ref["between_ci"], 1e-10)
    diff = ref["difference"]
    rows = p.loc[["mean difference (x - y)", "difference change per session"]]
    for col in ("estimate", "se", "df"):
        close(rows[col], diff[col], 1e-5)


# ---------------------------------------------------------------- recovery and null


def test_agreement_recovers_the_simulated_truth():
    study = dyad.simulate_dyads(n_therapists=40, clients_per_therapist=10, n_sessions=8, seed=3)
    fit = dyad.agreement(study, x=X, y=Y, therapist="therapist")
    p = fit.params.set_index("term")["estimate"]
    t = study.truth
    assert abs(p["within-client r"] - t["within_r"]) < 0.05
    assert abs(p["between-client r"] - t["between_r"]) < 0.05
    ci = fit.params.set_index("term").loc["mean difference (x - y)", ["ci_low", "ci_high"]]
    assert ci["ci_low"] < t["mean_difference"] < ci["ci_high"]
    slope = fit.params.set_index("term").loc["difference change per session"]
    assert slope["ci_low"] < t["difference_slope"] < slope["ci_high"]
    assert set(fit.dyads["category"]) <= {"agreement", "x higher", "y higher"}
    share = p["share discrepant"]
    assert share == pytest.approx((fit.dyads["category"] != "agreement").mean())


@pytest.mark.parametrize("therapist", [None, "therapist"])
def test_rsa_recovers_the_discrepancy_effect(therapist):
    study = dyad.simulate_dyads(
        n_therapists=30,
        clients_per_therapist=10,
        n_sessions=4,
        client_effect=0.3,
        discrepancy=-1.0,
        seed=5,
    )
    fit = dyad.rsa(study, x=X, y=Y, outcome="outcome", therapist=therapist)
    truth = study.truth
    for a in ("a1", "a2", "a3", "a4", "a5"):
        row = fit.surface.loc[a]
        assert row["ci_low"] < truth[a] < row["ci_high"], a
    assert fit.congruence.set_index("term").loc["a4", "met"]


def test_apim_recovers_actor_and_partner_effects():
    study = dyad.simulate_dyads(
        n_therapists=40, clients_per_therapist=10, client_effect=0.5, therapist_effect=0.2, seed=7
    )
    fit = dyad.apim(study, client_rating=X, therapist_rating=Y, outcome="outcome")
    p = fit.params.set_index("term")
    for col, truth in ((X, 0.5), (Y, 0.2)):
        for part in ("within therapist", "therapist mean"):
            row = p.loc[f"{col} {part}"]
            assert row["ci_low"] < truth < row["ci_high"], (col, part)


def test_null_discrepancy_is_not_significant_more_often_than_nominal():
    # 200 simulated studies without a discrepancy effect (a4 = 0): the a4 test at .05
    # rejects at most 18 times (a binomial(200, .05) count exceeds 18 with probability .004)
    hits = 0
    for seed in range(200):
        study = dyad.simulate_dyads(
            n_therapists=10,
            clients_per_therapist=6,
            n_sessions=1,
            client_effect=0.3,
            seed=1000 + seed,
        )
        fit = dyad.rsa(study, x=X, y=Y, outcome="outcome")
        hits += fit.surface.loc["a4", "p"] < 0.05
    assert hits <= 18, hits
    assert hits >= 1  # the test is not degenerate


# ---------------------------------------------------------------- the contract


def test_results_honour_the_contract(clients, sessions):
    fits = [
        dyad.agreement(sessions, x=X, y=Y, therapist="therapist"),
        dyad.rsa(clients, x=X, y=Y, outcome="outcome"),
        dyad.apim(clients, client_rating=X, therapist_rating=Y, outcome="outcome"),
    ]
    for fit in fits:
        assert isinstance(fit, Result)
        assert list(fit.params.columns[:8]) == PARAM_COLUMNS
        assert fit.nobs > 0 and (fit.n > 0).all()
        assert len(fit.summary().splitlines()) > 3
        # the table lists every parameter, then (mixed models) the variance components
        table = fit.apa_table().to_frame()
        assert len(table) >= len(fit.params)
        assert table.iloc[: len(fit.params), 0].tolist() == fit.params["term"].tolist()
    rsa = fits[1]
    assert list(rsa.surface.columns[:7]) == PARAM_COLUMNS[1:]
    assert rsa.predict(rsa.centre, rsa.centre) == pytest.approx(rsa.params["estimate"][0])
    assert rsa.congruence["met"].dtype == bool
    assert any("pooled grand mean" in n for n in rsa.notes)


def test_response_surface_plot_draws_on_the_given_axes(clients):
    fit = dyad.rsa(clients, x=X, y=Y, outcome="outcome")
    fig = plt.figure()
    try:
        ax3d = fig.add_subplot(1, 2, 1, projection="3d")
        assert alliance.plots.response_surface(fit, ax=ax3d) is ax3d
        ax = fig.add_subplot(1, 2, 2)
        assert alliance.plots.response_surface(fit, ax=ax) is ax
        assert len(ax.collections) > 0 and len(ax.get_lines()) >= 2  # contours, LOC, LOIC
    finally:
        plt.close(fig)
    ax = fit.plot()
    plt.close(ax.figure)


# ---------------------------------------------------------------- bad input


def test_undeclared_rater_is_refused_with_the_fix():
    study = dyad.simulate_dyads(seed=1)
    study.codebook.field("sessions", Y).pop("rater")
    with pytest.raises(ValueError, match=r"does not declare who rated 'wai_therapist'.*'rater'"):
        dyad.agreement(study, x=X, y=Y)
    with pytest.raises(ValueError, match="does not declare who rated"):
        dyad.rsa(study, x=X, y=Y, outcome="outcome")
    with pytest.raises(ValueError, match="does not declare who rated"):
        dyad.apim(study, client_rating=X, therapist_rating=Y, outcome="outcome")


def test_same_rater_twice_is_refused():
    study = dyad.simulate_dyads(seed=1)
    study.codebook.field("sessions", Y)["rater"] = "client"
    with pytest.raises(ValueError, match="both rated by the client"):
        dyad.agreement(study, x=X, y=Y)


def test_different_ranges_are_refused_unless_rescaled():
    study = dyad.simulate_dyads(seed=1)
    study.sessions[Y] = study.sessions[Y] / 12  # item-mean scale 1-5
    study.codebook.field("sessions", Y)["constraints"] = {"minimum": 1, "maximum": 5}
    with pytest.raises(ValueError, match=r"not on a common scale: different ranges.*rescale=True"):
        dyad.agreement(study, x=X, y=Y)
    fit = dyad.agreement(study, x=X, y=Y, rescale=True)
    assert any("POMP" in n for n in fit.notes)
    assert fit.scale["source"].tolist() == ["codebook", "codebook"]
    assert fit.dyads[["x_mean", "y_mean"]].stack().between(0, 100).all()
    # a DataFrame: the observed values decide
    with pytest.raises(ValueError, match="observed ranges"):
        dyad.rsa(
            study.sessions.merge(study.clients[["client", "outcome"]]), x=X, y=Y, outcome="outcome"
        )


def test_different_registered_forms_are_refused():
    study = dyad.simulate_dyads(seed=1)
    fld = study.codebook.field("sessions", Y)
    fld["instrument"] = "wai_s"  # 1-7 items
    fld.pop("constraints")
    study.codebook.field("sessions", X).pop("constraints")
    with pytest.raises(ValueError, match="different forms"):
        dyad.agreement(study, x=X, y=Y)


def test_missing_columns_name_the_argument():
    study = dyad.simulate_dyads(seed=1)
    with pytest.raises(KeyError, match="wai_therapis.*Did you mean 'wai_therapist'"):
        dyad.agreement(study.sessions, x=X, y="wai_therapis")
    with pytest.raises(KeyError, match="'outcom'"):
        dyad.rsa(study, x=X, y=Y, outcome="outcom")


def test_constant_ratings_are_refused(sessions, clients):
    flat = sessions.assign(wai_therapist=40.0)
    with pytest.raises(ValueError, match="'wai_therapist' is constant"):
        dyad.agreement(flat, x=X, y=Y)
    with pytest.raises(ValueError, match="'outcome' is constant"):
        dyad.rsa(clients.assign(outcome=1.0), x=X, y=Y, outcome="outcome")


def test_an_outcome_varying_within_clients_is_refused(sessions):
    with pytest.raises(ValueError, match="varies within clients.*one outcome per client"):
        dyad.rsa(sessions.assign(outcome=sessions["session"] * 1.0), x=X, y=Y, outcome="outcome")


def test_missing_ratings_are_counted(sessions):
    holes = sessions.copy()
    holes.loc[[0, 5, 9], Y] = np.nan
    fit = dyad.agreement(holes, x=X, y=Y)
    assert fit.excluded["n_rows"].sum() == 3
    assert fit.nobs == len(sessions) - 3
