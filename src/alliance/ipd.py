"""Two-stage individual-participant (IPD) meta-analysis of session-level data.

Per site (or therapist, or any grouping), the correlation across clients between early
alliance and the last observed outcome; then those correlations pooled by
:func:`alliance.meta.meta_analysis`. A multi-site project can so report the
alliance-outcome link the way the published meta-analyses do, with between-site
heterogeneity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance._checks import require_columns
from alliance.design import EarlyWindow, as_window
from alliance.meta.univariate import MetaResult, meta_analysis
from alliance.results import exclusion_log, level_name

__all__ = ["two_stage_ipd"]


def two_stage_ipd(
    data: pd.DataFrame,
    alliance: str = "alliance",
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    group: str = "site",
    *,
    early: int | EarlyWindow = 3,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    first_sessions: int | None = None,
) -> MetaResult:
    """Two-stage individual-participant meta-analysis of the alliance-outcome link.

    Stage one: per group (site, therapist, ...), the Pearson correlation across clients
    between early alliance (the mean of the client's first ``early`` sessions)
    and the client's last observed outcome. Stage two: those correlations are pooled with
    :func:`alliance.meta.meta_analysis` (Fisher's z).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session (e.g. ``study.sessions``).
    alliance, outcome : str
        Alliance and outcome score columns (e.g. ``"wai_sr"``, ``"phq9"``).
    client, session, group : str
        Client, session-number and grouping columns. Clients are identified within
        their group.
    early : int or EarlyWindow, default 3
        The early window (:class:`alliance.design.EarlyWindow`, the definition every
        analysis shares): an int is the mean of the client's first ``early`` rated
        sessions, all of them needed; clients with fewer ratings are left out and counted.
        ``first_sessions`` is its former name (deprecated).
    method, test, level
        As in :func:`alliance.meta.meta_analysis`. Knapp-Hartung (``"knha"``) is the default because
        multi-site projects usually have few sites.

    Returns
    -------
    alliance.meta.MetaResult
        ``.data`` has one row per group (group, n, r); groups with fewer than 4 usable
        clients cannot be pooled (Fisher's z needs n > 3). ``.excluded`` is the exclusion
        log (reason, column, n_rows, n_clients: each client under its first reason, a
        group's remaining clients under the group's reason); ``.excluded_rows`` lists the
        groups and clients left out one by one (level, group, client, reason). ``.n``
        counts the groups, clients and sessions pooled.

    Notes
    -----
    With symptom measures (higher = worse, e.g. PHQ-9) a good alliance goes with a low
    last score, so the pooled r is negative. Clients whose last outcome falls within their
    early window (at or before its last session) are left out: their early alliance is not
    measured before their outcome.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from alliance import ipd
    >>> rng = np.random.default_rng(1)
    >>> rows = []
    >>> for site in range(6):
    ...     for c in range(30):
    ...         a = rng.normal()
    ...         for s in range(1, 9):
    ...             rows.append((f"s{site}", f"c{c}", s, a + rng.normal(0, .5),
    ...                          10 - 2 * a + rng.normal(0, 2)))
    >>> long = pd.DataFrame(rows, columns=["site", "client", "session", "wai", "phq9"])
    >>> res = ipd.two_stage_ipd(long, alliance="wai", outcome="phq9", group="site")
    >>> res.k, res.r < 0
    (6, True)
    """
    data = require_columns(
        data, alliance=alliance, outcome=outcome, client=client, session=session, group=group
    )
    window = as_window(early, first_sessions=first_sessions)
    frame = data[[group, client, session, alliance, outcome]].copy()
    keys = [group, client]
    n_missing_group = int(frame[group].isna().sum())
    frame = frame.loc[frame[group].notna()]
    frame = frame.sort_values([*keys, session], kind="stable")
    # clients are identified within their group: one key per group x client
    frame["_key"] = frame.groupby(keys, sort=False).ngroup()
    in_window, enough, short = window.mask(frame, alliance, "_key", session)
    inside = frame.loc[in_window]
    early = inside.groupby(keys, sort=False)[alliance].mean().rename("early_alliance")
    window_end = inside.groupby(keys, sort=False)[session].max().rename("window_end")
    has_enough = enough.groupby([frame[k] for k in keys], sort=False).first().rename("enough")
    with_out = frame.loc[frame[outcome].notna()]
    last = with_out.groupby(keys, sort=False).agg(
        last_outcome=(outcome, "last"), last_session=(session, "last")
    )
    clients = has_enough.to_frame().join([early, window_end, last], how="left").reset_index()
    reason = pd.Series("", index=clients.index, dtype=object)
    reason[~clients["enough"].astype(bool) | clients["early_alliance"].isna()] = short
    no_out = clients["last_outcome"].isna() & (reason == "")
    reason[no_out] = f"no {outcome} score"
    too_early = (clients["last_session"] <= clients["window_end"]) & (reason == "")
    reason[too_early] = f"last {outcome} score within the early window ({window.describe()})"
    usable = clients.loc[reason == ""]
    ex_clients = clients.loc[reason != "", [group, client]].assign(reason=reason[reason != ""])

    def _corr(g: pd.DataFrame) -> float:
        if len(g) < 2 or g["early_alliance"].std() == 0 or g["last_outcome"].std() == 0:
            return np.nan
        return float(np.corrcoef(g["early_alliance"], g["last_outcome"])[0, 1])

    per = usable.groupby(group, sort=True)
    table = pd.DataFrame(
        {
            "n": per.size(),
            "r": per[["early_alliance", "last_outcome"]].apply(_corr),
        }
    ).reset_index()
    all_groups = pd.Index(frame[group].unique())
    missing_groups = all_groups.difference(table[group])
    if len(missing_groups):
        table = pd.concat(
            [table, pd.DataFrame({group: missing_groups, "n": 0, "r": np.nan})],
            ignore_index=True,
        )
    small = table["n"] <= 3
    constant = table["r"].isna() & ~small
    ex_groups = pd.concat(
        [
            table.loc[small, [group]].assign(
                reason="fewer than 4 usable clients (Fisher's z needs n > 3)"
            ),
            table.loc[constant, [group]].assign(
                reason=f"no variation in early {alliance} or last {outcome}"
            ),
        ]
    )
    pooled = table.loc[~small & ~constant].reset_index(drop=True)
    if len(pooled) < 2:
        raise ValueError(
            f"only {len(pooled)} {group} groups have at least 4 usable clients; pooling needs "
            f"2 or more. Check group={group!r} or shorten the early window (early=)"
        )
    res = meta_analysis(pooled, r="r", n="n", study=group, method=method, test=test, level=level)
    excluded = pd.concat(
        [
            ex_groups.assign(level="group"),
            ex_clients.assign(level="client"),
        ],
        ignore_index=True,
    )
    if n_missing_group:
        excluded = pd.concat(
            [
                excluded,
                pd.DataFrame(
                    {
                        "level": ["session rows"],
                        "reason": [f"{n_missing_group} rows with missing {group}"],
                    }
                ),
            ],
            ignore_index=True,
        )
    cols = ["level", group, client, "reason"]
    res.excluded_rows = excluded.reindex(columns=cols)
    rows_per_client = frame.groupby(keys, sort=False).size()
    log: list[tuple[str, str | None, int, int | None]] = []
    if n_missing_group:
        log.append((f"missing {group}", group, n_missing_group, None))
    for why, part in ex_clients.groupby("reason", sort=False):
        idx = pd.MultiIndex.from_frame(part[keys])
        column = alliance if why == short else outcome
        log.append((str(why), column, int(rows_per_client.reindex(idx).sum()), len(part)))
    for why, part in ex_groups.groupby("reason", sort=False):
        lost = usable[usable[group].isin(part[group])]
        idx = pd.MultiIndex.from_frame(lost[keys])
        log.append((str(why), group, int(rows_per_client.reindex(idx).sum()), len(lost)))
    res.excluded = exclusion_log(log)
    kept = usable[usable[group].isin(pooled[group])]
    res.n_by_level = {
        level_name(group): len(pooled),
        "clients": len(kept),
        "sessions": int(rows_per_client.reindex(pd.MultiIndex.from_frame(kept[keys])).sum()),
    }
    n_short = int((reason == short).sum())
    res.notes.append(f"{window.describe()}; {n_short} client(s) had too few ratings in the window.")
    res.title = f"two-stage IPD meta-analysis of early {alliance} and last {outcome} by {group}"
    return res
