"""Observer-coded ruptures: the Rupture Resolution Rating System (3RS) at session level.

The 3RS (Eubanks, Muran & Safran 2015; validation: Eubanks, Lubitz, Muran & Safran 2019)
has trained observers code recorded sessions segment by segment (5-minute segments in
the manual) for withdrawal and confrontation rupture markers, rate each rupture's
significance (1-5), and note the therapist's resolution strategies with a rating of how
well the rupture was resolved (1-5). A study holds these codes in its ``segments`` table
(one row per coder x segment x marker, see :class:`alliance.Study`) and the coding
assignments in its ``coders`` table.

* :func:`aggregate_segments` makes session-level scores (counts, presence, mean
  significance, mean resolution) by a rule stated in its docstring;
* :func:`coder_reliability` gives inter-coder reliability per marker type (ICC and
  kappa, from :mod:`alliance.reliability`), at segment or session level.

Session-level observer ruptures can then enter the events table
(:func:`as_events`), beside self-reported and detected ruptures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance._checks import renamed, require_columns, require_frame
from alliance.reliability import cohen_kappa, fleiss_kappa, g_study, icc
from alliance.study import Study, marker_type

__all__ = ["RULES", "aggregate_segments", "as_events", "coder_reliability"]

#: How presence is combined over coders in :func:`aggregate_segments`.
RULES = ("majority", "any", "all")
_TYPES = ("withdrawal", "confrontation")


def _segments_of(segments: pd.DataFrame | Study) -> pd.DataFrame:
    if isinstance(segments, Study):
        segments = segments.segments
    frame = require_frame(segments)
    if frame.empty:
        raise ValueError(
            "the segments table is empty: observer codes go in a segments table "
            "(client, session, segment, coder, marker, significance, ...; see alliance.Study)"
        )
    return frame


def _coded(
    frame: pd.DataFrame,
    *,
    client: str,
    session: str,
    segment: str,
    coder: str,
    marker: str,
    significance: str,
    resolution: str,
    min_significance: float,
) -> pd.DataFrame:
    """One row per coder x segment: which marker types count, their significance, resolution."""
    require_columns(frame, table="segments", client=client, session=session)
    require_columns(frame, table="segments", segment=segment, coder=coder, marker=marker)
    text = frame[marker].astype("string").str.strip().str.lower()
    kind = text.map(lambda v: marker_type(v) if isinstance(v, str) else None)
    unknown = text.notna() & (text != "") & kind.isna()
    if unknown.any():
        values = text[unknown].unique().tolist()[:4]
        raise ValueError(
            f"{int(unknown.sum())} segment rows have unknown rupture markers {values}; "
            "use the 3RS names of alliance.study.RUPTURE_MARKERS (alliance.validate lists "
            "the rows)"
        )
    sig = (
        pd.to_numeric(frame[significance], errors="coerce")
        if significance in frame.columns
        else pd.Series(np.nan, index=frame.index)
    )
    res = (
        pd.to_numeric(frame[resolution], errors="coerce")
        if resolution in frame.columns
        else pd.Series(np.nan, index=frame.index)
    )
    has = kind.notna()
    counts = has & (sig >= min_significance) if min_significance > 1 else has
    counts = counts.fillna(False).astype(bool) | (has & sig.isna() & (min_significance <= 1))
    rows = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": frame[session].to_numpy(),
            "coder": frame[coder].to_numpy(),
            "segment": frame[segment].to_numpy(),
            "withdrawal": (counts & kind.eq("withdrawal")).to_numpy(bool),
            "confrontation": (counts & kind.eq("confrontation")).to_numpy(bool),
            "significance": sig.where(counts).to_numpy(float),
            "resolution": res.where(counts).to_numpy(float),
        }
    )
    per = rows.groupby(["client", "session", "coder", "segment"], sort=True, dropna=False).agg(
        withdrawal=("withdrawal", "any"),
        confrontation=("confrontation", "any"),
        significance=("significance", "max"),
        resolution=("resolution", "max"),
    )
    per["rupture"] = per["withdrawal"] | per["confrontation"]
    return per.reset_index()


def aggregate_segments(
    segments: pd.DataFrame | Study,
    *,
    rule: str = "majority",
    min_significance: float = 1,
    by_coder: bool = False,
    client: str = "client",
    session: str = "session",
    segment: str = "segment",
    coder: str = "coder",
    marker: str = "marker",
    significance: str = "significance",
    resolution: str = "resolution",
) -> pd.DataFrame:
    """Session-level scores from 3RS segment codes (Eubanks, Muran & Safran 2015).

    The rule, step by step:

    1. **A marker counts** when its significance is at least ``min_significance``; a
       marker without a significance rating counts only when ``min_significance`` is 1
       (the default: every coded marker counts). Rows without a marker are coded
       segments in which nothing was seen.
    2. **Per coder and segment**: the segment has a withdrawal (confrontation) rupture
       when at least one counted withdrawal (confrontation) marker is coded in it, and a
       rupture when it has either. Its significance is the highest significance of its
       counted markers, its resolution the highest resolution rating among them.
    3. **Per coder and session**: ``n_segments`` is the number of segments the coder
       coded; ``withdrawal_segments``, ``confrontation_segments`` and
       ``rupture_segments`` count the segments with such a rupture; ``rupture`` is true
       when ``rupture_segments > 0``; ``mean_significance`` and ``mean_resolution`` are
       the means over the rupture segments that have the rating (missing when none has).
    4. **Over coders** (unless ``by_coder``): counts and means are averaged over the
       session's coders (means over the coders that have a value), so two coders who
       saw 1 and 2 rupture segments give 1.5; presence (``withdrawal``,
       ``confrontation``, ``rupture``) is combined by ``rule``: ``"majority"`` (at least
       half of the coders saw it; with two coders, either), ``"any"`` or ``"all"``.
       ``rupture_share`` is the share of coders who saw a rupture.

    Parameters
    ----------
    segments : pandas.DataFrame or Study
        The segments table (or a study holding one): one row per coder x segment x
        marker, see :class:`alliance.Study`.
    rule : {"majority", "any", "all"}, default "majority"
        How presence is combined over coders (step 4).
    min_significance : float, default 1
        Lowest significance (1-5) for a marker to count (step 1).
    by_coder : bool, default False
        Return one row per coder x session (steps 1-3 only).
    client, session, segment, coder, marker, significance, resolution : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per client x session (x coder with ``by_coder``): client, session,
        [coder,] n_coders, n_segments, withdrawal_segments, confrontation_segments,
        rupture_segments, withdrawal, confrontation, rupture, [rupture_share,]
        mean_significance, mean_resolution. Sessions are those coded; a session a coder
        coded without seeing a rupture has zero counts.

    Examples
    --------
    >>> import alliance
    >>> from alliance.observer import aggregate_segments
    >>> study = alliance.datasets.load_dataset("dyads")
    >>> by_session = aggregate_segments(study.segments)
    >>> by_session.columns.tolist()[:5]
    ['client', 'session', 'n_coders', 'n_segments', 'withdrawal_segments']
    >>> bool(by_session["rupture"].mean() < 0.9)
    True
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}; got {rule!r}")
    if not isinstance(min_significance, int | float) or not 1 <= min_significance <= 5:
        raise ValueError(f"min_significance must be a number from 1 to 5, got {min_significance!r}")
    frame = _segments_of(segments)
    per = _coded(
        frame,
        client=client,
        session=session,
        segment=segment,
        coder=coder,
        marker=marker,
        significance=significance,
        resolution=resolution,
        min_significance=min_significance,
    )
    sig_rupture = per["significance"].where(per["rupture"])
    res_rupture = per["resolution"].where(per["rupture"])
    per = per.assign(_sig=sig_rupture, _res=res_rupture)
    coder_level = (
        per.groupby(["client", "session", "coder"], sort=True, dropna=False)
        .agg(
            n_segments=("segment", "nunique"),
            withdrawal_segments=("withdrawal", "sum"),
            confrontation_segments=("confrontation", "sum"),
            rupture_segments=("rupture", "sum"),
            mean_significance=("_sig", "mean"),
            mean_resolution=("_res", "mean"),
        )
        .reset_index()
    )
    for col in ("withdrawal", "confrontation", "rupture"):
        coder_level[col] = coder_level[f"{col}_segments"] > 0
    order = [
        "client",
        "session",
        "coder",
        "n_segments",
        "withdrawal_segments",
        "confrontation_segments",
        "rupture_segments",
        "withdrawal",
        "confrontation",
        "rupture",
        "mean_significance",
        "mean_resolution",
    ]
    coder_level = coder_level[order]
    if by_coder:
        return coder_level.reset_index(drop=True)
    grouped = coder_level.groupby(["client", "session"], sort=True, dropna=False)
    out = grouped.agg(
        n_coders=("coder", "nunique"),
        n_segments=("n_segments", "mean"),
        withdrawal_segments=("withdrawal_segments", "mean"),
        confrontation_segments=("confrontation_segments", "mean"),
        rupture_segments=("rupture_segments", "mean"),
        rupture_share=("rupture", "mean"),
        mean_significance=("mean_significance", "mean"),
        mean_resolution=("mean_resolution", "mean"),
    )
    for col in ("withdrawal", "confrontation", "rupture"):
        share = grouped[col].mean()
        out[col] = {"majority": share >= 0.5, "any": share > 0, "all": share >= 1}[rule]
    out = out.reset_index()
    return out[
        [
            "client",
            "session",
            "n_coders",
            "n_segments",
            "withdrawal_segments",
            "confrontation_segments",
            "rupture_segments",
            "withdrawal",
            "confrontation",
            "rupture",
            "rupture_share",
            "mean_significance",
            "mean_resolution",
        ]
    ]


