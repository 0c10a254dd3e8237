"""Where the tables of a study are: a folder, a file or a list of files, and a codebook.

Shared by reading (:mod:`alliance.io`) and streaming validation (:mod:`alliance.schema`),
so that both find the same files by the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from alliance import _sniff
from alliance.study import Codebook

__all__ = ["TABLES", "TABLE_IDS", "events_types", "find_table", "locate", "table_stem"]

#: The tables of a study, in the order they are read (all but sessions are optional).
TABLES = ("sessions", "clients", "events", "therapists", "segments", "coders")
#: Identifier columns of the optional tables, read as text beside client/therapist/site.
TABLE_IDS = {"segments": ("coder",), "coders": ("coder",)}


def find_table(folder: Path, table: str) -> Path | None:
    """The file of ``table`` in ``folder`` (any supported suffix), or None; two is an error."""
    hits = [p for p in sorted(folder.iterdir()) if p.is_file() and table_stem(p) == table]
    if len(hits) > 1:
        raise ValueError(
            f"{folder} has {len(hits)} files for the {table} table "
            f"({', '.join(p.name for p in hits)}); keep one"
        )
    return hits[0] if hits else None


def table_stem(path: Path) -> str:
    """A file's name without its table suffix (``sessions.csv.gz`` -> ``sessions``)."""
    name = path.name
    for suffix in sorted(_sniff.FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def locate(
    path: str | Path | Sequence[str | Path],
    clients: str | Path | None,
    events: str | Path | None,
    codebook: str | Path | Codebook | None,
) -> tuple[dict[str, Path], Codebook, Path | None, list[Path]]:
    """The files of a study (table -> path), its codebook and codebook path."""
    found: dict[str, Path] = {}
    book_path: Path | None = None
    paths = [Path(p) for p in path] if isinstance(path, list | tuple) else [Path(path)]
    for p in paths:
        if p.is_dir():
            for table in TABLES:
                hit = find_table(p, table)
                if hit is not None:
                    found[table] = hit
            if (p / "datapackage.json").exists():
                book_path = p / "datapackage.json"
            if "sessions" not in found:
                raise FileNotFoundError(
                    f"no sessions file in folder {p}: name it sessions.csv (or .tsv, .xlsx, "
                    f".parquet, .sav, .dta), or pass the file itself"
                )
        elif not p.exists():
            _sniff.require_file(p)  # raises a FileNotFoundError with close names
        elif p.name == "datapackage.json":
            book_path = p
        else:
            stem = table_stem(p)
            table = stem if stem in TABLES else "sessions"
            if table in found:
                raise ValueError(
                    f"two files were given for the {table} table ({found[table].name} and "
                    f"{p.name}); name the others clients.*, events.*, therapists.*, segments.* "
                    "and coders.*"
                )
            found[table] = p
    if "sessions" not in found:
        raise ValueError("no sessions table among the files given; pass the sessions file")
    if clients is not None:
        found["clients"] = Path(clients)
    if events is not None:
        found["events"] = Path(events)
    if book_path is None and codebook is None:
        candidate = found["sessions"].parent / "datapackage.json"
        book_path = candidate if candidate.exists() else None
    if isinstance(codebook, Codebook):
        book = codebook
    elif codebook is not None:
        book_path = Path(codebook)
        book = Codebook.from_file(book_path)
    else:
        book = Codebook.from_file(book_path) if book_path else Codebook()
    if book_path is not None and book_path.parent == found["sessions"].parent:
        # the codebook describes the folder: read the sibling tables it names
        for res in book.package.get("resources", []):
            table = res.get("name")
            if table not in TABLES or table in found:
                continue
            named = res.get("path")
            hit = (
                book_path.parent / named
                if isinstance(named, str) and (book_path.parent / named).is_file()
                else find_table(book_path.parent, table)
            )
            if hit is not None:
                found[table] = hit
    return found, book, book_path, paths


def events_types(events: pd.DataFrame) -> pd.DataFrame:
    """Give ``resolved`` a nullable boolean type when it holds only true/false/missing."""
    if "resolved" not in events.columns:
        return events
    col = events["resolved"]
    if pd.api.types.is_bool_dtype(col.dtype):
        return events.assign(resolved=col.astype("boolean"))
    text = col.astype("string").str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    mapped = text.map(mapping)
    if (mapped.isna() == text.isna()).all():
        events = events.copy()
        events["resolved"] = mapped.astype("boolean")
    return events
