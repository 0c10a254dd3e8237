"""Power by simulation: reproducible for any back end, resumable, with honest summaries."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from alliance.cli import app
from alliance.models import get_model
from alliance.power import simulate_power

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
    assert (sequential["model"] == "early_alliance_difference").all()
    assert (sequential["effect"] == "prior_negative_alliance").all()
    assert (sequential["planted"] == -0.35).all()
    # the focal term is in WAI-SR total points, the scored scale of the codebook: 12 items
    assert np.allclose(sequential["truth"], -0.35 * 12)
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
    spec = get_model("prior_negative_therapy")
    counting = dataclasses.replace(
        spec, function=lambda *args, **kwargs: calls.append(1) or spec.function(*args, **kwargs)
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
    assert abs(table["bias"].iloc[1]) < 0.1 * 12  # 0.1 item-mean points, in total points
    monte_carlo_se = table["empirical_se"].iloc[1] / np.sqrt(20)
    assert abs(table["bias"].iloc[1]) < 3 * monte_carlo_se


N_NULL = 400
ALPHA = 0.05
# accept a rejection count in (LOW, HIGH]: each tail has probability <= .001 at a true .05
HIGH = int(stats.binom.isf(0.001, N_NULL, ALPHA))
LOW = int(stats.binom.ppf(0.001, N_NULL, ALPHA))


def _type_one_ok(rejections: int) -> bool:
    return LOW < rejections <= HIGH


def test_null_effect_gives_alpha_within_a_binomial_bound():
    """400 simulations with no group difference; the rejection rate must be about .05.

    With n = 400 simulations the number of rejections of a test at a true .05 is
    Binomial(400, .05): mean 20, SD 4.4. The check accepts 9..35 rejections (2.25% to
    8.75%); a correct test falls outside with probability below .003. A test whose real
    type-I rate is .10 passes with probability .23, one at .20 with probability below
    1e-9, so the check tells .05 from .20 (30 simulations could not: at .20 the expected
    count, 6 of 30, would have passed the old "<= .2" bound half of the time). The model is
    cheap (one client-level mixed model per draw, 80 clients, 4 sessions), so the run takes
    about 30 s of one core.

    Both paths through which prior negative therapy moves the early alliance other than the
    planted one (extra growth, more ruptures) are set to the other clients' values by the
    hook's ``null``, so the truth is exactly zero.

    The same check is then shown to fail for an anti-conservative version of the model:
    the same estimates with standard errors half as large (what ignoring a design effect of
    4 does), whose rejection rate is P(|Z| > 0.98) = .33, about 130 of 400.
    """
    spec = get_model("prior_negative_therapy")
    grid = pd.DataFrame({"n_therapists": [10], "clients_per_therapist": [8], "n_sessions": [4]})
    null = {**spec.simulation.null, spec.simulation.effect: 0.0}
    table = simulate_power(
        grid, null, spec, n_sims=N_NULL, seed=5, backend="sequential", alpha=ALPHA
    )
    assert table["truth"].iloc[0] == 0.0 and table["n_failed"].iloc[0] == 0
    sims = table.tables["simulations"]
    rejections = int((sims["p"] < ALPHA).sum())
    assert _type_one_ok(rejections), (rejections, LOW, HIGH)
    assert table["coverage"].iloc[0] >= 1 - HIGH / N_NULL

    anti = 2 * stats.norm.sf(np.abs(sims["estimate"]) / (sims["se"] / 2))
    assert not _type_one_ok(int((anti < ALPHA).sum()))
    assert (anti < ALPHA).mean() > 0.2


def test_the_binomial_bound_tells_05_from_20():
    assert _type_one_ok(20)
    assert not _type_one_ok(int(0.20 * N_NULL))
    assert not _type_one_ok(int(0.10 * N_NULL))
    assert stats.binom.cdf(HIGH, N_NULL, 0.20) < 1e-6


def test_failed_fits_are_counted_not_dropped():
    def broken(data, **roles):
        raise ValueError("cannot fit")

    table = simulate_power(
        GRID.head(1),
        model=dataclasses.replace(get_model("within"), function=broken),
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
    with pytest.raises(ValueError, match="no simulation hook"):
        simulate_power(GRID, model="moderation")
    with pytest.raises(ValueError, match="engine must be one of"):
        simulate_power(GRID, model="prior_negative_therapy", engine="statsmodels")


def test_the_statsmodels_engine_agrees_with_the_package_engine():
    grid = pd.DataFrame({"n_therapists": [6], "clients_per_therapist": [6], "n_sessions": [8]})
    ours = simulate_power(grid, model="within", n_sims=3, seed=2, backend="sequential")
    theirs = simulate_power(
        grid, model="within", n_sims=3, seed=2, backend="sequential", engine="statsmodels"
    )
    a, b = ours.tables["simulations"], theirs.tables["simulations"]
    assert (a["error"] == "").all() and (b["error"] == "").all()
    # the package fits a therapist intercept as well (the simulated codebook has the role),
    # statsmodels a client intercept only: close, not equal
    assert np.allclose(a["estimate"], b["estimate"], atol=0.02)
    assert np.allclose(a["truth"], -2.0 / 12)


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
