"""The bundled demo recovers the truth it was simulated with (issues 16 and 19).

Each check uses the package's public estimators on the shipped demo (or, for the panel
model, on the demo's own latent scores, simulated again with the same seed) and compares
with ``study.truth``. The tolerances are stated beside each check with the sampling error
they allow for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.datasets.make_demo import simulate_demo
from alliance.models import lmm
from alliance.observer import coder_reliability


@pytest.fixture(scope="module")
def study():
    return alliance.datasets.load_dataset("demo")


def test_demo_has_the_realistic_problems_and_both_sides_of_the_dyad(study):
    eff = study.truth["effects"]
    assert eff["residual_correlation"] == -0.5
    assert eff["symptom_autoregression"] == 0.5
    assert eff["within_sd"] == 0.5
    assert len(study.truth["within_by_client"]) == study.n_clients == 300
    fields = study.codebook.fields("sessions").set_index("name")
    assert fields.loc["wai_sr_t", ["instrument", "rater"]].tolist() == ["wai_sr_t", "therapist"]
    assert len(study.therapists) == 30
    assert set(study.segments["coder"]) == {"O1", "O2"}
    assert set(study.clients["prior_therapy"]) == {"none", "helpful", "harmful"}
    assert set(study.clients["termination"]) <= set(alliance.study.TERMINATIONS)
    assert alliance.validate(study).ok


def test_client_therapist_agreement_within_05_of_truth(study):
    """Within- and between-client r of WAI-SR and WAI-SR-T within .05 of truth['dyad'].

    The truth is what the observed item means estimate (the latent correlations attenuated
    by item noise and rounding). With 3,688 sessions of 300 clients the within-client r has
    a 95% CI about +-.02 wide on each side, the between-client r about +-.03; .05 is
    beyond both.
    """
    truth = study.truth["dyad"]
    fit = alliance.dyad.agreement(study, x="wai_sr", y="wai_sr_t", therapist="therapist")
    p = fit.params.set_index("term")
    assert abs(p.loc["within-client r", "estimate"] - truth["within_correlation_observed"]) < 0.05
    assert abs(p.loc["between-client r", "estimate"] - truth["between_correlation_observed"]) < 0.05
    # the mean difference (client - therapist) has the sign of the therapists' negative bias
    assert p.loc["mean difference (x - y)", "estimate"] > 0


def test_dyadic_discrepancy_effect_ci_covers_the_truth(study):
    """The discrepancy's effect on the PHQ-9 slope: its 95% CI covers truth['dyad'].

    The generating model: the PHQ-9 slope per session changes by ``discrepancy_effect``
    (0.12) per item-mean point of discrepancy (therapist - client), and by the client's
    alliance level. The estimate: the client's mean of (WAI-SR-T - WAI-SR) / 12 and mean
    WAI-SR / 12, each interacting with session, in a growth model with client intercepts
    and slopes and a therapist intercept (``alliance.models.lmm``). The SE is about .075;
    the observed discrepancy correlates .91 with the true one (attenuation about 10%, far
    inside the CI).
    """
    truth = study.truth["dyad"]["discrepancy_effect"]
    s = study.sessions.dropna(subset=["wai_sr", "wai_sr_t", "phq9"])
    s = s.assign(c=s["wai_sr"] / 12, t=s["wai_sr_t"] / 12, sc=s["session"] - 1)
    by = s.groupby("client")
    means = pd.DataFrame({"c_mean": by["c"].mean(), "d_obs": by["t"].mean() - by["c"].mean()})
    s = s.merge(means.reset_index(), on="client")
    fit = lmm("phq9 ~ sc * (c_mean + d_obs) + (1 + sc | client) + (1 | therapist)", s)
    row = fit.params.set_index("term").loc["sc:d_obs"]
    assert row["ci_low"] < truth < row["ci_high"]
    assert row["estimate"] > 0  # a therapist who sees a better alliance than the client: slower
    # the observed discrepancy measures the simulated one
    d_true = pd.Series(study.truth["dyad"]["discrepancy_by_client"])
    assert np.corrcoef(means["d_obs"], d_true[means.index])[0, 1] > 0.85


@pytest.mark.parametrize("level", ["segment", "session"])
def test_coder_iccs_within_05_of_truth(study, level):
    """ICC(2,1) of the two coders per marker type within .05 of truth['observer']['icc'].

    About 7,400 coded sessions (73,765 segment rows): the ICC's 95% CI is about +-.005 at
    segment level and +-.02 at session level, so .05 leaves room for the coded scores'
    departure from normality.
    """
    truth = study.truth["observer"]["icc"][level]
    rel = coder_reliability(study.segments, level=level)
    icc2 = rel[rel["statistic"] == "ICC2"].set_index("marker")["estimate"]
    for marker in ("withdrawal", "confrontation", "rupture"):
        assert abs(icc2[marker] - truth[marker]) < 0.05, marker


@pytest.fixture(scope="module")
def latent():
    """The demo's latent session scores (the same simulation, with ``latent=True``)."""
    sim = simulate_demo(latent=True)
    frame = sim.truth["latent"]
    return sim, frame[frame["attended"]]


def test_latent_scores_belong_to_the_shipped_demo(study, latent):
    sim, frame = latent
    assert len(frame) == len(study.sessions)
    np.testing.assert_allclose(sim.sessions["wai_sr"], study.sessions["wai_sr"], atol=1e-4)
    assert sim.truth["within_by_client"] == study.truth["within_by_client"]


def test_default_within_between_ci_covers_the_average_within_effect(study, latent):
    """The default (dynamic panel model) CI covers the average within-client effect.

    Clients' own effects vary (SD 0.5 around -2.0; their mean in the demo is -2.03); the
    dynamic panel model's cross-lagged path estimates the average (docs/models.md). Fitted
    to the latent scores, which the truth describes: the observed WAI-SR item means carry
    item noise that attenuates the within effect (about -1.6 on the observed scores). First
    8 sessions, for speed (the SE is about 0.25; all 16 sessions give -1.97, SE 0.15).
    """
    _, frame = latent
    average = float(np.mean(list(study.truth["within_by_client"].values())))
    fit = alliance.models.within_between(
        frame, alliance="alliance", outcome="symptoms", max_sessions=8
    )
    row = fit.params.iloc[0]
    assert row["term"] == "alliance[t-1] -> symptoms[t]"
    assert row["ci_low"] < average < row["ci_high"]
    assert row["ci_low"] < study.truth["effects"]["within"] < row["ci_high"]
    # the symptoms' autoregression (0.5) is estimated too, not left in the residuals
    ar = fit.params.set_index("term").loc["symptoms[t-1] -> symptoms[t]"]
    assert ar["ci_low"] < 0.5 < ar["ci_high"]


def test_monitoring_signals_foresee_the_demo_deteriorations(study):
    """Issue 19: not-on-track signals (expected-response bands from the study itself,
    cross-validated by client) against later reliable deterioration: sensitivity at least
    .70 and specificity at least .80. The demo has 10 reliably deteriorating clients, so
    the sensitivity moves in steps of .10 (8 of 10 found here; 232 of 290 others quiet)."""
    from alliance import monitoring

    sessions = study.sessions
    sig = monitoring.signals(sessions, outcome="phq9", percentile=0.95, folds=5)
    events = monitoring.deterioration(sessions, outcome="phq9", sd="pre", reliability=0.84)
    res = monitoring.evaluate(sig, events)
    assert res.counts["true_positive"] + res.counts["false_negative"] == 10
    assert res.sensitivity >= 0.70
    assert res.specificity >= 0.80
