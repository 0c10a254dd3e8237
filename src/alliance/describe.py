"""Descriptive tables of a study: sizes, attendance, missing data, scores by group."""

from __future__ import annotations

import pandas as pd

from alliance._checks import require_columns
from alliance.privacy import MIN_CELL, suppress_small_cells
from alliance.study import Study

__all__ = ["overview", "score_table"]


def overview(study: Study) -> pd.DataFrame:
    """Sizes of a study as a tidy table (measure, value).

    Counts are whole numbers (Python ints) and the median a float, so a table shows
    ``300`` clients beside a median of ``14.5`` sessions; a size that does not apply (no
    therapist column) is NaN.

    Examples
    --------
    >>> import alliance
    >>> from alliance.describe import overview
    >>> overview(alliance.datasets.load_dataset("demo")).set_index("measure").loc[
    ...     ["clients", "therapists"], "value"].tolist()
    [300, 30]
    """
    s = study.sessions
    per_client = s.groupby("client").size()
    rows = [
        ("session rows", len(s)),
        ("clients", int(s["client"].nunique())),
        ("therapists", int(s["therapist"].nunique()) if "therapist" in s else float("nan")),
        ("sites", int(s["site"].nunique()) if "site" in s else float("nan")),
        ("sessions per client, median", float(per_client.median())),
        ("sessions per client, min", int(per_client.min())),
        ("sessions per client, max", int(per_client.max())),
        ("clients with a single session", int((per_client == 1).sum())),
        ("events (rupture markers)", len(study.events)),
    ]
    if "prior_negative_therapy" in study.clients:
        rows.append(
            (
                "clients with prior negative therapy",
                int(study.clients["prior_negative_therapy"].sum()),
            )
        )
    return pd.DataFrame(
        {"measure": [m for m, _ in rows], "value": pd.Series([v for _, v in rows], dtype=object)}
    )


def score_table(
    data: pd.DataFrame,
    scores: list[str],
    *,
    by: str | None = None,
    client: str = "client",
    min_count: int = MIN_CELL,
) -> pd.DataFrame:
    """Mean, SD and missing share of score columns, optionally by group, small cells suppressed.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format.
    scores : list of str
        Score columns.
    by : str, optional
        Grouping column (e.g. ``"phase"``, ``"site"``).
    client : str, default "client"
        Client column (to count clients per cell).
    min_count : int, default 5
        Cells with fewer clients are suppressed.

    Examples
    --------
    >>> import alliance
    >>> from alliance.describe import score_table
    >>> t = score_table(alliance.datasets.load_dataset("demo").sessions, ["wai_sr"], by="phase")
    >>> t.columns.tolist()
    ['phase', 'score', 'n_clients', 'n_rows', 'mean', 'sd', 'missing']
    """
    require_columns(data, client=client, by=by, **{f"scores[{i}]": c for i, c in enumerate(scores)})
    keys = [by] if by else []
    parts = []
    for col in scores:
        grouped = data.groupby(keys, observed=True) if keys else data.assign(_all=1).groupby("_all")
        part = grouped.agg(
            n_clients=(client, "nunique"),
            n_rows=(col, "size"),
            mean=(col, "mean"),
            sd=(col, "std"),
            missing=(col, lambda x: x.isna().mean()),
        ).reset_index()
        part.insert(len(keys), "score", col)
        parts.append(part.drop(columns="_all", errors="ignore"))
    return suppress_small_cells(pd.concat(parts, ignore_index=True), min_count=min_count)
