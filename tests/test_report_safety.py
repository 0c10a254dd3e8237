"""Data safety of `alliance report`: --out is never destructive, a killed run is recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from alliance.cli import app
from alliance.report import OutputRefused, build_report

runner = CliRunner()


@pytest.fixture
def study(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    rows = [
        {"client": f"K{c:03d}", "therapist": f"T{c % 2}", "session": s, "wai_sr": 30.0 + s}
        for c in range(1, 7)
        for s in (1, 2, 3)
    ]
    pd.DataFrame(rows).to_csv(folder / "sessions.csv", index=False)
    (folder / "consent Anna Berg.pdf").write_text("not read")
    return folder


@pytest.fixture
def no_books(tmp_path):
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    return root


def _run(study, out, root, **env):
    environ = {**os.environ, "ALLIANCE_PROJECT_ROOT": str(root), **env}
    return subprocess.run(
        [sys.executable, "-m", "alliance", "report", "--data", str(study), "--out", str(out)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_user_files_survive_a_refused_run(study, tmp_path):
    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.docx").write_text("my thesis")
    (out / "sub" / "analysis.R").write_text("x <- 1")
    old = tmp_path / ".thesis.old"
    old.mkdir()
    result = runner.invoke(app, ["report", "--data", str(study), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "thesis.docx" in result.output and "Nothing was changed" in result.output
    assert "Traceback" not in result.output
    assert (out / "thesis.docx").read_text() == "my thesis"
    assert (out / "sub" / "analysis.R").exists() and old.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thesis.old", "study", "thesis"]


def test_a_second_report_replaces_the_first(study, tmp_path):
    out = tmp_path / "r"
    first = build_report(study, out, notebooks=[])
    assert (out / ".alliance-report.json").exists()
    (out / "figures" / "old_figure.svg").write_text("<svg/>")  # as an older version wrote
    manifest = (out / ".alliance-report.json").read_text()
    (out / ".alliance-report.json").write_text(
        manifest.replace('"files": [', '"files": ["figures/old_figure.svg", ')
    )
    second = build_report(study, out, notebooks=[])
    assert first.folder == second.folder
    assert not (out / "figures" / "old_figure.svg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "study"]
    # provenance lists the file read, not the consent form beside it
    names = [i["file"] for i in second.provenance["inputs"]]
    assert names == ["sessions.csv"]
    assert "consent" not in (out / "index.html").read_text()


def test_a_report_without_manifest_is_recognised(study, tmp_path):
    out = tmp_path / "r"
    build_report(study, out, notebooks=[])
    (out / ".alliance-report.json").unlink()
    build_report(study, out, notebooks=[])
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefused, match="notes.txt"):
        build_report(study, out, notebooks=[])
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["equal", "inside", "above"])
def test_out_and_the_data_folder_are_kept_apart(study, where):
    out = {"equal": study, "inside": study / "report", "above": study.parent}[where]
    before = {p: p.read_bytes() for p in study.iterdir()}
    with pytest.raises(OutputRefused, match="data folder"):
        build_report(study, out, notebooks=[])
    assert {p: p.read_bytes() for p in study.iterdir()} == before
    link = study.parent / "link"
    link.symlink_to(study)
    with pytest.raises(OutputRefused, match="data folder"):
        build_report(study, link, notebooks=[])


@pytest.mark.parametrize("step", ["staged", "built", "moved-old", "moved-new", "removing-old"])
def test_a_killed_run_leaves_the_old_report(study, tmp_path, no_books, step):
    out = tmp_path / "r"
    assert _run(study, out, no_books).returncode == 0
    killed = _run(study, out, no_books, ALLIANCE_TEST_KILL_AT=step)
    assert killed.returncode == -signal.SIGKILL
    again = _run(study, out, no_books)
    assert again.returncode == 0, again.stderr
    assert (out / "index.html").exists() and (out / ".alliance-report.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "root", "study"]


def test_a_killed_run_before_the_swap_keeps_the_old_report_as_is(study, tmp_path, no_books):
    out = tmp_path / "r"
    assert _run(study, out, no_books).returncode == 0
    old = (out / "provenance.json").read_text()
    assert _run(study, out, no_books, ALLIANCE_TEST_KILL_AT="moved-old").returncode < 0
    assert not out.exists() and (tmp_path / ".r.alliance-old").exists()
    # the next run restores the old one first; a refused run (user file in the way) shows it
    assert _run(study, out, no_books, ALLIANCE_TEST_KILL_AT="staged").returncode < 0
    assert (out / "provenance.json").read_text() == old


def test_concurrent_runs_do_not_touch_each_other(study, tmp_path, no_books):
    out = tmp_path / "r"
    flag = tmp_path / "paused"
    env = {**os.environ, "ALLIANCE_PROJECT_ROOT": str(no_books)}
    env.update(ALLIANCE_TEST_PAUSE_AT="staged", ALLIANCE_TEST_PAUSE_FILE=str(flag))
    first = subprocess.Popen(
        [sys.executable, "-m", "alliance", "report", "--data", str(study), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists()
        staging = tmp_path / ".r.alliance-new"
        assert staging.is_dir()
        second = _run(study, out, no_books)
        assert second.returncode == 2 and "another alliance report run" in second.stderr
        assert staging.is_dir()  # the second run left the first one's work alone
        flag.unlink()
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert (out / "index.html").exists() and not staging.exists()


def test_pseudonymize_with_relative_out_and_missing_salt_file(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLIANCE_SALT", "a secret")
    import alliance.report as report

    monkeypatch.setattr(report, "list_notebooks", lambda folder=None: [])
    result = runner.invoke(app, ["report", "--data", "study", "--pseudonymize", "--out", "rel"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rel" / "index.html").exists()
    result = runner.invoke(app, ["report", "--data", "study", "--pseudonymize"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "study" / "index.html").exists()
    result = runner.invoke(
        app, ["report", "--data", "study", "--pseudonymize", "--salt-file", "nope.txt"]
    )
    assert result.exit_code == 2 and "no such file" in result.output
    assert "Traceback" not in result.output


def test_unreadable_and_invalid_data_have_exit_codes(tmp_path, monkeypatch):
    import alliance.report as report

    monkeypatch.setattr(report, "list_notebooks", lambda folder=None: [])
    binary = tmp_path / "sessions.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(app, ["report", "--data", str(binary), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    bad = tmp_path / "bad" / "sessions.csv"
    bad.parent.mkdir()
    bad.write_text("client,session\nA,1\nA,1\n")
    result = runner.invoke(app, ["report", "--data", str(bad), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "more than once" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_report_of_a_european_csv_study_with_dialect_options(tmp_path, monkeypatch):
    """`alliance report --sep ';' --decimal ',' --encoding cp1252` builds pages with figures."""
    import hashlib

    import alliance
    import alliance.report as report

    overview = [b for b in report.list_notebooks() if b.name.startswith("01_")]
    monkeypatch.setattr(report, "list_notebooks", lambda folder=None: overview)
    demo = alliance.datasets.load_dataset("demo")
    keep = demo.clients["client"].iloc[:12]
    data = tmp_path / "europe"
    data.mkdir()
    dialect = {"sep": ";", "decimal": ",", "encoding": "cp1252", "index": False}
    sessions = demo.sessions[demo.sessions["client"].isin(keep)].copy()
    sessions["setting"] = "Präsenz “vor Ort” – 0 €"  # bytes only cp1252 decodes this way
    sessions.to_csv(data / "sessions.csv", **dialect)
    demo.clients[demo.clients["client"].isin(keep)].to_csv(data / "clients.csv", **dialect)
    raw = (data / "sessions.csv").read_bytes()
    assert b";" in raw and b"," in raw.split(b"\n")[1]  # decimal commas, semicolons
    assert b"\x80" in raw and b"\x93" in raw  # the euro sign and a curly quote, in cp1252
    before = hashlib.sha256(raw).hexdigest()
    out = tmp_path / "report"
    options = ["--sep", ";", "--decimal", ",", "--encoding", "cp1252"]
    result = runner.invoke(app, ["report", "--data", str(data), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    page = (out / "01_data_overview.html").read_text()
    assert "<svg" in page or "<img" in page
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "attendance_and_mean_trajectories.svg" in figures, figures
    assert hashlib.sha256((data / "sessions.csv").read_bytes()).hexdigest() == before
    # the page's numbers are those of the data, read with the dialect (decimal commas)
    assert f"{len(sessions)} session rows, 12 clients" in page
    assert "alliance score: wai_sr; outcome score: phq9" in page
    # without the options the dialect is detected: the same report builds
    again = runner.invoke(app, ["report", "--data", str(data), "--out", str(out)])
    assert again.exit_code == 0, again.output
