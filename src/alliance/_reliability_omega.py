"""McDonald's omega from a Schmid-Leiman transformation, as ``psych::omega``.

Steps (psych's defaults): Pearson correlations (pairwise complete), minimum-residual
(minres) factoring of ``n_factors`` factors, varimax then oblimin (quartimin, gamma 0)
rotation by gradient projection (Bernaards & Jennrich 2005, as GPArotation), a one-factor
minres solution of the factor correlations for the general factor (``sqrt`` of the
correlation when there are two factors), items keyed by the sign of their general
loading, then omega hierarchical = (sum g)^2 / Vt and omega total = (Vt - sum u2) / Vt,
where Vt is the sum of the (keyed) correlation matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from alliance._checks import require_columns, require_frame
from alliance._frames import with_tables

__all__ = ["omega"]


def _loadings_from_psi(r: np.ndarray, psi: np.ndarray, nf: int) -> np.ndarray:
    s = r.copy()
    np.fill_diagonal(s, 1 - psi)
    values, vectors = np.linalg.eigh(s)
    order = np.argsort(values)[::-1][:nf]
    values = np.maximum(values[order], 100 * np.finfo(float).eps)
    return vectors[:, order] * np.sqrt(values)


def _minres(r: np.ndarray, nf: int) -> np.ndarray:
    """Unrotated minimum-residual loadings (psych ``fa(fm = "minres")``)."""
    lower = np.tril_indices(len(r), -1)

    def loss(psi: np.ndarray) -> float:
        load = _loadings_from_psi(r, psi, nf)
        return float((((r - load @ load.T)[lower]) ** 2).sum())

    start = 1 / np.diag(np.linalg.pinv(r))  # psych: uniqueness start 1 - smc
    start = np.clip(1 / start, 0.005, 1)
    fit = optimize.minimize(
        loss,
        start,
        method="L-BFGS-B",
        bounds=[(0.005, 1.0)] * len(r),
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
    )
    return _loadings_from_psi(r, fit.x, nf)


def _varimax(a: np.ndarray, eps: float = 1e-5, maxit: int = 1000) -> np.ndarray:
    """Kaiser-normalized varimax, as R's ``stats::varimax``."""
    h = np.sqrt((a**2).sum(axis=1))
    x = a / h[:, None]
    p, nc = x.shape
    t = np.eye(nc)
    d = 0.0
    for _ in range(maxit):
        z = x @ t
        b = x.T @ (z**3 - z @ np.diag((z**2).sum(axis=0)) / p)
        u, s, vt = np.linalg.svd(b)
        t = u @ vt
        d_past, d = d, s.sum()
        if d < d_past * (1 + eps):
            break
    return (x @ t) * h[:, None]


