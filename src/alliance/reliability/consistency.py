"""Internal consistency of a scale's items: Cronbach's alpha and McDonald's omega.

:func:`alpha` follows ``psych::alpha`` (Feldt and Duhachek intervals). :func:`omega` follows
``psych::omega``.

Steps (psych's defaults): Pearson correlations (pairwise complete), minimum-residual
(minres) factoring of ``n_factors`` factors (multi-start, never a worse minimum than
psych's own fit: :func:`omega_extraction`), varimax then oblimin (quartimin, gamma 0)
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
from scipy import optimize, stats

from alliance import instruments as _instruments
from alliance._checks import require_columns, require_frame
from alliance._frames import with_tables
from alliance.reliability._common import check_level, keyed_scales

__all__ = ["alpha", "omega", "omega_extraction"]


# ---------------------------------------------------------------------------------------
# alpha
# ---------------------------------------------------------------------------------------


def _alpha_stats(cov: np.ndarray) -> dict[str, float]:
    """psych's alpha.1: alpha, standardized alpha, G6, average r, S/N and Duhachek's Q."""
    k = cov.shape[0]
    d = np.sqrt(np.diag(cov))
    r = cov / np.outer(d, d)
    total, trace = cov.sum(), np.trace(cov)
    raw = (1 - trace / total) * k / (k - 1)
    sum_r = r.sum()
    smc = 1 - 1 / np.diag(np.linalg.pinv(r))
    av_r = (sum_r - k) / (k * (k - 1))
    lower = r[np.tril_indices(k, -1)]
    cc = cov @ cov
    q = (2 * k**2 / ((k - 1) ** 2 * total**3)) * (
        total * (np.trace(cc) + trace**2) - 2 * trace * cc.sum()
    )
    return {
        "alpha": raw,
        "std_alpha": (1 - k / sum_r) * k / (k - 1),
        "g6": 1 - (k - smc.sum()) / sum_r,
        "average_r": av_r,
        "median_r": float(np.median(lower)),
        "s_n": k * av_r / (1 - av_r),
        "q": q,
    }


def alpha(
    data: pd.DataFrame,
    items: Sequence[str] | None = None,
    *,
    instrument: str | _instruments.Instrument | None = None,
    reverse: Sequence[str] | None = None,
    subscales: bool = True,
    level: float | None = None,
    by_item: bool = False,
    ci: float | None = None,
) -> pd.DataFrame:
    """Cronbach's alpha with Feldt and Duhachek confidence intervals, as ``psych::alpha``.

    Covariances use pairwise-complete observations (psych's ``use = "pairwise"``).
    Rows with every item missing are not counted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per respondent (or session), items in columns.
    items : list of str, optional
        Item columns; by default the instrument's items, else every numeric column.
    instrument : str or Instrument, optional
        Registry instrument: gives the items, the reverse keys (flipped within the item
        range) and one row per subscale as well as the total.
    reverse : list of str, optional
        Item columns to reverse (overrides the registry); without an instrument they are
        flipped within the observed range of all items, as psych does.
    subscales : bool, default True
        With an instrument, add a row per subscale.
    level : float, default 0.95
        Confidence level (formerly ``ci=``, still accepted with a warning).
    by_item : bool, default False
        Return the item table instead: per item, alpha if the item is dropped, the
        corrected item-total correlation (``r_drop``), mean, sd and n.

    Returns
    -------
    pandas.DataFrame
        One row per scale: scale, n, n_items, alpha, ci_low, ci_high (Feldt 1965),
        ase, ci_low_duhachek, ci_high_duhachek (Duhachek & Iacobucci 2004), std_alpha,
        g6 (Guttman's lambda 6), average_r, median_r, s_n (signal/noise), mean and sd
        of the item-mean score.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> table = alliance.reliability.alpha(study.sessions, instrument="wai_sr")
    >>> table["scale"].tolist()
    ['wai_sr', 'wai_sr_goal', 'wai_sr_task', 'wai_sr_bond']
    >>> bool(table.loc[0, "alpha"] > 0.8)
    True
    """
    level = check_level("alpha", level, ci)
    block, scales = keyed_scales(data, items, instrument, reverse, subscales)
    block = block[block.notna().any(axis=1)]
    if by_item:
        columns = list(block.columns)
        cov = block.cov().to_numpy()
        keyed_total = block.mean(axis=1)
        rows = []
        for j, col in enumerate(columns):
            keep = [i for i in range(len(columns)) if i != j]
            sub = cov[np.ix_(keep, keep)]
            rest = cov[j].sum() - cov[j, j]
            rows.append(
                {
                    "item": col,
                    "n": int(block[col].notna().sum()),
                    "alpha_if_dropped": _alpha_stats(sub)["alpha"] if len(keep) > 1 else np.nan,
                    "r_drop": rest / np.sqrt(cov[j, j] * sub.sum()),
                    "r_total": block[col].corr(keyed_total),
                    "mean": block[col].mean(),
                    "sd": block[col].std(),
                }
            )
        return pd.DataFrame(rows)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for scale, columns in scales.items():
        part = block[columns]
        part = part[part.notna().any(axis=1)]
        n, k = len(part), len(columns)
        cov = part.cov().to_numpy()
        if np.isnan(cov).any() or (np.diag(cov) <= 0).any():
            bad = [c for c, v in zip(columns, np.diag(cov), strict=True) if not v > 0]
            raise ValueError(
                f"{scale}: item(s) {', '.join(map(repr, bad)) or 'pairs'} have no variance or "
                "too few joint observations; drop them from items="
            )
        s = _alpha_stats(cov)
        df1, df2 = n - 1, (n - 1) * (k - 1)
        ase = np.sqrt(s["q"] / n)
        score = part.mean(axis=1)
        rows.append(
            {
                "scale": scale,
                "n": n,
                "n_items": k,
                "alpha": s["alpha"],
                "ci_low": 1 - (1 - s["alpha"]) * stats.f.ppf(0.5 + level / 2, df1, df2),
                "ci_high": 1 - (1 - s["alpha"]) * stats.f.ppf(0.5 - level / 2, df1, df2),
                "ase": ase,
                "ci_low_duhachek": s["alpha"] - z * ase,
                "ci_high_duhachek": s["alpha"] + z * ase,
                "std_alpha": s["std_alpha"],
                "g6": s["g6"],
                "average_r": s["average_r"],
                "median_r": s["median_r"],
                "s_n": s["s_n"],
                "mean": score.mean(),
                "sd": score.std(),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# omega
# ---------------------------------------------------------------------------------------


def _loadings_from_psi(r: np.ndarray, psi: np.ndarray, nf: int) -> np.ndarray:
    s = r.copy()
    np.fill_diagonal(s, 1 - psi)
    values, vectors = np.linalg.eigh(s)
    order = np.argsort(values)[::-1][:nf]
    values = np.maximum(values[order], 100 * np.finfo(float).eps)
    return vectors[:, order] * np.sqrt(values)


def _offdiag_ss(r: np.ndarray, load: np.ndarray) -> float:
    """Sum of squared off-diagonal residuals, lower triangle (the minres criterion / 2)."""
    lower = np.tril_indices(len(r), -1)
    return float((((r - load @ load.T)[lower]) ** 2).sum())


def _psych_minres(r: np.ndarray, nf: int, start: np.ndarray) -> np.ndarray:
    """psych's minres fit as ``fa`` runs it: the uniquenesses by R's ``optim`` L-BFGS-B
    (``parscale = 0.01``, ``factr = 1e7``, ``pgtol = 0``, 5 corrections, 100 iterations,
    bounds ``[.005, max(smc, 1)]``) on the off-diagonal residual sum of squares with
    psych's approximate gradient ``diag(L L' + Psi - S)`` (``FAgr.minres``)."""
    upper = max(float(np.max(1 - 1 / np.diag(np.linalg.pinv(r)))), 1.0)
    scale = 0.01
    off = 1 - np.eye(len(r))

    def fn(z: np.ndarray) -> float:
        load = _loadings_from_psi(r, z * scale, nf)
        return float((((r - load @ load.T) * off) ** 2).sum())

    def gr(z: np.ndarray) -> np.ndarray:
        psi = z * scale
        values, vectors = np.linalg.eigh(r - np.diag(psi))
        order = np.argsort(values)[::-1][:nf]
        load = vectors[:, order] * np.sqrt(np.maximum(values[order], 0))
        return np.diag(load @ load.T + np.diag(psi) - r) * scale

    fit = optimize.minimize(
        fn,
        np.clip(start, 0.005, upper) / scale,
        jac=gr,
        method="L-BFGS-B",
        bounds=[(0.005 / scale, upper / scale)] * len(r),
        options={"ftol": 1e7 * np.finfo(float).eps, "gtol": 0.0, "maxcor": 5, "maxiter": 100},
    )
    return _loadings_from_psi(r, fit.x * scale, nf)


def _minres(
    r: np.ndarray, nf: int, *, n_starts: int = 6, seed: int = 0, multi_start: bool = True
) -> np.ndarray:
    """Unrotated minimum-residual loadings (psych ``fa(fm = "minres")``), multi-start.

    The minres criterion can have several local minima (e.g. ``psychTools::ability`` with
    3 factors). Candidates: psych's own fit (:func:`_psych_minres`, from psych's start
    ``1 - smc``), then precise L-BFGS-B fits from ``1 - smc``, from 0.5 and from
    ``n_starts - 2`` seeded random uniquenesses. The candidate with the smallest
    off-diagonal residual sum of squares is kept; psych's fit is kept when no candidate is
    better by more than 1e-9 (relative), so the solution is never worse than psych's and
    equal to it where psych reaches the minimum.
    """
    lower = np.tril_indices(len(r), -1)

    def loss(psi: np.ndarray) -> float:
        load = _loadings_from_psi(r, psi, nf)
        return float((((r - load @ load.T)[lower]) ** 2).sum())

    smc_start = np.clip(1 / (1 / np.diag(np.linalg.pinv(r))), 0.005, 1)  # 1 - smc
    if not multi_start:  # one precise fit from 1 - smc (before issue 16)
        fit = optimize.minimize(
            loss,
            smc_start,
            method="L-BFGS-B",
            bounds=[(0.005, 1.0)] * len(r),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
        )
        return _loadings_from_psi(r, fit.x, nf)
    psych = _psych_minres(r, nf, smc_start)
    best, best_ss = psych, _offdiag_ss(r, psych)
    rng = np.random.default_rng(seed)
    starts = [smc_start, np.full(len(r), 0.5)]
    starts += [rng.uniform(0.2, 0.95, len(r)) for _ in range(max(n_starts - 2, 0))]
    for start in starts:
        fit = optimize.minimize(
            loss,
            start,
            method="L-BFGS-B",
            bounds=[(0.005, 1.0)] * len(r),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
        )
        load = _loadings_from_psi(r, fit.x, nf)
        ss = _offdiag_ss(r, load)
        if ss < best_ss * (1 - 1e-9) - 1e-15:
            best, best_ss = load, ss
    return best


def omega_extraction(r: np.ndarray, n_factors: int, *, multi_start: bool = True) -> dict:
    """The unrotated minres factor solution behind :func:`omega` (multi-start).

    Parameters
    ----------
    r : numpy.ndarray
        A correlation matrix.
    n_factors : int
        Number of factors.
    multi_start : bool, default True
        False: one fit from psych's start (``1 - smc``), the behaviour before issue 16.

    Returns
    -------
    dict
        ``loadings`` (items x factors), ``communalities`` and ``residual_ss`` (the sum of
        squared off-diagonal residuals, lower triangle).

    Examples
    --------
    >>> import numpy as np
    >>> from alliance.reliability.consistency import omega_extraction
    >>> r = np.full((6, 6), 0.3) + 0.7 * np.eye(6)
    >>> round(omega_extraction(r, 1)["residual_ss"], 8)
    0.0
    """
    r = np.asarray(r, dtype=float)
    load = _minres(r, n_factors, multi_start=multi_start)
    return {
        "loadings": load,
        "communalities": (load**2).sum(axis=1),
        "residual_ss": _offdiag_ss(r, load),
    }


def _minres_g(phi: np.ndarray) -> np.ndarray:
    """The general factor's loadings on the group factors as psych's ``schmid`` gets them
    (``fa(phi, 1, fm = "minres")``: psych's single fit from its start, see
    :func:`_psych_minres`). With three group factors the one-factor fit is often an
    (ultra-)Heywood case, where psych's approximate gradient stops short of the minimum;
    omega_h is defined by psych's procedure, so its fit is reproduced, not improved."""
    start = np.clip(1 / (1 / np.diag(np.linalg.pinv(phi))), 0.005, 1)
    g = _psych_minres(phi, 1, start)[:, 0]
    return g if g.sum() >= 0 else -g  # psych reflects factors to a positive loading sum


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
    >>> round(float(om.loc[0, "omega_total"]), 2), int(om.loc[0, "n_factors"])
    (0.95, 3)

    (The demo's WAI-SR items were simulated as one factor, so three group factors overfit
    them: an item with almost no uniqueness, and omega_h, computed on the observed total
    variance as psych does, even slightly above omega_total.)
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
            gload = _minres_g(phi)
    g = fload @ gload
    if g.sum() < 0:  # the general factor points the way most items do (as psych)
        g = -g
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
