"""Reading and writing study tables: CSV, TSV, Excel, Parquet, SPSS .sav, Stata .dta.

Input files are only ever opened for reading. Wide layouts (one row per client, one
column per session) convert to the long layout the rest of the package uses, and back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from alliance._checks import close_matches, require_columns, require_frame
from alliance.study import Codebook, Study

__all__ = [
    "FORMATS",
    "read_table",
    "write_table",
    "read_study",
    "write_study",
    "wide_to_long",
    "long_to_wide",
]

logger = logging.getLogger(__name__)

#: File suffix -> format name understood by :func:`read_table` and :func:`write_table`.
FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".xlsx": "excel",
    ".xls": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".sav": "spss",
    ".zsav": "spss",
    ".dta": "stata",
}

_TABLES = ("sessions", "clients", "events")


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    known = ", ".join(sorted(FORMATS))
    raise ValueError(
        f"cannot tell the format of {path.name!r} from its name; use one of the suffixes "
        f"{known} (rename the file or convert it, e.g. save Excel sheets as .xlsx)"
    )


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    sheet: str | int = 0,
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

    Returns
    -------
    pandas.DataFrame
        The table. SPSS and Stata value labels are not applied (codes are kept), so
        item values keep their numeric scoring.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> sessions = alliance.io.read_table(dataset_path("demo") / "sessions.csv.gz")
    >>> sessions.shape[0] > 1000
    True
    """
    path = Path(path)
    if not path.exists():
        near = (
            close_matches(path.name, [p.name for p in path.parent.glob("*")])
            if path.parent.exists()
            else []
        )
        tip = f" Files with close names: {', '.join(near)}." if near else ""
        raise FileNotFoundError(f"no file at {path}.{tip}")
    fmt = _format_of(path)
    if fmt == "csv":
        frame = pd.read_csv(path)
    elif fmt == "tsv":
        frame = pd.read_csv(path, sep="\t")
    elif fmt == "excel":
        frame = pd.read_excel(path, sheet_name=sheet)
    elif fmt == "parquet":
        frame = pd.read_parquet(path)
    elif fmt == "spss":
        frame = pd.read_spss(path, convert_categoricals=False)
    else:
        frame = pd.read_stata(path, convert_categoricals=False)
    if columns:
        frame = frame.rename(columns=dict(columns))
    logger.info("read %s rows x %s columns from %s", *frame.shape, path)
    return frame


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
    data = require_frame(data)
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


def _find_table(folder: Path, table: str) -> Path | None:
    hits = [p for p in sorted(folder.iterdir()) if p.is_file() and _stem(p) == table]
    if len(hits) > 1:
        raise ValueError(
            f"{folder} has {len(hits)} files for the {table} table "
            f"({', '.join(p.name for p in hits)}); keep one"
        )
    return hits[0] if hits else None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_study(
    path: str | Path | Sequence[str | Path],
    *,
    clients: str | Path | None = None,
    events: str | Path | None = None,
    codebook: str | Path | Codebook | None = None,
    columns: Mapping[str, str] | None = None,
    sheet: str | int = 0,
    name: str | None = None,
) -> Study:
    """Read a study from one file of sessions, a folder, or several files.

    Parameters
    ----------
    path : str, pathlib.Path or list of them
        A sessions file (any format :func:`read_table` reads); or a folder holding
        ``sessions.*``, optionally ``clients.*``, ``events.*`` and ``datapackage.json``;
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

    Returns
    -------
    Study
        The tables as read; check them with :func:`alliance.validate`. Files are never
        modified.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> study = alliance.read_study(dataset_path("demo"))
    >>> study.name
    'demo'
    >>> sorted(study.files)
    ['clients', 'codebook', 'events', 'sessions']
    """
    found: dict[str, Path] = {}
    book_path: Path | None = None
    paths = [Path(p) for p in path] if isinstance(path, list | tuple) else [Path(path)]
    for p in paths:
        if p.is_dir():
            for table in _TABLES:
                hit = _find_table(p, table)
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
            read_table(p)  # raises a FileNotFoundError with close names
        elif p.name == "datapackage.json":
            book_path = p
        else:
            stem = _stem(p)
            table = stem if stem in _TABLES else "sessions"
            if table in found:
                raise ValueError(
                    f"two files were given for the {table} table ({found[table].name} and "
                    f"{p.name}); name the others clients.* and events.*"
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

    tables = {t: read_table(p, columns=columns, sheet=sheet) for t, p in found.items()}
    if isinstance(codebook, Codebook):
        book = codebook
    elif codebook is not None:
        book_path = Path(codebook)
        book = Codebook.from_file(book_path)
    else:
        book = Codebook.from_file(book_path) if book_path else Codebook()
    if "events" in tables:
        tables["events"] = _events_types(tables["events"])
    files = {t: str(p) for t, p in found.items()}
    if book_path is not None:
        files["codebook"] = str(book_path)
    if name is None:
        first = paths[0]
        name = first.name if first.is_dir() else _stem(found["sessions"])
    return Study(
        sessions=tables["sessions"],
        clients=tables.get("clients"),
        events=tables.get("events"),
        codebook=book,
        name=name,
        files=files,
    )


def _events_types(events: pd.DataFrame) -> pd.DataFrame:
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


def write_study(study: Study, folder: str | Path, *, fmt: str = "csv") -> Path:
    """Write a study's three tables and codebook into a folder.

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
    for table in _TABLES:
        frame = getattr(study, table)
        if table == "events" and frame is not None and frame.empty:
            continue
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
