"""Reading big session files in bounded memory: DuckDB, compact dtypes, batches.

The helpers here serve :func:`alliance.read_study` (``engine="duckdb"``),
:func:`alliance.io.scan_sessions`, :func:`alliance.schema.validate_file` and
:func:`alliance.scoring.score_file`. CSV, TSV and Parquet files are read through DuckDB,
which streams them in Arrow batches; each batch becomes a pandas DataFrame with compact
dtypes (see :data:`DTYPE_RULES`) whose index holds the row numbers of the file (the
first data row is row 1, as :func:`alliance.validate` counts).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance import _sniff
from alliance import instruments as _instruments
from alliance._checks import close_matches

#: pandas dtype of text columns read by the DuckDB engine: Arrow-backed strings.
TEXT = pd.StringDtype("pyarrow")

#: How the DuckDB engine stores each kind of column (documented in docs/scale.md).
DTYPE_RULES = {
    "text": "string[pyarrow] (Arrow-backed text: ~4 bytes + the characters per value)",
    "item": "Int8 (nullable, 2 bytes per value) for item columns <instrument>_<k> of the "
    "registry whose values are whole numbers from -128 to 127",
    "integer": "int32 (or int64 when the values need it); nullable Int32/Int64 with missing values",
    "float": "float64, unchanged",
    "boolean": "bool, or nullable boolean with missing values",
    "other": "as Arrow converts it (dates, timestamps)",
}

_STREAM_FORMATS = ("csv", "tsv", "parquet")
_INT_SQL = {"Int8": "TINYINT", "Int16": "SMALLINT", "Int32": "INTEGER", "Int64": "BIGINT"}
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
_INT_TYPES += ("UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux/macOS
        return 8 * 2**30


def connect(memory_limit: int | None = None, temp_directory: str | None = None):
    """A DuckDB connection with a memory limit (default: half of the available memory).

    DuckDB spills sorts and aggregations beyond the limit to ``temp_directory``.
    """
    import duckdb

    limit = memory_limit or max(256 * 2**20, available_memory() // 2)
    config = {
        "memory_limit": f"{limit // 2**20}MB",
        "threads": max(1, min(os.cpu_count() or 1, 8)),
        "preserve_insertion_order": True,
    }
    if temp_directory is not None:
        config["temp_directory"] = temp_directory
    return duckdb.connect(config=config)


def quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(text: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def file_format(path: Path) -> str:
    """csv, tsv or parquet; a clear error for the formats the streaming engine cannot read."""
    fmt = _sniff.format_of(path)
    if fmt not in _STREAM_FORMATS:
        raise ValueError(
            f"{path.name} is a {fmt} file; the DuckDB engine and the streaming functions read "
            "CSV, TSV and Parquet. Use engine='pandas', or convert the file once with "
            "alliance.io.write_table(alliance.io.read_table(path), 'sessions.parquet')"
        )
    return fmt


@dataclass
class Source:
    """A CSV/TSV/Parquet file as DuckDB sees it."""

    path: Path
    fmt: str
    sql: str
    columns: list[str]
    types: dict[str, str]
    n_rows: int | None
    row_numbers: bool = False
    extra: dict = field(default_factory=dict)


def header_of(path: Path, dialect: tuple = (None, None, None)) -> list[str]:
    """Column names of a CSV/TSV/Parquet file (duplicated names refused)."""
    _sniff.require_file(path)
    fmt = file_format(path)
    _sniff.check_binary(path, fmt)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        _sniff.check_header(names, path.name)
        return names
    found = _sniff.sniff(path, fmt, sep=dialect[0], decimal=dialect[1], encoding=dialect[2])
    with _sniff.open_text(path, found.encoding) as handle:
        import csv

        header = next(csv.reader(handle, delimiter=found.sep), None) or []
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    _sniff.check_header(header, path.name)
    return header


def transcode(path: Path, encoding: str) -> tempfile.TemporaryDirectory:
    """A UTF-8 copy of a text file in another encoding, in a scratch folder of its own.

    DuckDB reads UTF-8 (and its ``latin-1`` refuses the bytes 0x80-0x9F, which cp1252
    uses for the euro sign and curly quotes), so a cp1252 or latin-1 file is decoded by
    Python's codec, a megabyte at a time, into ``<folder>/utf8.csv``. Line ends are
    kept, so line numbers stay the file's. The folder goes when the returned object
    is cleaned up or collected.
    """
    scratch = temporary_folder()
    target = Path(scratch.name) / "utf8.csv"
    try:
        with (
            _sniff.open_text(path, encoding) as src,
            open(target, "w", encoding="utf-8", newline="") as out,
        ):
            while chunk := src.read(2**20):
                out.write(chunk)
    except UnicodeDecodeError as err:
        scratch.cleanup()
        raise _sniff.ReadError(
            f"{path.name} is not valid {encoding} beyond its first part (byte {err.start} "
            "of a later chunk); pass its real encoding (encoding=... / --encoding)"
        ) from None
    except BaseException:
        scratch.cleanup()
        raise
    return scratch


def _csv_sql(path: Path, fmt: str, sample_all: bool, extra: dict | None = None) -> str:
    extra = extra or {}
    found = extra.get("dialect")
    sep = found.sep if found else ("\t" if fmt == "tsv" else ",")
    sep = "\\t" if sep == "\t" else sep.replace("'", "''")
    sample = ", sample_size=-1" if sample_all else ""
    options = ""
    path = extra.get("read_path") or path  # the UTF-8 copy of a cp1252/latin-1 file
    if found is not None:
        if found.decimal == ",":
            options += ", decimal_separator=','"
    ids = extra.get("ids") or []
    if ids:
        options += ", types={" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in ids) + "}"
    # no date/time detection: text stays text, as pandas.read_csv leaves it
    return (
        f"read_csv({literal(path)}, header=true, delim=E'{sep}'{sample}{options}, "
        "auto_type_candidates=['BOOLEAN', 'BIGINT', 'DOUBLE', 'VARCHAR'])"
    )


def open_source(
    con, path: str | Path, *, dialect: tuple = (None, None, None), ids: Sequence[str] = ()
) -> Source:
    """Describe a file: its columns, DuckDB types and (for Parquet) its row count.

    ``ids`` (file column names; by default client, therapist and site) are read as text.
    """
    path = Path(path)
    header = header_of(path, dialect)
    ids = list(ids) or [c for c in header if c in _sniff.ID_COLUMNS]
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        n_rows = pq.ParquetFile(path).metadata.num_rows
        sql = f"read_parquet({literal(path)}, file_row_number=true)"
        row_numbers = True
    else:
        n_rows = None
        found = _sniff.sniff(path, fmt, sep=dialect[0], decimal=dialect[1], encoding=dialect[2])
        extra = {"dialect": found, "ids": ids}
        if found.encoding not in ("utf-8", "utf-8-sig"):
            scratch = transcode(path, found.encoding)
            extra["scratch"] = scratch  # kept alive with the Source
            extra["read_path"] = Path(scratch.name) / "utf8.csv"
        sql = _csv_sql(path, fmt, sample_all=False, extra=extra)
        row_numbers = False
    try:
        described = translate(path, lambda: con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall())
    except _sniff.ReadError:
        if fmt != "parquet":
            _refuse_ragged(path, found)
        if fmt == "parquet" or not ids:
            raise
        extra = {**extra, "ids": []}  # DuckDB's sniffer saw other names: cast later
        sql = _csv_sql(path, fmt, sample_all=False, extra=extra)
        described = translate(path, lambda: con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall())
    types = {
        str(name): str(kind)
        for name, kind, *_ in described
        if name != "file_row_number" and not str(name).startswith("__index_level_")
    }
    seen = list(types)
    if fmt != "parquet" and (
        len(seen) != len(header)
        or any(
            str(h).strip() and str(h).strip() != a.strip()
            for h, a in zip(header, seen, strict=False)
        )
    ):
        _refuse_ragged(path, found)
        raise _sniff.ReadError(
            f"{path.name} has rows with a different number of fields than its header "
            f"({len(header)} columns); fix those lines (a separator inside a value needs "
            "quotes), or pass the right separator (sep=... / --sep)"
        )
    source = Source(path, fmt, sql, list(types), types, n_rows, row_numbers)
    source.extra["ids"] = [c for c in ids if c in types]
    if fmt != "parquet":
        source.extra["dialect"] = found
        for key in ("scratch", "read_path"):
            if key in extra:
                source.extra[key] = extra[key]
    return source


def _refuse_ragged(path: Path, dialect) -> None:
    """Name the lines of rows with another number of fields than the header, if any."""
    width, ragged = _sniff.ragged_lines(path, dialect)
    if ragged:
        raise _sniff.ReadError(_sniff.ragged_message(path.name, width, dialect.sep, ragged))


def translate(path: Path, run):
    """Run ``run()``; a DuckDB error becomes a one-line :class:`ReadError` naming the fix."""
    import duckdb

    try:
        return run()
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as error:
        raise _sniff.ReadError(duckdb_message(path, error)) from None


def duckdb_message(path: Path, error: Exception) -> str:
    """What a DuckDB reading error means, in one line with the fix."""
    text = str(error)
    line = re.search(r"[Ll]ine:? ?(\d+)", text)
    where = f" (near line {line.group(1)})" if line else ""
    if "Expected Number of Columns" in text or "too many columns" in text.lower():
        return (
            f"{path.name} has rows with a different number of fields than its header{where}; "
            "fix those lines, or pass the right separator (sep=... / --sep)"
        )
    lower = text.lower()
    if "sniffing file" in lower or "detect the csv parsing dialect" in lower:
        return (
            f"{path.name} cannot be read as CSV: its separator and quoting could not be told "
            "(rows of different lengths, or stray quotes); fix those lines, or pass the "
            "separator (sep=... / --sep)"
        )
    if "invalid unicode" in lower or "not utf-8 encoded" in lower or "encoded" in lower:
        return (
            f"{path.name} is not valid UTF-8{where}; pass its encoding, e.g. "
            "encoding='cp1252' (--encoding cp1252)"
        )
    if "Could not convert" in text or "Conversion" in type(error).__name__:
        return (
            f"{path.name} has a value that does not fit its column's type{where}; fix the "
            "value, or read the file with engine='pandas'"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"{path.name} cannot be read as a table{where} ({first[:200]}); export it again"


def csv_error_retry(con, source: Source, query) -> object:
    """Run ``query(source)``; when DuckDB's type guess from a sample fails, sniff all rows."""
    import duckdb

    try:
        return query(source)
    except duckdb.ConversionException as error:
        if source.fmt == "parquet" or source.extra.get("sample_all"):
            raise _sniff.ReadError(duckdb_message(source.path, error)) from None
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as error:
        raise _sniff.ReadError(duckdb_message(source.path, error)) from None
    source.sql = _csv_sql(source.path, source.fmt, sample_all=True, extra=source.extra)
    source.extra["sample_all"] = True
    described = translate(
        source.path, lambda: con.execute(f"DESCRIBE SELECT * FROM {source.sql}").fetchall()
    )
    source.types = {str(name): str(kind) for name, kind, *_ in described}
    return translate(source.path, lambda: query(source))


