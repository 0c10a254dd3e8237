"""The response surface of :func:`alliance.dyad.rsa`."""

from __future__ import annotations

import numpy as np

from alliance.plots.theme import label

__all__ = ["response_surface"]


def response_surface(result, ax=None, *, grid: int = 41, points: bool = True, cmap="viridis"):
    """Draw the fitted response surface, as a 3D surface or a contour map.

    The lines of congruence (x = y, solid) and incongruence (x + y = 2 x centre, dotted) are
    drawn, and the first principal axis (dashed) where the surface has one. The grid spans
    the common range of both ratings in the data.

    Parameters
    ----------
    result : alliance.dyad.RsaResult
        A fitted response surface analysis.
    ax : matplotlib.axes.Axes, optional
        Where to draw: a 3D Axes (``projection="3d"``) gets the surface, a 2D Axes a filled
        contour map. A new figure with a 3D Axes when None.
    grid : int, default 41
        Grid points per axis.
    points : bool, default True
        Show the clients' observed ratings.
    cmap : str or Colormap
        Colour map.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import alliance
    >>> study = alliance.dyad.simulate_dyads(seed=1, discrepancy=-1.0)
    >>> fit = alliance.dyad.rsa(study, x="wai_client", y="wai_therapist", outcome="outcome")
    >>> fig, ax = plt.subplots()
    >>> alliance.plots.response_surface(fit, ax=ax) is ax
    True
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig = plt.figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d")
    data = result.data
    values = np.concatenate([data[result.x].to_numpy(float), data[result.y].to_numpy(float)])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo)
    axis = np.linspace(lo - pad, hi + pad, grid)
    gx, gy = np.meshgrid(axis, axis)
    gz = result.predict(gx, gy)
    c = result.centre
    lines = [(axis, axis, "-", "line of congruence")]
    loic = 2 * c - axis
    keep = (loic >= axis[0]) & (loic <= axis[-1])
    lines.append((axis[keep], loic[keep], ":", "line of incongruence"))
    st = result.stationary["estimate"]
    if np.isfinite(st[["p10", "p11"]]).all():
        # p10, p11 are on the centred scale: Y - c = p10 + p11 (X - c)
        py = c + st["p10"] + st["p11"] * (axis - c)
        keep = (py >= axis[0]) & (py <= axis[-1])
        lines.append((axis[keep], py[keep], "--", "first principal axis"))
    is3d = getattr(ax, "name", "") == "3d"
    if is3d:
        ax.plot_surface(gx, gy, gz, cmap=cmap, alpha=0.75, linewidth=0)
        for lx, ly, style, key in lines:
            ax.plot(lx, ly, result.predict(lx, ly), style, color="k", lw=1.2, label=key)
        if points:
            ax.scatter(data[result.x], data[result.y], data[result.outcome], s=6, color="0.2")
        ax.set_zlabel(result.outcome)
    else:
        filled = ax.contourf(gx, gy, gz, levels=12, cmap=cmap)
        ax.figure.colorbar(filled, ax=ax, label=label(result.outcome))
        for lx, ly, style, key in lines:
            ax.plot(lx, ly, style, color="k", lw=1.2, label=key)
        if points:
            ax.scatter(data[result.x], data[result.y], s=6, color="w", edgecolor="0.3", lw=0.3)
        ax.set_xlim(axis[0], axis[-1])
        ax.set_ylim(axis[0], axis[-1])
        ax.set_aspect("equal")
    ax.set_xlabel(label(result.x))
    ax.set_ylabel(label(result.y))
    ax.set_title(f"{result.outcome} on {result.x} and {result.y}")
    return ax
