"""Reliability of scores: alpha, omega, ICC, multilevel reliability, inter-rater agreement.

Every function returns a tidy :class:`pandas.DataFrame` (one row per scale, coefficient
or form) with confidence intervals where the method has them. Each mirrors a function
of R's psych package and is tested against values psych printed
(``tests/reference/psych_reference.R``):

==============================  =====================================================
alliance                        R
==============================  =====================================================
:func:`alpha`                   ``psych::alpha`` (Feldt and Duhachek intervals)
:func:`omega`                   ``psych::omega`` (minres, oblimin, Schmid-Leiman)
:func:`icc`                     ``psych::ICC(x, lmer = FALSE)`` (Shrout & Fleiss 1979)
:func:`multilevel_reliability`  ``psych::multilevel.reliability`` (Shrout & Lane 2012)
:func:`cohen_kappa`             ``psych::cohen.kappa``
:func:`fleiss_kappa`            Fleiss (1971); null-hypothesis SE of Fleiss et al. (1979)
:func:`krippendorff_alpha`      Krippendorff (2004), via the ``krippendorff`` package
:func:`agreement`               all of the three above for a set of coders
==============================  =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from alliance import instruments as _instruments
from alliance._checks import format_rows, require_columns, require_frame
from alliance._reliability_omega import omega

__all__ = [
    "agreement",
    "alpha",
    "cohen_kappa",
    "fleiss_kappa",
    "icc",
    "krippendorff_alpha",
    "multilevel_reliability",
    "omega",
]


# ---------------------------------------------------------------------------------------
# shared input handling
# ---------------------------------------------------------------------------------------


def _check_level(ci: float) -> float:
    if not 0 < ci < 1:
        raise ValueError(f"ci must be a confidence level between 0 and 1 (e.g. 0.95), got {ci!r}")
    return float(ci)


def _numeric_block(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    block = frame[list(columns)]
    bad = [c for c in block.columns if not pd.api.types.is_numeric_dtype(block[c])]
    if bad:
        raise ValueError(
            f"{what} must be numeric; column(s) {', '.join(map(repr, bad))} are not. "
            "Recode response labels to numbers first (e.g. with Series.map)"
        )
    return block.astype(float)


def _scales(
    data: pd.DataFrame,
    items: Sequence[str] | None,
    instrument: str | _instruments.Instrument | None,
    reverse: Sequence[str] | None,
    subscales: bool,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Keyed item block and the scales (name -> columns) to analyse."""
    frame = require_frame(data)
    ins = None if instrument is None else _instruments.get(instrument)
    if items is None:
        if ins is not None:
            items = ins.items
        else:
            items = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    items = list(items)
    if len(items) < 2:
        raise ValueError(
            f"reliability needs at least 2 item columns, got {items!r}; pass items=[...]"
        )
    require_columns(frame, **{f"item {i}": c for i, c in enumerate(items, start=1)})
    block = _numeric_block(frame, items, "item columns")
    flip: list[str] = []
    if reverse is not None:
        unknown = [c for c in reverse if c not in items]
        if unknown:
            raise KeyError(
                f"reverse= names {', '.join(map(repr, unknown))}, which are not among the items"
            )
        flip = list(reverse)
    elif ins is not None:
        if ins.reverse_items is None:
            raise ValueError(
                f"the registry does not store the reverse-keyed items of {ins.name}; pass "
                "reverse=[<item columns>] (or reverse=[] if none are reverse keyed)"
            )
        flip = [items[i - 1] for i in ins.reverse_items]
    if flip:
        if ins is not None:
            low, high = ins.item_min, ins.item_max
        else:  # as psych::alpha: the observed range of all items
            low, high = np.nanmin(block.to_numpy()), np.nanmax(block.to_numpy())
        block[flip] = low + high - block[flip]
    scales = {ins.name if ins is not None else "scale": items}
    if ins is not None and subscales:
        for sub, members in ins.subscales.items():
            scales[f"{ins.name}_{sub}"] = [items[i - 1] for i in members]
    return block, scales


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
    ci: float = 0.95,
    by_item: bool = False,
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
    ci : float, default 0.95
        Confidence level.
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
    level = _check_level(ci)
    block, scales = _scales(data, items, instrument, reverse, subscales)
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
# ICC
# ---------------------------------------------------------------------------------------