def coder_reliability(
    segments: pd.DataFrame | Study,
    *,
    unit: str | None = None,
    min_significance: float = 1,
    level: float | None = None,
    g_coders: int | None = None,
    client: str = "client",
    session: str = "session",
    segment: str = "segment",
    coder: str = "coder",
    marker: str = "marker",
    significance: str = "significance",
    resolution: str = "resolution",
    ci: float | None = None,
) -> pd.DataFrame:
    """Inter-coder reliability of 3RS codes per marker type (withdrawal, confrontation, any).

    The units are the segments (``unit="segment"``) or the sessions
    (``unit="session"``) that every coder coded; a unit some coder did not code is left
    out and counted in ``n_dropped``. The score of a unit for one coder is, at segment
    level, the rupture's significance (0 when that coder saw no such rupture in the
    segment, the highest significance of the counted markers otherwise, see
    :func:`aggregate_segments`), and at session level the number of segments with such a
    rupture. Presence (score > 0) is the category for kappa.

    * ``ICC1`` and ``ICC2``: single-coder intraclass correlations (one-way random;
      two-way random, absolute agreement) from :func:`alliance.reliability.icc`
      (Shrout & Fleiss 1979) on the scores;
    * ``kappa``: Cohen's unweighted kappa of presence for two coders
      (:func:`alliance.reliability.cohen_kappa`), Fleiss' kappa for more
      (:func:`alliance.reliability.fleiss_kappa`, no confidence interval).

    Parameters
    ----------
    segments : pandas.DataFrame or Study
        The segments table, or a study holding one.
    unit : {"segment", "session"}, default "segment"
        The unit of reliability (formerly ``level=``, still accepted with a warning).
    min_significance : float, default 1
        Lowest significance for a marker to count (as in :func:`aggregate_segments`).
    level : float, default 0.95
        Confidence level (formerly ``ci=``, still accepted with a warning).
    g_coders : int, optional
        Coders per unit in the D-study of the ``G`` and ``phi`` rows (default: no G-study).
    client, session, segment, coder, marker, significance, resolution : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per marker type x statistic: marker (withdrawal, confrontation,
        rupture), unit, statistic (ICC1, ICC2, kappa, G, phi), estimate, ci_low,
        ci_high, n_units, n_coders, n_dropped.

    Examples
    --------
    >>> import alliance
    >>> from alliance.observer import coder_reliability
    >>> study = alliance.datasets.load_dataset("dyads")
    >>> rel = coder_reliability(study.segments, unit="session")
    >>> rel["statistic"].unique().tolist()
    ['ICC1', 'ICC2', 'kappa']
    >>> first = study.segments[study.segments["client"].isin(["C001", "C002", "C003"])]
    >>> with_g = coder_reliability(first, unit="session", g_coders=2)
    >>> with_g["statistic"].unique().tolist()
    ['ICC1', 'ICC2', 'kappa', 'G', 'phi']
    """
    if g_coders is not None and (not isinstance(g_coders, int) or g_coders < 1):
        raise ValueError(f"g_coders must be a positive number of coders or None, got {g_coders!r}")
    if isinstance(level, str):  # the former name of unit=
        unit = renamed("coder_reliability", "level", level, "unit", unit)
        level = None
    level = renamed("coder_reliability", "ci", ci, "level", level, default=0.95)
    unit = "segment" if unit is None else unit
    if unit not in ("segment", "session"):
        raise ValueError(f"unit must be 'segment' or 'session', got {unit!r}")
    frame = _segments_of(segments)
    per = _coded(
        frame,
        client=client,
        session=session,
        segment=segment,
        coder=coder,
        marker=marker,
        significance=significance,
        resolution=resolution,
        min_significance=min_significance,
    )
    n_coders = per["coder"].nunique()
    if n_coders < 2:
        raise ValueError(
            f"inter-coder reliability needs at least 2 coders; the segments name {n_coders}"
        )
    units = ["client", "session"] + (["segment"] if unit == "segment" else [])
    rows = []
    for kind in (*_TYPES, "rupture"):
        if unit == "segment":
            score = per["significance"].where(per[kind], 0.0)
            # a rupture seen without a significance rating has no score
            values = per.assign(_score=score)
        else:
            values = (
                per.groupby(["client", "session", "coder"], sort=True, dropna=False)[kind]
                .sum()
                .rename("_score")
                .reset_index()
            )
        wide = values.set_index([*units, "coder"])["_score"].unstack("coder")
        n_total = len(wide)
        complete = wide.dropna()
        n_dropped = n_total - len(complete)
        if len(complete) < 2:
            raise ValueError(
                f"fewer than 2 {unit}s were coded by all {n_coders} coders; reliability "
                "needs units that every coder coded (pass a subset of coders)"
            )
        table = icc(complete, raters=list(complete.columns), level=level).set_index("type")
        for stat in ("ICC1", "ICC2"):
            rows.append(
                {
                    "marker": kind,
                    "unit": unit,
                    "statistic": stat,
                    "estimate": float(table.loc[stat, "icc"]),
                    "ci_low": float(table.loc[stat, "ci_low"]),
                    "ci_high": float(table.loc[stat, "ci_high"]),
                    "n_units": len(complete),
                    "n_coders": complete.shape[1],
                    "n_dropped": n_dropped,
                }
            )
        present = (complete > 0).astype(int)
        if np.unique(present.to_numpy()).size < 2:
            est, low, high = np.nan, np.nan, np.nan  # one category only: kappa undefined
        elif complete.shape[1] == 2:
            kap = cohen_kappa(present, weights=None, levels=[0, 1], level=level).iloc[0]
            est, low, high = float(kap["estimate"]), float(kap["ci_low"]), float(kap["ci_high"])
        else:
            est, low, high = float(fleiss_kappa(present)["estimate"].iloc[0]), np.nan, np.nan
        rows.append(
            {
                "marker": kind,
                "unit": unit,
                "statistic": "kappa",
                "estimate": est,
                "ci_low": low,
                "ci_high": high,
                "n_units": len(complete),
                "n_coders": complete.shape[1],
                "n_dropped": n_dropped,
            }
        )
        if g_coders is not None:
            rows.extend(_g_rows(values, kind, unit, g_coders, n_coders))
    return pd.DataFrame(rows)


