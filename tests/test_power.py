"""Power by simulation: reproducible for any back end, resumable, with honest summaries."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from alliance.cli import app
from alliance.power import POWER_MODELS, PowerModel, simulate_power

GRID = pd.DataFrame({"n_therapists": [4, 8], "clients_per_therapist": [5, 5], "n_sessions": [6, 6]})


def _run(**kwargs):
    options = {"model": "prior_negative_therapy", "n_sims": 6, "chunk_size": 2, "seed": 7}
    options.update(kwargs)
    return simulate_power(GRID, **options)


@pytest.fixture(scope="module")
def sequential():
    return _run(backend="sequential")


def test_summary_columns_and_counts(sequential):
    assert list(sequential.columns[:3]) == ["n_therapists", "clients_per_therapist", "n_sessions"]
    assert sequential["n_sims"].tolist() == [6, 6]
    assert sequential["n_failed"].tolist() == [0, 0]
    assert (sequential["truth"] == -0.35).all()
    sims = sequential.tables["simulations"]
    assert len(sims) == 12 and sims["error"].eq("").all()
    assert (
        (sequential["power_ci_low"] <= sequential["power"])
        & (sequential["power"] <= sequential["power_ci_high"])
    ).all()


def test_same_numbers_for_any_number_of_processes(sequential):
    loky = _run(backend="loky", n_jobs=2)
    pd.testing.assert_frame_equal(
        loky.tables["simulations"], sequential.tables["simulations"], check_dtype=False
    )


def test_same_numbers_on_a_dask_cluster(sequential):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        on_dask = _run(backend="dask")
    pd.testing.assert_frame_equal(
        on_dask.tables["simulations"], sequential.tables["simulations"], check_dtype=False
    )


def test_resume_after_interruption(tmp_path, sequential):
    first = _run(backend="sequential", save_dir=tmp_path)
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert len(parts) == 6  # 2 designs x 3 chunks of 2
    parts[-1].unlink()  # as if stopped before the last chunk finished
    calls = []
    spec = POWER_MODELS["prior_negative_therapy"]
    counting = PowerModel(
        spec.name,
        spec.effect,
        spec.description,
        lambda study, engine: calls.append(1) or spec.fit(study, engine),
    )
    resumed = _run(backend="sequential", save_dir=tmp_path, model=counting)
    assert len(calls) == 2  # only the missing chunk was simulated again
    pd.testing.assert_frame_equal(resumed, first)
    pd.testing.assert_frame_equal(resumed, sequential)


def test_power_grows_with_sample_size_and_truth_is_recovered():
    grid = pd.DataFrame(
        {"n_therapists": [4, 16], "clients_per_therapist": [5, 10], "n_sessions": [4, 4]}
    )
    table = simulate_power(
        grid, model="prior_negative_therapy", n_sims=20, seed=3, backend="sequential"
    )
    assert table["power"].iloc[1] > table["power"].iloc[0]
    assert table["power"].iloc[1] > 0.8
    assert abs(table["bias"].iloc[1]) < 0.1


def test_null_effect_gives_about_alpha():
    grid = pd.DataFrame({"n_therapists": [10], "clients_per_therapist": [8], "n_sessions": [4]})
    table = simulate_power(
        grid,
        {"prior_negative_alliance": 0.0},
        "prior_negative_therapy",
        n_sims=30,
        seed=5,
        backend="sequential",
    )
    assert table["power"].iloc[0] <= 0.2  # nominal .05; 30 simulations


def test_failed_fits_are_counted_not_dropped():
    def broken(study, engine):
        raise ValueError("cannot fit")

    table = simulate_power(
        GRID.head(1),
        model=PowerModel("x", "within", "broken", broken),
        n_sims=3,
        backend="sequential",
    )
    assert table["n_failed"].iloc[0] == 3 and pd.isna(table["power"].iloc[0])
    assert table.tables["simulations"]["error"].str.contains("cannot fit").all()


def test_bad_arguments():
    with pytest.raises(KeyError, match="clients_per_therapist"):
        simulate_power(GRID.drop(columns="clients_per_therapist"))
    with pytest.raises(KeyError, match="Did you mean 'within'"):
        simulate_power(GRID, model="withn")
    with pytest.raises(ValueError, match="per-session probability"):
        simulate_power(GRID.assign(dropout=1.5))
    with pytest.raises(KeyError, match="unknown effect names"):
        simulate_power(GRID, {"withn": 1.0}, n_sims=1, backend="sequential")


def test_cli_power(tmp_path):
    out = tmp_path / "power.csv"
    result = CliRunner().invoke(
        app,
        [
            "power",
            "--therapists",
            "4",
            "--clients-per-therapist",
            "5",
            "--sessions",
            "6",
            "--model",
            "prior_negative_therapy",
            "--sims",
            "4",
            "--jobs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["n_sims"].tolist() == [4]
    bad = CliRunner().invoke(app, ["power", "--therapists", "x"])
    assert bad.exit_code == 2 and "whole numbers" in bad.output


def test_result_prints_and_concatenates_when_truncated(sequential):
    with pd.option_context("display.max_columns", 3, "display.max_rows", 1):
        assert "power" in repr(sequential) or "..." in repr(sequential)
    both = pd.concat([sequential, sequential])
    assert len(both) == 4


def test_nested_designs_share_one_simulated_study_per_draw():
    from alliance.power import _subset
    from alliance.simulate import simulate_study

    big = simulate_study(6, 5, 8, seed=1)
    small = _subset(big, {"n_therapists": 3, "clients_per_therapist": 2, "n_sessions": 4})
    assert sorted(small.clients["therapist"].unique()) == ["T01", "T02", "T03"]
    assert small.clients.groupby("therapist").size().tolist() == [2, 2, 2]
    assert small.sessions["session"].max() <= 4
    assert set(small.sessions["client"]) <= set(small.clients["client"])
    kept = big.sessions.merge(small.sessions[["client", "session"]], on=["client", "session"])
    pd.testing.assert_frame_equal(
        kept.reset_index(drop=True), small.sessions.reset_index(drop=True), check_dtype=False
    )


def test_nested_run_is_reproducible_on_any_back_end():
    one = _run(backend="sequential", nested=True)
    two = _run(backend="loky", n_jobs=2, nested=True)
    pd.testing.assert_frame_equal(
        one.tables["simulations"], two.tables["simulations"], check_dtype=False
    )
    assert one["n_sims"].tolist() == [6, 6] and one["n_failed"].tolist() == [0, 0]
