"""Routine outcome monitoring: expected response, signals, alliance alerts, evaluation.

Checks, in order: the band formula on a hand-worked case; the growth model and band
against statsmodels' MixedLM (an independent fit) and lme4 (committed reference) on a
small reference sample; signals
on hand-made courses (both directions, intake, cross-validation by client); the alliance
alerts against the registry cut-off and :func:`alliance.ruptures.detect`; evaluation on a
hand-counted case; recovery on simulated data; bad input; and speed at small scale.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from alliance import monitoring, plots, ruptures
from alliance.monitoring import ExpectedResponse
from alliance.simulate import simulate_study

Z90 = 1.2815515655446004  # qnorm(0.90)
REF = Path(__file__).parent / "reference"


def _reference(n_clients=160, n_sessions=8, seed=3):
    """A reference sample from the model itself: intake, log-session slope, noise."""
    rng = np.random.default_rng(seed)
    intake = rng.normal(18, 4, n_clients)
    u0 = rng.normal(0, 1.5, n_clients)
    u1 = rng.normal(0, 1.0, n_clients)
    rows = []
    for i in range(n_clients):
        for t in range(1, n_sessions + 1):
            ls = math.log(t)
            y = (
                intake[i]
                if t == 1
                else 1.0 + 0.9 * intake[i] + u0[i] + (-3.0 - 0.08 * intake[i] + u1[i]) * ls
            )
            rows.append((f"c{i:03d}", t, y + (0 if t == 1 else rng.normal(0, 2.0))))
    return pd.DataFrame(rows, columns=["client", "session", "phq9"])


@pytest.fixture(scope="module")
def reference():
    return _reference()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- the band


def test_band_formula_on_a_hand_worked_case():
    curve = ExpectedResponse(
        coef=[16.0, 0.8, -3.0, -0.1],
        re_cov=[[4.0, 1.0], [1.0, 2.0]],
        sigma=2.5,
        centre=16.0,
        percentile=0.90,
    )
    band = curve.predict(20.0, 5)
    # by hand: x = 20 - 16 = 4, L = ln 5 = 1.6094379
    #   expected = 16 + 0.8*4 + (-3 - 0.1*4) * L = 19.2 - 3.4 * 1.6094379 = 13.7279111
    #   var = 4 + 2*1*L + 2*L^2 + 2.5^2 = 4 + 3.2188758 + 5.1806 + 6.25 = 18.6494777
    #   half = 1.2815516 * sqrt(18.6494777) = 5.5343826
    assert float(band.expected) == pytest.approx(13.7279111, abs=1e-6)
    assert float(band.upper) == pytest.approx(13.7279111 + 5.5343826, abs=1e-6)
    assert float(band.lower) == pytest.approx(13.7279111 - 5.5343826, abs=1e-6)
    # at the intake (t = 1, log t = 0) only the intercept variance and sigma remain
    b1 = curve.predict(16.0, 1)
    assert float(b1.expected) == 16.0
    assert float(b1.upper - b1.expected) == pytest.approx(Z90 * math.sqrt(4 + 6.25), abs=1e-9)
    # broadcasting, NaN before the intake
    many = curve.predict(np.array([12.0, 20.0]), np.array([[0.0], [3.0]]))
    assert many.expected.shape == (2, 2) and np.isnan(many.expected[0]).all()


def test_band_adds_the_fixed_effect_uncertainty():
    v = np.diag([0.5, 0.01, 0.2, 0.001])
    curve = ExpectedResponse([16, 0.8, -3, -0.1], [[4, 1], [1, 2]], 2.5, 16.0, cov_fixed=v)
    band = curve.predict(20.0, 5)
    ls = math.log(5)
    var = 4 + 2 * ls + 2 * ls**2 + 6.25 + 0.5 + 0.01 * 16 + 0.2 * ls**2 + 0.001 * (4 * ls) ** 2
    assert float(band.upper - band.expected) == pytest.approx(Z90 * math.sqrt(var), rel=1e-12)


def test_growth_model_and_band_agree_with_statsmodels(reference):
    curve = monitoring.expected_response(reference, outcome="phq9")
    # the independent route: statsmodels MixedLM (REML) on the same post-intake rows
    first = reference.groupby("client")["phq9"].transform("first")
    post = reference[reference["session"] >= 2].copy()
    post["intake"] = first[post.index] - first.groupby(reference["client"]).first().mean()
    post["log_session"] = np.log(post["session"])
    sm = smf.mixedlm(
        "phq9 ~ intake * log_session", post, groups=post["client"], re_formula="~log_session"
    ).fit(reml=True, method="lbfgs")
    np.testing.assert_allclose(curve.coef, sm.fe_params.to_numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(curve.re_cov, sm.cov_re.to_numpy(), rtol=2e-3, atol=2e-3)
    assert curve.sigma == pytest.approx(math.sqrt(sm.scale), rel=1e-4)
    assert curve.centre == pytest.approx(reference.groupby("client")["phq9"].first().mean())
    # the band by hand from statsmodels' estimates
    x0, t = 22.0 - curve.centre, 6.0
    ls = math.log(t)
    b = sm.fe_params.to_numpy()
    g = sm.cov_re.to_numpy()
    xv = np.array([1, x0, ls, x0 * ls])
    z = np.array([1, ls])
    var = z @ g @ z + sm.scale + xv @ sm.cov_params().iloc[:4, :4].to_numpy() @ xv
    band = curve.predict(22.0, t)
    assert float(band.expected) == pytest.approx(xv @ b, abs=1e-3)
    assert float(band.upper - band.expected) == pytest.approx(Z90 * math.sqrt(var), rel=2e-3)
    # and the simulated truth is recovered
    assert curve.coef[2] == pytest.approx(-3.0 - 0.08 * curve.centre, abs=0.35)
    assert curve.sigma == pytest.approx(2.0, abs=0.15)


def test_growth_model_and_band_agree_with_lme4():
    # tests/reference/monitoring_reference.R: lmer on the committed sample, band by hand in R
    ref = json.loads((REF / "monitoring_reference.json").read_text())
    data = pd.read_csv(REF / "data" / "monitoring_reference.csv", dtype={"client": str})
    curve = monitoring.expected_response(data, outcome="phq9")
    assert curve.centre == pytest.approx(ref["centre"][0], rel=1e-9)
    np.testing.assert_allclose(curve.coef, ref["coef"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(curve.re_cov, ref["re_cov"], rtol=1e-3, atol=1e-4)
    assert curve.sigma == pytest.approx(ref["sigma"][0], rel=1e-5)
    band = curve.predict(np.array(ref["grid_intake"]), np.array(ref["grid_session"]))
    np.testing.assert_allclose(band.expected, ref["expected"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(band.lower, ref["lower"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(band.upper, ref["upper"], rtol=1e-4, atol=1e-4)
    # the committed sample is the one _reference() makes
    fresh = _reference()
    np.testing.assert_allclose(data["phq9"], fresh["phq9"], atol=1e-6)


def test_band_covers_the_stated_share_of_reference_scores(reference):
    curve = monitoring.expected_response(reference, outcome="phq9", percentile=0.9)
    sig = monitoring.signals(reference, outcome="phq9", reference=curve)
    post = sig[sig["t"] >= 2]
    above = (post["outcome"] > post["upper"]).mean()
    below = (post["outcome"] < post["lower"]).mean()
    assert 0.06 < above < 0.14 and 0.06 < below < 0.14
    assert post["not_on_track"].mean() == pytest.approx(above)


# --------------------------------------------------------------------------- signals


def _hand_curve(higher_is_better=False):
    return ExpectedResponse(
        coef=[20.0, 1.0, -4.0, 0.0],
        re_cov=[[0.0, 0.0], [0.0, 0.0]],
        sigma=1.0,
        centre=20.0,
        higher_is_better=higher_is_better,
        outcome="phq9",
    )


def test_signals_on_hand_made_courses():
    # band: 20 + (intake - 20) - 4 ln t, +- 1.2816 (sigma 1, no random effects)
    data = pd.DataFrame(
        {
            "client": ["a", "a", "a", "a", "b", "b", "b"],
            "session": [1, 2, 3, 4, 1, 2, 4],
            "phq9": [20.0, 19.0, 14.0, np.nan, 24.0, 24.0, 10.0],
        }
    )
    sig = monitoring.signals(data, outcome="phq9", reference=_hand_curve())
    exp_a2 = 20 - 4 * math.log(2)  # 17.227; upper 18.51: 19 is above
    assert sig["expected"].iloc[1] == pytest.approx(exp_a2)
    assert sig["not_on_track"].tolist() == [False, True, False, False, False, True, False]
    # a missed session is kept (NaN score, no signal); the intake has no band
    assert np.isnan(sig["outcome"].iloc[3]) and np.isnan(sig["expected"].iloc[0])
    assert sig["t"].tolist() == [1, 2, 3, 4, 1, 2, 4]
    # higher is better (ORS): worse is below the lower limit
    ors = data.rename(columns={"phq9": "ors"})
    ors["ors"] = [20.0, 21.0, 14.0, np.nan, 24.0, 24.0, 10.0]
    curve = _hand_curve(higher_is_better=True)
    curve.outcome = "ors"
    sig = monitoring.signals(ors, outcome="ors", reference=curve)
    # a2: expected 17.23, 21 above: fine; a3: expected 15.61, lower 14.33, 14 below: signal
    assert sig["not_on_track"].tolist() == [False, False, True, False, False, False, True]


def test_the_session_clock_starts_at_each_clients_first_rated_session():
    data = pd.DataFrame(
        {"client": ["a", "a", "a"], "session": [3, 4, 6], "phq9": [np.nan, 20.0, 19.0]}
    )
    sig = monitoring.signals(data, outcome="phq9", reference=_hand_curve())
    assert sig["t"].tolist()[1:] == [1, 3]
    assert sig["t"].iloc[0] == 0 and np.isnan(sig["expected"].iloc[0])  # before the intake
    # t = 3 at session 6: expected 20 - 4 ln 3 = 15.61, upper 16.89; 19 is above
    assert sig["not_on_track"].tolist() == [False, False, True]


def test_intake_column_models_every_rated_session(reference):
    data = reference.assign(baseline=reference.groupby("client")["phq9"].transform("first") + 1)
    curve = monitoring.expected_response(data, outcome="phq9", intake="baseline")
    assert curve.nobs == len(data) and curve.intake_column == "baseline"
    sig = monitoring.signals(data, outcome="phq9", reference=curve, intake="baseline")
    assert sig["expected"].notna().all()  # banded from t = 1
    with pytest.raises(ValueError, match="intake differently"):
        monitoring.signals(data, outcome="phq9", reference=curve)


def test_cross_validation_keeps_clients_out_of_their_own_reference(reference):
    sig = monitoring.signals(reference, outcome="phq9", folds=4, seed=2)
    assert sig.groupby("client")["fold"].nunique().eq(1).all()
    assert sorted(sig["fold"].unique()) == [0, 1, 2, 3]
    # fold 1's bands are exactly the curves fitted to the other folds' clients
    others = sig.loc[sig["fold"] != 1, "client"].unique()
    curve = monitoring.expected_response(
        reference[reference["client"].isin(others)], outcome="phq9"
    )
    mine = sig[(sig["fold"] == 1) & (sig["t"] >= 2)]
    band = curve.predict(mine["intake"].to_numpy(), mine["t"].to_numpy())
    np.testing.assert_allclose(mine["upper"], band.upper, rtol=1e-10)
    # a reference sample passed as a frame is fitted with the same columns
    same = monitoring.signals(reference, outcome="phq9", reference=reference)
    full = monitoring.signals(
        reference, outcome="phq9", reference=monitoring.expected_response(reference, "phq9")
    )
    pd.testing.assert_frame_equal(same, full, check_like=True)


# --------------------------------------------------------------------------- alliance


def test_alliance_alerts_use_the_registry_cutoff_and_the_prospective_drop_rule():
    data = pd.DataFrame(
        {
            "client": ["a"] * 5 + ["b"] * 4,
            "session": [1, 2, 3, 4, 5, 1, 2, 3, 4],
            "phq9": [20.0, 18, 17, 16, 15, 22, 21, 20, 19],
            "srs": [38.0, 39, 33, 37, 30, 36, 35.9, 36, np.nan],
        }
    )
    sig = monitoring.signals(
        data, outcome="phq9", reference=_hand_curve(), alliance="srs", alliance_drop=5
    )
    # SRS cut-off 36 (registry): below 36 alerts, 36 itself does not
    assert sig["alliance_low"].tolist() == [0, 0, 1, 0, 1, 0, 1, 0, 0]
    # drops of >= 5 from the previous rated session: a3 (39 -> 33), a5 (37 -> 30)
    assert sig["alliance_drop"].tolist() == [0, 0, 1, 0, 1, 0, 0, 0, 0]
    found = ruptures.detect(data, alliance="srs", method="drop", threshold=5)
    assert set(zip(found["client"], found["session"], strict=True)) == {("a", 3), ("a", 5)}
    assert sig["alliance_alert"].equals(sig["alliance_low"] | sig["alliance_drop"])
    assert sig["any_signal"].equals(sig["not_on_track"] | sig["alliance_alert"])
    assert "below 36" in sig.attrs["alliance_low"]
    # the SRS has no published reliable-change size: say how to give one
    with pytest.raises(ValueError, match="alliance_drop="):
        monitoring.signals(data, outcome="phq9", reference=_hand_curve(), alliance="srs")
    # a dict goes to ruptures.detect: 1.96 * sqrt(2) * 4 * sqrt(1 - .8) = 4.96 points
    alt = monitoring.signals(
        data,
        outcome="phq9",
        reference=_hand_curve(),
        alliance="srs",
        alliance_drop={"sd": 4.0, "reliability": 0.8},
    )
    assert alt["alliance_drop"].tolist() == [0, 0, 1, 0, 1, 0, 0, 0, 0]
    # WAI-SR has no cut-off in the registry
    wai = data.rename(columns={"srs": "wai_sr"})
    with pytest.raises(ValueError, match="alliance_cutoff="):
        monitoring.signals(
            wai, outcome="phq9", reference=_hand_curve(), alliance="wai_sr", alliance_drop=5
        )
    off = monitoring.signals(
        wai,
        outcome="phq9",
        reference=_hand_curve(),
        alliance="wai_sr",
        alliance_cutoff=False,
        alliance_drop=False,
    )
    assert not off["alliance_alert"].any()


# --------------------------------------------------------------------------- evaluation


def test_evaluate_on_a_hand_counted_case():
    sig = pd.DataFrame(
        {
            "client": ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4 + ["e"] * 2,
            "session": [1, 2, 3, 4] * 4 + [1, 2],
            "not_on_track": [0, 1, 0, 0]  # a: event at 4, flagged at 2: lead 2
            + [0, 0, 0, 1]  # b: event at 4, flagged only AT 4: missed
            + [0, 0, 1, 1]  # c: no event, flagged at 3: false positive
            + [0, 0, 0, 0]  # d: no event, never: true negative
            + [0, 1],  # e: event unknown: excluded
        }
    )
    sig["not_on_track"] = sig["not_on_track"].astype(bool)
    events = pd.DataFrame(
        {
            "client": ["a", "b", "c", "d", "e"],
            "event": pd.array([True, True, False, False, pd.NA], dtype="boolean"),
            "session": [4, 4, 4, 4, 2],
        }
    )
    res = monitoring.evaluate(sig, events)
    assert res.counts.to_dict() == {
        "true_positive": 1,
        "false_negative": 1,
        "false_positive": 1,
        "true_negative": 1,
    }
    est = res.params.set_index("term")["estimate"]
    assert est["sensitivity"] == 0.5 and est["specificity"] == 0.5 and est["lead_time"] == 2
    assert res.by_client.set_index("client").loc["a", "first_signal"] == 2
    # Wilson interval of 1/2 by hand: centre (0.5 + z^2/4) / (1 + z^2/2) = 0.5
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 2 + z**2 / 16) / (1 + z**2 / 2)
    assert res.params.iloc[0]["ci_low"] == pytest.approx(0.5 - half)
    assert res.excluded["reason"].str.contains("unknown").any() and res.nobs == 4
    assert res.sensitivity == 0.5 and "few" in res.notes[0]


def test_deterioration_uses_reliable_change_and_dropout_the_termination_reason():
    data = pd.DataFrame(
        {
            "client": ["a", "a", "a", "b", "b", "c"],
            "session": [1, 2, 5, 1, 3, 1],
            "phq9": [10.0, 12, 16, 15, 10, 9],
        }
    )
    ev = monitoring.deterioration(data, outcome="phq9", threshold=5)
    assert ev["event"].tolist() == [True, False, pd.NA]
    assert ev["session"].tolist()[:2] == [5, 3]
    clients = pd.DataFrame(
        {"client": ["a", "b", "c"], "termination": ["completed", "Dropped out", None]}
    )
    drop = monitoring.dropout(data, clients)
    assert drop["event"].tolist() == [False, True, pd.NA]
    assert drop["session"].tolist() == [6, 4, 2]


# --------------------------------------------------------------------------- recovery


@pytest.fixture(scope="module")
def simulated():
    # clients differ in how they respond (slope SD 0.6 PHQ-9 points a session, twice the
    # default), so a course that goes wrong shows early; with the defaults deterioration is
    # rare (about 2%) and mostly session noise, which no early signal can foresee
    study = simulate_study(
        n_therapists=60,
        clients_per_therapist=20,
        n_sessions=20,
        seed=11,
        effects={"symptom_slope_sd": 0.6},
    )
    return study.sessions


def test_recovery_sensitivity_and_specificity_on_simulated_data(simulated):
    sig = monitoring.signals(simulated, outcome="phq9", percentile=0.95, folds=5)
    events = monitoring.deterioration(simulated, outcome="phq9", sd="pre", reliability=0.84)
    res = monitoring.evaluate(sig, events)
    assert res.counts["true_positive"] + res.counts["false_negative"] >= 50
    assert res.sensitivity >= 0.70
    assert res.specificity >= 0.80
    assert res.params.set_index("term").loc["lead_time", "estimate"] > 3


# --------------------------------------------------------------------------- bad input


def test_bad_input_gets_errors_that_say_how_to_fix(reference):
    with pytest.raises(ValueError, match="instrument="):
        monitoring.expected_response(reference.rename(columns={"phq9": "score"}), "score")
    with pytest.raises(KeyError, match="outcome"):
        monitoring.expected_response(reference, outcome="phq")
    with pytest.raises(ValueError, match="percentile"):
        monitoring.expected_response(reference, outcome="phq9", percentile=0.3)
    with pytest.raises(ValueError, match="at least 10"):
        monitoring.expected_response(reference.head(40), outcome="phq9")
    with pytest.raises(ValueError, match="folds"):
        monitoring.signals(reference, outcome="phq9", folds=1)
    with pytest.raises(ValueError, match="too few"):
        monitoring.signals(reference.head(40), outcome="phq9", folds=5)
    with pytest.raises(TypeError, match="reference must be"):
        monitoring.signals(reference, outcome="phq9", reference="norms.csv")
    ors = reference.rename(columns={"phq9": "ors"})
    with pytest.raises(ValueError, match="other way round"):
        monitoring.signals(ors, outcome="ors", reference=_hand_curve())
    varying = reference.assign(baseline=np.arange(len(reference)))
    with pytest.raises(ValueError, match="one value per client"):
        monitoring.expected_response(varying, outcome="phq9", intake="baseline")
    with pytest.raises(ValueError, match="whole numbers"):
        monitoring.signals(
            reference.assign(session=reference["session"] + 0.5),
            outcome="phq9",
            reference=_hand_curve(),
        )
    with pytest.raises(ValueError, match="symmetric"):
        ExpectedResponse([1, 2, 3, 4], [[1, 2], [0, 1]], 1.0, 0.0)
    sig = pd.DataFrame({"client": ["a"], "session": [1], "not_on_track": [1]})
    events = pd.DataFrame({"client": ["a"], "event": [True], "session": [2]})
    with pytest.raises(ValueError, match="boolean"):
        monitoring.evaluate(sig, events)
    with pytest.raises(ValueError, match="one row per client"):
        monitoring.evaluate(sig.astype({"not_on_track": bool}), pd.concat([events, events]))
    with pytest.raises(ValueError, match="same client ids"):
        monitoring.evaluate(sig.astype({"not_on_track": bool}), events.assign(client="z"))


# --------------------------------------------------------------------------- speed, plot


def test_signals_are_fast_with_fitted_curves():
    n, s = 20_000, 20
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "client": np.repeat(np.char.add("C", np.arange(n).astype(str)), s),
            "session": np.tile(np.arange(1, s + 1), n),
            "phq9": rng.normal(15, 4, n * s),
        }
    )
    curve = _hand_curve()
    start = time.process_time()
    sig = monitoring.signals(data, outcome="phq9", reference=curve)
    cpu = time.process_time() - start
    assert len(sig) == n * s
    # 400,000 rows: the full benchmark (2,000,000 rows) takes a few seconds; 10 s would be
    # far too slow here unless a Python loop over clients crept in
    assert cpu < 10


def test_monitoring_course_draws_band_and_signals_without_the_client_id(reference):
    sig = monitoring.signals(
        reference.assign(srs=30.0),
        outcome="phq9",
        reference=reference,
        alliance="srs",
        alliance_drop=False,
    )
    flagged = sig.loc[sig["not_on_track"], "client"].iloc[0]
    ax = plots.monitoring_course(sig, flagged, ylabel="PHQ-9")
    assert ax.get_title() == "" and flagged not in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["tolerance band", "expected response", "observed"]
    assert "not on track" in labels and "alliance alert" in labels
    red = [ln for ln in ax.get_lines() if ln.get_label() == "not on track"][0]
    rows = sig[(sig["client"] == flagged) & sig["not_on_track"]]
    np.testing.assert_array_equal(red.get_xdata(), rows["session"].to_numpy())
    fig, ax2 = plt.subplots()
    assert plots.monitoring_course(sig, flagged, ax=ax2, title="Client course") is ax2
    assert ax2.get_title() == "Client course"
    with pytest.raises(ValueError, match="no rows"):
        plots.monitoring_course(sig, "nobody")