def _g_rows(values: pd.DataFrame, kind: str, unit: str, g_coders: int, n_coders: int) -> list:
    """G and phi rows of :func:`coder_reliability` for one marker type."""
    long = values[["client", "session", *(["segment"] if unit == "segment" else [])]].copy()
    long = long.assign(coder=values["coder"].to_numpy(), score=values["_score"].to_numpy(float))
    long = long.dropna(subset=["score"])
    nested = {"session": "client"} | ({"segment": "session"} if unit == "segment" else {})
    units = long.drop_duplicates(["client", "session", *(["segment"] if unit == "segment" else [])])
    if long["score"].nunique() < 2:  # one value only: G and phi undefined, as the ICCs
        coef = pd.DataFrame({"g": [np.nan], "phi": [np.nan]})
    else:
        coef = g_study(
            long, score="score", facets=["coder"], object=unit, nested=nested, n=g_coders
        ).coefficients
    out = []
    for stat in ("g", "phi"):
        out.append(
            {
                "marker": kind,
                "unit": unit,
                "statistic": stat.upper() if stat == "g" else stat,
                "estimate": float(coef[stat].iloc[0]),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n_units": len(units),
                "n_coders": n_coders,
                "n_dropped": 0,
            }
        )
    return out


def as_events(
    sessions: pd.DataFrame,
    *,
    client: str = "client",
    session: str = "session",
) -> pd.DataFrame:
    """Observer ruptures as rows of the events table (``source="observer"``).

    Parameters
    ----------
    sessions : pandas.DataFrame
        The output of :func:`aggregate_segments` (one row per client x session).
    client, session : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        client, session, kind, resolved, source: one row per session and rupture type
        present; ``resolved`` is true when the mean resolution rating is at least 3,
        false below 3, missing when not rated.

    Examples
    --------
    >>> import alliance
    >>> from alliance.observer import aggregate_segments, as_events
    >>> study = alliance.datasets.load_dataset("dyads")
    >>> events = as_events(aggregate_segments(study.segments))
    >>> events["source"].unique().tolist()
    ['observer']
    """
    frame = require_frame(sessions)
    require_columns(frame, client=client, session=session, withdrawal="withdrawal")
    require_columns(frame, confrontation="confrontation", mean_resolution="mean_resolution")
    parts = []
    for kind in _TYPES:
        hit = frame[frame[kind].astype(bool)]
        res = hit["mean_resolution"]
        resolved = pd.array([pd.NA if pd.isna(v) else bool(v >= 3) for v in res], dtype="boolean")
        parts.append(
            pd.DataFrame(
                {
                    "client": hit[client].to_numpy(),
                    "session": hit[session].to_numpy(),
                    "kind": kind,
                    "resolved": resolved,
                    "source": "observer",
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["client", "session", "kind"], kind="stable").reset_index(drop=True)
