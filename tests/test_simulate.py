"""The simulator is reproducible and its truth is recoverable from the data it makes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import alliance
from alliance.datasets.make_demo import simulate_demo
from alliance.models import lmm
from alliance.simulate import Effects, simulate_study


@pytest.fixture(scope="module")
def big():
    return simulate_study(n_therapists=80, clients_per_therapist=12, n_sessions=16, seed=11)


def test_same_seed_same_study_other_seed_other_study():
    a = simulate_study(6, 5, seed=3)
    b = simulate_study(6, 5, seed=3)
    c = simulate_study(6, 5, seed=4)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    assert not a.sessions["wai_sr"].equals(c.sessions["wai_sr"])


def test_shipped_demo_equals_a_fresh_simulation(demo):
    fresh = simulate_demo()
    assert demo.sessions.shape == fresh.sessions.shape
    for col in ("wai_sr", "wai_sr_t", "phq9"):
        np.testing.assert_allclose(demo.sessions[col], fresh.sessions[col], atol=1e-4)
    for col in ("prior_negative_therapy", "prior_therapy", "termination"):
        assert demo.clients[col].tolist() == fresh.clients[col].tolist()
    assert len(demo.truth["ruptures"]) == len(fresh.truth["ruptures"])
    assert len(demo.segments) == len(fresh.segments) and len(demo.coders) == len(fresh.coders)
    assert demo.therapists["experience"].tolist() == fresh.therapists["experience"].tolist()
    assert demo.truth["observer"]["icc"] == fresh.truth["observer"]["icc"]
    assert demo.truth["within_by_client"] == fresh.truth["within_by_client"]
    eff = demo.truth["effects"]
    assert (eff["residual_correlation"], eff["symptom_autoregression"], eff["within_sd"]) == (
        -0.5,
        0.5,
        0.5,
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_sessions must be a whole number of at least 2"):
        simulate_study(n_sessions=1)
    with pytest.raises(ValueError, match="each site needs at least one therapist"):
        simulate_study(n_therapists=2, n_sites=3)
    with pytest.raises(KeyError, match="did you mean 'within'"):
        simulate_study(effects={"withn": 0.0})


def _icc_components(sessions: pd.DataFrame) -> dict[str, float]:
    first = sessions[sessions["session"] == 1].assign(a=lambda d: d["wai_sr"] / 12)
    vc = lmm("a ~ 1 + (1 | therapist)", first).variance_components.set_index("group")["vcov"]
    return {"therapist_var": float(vc["therapist"]), "residual_var": float(vc["Residual"])}


def test_therapist_and_client_variance_recovered(big):
    eff = Effects()
    comp = _icc_components(big.sessions)
    # therapist intercept variance (0.18^2 = 0.032), attenuated a little by item rounding
    assert 0.015 < comp["therapist_var"] < 0.06
    # client + prior-negative + session noise at session 1, in item-mean units
    expected = (
        eff.client_sd**2 + 0.21 * eff.prior_negative_alliance**2 + eff.alliance_residual_sd**2
    )
    assert comp["residual_var"] == pytest.approx(expected, rel=0.3)


def _detrend(frame: pd.DataFrame, col: str) -> pd.Series:
    """Residual from each client's own linear trend over session (Wang & Maxwell 2015)."""
    g = frame.groupby("client")
    t_c = frame["session"] - g["session"].transform("mean")
    y_c = frame[col] - g[col].transform("mean")
    slope = (t_c * y_c).groupby(frame["client"]).transform("sum") / (t_c**2).groupby(
        frame["client"]
    ).transform("sum")
    return y_c - slope * t_c


def _within_lag_estimate(study) -> float:
    s = study.sessions.dropna(subset=["wai_sr", "phq9"]).sort_values(["client", "session"])
    s = s[s.groupby("client")["session"].transform("size") >= 4].copy()
    s["a_dev"] = _detrend(s.assign(a=s["wai_sr"] / 12), "a")
    s["y_dev"] = _detrend(s, "phq9")
    prev = s[["client", "session", "a_dev"]].assign(session=lambda d: d["session"] + 1)
    s = s.merge(prev, on=["client", "session"], suffixes=("", "_prev")).dropna()
    return float(smf.ols("y_dev ~ a_dev_prev", s).fit().params["a_dev_prev"])


