"""Figures of ruptures and repairs: the event-locked V and client trajectories."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from alliance._checks import require_columns
from alliance.plots.theme import label

__all__ = ["event_locked", "trajectories"]


def event_locked(
    data: pd.DataFrame,
    events: pd.DataFrame | None = None,
    alliance: str = "alliance",
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    *,
    window: int = 3,
    baseline: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Mean alliance (and outcome) in the sessions around ruptures, with 95% CIs.

    Parameters
    ----------
    data : pandas.DataFrame
        Either the result of :func:`alliance.ruptures.event_locked` (columns variable,
        offset, mean, ci_low, ci_high), or the long sessions table, in which case
        ``events`` is required and the means are computed here.
    events : pandas.DataFrame, optional
        Events table (client, session) when ``data`` is the sessions table.
    alliance, outcome, client, session, window, baseline
        Passed to :func:`alliance.ruptures.event_locked`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when omitted. A second variable (the outcome) is
        drawn on a twin y axis, which is stored as ``ax.outcome_ax``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> found = alliance.ruptures.detect(study.sessions, alliance="wai_sr", threshold=8)
    >>> ax = alliance.plots.event_locked(
    ...     study.sessions, found, alliance="wai_sr", outcome="phq9")
    >>> ax.get_xlabel()
    'Sessions from the rupture'
    """
    if {"variable", "offset", "mean"} <= set(getattr(data, "columns", [])):
        table = data
    else:
        if events is None:
            raise ValueError(
                "pass events= (e.g. alliance.ruptures.detect(...) or study.events) with "
                "the sessions table, or pass the result of alliance.ruptures.event_locked"
            )
        from alliance import ruptures

        table = ruptures.event_locked(
            data,
            events,
            alliance=alliance,
            outcome=outcome,
            client=client,
            session=session,
            window=window,
            baseline=baseline,
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    variables = list(dict.fromkeys(table["variable"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    axes = [ax]
    for i, name in enumerate(variables[:2]):
        target = ax if i == 0 else ax.twinx()
        if i:
            axes.append(target)
            ax.outcome_ax = target
        part = table[table["variable"] == name].sort_values("offset")
        color = colors[i % len(colors)]
        target.fill_between(
            part["offset"], part["ci_low"], part["ci_high"], color=color, alpha=0.2, lw=0
        )
        target.plot(part["offset"], part["mean"], marker="o", color=color, label=name)
        target.set_ylabel(label(name), color=color)
    ax.axvline(0, color="0.5", lw=1, ls="--")
    ax.set_xlabel("Sessions from the rupture")
    offsets = np.sort(table["offset"].unique())
    ax.set_xticks(offsets)
    handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="lower left", frameon=False)
    return ax


def trajectories(
    data: pd.DataFrame,
    alliance: str = "alliance",
    client: str = "client",
    session: str = "session",
    *,
    events: pd.DataFrame | None = None,
    clients=None,
    max_clients: int = 12,
    ax: Axes | None = None,
) -> Axes:
    """Alliance by session for a few clients (spaghetti plot) with rupture markers.

    Parameters
    ----------
    data : pandas.DataFrame
        Long sessions table.
    alliance, client, session : str
        Column names.
    events : pandas.DataFrame, optional
        Events (client, session, and optionally source): a marker at each event's
        session on the client's line, one marker style per source.
    clients : list, optional
        Clients to draw; default the first ``max_clients`` in the data.
    max_clients : int
        Upper limit when ``clients`` is not given.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> found = alliance.ruptures.detect(study.sessions, alliance="wai_sr", threshold=8)
    >>> ax = alliance.plots.trajectories(
    ...     study.sessions, alliance="wai_sr", events=found, max_clients=5)
    >>> len(ax.get_lines())
    5
    """
    require_columns(data, client=client, session=session, alliance=alliance)
    if clients is None:
        clients = pd.unique(data[client].dropna())[:max_clients]
    chosen = data[data[client].isin(clients)]
    wide = chosen.pivot_table(index=session, columns=client, values=alliance, aggfunc="mean")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    if wide.shape[1]:
        # one call draws every client; interpolate over absent sessions within a line
        filled = wide.interpolate(limit_area="inside")
        ax.plot(filled.index, filled.to_numpy(), lw=1, alpha=0.8)
    if events is not None and len(events):
        require_columns(events, table="events", client=client, session=session)
        ev = events[events[client].isin(clients)]
        points = ev.merge(chosen[[client, session, alliance]], on=[client, session], how="inner")
        sources = points["source"] if "source" in points else pd.Series("event", points.index)
        for marker, (name, part) in zip("vXsD^", points.groupby(sources), strict=False):
            ax.scatter(
                part[session],
                part[alliance],
                marker=marker,
                s=40,
                color="black",
                zorder=3,
                label=str(name),
            )
        if len(points):
            ax.legend(frameon=False, loc="lower right")
    ax.set_xlabel(label(session, "Session"))
    ax.set_ylabel(label(alliance))
    return ax
