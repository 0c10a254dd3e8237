"""Reliability from variance components: intraclass correlations and multilevel reliability.

:func:`icc` follows ``psych::ICC(x, lmer = FALSE)`` (Shrout & Fleiss 1979);
:func:`multilevel_reliability` follows ``psych::multilevel.reliability`` (Shrout & Lane 2012).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from alliance import instruments as _instruments
from alliance._checks import format_rows, require_columns, require_frame
from alliance.reliability._common import check_level, keyed_scales, numeric_block

__all__ = ["icc", "multilevel_reliability"]


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
    wide = numeric_block(wide, list(wide.columns), "ratings")
    complete = wide.notna().all(axis=1)
    return wide[complete], int((~complete).sum())


def icc(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    target: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    level: float | None = None,
    ci: float | None = None,
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
    level : float, default 0.95
        Confidence level (formerly ``ci=``, still accepted with a warning).

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
    level = check_level("icc", level, ci)
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
    block, scales = keyed_scales(frame, items, instrument, reverse, subscales=False)
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
