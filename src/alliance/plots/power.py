"""Power curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from alliance._checks import require_columns
from alliance.plots.theme import label

__all__ = ["power_curve"]


def power_curve(
    result: pd.DataFrame,
    x: str = "clients_per_therapist",
    *,
    hue: str | None = None,
    target: float = 0.8,
    ax: Axes | None = None,
) -> Axes:
    """Power against a design variable, with Monte Carlo intervals and the target line.

    Parameters
    ----------
    result : pandas.DataFrame
        The table :func:`alliance.power.simulate_power` returns.
    x : str, default "clients_per_therapist"
        The design column on the horizontal axis.
    hue : str, optional
        Another design column; one line per value.
    target : float, default 0.8
        Drawn as a dashed line (None for none).
    ax : matplotlib.axes.Axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> table = pd.DataFrame({"clients_per_therapist": [4, 8, 16], "power": [.3, .6, .9],
    ...                       "power_ci_low": [.2, .5, .8], "power_ci_high": [.4, .7, .95]})
    >>> alliance.plots.power_curve(table).get_ylabel()
    'Power'
    """
    require_columns(result, "result", x=x, hue=hue, power="power")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    groups = result.groupby(hue, observed=True) if hue else [(None, result)]
    for key, part in groups:
        part = part.sort_values(x)
        line = ax.plot(
            part[x],
            part["power"],
            marker="o",
            label=None if key is None else f"{label(hue)} = {key}",
        )[0]
        if {"power_ci_low", "power_ci_high"} <= set(part.columns):
            ax.fill_between(
                part[x],
                part["power_ci_low"],
                part["power_ci_high"],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    if target is not None:
        ax.axhline(target, color="0.4", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(label(x, x.replace("_", " ")))
    ax.set_ylabel("Power")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if hue:
        ax.legend(frameon=False)
    return ax
