"""The clinic view of routine outcome monitoring: one client's course, band and signals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from alliance._checks import require_columns

__all__ = ["monitoring_course"]


def monitoring_course(
    signals: pd.DataFrame,
    client,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str = "outcome",
) -> Axes:
    """One client's outcome course with the expected response, its band and the signals.

    Parameters
    ----------
    signals : pandas.DataFrame
        The result of :func:`alliance.monitoring.signals` (columns client, session,
        outcome, expected, lower, upper, not_on_track; alliance_alert when present).
    client
        The client to draw (a value of ``signals["client"]``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    title : str, optional
        The axes title. None (default) draws no title, so that no client identifier
        appears in a figure meant to be shared; pass one explicitly if you want it.
    ylabel : str
        Label of the y axis (e.g. the instrument, ``"PHQ-9"``).

    Returns
    -------
    matplotlib.axes.Axes
        The observed scores (line and dots), the expected response (dashed) and its band
        (shaded), not-on-track sessions as red dots and alliance alerts as triangles
        along the bottom edge.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sig = alliance.monitoring.signals(study.sessions, outcome="phq9", folds=3)
    >>> ax = alliance.plots.monitoring_course(sig, sig["client"].iloc[0], ylabel="PHQ-9")
    >>> ax.get_title(), ax.get_xlabel()
    ('', 'Session')
    """
    need = ["outcome", "expected", "lower", "upper", "not_on_track"]
    require_columns(
        signals, table="signals", client="client", session="session", **{c: c for c in need}
    )
    rows = signals[signals["client"] == client].sort_values("session")
    if rows.empty:
        raise ValueError(
            "that client has no rows in signals; pass a value of signals['client'] "
            f"({signals['client'].nunique()} clients there)"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    x = rows["session"].to_numpy(dtype=float)
    y = rows["outcome"].to_numpy(dtype=float)
    banded = rows["expected"].notna().to_numpy()
    ax.fill_between(
        x[banded],
        rows["lower"].to_numpy(dtype=float)[banded],
        rows["upper"].to_numpy(dtype=float)[banded],
        color="0.85",
        label="tolerance band",
        zorder=1,
    )
    ax.plot(
        x[banded],
        rows["expected"].to_numpy(dtype=float)[banded],
        "--",
        color="0.35",
        label="expected response",
        zorder=2,
    )
    seen = ~np.isnan(y)
    ax.plot(x[seen], y[seen], "-o", color="C0", markersize=4, label="observed", zorder=3)
    off = rows["not_on_track"].to_numpy(dtype=bool)
    if off.any():
        ax.plot(x[off], y[off], "o", color="C3", markersize=7, label="not on track", zorder=4)
    if "alliance_alert" in rows.columns:
        alert = rows["alliance_alert"].to_numpy(dtype=bool)
        if alert.any():
            ax.plot(
                x[alert],
                np.zeros(int(alert.sum())),
                "^",
                color="C1",
                markersize=8,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label="alliance alert",
                zorder=5,
            )
    ax.set_xlabel("Session")
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize="small")
    return ax
