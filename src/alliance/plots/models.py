"""Figures of model results: simple slopes of a moderated alliance effect."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.transforms import offset_copy

from alliance.plots.theme import label, labels
from alliance.terms import term_label

__all__ = ["simple_slopes"]


def simple_slopes(
    result, ax: Axes | None = None, *, bands: bool = True, legend: str = "best"
) -> Axes:
    """Predicted outcome over the alliance at each moderator value (simple slopes).

    Parameters
    ----------
    result : alliance.models.ModerationResult
        A result of :func:`alliance.models.moderation` (it carries ``.lines`` and
        ``.simple_slopes``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when omitted.
    bands : bool, default True
        Shade the confidence band of each line (fixed effects only).
    legend : {"best", "below"}, default "best"
        Where the legend goes: inside the axes, or under the axis label (for panels side
        by side, where each panel's legend would cover its lines).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.moderation(study, "prior_negative_therapy", alliance="wai_sr",
    ...                                  outcome="phq9", therapist="therapist")
    >>> ax = alliance.plots.simple_slopes(fit)
    >>> len(ax.get_lines())
    2
    >>> ax.get_legend().get_title().get_text()
    'Prior negative therapy'
    >>> [t.get_text().split(":")[0] for t in ax.get_legend().get_texts()]
    ['No', 'Yes']
    """
    if legend not in ("best", "below"):
        raise ValueError(f"legend must be 'best' or 'below', not {legend!r}")
    lines = getattr(result, "lines", None)
    slopes = getattr(result, "simple_slopes", None)
    if not isinstance(lines, pd.DataFrame) or not isinstance(slopes, pd.DataFrame):
        raise ValueError(
            "simple_slopes needs a result of alliance.models.moderation(...) (it has .lines "
            f"and .simple_slopes); this {type(result).__name__} has neither."
        )
    if lines.empty:
        raise ValueError(
            "this moderation result has no prediction lines (the multi-group dynamic panel "
            "model, method='multigroup', has no common outcome scale to predict on); its "
            "per-group paths are in result.simple_slopes and the tests in result.wald."
        )
    slopes = slopes.set_index("label")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2"])
    for i, (key, part) in enumerate(lines.groupby("label", sort=False)):
        color = colors[i % len(colors)]
        row = slopes.loc[key]
        p = row["p"]
        p_text = "p < .001" if p < 0.001 else f"p = {p:.3f}".replace("0.", ".")
        ax.plot(
            part["x"],
            part["predicted"],
            color=color,
            label=f"{_level(key)}: b = {row['estimate']:.2f} [{row['ci_low']:.2f}, "
            f"{row['ci_high']:.2f}], {p_text}",
        )
        if bands:
            ax.fill_between(
                part["x"].to_numpy(),
                part["ci_low"].to_numpy(),
                part["ci_high"].to_numpy(),
                color=color,
                alpha=0.15,
                linewidth=0,
            )
    focal = result.focal or "alliance"
    ax.set_xlabel(label(focal, term_label(focal)))
    outcome = term_label(result.outcome_label or "", labels())
    ax.set_ylabel(f"Predicted {outcome or 'outcome'}")
    moderator = term_label(result.moderator) if result.moderator else "moderator"
    ax.set_title(f"Simple slopes by {moderator[:1].lower() + moderator[1:]}")
    ax.margins(x=0)
    if np.isfinite(lines["x"]).all():
        ax.set_xlim(float(lines["x"].min()), float(lines["x"].max()))
    title = moderator if result.moderator else None
    if legend == "best":
        ax.legend(title=title, frameon=False, fontsize="small", title_fontsize="small")
        return ax
    # under the x-axis label: measure where the label ends once the figure is drawn
    figure = ax.figure
    figure.canvas.draw()
    below = ax.xaxis.get_tightbbox(figure.canvas.get_renderer())
    depth = (ax.get_window_extent().y0 - below.y0) * 72 / figure.dpi + 2  # points
    anchor = offset_copy(ax.transAxes, fig=figure, y=-depth, units="points")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        bbox_transform=anchor,
        title=title,
        frameon=False,
        fontsize="small",
        title_fontsize="small",
    )
    return ax


def _level(key: object) -> str:
    """The group's name in the legend: ``prior_negative_therapy=False`` -> ``No``."""
    text = term_label(key)
    level = text.split(": ", 1)[-1]
    return level[:1].upper() + level[1:]
