"""Observer-coded ruptures (3RS), the optional tables, and the bundled dyads dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import Study, ValidationError, validate
from alliance.datasets.make_dyads import DYADS_DESIGN, DYADS_OPTIONS, DYADS_SEED
from alliance.observer import aggregate_segments, as_events, coder_reliability
from alliance.simulate import simulate_study


def problems_of(study) -> pd.DataFrame:
    with pytest.raises(ValidationError) as info:
        validate(study)
    return info.value.problems


def tiny() -> Study:
    """Two clients, two coders; codes chosen so every aggregate can be worked by hand."""
    sessions = pd.DataFrame(
        {"client": ["A", "A", "B"], "therapist": ["T1", "T1", "T2"], "session": [1, 2, 1]}
    )
    rows = [
        # client, session, segment, coder, marker, significance, strategy, resolution
        ("A", 1, 1, "K1", "minimal_response", 2, "redirects", 3),
        ("A", 1, 1, "K1", "denial", 4, None, 1),  # same segment: max significance 4
        ("A", 1, 2, "K1", None, None, None, None),
        ("A", 1, 3, "K1", "rejects_intervention", 3, "gives_rationale", 5),
        ("A", 1, 1, "K2", "withdrawal", 3, None, None),
        ("A", 1, 2, "K2", None, None, None, None),
        ("A", 1, 3, "K2", None, None, None, None),
        ("A", 2, 1, "K1", None, None, None, None),
        ("A", 2, 1, "K2", None, None, None, None),
        ("B", 1, 1, "K1", "defends_self", 1, None, 2),
        ("B", 1, 1, "K2", None, None, None, None),
    ]
    segments = pd.DataFrame(rows, columns=alliance.study.SEGMENT_COLUMNS)
    coders = segments[["coder", "client", "session"]].drop_duplicates().reset_index(drop=True)
    therapists = pd.DataFrame({"therapist": ["T1", "T2"], "experience": [3.0, 10.5]})
    return Study(sessions, segments=segments, coders=coders, therapists=therapists)


def test_tiny_study_is_valid_and_reads_back(tmp_path):
    study = tiny()
    assert validate(study).ok
    back = alliance.read_study(alliance.io.write_study(study, tmp_path))
    assert {"clients", "coders", "segments", "sessions", "therapists"} <= set(back.files)
    assert back.segments["coder"].tolist() == study.segments["coder"].tolist()
    assert validate(back).ok


def test_aggregation_by_hand():
    by_coder = aggregate_segments(tiny(), by_coder=True).set_index(["client", "session", "coder"])
    k1 = by_coder.loc[("A", 1, "K1")]
    # segments 1 (withdrawal, max significance 4, max resolution 3) and 3 (confrontation 3, 5)
    assert k1["n_segments"] == 3
    assert (k1["withdrawal_segments"], k1["confrontation_segments"], k1["rupture_segments"]) == (
        1,
        1,
        2,
    )
    assert k1["mean_significance"] == pytest.approx((4 + 3) / 2)
    assert k1["mean_resolution"] == pytest.approx((3 + 5) / 2)
    k2 = by_coder.loc[("A", 1, "K2")]
    assert k2["rupture_segments"] == 1 and k2["mean_significance"] == 3
    assert np.isnan(k2["mean_resolution"])
    assert not by_coder.loc[("A", 2, "K1"), "rupture"]

    out = aggregate_segments(tiny()).set_index(["client", "session"])
    a1 = out.loc[("A", 1)]
    assert a1["n_coders"] == 2
    assert a1["rupture_segments"] == pytest.approx(1.5)  # coders saw 2 and 1
    assert a1["mean_significance"] == pytest.approx((3.5 + 3) / 2)
    assert a1["mean_resolution"] == pytest.approx(4.0)  # only K1 rated resolution
    assert bool(a1["confrontation"])  # one of two coders: "majority" means at least half
    assert out.loc[("B", 1), "rupture_share"] == 0.5
    strict = aggregate_segments(tiny(), rule="all").set_index(["client", "session"])
    assert bool(strict.loc[("A", 1), "withdrawal"]) and not strict.loc[("A", 1), "confrontation"]
    # a threshold of 3 drops the significance-2 and -1 markers
    high = aggregate_segments(tiny(), min_significance=3, by_coder=True)
    assert high.set_index(["client", "session", "coder"]).loc[("B", 1, "K1"), "rupture"] == False  # noqa: E712
    events = as_events(out.reset_index())
    assert events["source"].eq("observer").all()
    assert events[events["client"] == "A"]["kind"].tolist() == ["confrontation", "withdrawal"]


def test_aggregate_refuses_bad_input():
    with pytest.raises(ValueError, match="rule must be one of"):
        aggregate_segments(tiny(), rule="most")
    bad = tiny().segments.assign(marker="sulking")
    with pytest.raises(ValueError, match="unknown rupture markers"):
        aggregate_segments(bad)
    with pytest.raises(ValueError, match="segments table is empty"):
        aggregate_segments(Study(tiny().sessions))


def test_segment_session_absent_from_sessions():
    study = tiny()
    study.segments.loc[9, "session"] = 7  # client B never had a session 7
    study.coders.loc[study.coders["client"].eq("B") & study.coders["coder"].eq("K1"), "session"] = 7
    p = problems_of(study)
    row = p[(p["table"] == "segments") & (p["column"] == "session")].iloc[0]
    assert row["rows"] == [10]
    assert "absent from the sessions table" in row["problem"] and "B session 7" in row["problem"]
    assert "add the session rows" in row["fix"]


def test_coder_with_no_ratings():
    study = tiny()
    study.coders = pd.concat(
        [study.coders, pd.DataFrame({"coder": ["K3"], "client": ["A"], "session": [2]})],
        ignore_index=True,
    )
    p = problems_of(study)
    row = p[(p["table"] == "coders") & (p["column"] == "coder")].iloc[0]
    assert "['K3'] have no ratings" in row["problem"] and row["rows"] == [7]
    assert "remove the coder's rows" in row["fix"]


def test_unassigned_coder_bad_marker_and_out_of_range_significance():
    study = tiny()
    study.segments.loc[0, "marker"] = "minimal_respons"
    study.segments.loc[3, "significance"] = 6
    study.segments.loc[3, "resolution"] = 0
    study.coders = study.coders[study.coders["client"] != "B"].reset_index(drop=True)
    p = problems_of(study).set_index(["table", "column"])
    assert "did you mean 'minimal_response'" in p.loc[("segments", "marker"), "problem"]
    assert p.loc[("segments", "marker"), "rows"] == [1]
    assert "not whole numbers from 1 to 5" in p.loc[("segments", "significance"), "problem"]
    assert p.loc[("segments", "resolution"), "rows"] == [4]
    assert "does not assign" in p.loc[("segments", "coder"), "problem"]
    assert p.loc[("segments", "coder"), "rows"] == [10, 11]


def test_therapists_table_and_client_records():
    study = tiny()
    study.therapists = study.therapists.iloc[:1]
    study.clients = pd.DataFrame(
        {
            "client": ["A", "B"],
            "therapist": ["T1", "T2"],
            "termination": ["completed", "quit"],
            "prior_therapy": ["harmful", "none"],
        }
    )
    study = Study(
        study.sessions,
        study.clients,
        therapists=study.therapists,
        segments=study.segments,
        coders=study.coders,
    )
    # derived when absent, documented: harmful -> true
    assert study.clients["prior_negative_therapy"].tolist() == [True, False]
    p = problems_of(study).set_index(["table", "column"])
    assert "not in the therapists table" in p.loc[("sessions", "therapist"), "problem"]
    assert "'quit'" in p.loc[("clients", "termination"), "problem"]
    assert ("clients", "prior_negative_therapy") not in p.index


def test_prior_negative_therapy_must_agree_with_prior_therapy():
    sessions = tiny().sessions
    clients = pd.DataFrame(
        {
            "client": ["A", "B"],
            "prior_therapy": ["harmful", "helpful"],
            "prior_negative_therapy": [True, True],
        }
    )
    p = problems_of(Study(sessions, clients))
    row = p[p["column"] == "prior_negative_therapy"].iloc[0]
    assert row["rows"] == [2] and "disagrees" in row["problem"]


def test_registry_has_therapist_and_observer_forms():
    t = alliance.instruments.get("WAI-SR-T")
    o = alliance.instruments.get("wai_o_s")
    assert (t.rater, t.n_items, t.item_min, t.item_max) == ("therapist", 12, 1, 5)
    assert (o.rater, o.construct, o.item_max) == ("observer", "alliance", 7)
    assert t.reverse_items is None and o.reverse_items is None  # not verified: not stored
    assert "Hatcher" in t.citation and "Tichenor" in o.citation


def test_dyads_dataset_loads_validates_and_declares_raters():
    study = alliance.datasets.load_dataset("dyads")
    assert validate(study).ok
    assert study.n_clients == 120 and len(study.therapists) == 20
    fields = study.codebook.fields("sessions").set_index("name")
    assert fields.loc["wai_sr_1", ["instrument", "rater"]].tolist() == ["wai_sr", "client"]
    assert fields.loc["wai_sr_t", ["instrument", "rater"]].tolist() == ["wai_sr_t", "therapist"]
    assert set(study.clients["termination"]) <= set(alliance.study.TERMINATIONS)
    harmful = study.clients["prior_therapy"].eq("harmful")
    assert (harmful == study.clients["prior_negative_therapy"]).all()
    assert set(study.segments["coder"]) == {"O1", "O2"}
    assert study.codebook.licence == "CC0-1.0"
    assert "dyads" in alliance.datasets.list_datasets()["name"].tolist()


def test_shipped_dyads_equal_a_fresh_simulation():
    shipped = alliance.datasets.load_dataset("dyads")
    fresh = simulate_study(**DYADS_DESIGN, **DYADS_OPTIONS, seed=DYADS_SEED, name="dyads")
    np.testing.assert_allclose(shipped.sessions["wai_sr_t"], fresh.sessions["wai_sr_t"], atol=1e-4)
    assert len(shipped.segments) == len(fresh.segments)
    assert shipped.truth["observer"]["icc"] == fresh.truth["observer"]["icc"]


def test_options_off_leave_the_study_unchanged_and_on_leave_alliance_unchanged():
    plain = simulate_study(4, 5, 8, n_sites=2, seed=5)
    rich = simulate_study(4, 5, 8, n_sites=2, seed=5, observer=True, clinical_records=True)
    pd.testing.assert_frame_equal(plain.sessions, rich.sessions)
    rated = simulate_study(4, 5, 8, n_sites=2, seed=5, therapist_ratings={"discrepancy_effect": 0})
    pd.testing.assert_frame_equal(plain.sessions, rated.sessions[plain.sessions.columns])
    with pytest.raises(ValueError, match="unknown key"):
        simulate_study(4, 5, 8, n_sites=2, seed=5, observer={"coders": 3})


def test_coder_icc_recovers_the_simulated_reliability():
    """Coder ICCs within .05 of the simulated truth, per marker type, at both levels.

    The truth is the exact reliability of the coded scores given the simulated latent
    strengths; with about 3,500 coded sessions (35,000 segments) the estimates' sampling
    SD is about .01, so .05 is a margin of several SDs (checked over 8 seeds: largest
    error .03).
    """
    study = simulate_study(40, 8, 12, n_sites=2, seed=7, observer=True)
    truth = study.truth["observer"]["icc"]
    for level in ("segment", "session"):
        rel = coder_reliability(study.segments, unit=level)
        icc2 = rel[rel["statistic"] == "ICC2"].set_index("marker")["estimate"]
        for marker in ("withdrawal", "confrontation", "rupture"):
            assert abs(icc2[marker] - truth[level][marker]) < 0.05, (level, marker)
        assert (rel["n_dropped"] == 0).all()
    # a less reliable coder pair gives a lower ICC, tracked by the truth
    worse = simulate_study(40, 8, 12, n_sites=2, seed=7, observer={"latent_reliability": 0.4})
    rel = coder_reliability(worse.segments, unit="segment").set_index(["marker", "statistic"])
    low = worse.truth["observer"]["icc"]["segment"]["rupture"]
    assert low < truth["segment"]["rupture"] - 0.1
    assert abs(rel.loc[("rupture", "ICC2"), "estimate"] - low) < 0.05


def test_declared_rater_must_be_known_and_match_the_registry():
    study = alliance.datasets.load_dataset("dyads")
    fields = study.codebook.package["resources"][0]["schema"]["fields"]
    by_name = {f["name"]: f for f in fields}
    by_name["wai_sr_t"]["rater"] = "client"  # the registry's wai_sr_t is therapist-rated
    by_name["wai_sr_1"]["rater"] = "patient"
    p = problems_of(study).set_index("column")
    assert "registry knows as therapist-rated" in p.loc["wai_sr_t", "problem"]
    assert "wai_sr_t for the therapist's WAI-SR" in p.loc["wai_sr_t", "fix"]
    assert "rater 'patient'" in p.loc["wai_sr_1", "problem"]


def test_observed_agreement_truth_is_what_agreement_estimates():
    """truth['dyad'] *_observed: the latent correlations attenuated by item noise and rounding."""
    study = alliance.datasets.load_dataset("dyads")
    truth = study.truth["dyad"]
    fit = alliance.dyad.agreement(study, x="wai_sr", y="wai_sr_t", therapist="therapist")
    p = fit.params.set_index("term")["estimate"]
    assert abs(p["within-client r"] - truth["within_correlation_observed"]) < 0.05
    assert abs(p["between-client r"] - truth["between_correlation_observed"]) < 0.05
    # the latent within-client correlation is far above what observed scores can show
    assert truth["within_correlation_latent"] - truth["within_correlation_observed"] > 0.1


def test_coder_reliability_former_argument_names_still_work_with_a_warning():
    study = alliance.datasets.load_dataset("dyads")
    first = study.segments[study.segments["client"].isin(["C001", "C002", "C003", "C004"])]
    new = coder_reliability(first, unit="session", level=0.9)
    with pytest.warns(DeprecationWarning, match="unit="):
        old_unit = coder_reliability(first, level="session")
    with pytest.warns(DeprecationWarning, match="level="):
        old_ci = coder_reliability(first, unit="session", ci=0.9)
    pd.testing.assert_frame_equal(new, old_ci)
    assert (old_unit["unit"] == "session").all()
    assert (new["ci_high"] - new["ci_low"] < old_unit["ci_high"] - old_unit["ci_low"]).all()
    with pytest.raises(ValueError, match="disagree"):
        coder_reliability(first, unit="segment", level="session")
