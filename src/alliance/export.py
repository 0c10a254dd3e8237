"""Write figures and tables for reports: byte-stable files, identifiers refused.

Notebooks call :func:`save_figure` and :func:`save_table` with the ``export_dir``
parameter that ``alliance report`` passes; when it is ``None`` (an interactive run)
nothing is written. Each call also records what it saved, in order, in the folder's
``tables/index.json`` or ``figures/index.json`` (name, file, title or caption, note, alt
text); the report reads these to number the tables and figures of the Word document and
to write one LaTeX table per saved table (:func:`saved`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from alliance.privacy import MIN_CELL, suppress_small_cells
from alliance.tables import ApaTable, codebook_labels
from alliance.terms import term_labeller

__all__ = ["report_table", "save_figure", "save_table", "saved", "IDENTIFIER_COLUMNS", "INDEX"]

#: The file in ``tables/`` and ``figures/`` listing what was saved there, in order.
INDEX = "index.json"

#: Columns of a summary frame that name model terms (shown by their readable labels).
TERM_COLUMNS = ("term", "label", "quantity")

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


def _record(folder: Path, entry: dict) -> None:
    """Add (or replace, keeping its place) the entry of one saved file in the index."""
    index = folder / INDEX
    entries = saved(folder.parent, folder.name)
    names = [e.get("name") for e in entries]
    if entry["name"] in names:
        where = names.index(entry["name"])
        entries[where] = {**entry, "seq": entries[where].get("seq", where + 1)}
    else:
        other = "figures" if folder.name == "tables" else "tables"
        seq = 1 + max(
            (e.get("seq", 0) for k in (folder.name, other) for e in saved(folder.parent, k)),
            default=0,
        )
        entries.append({**entry, "seq": seq})
    tmp = index.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, index)


def saved(export_dir: str | Path, kind: str = "tables") -> list[dict]:
    """What :func:`save_table` or :func:`save_figure` saved into a folder, in order.

    Parameters
    ----------
    export_dir : str or pathlib.Path
        The report folder.
    kind : {"tables", "figures"}

    Returns
    -------
    list of dict
        One entry per file: ``name``, ``file`` (relative to ``kind``), ``seq`` (the order
        of saving across tables and figures), ``title``/``note``
        (tables; ``apa`` is True for an APA table saved as its formatted body, with its
        ``sections``) or ``caption``/``alt`` (figures).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from alliance.export import save_table, saved
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = save_table(pd.DataFrame({"n": [1]}), "sizes", tmp, title="Study sizes")
    ...     [(e["name"], e["title"]) for e in saved(tmp)]
    [('sizes', 'Study sizes')]
    """
    if kind not in ("tables", "figures"):
        raise ValueError(f"kind must be 'tables' or 'figures', not {kind!r}")
    index = Path(export_dir) / kind / INDEX
    if not index.is_file():
        return []
    entries = json.loads(index.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{index} is not a list of saved files; delete it and rerun")
    return entries


def _default_title(name: str) -> str:
    """``early_alliance_apa`` -> ``Early alliance``: a title from a file name."""
    words = [w for w in name.replace("-", "_").split("_") if w and w.lower() not in ("apa",)]
    return " ".join(words).capitalize() if words else name


def _default_caption(fig: Figure, name: str) -> str:
    titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
    titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
    if titles:
        return "; ".join(dict.fromkeys(t.strip() for t in titles if t.strip()))
    return _default_title(name)


def _default_alt(fig: Figure, caption: str) -> str:
    parts = []
    for ax in fig.axes:
        x, y = ax.get_xlabel(), ax.get_ylabel()
        if x or y:
            parts.append(f"{y or 'value'} by {x or 'position'}")
    panels = f" ({len(fig.axes)} panels: " + "; ".join(parts) + ")" if len(parts) > 1 else ""
    single = f" ({parts[0]})" if len(parts) == 1 else ""
    return f"Figure: {caption}{panels or single}"


def save_figure(
    fig: Figure,
    name: str,
    export_dir: str | Path | None,
    *,
    caption: str | None = None,
    alt: str | None = None,
) -> list[Path]:
    """Save a figure as PNG and SVG without timestamps, so reruns give identical bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    name : str
        File name without suffix.
    export_dir : str, pathlib.Path or None
        Report folder; files go into its ``figures/``. Nothing is written when None.
    caption : str, optional
        The figure's caption in the report's Word document (numbered there); default
        the figure's titles, else the name.
    alt : str, optional
        Alternative text for screen readers; default made from the caption and the axes'
        labels.

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
    caption = caption or _default_caption(fig, name)
    _record(
        base.parent,
        {
            "name": name,
            "file": base.with_suffix(".png").name,
            "caption": caption,
            "alt": alt or _default_alt(fig, caption),
        },
    )
    return paths


