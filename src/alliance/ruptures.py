"""Rupture and repair: detection from session-level alliance scores, and summaries.

Two published operational definitions are available in :func:`detect`:

``method="drop"``
    A rupture is a fall of the alliance from the client's previous rated session by at
    least the reliable-change size of the scale (Jacobson & Truax, 1991): a decline the
    scale's measurement error does not explain.
``method="dip"``
    A rupture is a session whose alliance lies more than ``threshold`` standard
    deviations below the mean of the client's *earlier* rated sessions, the low point of
    the V-shaped rupture-repair sequences of Stiles et al. (2004), who used 2 SD;
    Strauss et al. (2006) used a less strict 1 SD. Gumz et al. (2012) recommend
    comparing against the stricter of the client's own SD and the sample's within-client
    SD (``spread="stricter"``). The rule is prospective: the reference mean and the
    client's SD are running (past-only) estimates, so whether session n is a rupture
    depends only on sessions up to n and a collapse can be found in a 5-session course
    (with the whole-course mean and SD a single score among n can lie at most
    (n - 1) / sqrt(n) SDs below the mean). ``spread="pooled"`` uses the sample's pooled
    within-client SD, a property of the sample rather than of the client's future.
    The recovery that makes the V is not part of detection: it is judged as repair.

A rupture is repaired when the alliance returns to its pre-rupture level (the score
of the last rated session before the rupture, less ``tolerance``) within ``k``
sessions; the time to repair is reported. Detected events use the layout of
``study.events`` (client, session, kind, resolved, source) with ``source='detected'``
and extra columns (depth, method, pre_session, pre_level, nadir, repair_session,
sessions_to_repair), so they can be combined with self-reported or observer-coded
events (e.g. 3RS withdrawal and confrontation markers; Eubanks, Muran & Safran, 2015)
by :func:`combine` and summarized per client by :func:`summarize`.

References
----------
Eubanks, C. F., Muran, J. C., & Safran, J. D. (2015). Rupture Resolution Rating System
(3RS): Manual. Mount Sinai-Beth Israel Medical Center.

Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences -
considerations on the classification and assessment of breaches in the therapeutic
relationship. BMC Medical Research Methodology, 12, 10.

Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
Psychology, 59(1), 12-19.

Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies, R.,
Rees, A., & Barkham, M. (2004). Patterns of alliance development and the rupture-repair
hypothesis: Are productive relationships U-shaped or V-shaped? Journal of Counseling
Psychology, 51(1), 81-92.

Strauss, J. L., Hayes, A. M., Johnson, S. L., Newman, C. F., Brown, G. K., Barber, J. P.,
Laurenceau, J.-P., & Beck, A. T. (2006). Early alliance, alliance ruptures, and symptom
change in a nonrandomized trial of cognitive therapy for avoidant and
obsessive-compulsive personality disorders. Journal of Consulting and Clinical
Psychology, 74(2), 337-345.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from alliance import instruments as _instruments
from alliance._checks import check_long, require_columns, require_frame
from alliance.study import EVENT_COLUMNS, EVENT_KINDS, EVENT_SOURCES

__all__ = [
    "METHODS",
    "combine",
    "compare",
    "detect",
    "event_locked",
    "repairs",
    "summarize",
]

#: Operational definitions known to :func:`detect`, with their sources.
METHODS = {
    "drop": "fall from the previous rated session by at least the reliable-change size "
    "(Jacobson & Truax, 1991)",
    "dip": "session more than `threshold` SD below the mean of the client's earlier rated "
    "sessions (past-only), the low point of a V-shaped rupture-repair sequence "
    "(Stiles et al., 2004; 1 SD: Strauss et al., 2006; stricter SD: Gumz et al., 2012)",
}

_DETECTED_EXTRA = [
    "depth",
    "method",
    "pre_session",
    "pre_level",
    "nadir",
    "repair_session",
    "sessions_to_repair",
]


def _observed(data, alliance, client, session) -> pd.DataFrame:
    """Rated sessions only (missing alliance scores are sessions without a rating)."""
    long = check_long(data, client, session, alliance)
    long = long[long["value"].notna()]
    return long.sort_values(["client", "session"], kind="stable").reset_index(drop=True)


def _drop_size(threshold, instrument, sd, reliability, z) -> float:
    if threshold is not None:
        return float(threshold)
    ins = _instruments.get(instrument) if instrument is not None else None
    if sd is None and reliability is None and ins is not None and ins.reliable_change:
        return float(ins.reliable_change)
    if reliability is None and ins is not None:
        reliability = ins.reliability
    if sd is not None and reliability is not None:
        return float(z * np.sqrt(2.0) * float(sd) * np.sqrt(1.0 - float(reliability)))
    named = f"instrument {ins.name!r} has no published reliable-change size; " if ins else ""
    raise ValueError(
        f"{named}method='drop' needs the reliable-change size of the alliance scale: "
        "pass threshold= (points), or sd= and reliability= to compute it as "
        "1.96 * sqrt(2) * sd * sqrt(1 - reliability) (Jacobson & Truax 1991)"
    )


def _running_past(value: np.ndarray, codes: np.ndarray):
    """Mean, SD (ddof 1) and count of each client's rated sessions BEFORE each row.

    Rows are sorted by client and session; the row itself and later rows are not used,
    so a flag at session n depends only on sessions up to n.
    """
    frame = pd.DataFrame({"g": codes, "v": value})
    grouped = frame.groupby("g")["v"]
    n_prior = grouped.cumcount().to_numpy()
    csum = grouped.cumsum().to_numpy() - value
    csq = (frame["v"] ** 2).groupby(frame["g"]).cumsum().to_numpy() - value**2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_prior > 0, csum / np.maximum(n_prior, 1), np.nan)
        var = (csq - n_prior * mean**2) / (n_prior - 1)
        sd = np.where(n_prior > 1, np.sqrt(np.clip(var, 0, None)), np.nan)
    return mean, sd, n_prior


def _repair_table(
    events: pd.DataFrame, obs: pd.DataFrame, k: int, tolerance: float
) -> pd.DataFrame:
    """repair_session, sessions_to_repair and resolved for events with a pre_level.

    ``events`` has client, session, pre_level; ``obs`` has client, session, value.
    """
    ev = events[["client", "session", "pre_level"]].reset_index(drop=True)
    ev["_event"] = np.arange(len(ev))
    pairs = ev.merge(obs, on="client", suffixes=("", "_obs"))
    lag = pairs["session_obs"] - pairs["session"]
    in_window = (lag > 0) & (lag <= k)
    back = in_window & (pairs["value"] >= pairs["pre_level"] - tolerance)
    first = pairs[back].groupby("_event")["session_obs"].min()
    rated = pairs[in_window].groupby("_event").size().reindex(ev["_event"]).fillna(0)
    repair = first.reindex(ev["_event"]).to_numpy(dtype=float)
    last_seen = obs.groupby("client")["session"].max()
    horizon = ev["client"].map(last_seen).to_numpy(dtype=float)
    seen_k = horizon >= ev["session"].to_numpy(dtype=float) + k
    resolved = pd.array(np.where(~np.isnan(repair), True, False), dtype="boolean")
    no_rating = rated.to_numpy() == 0  # nothing rated in the window: not knowable
    unknown = np.isnan(repair) & (
        ~seen_k | no_rating | np.isnan(ev["pre_level"].to_numpy(dtype=float))
    )
    resolved[unknown] = pd.NA
    return pd.DataFrame(
        {
            "repair_session": pd.array(repair, dtype="Float64").astype("Int64"),
            "sessions_to_repair": pd.array(
                repair - ev["session"].to_numpy(), dtype="Float64"
            ).astype("Int64"),
            "resolved": resolved,
        }
    )


def detect(
    data: pd.DataFrame,
    alliance: str = "alliance",
    client: str = "client",
    session: str = "session",
    *,
    method: str = "drop",
    threshold: float | None = None,
    instrument=None,
    sd: float | None = None,
    reliability: float | None = None,
    spread: str = "client",
    k: int = 3,
    tolerance: float = 0.0,
    z: float = 1.96,
    min_prior: int = 2,
) -> pd.DataFrame:
    """Detect alliance ruptures and their repair from session-level alliance scores.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session; a missing alliance score is a
        session without a rating.
    alliance, client, session : str
        Column names.
    method : {'drop', 'dip'}
        ``'drop'``: the alliance falls from the previous rated session by at least
        ``threshold`` points, by default the reliable-change size of the scale
        (Jacobson & Truax, 1991). ``'dip'``: the alliance lies more than ``threshold``
        SDs (default 2) below the mean of the client's earlier rated sessions, as in
        the V-shaped rupture-repair sequences of Stiles et al. (2004). Both rules are
        prospective: a flag at session n uses only sessions up to n.
    threshold : float, optional
        Points (``'drop'``) or number of SDs (``'dip'``, default 2).
    instrument : str or Instrument, optional
        Supplies the reliable-change size for ``'drop'``.
    sd, reliability : float, optional
        For ``'drop'`` without a published size: the size is
        ``z * sqrt(2) * sd * sqrt(1 - reliability)``.
    spread : {'client', 'pooled', 'stricter'}
        For ``'dip'``: the SD of the client's earlier rated sessions (running), the
        sample's pooled within-client SD, or the larger of the two (Gumz et al., 2012).
    k : int
        Sessions within which the alliance must return to its pre-rupture level for
        the rupture to count as repaired.
    tolerance : float
        Points below the pre-rupture level that still count as a return.
    z : float
        Critical value for the reliable-change size.
    min_prior : int, default 2
        For ``'dip'``: earlier rated sessions needed before a session can be a dip
        (the running SD needs two).

    Returns
    -------
    pandas.DataFrame
        One row per rupture in the events layout: client, session (first session of
        the rupture), kind ('unspecified'), resolved (True when repaired within ``k``
        sessions, False when not, NA (unknown) when no rating falls in the repair
        window or the client's ratings end before ``k`` sessions have passed), source ('detected'), then depth (pre-rupture level minus
        the lowest score of the rupture), method, pre_session, pre_level, nadir,
        repair_session and sessions_to_repair. Consecutive flagged sessions form one
        rupture. A rupture needs a rated session before it, so a client's first rated
        session is never one.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> events = alliance.ruptures.detect(
    ...     study.sessions, alliance="wai_sr", method="drop", threshold=5)
    >>> events.columns[:5].tolist()
    ['client', 'session', 'kind', 'resolved', 'source']
    >>> bool((events["depth"] >= 5).all())
    True
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {sorted(METHODS)}")
    if k < 1:
        raise ValueError(f"k={k}: the repair window must be at least 1 session")
    obs = _observed(data, alliance, client, session)
    codes = pd.factorize(obs["client"])[0]
    value = obs["value"].to_numpy()
    same_prev = np.r_[False, codes[1:] == codes[:-1]]
    prev = np.r_[np.nan, value[:-1]]
    prev[~same_prev] = np.nan
    prev_session = np.r_[-1, obs["session"].to_numpy()[:-1]]
    if method == "drop":
        size = _drop_size(threshold, instrument, sd, reliability, z)
        if size <= 0:
            raise ValueError(f"threshold must be positive, not {size}")
        with np.errstate(invalid="ignore"):
            flagged = (prev - value) >= size
        label = f"drop >= {size:g} points from the previous rated session"
    else:
        n_sd = 2.0 if threshold is None else float(threshold)
        if not isinstance(min_prior, int | np.integer) or min_prior < 1:
            raise ValueError(f"min_prior={min_prior!r} must be a whole number >= 1")
        if spread not in ("client", "pooled", "stricter"):
            raise ValueError(f"spread={spread!r}: pass 'client', 'pooled' or 'stricter'")
        ref_mean, ref_sd, n_prior = _running_past(value, codes)
        if spread != "client":
            grouped = obs.groupby(codes)["value"]
            resid = value - grouped.transform("mean").to_numpy()
            dof = len(value) - len(np.unique(codes))
            pooled = np.sqrt(np.sum(resid**2) / dof) if dof > 0 else np.nan
        if spread == "client":
            scale = ref_sd
        elif spread == "pooled":
            scale = np.full(len(value), pooled)
        else:
            scale = np.fmax(ref_sd, pooled)
        with np.errstate(invalid="ignore"):
            flagged = (n_prior >= min_prior) & (value < ref_mean - n_sd * scale)
        label = (
            f"dip > {n_sd:g} SD ({spread}) below the mean of the client's earlier rated "
            f"sessions (at least {min_prior})"
        )
    flagged &= ~np.isnan(value)
    prev_flag = np.r_[False, flagged[:-1]] & same_prev
    run_start = flagged & ~prev_flag
    run_id = np.cumsum(run_start)
    valid_start = run_start & same_prev  # a rupture needs a rated session before it
    member = flagged.copy()
    nadir = pd.Series(value[member]).groupby(run_id[member]).min()
    starts = np.flatnonzero(valid_start)
    events = pd.DataFrame(
        {
            "client": obs["client"].to_numpy()[starts],
            "session": obs["session"].to_numpy()[starts],
            "pre_session": prev_session[starts],
            "pre_level": prev[starts],
            "nadir": nadir.reindex(run_id[starts]).to_numpy(),
        }
    )
    events["depth"] = events["pre_level"] - events["nadir"]
    rep = _repair_table(events, obs, k, tolerance)
    events = events.assign(
        kind="unspecified",
        source="detected",
        method=label,
        resolved=rep["resolved"].array,
        repair_session=rep["repair_session"].array,
        sessions_to_repair=rep["sessions_to_repair"].array,
    )
    events["session"] = events["session"].astype("Int64")
    events["pre_session"] = events["pre_session"].astype("Int64")
    events = events[EVENT_COLUMNS + _DETECTED_EXTRA].reset_index(drop=True)
    events.attrs.update(
        {
            "method": method,
            "rule": label,
            "source": METHODS[method],
            "uses": "sessions up to the flagged one (prospective); repair uses the next k",
            "k": int(k),
            "tolerance": tolerance,
        }
    )
    return events


