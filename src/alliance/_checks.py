"""Input checks shared by every public function.

Each helper raises an error that names the problem and says how to fix it, so that
no public function has to write its own wording for a missing column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["check_long", "close_matches", "format_rows", "require_columns", "require_frame"]


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


def check_long(data, client, session, value) -> pd.DataFrame:
    """Validate a long table of one score and return it as ``client, session, value``.

    Every row needs a client id, sessions must be whole numbers, scores numbers or
    missing, and each client x session pair may appear once; the error names the rows.
    """
    frame = require_columns(data, client=client, session=session, outcome=value)
    cols = list(dict.fromkeys([client, session, value]))
    frame = frame[cols]
    if frame[client].isna().any():
        rows = np.flatnonzero(frame[client].isna().to_numpy())
        raise ValueError(
            f"column {client!r} has {len(rows)} missing client ids ({format_rows(rows)}); "
            "every row needs a client id, so fill or drop those rows first"
        )
    sess = pd.to_numeric(frame[session], errors="coerce")
    bad = sess.isna() | (np.floor(sess) != sess)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        raise ValueError(
            f"column {session!r} has {len(rows)} missing or non-integer values "
            f"({format_rows(rows)}); sessions must be whole numbers (1, 2, 3, ...), "
            "so recode or drop those rows first"
        )
    score = pd.to_numeric(frame[value], errors="coerce")
    junk = score.isna() & frame[value].notna()
    if junk.any():
        rows = np.flatnonzero(junk.to_numpy())
        raise ValueError(
            f"column {value!r} has {len(rows)} non-numeric values ({format_rows(rows)}); "
            "scores must be numbers or missing (NaN)"
        )
    out = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": sess.to_numpy(dtype=np.int64),
            "value": score.to_numpy(dtype=float),
        }
    )
    dup = out.duplicated(["client", "session"], keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        raise ValueError(
            f"{len(rows)} rows repeat a client x session pair ({format_rows(rows)}); "
            "the data must have one row per client x session: aggregate or drop the "
            "repeats first, e.g. data.groupby([client, session], as_index=False).mean()"
        )
    return out


def renamed(function: str, old: str, old_value, new: str, new_value, default=None):
    """The value of an argument that has a new name, warning when the old one is used.

    ``old_value`` is what the caller passed under the old name (None when not passed) and
    ``new_value`` under the new one; passing both with different values is an error.

    Examples
    --------
    >>> import warnings
    >>> from alliance._checks import renamed
    >>> renamed("f", "ci", None, "level", 0.9, default=0.95)
    0.9
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = renamed("f", "ci", 0.9, "level", None, default=0.95)
    >>> value, caught[0].category.__name__
    (0.9, 'DeprecationWarning')
    """
    import warnings

    if old_value is None:
        return default if new_value is None else new_value
    if new_value is not None and new_value != old_value:
        raise ValueError(
            f"{function}: {old}={old_value!r} and {new}={new_value!r} disagree; {old}= is the "
            f"former name of {new}=: pass {new}= only"
        )
    warnings.warn(
        f"{function}({old}=...) is deprecated and will be removed; pass {new}= instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