def save_table(
    table: pd.DataFrame | ApaTable,
    name: str,
    export_dir: str | Path | None,
    *,
    count: str | None = None,
    min_count: int = MIN_CELL,
    title: str | None = None,
    note: str | None = None,
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
    title, note : str, optional
        The table's title and note in the report's Word document and LaTeX tables (an
        APA table's own are the default; else the title is made from ``name``).

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
    apa = isinstance(table, ApaTable)
    entry = {
        "name": name,
        "title": title or (table.title if apa else "") or _default_title(name),
        "note": note if note is not None else (table.note if apa else ""),
        "apa": apa,
        "sections": [list(s) for s in table.sections] if apa else [],
    }
    if apa:
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
        if not entry["note"]:
            entry["note"] = f"Cells describing fewer than {min_count} clients are suppressed."
    path = path.with_suffix(".csv")
    named_index = any(n is not None for n in table.index.names)
    table.to_csv(path, index=named_index, lineterminator="\n")
    _record(path.parent, {**entry, "file": path.name})
    return path


#: Tables shown by :func:`report_table` in this session when nothing is exported.
_SHOWN: dict[str, int] = {}


def report_table(
    table: pd.DataFrame | ApaTable,
    name: str,
    export_dir: str | Path | None,
    *,
    title: str,
    note: str = "",
    count: str | None = None,
    min_count: int = MIN_CELL,
    labels: dict[str, str] | None = None,
    study=None,
    digits: int = 2,
    bounded: tuple[str, ...] | list[str] = (),
    terms: dict[str, str] | None = None,
) -> ApaTable:
    """Save a table for the report and return it as the numbered APA table the page shows.

    The page, the Word document and the LaTeX table then show the same cells: integers as
    integers, other numbers rounded to ``digits``, p as ``.034`` / ``< .001``, headers from
    ``labels`` and the study's codebook (:func:`alliance.tables.codebook_labels`), no index
    column, a numbered title and the note. Small cells are suppressed before anything is
    shown or saved (``count``).

    Parameters
    ----------
    table : pandas.DataFrame or alliance.tables.ApaTable
        A summary table, or an APA table (e.g. ``result.apa_table()``) whose own title and
        note are replaced by ``title`` and ``note`` when those are given.
    name : str
        File name without suffix (``tables/<name>.csv``).
    export_dir : str, pathlib.Path or None
        Report folder; nothing is written when None (the table is still returned).
    title : str
        The table's title.
    note : str, optional
        What the reader needs: N, what the CI is, what was excluded, abbreviations.
    count : str, optional
        Column counting clients per row; rows under ``min_count`` are suppressed.
    min_count : int, default 5
        Smallest cell shown.
    labels : dict, optional
        Column headers, ``{"n_clients": "Clients"}``; they win over the codebook's.
    study : alliance.Study, optional
        Headers for the study's columns come from its codebook.
    digits : int, default 2
        Decimals of the numbers that are not integers.
    bounded : list of str, optional
        Columns whose values cannot exceed 1 in absolute value (a correlation's CI), shown
        without the leading zero like ``r``, ``alpha`` and ``p``.
    terms : dict, optional
        Names of your own for model terms. Every model term (the ``Term`` column of an
        APA model table; the ``term``, ``label`` and ``quantity`` columns of a frame) is
        shown by :func:`alliance.terms.term_label`: codebook labels, within/between,
        previous session, ``×`` for interactions (``alliance_early:prior_negative_therapy``
        reads ``Early alliance × Prior negative therapy``).

    Returns
    -------
    alliance.tables.ApaTable
        Numbered in the order of the report's tables (the number of tables saved so far
        in ``export_dir``, or shown in this session when it is None).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from alliance.export import report_table
    >>> t = pd.DataFrame({"site": ["A", "B"], "n_clients": [40, 3], "mean_wai": [3.912, 4.4]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     shown = report_table(t, "by_site", tmp, title="Alliance by site", count="n_clients",
    ...                          labels={"mean_wai": "WAI-SR item mean"})
    >>> shown.label, shown.to_frame().columns.tolist()
    ('Table 1', ['Site', 'N clients', 'WAI-SR item mean'])
    >>> shown.to_frame().iloc[:, 1:].values.tolist()
    [['40', '3.91'], ['<5', '']]
    """
    names = {**codebook_labels(study), **dict(labels or {}), **dict(terms or {})}
    if isinstance(table, ApaTable):
        table = table.label_terms(names)
        apa = ApaTable(
            table.to_frame(),
            title=title or table.title,
            note=note or table.note,
            sections=table.sections,
        )
    else:
        frame = table.copy()
        for column in TERM_COLUMNS:
            if column in frame.columns and frame[column].dtype == object:
                frame[column] = frame[column].map(term_labeller(names))
        if count is not None:
            frame = suppress_small_cells(frame, count, min_count=min_count)
            extra = f"Cells describing fewer than {min_count} clients are suppressed."
            note = f"{note} {extra}".strip() if extra not in note else note
        heads = {**codebook_labels(study), **dict(labels or {})}
        apa = ApaTable.from_frame(
            frame, title=title, note=note, labels=heads, digits=digits, bounded=bounded
        )
    path = save_table(apa, name, export_dir, title=apa.title, note=apa.note)
    if path is not None:
        names = [e.get("name") for e in saved(Path(export_dir), "tables")]
        apa.number = names.index(name) + 1
    else:
        apa.number = _SHOWN.setdefault(name, len(_SHOWN) + 1)
    return apa