def repairs(
    events: pd.DataFrame,
    data: pd.DataFrame,
    alliance: str = "alliance",
    client: str = "client",
    session: str = "session",
    *,
    k: int = 3,
    tolerance: float = 0.0,
) -> pd.DataFrame:
    """Judge from the alliance scores whether events (of any source) were repaired.

    The pre-rupture level is the alliance of the last rated session before the event
    (or the event's ``pre_level`` when present); the event is repaired when a rated
    session within ``k`` sessions after it is back at that level less ``tolerance``.

    Parameters
    ----------
    events : pandas.DataFrame
        Events table (client, session, ...), e.g. ``study.events``.
    data : pandas.DataFrame
        Long sessions table with the alliance scores.
    alliance, client, session : str
        Column names of ``data`` (``events`` uses client and session too).
    k, tolerance
        As in :func:`detect`.

    Returns
    -------
    pandas.DataFrame
        ``events`` with pre_session, pre_level, repair_session, sessions_to_repair and
        repaired (True / False / NA when the ratings end too soon or no rated session
        precedes the event). The events' own ``resolved`` column is left as it is.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> judged = alliance.ruptures.repairs(study.events, study.sessions, alliance="wai_sr")
    >>> len(judged) == len(study.events)
    True
    """
    require_columns(events, table="events", client=client, session=session)
    obs = _observed(data, alliance, client, session)
    ev = pd.DataFrame(
        {
            "client": events[client].to_numpy(),
            "session": pd.to_numeric(events[session]).to_numpy(dtype=float),
        }
    )
    ev["_row"] = np.arange(len(ev))
    if "pre_level" in events.columns:
        ev["pre_level"] = events["pre_level"].to_numpy(dtype=float)
        ev["pre_session"] = (
            events["pre_session"].to_numpy(dtype=float)
            if "pre_session" in events.columns
            else np.nan
        )
    else:
        before = pd.merge_asof(
            ev.dropna(subset=["session"])
            .assign(_key=lambda f: f["session"] - 0.5)
            .sort_values("_key"),
            obs.assign(_key=obs["session"].astype(float))
            .sort_values("_key")[["client", "_key", "session", "value"]]
            .rename(columns={"session": "pre_session", "value": "pre_level"}),
            on="_key",
            by="client",
            direction="backward",
        ).set_index("_row")
        ev["pre_level"] = before["pre_level"].reindex(ev["_row"]).to_numpy()
        ev["pre_session"] = before["pre_session"].reindex(ev["_row"]).to_numpy(dtype=float)
    rep = _repair_table(ev, obs, k, tolerance)
    out = events.copy()
    out["pre_session"] = pd.array(ev["pre_session"].to_numpy(), dtype="Float64").astype("Int64")
    out["pre_level"] = ev["pre_level"].to_numpy()
    out["repair_session"] = rep["repair_session"].array
    out["sessions_to_repair"] = rep["sessions_to_repair"].array
    out["repaired"] = rep["resolved"].array
    return out


