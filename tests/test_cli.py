"""Each command of the `alliance` command line, with its exit codes."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

import alliance
from alliance.cli import app
from alliance.datasets import dataset_path

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"alliance {alliance.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("datasets", "validate", "simulate", "report"):
        assert command in result.stdout


def test_datasets_lists_both():
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    assert "demo" in result.stdout and "btheb" in result.stdout and "dyads" in result.stdout


def test_validate_valid_folder():
    result = runner.invoke(app, ["validate", str(dataset_path("demo"))])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_validate_invalid_file_lists_problems(tmp_path):
    sessions = pd.DataFrame(
        {"ClientID": ["a", "a", "b"], "therapist": ["t", "t", "t"], "session": [1, 1, 2.5]}
    )
    path = tmp_path / "sessions.csv"
    sessions.to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "rename 'ClientID' to 'client'" in result.output
    result = runner.invoke(app, ["validate", str(path), "--column", "ClientID=client"])
    assert result.exit_code == 1
    assert "more than once" in result.output and "non-integer session" in result.output


def test_validate_missing_file_and_bad_mapping(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    path = tmp_path / "sessions.csv"
    pd.DataFrame({"client": ["a"], "session": [1]}).to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path), "--column", "oops"])
    assert result.exit_code == 2 and "OLD=NEW" in result.output


def test_simulate_writes_a_valid_study(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--therapists",
            "4",
            "--clients-per-therapist",
            "3",
            "--sites",
            "2",
            "--seed",
            "5",
            "--format",
            "parquet",
        ],
    )
    assert result.exit_code == 0, result.output
    study = alliance.read_study(out)
    assert study.n_clients == 12 and alliance.validate(study).ok
    assert (out / "truth_ruptures.csv").exists()
    result = runner.invoke(app, ["simulate", "--out", str(out), "--sessions", "1"])
    assert result.exit_code == 2 and "at least 2" in result.output


def test_report_unknown_data_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["report", "--data", "nothing-here", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "neither a bundled dataset" in result.output


def test_score_writes_scores_and_never_touches_the_input(tmp_path):
    source = dataset_path("demo") / "sessions.csv.gz"
    before = source.read_bytes()
    out = tmp_path / "scored.parquet"
    result = runner.invoke(
        app, ["score", str(source), "-i", "phq9", "-i", "wai_sr", "--prorate", "2", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "phq9: 3688 of 3688 rows scored, 316 prorated" in result.stdout
    scored = pd.read_parquet(out)
    assert {"phq9", "phq9_n_missing", "wai_sr_goal"} <= set(scored.columns)
    assert source.read_bytes() == before


def test_score_errors(tmp_path):
    source = dataset_path("demo") / "sessions.csv.gz"
    result = runner.invoke(app, ["score", str(source), "-i", "phq8", "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "Did you mean 'phq9'" in result.output
    result = runner.invoke(app, ["score", str(source), "-i", "phq9", "-o", str(source)])
    assert result.exit_code == 2 and "never modified" in result.output


def test_report_pseudonymize_needs_a_salt(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLIANCE_SALT", raising=False)
    result = runner.invoke(app, ["report", "--pseudonymize", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "salt" in result.output


def test_report_jobs_reaches_the_build_and_zero_is_refused(tmp_path, monkeypatch):
    import alliance.report

    seen = {}

    def fake_build(data, target, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before anything is run or written

    monkeypatch.setattr(alliance.report, "build_report", fake_build)
    result = runner.invoke(app, ["report", "--jobs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130 and seen["jobs"] == 1
    seen.clear()
    runner.invoke(app, ["report", "--out", str(tmp_path / "r")])
    assert seen["jobs"] is None  # the default: ALLIANCE_REPORT_JOBS, else 2
    result = runner.invoke(app, ["report", "--jobs", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--jobs" in result.output and not (tmp_path / "r").exists()
