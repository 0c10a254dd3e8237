"""Result tables that carry further tables with them.

pandas compares ``DataFrame.attrs`` when it concatenates or prints a truncated frame,
and a DataFrame kept in ``attrs`` makes that comparison fail ("truth value of a
DataFrame is ambiguous"). :class:`FrameWithTables` keeps such tables as an attribute
declared in pandas' ``_metadata`` instead, which is carried along and never compared.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["FrameWithTables", "with_tables"]


class FrameWithTables(pd.DataFrame):
    """A DataFrame with named extra tables in ``.tables`` (a dict of DataFrames)."""

    _metadata = ["tables"]

    @property
    def _constructor(self):
        return FrameWithTables


def with_tables(frame: pd.DataFrame, **tables: pd.DataFrame) -> FrameWithTables:
    """``frame`` as a :class:`FrameWithTables` holding ``tables``.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance._frames import with_tables
    >>> t = with_tables(pd.DataFrame({"a": range(30)}), detail=pd.DataFrame({"b": [1]}))
    >>> pd.set_option("display.max_rows", 4); _ = repr(t); pd.reset_option("display.max_rows")
    >>> t.tables["detail"].shape, pd.concat([t, t]).shape
    ((1, 1), (60, 1))
    """
    out = FrameWithTables(frame)
    out.tables = dict(tables)
    return out
