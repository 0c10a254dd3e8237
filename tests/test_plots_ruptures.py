"""Rupture figures draw what they are given and return the Axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alliance import plots, ruptures

DATA = pd.DataFrame(
    {
        "client": ["a"] * 6 + ["b"] * 5,
        "session": [1, 2, 3, 4, 5, 6, 1, 2, 3, 5, 6],
        "wai": [50, 51, 43, 45, 51, 52, 40, 41, 33, 34, 35],
        "phq": [20, 19, 21, 18, 15, 14, 22, 22, 23, 21, 20],
    }
)
EVENTS = ruptures.detect(DATA, alliance="wai", threshold=5)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_event_locked_draws_means_and_twin_axis():
    ax = plots.event_locked(DATA, EVENTS, alliance="wai", outcome="phq", window=2)
    line = ax.get_lines()[0]
    table = ruptures.event_locked(DATA, EVENTS, alliance="wai", window=2)
    # offsets -2..2 and the plotted means are the event-locked means
    np.testing.assert_array_equal(line.get_xdata(), [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(line.get_ydata(), table["mean"].to_numpy())
    assert ax.outcome_ax.get_ylabel() == "phq"
    assert ax.get_xlabel() == "Sessions from the rupture"


def test_event_locked_accepts_a_result_and_an_ax():
    table = ruptures.event_locked(DATA, EVENTS, alliance="wai", window=1)
    fig, ax = plt.subplots()
    assert plots.event_locked(table, ax=ax) is ax
    with pytest.raises(ValueError, match="events="):
        plots.event_locked(DATA, alliance="wai")


def test_trajectories_one_line_per_client_and_markers():
    ax = plots.trajectories(DATA, alliance="wai", events=EVENTS)
    assert len(ax.get_lines()) == 2
    # b's absent session 4 is bridged inside the line, not extended past the ends
    b = ax.get_lines()[1].get_ydata()
    assert b[3] == pytest.approx(33.5)
    offsets = ax.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(offsets).tolist())) == [(3.0, 33.0), (3.0, 43.0)]
    one = plots.trajectories(DATA, alliance="wai", clients=["a"])
    assert len(one.get_lines()) == 1


def test_mean_trajectory_level_and_its_former_name_ci():
    import warnings

    import matplotlib.pyplot as plt

    import alliance

    sessions = alliance.datasets.load_dataset("demo").sessions
    bands = []
    for kwargs in ({"level": 0.5}, {"ci": 0.5}, {}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ax = alliance.plots.mean_trajectory(sessions, "wai_sr", **kwargs)
        assert any(w.category is DeprecationWarning for w in caught) == ("ci" in kwargs)
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        bands.append(band.max() - band.min())
        plt.close(ax.figure)
    assert bands[0] == bands[1] < bands[2]