def _as_events(table: pd.DataFrame, name: str) -> pd.DataFrame:
    table = require_frame(table, name)
    require_columns(table, table=name, **{c: c for c in EVENT_COLUMNS})
    kinds = set(table["kind"].dropna()) - set(EVENT_KINDS)
    if kinds:
        raise ValueError(
            f"{name}.kind has values {sorted(map(str, kinds))} outside {list(EVENT_KINDS)}; "
            "recode them (e.g. to 'unspecified')"
        )
    sources = set(table["source"].dropna()) - set(EVENT_SOURCES)
    if sources or table["source"].isna().any():
        raise ValueError(
            f"{name}.source must be one of {list(EVENT_SOURCES)} on every row; found "
            f"{sorted(map(str, sources)) or 'missing values'}"
        )
    return table


def combine(*tables: pd.DataFrame) -> pd.DataFrame:
    """Stack events tables of different sources into one events table.

    Parameters
    ----------
    *tables : pandas.DataFrame
        Events tables (client, session, kind, resolved, source), e.g. the output of
        :func:`detect` and ``study.events`` (self-report or observer codes). Extra
        columns are kept and left missing where a table lacks them.

    Returns
    -------
    pandas.DataFrame
        All events, sorted by client, session and source; nothing is dropped or merged,
        so the same rupture reported by two sources appears twice (see :func:`compare`).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> found = alliance.ruptures.detect(study.sessions, alliance="wai_sr", threshold=5)
    >>> both = alliance.ruptures.combine(found, study.events)
    >>> len(both) == len(found) + len(study.events)
    True
    """
    if not tables:
        raise ValueError("pass at least one events table")
    checked = [_as_events(t, f"table {i + 1}") for i, t in enumerate(tables)]
    checked = [t for t in checked if len(t)] or checked[:1]
    out = pd.concat(checked, ignore_index=True, sort=False)
    extras = [c for c in out.columns if c not in EVENT_COLUMNS]
    out["session"] = pd.to_numeric(out["session"]).astype("Int64")
    out["resolved"] = out["resolved"].astype("boolean")
    out = out[EVENT_COLUMNS + extras]
    return out.sort_values(["client", "session", "source"], kind="stable").reset_index(drop=True)


