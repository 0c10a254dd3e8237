"""Big-file paths on small data: the streaming and DuckDB paths agree with the in-memory ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import alliance
from alliance.cli import app
from alliance.io import scan_sessions
from alliance.schema import validate_file
from alliance.scoring import score_file
from alliance.simulate import simulate_rom

BATCH = 3_000


@pytest.fixture(scope="module")
def rom(tmp_path_factory):
    """About 20,000 session rows of a chunked simulation."""
    folder = tmp_path_factory.mktemp("rom")
    return simulate_rom(
        1500,
        folder,
        n_sessions=20,
        clients_per_therapist=10,
        n_sites=3,
        chunk_clients=500,
        seed=4,
    )


@pytest.fixture(scope="module")
def broken(rom, tmp_path_factory):
    """The simulated study with one of each problem, as Parquet and as CSV folders."""
    study = alliance.read_study(rom, engine="pandas")
    s = study.sessions.copy()
    s["session"] = s["session"].astype(float)
    s.loc[10, "session"] = 2.5
    s.loc[200, "wai_sr_3"] = 9
    s.loc[300, "client"] = None
    s.loc[400, "therapist"] = "T999999"
    s.loc[500, "phase"] = "closing"
    s.loc[600, "client"] = "X1"
    s.loc[50, "phq9_2"] = 5
    s.loc[len(s) - 1, "phq9_2"] = 7
    s = pd.concat([s, s.iloc[[100]]], ignore_index=True)  # a repeated row at the end
    bad = alliance.Study(
        sessions=s, clients=study.clients, events=study.events, codebook=study.codebook
    )
    root = tmp_path_factory.mktemp("broken")
    return {fmt: alliance.io.write_study(bad, root / fmt, fmt=fmt) for fmt in ("parquet", "csv")}


def test_simulate_rom_is_reproducible_with_unique_ids(rom, tmp_path):
    sessions = pd.read_parquet(rom / "sessions.parquet")
    clients = pd.read_parquet(rom / "clients.parquet")
    assert len(sessions) > 15_000 and clients["client"].is_unique and len(clients) == 1500
    assert not sessions.duplicated(["client", "session"]).any()
    # one therapist per client, 150 therapists of 10 clients, ids unique across chunks
    assert sessions.groupby("client")["therapist"].nunique().max() == 1
    assert (
        clients["therapist"].value_counts().eq(10).all() and clients["therapist"].nunique() == 150
    )
    again = simulate_rom(
        1500,
        tmp_path / "again",
        n_sessions=20,
        clients_per_therapist=10,
        n_sites=3,
        chunk_clients=500,
        seed=4,
    )
    pd.testing.assert_frame_equal(sessions, pd.read_parquet(again / "sessions.parquet"))
    other = simulate_rom(
        1500,
        tmp_path / "other",
        n_sessions=20,
        clients_per_therapist=10,
        n_sites=3,
        chunk_clients=500,
        seed=5,
    )
    assert not sessions["wai_sr"].equals(pd.read_parquet(other / "sessions.parquet")["wai_sr"])
    assert alliance.validate(alliance.read_study(rom)).ok


def test_simulate_rom_uneven_caseload_and_bad_arguments(tmp_path):
    folder = simulate_rom(
        23,
        tmp_path,
        n_sessions=4,
        clients_per_therapist=5,
        n_sites=2,
        chunk_clients=10,
        seed=1,
        fmt="csv",
    )
    clients = pd.read_csv(folder / "clients.csv")
    assert len(clients) == 23 and clients["therapist"].value_counts().min() == 3
    with pytest.raises(ValueError, match="n_clients must be a whole number"):
        simulate_rom(0, tmp_path)
    with pytest.raises(ValueError, match="fmt must be 'parquet' or 'csv'"):
        simulate_rom(10, tmp_path, fmt="xlsx")


def test_cli_simulate_clients(tmp_path):
    runner = CliRunner()
    out = tmp_path / "rom"
    args = ["simulate", "--clients", "60", "--out", str(out), "--format", "parquet"]
    result = runner.invoke(app, [*args, "--clients-per-therapist", "6", "--chunk-clients", "24"])
    assert result.exit_code == 0, result.output
    study = alliance.read_study(out)
    assert study.n_clients == 60 and study.clients["therapist"].nunique() == 10
    result = runner.invoke(app, [*args, "--therapists", "3"])
    assert result.exit_code == 2 and "not both" in result.output


def test_duckdb_engine_keeps_values_in_compact_dtypes(rom):
    plain = alliance.read_study(rom, engine="pandas")
    compact = alliance.read_study(rom, engine="duckdb")
    a, b = plain.sessions, compact.sessions
    assert b.attrs["engine"] == "duckdb" and list(a.columns) == list(b.columns)
    assert str(b["client"].dtype) == "string" and str(b["wai_sr_1"].dtype) == "Int8"
    assert b["session"].dtype == np.int32
    assert b.memory_usage(deep=True).sum() < a.memory_usage(deep=True).sum() / 2.5
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert alliance.validate(compact).ok
    # auto picks pandas for a small file, and usecols reads only what is asked
    assert alliance.io.choose_engine(rom / "sessions.parquet") == "pandas"
    assert alliance.io.choose_engine(rom / "sessions.parquet", memory=2**20) == "duckdb"
    few = alliance.read_study(rom, engine="duckdb", usecols=["client", "session", "phq9"])
    assert list(few.sessions.columns) == ["client", "session", "phq9"]
    with pytest.raises(KeyError, match="did you mean 'phq9'"):
        alliance.read_study(rom, engine="duckdb", usecols=["client", "phq"])
    with pytest.raises(ValueError, match="engine must be one of"):
        alliance.read_study(rom, engine="polars")


def test_downstream_analyses_run_on_compact_tables(rom):
    plain = alliance.read_study(rom, engine="pandas").sessions
    compact = alliance.read_study(rom, engine="duckdb").sessions
    for data in (plain, compact):
        data.attrs.clear()
    rc_a = alliance.change.reliable_change(plain, outcome="phq9", sd="pre", reliability=0.84)
    rc_b = alliance.change.reliable_change(compact, outcome="phq9", sd="pre", reliability=0.84)
    pd.testing.assert_frame_equal(
        rc_a.reset_index(drop=True).astype(str), rc_b.reset_index(drop=True).astype(str)
    )
    found_a = alliance.ruptures.detect(plain, alliance="wai_sr", threshold=8)
    found_b = alliance.ruptures.detect(compact, alliance="wai_sr", threshold=8)
    assert len(found_a) == len(found_b)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_scan_sessions_whole_clients_file_rows(rom, broken, fmt, tmp_path):
    path = broken[fmt] / f"sessions.{fmt}"
    full = alliance.read_study(broken[fmt], engine="pandas").sessions
    batches = list(scan_sessions(path, batch_rows=BATCH))
    assert sum(len(b) for b in batches) == len(full) and len(batches) >= 6
    seen = [set(b["client"].dropna()) for b in batches]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    # the index is the file's row number (the first data row is row 1)
    rows = np.concatenate([b.index.to_numpy() for b in batches])
    joined = pd.concat(batches)
    assert sorted(rows) == list(range(1, len(full) + 1))
    assert joined.loc[11, "session"] == 2.5 and joined.loc[201, "wai_sr_3"] == 9


def test_scan_sessions_regroups_scattered_clients(rom, tmp_path):
    sessions = pd.read_parquet(rom / "sessions.parquet")
    shuffled = sessions.sample(frac=1.0, random_state=1).reset_index(drop=True)
    path = tmp_path / "sessions.parquet"
    shuffled.to_parquet(path, index=False)
    batches = list(scan_sessions(path, batch_rows=BATCH, usecols=["session", "wai_sr"]))
    seen = [set(b["client"]) for b in batches]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    joined = pd.concat(batches)
    assert len(joined) == len(shuffled)
    # every row keeps its own file row number
    back = shuffled.iloc[joined.index.to_numpy() - 1]
    assert (back["client"].to_numpy() == joined["client"].to_numpy()).all()
    assert (back["session"].to_numpy() == joined["session"].to_numpy()).all()
    with pytest.raises(KeyError, match="client column 'ClientID'"):
        next(scan_sessions(path, client="ClientID"))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_validate_file_matches_validate(broken, fmt):
    memory = alliance.validate(alliance.read_study(broken[fmt]), raise_on_error=False)
    streamed = validate_file(broken[fmt], batch_rows=BATCH, raise_on_error=False)
    assert len(memory.problems) == 8, memory.problems["problem"].tolist()
    pd.testing.assert_frame_equal(memory.problems, streamed.problems)
    pd.testing.assert_frame_equal(memory.notes, streamed.notes)
    pd.testing.assert_frame_equal(memory.missing, streamed.missing, check_dtype=False)
    assert (memory.n_clients, memory.n_therapists, memory.n_sessions) == (
        streamed.n_clients,
        streamed.n_therapists,
        streamed.n_sessions,
    )
    with pytest.raises(alliance.ValidationError, match=r"row 11, column 'session'"):
        validate_file(broken[fmt], batch_rows=BATCH)


def test_validate_file_valid_study(rom):
    report = validate_file(rom, batch_rows=BATCH)
    assert report.ok and report.n_clients == 1500 and report.n_therapists == 150


def test_score_file_matches_score(rom, broken, tmp_path):
    info = score_file(
        rom / "sessions.parquet", tmp_path / "wai.parquet", "wai_sr", batch_rows=BATCH
    )
    streamed = pd.read_parquet(tmp_path / "wai.parquet")
    sessions = pd.read_parquet(rom / "sessions.parquet")
    memory = alliance.score(sessions, "wai_sr")
    assert list(streamed.columns[:4]) == ["client", "therapist", "site", "session"]
    np.testing.assert_allclose(streamed["wai_sr"], memory["wai_sr"])
    np.testing.assert_allclose(streamed["wai_sr_task"], memory["wai_sr_task"])
    for key in ("n_rows", "n_scored", "n_prorated", "n_over_limit"):
        assert info[key] == memory.attrs["scoring"][key]
    # out-of-range items are reported with the file's row numbers, from every batch
    path = broken["csv"] / "sessions.csv"
    out = tmp_path / "phq.parquet"
    with pytest.raises(ValueError, match=r"rows cannot be scored") as caught:
        score_file(path, out, "wai_sr", batch_rows=BATCH)
    assert "row 201: wai_sr_3 = 9" in str(caught.value) and not out.exists()
    with pytest.raises(ValueError, match="2 batch") as caught:
        score_file(path, out, "phq9", batch_rows=BATCH)
    assert "row 51: phq9_2 = 5" in str(caught.value) and "phq9_2 = 7" in str(caught.value)
    with pytest.raises(KeyError, match="Pass items="):
        score_file(path, out, "srs")


def test_scan_sessions_reads_codebook_and_named_identifiers_as_text(tmp_path):
    """A column the codebook (or ``ids=``) makes an identifier is text, as in read_study."""
    path = tmp_path / "sessions.csv"
    path.write_text(
        "client,rater_code,coder,session,wai_sr\n001,7,3,1,40\n001,12,4,2,41\n1,7,3,1,38\n",
        encoding="utf-8",
    )
    plain = pd.concat(scan_sessions(path))
    assert plain["client"].tolist() == ["001", "001", "1"]  # client is always text
    assert pd.api.types.is_numeric_dtype(plain["rater_code"])  # nothing says it is an id
    named = pd.concat(scan_sessions(path, ids=["coder"]))
    assert named["coder"].astype(object).tolist() == ["3", "4", "3"]
    assert pd.api.types.is_numeric_dtype(named["rater_code"])
    book = {
        "resources": [
            {
                "name": "sessions",
                "path": "sessions.csv",
                "schema": {"fields": [{"name": "rater_code", "type": "string"}]},
            }
        ]
    }
    (tmp_path / "datapackage.json").write_text(json.dumps(book), encoding="utf-8")
    coded = pd.concat(scan_sessions(path))
    assert coded["rater_code"].astype(object).tolist() == ["7", "12", "7"]
    assert alliance.read_study(tmp_path).sessions["rater_code"].astype(object).tolist() == [
        "7",
        "12",
        "7",
    ]
