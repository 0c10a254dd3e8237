"""alliance init guesses the roles of the optional therapists, segments and coders tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import alliance
from alliance.design import resolve_design
from alliance.intake import TABLE_ROLES, guess_table_roles, init_study
from alliance.study import CODER_COLUMNS, SEGMENT_COLUMNS, THERAPIST_COLUMNS


def test_the_roles_are_the_tables_columns():
    assert list(TABLE_ROLES["segments"]) == SEGMENT_COLUMNS
    assert list(TABLE_ROLES["coders"]) == CODER_COLUMNS
    assert list(TABLE_ROLES["therapists"]) == THERAPIST_COLUMNS


def test_guesses_english_and_german_names():
    seg = guess_table_roles(
        "segments",
        ["Patient_ID", "Session No", "Segment Nr", "Rater", "Rupture Marker", "Salience",
         "Resolution Strategy", "Resolution Rating", "notes"],
    )  # fmt: skip
    assert seg == {
        "client": "Patient_ID",
        "session": "Session No",
        "segment": "Segment Nr",
        "coder": "Rater",
        "marker": "Rupture Marker",
        "significance": "Salience",
        "strategy": "Resolution Strategy",
        "resolution": "Resolution Rating",
    }
    th = guess_table_roles("therapists", ["Therapeutin", "Klinik", "Berufserfahrung"])
    assert th == {"therapist": "Therapeutin", "site": "Klinik", "experience": "Berufserfahrung"}
    assert guess_table_roles("coders", ["Kodierer", "VPN", "Termin"]) == {
        "coder": "Kodierer",
        "client": "VPN",
        "session": "Termin",
    }


def test_the_sessions_roles_and_canonical_names_win():
    sessions = pd.DataFrame({"Code": ["a", "a", "b"], "Nummer": [1, 2, 1], "phq9": [5, 4, 3]})
    design = resolve_design(sessions, client="Code", session="Nummer")
    # "Code" is the client in the sessions table, so it is not taken as the marker
    found = guess_table_roles("segments", ["Code", "Nummer", "segment", "coder", "Marker"], design)
    assert found["client"] == "Code" and found["session"] == "Nummer"
    assert found["marker"] == "Marker" and found["segment"] == "segment"
    # a column plays one role only: "id" is the client, so the coder is not found in it
    assert "coder" not in guess_table_roles("coders", ["id", "session"])
    with pytest.raises(ValueError, match="table must be one of"):
        guess_table_roles("events", ["client"])


def _files(tmp_path):
    sessions = pd.DataFrame(
        {"KlientID": ["01", "01", "02", "02"], "Sitzung": [1, 2, 1, 2],
         "Therapeut": ["T1", "T1", "T2", "T2"], "phq9": [12, 10, 15, 14]}
    )  # fmt: skip
    segments = pd.DataFrame(
        {"KlientID": ["01", "01", "02", "02"], "Sitzung": [1, 1, 2, 2],
         "Abschnitt": [1, 1, 1, 1], "Kodierer": ["K1", "K2", "K1", "K2"],
         "Marker": ["denial", None, "withdrawal", "withdrawal"],
         "Bedeutsamkeit": [3, None, 2, 4]}
    )  # fmt: skip
    coders = pd.DataFrame(
        {"Rater": ["K1", "K2", "K1", "K2"], "KlientID": ["01", "01", "02", "02"],
         "Sitzung": [1, 1, 2, 2]}
    )  # fmt: skip
    therapists = pd.DataFrame({"Therapeut": ["T1", "T2"], "Erfahrung": [3, 12]})
    paths = []
    for name, frame in (("daten", sessions), ("segmente", segments), ("kodierer", coders),
                        ("therapeuten", therapists)):  # fmt: skip
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_init_writes_the_optional_tables_under_their_roles(tmp_path):
    result = init_study(_files(tmp_path), tmp_path / "study")
    assert result.table_roles["segments"]["coder"] == "Kodierer"
    assert result.table_roles["therapists"] == {"therapist": "Therapeut", "experience": "Erfahrung"}
    assert "segments table (column: role)" in result.summary()
    written = sorted(p.name for p in result.folder.iterdir())
    assert {"segments.csv", "coders.csv", "therapists.csv"} <= set(written)
    book = json.loads((result.folder / "datapackage.json").read_text())
    seg = next(r for r in book["resources"] if r["name"] == "segments")
    coder = next(f for f in seg["schema"]["fields"] if f["name"] == "coder")
    assert coder["role"] == "coder" and coder["source_name"] == "Kodierer"
    study = alliance.read_study(result.folder)
    alliance.validate(study)
    assert study.segments.columns[:6].tolist() == SEGMENT_COLUMNS[:6]
    assert study.segments["client"].tolist() == ["01", "01", "02", "02"]
    assert study.coders.columns.tolist() == CODER_COLUMNS
    assert study.therapists["experience"].tolist() == [3, 12]


def test_a_second_file_for_one_table_is_refused(tmp_path):
    paths = _files(tmp_path)
    extra = tmp_path / "segments.csv"
    extra.write_text((tmp_path / "segmente.csv").read_text())
    with pytest.raises(ValueError, match="two files were given for the segments table"):
        init_study([*paths, extra], tmp_path / "out")