def as_parquet(con, source: Source, folder: str) -> Source:
    """A Parquet copy of a CSV/TSV source (in the file's row order), with row numbers."""
    if source.fmt == "parquet":
        return source
    target = Path(folder) / "converted.parquet"

    def copy(src: Source):
        return con.execute(
            f"COPY (SELECT * FROM {src.sql}) TO {literal(target)} (FORMAT parquet)"
        ).fetchall()

    csv_error_retry(con, source, copy)
    converted = open_source(con, target)
    converted.path = source.path  # messages name the user's file
    converted.extra["converted_from"] = str(source.path)
    return converted


def count_rows(con, source: Source) -> int:
    """Rows in the file (exact; a scan for CSV)."""
    if source.n_rows is None:
        source.n_rows = int(
            csv_error_retry(
                con, source, lambda s: con.execute(f"SELECT count(*) FROM {s.sql}").fetchall()[0]
            )[0]
        )
    return source.n_rows


def estimate_rows(path: Path) -> int:
    """Rows of a CSV/TSV file estimated from the length of its first lines."""
    import gzip

    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as raw, gzip.open(raw) as handle:
            head = handle.read(2**20)
            used = max(raw.tell(), 1)
        size = int(size * len(head) / used)
    else:
        with open(path, "rb") as handle:
            head = handle.read(2**20)
    lines = max(head.count(b"\n") - 1, 1)
    return int(size / max(len(head) / (lines + 1), 1))