def test_within_client_lagged_effect_recovered_and_absent_when_zero(big):
    # This simple within-client estimator is attenuated (about -1.4 for a true -2.0): item
    # rounding adds measurement error to the observed alliance, and person-mean detrending
    # brings Nickell-type bias. The models layer tests unbiased recovery; here the truth
    # must show clearly and vanish when set to zero.
    assert -2.4 < _within_lag_estimate(big) < -1.1
    null = simulate_study(80, 12, 16, seed=11, effects={"within": 0.0})
    assert abs(_within_lag_estimate(null)) < 0.35


def test_prior_negative_therapy_lower_early_alliance_and_more_ruptures(big):
    s = big.sessions.merge(big.clients[["client", "prior_negative_therapy"]], on="client")
    early = s[s["session"] <= 2].groupby("prior_negative_therapy")["wai_sr"].mean() / 12
    assert early[True] - early[False] == pytest.approx(-0.35, abs=0.12)
    rup = big.truth["ruptures"].merge(big.clients, on="client")
    per_client = (
        rup.groupby("prior_negative_therapy").size()
        / big.clients.groupby("prior_negative_therapy").size()
    )
    assert per_client[True] > 1.5 * per_client[False]


def test_demo_alliance_outcome_correlation_near_meta_analytic_value(demo):
    s = demo.sessions.sort_values(["client", "session"])
    early = s[s["session"] <= 3].groupby("client")["wai_sr"].mean()
    first = s.groupby("client")["phq9"].first()
    last = s.groupby("client")["phq9"].last()
    residual = last - np.polyval(np.polyfit(first, last, 1), first)
    r = np.corrcoef(early, residual)[0, 1]
    # Flückiger et al. (2018): r = .278; a 300-client sample varies by about +-.06
    assert -0.40 < r < -0.18


def test_dropout_depends_on_alliance(big):
    last_session = big.sessions.groupby("client")["session"].max()
    early = big.sessions[big.sessions["session"] <= 2].groupby("client")["wai_sr"].mean()
    dropped = last_session < 16
    assert early[dropped].mean() < early[~dropped].mean() - 1.0
    assert dropped.mean() == pytest.approx(0.5, abs=0.25)


def test_demo_has_the_documented_layout(demo):
    cols = set(demo.sessions.columns)
    assert {"client", "therapist", "site", "session", "date", "phase", "reflection"} <= cols
    assert {f"wai_sr_{i}" for i in range(1, 13)} <= cols
    assert {f"phq9_{i}" for i in range(1, 10)} <= cols
    assert demo.events["source"].eq("self-report").all()
    assert alliance.validate(demo).ok


# ---- writing a simulation never deletes or overwrites a file it did not write ----


def _tiny():
    return simulate_study(3, 4, 5, n_sites=1, seed=3)


def _snapshot(folder):
    import hashlib

    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("writer", ["write_simulation", "simulate_rom"])
@pytest.mark.parametrize("theirs", ["sessions.csv", "datapackage.json", "clients.csv"])
def test_simulation_refuses_a_folder_with_files_it_did_not_write(tmp_path, writer, theirs):
    from alliance.simulate import simulate_rom, write_simulation

    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / theirs).write_text("my real data\n")
    (folder / "notes.txt").write_text("keep me\n")
    before = _snapshot(folder)
    with pytest.raises(ValueError, match=rf"already holds {theirs}.*nothing was written") as e:
        if writer == "write_simulation":
            write_simulation(_tiny(), folder)
        else:
            simulate_rom(20, folder, n_sessions=3, clients_per_therapist=5, seed=1, fmt="csv")
    assert "new or empty folder" in str(e.value)
    assert _snapshot(folder) == before  # not one byte changed, no temporary file left
    assert sorted(p.name for p in folder.iterdir()) == sorted(["notes.txt", theirs])


