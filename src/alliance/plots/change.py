"""Figures of clinical significance: the Jacobson-Truax plot and categories by group."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from alliance._checks import require_columns

__all__ = ["category_bars", "jacobson_truax"]

#: Colour-blind-safe colours (Okabe & Ito, 2008) per category.
CATEGORY_COLOURS = {
    "recovered": "#009E73",
    "improved": "#56B4E9",
    "unchanged": "#999999",
    "deteriorated": "#E69F00",
    "harmed": "#D55E00",
}

_ORDER = tuple(CATEGORY_COLOURS)


def jacobson_truax(result: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Pre against post scores: no-change line, reliable-change band, cut-off, categories.

    Parameters
    ----------
    result : pandas.DataFrame
        The result of :func:`alliance.change.clinical_significance` (or of
        :func:`alliance.change.reliable_change`, then without a cut-off).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    The shaded band is the region where the chosen method finds no reliable change,
    ``post = intercept + slope * pre +/- half_width`` from ``result.attrs['band']``
    (parallel to the line of no change for JT and HA, tilted towards the mean for the
    regression-based GLN, HLL, EN and NK). Clients without both scores are not drawn
    (the legend says how many).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> cs = alliance.change.clinical_significance(
    ...     study.sessions, outcome="phq9", instrument="phq9", cutoff=10,
    ...     sd="pre", reliability=0.84)
    >>> ax = alliance.plots.jacobson_truax(cs)
    >>> ax.get_xlabel()
    'pre'
    """
    require_columns(result, pre="pre", post="post", category="category")
    both = result["pre"].notna() & result["post"].notna()
    shown = result[both]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    values = np.concatenate([shown["pre"].to_numpy(float), shown["post"].to_numpy(float)])
    lo, hi = (float(np.min(values)), float(np.max(values))) if len(values) else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    grid = np.linspace(lo, hi, 2)
    ax.plot(grid, grid, color="black", lw=1, label="no change")
    band = result.attrs.get("band")
    if band:
        centre = band["intercept"] + band["slope"] * grid
        ax.fill_between(
            grid,
            centre - band["half_width"],
            centre + band["half_width"],
            color="0.85",
            zorder=0,
            label=f"no reliable change ({result.attrs.get('rci_method', 'JT')})",
        )
    if "cutoff" in result and result["cutoff"].notna().any():
        cut = float(result["cutoff"].dropna().iloc[0])
        ax.axvline(cut, color="0.3", ls="--", lw=1)
        ax.axhline(cut, color="0.3", ls="--", lw=1, label=f"cut-off {cut:g}")
    for cat in [*_ORDER, *sorted(set(shown["category"]) - set(_ORDER))]:
        part = shown[shown["category"] == cat]
        if len(part):
            ax.scatter(
                part["pre"],
                part["post"],
                s=18,
                color=CATEGORY_COLOURS.get(cat, "black"),
                edgecolor="white",
                lw=0.4,
                label=f"{cat} ({len(part)})",
            )
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("pre")
    ax.set_ylabel("post")
    left = int((~both).sum())
    title = "Jacobson-Truax plot"
    if left:
        title += f" ({left} clients without both scores not shown)"
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    return ax


def category_bars(
    result: pd.DataFrame,
    by: pd.Series | str | None = None,
    *,
    percent: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Share (or count) of clients per category, side by side for each group.

    Parameters
    ----------
    result : pandas.DataFrame
        The result of :func:`alliance.change.clinical_significance`.
    by : str or pandas.Series, optional
        A column of ``result`` (e.g. ``'condition'`` or ``'therapist'`` after a merge)
        or a Series aligned with it; one bar group per value.
    percent : bool
        Percentages over the clients with both scores in each group (default), else
        counts. Clients without both scores are left out and the title says how many.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> cs = alliance.change.clinical_significance(
    ...     study.sessions, outcome="phq9", instrument="phq9", cutoff=10,
    ...     sd="pre", reliability=0.84)
    >>> ax = alliance.plots.category_bars(cs)
    >>> ax.get_ylabel()
    'percent of clients'
    """
    require_columns(result, category="category")
    if by is None:
        group = pd.Series("all", index=result.index)
    elif isinstance(by, str):
        require_columns(result, by=by)
        group = result[by]
    else:
        group = pd.Series(by, index=result.index)
    keep = result["category"].isin(_ORDER)
    table = pd.crosstab(group[keep], result.loc[keep, "category"])
    table = table.reindex(columns=[c for c in _ORDER if c in table.columns])
    if percent:
        table = 100 * table.div(table.sum(axis=1), axis=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    n_groups, n_cats = table.shape
    width = 0.8 / max(n_cats, 1)
    x = np.arange(n_groups)
    for j, cat in enumerate(table.columns):
        ax.bar(
            x + (j - (n_cats - 1) / 2) * width,
            table[cat].to_numpy(),
            width=width,
            color=CATEGORY_COLOURS[cat],
            label=cat,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([str(g) for g in table.index])
    ax.set_ylabel("percent of clients" if percent else "clients")
    left = int((~keep).sum())
    if left:
        ax.set_title(f"{left} clients without both scores left out", fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    return ax