def summarize(
    events: pd.DataFrame,
    data: pd.DataFrame | None = None,
    client: str = "client",
    session: str = "session",
    *,
    by_source: bool = False,
) -> pd.DataFrame:
    """Per-client rupture counts.

    Parameters
    ----------
    events : pandas.DataFrame
        Events table (client, session, resolved, source).
    data : pandas.DataFrame, optional
        Sessions (or clients) table: its clients without any event are listed with
        zero ruptures.
    client, session : str
        Column names in ``events`` (and ``data``).
    by_source : bool
        One row per client x source instead of per client.

    Returns
    -------
    pandas.DataFrame
        client (and source), n_ruptures, n_repaired, n_unrepaired, n_unknown
        (resolution not known), proportion_repaired (n_repaired over the ruptures whose
        resolution is known; NaN when none) and first_rupture_session.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> found = alliance.ruptures.detect(study.sessions, alliance="wai_sr", threshold=5)
    >>> summary = alliance.ruptures.summarize(found, data=study.sessions)
    >>> len(summary) == study.sessions["client"].nunique()
    True
    """
    require_columns(events, table="events", client=client, session=session)
    keys = [client] + (["source"] if by_source else [])
    if by_source:
        require_columns(events, table="events", source="source")
    resolved = (
        events["resolved"].astype("boolean")
        if "resolved" in events.columns
        else pd.Series(pd.NA, index=events.index, dtype="boolean")
    )
    frame = events[keys].assign(
        _repaired=resolved.eq(True).fillna(False).to_numpy(dtype=int),
        _unrepaired=resolved.eq(False).fillna(False).to_numpy(dtype=int),
        _unknown=resolved.isna().to_numpy(dtype=int),
        _session=pd.to_numeric(events[session]).astype(float),
    )
    out = frame.groupby(keys, sort=True, dropna=False).agg(
        n_ruptures=("_session", "size"),
        n_repaired=("_repaired", "sum"),
        n_unrepaired=("_unrepaired", "sum"),
        n_unknown=("_unknown", "sum"),
        first_rupture_session=("_session", "min"),
    )
    out = out.reset_index()
    if data is not None:
        require_columns(data, client=client)
        everyone = pd.DataFrame({client: pd.unique(data[client].dropna())})
        if by_source:
            sources = out["source"].dropna().unique() if len(out) else ["detected"]
            everyone = everyone.merge(pd.DataFrame({"source": sources}), how="cross")
        out = everyone.merge(out, on=keys, how="left")
        for col in ("n_ruptures", "n_repaired", "n_unrepaired", "n_unknown"):
            out[col] = out[col].fillna(0)
    for col in ("n_ruptures", "n_repaired", "n_unrepaired", "n_unknown"):
        out[col] = out[col].astype(int)
    known = out["n_repaired"] + out["n_unrepaired"]
    out["proportion_repaired"] = (out["n_repaired"] / known.where(known > 0)).astype(float)
    out["first_rupture_session"] = out["first_rupture_session"].astype("Int64")
    columns = keys + [
        "n_ruptures",
        "n_repaired",
        "n_unrepaired",
        "n_unknown",
        "proportion_repaired",
        "first_rupture_session",
    ]
    return out[columns].sort_values(keys, kind="stable").reset_index(drop=True)


