"""Input checks shared by every public function.

Each helper raises an error that names the problem and says how to fix it, so that
no public function has to write its own wording for a missing column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import pandas as pd

__all__ = ["close_matches", "require_columns", "require_frame", "format_rows"]


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names in ``candidates`` that look like ``name`` (case-insensitive)."""
    candidates = [str(c) for c in candidates]
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def require_frame(data: object, argument: str = "data") -> pd.DataFrame:
    """Check that ``data`` is a DataFrame (a Study's table, not the Study itself)."""
    if isinstance(data, pd.DataFrame):
        return data
    hint = ""
    if hasattr(data, "sessions"):
        hint = f" Pass a table of the study, e.g. {argument}=study.sessions."
    raise TypeError(
        f"{argument} must be a pandas DataFrame in long format "
        f"(one row per client x session), not {type(data).__name__}.{hint}"
    )


def require_columns(data: pd.DataFrame, table: str = "data", **roles: str | None) -> pd.DataFrame:
    """Check that each named role's column is present.

    Parameters
    ----------
    data : pandas.DataFrame
        The table to check.
    table : str
        What to call the table in the message.
    **roles : str or None
        Role -> column name, e.g. ``client="client"``. ``None`` values are skipped.

    Returns
    -------
    pandas.DataFrame
        ``data`` itself, so calls can be chained.

    Raises
    ------
    KeyError
        Naming every missing column, the argument that names it, and close matches.
    """
    data = require_frame(data, table)
    problems = []
    for role, column in roles.items():
        if column is None:
            continue
        if column not in data.columns:
            near = close_matches(column, data.columns)
            tip = f" Did you mean {', '.join(repr(m) for m in near)}?" if near else ""
            problems.append(
                f"column {column!r} (the {role} column) is not in {table}.{tip} "
                f"Pass {role}='<your column>' to name it."
            )
    if problems:
        raise KeyError("; ".join(problems))
    return data


def format_rows(rows: Iterable[int], limit: int = 8) -> str:
    """'rows 4, 9, 17' with an ellipsis and a count past ``limit``."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f", ... ({len(rows)} in all)" if len(rows) > limit else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}{more}"