def estimate_bytes(source: Source, columns: Sequence[str], *, compact: bool) -> int:
    """Memory a full load would take: pandas default dtypes, or the compact ones."""
    n_rows = source.n_rows if source.n_rows is not None else estimate_rows(source.path)
    per_row = 0
    for col in columns:
        kind = source.types[col].upper()
        if kind.startswith(("VARCHAR", "STRING")):
            per_row += 16 if compact else 64
        elif kind in _INT_TYPES or kind in _FLOAT_TYPES:
            per_row += (2 if _is_item(col) else 4) if compact else 9
        else:
            per_row += 8
    return int(n_rows * per_row * (1.2 if compact else 1.6))  # conversion overhead


def _is_item(column: str) -> bool:
    match = re.match(r"^(?P<name>.+)_(?P<item>\d+)$", str(column))
    if not match:
        return False
    try:
        ins = _instruments.get(match["name"])
    except KeyError:
        return False
    return int(match["item"]) <= ins.n_items


def select_columns(
    source: Source,
    usecols: Sequence[str] | None,
    rename: dict[str, str] | None,
) -> list[str]:
    """File column names to read; ``usecols`` names columns after renaming."""
    rename = dict(rename or {})
    if usecols is None:
        return list(source.columns)
    if isinstance(usecols, str):
        raise TypeError(f"usecols must be a list of column names, not the string {usecols!r}")
    back = {new: old for old, new in rename.items()}
    out, missing = [], []
    for name in usecols:
        original = back.get(name, name)
        if original in source.columns:
            if original not in out:
                out.append(original)
        else:
            missing.append(name)
    if missing:
        have = [rename.get(c, c) for c in source.columns]
        tips = [
            f"{m!r}"
            + (f" (did you mean {close_matches(m, have)[0]!r}?)" if close_matches(m, have) else "")
            for m in missing
        ]
        raise KeyError(
            f"usecols names column(s) {', '.join(tips)} that {source.path.name} lacks; "
            "its columns are " + ", ".join(have)
        )
    return out


