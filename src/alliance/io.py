"""Reading and writing study tables: CSV, TSV, Excel, Parquet, SPSS .sav, Stata .dta.

Input files are only ever opened for reading. Wide layouts (one row per client, one
column per session) convert to the long layout the rest of the package uses, and back.

Big CSV, TSV and Parquet files are read through DuckDB in batches with compact dtypes
(``read_study(..., engine="duckdb")``, chosen by ``engine="auto"`` when a pandas load
would take much of the memory), or streamed a batch of whole clients at a time with
:func:`scan_sessions`; see docs/scale.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alliance import _sniff
from alliance._checks import close_matches, require_columns, require_frame
from alliance._layout import TABLE_IDS, TABLES, events_types, locate, table_stem
from alliance.study import Codebook, Study

__all__ = [
    "FORMATS",
    "read_table",
    "read_columns",
    "read_value_labels",
    "write_table",
    "read_study",
    "write_study",
    "wide_to_long",
    "long_to_wide",
    "scan_sessions",
    "choose_engine",
    "ENGINES",
    "ReadError",
]

#: Engines of :func:`read_study`: "auto" chooses between "pandas" and "duckdb".
ENGINES = ("auto", "pandas", "duckdb")

logger = logging.getLogger(__name__)

#: File suffix -> format name understood by :func:`read_table` and :func:`write_table`.
FORMATS = _sniff.FORMATS

#: A file that cannot be read as a table (re-exported from the reading helpers).
ReadError = _sniff.ReadError


def _format_of(path: Path) -> str:
    return _sniff.format_of(path)


def _id_text(values: pd.Series) -> pd.Series:
    """Identifiers as text: ``12`` and ``12.0`` stored as numbers become ``"12"``."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("string").astype(object)

    def one(v):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return v if v is not pd.NA else None
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return str(int(v))
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        return str(v)

    return pd.Series([one(v) for v in values.tolist()], index=values.index, dtype=object)


