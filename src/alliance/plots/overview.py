"""Overview figures of a study: mean trajectories and attendance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from alliance._checks import renamed, require_columns
from alliance.plots.theme import label

__all__ = ["mean_trajectory", "sessions_per_client"]


def mean_trajectory(
    data: pd.DataFrame,
    score: str,
    *,
    session: str = "session",
    client: str = "client",
    hue: str | None = None,
    level: float | None = None,
    min_clients: int = 5,
    ax: Axes | None = None,
    ci: float | None = None,
) -> Axes:
    """Mean score by session with a confidence band, optionally by group.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session.
    score : str
        The score column to plot (e.g. ``"wai_sr"``).
    session, client : str
        Session-number and client columns.
    hue : str, optional
        A column whose groups get separate lines (e.g. ``"prior_negative_therapy"``).
    level : float, default 0.95
        Coverage of the normal-theory band around each mean (formerly ``ci=``, still
        accepted with a warning).
    min_clients : int, default 5
        Sessions with fewer clients than this are not drawn (small-cell privacy and
        unstable means).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> ax = alliance.plots.mean_trajectory(study.sessions, "wai_sr")
    >>> ax.get_ylabel().endswith(", mean")
    True
    """
    from scipy.stats import norm

    require_columns(data, score=score, session=session, client=client, hue=hue)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    keys = [hue, session] if hue else [session]
    stats = data.groupby(keys, observed=True)[score].agg(["mean", "std", "count"]).reset_index()
    stats = stats[stats["count"] >= min_clients]
    level = renamed("mean_trajectory", "ci", ci, "level", level, default=0.95)
    z = norm.ppf(0.5 + level / 2)
    stats["half"] = z * stats["std"] / np.sqrt(stats["count"])
    groups = stats.groupby(hue, observed=True) if hue else [(None, stats)]
    for key, part in groups:
        line = ax.plot(part[session], part["mean"], marker="o", ms=3, label=key)[0]
        ax.fill_between(
            part[session],
            part["mean"] - part["half"],
            part["mean"] + part["half"],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    ax.set_xlabel(label(session, "Session"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{label(score)}, mean")
    if hue:
        ax.legend(title=label(hue), frameon=False)
    return ax


def sessions_per_client(
    data: pd.DataFrame,
    *,
    client: str = "client",
    ax: Axes | None = None,
) -> Axes:
    """Histogram of the number of session rows per client.

    Examples
    --------
    >>> import alliance
    >>> ax = alliance.plots.sessions_per_client(alliance.datasets.load_dataset("demo").sessions)
    >>> ax.get_xlabel()
    'Sessions attended'
    """
    require_columns(data, client=client)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    counts = data.groupby(client).size()
    bins = np.arange(counts.min(), counts.max() + 2) - 0.5
    ax.hist(counts, bins=bins, color="C0", edgecolor="white")
    ax.set_xlabel("Sessions attended")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Clients")
    return ax
