"""Tests of alliance.models.dropout: recovery of the simulated dropout process, sandwich SEs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.models.dropout import dropout_model, person_period
from alliance.simulate import simulate_study


def _item_mean(study):
    return study.sessions.assign(alliance_item=study.sessions["wai_sr"] / 12)


@pytest.fixture(scope="module")
def studies():
    # the generator's hazard of leaving after a session: -1.3 log-odds per item-mean point
    # of that session's observed alliance (Effects.dropout_alliance)
    return {
        value: simulate_study(
            n_therapists=60,
            clients_per_therapist=10,
            n_sessions=12,
            effects={"dropout_alliance": value},
            seed=17,
        )
        for value in (-1.3, 0.0)
    }


@pytest.fixture(scope="module")
def hazard_fits(studies):
    out = {}
    for value, study in studies.items():
        truth = study.truth["ruptures"].assign(resolved=lambda d: d["repaired"])
        out[value] = dropout_model(
            _item_mean(study),
            alliance="alliance_item",
            clients=study.clients,
            ruptures=truth,
            method="discrete_time",
        )
    return out


def test_discrete_time_model_recovers_the_dropout_hazard(hazard_fits):
    est = hazard_fits[-1.3].params.set_index("term").loc["alliance_item"]
    assert abs(est["estimate"] - (-1.3)) < 3 * est["se"]
    assert est["ci_high"] < -0.6


def test_discrete_time_model_finds_nothing_without_an_effect(hazard_fits):
    est = hazard_fits[0.0].params.set_index("term").loc["alliance_item"]
    assert abs(est["estimate"]) < 3 * est["se"]
    assert not (est["ci_low"] < -1.3 < est["ci_high"])


def test_logistic_early_alliance_predicts_dropout(studies):
    study = studies[-1.3]
    fit = dropout_model(
        _item_mean(study),
        alliance="alliance_item",
        clients=study.clients,
        ruptures=study.events,
        covariates=["prior_negative_therapy"],
    )
    p = fit.params.set_index("term")
    early = p.loc["early alliance_item (mean of sessions 1-3)"]
    assert early["ci_high"] < 0
    assert early["odds_ratio"] == pytest.approx(np.exp(early["estimate"]))
    assert list(p.index) == [
        "Intercept",
        "early alliance_item (mean of sessions 1-3)",
        "ruptures in sessions 1-3",
        "prior_negative_therapy",
    ]
    null = dropout_model(
        _item_mean(studies[0.0]), alliance="alliance_item", clients=studies[0.0].clients
    ).params.set_index("term")
    none = null.loc["early alliance_item (mean of sessions 1-3)"]
    # no effect planted: the interval covers 0 and excludes the estimate the effect gave
    assert none["ci_low"] < 0 < none["ci_high"]
    assert none["ci_low"] > early["estimate"]


def test_logistic_window_is_the_shared_early_window(studies):
    """An int is the first session numbers (the same calendar window for everyone); an
    EarlyWindow of rated sessions is taken as it is, short clients counted."""
    from alliance.design import EarlyWindow

    study = studies[-1.3]
    data = _item_mean(study)
    default = dropout_model(data, alliance="alliance_item", clients=study.clients)
    numbers = dropout_model(
        data,
        alliance="alliance_item",
        clients=study.clients,
        early=EarlyWindow(3, counts="numbers"),
    )
    pd.testing.assert_frame_equal(default.params, numbers.params)
    rated = dropout_model(
        data, alliance="alliance_item", clients=study.clients, early=EarlyWindow(3)
    )
    term = "early alliance_item (mean of first 3 rated sessions)"
    assert term in rated.params["term"].tolist()
    # a missed rating stretches a client's window past session 3: more clients end in it
    ended = [
        int(
            f.excluded.loc[f.excluded["reason"].str.contains("within the early"), "n_clients"].sum()
        )
        for f in (default, rated)
    ]
    assert ended[1] > ended[0] and rated.nobs == default.nobs - (ended[1] - ended[0])


def test_cluster_robust_errors_by_hand(studies):
    # the sandwich V = c (X'WX)^-1 (sum_g U_g U_g') (X'WX)^-1 with
    # c = G/(G-1) (N-1)/(N-K): sandwich::vcovCL(type = "HC1") and statsmodels' cluster
    study = studies[-1.3]
    fit = dropout_model(study, alliance="wai_sr", ruptures=study.events)
    data = fit.data
    therapist = data["client"].map(study.clients.set_index("client")["therapist"])
    x = np.column_stack([np.ones(len(data)), data["early_alliance"], data["ruptures"]])
    y = data["left"].to_numpy(float)
    b = fit.params["estimate"].to_numpy()
    prob = 1 / (1 + np.exp(-x @ b))
    assert np.allclose(x.T @ (y - prob), 0, atol=1e-6)  # the ML score is zero
    bread = np.linalg.inv(x.T @ (x * (prob * (1 - prob))[:, None]))
    scores = pd.DataFrame(x * (y - prob)[:, None]).groupby(therapist.to_numpy()).sum().to_numpy()
    n, k, g = len(y), x.shape[1], len(scores)
    vcov = g / (g - 1) * (n - 1) / (n - k) * bread @ scores.T @ scores @ bread
    assert np.allclose(fit.params["se"], np.sqrt(np.diag(vcov)), rtol=1e-6)
    assert fit.n_clusters == study.clients["therapist"].nunique()


def test_person_period_layout(studies):
    study = studies[-1.3]
    pp = person_period(study.sessions, alliance="wai_sr")
    per = pp.groupby("client")
    assert per["left"].sum().max() == 1
    assert (pp["session"] < 12).all()  # no risk after the planned sessions
    dropped = {c for c, s in study.truth["dropped_after_session"].items() if s < 12}
    assert set(pp.loc[pp["left"] == 1, "client"]) == dropped
    leaving_rows = pp[pp["left"] == 1]
    assert (leaving_rows["session"] == leaving_rows["last_session"]).all()


def test_open_rupture_indicator():
    sessions = pd.DataFrame(
        {
            "client": ["a"] * 6 + ["b"] * 3,
            "therapist": ["t1"] * 6 + ["t2"] * 3,
            "session": [1, 2, 3, 4, 5, 6, 1, 2, 3],
            "alliance": [4.0, 4.1, 3.0, 3.5, 4.2, 4.3, 3.0, 3.1, 3.2],
        }
    )
    events = pd.DataFrame(
        {
            "client": ["a", "b"],
            "session": [3, 2],
            "resolved": [True, False],
            "repair_session": [5, np.nan],
        }
    )
    from alliance.models.dropout import _open_ruptures

    pp = person_period(sessions, planned_sessions=7)
    flags = _open_ruptures(events, pp, "client", "session")
    assert flags.tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1]


def test_exclusions_are_counted(studies):
    study = studies[-1.3]
    data = _item_mean(study)
    last = data.groupby("client")["session"].max()
    three = last[last > 3].index[:3]
    early = data["client"].isin(three) & (data["session"] <= 3)
    data.loc[early, "alliance_item"] = np.nan  # three clients lose their early ratings
    fit = dropout_model(data, alliance="alliance_item", clients=study.clients, ruptures=False)
    ex = fit.excluded.set_index("reason")
    assert ex.loc["no rated session among the first 3", "n_clients"] == 3
    window = ex.index[ex.index.str.startswith("last session within the early window")]
    n_short = int((data.groupby("client")["session"].max() <= 3).sum())
    assert ex.loc[window, "n_clients"].sum() == n_short
    assert fit.nobs + ex["n_clients"].sum() == data["client"].nunique()
    hazard = dropout_model(
        data,
        alliance="alliance_item",
        clients=study.clients,
        ruptures=False,
        method="discrete_time",
    )
    row = hazard.excluded.iloc[0]
    assert row["column"] == "alliance_item" and row["n_rows"] >= int(early.sum())


def test_single_session_clients_and_missing_therapist(studies):
    study = studies[-1.3]
    data = _item_mean(study)
    one = data["client"].unique()[:5]
    data = data[~(data["client"].isin(one) & (data["session"] > 1))]
    clients = study.clients.copy()
    clients.loc[clients.index[10], "therapist"] = None
    fit = dropout_model(
        data, alliance="alliance_item", clients=clients, method="discrete_time", ruptures=False
    )
    ex = fit.excluded.set_index("reason")
    assert ex.loc["missing therapist", "n_clients"] == 1
    used = set(fit.data["client"])
    assert set(one) <= used  # single-session clients stay (one risk row, an event)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(alliance="wai"), KeyError, "alliance column"),
        (dict(method="cox"), ValueError, "method='cox'"),
        (dict(baseline="spline", method="discrete_time"), ValueError, "baseline"),
        (dict(early=0), ValueError, "early must be at least 1"),
        (dict(covariates=["gender"]), ValueError, "not numeric"),
        (dict(planned_sessions=40), ValueError, "same dropout value"),
    ],
)
def test_refuses_what_it_cannot_fit(studies, kwargs, error, match):
    study = studies[0.0]
    kwargs = {"alliance": "wai_sr", "ruptures": False, **kwargs}
    with pytest.raises(error, match=match):
        dropout_model(study, **kwargs)


def test_default_ruptures_are_prospective(studies):
    study = studies[0.0]
    fit = dropout_model(_item_mean(study), alliance="alliance_item", clients=study.clients)
    assert any("prospectively" in n and "earlier" in n for n in fit.notes)
