"""Figures of mixed-model fits: observed and model-implied courses by group."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from alliance.plots.theme import label

__all__ = ["fitted_trajectories"]


def fitted_trajectories(
    fit,
    groups=None,
    *,
    time: str | None = None,
    group: str | None = None,
    max_groups: int = 8,
    population: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Observed values and model-implied courses of a few groups from an LMM fit.

    Each group (a client, by default) gets its observed outcomes as points and its
    model-implied course (fixed effects plus the group's conditional modes, i.e.
    ``fit.fitted``) as a line in the same colour; the population course (fixed part only,
    averaged over the rows at each time) is a thick black line.

    Parameters
    ----------
    fit : alliance.models.LmmResult
        A result of :func:`alliance.models.lmm`.
    groups : list, optional
        Group labels to draw; default the first ``max_groups`` groups of ``group``.
    time : str, optional
        The x-axis variable; default the first numeric variable of the fixed part that has
        a random slope, else the first numeric variable of the fixed part.
    group : str, optional
        The grouping factor (a name in ``fit.ngroups``); default the one with most groups.
    max_groups : int
        Upper limit when ``groups`` is not given.
    population : bool
        Draw the population (fixed-effects) course.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> sessions = alliance.datasets.load_dataset("demo").sessions
    >>> fit = alliance.models.lmm("phq9 ~ session + (1 + session | client)", sessions)
    >>> ax = alliance.plots.fitted_trajectories(fit, max_groups=4)
    >>> len(ax.get_lines())
    5
    """
    from alliance.models import LmmResult

    if not isinstance(fit, LmmResult):
        raise TypeError(
            f"fitted_trajectories needs a result of alliance.models.lmm, not {type(fit).__name__}."
        )
    data = fit.model_frame()
    names = list(fit.ngroups)
    if group is None:
        group = max(names, key=lambda g: fit.ngroups[g])
    if group not in names:
        raise ValueError(f"group must be one of the fit's grouping factors {names}, not {group!r}.")
    keys = group.split(":")
    fixed_vars = fit.fixed_variables
    numeric = [v for v in fixed_vars if pd.api.types.is_numeric_dtype(data[v])]
    if time is None:
        slopes = set(fit.random_effects[group].columns)
        with_slope = [v for v in numeric if v in slopes]
        if not (with_slope or numeric):
            raise ValueError(
                "the fixed part has no numeric variable to put on the x-axis; name one with "
                "time=..."
            )
        time = (with_slope or numeric)[0]
    if time not in data.columns:
        raise ValueError(f"time={time!r} is not a variable of the model ({list(data.columns)}).")
    group_key = data[keys].astype(str).agg(":".join, axis=1) if len(keys) > 1 else data[keys[0]]
    if groups is None:
        groups = list(pd.unique(group_key))[:max_groups]
    else:
        groups = list(groups)
        missing = [g for g in groups if g not in set(group_key)]
        if missing:
            raise ValueError(f"groups not in the fit's rows: {missing}")
    frame = pd.DataFrame(
        {
            "group": group_key.to_numpy(),
            "time": data[time].to_numpy(dtype=float),
            "observed": fit.outcome,
            "fitted": fit.fitted.to_numpy(),
            "population": fit.predict(random=False).to_numpy(),
        }
    )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for i, g in enumerate(groups):
        part = frame[frame["group"] == g].sort_values("time")
        color = colors[i % len(colors)]
        ax.scatter(part["time"], part["observed"], color=color, s=12, alpha=0.7)
        ax.plot(part["time"], part["fitted"], color=color, linewidth=1.2, label=str(g))
    if population:
        pop = frame.groupby("time")["population"].mean()
        ax.plot(
            pop.index.to_numpy(),
            pop.to_numpy(),
            color="black",
            linewidth=2.5,
            label="population (fixed effects)",
        )
    response = fit.formula.split("~")[0].strip()
    ax.set_xlabel(label(time))
    ax.set_ylabel(label(response))
    ax.set_title(f"Observed (points) and model-implied courses by {group}")
    if len(groups) <= 10:
        ax.legend(frameon=False, fontsize="small", ncol=2)
    if np.isfinite(frame["time"]).all():
        ax.margins(x=0.02)
    return ax
