"""Write figures and tables for reports: byte-stable files, identifiers refused.

Notebooks call :func:`save_figure` and :func:`save_table` with the ``export_dir``
parameter that ``alliance report`` passes; when it is ``None`` (an interactive run)
nothing is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from alliance.privacy import MIN_CELL, suppress_small_cells
from alliance.tables import ApaTable

__all__ = ["save_figure", "save_table", "IDENTIFIER_COLUMNS"]

#: Columns that identify people or exact times and never go into a shared table.
IDENTIFIER_COLUMNS = ("client", "therapist", "date")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _target(export_dir: str | Path | None, name: str, kind: str) -> Path | None:
    if export_dir is None:
        return None
    if not _NAME.match(name):
        raise ValueError(
            f"file name {name!r} may hold only letters, digits, '_', '-' and '.'; "
            "e.g. 'alliance_by_session'"
        )
    folder = Path(export_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def save_figure(fig: Figure, name: str, export_dir: str | Path | None) -> list[Path]:
    """Save a figure as PNG and SVG without timestamps, so reruns give identical bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    name : str
        File name without suffix.
    export_dir : str, pathlib.Path or None
        Report folder; files go into its ``figures/``. Nothing is written when None.

    Returns
    -------
    list of pathlib.Path
        The files written (empty when ``export_dir`` is None).

    Examples
    --------
    >>> import tempfile, matplotlib.pyplot as plt
    >>> from alliance.export import save_figure
    >>> fig, ax = plt.subplots()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.suffix for p in save_figure(fig, "demo", tmp)]
    ['.png', '.svg']
    """
    base = _target(export_dir, name, "figures")
    if base is None:
        return []
    paths = []
    with mpl.rc_context({"svg.hashsalt": "alliance", "svg.fonttype": "path"}):
        for suffix, meta in (
            (".png", {"Software": None}),
            (".svg", {"Date": None, "Creator": None}),
        ):
            path = base.with_suffix(suffix)
            fig.savefig(
                path, metadata=meta, dpi=144 if suffix == ".png" else None, bbox_inches="tight"
            )
            paths.append(path)
    return paths


def save_table(
    table: pd.DataFrame | ApaTable,
    name: str,
    export_dir: str | Path | None,
    *,
    count: str | None = None,
    min_count: int = MIN_CELL,
) -> Path | None:
    """Save a table as CSV for sharing: identifier columns refused, small cells suppressed.

    Parameters
    ----------
    table : pandas.DataFrame or alliance.tables.ApaTable
        A summary table (an APA table is saved as its formatted body).
    name : str
        File name without suffix.
    export_dir : str, pathlib.Path or None
        Report folder; the file goes into its ``tables/``. Nothing is written when None.
    count : str, optional
        Column counting clients per row; rows under ``min_count`` are suppressed.
    min_count : int, default 5
        Smallest cell shown.

    Returns
    -------
    pathlib.Path or None

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from alliance.export import save_table
    >>> t = pd.DataFrame({"site": ["A", "B"], "n_clients": [40, 3], "mean": [3.9, 4.4]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(save_table(t, "by_site", tmp, count="n_clients").read_text())
    site,n_clients,mean
    A,40,3.9
    B,<5,
    <BLANKLINE>
    """
    if isinstance(table, ApaTable):
        table = table.to_frame()
    leaked = [c for c in table.columns if str(c).lower() in IDENTIFIER_COLUMNS]
    if table.index.name and str(table.index.name).lower() in IDENTIFIER_COLUMNS:
        leaked.append(table.index.name)
    if leaked:
        raise ValueError(
            f"table {name!r} has identifier column(s) {leaked}; shared tables hold summaries "
            "only: aggregate first, or drop the column"
        )
    path = _target(export_dir, name, "tables")
    if path is None:
        return None
    if count is not None:
        table = suppress_small_cells(table, count, min_count=min_count)
    path = path.with_suffix(".csv")
    table.to_csv(path, index=False, lineterminator="\n")
    return path
