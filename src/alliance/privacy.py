"""Privacy helpers for tables and reports meant for sharing."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd

from alliance._checks import require_columns

__all__ = ["MIN_CELL", "suppress_small_cells", "pseudonymize"]

#: Cells describing fewer clients than this are suppressed in shared tables.
MIN_CELL = 5


def suppress_small_cells(
    table: pd.DataFrame, count: str = "n_clients", *, min_count: int = MIN_CELL
) -> pd.DataFrame:
    """Blank every value in rows that describe fewer than ``min_count`` clients.

    Parameters
    ----------
    table : pandas.DataFrame
        A summary table with a column counting clients per row.
    count : str, default "n_clients"
        That column.
    min_count : int, default 5
        Rows below this count are suppressed; their count reads ``"<5"``.

    Returns
    -------
    pandas.DataFrame
        A copy; suppressed values are missing and the count column is text.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.privacy import suppress_small_cells
    >>> t = pd.DataFrame({"site": ["A", "B"], "n_clients": [40, 3], "mean": [3.9, 4.4]})
    >>> suppress_small_cells(t)
      site n_clients  mean
    0    A        40   3.9
    1    B        <5   NaN
    """
    require_columns(table, "table", count=count)
    # a count already suppressed ("<5") is text; it stays as it is (idempotent)
    small = pd.to_numeric(table[count], errors="coerce") < min_count
    out = table.copy()
    if not small.any():
        return out
    others = [c for c in out.columns if c != count and pd.api.types.is_numeric_dtype(out[c])]
    out[others] = out[others].astype(float)
    out.loc[small, others] = np.nan
    out[count] = out[count].astype(object).where(~small, f"<{min_count}").astype(str)
    return out


def pseudonymize(values: pd.Series, salt: str, *, prefix: str = "P", length: int = 10) -> pd.Series:
    """Stable salted pseudonyms (HMAC-SHA-256) for identifiers.

    The same identifier and salt always give the same pseudonym; without the salt the
    mapping cannot be reversed or rebuilt. Keep the salt with the data, not the report.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.privacy import pseudonymize
    >>> p = pseudonymize(pd.Series(["C001", "C002", "C001"]), salt="keep-me-secret")
    >>> p.iloc[0] == p.iloc[2], p.iloc[0] != p.iloc[1], p.iloc[0][:1]
    (True, True, 'P')
    """
    if not salt:
        raise ValueError("a non-empty salt is needed; choose a secret phrase and keep it private")
    key = salt.encode("utf-8")
    uniques = pd.unique(values.astype(str))
    mapping = {
        u: prefix + hmac.new(key, u.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        for u in uniques
    }
    return values.astype(str).map(mapping).where(values.notna())
