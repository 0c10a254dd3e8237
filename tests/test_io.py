"""Reading and writing every format, wide <-> long, and that inputs are never modified."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.io import long_to_wide, read_table, wide_to_long, write_table

FORMATS = ["csv", "csv.gz", "tsv", "xlsx", "parquet", "sav", "dta"]


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "client": ["C01", "C01", "C02", "C03"],
            "therapist": ["T1", "T1", "T2", "T2"],
            "session": [1, 2, 1, 1],
            "wai_sr": [44.0, np.nan, 51.5, 38.0],
            "phq9_1": [2.0, 3.0, np.nan, 0.0],
        }
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_format(tmp_path, table, fmt):
    path = write_table(table, tmp_path / f"sessions.{fmt}")
    back = read_table(path)
    assert back.columns.tolist() == table.columns.tolist()
    assert back["client"].astype(str).tolist() == table["client"].tolist()
    assert back["session"].astype(int).tolist() == table["session"].tolist()
    np.testing.assert_allclose(back["wai_sr"].astype(float), table["wai_sr"], equal_nan=True)
    np.testing.assert_allclose(back["phq9_1"].astype(float), table["phq9_1"], equal_nan=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "sav", "dta", "xlsx"])
def test_study_round_trip_and_validates(tmp_path, demo, fmt):
    small = alliance.Study(
        sessions=demo.sessions.head(200),
        clients=demo.clients[demo.clients["client"].isin(demo.sessions.head(200)["client"])],
        events=demo.events[demo.events["client"].isin(demo.sessions.head(200)["client"])],
        codebook=demo.codebook,
    )
    folder = alliance.io.write_study(small, tmp_path / fmt, fmt=fmt)
    back = alliance.read_study(folder)
    assert back.sessions.shape == small.sessions.shape
    np.testing.assert_allclose(back.sessions["wai_sr"], small.sessions["wai_sr"])
    assert alliance.validate(back).ok


def test_input_files_are_never_modified(tmp_path, table):
    path = write_table(table, tmp_path / "sessions.csv")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    stamp = path.stat().st_mtime_ns
    study = alliance.read_study(path, columns={"wai_sr": "alliance"})
    study.sessions.loc[0, "alliance"] = 1.0
    alliance.validate(study, raise_on_error=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert path.stat().st_mtime_ns == stamp


def test_column_mapping(tmp_path, table):
    path = write_table(table.rename(columns={"client": "ClientID"}), tmp_path / "s.csv")
    study = alliance.read_study(path, columns={"ClientID": "client"})
    assert "client" in study.sessions.columns
    assert study.files["sessions"] == str(path)


def test_read_study_from_several_files(tmp_path, demo):
    s = write_table(demo.sessions, tmp_path / "sessions.parquet")
    c = write_table(demo.clients, tmp_path / "clients.csv")
    e = write_table(demo.events, tmp_path / "events.tsv")
    study = alliance.read_study([s, c, e])
    assert len(study.clients) == 300 and len(study.events) == len(demo.events)
    assert study.events["resolved"].dtype == "boolean"


def test_unknown_suffix_and_missing_file_errors(tmp_path):
    bad = tmp_path / "sessions.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="suffixes"):
        read_table(bad)
    (tmp_path / "sessions.csv").write_text("client,session\nA,1\n")
    with pytest.raises(FileNotFoundError, match="sessions.csv"):
        read_table(tmp_path / "sesions.csv")
    with pytest.raises(FileNotFoundError, match="no file at"):
        alliance.read_study(tmp_path / "not_there.csv")


def test_folder_without_sessions(tmp_path):
    (tmp_path / "clients.csv").write_text("client\nA\n")
    with pytest.raises(FileNotFoundError, match="no sessions file in folder"):
        alliance.read_study(tmp_path)


def test_wide_to_long_and_back():
    wide = pd.DataFrame(
        {
            "client": ["a", "b", "c"],
            "therapist": ["t1", "t1", "t2"],
            "phq9_1": [20, 15, 9],
            "phq9_2": [18, np.nan, 7],
            "phq9_10": [5, 6, np.nan],
            "srs_1": [30, 31, 35],
            "srs_2": [32, 36, np.nan],
            "srs_10": [38, 36, 30],
        }
    )
    long = wide_to_long(wide, ["phq9", "srs"])
    assert long.shape == (9, 5)
    assert long["session"].tolist() == [1, 2, 10] * 3  # numeric, not text, order
    assert long.loc[(long.client == "b") & (long.session == 2), "phq9"].isna().all()
    back = long_to_wide(long, ["phq9", "srs"])
    pd.testing.assert_frame_equal(
        back[wide.columns].reset_index(drop=True),
        wide.astype({c: float for c in wide.columns[2:]}),
    )


def test_wide_to_long_errors():
    wide = pd.DataFrame({"client": ["a", "a"], "phq_1": [1, 2]})
    with pytest.raises(ValueError, match="one row per client"):
        wide_to_long(wide, "phq")
    with pytest.raises(KeyError, match="phq9_1"):
        wide_to_long(wide.drop_duplicates("client"), "phq9")
    with pytest.raises(KeyError, match="client"):
        wide_to_long(wide.rename(columns={"client": "id"}), "phq")


def test_long_to_wide_refuses_duplicates():
    long = pd.DataFrame({"client": ["a", "a"], "session": [1, 1], "phq9": [3, 4]})
    with pytest.raises(ValueError, match="repeated client x session"):
        long_to_wide(long, "phq9")