def plan_dtypes(con, source: Source, columns: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """Column -> (pandas dtype, SQL cast or None), from one DuckDB pass over the numbers."""
    ids = set(source.extra.get("ids") or ())
    numeric = [
        c
        for c in columns
        if c not in ids
        and source.types[c].upper() in _INT_TYPES
        or (source.types[c].upper() in _FLOAT_TYPES and _is_item(c))
        or source.types[c].upper() == "BOOLEAN"
    ]
    stats: dict[str, tuple] = {}
    if numeric:
        parts = []
        for c in numeric:
            q = quote(c)
            if source.types[c].upper() == "BOOLEAN":
                parts += [f"count({q})", "NULL", "NULL", "NULL"]
                continue
            parts += [f"count({q})", f"min({q})", f"max({q})"]
            if source.types[c].upper() in _FLOAT_TYPES:
                parts.append(f"bool_and({q} IS NULL OR {q} = trunc({q}))")
            else:
                parts.append("true")
        query = f"SELECT count(*), {', '.join(parts)} FROM {{sql}}"
        row = csv_error_retry(
            con, source, lambda s: con.execute(query.format(sql=s.sql)).fetchall()[0]
        )
        total = row[0]
        for i, c in enumerate(numeric):
            n, low, high, whole = row[1 + 4 * i : 5 + 4 * i]
            stats[c] = (n < total, low, high, whole)
    plan: dict[str, tuple[str, str | None]] = {}
    ids = set(source.extra.get("ids") or ())
    for c in columns:
        kind = source.types[c].upper()
        if c in ids and not kind.startswith("VARCHAR"):
            plan[c] = ("string", "ID_FLOAT" if kind in _FLOAT_TYPES else "VARCHAR")
        elif kind.startswith("VARCHAR"):
            plan[c] = ("string", None)
        elif kind == "BOOLEAN":
            plan[c] = ("boolean" if stats[c][0] else "bool", None)
        elif c in stats:
            has_null, low, high, whole = stats[c]
            empty = low is None
            if _is_item(c) and whole and (empty or (-128 <= low and high <= 127)):
                plan[c] = ("Int8", "TINYINT")
            elif kind in _FLOAT_TYPES:
                plan[c] = ("float64", None)
            else:
                fits = empty or (-(2**31) <= low and high < 2**31)
                width = "32" if fits else "64"
                plan[c] = (("Int" if has_null else "int") + width, _INT_SQL[f"Int{width}"])
        elif kind in _FLOAT_TYPES:
            plan[c] = ("float64", "DOUBLE")
        else:
            plan[c] = ("other", None)
    return plan


def select_sql(plan: dict[str, tuple[str, str | None]], extra: Sequence[str] = ()) -> str:
    """The SELECT list that casts each column to its compact type."""
    parts = []
    for c, (_, cast) in plan.items():
        q = quote(c)
        if cast == "ID_FLOAT":  # identifiers stored as numbers: 12.0 -> '12'
            parts.append(
                f"CASE WHEN {q} = trunc({q}) THEN CAST(CAST({q} AS HUGEINT) AS VARCHAR) "
                f"ELSE CAST({q} AS VARCHAR) END AS {q}"
            )
        else:
            parts.append(f"CAST({q} AS {cast}) AS {q}" if cast else q)
    return ", ".join([*parts, *extra])


def to_pandas(batch, plan: dict[str, tuple[str, str | None]]) -> pd.DataFrame:
    """An Arrow batch -> pandas DataFrame with the planned dtypes."""
    import pyarrow as pa

    data = {}
    for c, (dtype, _) in plan.items():
        arr = batch.column(c)
        if isinstance(arr, pa.Array):
            arr = pa.chunked_array([arr], type=arr.type)
        if dtype == "string":
            data[c] = pd.array(TEXT.__from_arrow__(arr.cast(pa.large_string())), dtype=TEXT)
        elif dtype.startswith("Int"):
            ext = pd.api.types.pandas_dtype(dtype)
            data[c] = ext.__from_arrow__(arr.cast(getattr(pa, dtype.lower())()))
        elif dtype.startswith("int"):
            data[c] = arr.cast(getattr(pa, dtype)()).to_numpy()
        elif dtype == "boolean":
            data[c] = pd.BooleanDtype().__from_arrow__(arr)
        elif dtype == "bool":
            data[c] = arr.to_numpy().astype(bool)
        elif dtype == "float64":
            data[c] = arr.cast(pa.float64()).to_numpy()
        else:
            data[c] = arr.to_pandas()
    return pd.DataFrame(data, copy=False)


def iter_frames(
    con,
    source: Source,
    plan: dict[str, tuple[str, str | None]],
    *,
    batch_rows: int,
    row_column: str | None = None,
    from_sql: str | None = None,
    progress: bool = False,
    desc: str = "reading",
) -> Iterator[pd.DataFrame]:
    """Batches of about ``batch_rows`` rows in file order; index = file row numbers (from 1).

    ``row_column`` names a column of ``from_sql`` holding 0-based file row numbers (for a
    reordered source); otherwise rows are counted in the order read.
    """
    from tqdm import tqdm

    extra = [quote(row_column)] if row_column else []
    sql = f"SELECT {select_sql(plan, extra)} FROM {from_sql or source.sql}"

    def run(src: Source):
        query = sql if from_sql else f"SELECT {select_sql(plan, extra)} FROM {src.sql}"
        return con.sql(query).to_arrow_reader(batch_rows)

    reader = csv_error_retry(con, source, run)
    bar = tqdm(total=source.n_rows, desc=desc, unit="rows", unit_scale=True, disable=not progress)

    def gathered():
        """DuckDB's record batches joined into tables of at least ``batch_rows`` rows."""
        import duckdb
        import pyarrow as pa

        pending, n = [], 0
        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except duckdb.OutOfMemoryException:
                raise
            except (duckdb.Error, pa.ArrowInvalid) as error:
                raise _sniff.ReadError(duckdb_message(source.path, error)) from None
            if batch.num_rows:
                pending.append(batch)
                n += batch.num_rows
            if n >= batch_rows:
                yield pa.Table.from_batches(pending)
                pending, n = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    seen = 0
    try:
        for table in gathered():
            n = table.num_rows
            frame = to_pandas(table, plan)
            if row_column:
                rows = np.asarray(table.column(row_column).to_numpy(), dtype=np.int64) + 1
                frame.index = pd.Index(rows, name="row")
            else:
                frame.index = pd.RangeIndex(seen + 1, seen + n + 1, name="row")
            seen += n
            bar.update(n)
            del table
            yield frame
    finally:
        bar.close()


def temporary_folder() -> tempfile.TemporaryDirectory:
    """A scratch folder for DuckDB spill files and converted CSV files."""
    return tempfile.TemporaryDirectory(prefix="alliance-")