def _file_ids(header, columns: Mapping[str, str] | None, ids: Sequence[str] | None) -> list[str]:
    """File column names to read as identifiers (``ids`` are named after renaming)."""
    rename = dict(columns or {})
    wanted = set(_sniff.ID_COLUMNS) | set(ids or ())
    return [c for c in header if rename.get(c, c) in wanted]


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    sheet: str | int = 0,
    usecols: Sequence[str] | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read one table from a file, choosing the reader by the file's suffix.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv``, ``.csv.gz``, ``.tsv``, ``.xlsx``, ``.parquet``, ``.sav`` or ``.dta`` file.
    columns : mapping, optional
        Renames applied after reading, e.g. ``{"ClientID": "client"}``.
    sheet : str or int, default 0
        The Excel sheet to read.
    usecols : list of str, optional
        Read only these columns (named as after ``columns`` renames); all by default.
    sep, decimal, encoding : str, optional
        The CSV/TSV dialect: separator (``,`` ``;`` tab ``|``), decimal mark (``.`` or
        ``,``) and encoding (``utf-8``, ``cp1252``, ``latin-1``, ...). Detected from the
        file when not given (a UTF-8 byte-order mark is recognised).
    ids : list of str, optional
        Further identifier columns (after renames) read as text, beside ``client``,
        ``therapist`` and ``site``.

    Returns
    -------
    pandas.DataFrame
        The table. Identifier columns hold text exactly as written (``01`` stays
        ``01``; a number stored in a typed format becomes ``"12"``, not ``"12.0"``).
        SPSS and Stata value labels are not applied (codes are kept), so item values
        keep their numeric scoring.

    Raises
    ------
    alliance.io.ReadError
        The file is not a table of its format: empty, binary, wrongly encoded,
        duplicated column names, or rows with a different number of fields than the
        header (named by line).

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> sessions = alliance.io.read_table(dataset_path("demo") / "sessions.csv.gz")
    >>> sessions.shape[0] > 1000
    True
    """
    path = Path(path)
    _sniff.require_file(path)
    fmt = _format_of(path)
    _sniff.check_binary(path, fmt)
    wanted = None
    if usecols is not None:
        if isinstance(usecols, str):
            raise TypeError(f"usecols must be a list of column names, not the string {usecols!r}")
        back = {new: old for old, new in dict(columns or {}).items()}
        wanted = [back.get(c, c) for c in usecols]
    try:
        frame = _read_any(path, fmt, sheet, wanted, sep, decimal, encoding, columns, ids)
    except (_sniff.ReadError, KeyError, TypeError, FileNotFoundError):
        raise
    except (ValueError, OSError, UnicodeError, pd.errors.ParserError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _sniff.ReadError(
            f"{path.name} cannot be read as a {fmt} table ({first}); open it in the program "
            "that made it and export it again"
        ) from None
    if columns:
        frame = frame.rename(columns=dict(columns))
    logger.info("read %s rows x %s columns from %s", *frame.shape, path)
    return frame


def _read_any(path, fmt, sheet, wanted, sep, decimal, encoding, columns, ids) -> pd.DataFrame:
    if fmt in ("csv", "tsv"):
        dialect = _sniff.sniff(path, fmt, sep=sep, decimal=decimal, encoding=encoding)
        header = _sniff.scan_csv(path, dialect)
        if wanted is not None:
            missing = [c for c in wanted if c not in header]
            if missing:
                raise KeyError(
                    f"usecols names column(s) {missing} that {path.name} lacks; its columns "
                    f"are {', '.join(header)}"
                )
        text = _file_ids(header, columns, ids)
        frame = pd.read_csv(
            path,
            sep=dialect.sep,
            decimal=dialect.decimal,
            encoding=dialect.encoding,
            usecols=wanted,
            dtype={c: str for c in text},
            keep_default_na=False,
            na_values=_sniff.NA_VALUES,
            skip_blank_lines=True,
            index_col=False,
        )
        frame.columns = header if wanted is None else [c for c in header if c in wanted]
        return frame
    if fmt == "excel":
        top = pd.read_excel(path, sheet_name=sheet, header=None, nrows=1)
        _sniff.check_header([str(c) for c in top.iloc[0].tolist()] if len(top) else [], path.name)
        frame = pd.read_excel(path, sheet_name=sheet, usecols=wanted)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        _sniff.check_header(pq.read_schema(path).names, path.name)
        frame = pd.read_parquet(path, columns=wanted)
    elif fmt == "spss":
        frame = pd.read_spss(path, convert_categoricals=False, usecols=wanted)
    else:
        frame = pd.read_stata(path, convert_categoricals=False, columns=wanted)
    for col in _file_ids(list(frame.columns), columns, ids):
        frame[col] = _id_text(frame[col])
    return frame


def read_columns(
    path: str | Path,
    *,
    sheet: str | int = 0,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
) -> list[str]:
    """The column names of a table file, without reading its rows.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> alliance.io.read_columns(dataset_path("demo") / "clients.csv")[:3]
    ['client', 'therapist', 'site']
    """
    path = Path(path)
    _sniff.require_file(path)
    fmt = _format_of(path)
    _sniff.check_binary(path, fmt)
    try:
        if fmt in ("csv", "tsv"):
            dialect = _sniff.sniff(path, fmt, sep=sep, decimal=decimal, encoding=encoding)
            return [str(c) for c in _sniff.scan_csv(path, dialect)]
        if fmt == "excel":
            top = pd.read_excel(path, sheet_name=sheet, header=None, nrows=1)
            return [str(c) for c in top.iloc[0].tolist()] if len(top) else []
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if fmt == "spss":
            import pyreadstat

            return list(pyreadstat.read_sav(str(path), metadataonly=True)[1].column_names)
        import pyreadstat

        return list(pyreadstat.read_dta(str(path), metadataonly=True)[1].column_names)
    except (_sniff.ReadError, FileNotFoundError):
        raise
    except Exception as error:  # any reader's error becomes one clear message
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _sniff.ReadError(
            f"{path.name} cannot be read as a {fmt} table ({first}); open it in the program "
            "that made it and export it again"
        ) from None


def read_value_labels(path: str | Path) -> dict[str, dict]:
    """SPSS or Stata value labels of a file: column -> {code: label} (empty for others).

    Reading keeps the codes (so items keep their scoring); these labels let a codebook
    show what the codes of a condition or termination reason mean.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> alliance.io.read_value_labels(dataset_path("demo") / "clients.csv")
    {}
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt not in ("spss", "stata"):
        return {}
    import pyreadstat

    reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
    try:
        meta = reader(str(path), metadataonly=True)[1]
    except Exception as error:
        raise _sniff.ReadError(
            f"{path.name} cannot be read as a {fmt} file ({error}); export it again"
        ) from None
    labels = meta.variable_value_labels or {}
    return {str(col): dict(values) for col, values in labels.items() if values}


