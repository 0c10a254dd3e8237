"""Each validation problem produces its message; all problems are listed at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import Study, ValidationError, validate


def problems_of(study, **kwargs) -> pd.DataFrame:
    with pytest.raises(ValidationError) as info:
        validate(study, **kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def test_demo_and_btheb_are_valid(demo):
    report = validate(demo)
    assert report.ok and report.n_clients == 300 and report.n_therapists == 30
    # missing scores are counted, never an error
    assert report.missing.set_index("column").loc["phq9_2", "n_missing"] > 0
    btheb = alliance.datasets.load_dataset("btheb")
    report = validate(btheb)
    assert report.missing.set_index("column").loc["bdi_ii", "n_missing"] == 120
    assert "no therapist column" in report.notes["note"].iloc[0]


def test_duplicate_client_session(demo):
    demo.sessions.loc[5, "session"] = demo.sessions.loc[4, "session"]
    p = problems_of(demo)
    row = p[p["problem"].str.contains("more than once")].iloc[0]
    assert row["rows"] == [5, 6] and row["column"] == "session"
    assert "one row per client and session" in row["fix"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.5, "non-integer session"), (-1, "negative session"), ("S3", "not a number")],
)
def test_bad_session_numbers(demo, value, text):
    demo.sessions["session"] = demo.sessions["session"].astype(object)
    demo.sessions.loc[9, "session"] = value
    p = problems_of(demo)
    hit = p[p["problem"].str.contains(text)]
    assert len(hit) == 1 and hit["rows"].iloc[0] == [10]


def test_missing_session_number(demo):
    demo.sessions["session"] = demo.sessions["session"].astype(float)
    demo.sessions.loc[[0, 7], "session"] = np.nan
    p = problems_of(demo)
    assert p[p["problem"].str.contains("missing")]["rows"].iloc[0] == [1, 8]


def test_client_with_two_therapists(demo):
    first = demo.sessions["client"] == "C002"  # seven sessions, all with T01
    demo.sessions.loc[first & (demo.sessions["session"] > 5), "therapist"] = "T02"
    p = problems_of(demo)
    row = p[p["problem"].str.contains("more than one therapist")].iloc[0]
    assert "C002 (T01 and T02)" in row["problem"]
    assert "allow_therapist_change=True" in row["fix"]
    report = validate(demo, allow_therapist_change=True)
    assert report.therapist_changes["client"].tolist() == ["C002"]


def test_item_outside_codebook_range(demo):
    demo.sessions.loc[[2, 11], "wai_sr_3"] = [7, 0]
    p = problems_of(demo)
    row = p[p["column"] == "wai_sr_3"].iloc[0]
    assert row["rows"] == [3, 12] and "outside the range 1 to 5" in row["problem"]


def test_item_outside_registry_range_without_codebook(demo):
    sessions = demo.sessions[["client", "therapist", "session", "phq9_1"]].copy()
    sessions.loc[0, "phq9_1"] = 4
    p = problems_of(Study(sessions=sessions))
    row = p[p["column"] == "phq9_1"].iloc[0]
    assert "phq9 registry entry" in row["problem"] and row["rows"] == [1]
    assert validate(Study(sessions=sessions), check_instruments=False).ok


def test_text_in_numeric_column(demo):
    demo.sessions["phq9_4"] = demo.sessions["phq9_4"].astype(object)
    demo.sessions.loc[20, "phq9_4"] = "n/a"
    p = problems_of(demo)
    assert "not numbers" in p[p["column"] == "phq9_4"]["problem"].iloc[0]


def test_unknown_column_with_close_match(demo):
    demo.sessions = demo.sessions.rename(columns={"wai_sr": "wai_rs"})
    p = problems_of(demo)
    assert p["problem"].str.contains("did you mean 'wai_sr'").any()
    assert p["problem"].str.contains("declares column 'wai_sr'").any()


def test_missing_required_column_suggests_rename(demo):
    demo.sessions = demo.sessions.rename(columns={"client": "Client"})
    p = problems_of(demo)
    row = p[p["problem"].str.contains("required column 'client'")].iloc[0]
    assert "rename 'Client' to 'client'" in row["fix"]


def test_clients_in_sessions_but_not_in_clients(demo):
    demo.clients = demo.clients[demo.clients["client"] != "C002"]
    p = problems_of(demo)
    assert p["problem"].str.contains("in sessions but not in clients").any()


def test_events_with_bad_kind_and_resolved(demo):
    demo.events["kind"] = demo.events["kind"].astype(object)
    demo.events.loc[0, "kind"] = "anger"
    demo.events["resolved"] = demo.events["resolved"].astype(object)
    demo.events.loc[1, "resolved"] = "maybe"
    p = problems_of(demo)
    assert set(p.loc[p["table"] == "events", "column"]) >= {"kind", "resolved"}


def test_bad_phase_and_boolean(demo):
    demo.sessions.loc[0, "phase"] = "termination"
    demo.clients["prior_negative_therapy"] = demo.clients["prior_negative_therapy"].astype(object)
    demo.clients.loc[3, "prior_negative_therapy"] = "sometimes"
    p = problems_of(demo)
    assert "termination" in p[p["column"] == "phase"]["problem"].iloc[0]
    assert p[p["column"] == "prior_negative_therapy"]["rows"].iloc[0] == [4]


def test_every_problem_listed_at_once(demo):
    demo.sessions["session"] = demo.sessions["session"].astype(float)
    demo.sessions.loc[0, "session"] = 0.5
    demo.sessions.loc[1, "wai_sr_1"] = 9
    demo.sessions.loc[2, "phq9_1"] = -1
    demo.sessions.loc[3, "phase"] = "other"
    with pytest.raises(ValidationError) as info:
        validate(demo)
    message = str(info.value)
    # seven: the session 0.5 is also below the codebook's minimum of 1, and the demo's
    # observer segments and coder assignments of that session now name an absent session
    assert message.startswith("the study has 7 problems")
    assert "below the minimum 1" in message
    for text in ("non-integer session", "'wai_sr_1'", "'phq9_1'", "'phase'", "Fix:"):
        assert text in message
    assert "sessions.csv.gz, row 1, column 'session'" in message


def test_raise_on_error_false_returns_the_problems(demo):
    demo.sessions.loc[0, "wai_sr_1"] = 9
    report = validate(demo, raise_on_error=False)
    assert not report.ok and len(report.problems) == 1


def test_validate_refuses_a_dataframe(demo):
    with pytest.raises(TypeError, match="alliance.Study"):
        validate(demo.sessions)