def test_simulation_replaces_only_its_own_previous_files(tmp_path):
    import json

    from alliance.simulate import SIMULATION_MARKER, simulate_rom, write_simulation

    folder = tmp_path / "sim"
    write_simulation(_tiny(), folder)
    (folder / "notes.txt").write_text("keep me\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "analysis.R").write_text("library(lme4)\n")
    marker = json.loads((folder / "datapackage.json").read_text())[SIMULATION_MARKER]
    assert marker["written_by"] == "alliance.simulate.write_simulation"
    assert "sessions.csv" in marker["files"] and "truth_ruptures.csv" in marker["files"]
    # the same folder again, another format: the old csv tables go, the user's files stay
    other = simulate_study(3, 4, 5, n_sites=1, seed=4)
    write_simulation(other, folder, fmt="parquet")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "clients.parquet",
        "datapackage.json",
        "events.parquet",
        "notes.txt",
        "sessions.parquet",
        "sub",
        "truth_ruptures.csv",
    ]
    assert (folder / "sub" / "analysis.R").read_text() == "library(lme4)\n"
    back = alliance.read_study(folder)
    pd.testing.assert_series_equal(
        back.sessions["wai_sr"], other.sessions["wai_sr"], check_names=False, atol=1e-9
    )
    assert alliance.validate(back).ok
    # and a chunked simulation may replace it too
    simulate_rom(20, folder, n_sessions=3, clients_per_therapist=5, seed=1, fmt="csv")
    assert {"sessions.csv", "clients.csv", "notes.txt", "sub"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "sessions.parquet").exists()
    assert alliance.read_study(folder).n_clients == 20


def test_simulation_marker_only_vouches_for_simulation_file_names(tmp_path):
    """A hand-edited marker listing other files does not make them removable."""
    import json

    from alliance.simulate import SIMULATION_MARKER, write_simulation

    folder = tmp_path / "sim"
    write_simulation(_tiny(), folder)
    book = folder / "datapackage.json"
    package = json.loads(book.read_text())
    package[SIMULATION_MARKER]["files"] += ["thesis.docx", "../outside.txt"]
    book.write_text(json.dumps(package))
    (folder / "thesis.docx").write_text("chapter 1\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    write_simulation(_tiny(), folder)
    assert (folder / "thesis.docx").read_text() == "chapter 1\n"
    assert (tmp_path / "outside.txt").read_text() == "outside\n"


def test_failed_simulation_leaves_no_partial_file_and_the_old_one_intact(tmp_path, monkeypatch):
    import alliance.simulate as sim

    folder = tmp_path / "sim"
    sim.write_simulation(_tiny(), folder)
    before = _snapshot(folder)

    calls = {"n": 0}
    real = sim._ChunkWriter.write

    def fail_on_second_chunk(self, frame):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk full")
        real(self, frame)

    monkeypatch.setattr(sim._ChunkWriter, "write", fail_on_second_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        sim.simulate_rom(20, folder, n_sessions=3, clients_per_therapist=5, chunk_clients=5)
    assert _snapshot(folder) == before
    # a partial file a killed run left (its process is gone) is removed by the next run
    stray = folder / ".sessions.csv.999999999.partial.csv"
    stray.write_text("half")
    monkeypatch.undo()
    sim.write_simulation(_tiny(), folder)
    assert not stray.exists()
    assert not list(folder.glob(".*partial*"))


def test_cli_simulate_refuses_a_folder_with_user_files(tmp_path):
    from typer.testing import CliRunner

    from alliance.cli import app

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "sessions.csv").write_text("client,session\n0012,1\n")
    before = _snapshot(folder)
    runner = CliRunner()
    for extra in ([], ["--clients", "20", "--clients-per-therapist", "5", "--sessions", "3"]):
        result = runner.invoke(app, ["simulate", "--out", str(folder), *extra])
        assert result.exit_code == 2, result.output
        assert "sessions.csv" in result.output and "Traceback" not in result.output
        assert _snapshot(folder) == before
    fresh = tmp_path / "fresh"
    args = ["simulate", "--out", str(fresh), "--therapists", "2", "--sites", "1", "--sessions", "3"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # its own previous simulation
    assert (fresh / "truth_ruptures.csv").exists()
