"""Forest and funnel plots for :mod:`alliance.meta` results.

Both are axes-level: they take ``ax=None`` and return the Axes, and never call
``plt.show``. Artists that tests and users may want to find carry a ``gid``:
``"study-ci"``, ``"study-point"``, ``"pooled-diamond"``, ``"prediction-interval"``,
``"funnel-points"``, ``"funnel-lines"``, ``"funnel-contour"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["forest", "funnel"]


def _apa_p(level: float) -> str:
    """A significance level the APA way: ``.10``, ``.05``, ``.01`` (no leading zero)."""
    return f"{level:.3f}".rstrip("0").ljust(4, "0").lstrip("0") if level < 1 else f"{level:g}"


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def _check_result(result, what: str):
    from alliance.meta import MetaResult, MultilevelMetaResult

    if not isinstance(result, MetaResult | MultilevelMetaResult):
        raise TypeError(
            f"{what} needs a result of alliance.meta.meta_analysis (or "
            f"multilevel_meta_analysis), not {type(result).__name__}"
        )
    if not result.intercept_only:
        raise ValueError(
            f"{what} shows a pooled estimate, which a model with moderators does not have; "
            "fit the model without mods="
        )
    return result


def forest(
    result,
    ax=None,
    *,
    scale: str | None = None,
    show_pi: bool = True,
    order: str | None = None,
    labels: Sequence[str] | None = None,
    color: str = "0.2",
    pooled_color: str = "C0",
    annotate: bool = True,
):
    """Forest plot: each effect with its CI, the pooled diamond and the prediction interval.

    Parameters
    ----------
    result : MetaResult or MultilevelMetaResult
        A model without moderators.
    ax : matplotlib.axes.Axes, optional
        Where to draw; the current Axes by default.
    scale : {"r", "z", "yi"}, optional
        Axis scale. Correlations are shown as r by default (back-transformed from
        Fisher's z); other effect sizes as fitted ("yi").
    show_pi : bool
        Draw the prediction interval as a line through the diamond (random-effects only).
    order : {"estimate", "weight"}, optional
        Sort the studies; by default they keep the data order.
    labels : sequence of str, optional
        Study labels (default: the study column).
    color, pooled_color : str
        Colours of the study markers and of the pooled diamond.
    annotate : bool
        Write each estimate and CI at the right-hand margin.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from alliance import meta
    >>> from alliance.plots import meta as meta_plots
    >>> res = meta.meta_analysis(meta.example_studies())
    >>> fig, ax = plt.subplots(figsize=(6, 12))
    >>> ax = meta_plots.forest(res, ax=ax)
    >>> [p.get_gid() for p in ax.patches]
    ['pooled-diamond']
    >>> plt.close(fig)
    """
    result = _check_result(result, "forest")
    ax = _axes(ax)
    if scale is None:
        scale = "r" if result.measure == "r" else "yi"
    if scale not in ("r", "z", "yi"):
        raise ValueError(f"scale must be 'r', 'z' or 'yi', not {scale!r}")
    if scale == "r" and result.measure != "r":
        raise ValueError("scale='r' needs a meta-analysis of correlations; use scale='yi'")

    def tr(x):
        return np.tanh(x) if scale == "r" else np.asarray(x)

    data = result.data
    y = data["yi"].to_numpy()
    se = np.sqrt(data["vi"].to_numpy())
    crit = stats.norm.isf((1 - result.level) / 2)
    lo, hi = y - crit * se, y + crit * se
    names = np.asarray(labels if labels is not None else result.labels, dtype=object)
    if len(names) != len(y):
        raise ValueError(f"labels has {len(names)} entries for {len(y)} effects")
    w = 1.0 / (data["vi"].to_numpy() + result.tau2)
    idx = np.arange(len(y))
    if order == "estimate":
        idx = np.argsort(y, kind="stable")
    elif order == "weight":
        idx = np.argsort(-w, kind="stable")
    elif order is not None:
        raise ValueError(f"order must be 'estimate', 'weight' or None, not {order!r}")
    k = len(y)
    pos = np.arange(k, 0, -1) + 1.0  # top to bottom, leaving room for the pooled row
    ax.hlines(pos, tr(lo[idx]), tr(hi[idx]), color=color, linewidth=1, gid="study-ci")
    sizes = 20 + 180 * w[idx] / w.max()
    ax.scatter(tr(y[idx]), pos, s=sizes, marker="s", color=color, zorder=3, gid="study-point")

    est, clo, chi = result.estimate, result.ci_low, result.ci_high
    ypool = 0.0
    diamond = np.array(
        [[tr(clo), ypool], [tr(est), ypool + 0.4], [tr(chi), ypool], [tr(est), ypool - 0.4]]
    )
    from matplotlib.patches import Polygon

    ax.add_patch(
        Polygon(
            diamond,
            closed=True,
            facecolor=pooled_color,
            edgecolor=pooled_color,
            gid="pooled-diamond",
            zorder=4,
        )
    )
    if show_pi and result.method != "FE":
        ax.hlines(
            ypool,
            tr(result.pi_low),
            tr(result.pi_high),
            color=pooled_color,
            linewidth=1.5,
            linestyle="--",
            gid="prediction-interval",
            zorder=3,
        )
    ax.axvline(0.0, color="0.6", linewidth=0.8, linestyle=":")
    ax.axvline(tr(est), color=pooled_color, linewidth=0.6, alpha=0.5)
    kind = "FE model" if result.method == "FE" else f"RE model ({result.method})"
    ax.set_yticks([*pos, ypool])
    ax.set_yticklabels([*names[idx], kind])
    ax.set_ylim(-1.0, k + 2.0)
    xlabel = {"r": "Correlation (r)", "z": "Fisher's z", "yi": "Effect size"}[scale]
    ax.set_xlabel(xlabel)
    if annotate:
        trans = ax.get_yaxis_transform()
        for p, a, b, c in zip(pos, tr(y[idx]), tr(lo[idx]), tr(hi[idx]), strict=True):
            ax.text(
                1.02,
                p,
                f"{a:.2f} [{b:.2f}, {c:.2f}]",
                transform=trans,
                va="center",
                fontsize="small",
            )
        ax.text(
            1.02,
            ypool,
            f"{tr(est):.2f} [{tr(clo):.2f}, {tr(chi):.2f}]",
            transform=trans,
            va="center",
            fontsize="small",
            fontweight="bold",
        )
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.tick_params(axis="y", length=0)
    return ax


def funnel(
    result,
    ax=None,
    *,
    contours: Sequence[float] | None = None,
    level: float | None = None,
    color: str = "0.15",
):
    """Funnel plot: effects against their standard errors (larger studies at the top).

    Parameters
    ----------
    result : MetaResult
        A model without moderators (or a :class:`~alliance.meta.TrimFillResult`, whose
        imputed studies are drawn as open circles).
    ax : matplotlib.axes.Axes, optional
        Where to draw.
    contours : sequence of float, optional
        Significance levels for a contour-enhanced funnel (Peters et al., 2008), e.g.
        ``(0.10, 0.05, 0.01)``: shaded regions where a study's two-sided p falls below
        each level, centred on zero. Without contours, pseudo confidence limits
        around the pooled estimate are drawn.
    level : float, optional
        Level of the pseudo confidence limits (default: the model's level).
    color : str
        Colour of the points.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    The axes are on the model scale (Fisher's z for correlations), where the funnel is
    symmetric.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from alliance import meta
    >>> from alliance.plots import meta as meta_plots
    >>> res = meta.meta_analysis(meta.example_studies())
    >>> fig, ax = plt.subplots()
    >>> ax = meta_plots.funnel(res, contours=(0.10, 0.05, 0.01))
    >>> sum(p.get_gid() == "funnel-contour" for p in ax.collections)
    3
    >>> plt.close(fig)
    """
    from alliance.meta import TrimFillResult

    filled = None
    if isinstance(result, TrimFillResult):
        filled = result.filled
        result = result.result
        observed = ~result.data.get("filled", False)
    else:
        observed = None
    result = _check_result(result, "funnel")
    ax = _axes(ax)
    data = result.data
    y = data["yi"].to_numpy()
    se = np.sqrt(data["vi"].to_numpy())
    if observed is not None:
        obs = np.asarray(observed, bool)
        y, se = y[obs], se[obs]
    se_max = max(se.max(), filled["sei"].max() if filled is not None and len(filled) else 0)
    se_max *= 1.05
    grid = np.linspace(0, se_max, 100)
    if contours:
        levels = sorted(float(c) for c in contours)  # most significant first
        for c in levels:
            if not 0 < c < 1:
                raise ValueError(f"contour levels must be between 0 and 1, not {c!r}")
        zs = [stats.norm.isf(c / 2) for c in levels]
        xmax = 1.1 * max(np.abs(y).max(), zs[0] * se_max)
        shades = np.linspace(0.55, 0.85, len(levels))
        # paint from the outside in: |y| > z_c * se is "p < c"
        outer = [np.full_like(grid, xmax)] + [z * grid for z in zs[:-1]]
        for c, shade, bound in zip(levels, shades, outer, strict=True):
            ax.fill_betweenx(
                grid,
                -bound,
                bound,
                color=str(shade),
                gid="funnel-contour",
                zorder=0,
                linewidth=0,
                label=f"p < {c:g}",
            )
        ax.fill_betweenx(
            grid,
            -zs[-1] * grid,
            zs[-1] * grid,
            color="white",
            zorder=0,
            linewidth=0,
            gid="funnel-interior",
        )
        ax.set_xlim(-xmax, xmax)
        # legend patches with an edge, so the lightest shade and the white interior show
        from matplotlib.patches import Patch

        handles = [
            Patch(facecolor=str(shade), edgecolor="0.3", linewidth=0.6, label=f"p < {_apa_p(c)}")
            for c, shade in zip(levels, shades, strict=True)
        ]
        handles.append(
            Patch(
                facecolor="white", edgecolor="0.3", linewidth=0.6, label=f"p ≥ {_apa_p(levels[-1])}"
            )
        )
        ax.legend(handles=handles, loc="lower right", fontsize="small", frameon=False)
        ax.axvline(0.0, color="0.6", linewidth=0.6, linestyle=":")
    else:
        lev = result.level if level is None else level
        z = stats.norm.isf((1 - lev) / 2)
        center = float(result.estimate)
        ax.plot(
            np.r_[center - z * grid[::-1], center + z * grid],
            np.r_[grid[::-1], grid],
            color="0.5",
            linestyle="--",
            linewidth=0.8,
            gid="funnel-lines",
        )
    ax.axvline(result.estimate, color="0.3", linewidth=0.8)
    ax.scatter(y, se, color=color, s=18, zorder=3, gid="funnel-points")
    if filled is not None and len(filled):
        ax.scatter(
            filled["yi"],
            filled["sei"],
            facecolors="white",
            edgecolors=color,
            s=18,
            zorder=3,
            gid="funnel-filled",
        )
    ax.set_ylim(se_max, 0)
    ax.set_ylabel("Standard error")
    ax.set_xlabel("Fisher's z" if result.measure == "r" else "Effect size")
    return ax