def compare(
    found: pd.DataFrame,
    reference: pd.DataFrame,
    client: str = "client",
    session: str = "session",
    *,
    tolerance: int = 1,
) -> pd.DataFrame:
    """Agreement of two sets of events: sensitivity and precision.

    An event of ``reference`` is recovered when ``found`` has an event of the same
    client within ``tolerance`` sessions of it; an event of ``found`` is confirmed when
    ``reference`` has one within ``tolerance`` sessions.

    Returns
    -------
    pandas.DataFrame
        One row: n_reference, n_found, recovered, confirmed, sensitivity
        (recovered / n_reference), precision (confirmed / n_found).

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.ruptures import compare
    >>> truth = pd.DataFrame({"client": ["a", "a", "b"], "session": [3, 8, 5]})
    >>> found = pd.DataFrame({"client": ["a", "b", "b"], "session": [4, 5, 9]})
    >>> compare(found, truth)[["sensitivity", "precision"]].round(3)
       sensitivity  precision
    0        0.667      0.667
    """
    require_columns(found, table="found", client=client, session=session)
    require_columns(reference, table="reference", client=client, session=session)
    f = pd.DataFrame(
        {"client": found[client].to_numpy(), "s": pd.to_numeric(found[session]).to_numpy()}
    )
    r = pd.DataFrame(
        {"client": reference[client].to_numpy(), "s": pd.to_numeric(reference[session]).to_numpy()}
    )
    f["_f"] = np.arange(len(f))
    r["_r"] = np.arange(len(r))
    pairs = f.merge(r, on="client", suffixes=("_f", "_r"))
    close = pairs[(pairs["s_f"] - pairs["s_r"]).abs() <= tolerance]
    recovered = close["_r"].nunique()
    confirmed = close["_f"].nunique()
    return pd.DataFrame(
        {
            "n_reference": [len(r)],
            "n_found": [len(f)],
            "recovered": [recovered],
            "confirmed": [confirmed],
            "sensitivity": [recovered / len(r) if len(r) else np.nan],
            "precision": [confirmed / len(f) if len(f) else np.nan],
        }
    )