def _wide_ratings(
    data: pd.DataFrame,
    raters: Sequence[str] | None,
    target: str | None,
    rater: str | None,
    rating: str | None,
) -> tuple[pd.DataFrame, int]:
    """Targets x raters table; rows with a missing rating are dropped and counted."""
    frame = require_frame(data)
    if any(v is not None for v in (target, rater, rating)):
        if None in (target, rater, rating):
            raise ValueError("long-format ratings need all of target=, rater= and rating=")
        require_columns(frame, target=target, rater=rater, rating=rating)
        dupes = frame.duplicated([target, rater])
        if dupes.any():
            raise ValueError(
                f"{int(dupes.sum())} target x rater pairs appear more than once "
                f"({format_rows(frame.index[dupes])}); keep one rating per pair"
            )
        wide = frame.pivot(index=target, columns=rater, values=rating)
    else:
        if raters is None:
            raters = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        require_columns(frame, **{f"rater {i}": c for i, c in enumerate(raters, start=1)})
        wide = frame[list(raters)]
    wide = _numeric_block(wide, list(wide.columns), "ratings")
    complete = wide.notna().all(axis=1)
    return wide[complete], int((~complete).sum())


def icc(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    target: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Intraclass correlations in the six forms of Shrout & Fleiss (1979).

    Mirrors ``psych::ICC(x, lmer = FALSE)``: mean squares from the two-way ANOVA of a
    complete targets x raters table, F tests, and the confidence intervals of Shrout &
    Fleiss (ICC2 with the Satterthwaite-type df of their eq. 11-12).

    Parameters
    ----------
    data : pandas.DataFrame
        Wide (one row per target, one column per rater) or long (pass ``target``,
        ``rater`` and ``rating`` column names).
    raters : list of str, optional
        Rater columns of wide data; by default every numeric column.
    target, rater, rating : str, optional
        Column names of long data.
    ci : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Six rows (ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k) with type, description, icc,
        f, df1, df2, p, ci_low, ci_high, n_targets, n_raters and n_dropped (targets
        with a missing rating, left out).

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> sf = pd.DataFrame({"j1": [9, 6, 8, 7, 10, 6], "j2": [2, 1, 4, 1, 5, 2],
    ...                    "j3": [5, 3, 6, 2, 6, 4], "j4": [8, 2, 8, 6, 9, 7]})
    >>> out = alliance.reliability.icc(sf)
    >>> out.set_index("type")["icc"].round(2).tolist()
    [0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
    """
    level = _check_level(ci)
    wide, n_dropped = _wide_ratings(data, raters, target, rater, rating)
    x = wide.to_numpy()
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError(
            f"ICC needs at least 2 targets with complete ratings from at least 2 raters; got "
            f"{n} complete targets x {k} raters ({n_dropped} targets dropped for missing ratings)"
        )
    grand = x.mean()
    ss_b = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_j = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_e = ((x - grand) ** 2).sum() - ss_b - ss_j
    msb, msj = ss_b / (n - 1), ss_j / (k - 1)
    mse = ss_e / ((n - 1) * (k - 1))
    msw = (ss_j + ss_e) / (n * (k - 1))
    a = 1 - level
    icc1 = (msb - msw) / (msb + (k - 1) * msw)
    icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
    icc3 = (msb - mse) / (msb + (k - 1) * mse)
    f11, df11 = msb / msw, (n - 1, n * (k - 1))
    f21, df21 = msb / mse, (n - 1, (n - 1) * (k - 1))
    p11, p21 = stats.f.sf(f11, *df11), stats.f.sf(f21, *df21)
    f1l = f11 / stats.f.ppf(1 - a / 2, *df11)
    f1u = f11 * stats.f.ppf(1 - a / 2, df11[1], df11[0])
    f3l = f21 / stats.f.ppf(1 - a / 2, *df21)
    f3u = f21 * stats.f.ppf(1 - a / 2, df21[1], df21[0])
    fj = msj / mse
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f2u, f2l = stats.f.ppf(1 - a / 2, n - 1, v), stats.f.ppf(1 - a / 2, v, n - 1)
    denom = k * msj + (k * n - k - n) * mse
    l2 = n * (msb - f2u * mse) / (f2u * denom + n * msb)
    u2 = n * (f2l * msb - mse) / (denom + n * f2l * msb)
    table = pd.DataFrame(
        {
            "type": ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"],
            "description": [
                "single rater, absolute agreement, one-way random",
                "single rater, absolute agreement, two-way random",
                "single rater, consistency, two-way mixed",
                "mean of k raters, absolute agreement, one-way random",
                "mean of k raters, absolute agreement, two-way random",
                "mean of k raters, consistency, two-way mixed",
            ],
            "icc": [
                icc1,
                icc2,
                icc3,
                (msb - msw) / msb,
                (msb - mse) / (msb + (msj - mse) / n),
                (msb - mse) / msb,
            ],
            "f": [f11, f21, f21, f11, f21, f21],
            "df1": [df11[0], df21[0], df21[0], df11[0], df21[0], df21[0]],
            "df2": [df11[1], df21[1], df21[1], df11[1], df21[1], df21[1]],
            "p": [p11, p21, p21, p11, p21, p21],
            "ci_low": [
                (f1l - 1) / (f1l + k - 1),
                l2,
                (f3l - 1) / (f3l + k - 1),
                1 - 1 / f1l,
                l2 * k / (1 + l2 * (k - 1)),
                1 - 1 / f3l,
            ],
            "ci_high": [
                (f1u - 1) / (f1u + k - 1),
                u2,
                (f3u - 1) / (f3u + k - 1),
                1 - 1 / f1u,
                u2 * k / (1 + u2 * (k - 1)),
                1 - 1 / f3u,
            ],
        }
    )
    table["df1"] = table["df1"].astype(int)
    table["df2"] = table["df2"].astype(int)
    table["n_targets"], table["n_raters"], table["n_dropped"] = n, k, n_dropped
    return table


# ---------------------------------------------------------------------------------------
# multilevel reliability
# ---------------------------------------------------------------------------------------


def _balanced_cube(
    data: pd.DataFrame,
    items: Sequence[str] | None,
    client: str,
    session: str,
    instrument: str | _instruments.Instrument | None,
    reverse: Sequence[str] | None,
    drop_incomplete: bool,
) -> tuple[np.ndarray, dict[str, int]]:
    frame = require_columns(data, client=client, session=session)
    block, scales = _scales(frame, items, instrument, reverse, subscales=False)
    columns = next(iter(scales.values()))
    long = pd.concat([frame[[client, session]], block[columns]], axis=1)
    dupes = long.duplicated([client, session])
    if dupes.any():
        raise ValueError(
            f"{int(dupes.sum())} client x session pairs appear more than once "
            f"({format_rows(long.index[dupes])}); keep one questionnaire per session"
        )
    log = {"rows_dropped": 0, "clients_dropped": 0}
    incomplete = long[columns].isna().any(axis=1)
    times = np.sort(long[session].dropna().unique())
    per_client = long.loc[~incomplete].groupby(client)[session].nunique()
    full = per_client.index[per_client == len(times)]
    keep = long[client].isin(full) & ~incomplete
    if not keep.all():
        n_clients = long[client].nunique()
        if not drop_incomplete:
            raise ValueError(
                "multilevel reliability needs a balanced design (every client answering "
                f"every item at each of the {len(times)} sessions in the data, as the ANOVA "
                f"estimates require): {int(incomplete.sum())} rows have missing items and "
                f"{n_clients - len(full)} of {n_clients} clients lack some sessions. Keep "
                "the sessions most clients have (e.g. data[data.session <= 4]) and pass "
                "drop_incomplete=True to leave out the rest (they are counted in the result)"
            )
        log["rows_dropped"] = int((~keep).sum())
        log["clients_dropped"] = int(n_clients - len(full))
        long = long[keep]
    long = long.sort_values([client, session])
    n_clients, n_times = long[client].nunique(), len(times)
    if n_clients < 2 or n_times < 2:
        raise ValueError(
            f"multilevel reliability needs at least 2 complete clients and 2 sessions; "
            f"{n_clients} clients x {n_times} sessions remain"
        )
    cube = long[columns].to_numpy().reshape(n_clients, n_times, len(columns))
    return cube, log


def _crossed_components(y: np.ndarray) -> dict[str, float]:
    """ANOVA variance components of a balanced person x time x item design (psych aov)."""
    p, t, m = y.shape
    g = y.mean()
    yp, yt, yi = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    ypt, ypi, yti = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    ms_p = t * m * ((yp - g) ** 2).sum() / (p - 1)
    ms_t = p * m * ((yt - g) ** 2).sum() / (t - 1)
    ms_i = p * t * ((yi - g) ** 2).sum() / (m - 1)
    ms_pt = m * ((ypt - yp[:, None] - yt[None, :] + g) ** 2).sum() / ((p - 1) * (t - 1))
    ms_pi = t * ((ypi - yp[:, None] - yi[None, :] + g) ** 2).sum() / ((p - 1) * (m - 1))
    ms_ti = p * ((yti - yt[:, None] - yi[None, :] + g) ** 2).sum() / ((t - 1) * (m - 1))
    resid = (
        y
        - ypt[:, :, None]
        - ypi[:, None, :]
        - yti[None, :, :]
        + yp[:, None, None]
        + yt[None, :, None]
        + yi[None, None, :]
        - g
    )
    ms_e = (resid**2).sum() / ((p - 1) * (t - 1) * (m - 1))
    return {
        "client": (ms_p - ms_pt - ms_pi + ms_e) / (t * m),
        "session": (ms_t - ms_pt - ms_ti + ms_e) / (p * m),
        "item": (ms_i - ms_pi - ms_ti + ms_e) / (p * t),
        "client x session": (ms_pt - ms_e) / m,
        "client x item": (ms_pi - ms_e) / t,
        "session x item": (ms_ti - ms_e) / p,
        "residual": ms_e,
    }


def _nested_components(y: np.ndarray) -> dict[str, float]:
    """Balanced ANOVA (= REML when non-negative) of sessions nested in clients."""
    p, t, m = y.shape
    g = y.mean()
    yp, ypt = y.mean(axis=(1, 2)), y.mean(axis=2)
    ms_p = t * m * ((yp - g) ** 2).sum() / (p - 1)
    ms_pt = m * ((ypt - yp[:, None]) ** 2).sum() / (p * (t - 1))
    ms_e = ((y - ypt[:, :, None]) ** 2).sum() / (p * t * (m - 1))
    return {
        "client": (ms_p - ms_pt) / (t * m),
        "session within client": (ms_pt - ms_e) / m,
        "residual": ms_e,
    }


def multilevel_reliability(
    data: pd.DataFrame,
    items: Sequence[str] | None = None,
    client: str = "client",
    session: str = "session",
    *,
    instrument: str | _instruments.Instrument | None = None,
    reverse: Sequence[str] | None = None,
    drop_incomplete: bool = False,
) -> pd.DataFrame:
    """Reliability of between-client differences and of within-client change.

    Generalizability-theory coefficients of Shrout & Lane (2012), computed as
    ``psych::multilevel.reliability`` does with its default ``aov = TRUE``: variance
    components of the crossed client x session x item design from the balanced
    three-way ANOVA, and, for the nested coefficients, of sessions nested in clients
    (balanced ANOVA, equal to REML/lme when no component is negative).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session, items in columns.
    items : list of str, optional
        Item columns; by default the instrument's items.
    client, session : str
        Column names of the client and the session (time point).
    instrument : str or Instrument, optional
        Registry instrument (items and reverse keys).
    reverse : list of str, optional
        Item columns to reverse, overriding the registry.
    drop_incomplete : bool, default False
        The estimates need a balanced design. By default an unbalanced input raises an
        error; with ``True`` rows with missing items and clients without every session
        are left out and counted (``rows_dropped``, ``clients_dropped``).

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``kind`` ("reliability" or "variance component"),
        ``quantity`` (RkF, R1R, RkR, Rc, RkRn, Rcn, then the components), estimate,
        share (of the total variance, for components), description, n_clients,
        n_sessions, n_items, rows_dropped, clients_dropped.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> early = study.sessions[study.sessions["session"] <= 4]
    >>> out = alliance.reliability.multilevel_reliability(
    ...     early, instrument="wai_sr", drop_incomplete=True)
    >>> out.loc[out["kind"] == "reliability", "quantity"].tolist()
    ['RkF', 'R1R', 'RkR', 'Rc', 'RkRn', 'Rcn']
    """
    y, log = _balanced_cube(data, items, client, session, instrument, reverse, drop_incomplete)
    p, t, m = y.shape
    c = _crossed_components(y)
    n = _nested_components(y)
    between = c["client"] + c["client x item"] / m
    rel = {
        "RkF": (
            between / (between + c["residual"] / (t * m)),
            "between-client differences, average of all sessions and items (fixed sessions)",
        ),
        "R1R": (
            between / (between + c["session"] + c["client x session"] + c["residual"] / m),
            "between-client differences at a single session, all items (random sessions)",
        ),
        "RkR": (
            between
            / (between + c["session"] / t + c["client x session"] / t + c["residual"] / (t * m)),
            "between-client differences, average of sessions, all items (random sessions)",
        ),
        "Rc": (
            c["client x session"] / (c["client x session"] + c["residual"] / m),
            "within-client change over sessions (fixed sessions and items)",
        ),
        "RkRn": (
            n["client"] / (n["client"] + n["session within client"] / t + n["residual"] / (t * m)),
            "between-client differences averaged over sessions (sessions nested in clients)",
        ),
        "Rcn": (
            n["session within client"] / (n["session within client"] + n["residual"] / m),
            "within-client variation averaged over items (sessions nested in clients)",
        ),
    }
    rows = [
        {"kind": "reliability", "quantity": q, "estimate": v, "share": np.nan, "description": d}
        for q, (v, d) in rel.items()
    ]
    total_c, total_n = sum(c.values()), sum(n.values())
    rows += [
        {
            "kind": "variance component",
            "quantity": name,
            "estimate": v,
            "share": v / total_c,
            "description": "crossed client x session x item ANOVA",
        }
        for name, v in c.items()
    ]
    rows += [
        {
            "kind": "variance component",
            "quantity": f"nested: {name}",
            "estimate": v,
            "share": v / total_n,
            "description": "sessions nested in clients, balanced ANOVA",
        }
        for name, v in n.items()
    ]
    out = pd.DataFrame(rows)
    out["n_clients"], out["n_sessions"], out["n_items"] = p, t, m
    out["rows_dropped"], out["clients_dropped"] = log["rows_dropped"], log["clients_dropped"]
    return out


# ---------------------------------------------------------------------------------------
# agreement between coders
# ---------------------------------------------------------------------------------------


def _coder_block(
    data: pd.DataFrame, raters: Sequence[str] | None, minimum: int = 2
) -> pd.DataFrame:
    frame = require_frame(data)
    if raters is None:
        raters = list(frame.columns)
    raters = list(raters)
    if len(raters) < minimum:
        raise ValueError(f"need at least {minimum} coder columns, got {raters!r}")
    require_columns(frame, **{f"coder {i}": c for i, c in enumerate(raters, start=1)})
    return frame[raters]


def _weight_matrix(weights: str | np.ndarray | None, q: int) -> np.ndarray:
    if weights is None or (isinstance(weights, str) and weights == "none"):
        return np.eye(q)
    if isinstance(weights, str):
        dist = np.abs(np.subtract.outer(np.arange(q), np.arange(q))) / max(q - 1, 1)
        if weights == "quadratic":
            return 1 - dist**2
        if weights == "linear":
            return 1 - dist
        raise ValueError(
            f"weights must be 'quadratic', 'linear', None or a k x k matrix, got {weights!r}"
        )
    w = np.asarray(weights, dtype=float)
    if w.shape != (q, q):
        raise ValueError(f"a weight matrix must be {q} x {q} for {q} categories, got {w.shape}")
    return w


def cohen_kappa(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    weights: str | np.ndarray | None = "quadratic",
    levels: Sequence[object] | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Cohen's kappa and weighted kappa for two coders, as ``psych::cohen.kappa``.

    Asymptotic variances of Fleiss, Cohen & Everitt (1969); units missing a code are
    left out and counted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per coded unit (e.g. session segment), one column per coder.
    raters : list of str, optional
        The two coder columns; by default the first two columns.
    weights : {"quadratic", "linear", None} or array, default "quadratic"
        Agreement weights for the weighted kappa (psych's default is quadratic:
        ``1 - (i - j)^2 / (q - 1)^2``). Only meaningful for ordered categories.
    levels : list, optional
        The categories in order; by default the sorted codes seen.
    ci : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Rows "unweighted" and "weighted": statistic, estimate, se, ci_low, ci_high,
        n, n_dropped, observed agreement (``p_observed``) and chance (``p_chance``).

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"coder_a": ["none", "withdrawal", "none", "confrontation"],
    ...                       "coder_b": ["none", "withdrawal", "withdrawal", "confrontation"]})
    >>> out = alliance.reliability.cohen_kappa(codes, weights=None)
    >>> round(float(out.loc[0, "estimate"]), 3)
    0.636
    """
    level = _check_level(ci)
    block = _coder_block(data, raters)
    if raters is None:
        block = block.iloc[:, :2]
    if block.shape[1] != 2:
        raise ValueError("cohen_kappa takes two coders; use fleiss_kappa or agreement for more")
    complete = block.notna().all(axis=1)
    block = block[complete]
    if levels is None:
        levels = sorted(pd.unique(block.to_numpy().ravel()).tolist())
    levels = list(levels)
    unknown = set(block.to_numpy().ravel().tolist()) - set(levels)
    if unknown:
        raise ValueError(f"codes {sorted(map(str, unknown))} are not in levels=")
    q = len(levels)
    a = pd.Categorical(block.iloc[:, 0], categories=levels).codes
    b = pd.Categorical(block.iloc[:, 1], categories=levels).codes
    n = len(a)
    if n == 0 or q < 2:
        raise ValueError("cohen_kappa needs coded units with at least 2 categories in use")
    x = np.zeros((q, q))
    np.add.at(x, (a, b), 1.0)
    x /= n
    rs, cs = x.sum(axis=1), x.sum(axis=0)
    po, pc = np.trace(x), rs @ cs
    kappa = (po - pc) / (1 - pc)
    term = (1 - pc) - (rs + cs) * (1 - po)
    off = np.add.outer(cs, rs) ** 2
    var_k = (
        np.sum(np.diag(x) * term**2)
        + (1 - po) ** 2 * (np.sum(x * off) - np.trace(x * off))
        - (po * pc - 2 * pc + po) ** 2
    ) / (n * (1 - pc) ** 4)
    w = _weight_matrix(weights, q)
    wpo, wpc = np.sum(w * x), np.sum(w * np.outer(rs, cs))
    wkappa = (wpo - wpc) / (1 - wpc)
    w_row = w @ cs  # mean weight of row category i over the column margin
    w_col = rs @ w  # mean weight of column category j over the row margin
    var_w = (
        np.sum(x * (w * (1 - wpc) - np.add.outer(w_row, w_col) * (1 - wpo)) ** 2)
        - (wpo * wpc - 2 * wpc + wpo) ** 2
    ) / (n * (1 - wpc) ** 4)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for label, est, var in (("unweighted", kappa, var_k), ("weighted", wkappa, var_w)):
        se = np.sqrt(max(var, 0.0))
        rows.append(
            {
                "statistic": label,
                "estimate": est,
                "se": se,
                "ci_low": max(est - z * se, -1.0),
                "ci_high": min(est + z * se, 1.0),
                "n": n,
                "n_dropped": int((~complete).sum()),
                "p_observed": po if label == "unweighted" else wpo,
                "p_chance": pc if label == "unweighted" else wpc,
            }
        )
    return pd.DataFrame(rows)


def fleiss_kappa(
    data: pd.DataFrame, raters: Sequence[str] | None = None, *, ci: float = 0.95
) -> pd.DataFrame:
    """Fleiss' kappa for three or more coders of nominal categories (Fleiss 1971).

    The standard error is the one under the null hypothesis of chance agreement (Fleiss,
    Nee & Landis 1979), used for the z test; no confidence interval is given because no
    closed-form non-null variance exists. Units missing a code are left out and counted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit, one column per coder.
    raters : list of str, optional
        Coder columns; by default all columns.
    ci : float, default 0.95
        Unused for the estimate; kept for a uniform signature.

    Returns
    -------
    pandas.DataFrame
        One row: statistic, estimate, se (under H0), z, p, n, n_raters, n_dropped,
        p_observed, p_chance.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": [0, 1, 2, 0, 0, 1], "b": [0, 1, 2, 0, 1, 1],
    ...                       "c": [0, 1, 1, 0, 0, 1]})
    >>> round(float(alliance.reliability.fleiss_kappa(codes)["estimate"].iloc[0]), 3)
    0.625
    """
    _check_level(ci)
    block = _coder_block(data, raters)
    complete = block.notna().all(axis=1)
    block = block[complete]
    levels = sorted(pd.unique(block.to_numpy().ravel()).tolist())
    n_units, n_raters = block.shape
    if n_units < 2 or len(levels) < 2:
        raise ValueError("fleiss_kappa needs at least 2 complete units and 2 categories in use")
    codes = np.column_stack(
        [pd.Categorical(block[c], categories=levels).codes for c in block.columns]
    )
    counts = np.zeros((n_units, len(levels)))
    np.add.at(counts, (np.repeat(np.arange(n_units), n_raters), codes.ravel()), 1.0)
    p_j = counts.sum(axis=0) / (n_units * n_raters)
    p_i = ((counts**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1))
    po, pe = p_i.mean(), (p_j**2).sum()
    kappa = (po - pe) / (1 - pe)
    pq = p_j * (1 - p_j)
    se0 = (
        np.sqrt(2)
        / (pq.sum() * np.sqrt(n_units * n_raters * (n_raters - 1)))
        * np.sqrt(pq.sum() ** 2 - np.sum(pq * (1 - 2 * p_j)))
    )
    z = kappa / se0
    return pd.DataFrame(
        [
            {
                "statistic": "fleiss",
                "estimate": kappa,
                "se": se0,
                "z": z,
                "p": 2 * stats.norm.sf(abs(z)),
                "n": n_units,
                "n_raters": n_raters,
                "n_dropped": int((~complete).sum()),
                "p_observed": po,
                "p_chance": pe,
            }
        ]
    )


def krippendorff_alpha(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    level: str = "nominal",
    n_boot: int = 0,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Krippendorff's alpha for any number of coders, with missing codes allowed.

    Computed with the ``krippendorff`` package; optional percentile bootstrap interval
    over units.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit, one column per coder; missing codes are allowed.
    raters : list of str, optional
        Coder columns; by default all columns.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.
    n_boot : int, default 0
        Bootstrap resamples of units for the interval (0: no interval).
    ci : float, default 0.95
        Confidence level of the bootstrap interval.
    seed : int or numpy.random.Generator, optional
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row: statistic, level, estimate, ci_low, ci_high, n (units with at least
        two codes), n_raters.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": ["w", "c", "w", None], "b": ["w", "c", "c", "w"],
    ...                       "c": ["w", "c", "w", "w"]})
    >>> round(float(alliance.reliability.krippendorff_alpha(codes)["estimate"].iloc[0]), 3)
    0.643
    """
    import krippendorff

    conf = _check_level(ci)
    levels_ok = ("nominal", "ordinal", "interval", "ratio")
    if level not in levels_ok:
        raise ValueError(f"level must be one of {', '.join(levels_ok)}, got {level!r}")
    block = _coder_block(data, raters)
    values = block.to_numpy(dtype=object)
    present = pd.notna(values)
    if level == "nominal" or not all(
        pd.api.types.is_numeric_dtype(block[c]) for c in block.columns
    ):
        if level in ("interval", "ratio"):
            raise ValueError(f"level={level!r} needs numeric codes")
        cats = sorted(pd.unique(values[present]).tolist(), key=str)
        lookup = {c: i for i, c in enumerate(cats)}
        numeric = np.full(values.shape, np.nan)
        numeric[present] = [lookup[v] for v in values[present]]
    else:
        numeric = block.to_numpy(dtype=float)
    usable = (~np.isnan(numeric)).sum(axis=1) >= 2
    matrix = numeric[usable]
    if len(matrix) < 2:
        raise ValueError("krippendorff_alpha needs at least 2 units coded by at least 2 coders")

    def estimate(m: np.ndarray) -> float:
        return float(krippendorff.alpha(reliability_data=m.T, level_of_measurement=level))

    est = estimate(matrix)
    low = high = np.nan
    if n_boot:
        rng = np.random.default_rng(seed)
        draws = [estimate(matrix[rng.integers(0, len(matrix), len(matrix))]) for _ in range(n_boot)]
        low, high = np.nanquantile(draws, [0.5 - conf / 2, 0.5 + conf / 2])
    return pd.DataFrame(
        [
            {
                "statistic": "krippendorff_alpha",
                "level": level,
                "estimate": est,
                "ci_low": low,
                "ci_high": high,
                "n": int(len(matrix)),
                "n_raters": block.shape[1],
            }
        ]
    )


def agreement(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    level: str = "nominal",
    weights: str | np.ndarray | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Agreement between rupture coders: percent agreement, kappas, Krippendorff's alpha.

    With two coders: Cohen's kappa (and the weighted kappa when ``weights`` is given);
    with more: Fleiss' kappa and the mean of pairwise Cohen's kappas (as psych does).
    Krippendorff's alpha for any number of coders at the given ``level``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per coded unit, one column per coder.
    raters : list of str, optional
        Coder columns; by default all columns.
    level : str, default "nominal"
        Level of measurement for Krippendorff's alpha.
    weights : {"quadratic", "linear"} or array, optional
        Add a weighted Cohen's kappa (two coders, ordered codes).
    ci : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per statistic: statistic, estimate, se, ci_low, ci_high, p, n,
        n_raters.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": ["none", "withdrawal", "none", "confrontation", "none"],
    ...                       "b": ["none", "withdrawal", "withdrawal", "confrontation", "none"]})
    >>> alliance.reliability.agreement(codes)["statistic"].tolist()
    ['percent_agreement', 'cohen_kappa', 'krippendorff_alpha']
    """
    block = _coder_block(data, raters)
    k = block.shape[1]
    complete = block.notna().all(axis=1)
    agree = block[complete].nunique(axis=1) == 1
    rows: list[dict[str, object]] = [
        {"statistic": "percent_agreement", "estimate": float(agree.mean()), "n": int(len(agree))}
    ]
    if k == 2:
        ck = cohen_kappa(block, weights=weights, ci=ci)
        wanted = ["unweighted"] + (["weighted"] if weights is not None else [])
        for _, r in ck[ck["statistic"].isin(wanted)].iterrows():
            rows.append(
                {
                    "statistic": "cohen_kappa"
                    if r["statistic"] == "unweighted"
                    else "weighted_kappa",
                    **r[["estimate", "se", "ci_low", "ci_high", "n"]].to_dict(),
                }
            )
    else:
        fk = fleiss_kappa(block).iloc[0]
        rows.append({"statistic": "fleiss_kappa", **fk[["estimate", "se", "p", "n"]].to_dict()})
        pairs = [
            cohen_kappa(block[[a, b]], weights=None, ci=ci).iloc[0]["estimate"]
            for i, a in enumerate(block.columns)
            for b in block.columns[i + 1 :]
        ]
        rows.append(
            {
                "statistic": "mean_pairwise_cohen_kappa",
                "estimate": float(np.mean(pairs)),
                "n": int(complete.sum()),
            }
        )
    ka = krippendorff_alpha(block, level=level, ci=ci).iloc[0]
    rows.append({"statistic": "krippendorff_alpha", **ka[["estimate", "n"]].to_dict()})
    out = pd.DataFrame(rows)
    for col in ("se", "ci_low", "ci_high", "p"):
        if col not in out:
            out[col] = np.nan
    out["n_raters"] = k
    return out[["statistic", "estimate", "se", "ci_low", "ci_high", "p", "n", "n_raters"]]