def write_table(data: pd.DataFrame, path: str | Path) -> Path:
    """Write one table, choosing the writer by the file's suffix.

    Parameters
    ----------
    data : pandas.DataFrame
        The table.
    path : str or pathlib.Path
        Destination; any suffix :func:`read_table` reads.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = alliance.io.write_table(study.clients, f"{tmp}/clients.parquet")
    ...     back = alliance.io.read_table(out)
    >>> back.shape == study.clients.shape
    True
    """
    data = require_frame(data).copy(deep=False)
    data.attrs = {}  # reading notes (engine, dialect, dates) are not part of the table
    path = Path(path)
    fmt = _format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        data.to_csv(path, index=False)
    elif fmt == "tsv":
        data.to_csv(path, sep="\t", index=False)
    elif fmt == "excel":
        data.to_excel(path, index=False)
    elif fmt == "parquet":
        data.to_parquet(path, index=False)
    elif fmt == "spss":
        import pyreadstat

        pyreadstat.write_sav(_plain_types(data), str(path))
    else:
        _plain_types(data).to_stata(path, write_index=False, version=118)
    return path


def _plain_types(data: pd.DataFrame) -> pd.DataFrame:
    """SPSS and Stata hold no nullable or boolean types: store them as float/str."""
    out = data.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.BooleanDtype):
            out[col] = out[col].astype("Float64").astype(float)
        elif isinstance(dtype, pd.core.arrays.integer.IntegerDtype | pd.Float64Dtype):
            out[col] = out[col].astype(float)
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            continue
        elif not pd.api.types.is_numeric_dtype(dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str)
    return out