def event_locked(
    data: pd.DataFrame,
    events: pd.DataFrame,
    alliance: str = "alliance",
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    *,
    window: int = 3,
    baseline: int | None = None,
    per_event: bool = False,
) -> pd.DataFrame:
    """Mean alliance (and outcome) in the sessions around each event.

    Parameters
    ----------
    data : pandas.DataFrame
        Long sessions table.
    events : pandas.DataFrame
        Events (client, session), e.g. from :func:`detect` or ``study.events``.
    alliance, outcome : str
        Score columns; ``outcome`` is optional.
    client, session : str
        Column names (the same in both tables).
    window : int
        Sessions before and after the event (offsets ``-window .. window``).
    baseline : int, optional
        Subtract each event's score at this offset (e.g. ``-1``: change from the
        session before the rupture); events without a score there are left out of the
        means and counted in ``n_events``/``n``.
    per_event : bool
        Return the per-event long table instead of the means.

    Returns
    -------
    pandas.DataFrame
        Tidy: variable, offset, mean, sd, n, se, ci_low, ci_high (t-based 95% CI), and
        n_events (events with this variable in the window). With ``per_event=True``:
        event, client, event_session, offset, session, variable, value.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> found = alliance.ruptures.detect(study.sessions, alliance="wai_sr", threshold=5)
    >>> locked = alliance.ruptures.event_locked(
    ...     study.sessions, found, alliance="wai_sr", outcome="phq9")
    >>> sorted(locked["variable"].unique())
    ['phq9', 'wai_sr']
    >>> v = locked[locked["variable"] == "wai_sr"].set_index("offset")["mean"]
    >>> bool(v[0] < v[-1] and v[0] < v[2])
    True
    """
    require_columns(data, client=client, session=session, alliance=alliance, outcome=outcome)
    require_columns(events, table="events", client=client, session=session)
    if window < 1:
        raise ValueError(f"window={window} must be at least 1")
    variables = [alliance] + ([outcome] if outcome else [])
    ev = pd.DataFrame(
        {
            "event": np.arange(len(events)),
            "client": events[client].to_numpy(),
            "event_session": pd.to_numeric(events[session]).to_numpy(dtype=float),
        }
    )
    rows = data[[client, session, *variables]].rename(
        columns={client: "client", session: "session"}
    )
    rows = rows.melt(["client", "session"], var_name="variable", value_name="value")
    rows = rows[rows["value"].notna()]
    pairs = ev.merge(rows, on="client")
    pairs["offset"] = pairs["session"] - pairs["event_session"]
    pairs = pairs[pairs["offset"].abs() <= window].copy()
    pairs["offset"] = pairs["offset"].astype(int)
    pairs["value"] = pairs["value"].astype(float)
    if baseline is not None:
        base = pairs[pairs["offset"] == baseline].set_index(["event", "variable"])["value"]
        ref = pd.MultiIndex.from_frame(pairs[["event", "variable"]])
        pairs["value"] = pairs["value"] - base.reindex(ref).to_numpy()
        pairs = pairs[pairs["value"].notna()]
    pairs = pairs.sort_values(["event", "variable", "offset"], kind="stable")
    if per_event:
        return pairs[
            ["event", "client", "event_session", "offset", "session", "variable", "value"]
        ].reset_index(drop=True)
    grid = pd.MultiIndex.from_product(
        [variables, range(-window, window + 1)], names=["variable", "offset"]
    )
    agg = pairs.groupby(["variable", "offset"])["value"].agg(["mean", "std", "size"])
    agg = agg.reindex(grid)
    n = agg["size"].fillna(0).astype(int)
    se = agg["std"] / np.sqrt(n.where(n > 0))
    tcrit = stats.t.ppf(0.975, np.maximum(n - 1, 1))
    n_events = pairs.groupby("variable")["event"].nunique().reindex(variables).fillna(0)
    out = pd.DataFrame(
        {
            "mean": agg["mean"],
            "sd": agg["std"],
            "n": n,
            "se": se,
            "ci_low": agg["mean"] - tcrit * se,
            "ci_high": agg["mean"] + tcrit * se,
        }
    ).reset_index()
    out["n_events"] = out["variable"].map(n_events).astype(int)
    out.attrs.update({"window": int(window), "baseline": baseline})
    return out
