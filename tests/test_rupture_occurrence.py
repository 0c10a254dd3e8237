"""alliance.models.rupture_occurrence: the session-level rupture-onset GLMM.

The reference is lme4's glmer on an exported simulation
(tests/reference/make_rupture_occurrence_data.py, tests/reference/rupture_occurrence_reference.R).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.models import get_model, rupture_occurrence
from alliance.models.rupture_occurrence import DEFAULT_DETECT

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def reference():
    ref = json.loads((REF / "glmer_rupture_occurrence.json").read_text())
    d = pd.read_csv(REF / ref["data"], dtype={"client": str, "therapist": str})
    return ref, d


def _events(d):
    hit = d[d["rupture"] == 1]
    return pd.DataFrame({"client": hit["client"], "session": hit["session"], "resolved": True})


@pytest.fixture(scope="module")
def fit(reference):
    _ref, d = reference
    return rupture_occurrence(
        d.drop(columns="rupture"),
        therapist="therapist",
        source="events",
        events=_events(d),
    )


def test_matches_glmer(fit, reference):
    ref, _d = reference
    r = ref["fixef"]
    names = [
        "(Intercept)",
        "prior_negative_therapy",
        "phase[assessment]",
        "phase[treatment]",
        "paraphrasing",
        "reflection",
        "confrontation",
        "session",
    ]
    assert fit.params["term"].tolist() == names
    assert len(names) == len(r["term"])
    # glmm fixed effects 1e-4, SEs 1e-3 (glmer's Hessian is a finite-difference one)
    np.testing.assert_allclose(fit.params["estimate"], r["estimate"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(fit.params["se"], r["se"], rtol=1e-3)
    np.testing.assert_allclose(fit.params["odds_ratio"], np.exp(r["estimate"]), rtol=2e-4)
    vc = fit.variance_components.set_index("group")["variance"]
    ref_vc = dict(zip(ref["varcorr"]["grp"], ref["varcorr"]["vcov"], strict=True))
    for grp, v in ref_vc.items():
        assert vc[grp] == pytest.approx(v, abs=1e-3)
    assert fit.loglik >= ref["loglik"] - 1e-6 * abs(ref["loglik"])
    assert fit.nobs == ref["nobs"]
    assert fit.n_by_level["clients"] == ref["ngroups"]["client"]
    assert fit.n_by_level["therapists"] == ref["ngroups"]["therapist"]
    total = sum(ref_vc.values()) + np.pi**2 / 3
    assert fit.icc["client"] == pytest.approx(ref_vc["client"] / total, abs=1e-3)
    assert fit.converged and not fit.singular


def test_result_contract_and_table(fit, reference):
    _ref, d = reference
    assert list(fit.params.columns[:8]) == alliance.results.PARAM_COLUMNS
    assert {"odds_ratio", "or_ci_low", "or_ci_high"} <= set(fit.params.columns)
    np.testing.assert_allclose(fit.params["or_ci_low"], np.exp(fit.params["ci_low"]))
    assert fit.n_ruptures == int(d["rupture"].sum())
    assert fit.table["rupture"].sum() == d["rupture"].sum()
    assert isinstance(fit.mixed_model, alliance.models.GlmmResult)
    assert fit.excluded.empty
    assert "odds_ratio" in fit.to_frame().columns
    assert fit.apa_table() is not None


def test_registered_with_prior_negative_therapy_as_focal_term():
    spec = get_model("rupture_occurrence")
    assert spec.focal({"prior_negative_therapy": "pnt"}) == "pnt"
    assert "prior_negative_therapy" in spec.roles and "phase" in spec.roles


def test_predictors_can_be_left_out_and_missing_values_are_counted(reference):
    _ref, d = reference
    d = d.copy()
    d.loc[d.index[:7], "confrontation"] = np.nan
    fit = rupture_occurrence(
        d.drop(columns="rupture"),
        therapist=None,
        phase=None,
        techniques=["confrontation"],
        source="events",
        events=_events(d),
        trend=False,
    )
    assert fit.params["term"].tolist() == ["(Intercept)", "prior_negative_therapy", "confrontation"]
    row = fit.excluded.set_index("reason").loc["missing confrontation"]
    assert row["n_rows"] == 7
    assert fit.nobs == len(d) - 7
    assert fit.variance_components["group"].tolist() == ["client"]


def test_detected_source_equals_the_events_of_detect():
    study = alliance.simulate.simulate_study(15, 8, 12, n_sites=1, seed=5)
    opts = {"phase": None, "techniques": None}
    detected = rupture_occurrence(study, alliance="wai_sr", **opts)
    events = alliance.ruptures.detect(study.sessions, alliance="wai_sr", **DEFAULT_DETECT)
    given = rupture_occurrence(study, source="events", events=events, **opts)
    # the detected fit leaves out the sessions not at risk (the first two rated ones)
    reason = detected.excluded["reason"].str.startswith("among the client's first 2").any()
    assert reason
    assert (
        detected.n_ruptures
        == given.n_ruptures
        == len(events.drop_duplicates(["client", "session"]))
    )
    assert detected.nobs < given.nobs


def test_clear_errors(reference):
    _ref, d = reference
    with pytest.raises(ValueError, match="source must be one of"):
        rupture_occurrence(d, source="diary")
    with pytest.raises(ValueError, match="detect= options apply"):
        rupture_occurrence(d, source="events", events=_events(d), detect={"k": 2})
    with pytest.raises(ValueError, match="needs 3RS segment codes"):
        rupture_occurrence(d, source="observer")
    with pytest.raises(ValueError, match="sessions with and without"):
        rupture_occurrence(d, source="events", events=_events(d).iloc[:0])
    with pytest.raises(KeyError, match="wai"):
        rupture_occurrence(d, alliance="wai")


def test_observer_source_uses_coded_sessions_only():
    study = alliance.datasets.load_dataset("dyads")
    seg = study.segments
    drop = seg["session"] == seg["session"].max()  # the last session is not coded
    opts = {"phase": None, "techniques": None, "trend": False}
    fit = rupture_occurrence(study, source="observer", segments=seg[~drop], **opts)
    assert fit.source == "observer"
    assert fit.notes[0].startswith("ruptures: observer-coded 3RS")
    n_last = int((study.sessions["session"] == seg["session"].max()).sum())
    row = fit.excluded.set_index("reason").loc["session not coded by observers (no 3RS segments)"]
    assert row["n_rows"] == n_last
    assert fit.nobs == len(study.sessions) - n_last
