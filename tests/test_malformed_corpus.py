"""A corpus of malformed inputs: each gets a clear message, the right exit code, no traceback.

Every input is made in ``tmp_path`` by the test; every case checks that the input file is
unchanged (SHA-256) after the command ran.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import alliance
from alliance.cli import app
from alliance.io import ReadError

runner = CliRunner()

GOOD = "client,therapist,session,wai_sr,phq9\nC1,T1,1,40,12\nC1,T1,2,42,10\nC2,T2,1,38,15\nC2,T2,2,39,14\n"
EURO = "client;therapist;session;wai_sr;phq9\nC1;Müller;1;40,5;12\nC1;Müller;2;42,5;10\nC2;Jäger;1;38,0;15\n"


def _csv(text: str, encoding: str = "utf-8", name: str = "sessions.csv"):
    def make(folder):
        path = folder / name
        path.write_bytes(text.encode(encoding))
        return path

    return make


def _bytes(data: bytes, name: str = "sessions.csv"):
    def make(folder):
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _xlsx_bytes() -> bytes:
    buf = io.BytesIO()
    pd.read_csv(io.StringIO(GOOD)).to_excel(buf, index=False)
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("sessions.csv", GOOD)
    return buf.getvalue()


def _replace(old: str, new: str, base: str = GOOD):
    return _csv(base.replace(old, new, 1))


# name, maker, extra CLI options, exit code, substrings the message must hold (problem, fix)
CASES = [
    ("euro_excel", _csv(EURO, "cp1252"), [], 0, ["valid"]),
    (
        "euro_excel_explicit",
        _csv(EURO, "cp1252"),
        ["--sep", ";", "--decimal", ",", "--encoding", "cp1252"],
        0,
        ["valid"],
    ),
    ("utf8_bom", _csv("\ufeff" + GOOD), [], 0, ["valid"]),
    ("utf8_bom_semicolon", _csv("\ufeff" + EURO), [], 0, ["valid"]),
    ("tab_in_csv", _csv(GOOD.replace(",", "\t")), [], 0, ["valid"]),
    ("pipe", _csv(GOOD.replace(",", "|")), [], 0, ["valid"]),
    ("latin1_names", _csv(GOOD.replace("T1", "Zoë"), "latin-1"), [], 0, ["valid"]),
    ("crlf_line_ends", _csv(GOOD.replace("\n", "\r\n")), [], 0, ["valid"]),
    ("quoted_ragged", _csv(GOOD + '"C3",T3,1,40\n'), [], 2, ["line 6", "needs quotes"]),
    ("tsv_suffix", _csv(GOOD.replace(",", "\t"), name="sessions.tsv"), [], 0, ["valid"]),
    ("ragged_extra", _replace("C1,T1,2,42,10", "C1,T1,2,42,10,7"), [], 2, ["line 3", "separator"]),
    ("ragged_short", _replace("C2,T2,1,38,15", "C2,T2,1"), [], 2, ["line 4", "Fix those lines"]),
    ("ragged_many", _csv(GOOD + "C3,T3,1\nC3,T3,2\n"), [], 2, ["line 6", "line 7"]),
    (
        "wrong_sep_given",
        _csv(GOOD),
        ["--sep", "|"],
        1,
        ["whole header is one column", "another separator"],
    ),
    ("binary", _bytes(bytes(range(256)) * 8), [], 2, ["not a text table", "save it"]),
    ("png", _bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), [], 2, ["PNG image"]),
    ("zip", _bytes(_zip_bytes()), [], 2, ["zip archive", "unzip"]),
    ("xlsx_named_csv", _bytes(_xlsx_bytes()), [], 2, ["xlsx", "save it as .xlsx"]),
    ("pdf", _bytes(b"%PDF-1.4\n" + b"x" * 50), [], 2, ["PDF document"]),
    ("empty", _bytes(b""), [], 2, ["empty", "export the table again"]),
    (
        "header_only",
        _csv("client,therapist,session,wai_sr\n"),
        [],
        1,
        ["no rows", "export the table again"],
    ),
    ("blank_lines_only", _csv("client,session\n\n\n"), [], 1, ["no rows"]),
    (
        "dup_wai_sr",
        _csv("client,therapist,session,wai_sr,phq9,wai_sr\nC1,T1,1,40,12,41\n"),
        [],
        2,
        ["'wai_sr' at columns 4, 6", "own name"],
    ),
    (
        "dup_client",
        _csv("client,therapist,client,session\nC1,T1,C9,1\n"),
        [],
        2,
        ["'client' at columns 1, 3", "own name"],
    ),
    ("inf_score", _replace("40,12", "inf,12"), [], 1, ["not finite", "leave the cell empty"]),
    ("minus_inf_score", _replace("38,15", "-inf,15"), [], 1, ["not finite", "replace inf"]),
    ("nan_text_score", _replace("42,10", "nan,10"), [], 1, ["not finite", "replace inf"]),
    (
        "huge_score",
        _replace("40,12", "1e308,12"),
        [],
        1,
        ["outside the range 12 to 60", "correct the entries"],
    ),
    ("guess_text_score", _replace("40,12", "40,3 (guess)"), [], 1, ["'3 (guess)'", "recode text"]),
    (
        "guess_text_other",
        _csv("client,session,mood\nC1,1,3\nC1,2,3 (guess)\nC2,1,4\n"),
        [],
        1,
        ["'3 (guess)'", "recode text"],
    ),
    (
        "phq9_total_too_high",
        _replace("40,12", "40,99"),
        [],
        1,
        ["outside the range 0 to 27", "correct the entries"],
    ),
    (
        "wai_total_too_low",
        _replace("40,12", "3,12"),
        [],
        1,
        ["outside the range 12 to 60", "correct the entries"],
    ),
    (
        "item_out_of_range",
        _csv("client,session,wai_sr_1\nC1,1,9\n"),
        [],
        1,
        ["outside the range 1 to 5", "correct the entries"],
    ),
    (
        "negative_session",
        _replace("C1,T1,2,", "C1,T1,-2,"),
        [],
        1,
        ["negative session", "sessions count from 0"],
    ),
    (
        "fractional_session",
        _replace("C1,T1,2,", "C1,T1,2.5,"),
        [],
        1,
        ["non-integer session", "whole numbers"],
    ),
    ("text_session", _replace("C1,T1,2,", "C1,T1,S2,"), [], 1, ["not a number", "recode labels"]),
    (
        "space_around_id",
        _replace("C1,T1,2,", " C1,T1,2,"),
        [],
        1,
        ["spaces before or after", "remove the spaces"],
    ),
    (
        "space_around_therapist",
        _replace("C2,T2,1,", "C2,T2 ,1,"),
        [],
        1,
        ["spaces before or after", "remove the spaces"],
    ),
    (
        "missing_client_column",
        _csv("ClientID,session\nC1,1\n"),
        [],
        1,
        ["required column 'client'", "ClientID"],
    ),
    (
        "duplicate_client_session",
        _replace("C1,T1,2,", "C1,T1,1,"),
        [],
        1,
        ["more than once", "keep one row"],
    ),
    (
        "unknown_extension",
        _csv(GOOD, name="sessions.foo"),
        [],
        2,
        ["cannot tell the format", "rename the file"],
    ),
    (
        "wrong_encoding_given",
        _csv(EURO, "cp1252"),
        ["--encoding", "utf-8"],
        2,
        ["not valid utf-8", "--encoding cp1252"],
    ),
    ("bad_decimal_option", _csv(GOOD), ["--decimal", "x"], 2, ["decimal must be", "','"]),
    ("bad_sep_option", _csv(GOOD), ["--sep", ";;"], 2, ["sep must be one character", "';'"]),
]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_traceback(result):
    text = result.output + (result.stderr if hasattr(result, "stderr") else "")
    assert "Traceback" not in text and "duckdb" not in text.lower(), text
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.mark.parametrize(
    ("name", "make", "options", "code", "needles"), CASES, ids=[c[0] for c in CASES]
)
def test_validate_corpus(tmp_path, name, make, options, code, needles):
    path = make(tmp_path)
    before = _sha(path)
    result = runner.invoke(app, ["validate", str(path), *options])
    _no_traceback(result)
    assert result.exit_code == code, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert len(result.output.strip().splitlines()) <= 12
    assert _sha(path) == before


def test_missing_file_and_folder_without_sessions(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "sessions.csv")])
    _no_traceback(result)
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "clients.csv").write_text("client\nC1\n")
    before = _sha(tmp_path / "clients.csv")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    _no_traceback(result)
    assert result.exit_code == 2 and "no sessions file" in result.output
    assert "name it sessions.csv" in result.output and _sha(tmp_path / "clients.csv") == before


def test_ids_are_text_exactly_as_written(tmp_path):
    path = _csv("client,session,phq9\n1,1,10\n01,1,11\n1.0,1,12\n0012,1,9\n")(tmp_path)
    before = _sha(path)
    for engine in ("pandas", "duckdb"):
        study = alliance.read_study(path, engine=engine)
        assert study.sessions["client"].tolist() == ["1", "01", "1.0", "0012"], engine
        assert study.n_clients == 4
    result = runner.invoke(app, ["validate", str(path)])
    _no_traceback(result)
    assert result.exit_code == 0 and "4 clients" in result.output
    assert _sha(path) == before


def test_leading_zeros_match_clients_on_text(tmp_path):
    (tmp_path / "sessions.csv").write_text("client,session\n0012,1\n0012,2\n")
    (tmp_path / "clients.csv").write_text("client,condition\n0012,CBT\n")
    hashes = {p.name: _sha(p) for p in tmp_path.iterdir()}
    result = runner.invoke(app, ["validate", str(tmp_path)])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    (tmp_path / "clients.csv").write_text("client,condition\n12,CBT\n")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1 and "not in clients" in result.output and "typos" in result.output
    assert _sha(tmp_path / "sessions.csv") == hashes["sessions.csv"]


@pytest.mark.parametrize("fmt", ["xlsx", "sav", "dta", "parquet"])
def test_typed_formats_numeric_ids_become_text(tmp_path, fmt):
    frame = pd.DataFrame(
        {
            "client": [12.0, 12.0, 7.0],
            "therapist": [3, 3, 4],
            "session": [1, 2, 1],
            "phq9": [10.0, 9.0, np.nan],
        }
    )
    path = tmp_path / f"sessions.{fmt}"
    alliance.io.write_table(frame, path)
    before = _sha(path)
    engines = ("pandas", "duckdb") if fmt == "parquet" else ("pandas",)
    for engine in engines:
        study = alliance.read_study(path, engine=engine)
        assert study.sessions["client"].astype(object).tolist() == ["12", "12", "7"], engine
        assert study.sessions["therapist"].astype(object).tolist() == ["3", "3", "4"], engine
    result = runner.invoke(app, ["validate", str(path)])
    _no_traceback(result)
    assert result.exit_code == 0 and "2 clients" in result.output
    assert _sha(path) == before


def test_duplicated_header_in_xlsx_and_library_errors(tmp_path):
    path = tmp_path / "sessions.xlsx"
    pd.DataFrame([["C1", 1, 40, 41]], columns=["client", "session", "wai_sr", "x"]).rename(
        columns={"x": "wai_sr"}
    ).to_excel(path, index=False)
    before = _sha(path)
    with pytest.raises(ReadError, match=r"'wai_sr' at columns 3, 4"):
        alliance.read_study(path)
    result = runner.invoke(app, ["validate", str(path)])
    _no_traceback(result)
    assert result.exit_code == 2 and _sha(path) == before
    binary = _bytes(b"\x00\x01" * 100)(tmp_path)
    with pytest.raises(ReadError, match="not a text table"):
        alliance.read_study(binary)
    with pytest.raises(ReadError, match="not a text table"):
        alliance.read_study(binary, engine="duckdb")


def test_duckdb_errors_are_translated(tmp_path):
    path = _csv(GOOD + "C3,T3,1,40,10,99\n")(tmp_path)
    with pytest.raises(ReadError, match="different number of fields") as caught:
        alliance.read_study(path, engine="duckdb")
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)
    euro = _csv(EURO, "cp1252", name="euro.csv")(tmp_path)
    study = alliance.read_study(euro, engine="duckdb")
    assert study.sessions["wai_sr"].tolist() == [40.5, 42.5, 38.0]
    assert study.sessions["therapist"].tolist()[0] == "Müller"


def test_european_csv_values_read_right(tmp_path):
    path = _csv(EURO, "cp1252")(tmp_path)
    study = alliance.read_study(path, engine="pandas")
    assert study.sessions.columns.tolist() == ["client", "therapist", "session", "wai_sr", "phq9"]
    assert study.sessions["wai_sr"].tolist() == [40.5, 42.5, 38.0]
    assert study.sessions["therapist"].tolist() == ["Müller", "Müller", "Jäger"]


def test_score_command_reads_dialects_and_refuses_ragged(tmp_path):
    text = "client;session;" + ";".join(f"phq9_{i}" for i in range(1, 10)) + "\n"
    text += "001;1;" + ";".join(["1"] * 9) + "\n"
    path = _csv(text, "cp1252")(tmp_path)
    before = _sha(path)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(path), "-i", "phq9", "-o", str(out)])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, dtype={"client": str})["client"].tolist() == ["001"]
    ragged = _csv(text + "002;1;1\n", name="ragged.csv")(tmp_path)
    result = runner.invoke(app, ["score", str(ragged), "-i", "phq9", "-o", str(tmp_path / "r.csv")])
    _no_traceback(result)
    assert result.exit_code == 2 and "line 3" in result.output and not (tmp_path / "r.csv").exists()
    assert _sha(path) == before


def test_simulate_output_validates_from_its_sessions_file(tmp_path):
    folder = tmp_path / "my_sim"
    result = runner.invoke(app, ["simulate", "--out", str(folder), "--therapists", "4"])
    assert result.exit_code == 0, result.output
    hashes = {p.name: _sha(p) for p in folder.iterdir()}
    result = runner.invoke(app, ["validate", str(folder / "sessions.csv")])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    study = alliance.read_study(folder / "sessions.csv")
    assert set(study.files) >= {"sessions", "clients", "events", "codebook"}
    # a sessions file alone (codebook beside it, no clients file): only what was given
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("sessions.csv", "datapackage.json"):
        (lone / name).write_bytes((folder / name).read_bytes())
    result = runner.invoke(app, ["validate", str(lone / "sessions.csv")])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert hashes == {p.name: _sha(p) for p in folder.iterdir()}


def test_read_study_dialect_arguments(tmp_path):
    path = _csv(EURO, "cp1252")(tmp_path)
    study = alliance.read_study(path, sep=";", decimal=",", encoding="cp1252")
    assert study.sessions["wai_sr"].tolist() == [40.5, 42.5, 38.0]
    with pytest.raises(ReadError, match="not valid utf-8"):
        alliance.read_study(path, encoding="utf-8")
    with pytest.raises(ValueError, match="decimal must be"):
        alliance.read_study(path, decimal=";")


def test_io_and_stream_do_not_import_each_other():
    import ast
    import inspect

    from alliance import _stream

    tree = ast.parse(inspect.getsource(_stream))
    names = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "alliance.io" not in names


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("C1,T1,2,", " C1,T1,2,", 1),
        GOOD.replace("40,12", "40,99", 1),
        GOOD.replace("40,12", "inf,12", 1),
        "client,therapist,session,wai_sr\n",
    ],
    ids=["space", "range", "inf", "header_only"],
)
def test_validate_file_finds_the_same_problems(tmp_path, text):
    path = _csv(text)(tmp_path)
    memory = alliance.validate(alliance.read_study(path), raise_on_error=False)
    streamed = alliance.schema.validate_file(path, raise_on_error=False)
    assert len(memory.problems) == 1, memory.problems
    pd.testing.assert_frame_equal(memory.problems, streamed.problems)


@pytest.mark.parametrize("batch_rows", [1_000, 4])
def test_validate_file_reports_text_among_numbers_without_a_codebook(tmp_path, batch_rows):
    """The streaming path finds '3 (guess)' in an undescribed column, with its rows."""
    lines = ["client,therapist,session,mood,note"]
    for i in range(1, 41):
        mood = "3 (guess)" if i in (7, 33) else str(i % 7)
        lines.append(f"C{i % 5},T1,{i},{mood},fine")
    path = _csv("\n".join(lines) + "\n")(tmp_path)
    before = _sha(path)
    memory = alliance.validate(alliance.read_study(path), raise_on_error=False)
    streamed = alliance.schema.validate_file(path, raise_on_error=False, batch_rows=batch_rows)
    problems = streamed.problems
    assert problems["column"].tolist() == ["mood"], problems
    assert problems["rows"].iloc[0] == [7, 33] and "'3 (guess)'" in problems["problem"].iloc[0]
    assert "recode text" in problems["fix"].iloc[0]
    pd.testing.assert_frame_equal(memory.problems, problems)
    # a text column ("note") is not a numeric column with text in it
    with pytest.raises(alliance.ValidationError, match="not numbers"):
        alliance.schema.validate_file(path, batch_rows=batch_rows)
    assert _sha(path) == before


def _identifier_study(folder, fmt):
    import json

    book = {
        "name": "ids",
        "resources": [
            {
                "name": "sessions",
                "schema": {
                    "fields": [
                        {"name": "client", "type": "integer"},
                        {"name": "session", "type": "integer"},
                        {"name": "family", "type": "integer", "identifier": True},
                        {"name": "caseworker", "type": "integer", "role": "therapist"},
                        {"name": "wai_sr", "type": "number"},
                    ]
                },
            }
        ],
    }
    text = (
        "client,session,family,caseworker,wai_sr\n01,1,007,0012,40\n01,2,007,0012,41\n1,1,7,12,39\n"
    )
    folder.mkdir()
    (folder / "datapackage.json").write_text(json.dumps(book))
    path = folder / f"sessions.{fmt}"
    if fmt == "csv":
        path.write_text(text)
    elif fmt == "tsv":
        path.write_text(text.replace(",", "\t"))
    else:  # a typed format stores the numbers: 12, not 12.0, is the text read back
        alliance.io.write_table(pd.read_csv(io.StringIO(text)), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "xlsx", "sav", "dta"])
def test_codebook_identifiers_typed_integer_stay_text(tmp_path, fmt):
    path = _identifier_study(tmp_path / fmt, fmt)
    before = _sha(path)
    written = fmt in ("csv", "tsv")
    expected = {
        "client": ["01", "01", "1"] if written else ["1", "1", "1"],
        "family": ["007", "007", "7"] if written else ["7", "7", "7"],
        "caseworker": ["0012", "0012", "12"] if written else ["12", "12", "12"],
    }
    engines = ("pandas", "duckdb") if fmt in ("csv", "tsv", "parquet") else ("pandas",)
    for engine in engines:
        sessions = alliance.read_study(path.parent, engine=engine).sessions
        got = {c: sessions[c].astype(object).tolist() for c in expected}
        assert got == expected, engine
    if written:  # 01 and 1 are two clients, 007 is not 7, in memory and streamed
        report = alliance.schema.validate_file(path.parent, raise_on_error=False)
        assert report.ok and report.n_clients == 2, report.problems
        memory = alliance.validate(alliance.read_study(path.parent, engine="duckdb"))
        assert memory.ok and memory.n_clients == 2
    assert _sha(path) == before


def test_codebook_identifier_roles():
    from alliance.study import Codebook

    fields = [
        {"name": "id", "type": "integer", "role": "client"},
        {"name": "who", "type": "integer", "role": "therapist"},
        {"name": "unit", "type": "integer", "role": "site"},
        {"name": "family", "type": "integer", "identifier": True},
        {"name": "note", "type": "string"},
        {"name": "session", "type": "integer"},
        {"name": "ref", "type": "integer"},
        {"name": "score", "type": "number", "role": "alliance"},
    ]
    book = Codebook(
        {
            "resources": [
                {
                    "name": "sessions",
                    "schema": {
                        "fields": fields,
                        "foreignKeys": [{"fields": "ref", "reference": {"resource": "clients"}}],
                    },
                }
            ]
        }
    )
    assert book.identifiers("sessions") == ["id", "who", "unit", "family", "note", "ref"]
    assert book.identifiers("clients") == []


# the bytes 0x80-0x9F: cp1252 has the euro sign and curly quotes there, latin-1 has controls
CP1252_TEXT = "client;therapist;session;wai_sr;note\n" + "".join(
    f"{i:03d};Dr. Müller;{s};{40 + s},5;“gut” – 5 € …\n" for i in range(1, 31) for s in (1, 2)
)


def test_large_cp1252_file_through_duckdb(tmp_path):
    """A cp1252 file above the pandas threshold is decoded as cp1252, not latin-1."""
    path = _csv(CP1252_TEXT, "cp1252")(tmp_path)
    assert b"\x80" in path.read_bytes() and b"\x93" in path.read_bytes()
    before = _sha(path)
    small = alliance.read_study(path, engine="pandas").sessions
    expected = "“gut” – 5 € …"
    assert small["note"].iloc[0] == expected
    # the threshold: choose_engine takes DuckDB when the memory to plan for is small
    assert alliance.io.choose_engine(path, memory=len(CP1252_TEXT)) == "duckdb"
    big = alliance.read_study(path, engine="duckdb").sessions
    assert big["note"].astype(object).tolist() == [expected] * 60
    assert big["therapist"].iloc[0] == "Dr. Müller" and big["client"].iloc[0] == "001"
    assert big["wai_sr"].tolist() == small["wai_sr"].tolist()
    report = alliance.schema.validate_file(path, raise_on_error=False)
    assert report.ok and report.n_clients == 30, report.problems
    batches = list(alliance.io.scan_sessions(path, batch_rows=10))
    assert pd.concat(batches)["note"].astype(object).eq(expected).all()
    assert _sha(path) == before


def test_cp1252_byte_undefined_later_in_a_large_file_is_a_clear_error(tmp_path):
    text = CP1252_TEXT.encode("cp1252") + b"031;X;1;40;bad \x81 byte\n"
    # the sniffer's first megabyte is clean cp1252; the bad byte comes after it
    body = text.replace(b"\n031", b"\n" + b"".join([b"999;Y;9;40;pad\n"] * 80_000) + b"031")
    path = _bytes(body)(tmp_path)
    with pytest.raises(ReadError, match="not valid cp1252") as caught:
        alliance.read_study(path, engine="duckdb")
    assert "encoding" in str(caught.value) and "\n" not in str(caught.value)


def test_ragged_rows_through_duckdb_are_named_by_line(tmp_path):
    path = _csv("client,therapist,session,wai_sr\nC1,T1,1,40,5\nC1,T1,2,41\n")(tmp_path)
    for read in (
        lambda: alliance.read_study(path, engine="duckdb"),
        lambda: alliance.schema.validate_file(path),
        lambda: list(alliance.io.scan_sessions(path)),
    ):
        with pytest.raises(ReadError, match=r"line 2 \(5 fields\).*--sep"):
            read()
