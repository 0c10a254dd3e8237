"""Bring your own study, with the command line only: init, validate, report.

The studies are written by the tests from the demo the way researchers' programs write
them: SPSS with German column names and value labels, Stata with English variants, a
wide Excel file (one row per client, ``PHQ9_s1 ..``), and a CSV saved by European Excel
(``;``, decimal comma, cp1252). Each goes through ``alliance init`` / ``validate`` /
``report`` as a user would type them; each report has its figures and says what it
skipped and why; no input file changes.
"""

from __future__ import annotations

import hashlib
import html as html_text
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import alliance

ENV = {**os.environ, "MPLBACKEND": "Agg"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alliance", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def raw():
    """Forty demo clients in the shape of a researcher's export (ids with leading zeros)."""
    study = alliance.datasets.load_dataset("demo")
    keep = study.sessions["client"].drop_duplicates().iloc[:40]
    s = study.sessions[study.sessions["client"].isin(keep)]
    s = s.merge(study.clients[["client", "condition"]], on="client")
    ids = {c: f"{i + 1:03d}" for i, c in enumerate(keep)}
    frame = pd.DataFrame(
        {
            "ClientID": s["client"].map(ids),
            "TherapeutID": s["therapist"],
            "Sitzung": s["session"],
            "Gruppe": s["condition"].map({"CBT": 1, "psychodynamic": 2}),
        }
    )
    for i in range(1, 13):
        frame[f"WAI_{i}"] = s[f"wai_sr_{i}"].to_numpy()
    for i in range(1, 10):
        frame[f"PHQ9_{i}"] = s[f"phq9_{i}"].to_numpy()
    return frame.reset_index(drop=True)


def _report_checks(folder: Path, *, pages: list[str], skipped: list[str]) -> dict:
    assert (folder / "index.html").is_file()
    for page in pages:
        html = (folder / f"{page}.html").read_text(encoding="utf-8")
        assert "<img" in html or "image/png" in html, f"{page} has no figure"
        assert "Traceback" not in html
    prov = json.loads((folder / "provenance.json").read_text())
    reasons = " | ".join(f"{s['notebook']}: {s['reason']}" for s in prov["skipped"])
    for text in skipped:
        assert text in reasons, reasons
    index = html_text.unescape((folder / "index.html").read_text(encoding="utf-8"))
    for text in skipped:
        assert text.split(":")[0] in index
    return prov


def test_spss_with_german_names_and_value_labels(tmp_path, raw):
    import pyreadstat

    sav = tmp_path / "studie.sav"
    spss = raw.assign(ClientID=raw["ClientID"].astype(int))  # SPSS stores ids as numbers
    pyreadstat.write_sav(spss, sav, variable_value_labels={"Gruppe": {1: "KVT", 2: "TP"}})
    before = _sha(sav)

    done = _cli("init", "studie.sav", "--out", "meine_studie", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for guess in ("ClientID", "TherapeutID", "Sitzung", "Gruppe", "WAI_1 .. WAI_12"):
        assert guess in done.stdout
    book = json.loads((tmp_path / "meine_studie" / "datapackage.json").read_text())
    fields = {f["name"]: f for r in book["resources"] for f in r["schema"]["fields"]}
    assert fields["client"]["role"] == "client" and fields["client"]["source_name"] == "ClientID"
    assert fields["wai_sr_1"]["instrument"] == "wai_sr"
    assert fields["condition"]["categories"] == [
        {"value": 1, "label": "KVT"},
        {"value": 2, "label": "TP"},
    ]
    assert book["sources"][0]["sha256"] == before
    clients = pd.read_csv(tmp_path / "meine_studie" / "clients.csv")
    assert set(clients["condition"]) == {"KVT", "TP"}  # labels shown, not codes

    again = _cli("init", "studie.sav", "--out", "meine_studie", cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert "Traceback" not in again.stderr

    valid = _cli("validate", "meine_studie", cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    rep = _cli(
        "report", "--data", "meine_studie", "--out", "bericht", "-n", "01", "-n", "03", "-n", "07",
        cwd=tmp_path,
    )  # fmt: skip
    assert rep.returncode == 0, rep.stderr[-2000:]
    _report_checks(
        tmp_path / "bericht",
        pages=["01_data_overview", "03_ruptures"],
        skipped=[
            "Prior negative therapy and ruptures: needs whether the client had",
            "1. Moderation by prior negative therapy: needs whether the client had",
            "2. Technique -> alliance -> outcome (mediation): needs the column 'reflection'",
        ],
    )
    dropout = (tmp_path / "bericht" / "07_prior_negative_and_techniques.html").read_text()
    assert "4. Dropout" in dropout  # the sections the data support still run
    page = (tmp_path / "bericht" / "03_ruptures.html").read_text(encoding="utf-8")
    assert "skipped, because it needs" in page
    assert _sha(sav) == before


def test_stata_with_english_variants(tmp_path, raw):
    dta = tmp_path / "trial.dta"
    frame = raw.rename(columns={"ClientID": "PatientID", "TherapeutID": "Clinician"})
    frame = frame.rename(columns={"Sitzung": "Session"})
    frame = frame.rename(columns={f"WAI_{i}": f"WAI{i}" for i in range(1, 13)})
    frame.to_stata(dta, write_index=False, version=118)
    before = _sha(dta)
    done = _cli("init", "trial.dta", "--out", "study", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sessions = pd.read_csv(tmp_path / "study" / "sessions.csv", dtype={"client": str})
    assert sessions["client"].iloc[0] == "001"  # text ids keep their zeros
    assert {"therapist", "session", "wai_sr", "phq9"} <= set(sessions.columns)
    assert _cli("validate", "study", cwd=tmp_path).returncode == 0
    rep = _cli("report", "--data", "study", "--out", "rep", "-n", "01", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-2000:]
    _report_checks(tmp_path / "rep", pages=["01_data_overview"], skipped=[])
    assert _sha(dta) == before


def test_wide_excel_file(tmp_path, raw):
    phq = raw.assign(phq9=raw[[f"PHQ9_{i}" for i in range(1, 10)]].sum(axis=1, min_count=9))
    wide = phq.pivot(index="ClientID", columns="Sitzung", values="phq9")
    wide.columns = [f"PHQ9_s{n}" for n in wide.columns]
    wide = wide.reset_index()
    wide.insert(1, "Therapeut", raw.drop_duplicates("ClientID")["TherapeutID"].to_numpy())
    xlsx = tmp_path / "wide.xlsx"
    wide.to_excel(xlsx, index=False)
    before = _sha(xlsx)
    done = _cli("init", "wide.xlsx", "--out", "long", "--wide", "phq9", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sessions = pd.read_csv(tmp_path / "long" / "sessions.csv", dtype={"client": str})
    assert len(sessions) == int(phq["phq9"].notna().sum())  # no session without a score
    assert _cli("validate", "long", cwd=tmp_path).returncode == 0
    rep = _cli("report", "--data", "long", "--out", "rep", "-n", "01", "-n", "06", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-2000:]
    _report_checks(
        tmp_path / "rep",
        pages=["01_data_overview", "06_change"],
        skipped=["Real data: Beat the Blues (BDI-II): needs the package's bundled data"],
    )
    assert _sha(xlsx) == before


def test_semicolon_csv_straight_into_report_with_column_options(tmp_path, raw):
    csv = tmp_path / "export.csv"
    frame = raw.rename(columns={"ClientID": "Code", "Sitzung": "Nr"})
    frame.to_csv(csv, sep=";", decimal=",", index=False, encoding="cp1252")
    before = _sha(csv)
    rep = _cli(
        "report", "--data", "export.csv", "--out", "rep", "--column", "Code=client",
        "--column", "Nr=session", "-n", "01", cwd=tmp_path,
    )  # fmt: skip
    assert rep.returncode == 0, rep.stderr[-2000:]
    _report_checks(tmp_path / "rep", pages=["01_data_overview"], skipped=[])
    assert _sha(csv) == before
    bad = _cli("report", "--data", "export.csv", "--out", "rep2", "-n", "01", cwd=tmp_path)
    assert bad.returncode == 2
    assert "no client column" in bad.stderr and "--column" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_yes_no_column_in_german_is_the_prior_negative_therapy_flag(tmp_path):
    """A column the codebook gives the role prior_negative_therapy is checked as yes/no by
    validate, and ja/nein read as true/false by the analyses (as report reads them)."""
    from typer.testing import CliRunner

    from alliance.cli import app

    runner = CliRunner()
    demo = alliance.datasets.load_dataset("demo")
    sessions = demo.sessions[["client", "therapist", "session", "wai_sr", "phq9"]].copy()
    flag = demo.clients.set_index("client")["prior_negative_therapy"]
    sessions["Vorbehandlung"] = sessions["client"].map(flag).map({True: "ja", False: "nein"})
    source = tmp_path / "export.csv"
    sessions.to_csv(source, sep=";", index=False)
    out = tmp_path / "study"
    result = runner.invoke(
        app,
        [
            "init",
            str(source),
            "--out",
            str(out),
            "--column",
            "Vorbehandlung=prior_negative_therapy",
        ],
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    study = alliance.read_study(out)
    design = alliance.resolve_design(study)
    canonical = alliance.design.canonical_study(study, design)
    table = canonical.clients.set_index("client")["prior_negative_therapy"]
    assert pd.api.types.is_bool_dtype(table)
    assert (table == flag.loc[table.index].astype("boolean")).all()
    # a value that is neither is named by validate, with the fix
    bad = sessions.assign(Vorbehandlung=sessions["Vorbehandlung"].replace("ja", "vielleicht"))
    bad.to_csv(source, sep=";", index=False)
    out2 = tmp_path / "study2"
    runner.invoke(
        app,
        [
            "init",
            str(source),
            "--out",
            str(out2),
            "--column",
            "Vorbehandlung=prior_negative_therapy",
        ],
    )
    result = runner.invoke(app, ["validate", str(out2)])
    assert result.exit_code == 1 and "ja/nein" in result.output