def choose_engine(
    path: str | Path,
    *,
    usecols: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    memory: int | None = None,
) -> str:
    """The engine ``read_study(..., engine="auto")`` uses for one file.

    "pandas" for formats other than CSV, TSV and Parquet and for files whose pandas
    load (estimated from the Parquet metadata's row count, or a CSV file's size, times
    the columns read) takes at most a quarter of the available memory or 1 GiB;
    "duckdb" otherwise (batched reading with compact dtypes, about a quarter of the
    memory).

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    usecols : list of str, optional
        The columns that would be read (after ``columns`` renames).
    columns : mapping, optional
        Column renames, as in :func:`read_study`.
    memory : int, optional
        Bytes of memory to plan for; by default what the system has available.

    Returns
    -------
    str
        "pandas" or "duckdb".

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> alliance.io.choose_engine(dataset_path("demo") / "sessions.csv.gz")
    'pandas'
    """
    from alliance import _stream

    path = Path(path)
    if _format_of(path) not in ("csv", "tsv", "parquet"):
        return "pandas"
    budget = min((memory or _stream.available_memory()) // 4, 2**30)
    _sniff.require_file(path)
    size = path.stat().st_size * (6 if path.name.lower().endswith(".gz") else 1)
    if size * 12 <= budget and size <= 64 * 2**20:
        return "pandas"  # small files: no DuckDB at all
    con = _stream.connect()
    try:
        source = _stream.open_source(con, path)
    finally:
        con.close()
    cols = _stream.select_columns(source, usecols, dict(columns or {}))
    need = _stream.estimate_bytes(source, cols, compact=False)
    return "pandas" if need <= budget else "duckdb"


def _sessions_codebook_ids(path: Path) -> list[str]:
    """The sessions identifiers of a ``datapackage.json`` beside ``path`` (none without one)."""
    book_path = path.parent / "datapackage.json"
    if not book_path.is_file():
        return []
    return _codebook_ids(Codebook.from_file(book_path), "sessions")


def _codebook_ids(book: Codebook, table: str) -> list[str]:
    """Columns the codebook makes identifiers or text in one table (read as text)."""
    return book.identifiers(table)


def _read_duckdb(
    path: Path,
    *,
    dialect: tuple = (None, None, None),
    ids: Sequence[str] | None = None,
    columns: Mapping[str, str] | None,
    usecols: Sequence[str] | None,
    progress: bool,
    batch_rows: int = 1_000_000,
    check_memory: bool = False,
) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file through DuckDB in batches, with compact dtypes."""
    from alliance import _stream

    rename = dict(columns or {})
    with _stream.temporary_folder() as tmp:
        con = _stream.connect(temp_directory=tmp)
        try:
            file_ids = _file_ids(_stream.header_of(path, dialect), rename, ids)
            source = _stream.open_source(con, path, dialect=dialect, ids=file_ids)
            cols = _stream.select_columns(source, usecols, rename)
            if check_memory:
                need = _stream.estimate_bytes(source, cols, compact=True)
                have = _stream.available_memory()
                if need > 0.7 * have:
                    raise MemoryError(
                        f"{path.name} needs about {need / 2**30:.1f} GB in memory even with "
                        f"compact dtypes, and {have / 2**30:.1f} GB are available. Read fewer "
                        "columns (read_study(..., usecols=[...])), or stream the file: "
                        "alliance.io.scan_sessions, alliance.schema.validate_file and "
                        "alliance.scoring.score_file work a batch at a time"
                    )
            plan = _stream.plan_dtypes(con, source, cols)
            parts = list(
                _stream.iter_frames(
                    con, source, plan, batch_rows=batch_rows, progress=progress, desc=path.name
                )
            )
        finally:
            con.close()
    if parts:
        frame = pd.concat(parts, copy=False) if len(parts) > 1 else parts[0]
        del parts
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame = frame.reset_index(drop=True)
    if rename:
        frame = frame.rename(columns=rename)
    logger.info("read %s rows x %s columns from %s with DuckDB", *frame.shape, path)
    return frame


def read_study(
    path: str | Path | Sequence[str | Path],
    *,
    clients: str | Path | None = None,
    events: str | Path | None = None,
    codebook: str | Path | Codebook | None = None,
    columns: Mapping[str, str] | None = None,
    sheet: str | int = 0,
    name: str | None = None,
    engine: str = "auto",
    usecols: Sequence[str] | None = None,
    progress: bool = False,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    ids: Sequence[str] | None = None,
) -> Study:
    """Read a study from one file of sessions, a folder, or several files.

    Parameters
    ----------
    path : str, pathlib.Path or list of them
        A sessions file (any format :func:`read_table` reads); or a folder holding
        ``sessions.*``, optionally ``clients.*``, ``events.*``, ``therapists.*``,
        ``segments.*``, ``coders.*`` (see :class:`~alliance.Study`) and ``datapackage.json``;
        or a list of files whose names say which table each is
        (``sessions.csv``, ``clients.sav``, ...).
    clients, events : str or pathlib.Path, optional
        Paths of the clients and events tables when not found in ``path``.
    codebook : str, pathlib.Path or Codebook, optional
        A ``datapackage.json``. Found next to the data when not given.
    columns : mapping, optional
        Column renames applied to every table, e.g. ``{"ClientID": "client"}``.
    sheet : str or int, default 0
        The Excel sheet to read.
    name : str, optional
        A label for reports; defaults to the folder or file name.
    engine : {"auto", "pandas", "duckdb"}, default "auto"
        How each table is read. "pandas" reads the whole file with pandas' default
        dtypes. "duckdb" (CSV, TSV and Parquet) reads it through DuckDB in batches
        with compact dtypes: text as ``string[pyarrow]``, registry item columns
        (``wai_sr_3``) as nullable ``Int8``, other whole numbers as ``int32`` (nullable
        ``Int32`` with missing values), other numbers as ``float64``; values are never
        changed, only stored in less memory (about a quarter of pandas'). "auto" uses
        "duckdb" when a pandas load would take more than a quarter of the available
        memory or 1 GiB (see :func:`choose_engine`), and raises a ``MemoryError``
        pointing to the streaming functions when even the compact load would not fit.
    usecols : list of str, optional
        Read only these columns of the sessions table (named as after ``columns``
        renames), e.g. the identifiers and one instrument's items.
    progress : bool, default False
        Show a progress bar while the DuckDB engine reads.
    sep, decimal, encoding : str, optional
        CSV/TSV dialect, as for :func:`read_table`; detected when not given.
    ids : list of str, optional
        Further identifier columns (named as after ``columns`` renames) read as text,
        beside ``client``, ``therapist``, ``site`` and the codebook's identifiers.

    Returns
    -------
    Study
        The tables as read; check them with :func:`alliance.validate`. Files are never
        modified. Each table's ``attrs["engine"]`` says which engine read it.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> study = alliance.read_study(dataset_path("demo"))
    >>> study.name
    'demo'
    >>> sorted(study.files)
    ['clients', 'codebook', 'coders', 'events', 'segments', 'sessions', 'therapists']
    >>> study.sessions.attrs["engine"]
    'pandas'

    The DuckDB engine keeps the values and stores them compactly:

    >>> compact = alliance.read_study(dataset_path("demo"), engine="duckdb",
    ...                               usecols=["client", "session", "wai_sr_1"])
    >>> compact.sessions.dtypes.astype(str).tolist()
    ['string', 'int32', 'Int8']
    >>> bool(compact.sessions["wai_sr_1"].sum() == study.sessions["wai_sr_1"].sum())
    True
    """

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}; got {engine!r}")
    found, book, book_path, paths = locate(path, clients, events, codebook)
    tables = {}
    for table, file in found.items():
        cols = usecols if table == "sessions" else None
        chosen = engine
        if engine == "auto":
            chosen = (
                choose_engine(file, usecols=cols, columns=columns) if file.exists() else "pandas"
            )
        if chosen == "duckdb":
            tables[table] = _read_duckdb(
                file,
                dialect=(sep, decimal, encoding),
                ids=[*_codebook_ids(book, table), *TABLE_IDS.get(table, ()), *(ids or ())],
                columns=columns,
                usecols=cols,
                progress=progress,
                check_memory=engine == "auto",
            )
        else:
            tables[table] = read_table(
                file,
                columns=columns,
                sheet=sheet,
                usecols=cols,
                sep=sep,
                decimal=decimal,
                encoding=encoding,
                ids=[*_codebook_ids(book, table), *TABLE_IDS.get(table, ()), *(ids or ())],
            )
        tables[table].attrs["engine"] = chosen
    if "events" in tables:
        engine_used = tables["events"].attrs.get("engine")
        tables["events"] = events_types(tables["events"])
        tables["events"].attrs["engine"] = engine_used
    files = {t: str(p) for t, p in found.items()}
    if book_path is not None:
        files["codebook"] = str(book_path)
    if name is None:
        first = paths[0]
        name = first.name if first.is_dir() else table_stem(found["sessions"])
    return Study(
        sessions=tables["sessions"],
        clients=tables.get("clients"),
        events=tables.get("events"),
        therapists=tables.get("therapists"),
        segments=tables.get("segments"),
        coders=tables.get("coders"),
        codebook=book,
        name=name,
        files=files,
    )


def scan_sessions(
    path: str | Path,
    *,
    batch_rows: int = 500_000,
    columns: Mapping[str, str] | None = None,
    usecols: Sequence[str] | None = None,
    client: str = "client",
    ids: Sequence[str] | None = None,
    progress: bool = False,
) -> Iterator[pd.DataFrame]:
    """Stream a big sessions file as DataFrames of whole clients, in bounded memory.

    Each batch holds every row of its clients, so per-client analyses
    (:func:`alliance.change.reliable_change`, :func:`alliance.ruptures.detect`, ...)
    can run batch by batch and their results be concatenated. Batches have about
    ``batch_rows`` rows (more when one client has more rows than that). When the file
    keeps each client's rows together (as exports usually do), batches follow the
    file's order; otherwise DuckDB first sorts a temporary copy by each client's first
    row (spilling to disk beyond its memory limit), so clients come in the order they
    first appear and their rows in file order.

    Parameters
    ----------
    path : str or pathlib.Path
        A CSV, TSV or Parquet sessions file (CSV is read through DuckDB; a temporary
        Parquet copy is made when the rows must be regrouped).
    batch_rows : int, default 500000
        Target rows per batch; memory is about ``batch_rows`` x the compact row size
        (see :func:`read_study`, ``engine="duckdb"``).
    columns : mapping, optional
        Column renames, e.g. ``{"ClientID": "client"}``.
    usecols : list of str, optional
        Read only these columns (named as after renaming); the client column is
        always read.
    client : str, default "client"
        The client identifier column (after renaming).
    ids : list of str, optional
        Further columns to read as text identifiers (named as after renaming), beside
        the client, therapist and site columns and those the codebook makes identifiers:
        when a ``datapackage.json`` lies beside the file, its ``sessions`` identifiers are
        used, so ``01`` and ``1`` stay two clients as in :func:`read_study`.
    progress : bool, default False
        Show a progress bar (rows read).

    Yields
    ------
    pandas.DataFrame
        Compact dtypes as with ``read_study(..., engine="duckdb")``; the index (named
        ``row``) holds each row's number in the file, the first data row being row 1 as
        in :func:`alliance.validate`'s messages.

    Raises
    ------
    KeyError
        The client column (or a ``usecols`` column) is not in the file.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> batches = list(alliance.io.scan_sessions(dataset_path("demo") / "sessions.csv.gz",
    ...                                          batch_rows=1000, usecols=["session", "phq9"]))
    >>> sum(len(b) for b in batches), max(len(b) for b in batches) < 1100
    (3688, True)
    >>> int(batches[1].index[0]) == int(batches[0].index[-1]) + 1
    True
    >>> any(set(a["client"]) & set(b["client"]) for a, b in zip(batches, batches[1:]))
    False
    """
    from alliance import _stream

    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a whole number of at least 1, got {batch_rows!r}")
    rename = dict(columns or {})
    path = Path(path)
    tmp = _stream.temporary_folder()
    con = _stream.connect(temp_directory=tmp.name)
    try:
        wanted = [client, *_sessions_codebook_ids(path), *(ids or ())]
        file_ids = _file_ids(_stream.header_of(path, (None, None, None)), rename, wanted)
        source = _stream.open_source(con, path, ids=file_ids)
        back = {new: old for old, new in rename.items()}
        if back.get(client, client) not in source.columns:
            have = [rename.get(c, c) for c in source.columns]
            near = close_matches(client, have)
            tip = f" Did you mean {near[0]!r}? Pass client={near[0]!r}" if near else ""
            raise KeyError(
                f"the client column {client!r} is not in {path.name}.{tip} (or rename it with "
                f"columns={{'<yours>': {client!r}}})"
            )
        if usecols is not None:
            usecols = [client, *[c for c in usecols if c != client]]
        cols = _stream.select_columns(source, usecols, rename)
        source = _stream.as_parquet(con, source, tmp.name)
        plan = _stream.plan_dtypes(con, source, cols)
        key = _stream.quote(back.get(client, client))
        scattered = con.execute(
            f"SELECT count(*) FROM (SELECT max(file_row_number) - min(file_row_number) + 1 "
            f"AS span, count(*) AS n FROM {source.sql} GROUP BY {key}) WHERE span <> n"
        ).fetchall()[0][0]
        if scattered:
            ordered = f"{tmp.name}/by_client.parquet"
            con.execute(
                f"COPY (SELECT s.*, s.file_row_number AS __row FROM {source.sql} s JOIN "
                f"(SELECT {key} AS k, min(file_row_number) AS first FROM {source.sql} GROUP BY "
                f"{key}) f ON s.{key} IS NOT DISTINCT FROM f.k ORDER BY f.first, "
                f"s.file_row_number) TO {_stream.literal(ordered)} (FORMAT parquet)"
            ).fetchall()
            frames = _stream.iter_frames(
                con,
                source,
                plan,
                batch_rows=batch_rows,
                row_column="__row",
                from_sql=f"read_parquet({_stream.literal(ordered)})",
                progress=progress,
                desc=path.name,
            )
        else:
            frames = _stream.iter_frames(
                con, source, plan, batch_rows=batch_rows, progress=progress, desc=path.name
            )
        key_col = back.get(client, client)
        pending: list[pd.DataFrame] = []
        n_pending = 0
        for frame in frames:
            pending.append(frame)
            n_pending += len(frame)
            if n_pending < batch_rows:
                continue
            whole = pd.concat(pending, copy=False) if len(pending) > 1 else pending[0]
            ids = whole[key_col]
            last = ids.iloc[-1]
            tail = (ids.isna() if pd.isna(last) else ids.eq(last).fillna(False)).to_numpy(bool)
            if tail.all():  # one client so far: keep reading
                pending, n_pending = [whole], len(whole)
                continue
            out = whole[~tail]
            pending = [whole[tail]]
            n_pending = len(pending[0])
            yield out.rename(columns=rename) if rename else out
        if n_pending:
            out = pd.concat(pending, copy=False) if len(pending) > 1 else pending[0]
            yield out.rename(columns=rename) if rename else out
    finally:
        con.close()
        tmp.cleanup()


def write_study(study: Study, folder: str | Path, *, fmt: str = "csv") -> Path:
    """Write a study's tables and codebook into a folder (empty optional tables are skipped).

    Parameters
    ----------
    study : Study
        The study.
    folder : str or pathlib.Path
        Destination folder (made if absent).
    fmt : str, default "csv"
        File suffix without the dot: csv, tsv, xlsx, parquet, sav or dta.

    Returns
    -------
    pathlib.Path
        The folder.

    Examples
    --------
    >>> import tempfile, alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     back = alliance.read_study(alliance.io.write_study(study, tmp, fmt="parquet"))
    >>> back.sessions.shape == study.sessions.shape
    True
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        frame = getattr(study, table)
        if table != "sessions" and table != "clients" and (frame is None or frame.empty):
            continue  # optional tables are written only when they hold rows
        write_table(frame, folder / f"{table}.{fmt}")
    study.codebook.write(folder / "datapackage.json")
    return folder


def wide_to_long(
    data: pd.DataFrame,
    stubs: str | Sequence[str],
    *,
    client: str = "client",
    session: str = "session",
    sep: str = "_",
) -> pd.DataFrame:
    """Turn one-row-per-client data into one row per client x session.

    Parameters
    ----------
    data : pandas.DataFrame
        Wide data: columns ``<stub><sep><session number>`` (e.g. ``phq9_1 .. phq9_12``).
    stubs : str or list of str
        The measure names before the separator.
    client : str, default "client"
        The client identifier column; must be unique per row.
    session : str, default "session"
        Name of the session column to create.
    sep : str, default "_"
        Separator between stub and session number.

    Returns
    -------
    pandas.DataFrame
        Long data sorted by client and session, one row per client x session number that
        appears in any stub column. Other columns (therapist, site, ...) are repeated.
        Missing values stay as missing values: no row is dropped.

    Examples
    --------
    >>> import pandas as pd, alliance
    >>> wide = pd.DataFrame({"client": ["a", "b"], "phq9_1": [20, 15], "phq9_2": [18, None]})
    >>> alliance.io.wide_to_long(wide, "phq9")
      client  session  phq9
    0      a        1  20.0
    1      a        2  18.0
    2      b        1  15.0
    3      b        2   NaN
    """
    data = require_columns(data, client=client)
    stubs = [stubs] if isinstance(stubs, str) else list(stubs)
    if data[client].duplicated().any():
        dup = data.loc[data[client].duplicated(), client].unique()[:5].tolist()
        raise ValueError(
            f"wide data must have one row per client, but clients {dup} appear more than "
            f"once; if the data are already long, skip wide_to_long"
        )
    value_cols: dict[str, dict[int, str]] = {}
    for stub in stubs:
        pattern = re.compile(rf"^{re.escape(stub)}{re.escape(sep)}(\d+)$")
        cols = {int(m.group(1)): c for c in data.columns if (m := pattern.match(str(c)))}
        if not cols:
            near = close_matches(f"{stub}{sep}1", data.columns)
            tip = f" Columns with close names: {near}." if near else ""
            raise KeyError(
                f"no columns named {stub}{sep}<session number> (e.g. {stub}{sep}1).{tip} "
                f"Check stubs= and sep=."
            )
        value_cols[stub] = cols
    stub_columns = {c for cols in value_cols.values() for c in cols.values()}
    id_cols = [c for c in data.columns if c not in stub_columns]
    parts = []
    for stub, cols in value_cols.items():
        melted = data[[client, *cols.values()]].melt(
            id_vars=client, var_name="_col", value_name=stub
        )
        melted[session] = melted["_col"].map({v: k for k, v in cols.items()})
        parts.append(melted.drop(columns="_col").set_index([client, session]))
    values = pd.concat(parts, axis=1).reset_index()
    out = data[id_cols].merge(values, on=client, how="right")
    order = pd.Categorical(out[client], categories=data[client].unique(), ordered=True)
    out = out.assign(_order=order).sort_values(["_order", session]).drop(columns="_order")
    out[session] = out[session].astype("int64")
    return out.reset_index(drop=True)[[*id_cols, session, *stubs]]


def long_to_wide(
    data: pd.DataFrame,
    values: str | Sequence[str],
    *,
    client: str = "client",
    session: str = "session",
    sep: str = "_",
) -> pd.DataFrame:
    """Turn one row per client x session into one row per client.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data.
    values : str or list of str
        The columns to spread, one column per session: ``<value><sep><session>``.
    client, session : str
        Identifier and session-number columns.
    sep : str, default "_"
        Separator between value name and session number.

    Returns
    -------
    pandas.DataFrame
        One row per client. Columns that are constant within every client (therapist,
        site, ...) are kept; other columns are left out.

    Examples
    --------
    >>> import pandas as pd, alliance
    >>> long = pd.DataFrame({"client": ["a", "a", "b"], "session": [1, 2, 1], "phq9": [20, 18, 15]})
    >>> alliance.io.long_to_wide(long, "phq9")
      client  phq9_1  phq9_2
    0      a    20.0    18.0
    1      b    15.0     NaN
    """
    values = [values] if isinstance(values, str) else list(values)
    data = require_columns(data, client=client, session=session)
    require_columns(data, **{f"values[{i}]": v for i, v in enumerate(values)})
    if data.duplicated([client, session]).any():
        raise ValueError(
            "long data has repeated client x session rows; run alliance.validate to list them"
        )
    wide = data.pivot(index=client, columns=session, values=values)
    wide.columns = [f"{v}{sep}{s}" for v, s in wide.columns]
    wide = wide.astype(float)
    others = [c for c in data.columns if c not in {client, session, *values}]
    constant = [
        c for c in others if (data.groupby(client, sort=False)[c].nunique(dropna=False) <= 1).all()
    ]
    ids = data.drop_duplicates(client)[[client, *constant]].set_index(client)
    out = ids.join(wide).reset_index()
    return out