def _oblimin(a: np.ndarray, eps: float = 1e-5, maxit: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Quartimin (oblimin, gamma 0) by gradient projection, as ``GPArotation::GPFoblq``."""
    k = a.shape[1]
    off = 1 - np.eye(k)

    def crit(load: np.ndarray) -> tuple[float, np.ndarray]:
        x = (load**2) @ off
        return float((load**2 * x).sum() / 4), load * x

    tmat = np.eye(k)
    load = a @ np.linalg.inv(tmat).T
    f, gq = crit(load)
    g = -(load.T @ gq @ np.linalg.inv(tmat)).T
    al = 1.0
    for _ in range(maxit + 1):
        gp = g - tmat @ np.diag((tmat * g).sum(axis=0))
        s = np.sqrt(np.trace(gp.T @ gp))
        if s < eps:
            break
        al *= 2
        for _ in range(11):
            x = tmat - al * gp
            tnew = x / np.sqrt((x**2).sum(axis=0))
            load = a @ np.linalg.inv(tnew).T
            fnew, gqnew = crit(load)
            if f - fnew > 0.5 * s**2 * al:
                break
            al /= 2
        tmat, f = tnew, fnew
        g = -(load.T @ gqnew @ np.linalg.inv(tnew)).T
    return load, tmat.T @ tmat


def omega(
    data: pd.DataFrame | np.ndarray,
    items: Sequence[str] | None = None,
    *,
    n_factors: int = 3,
    flip: bool = True,
) -> pd.DataFrame:
    """McDonald's omega hierarchical and omega total (Schmid-Leiman), as ``psych::omega``.

    Uses psych's default settings: Pearson correlations (pairwise complete),
    minres factoring, oblimin rotation, Schmid-Leiman transformation; items with a
    negative general-factor loading are reversed (``flip``).

    Parameters
    ----------
    data : pandas.DataFrame or array
        Item responses (one row per respondent), or a square correlation matrix.
    items : list of str, optional
        Item columns; by default every numeric column.
    n_factors : int, default 3
        Number of group factors (at least 2 for a meaningful omega hierarchical).
    flip : bool, default True
        Reverse items whose general-factor loading is negative.

    Returns
    -------
    pandas.DataFrame
        One row: omega_h, omega_total, omega_limit (omega_h / omega_total), alpha, g6,
        n_items, n_factors, n (rows of raw data; missing for a correlation matrix),
        method. ``result.tables["loadings"]`` holds the Schmid-Leiman table (g, the group
        factors, h2, u2).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> om = alliance.reliability.omega(study.sessions, alliance.instruments.get("wai_sr").items)
    >>> bool(om.loc[0, "omega_total"] >= om.loc[0, "omega_h"])
    True
    """
    if isinstance(data, np.ndarray):
        data = pd.DataFrame(data)
    frame = require_frame(data)
    if items is None:
        items = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    items = list(items)
    require_columns(frame, **{f"item {i}": c for i, c in enumerate(items, start=1)})
    block = frame[items].astype(float)
    square = block.shape[0] == block.shape[1] and np.allclose(block.to_numpy(), block.T)
    if square and np.allclose(np.diag(block.to_numpy()), 1):
        r, n = block.to_numpy(), None
    else:
        r, n = block.corr().to_numpy(), int(block.notna().any(axis=1).sum())
    p = len(items)
    if not isinstance(n_factors, int) or not 1 <= n_factors < p / 2:
        raise ValueError(
            f"n_factors must be a whole number from 1 to fewer than half the items ({p}); "
            f"got {n_factors!r}"
        )
    if np.isnan(r).any():
        raise ValueError(
            "the correlation matrix has missing values; check for items without "
            "variance or without joint observations"
        )
    unrotated = _minres(r, n_factors)
    h2 = (unrotated**2).sum(axis=1)
    if n_factors == 1:
        fload, phi, gload = unrotated, np.eye(1), np.ones(1)
    else:
        fload, phi = _oblimin(_varimax(unrotated))
        if n_factors == 2:
            gload = np.sqrt(abs(phi[0, 1])) * np.array([1.0, np.sign(phi[0, 1])])
        else:
            gload = _minres(phi, 1)[:, 0]
    g = fload @ gload
    key = np.where(np.sign(g) == 0, 1.0, np.sign(g)) if flip else np.ones(p)
    rk = r * np.outer(key, key)
    g = g * key
    vt = rk.sum()
    u2 = np.diag(rk) - h2
    gsq = g.sum() ** 2
    smc = 1 - 1 / np.diag(np.linalg.pinv(rk))
    group = fload * gload  # primary loadings times their g loading
    sm = np.sign(fload) * np.sqrt(
        np.clip(np.diag(rk)[:, None] - (1 - fload**2) - group**2, 0, None)
    )
    table = pd.DataFrame(
        sm * key[:, None], index=items, columns=[f"F{i + 1}*" for i in range(n_factors)]
    )
    table.insert(0, "g", g)
    table["h2"], table["u2"] = h2, u2
    out = pd.DataFrame(
        [
            {
                "omega_h": gsq / vt,
                "omega_total": (vt - u2.sum()) / vt,
                "omega_limit": gsq / (vt - u2.sum()),
                "alpha": (vt - np.trace(rk)) / vt * p / (p - 1),
                "g6": (vt + smc.sum() - np.trace(rk)) / vt,
                "n_items": p,
                "n_factors": n_factors,
                "n": n,
                "method": "Schmid-Leiman: minres, oblimin",
            }
        ]
    )
    out = with_tables(out, loadings=table)
    out.attrs["reversed"] = [c for c, k in zip(items, key, strict=True) if k < 0]
    return out
