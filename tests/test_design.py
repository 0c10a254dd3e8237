"""Column roles resolved once: precedence, conventions, items, the early window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.design import EarlyWindow, canonical_study, resolve_design
from alliance.intake import wide_sessions
from alliance.study import Codebook, Study


def _frame(**extra):
    base = {"ClientID": ["01", "01", "1"], "Sitzung": [1, 2, 1], "TherapeutID": ["T", "T", "U"]}
    return pd.DataFrame({**base, **extra})


def test_arguments_beat_the_codebook_which_beats_names():
    frame = _frame(Nummer=[1, 2, 1])
    assert resolve_design(frame).session == "Sitzung"  # conventional German name
    book = Codebook(
        {"resources": [{"name": "sessions", "schema": {"fields": [
            {"name": "Nummer", "role": "session"}]}}]}
    )  # fmt: skip
    study = Study(frame, codebook=book)
    design = resolve_design(study)
    assert (design.session, design.sources["session"]) == ("Nummer", "codebook")
    design = resolve_design(study, session="Sitzung")
    assert (design.session, design.sources["session"]) == ("Sitzung", "argument")
    assert resolve_design(study, therapist=None).therapist is None  # explicitly none


def test_unknown_columns_and_roles_name_the_close_match():
    with pytest.raises(KeyError, match="Did you mean 'Sitzung'"):
        resolve_design(_frame(), session="Sitzun")
    with pytest.raises(KeyError, match="Did you mean 'therapist'"):
        resolve_design(_frame(), therapis="TherapeutID")


@pytest.mark.parametrize(
    ("top", "expected"), [(5, "wai_sr"), (7, "wai_s")], ids=["1..5 is WAI-SR", "1..7 is WAI-S"]
)
def test_wai_items_are_told_apart_by_their_range(top, expected):
    rng = np.random.default_rng(1)
    items = {f"WAI_{i}": rng.integers(1, top + 1, 3) for i in range(1, 13)}
    items["WAI_1"][0] = top  # the range reaches its top
    design = resolve_design(_frame(**items))
    assert list(design.items) == [expected]
    assert design.alliance == expected and design.sources["alliance"] == "items"


def test_items_in_any_case_and_an_incomplete_set_is_not_an_instrument():
    items = {f"PHQ9_{i}": [0, 1, 2] for i in range(1, 10)}
    assert list(resolve_design(_frame(**items)).items) == ["phq9"]
    del items["PHQ9_9"]
    assert resolve_design(_frame(**items)).items == {}


def test_canonical_study_keeps_ids_as_text_and_refuses_collisions():
    frame = _frame(Gruppe=["A", "A", "B"])
    out = canonical_study(Study(frame), resolve_design(Study(frame)))
    assert out.sessions["client"].tolist() == ["01", "01", "1"]  # two clients, as written
    assert out.clients.set_index("client")["condition"].to_dict() == {"01": "A", "1": "B"}
    clash = _frame(client=["x", "x", "y"])  # a column already called client
    with pytest.raises(ValueError, match="would both be called 'client'"):
        canonical_study(Study(clash), resolve_design(Study(clash), client="ClientID"))
    with pytest.raises(ValueError, match="no session column.*--column"):
        nosession = _frame().drop(columns="Sitzung")
        canonical_study(Study(nosession), resolve_design(Study(nosession)))


def test_early_window_counts_rated_sessions_or_session_numbers():
    data = pd.DataFrame(
        {
            "client": ["a"] * 4 + ["b"] * 2,
            "session": [1, 2, 3, 4, 1, 2],
            "wai": [3.0, np.nan, 4.0, 5.0, 2.0, np.nan],
        }
    )
    rated = EarlyWindow(3).compute(data, "wai").set_index("client")
    assert rated.loc["a", "early"] == pytest.approx(4.0)  # sessions 1, 3, 4
    assert np.isnan(rated.loc["b", "early"])  # one rating of the three needed
    assert rated.attrs["n_short"] == 1
    numbers = EarlyWindow(3, counts="numbers").compute(data, "wai").set_index("client")
    assert numbers.loc["a", "early"] == pytest.approx(3.5)  # sessions 1..3: two ratings
    assert numbers.loc["b", "early"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 1"):
        EarlyWindow(0)


def test_wide_sessions_do_not_inflate_attendance():
    wide = pd.DataFrame(
        {"Code": ["1", "2"], "age": [30, 40], "phq9_s1": [20, 15], "phq9_s3": [np.nan, 9]}
    )
    long = wide_sessions(wide, "phq9", client="Code")
    assert long[["Code", "session", "phq9"]].values.tolist() == [
        ["1", 1, 20.0],
        ["2", 1, 15.0],
        ["2", 3, 9.0],
    ]
    with pytest.raises(ValueError, match="no columns named like srs_s1"):
        wide_sessions(wide, "srs", client="Code")


def test_the_demo_design_and_the_registry_agree():
    design = alliance.resolve_design(alliance.datasets.load_dataset("demo"))
    assert design.instruments == {
        "alliance": "wai_sr",
        "outcome": "phq9",
        "alliance_therapist": "wai_sr_t",
    }
    assert design.techniques == ["paraphrasing", "reflection", "confrontation"]
    roles = ["client", "therapist", "session", "prior_negative_therapy", "termination"]
    assert not design.missing(roles)
    without = alliance.datasets.load_dataset("dyads")
    without.clients = without.clients.drop(columns="termination")
    lacking = alliance.resolve_design(without)
    assert lacking.missing(["termination"]) == ["how treatment ended (termination reason)"]


def test_a_study_nests_clients_in_its_therapists_unless_told_not_to():
    import warnings

    study = alliance.datasets.load_dataset("demo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = alliance.models.early_alliance(study, alliance="wai_sr", outcome="phq9")
        explicit = alliance.models.early_alliance(
            study, alliance="wai_sr", outcome="phq9", therapist="therapist"
        )
        none = alliance.models.early_alliance(
            study, alliance="wai_sr", outcome="phq9", therapist=False
        )
        frame = alliance.models.early_alliance(study.sessions, alliance="wai_sr", outcome="phq9")
    pd.testing.assert_frame_equal(auto.params, explicit.params)
    assert auto.notes[0].startswith("clients nested in therapists")
    assert not any("nested in therapists" in n for n in explicit.notes + none.notes)
    assert "therapists" in auto.n and "therapists" not in none.n
    pd.testing.assert_frame_equal(none.params, frame.params)
