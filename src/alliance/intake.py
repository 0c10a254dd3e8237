"""Bring your own study: read a researcher's file(s), guess the roles, write a study folder.

:func:`prepare_study` reads a file (CSV as Excel writes it, Excel, SPSS, Stata, Parquet),
a folder or several files; applies ``columns`` renames; turns wide columns
(``phq9_s1 .. phq9_s12``) into one row per client x session; resolves the roles
(:func:`alliance.design.resolve_design`) and returns the canonical study every analysis
reads (:func:`alliance.design.canonical_study`).

:func:`init_study` writes that study to a new folder as CSV files and a
``datapackage.json`` codebook with the roles, instruments and value labels it found and
the SHA-256 of every file it read. ``alliance init`` is its command line; the researcher
reads the list of guesses, edits the codebook where a guess is wrong, then runs
``alliance validate STUDY`` and ``alliance report --data STUDY``.

Input files are only read. The output folder must be new or empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alliance import io
from alliance._files import sha256_of
from alliance._layout import table_stem
from alliance.design import ROLES, Design, canonical_study, normalize_name, resolve_design
from alliance.study import Study

__all__ = [
    "TABLE_FILES",
    "TABLE_ROLES",
    "InitResult",
    "guess_table_roles",
    "init_study",
    "prepare_study",
    "wide_sessions",
]

#: File names (stems, after :func:`alliance.design.normalize_name`) taken as the optional
#: tables besides their own names ``therapists``, ``segments`` and ``coders``.
TABLE_FILES = {
    "therapists": ("therapist", "therapeuten", "therapeutinnen", "clinicians", "behandler"),
    "segments": ("segment", "segmente", "observer_codes", "codes_3rs", "rrrs", "3rs"),
    "coders": ("coder", "kodierer", "kodiererinnen", "raters", "rater", "coder_sessions"),
}
_SEGMENT_NAMES = (
    "segment",
    "segment_nr",
    "segment_no",
    "segment_number",
    "segment_id",
    "abschnitt",
    "segmentnummer",
    "minute_block",
    "block",
)
_CODER_NAMES = (
    "coder",
    "coder_id",
    "coderid",
    "rater",
    "rater_id",
    "raterid",
    "observer",
    "observer_id",
    "judge",
    "kodierer",
    "kodiererin",
    "kodierer_id",
    "rater_in",
    "beurteiler",
    "beurteilerin",
)
#: Conventional column names of the optional tables' columns, by table and column.
TABLE_ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "therapists": {
        "therapist": ROLES["therapist"][2],
        "site": ROLES["site"][2],
        "experience": (
            "experience",
            "years_experience",
            "experience_years",
            "erfahrung",
            "berufserfahrung",
            "jahre_erfahrung",
            "berufsjahre",
        ),
    },
    "segments": {
        "client": ROLES["client"][2],
        "session": ROLES["session"][2],
        "segment": _SEGMENT_NAMES,
        "coder": _CODER_NAMES,
        "marker": (
            "marker",
            "rupture_marker",
            "marker_type",
            "rupture",
            "code",
            "3rs_marker",
            "bruchmarker",
            "bruch",
            "ruptur",
            "rupturmarker",
        ),
        "significance": (
            "significance",
            "sig",
            "salience",
            "marker_significance",
            "bedeutsamkeit",
            "bedeutung",
            "schwere",
            "intensitaet",
        ),
        "strategy": (
            "strategy",
            "resolution_strategy",
            "strategie",
            "loesungsstrategie",
            "aufloesungsstrategie",
        ),
        "resolution": (
            "resolution",
            "resolution_rating",
            "resolved_rating",
            "aufloesung",
            "loesung",
            "loesungsgrad",
        ),
    },
    "coders": {
        "coder": _CODER_NAMES,
        "client": ROLES["client"][2],
        "session": ROLES["session"][2],
    },
}


def guess_table_roles(
    table: str, columns: Sequence[str], design: Design | None = None
) -> dict[str, str]:
    """Which column of an optional table plays each of its roles.

    A column already named as the role wins; then, for client, session, therapist and
    site, the column that plays the role in the sessions table (``design``); then the
    conventional names of :data:`TABLE_ROLES` (English and German, any case), in their
    order. Each column plays at most one role.

    Parameters
    ----------
    table : {"therapists", "segments", "coders"}
        The table.
    columns : sequence of str
        Its columns as read.
    design : Design, optional
        The sessions table's roles (:func:`alliance.design.resolve_design`).

    Returns
    -------
    dict
        ``{role: column}`` for the roles found.

    Examples
    --------
    >>> from alliance.intake import guess_table_roles
    >>> guess_table_roles("segments", ["KlientID", "Sitzung", "Abschnitt", "Kodierer",
    ...                                "Marker", "Bedeutsamkeit"])  # doctest: +NORMALIZE_WHITESPACE
    {'client': 'KlientID', 'session': 'Sitzung', 'segment': 'Abschnitt', 'coder': 'Kodierer',
     'marker': 'Marker', 'significance': 'Bedeutsamkeit'}
    """
    if table not in TABLE_ROLES:
        raise ValueError(f"table must be one of {', '.join(TABLE_ROLES)}, got {table!r}")
    names = {c: normalize_name(c) for c in columns}
    found: dict[str, str] = {}
    used: set[str] = set()
    for role in TABLE_ROLES[table]:
        if role in columns:
            found[role] = role
            used.add(role)
    for role, conventions in TABLE_ROLES[table].items():
        if role in found:
            continue
        options = []
        if design is not None and role in ("client", "session", "therapist", "site"):
            options.append(design.columns.get(role))
        hit = next((c for c in options if c and c in columns and c not in used), None)
        if hit is None:
            hit = next(
                (c for conv in conventions for c in columns if c not in used and names[c] == conv),
                None,
            )
        if hit is not None:
            found[role] = hit
            used.add(hit)
    return found


_WIDE = r"^{stub}_?(?:s|t|w|session|sitzung|week|woche|visit|termin)?_?(\d+)$"


def wide_sessions(
    data: pd.DataFrame, stubs: str | Sequence[str], *, client: str, session: str = "session"
) -> pd.DataFrame:
    """One row per client x session from one row per client, for a sessions-wide file.

    Columns ``<stub>_s1 .. <stub>_s12`` (also ``<stub>1``, ``<stub>_t1``,
    ``<stub>_session1``, ``<stub>_sitzung1``, any case) become the column ``<stub>``
    with a ``session`` number. A session exists only where at least one of the stubs
    has a value, so attendance is not inflated by empty cells. Other columns are copied
    to every session of their client.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per client.
    stubs : str or list of str
        The measures spread over sessions, e.g. ``"phq9"``.
    client : str
        The client identifier column (unique per row).
    session : str, default "session"
        Name of the session column to create.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        When a stub matches no column, or a client appears on two rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.intake import wide_sessions
    >>> wide = pd.DataFrame({"id": ["01", "02"], "PHQ9_s1": [20, 14], "PHQ9_s2": [18, None]})
    >>> wide_sessions(wide, "phq9", client="id").to_dict("list")
    {'id': ['01', '01', '02'], 'session': [1, 2, 1], 'phq9': [20.0, 18.0, 14.0]}
    """
    stubs = [stubs] if isinstance(stubs, str) else list(stubs)
    if data[client].duplicated().any():
        twice = data.loc[data[client].duplicated(), client].astype(str).unique()[:3]
        raise ValueError(
            f"--wide needs one row per client, but client(s) {', '.join(twice)} appear on "
            "more than one row; leave --wide out if the file already has one row per session"
        )
    spread: dict[str, dict[int, str]] = {}
    for stub in stubs:
        pattern = re.compile(_WIDE.format(stub=re.escape(normalize_name(stub))))
        found = {}
        for col in data.columns:
            m = pattern.match(normalize_name(col))
            if m:
                found[int(m.group(1))] = col
        if not found:
            raise ValueError(
                f"--wide {stub}: no columns named like {stub}_s1, {stub}_s2, ... were found; "
                f"the columns are {', '.join(map(str, data.columns[:12]))}"
            )
        spread[normalize_name(stub)] = found
    wide_cols = {c for found in spread.values() for c in found.values()}
    keep = [c for c in data.columns if c not in wide_cols]
    numbers = sorted({n for found in spread.values() for n in found})
    parts = []
    for n in numbers:
        part = data[keep].copy()
        part[session] = n
        for stub, found in spread.items():
            part[stub] = data[found[n]] if n in found else pd.NA
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    scored = long[list(spread)].notna().any(axis=1)
    long = long[scored]
    order = pd.Categorical(long[client], categories=pd.unique(data[client]), ordered=True)
    long = long.assign(_order=order).sort_values(["_order", session], kind="stable")
    out = long.drop(columns="_order").reset_index(drop=True)
    for stub in spread:  # numbers stay numbers; text is kept for validation to report
        converted = pd.to_numeric(out[stub], errors="coerce")
        if converted.notna().sum() == out[stub].notna().sum():
            out[stub] = converted.astype("float64")
    return out


def _main_file(data: Path) -> Path | None:
    if data.is_file():
        return data
    for child in sorted(data.iterdir()) if data.is_dir() else []:
        if child.stem.split(".")[0] == "sessions" and child.is_file():
            return child
    return None


def prepare_study(
    data: str | Path | Sequence[str | Path],
    *,
    columns: Mapping[str, str] | None = None,
    wide: str | Sequence[str] | None = None,
    sheet: str | int = 0,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    early: int = 3,
    **roles: str | None,
) -> tuple[Study, Design]:
    """Read a researcher's study and return it in canonical form with its design.

    Parameters
    ----------
    data : str, pathlib.Path or list of them
        A sessions file, a study folder, or several files (as :func:`alliance.read_study`).
    columns : mapping, optional
        Renames applied on reading, ``{"ClientID": "client", "Sitzung": "session"}``.
        A rename to a role name fixes that role.
    wide : str or list of str, optional
        Measures spread over sessions in a one-row-per-client file (see
        :func:`wide_sessions`).
    sheet, sep, decimal, encoding
        As for :func:`alliance.read_study`.
    early : int, default 3
        The early-alliance window (:class:`alliance.design.EarlyWindow`).
    **roles : str
        Explicit roles for :func:`alliance.design.resolve_design` (after renames).

    Returns
    -------
    (Study, Design)
        The canonical study and the design that made it (the original column names are
        in ``design.columns``). Optional tables (``therapists``, ``segments``,
        ``coders``: from the folder, or among several files under their own or a
        conventional name, :data:`TABLE_FILES`) get their columns' role names guessed by
        :func:`guess_table_roles`.

    Examples
    --------
    >>> from alliance.datasets import dataset_path
    >>> from alliance.intake import prepare_study
    >>> study, design = prepare_study(dataset_path("demo"))
    >>> design.alliance, study.sessions["client"].iloc[0]
    ('wai_sr', 'C001')
    """
    study, design, _ = _prepare_study(
        data, columns=columns, wide=wide, sheet=sheet, sep=sep, decimal=decimal,
        encoding=encoding, early=early, **roles,
    )  # fmt: skip
    return study, design


def _prepare_study(
    data, *, columns, wide, sheet, sep, decimal, encoding, early, **roles
) -> tuple[Study, Design, dict[str, dict[str, str]]]:
    """:func:`prepare_study`, also returning the optional tables' guessed roles."""
    paths = [Path(p) for p in data] if isinstance(data, list | tuple) else [Path(data)]
    optional: dict[str, Path] = {}
    if len(paths) > 1:  # optional tables under other file names
        rest = []
        for p in paths:
            stem = normalize_name(table_stem(p)) if p.is_file() else ""
            table = next((t for t, names in TABLE_FILES.items() if stem in names), None)
            if table is not None and table not in optional:
                optional[table] = p
            else:
                rest.append(p)
        paths = rest
    main = _main_file(paths[0])
    renames = dict(columns or {})
    ids: list[str] = []
    if main is not None:
        header = io.read_columns(main, sheet=sheet, sep=sep, decimal=decimal, encoding=encoding)
        named = [renames.get(c, c) for c in header]
        guess = resolve_design(pd.DataFrame(columns=named))
        ids = [guess.columns[r] for r in ("client", "therapist", "site") if guess.columns[r]]
        ids += [c for c in named if c in ("client", "therapist", "site")]
    target = paths if len(paths) > 1 else paths[0]
    study = io.read_study(
        target, columns=renames or None, sheet=sheet, sep=sep, decimal=decimal,
        encoding=encoding, ids=ids,
    )  # fmt: skip
    for table, path in optional.items():
        if len(getattr(study, table)):
            raise ValueError(
                f"two files were given for the {table} table ({path.name} and "
                f"{Path(study.files[table]).name}); keep one"
            )
        frame = io.read_table(
            path,
            columns=renames or None,
            sheet=sheet,
            sep=sep,
            decimal=decimal,
            encoding=encoding,
            ids=ids,
        )
        setattr(study, table, frame)
        study.files[table] = str(path)
    labels = {}
    for path in paths:
        if path.is_file():
            labels.update({renames.get(c, c): v for c, v in io.read_value_labels(path).items()})
    explicit = {new: new for new in renames.values() if new in ROLES}
    explicit.update(roles)
    if wide:
        first = resolve_design(study, **explicit)
        client = first.client or "client"
        if client not in study.sessions.columns:
            raise ValueError("--wide needs a client column: name it with --column YOURNAME=client")
        long = wide_sessions(study.sessions, wide, client=client)
        explicit["session"] = "session"
        study = Study(
            long, codebook=study.codebook, name=study.name, files=dict(study.files),
            **{t: getattr(study, t) for t in TABLE_ROLES if len(getattr(study, t))},
        )  # fmt: skip
    design = resolve_design(study, early=early, labels=labels, **explicit)
    table_roles = _rename_optional_tables(study, design)
    return canonical_study(study, design, score=_scale_score), design, table_roles


def _rename_optional_tables(study: Study, design: Design) -> dict[str, dict[str, str]]:
    """Give the optional tables' columns their role names (in place); the guesses made."""
    guesses = {}
    for table in TABLE_ROLES:
        frame = getattr(study, table)
        if frame is None or not len(frame.columns) or not len(frame):
            continue
        found = guess_table_roles(table, [str(c) for c in frame.columns], design)
        renames = {col: role for role, col in found.items() if col != role}
        frame = frame.rename(columns=renames)
        ids = ("coder", "client", "therapist", "site")
        for col in ids:
            if col in frame.columns:
                frame[col] = frame[col].astype("string").astype(object).where(frame[col].notna())
        setattr(study, table, frame)
        guesses[table] = found
    return guesses


def _scale_score(frame: pd.DataFrame, instrument: str):
    """The scale score of an instrument's items (the registry's prorating rule)."""
    from alliance.scoring import score

    return score(frame, instrument, subscales=False)[instrument].to_numpy()


@dataclass
class InitResult:
    """What :func:`init_study` wrote.

    Attributes
    ----------
    folder : pathlib.Path
        The study folder.
    design : Design
        The roles found (original column names).
    study : Study
        The canonical study written.
    files : dict
        Table -> file written.
    sources : list of dict
        Each file read: path, SHA-256.
    table_roles : dict
        For each optional table read (therapists, segments, coders): ``{role: column}``
        as guessed by :func:`guess_table_roles`.
    """

    folder: Path
    design: Design
    study: Study
    files: dict[str, Path] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)
    table_roles: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> str:
        """What was found and written, and how to change a guess."""
        lines = [f"study folder written: {self.folder}", "", "roles (column: where from):"]
        lines.append(self.design.summary())
        for table, found in self.table_roles.items():
            lines += ["", f"{table} table (column: role):"]
            for role in TABLE_ROLES[table]:
                col = found.get(role)
                lines.append(f"  {role:<24} {col if col else '-':<28}")
        lines += [
            "",
            f"{len(self.study.sessions)} session rows, {self.study.n_clients} clients; "
            f"files: {', '.join(p.name for p in self.files.values())}",
            "",
            'Check each guess. To change one, edit the field\'s "role" (client, therapist, '
            "site, session, date, phase, condition, prior_negative_therapy, termination, "
            f"alliance, outcome) in {self.folder / 'datapackage.json'}, or rerun with "
            "--column OLD=NEW into a new folder. Then:",
            f"  alliance validate {self.folder}",
            f"  alliance report --data {self.folder}",
        ]
        return "\n".join(lines)


def _check_out(out: Path) -> None:
    """``out`` must be new or empty: init never writes beside files it did not make."""
    from alliance._outdir import OutputRefused

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputRefused(
            f"--out {out} already exists and is not empty; nothing was written. Choose a new "
            "folder name (init writes only into a new or empty folder, so no file of yours "
            "is ever replaced)"
        )


def init_study(
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    **options,
) -> InitResult:
    """Write a study folder from a researcher's file(s): data, codebook, roles.

    Parameters
    ----------
    data : str, pathlib.Path or list of them
        The file(s) or folder to read (never modified).
    out : str or pathlib.Path
        A new (or empty) folder; it may lie beside or inside the data's folder.
    **options
        ``columns``, ``wide``, ``sheet``, ``sep``, ``decimal``, ``encoding``, ``early`` and
        explicit roles, as for :func:`prepare_study`.

    Returns
    -------
    InitResult

    Raises
    ------
    alliance.report.OutputRefused
        When ``out`` holds files or is the data folder; nothing is written.

    Examples
    --------
    >>> import tempfile
    >>> from alliance.datasets import dataset_path
    >>> from alliance.intake import init_study
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = init_study(dataset_path("demo") / "sessions.csv.gz", tmp + "/mine")
    ...     sorted(p.name for p in result.folder.iterdir())
    ['clients.csv', 'coders.csv', 'datapackage.json', 'events.csv', 'segments.csv', 'sessions.csv',
     'therapists.csv']
    """
    paths = [Path(p) for p in data] if isinstance(data, list | tuple) else [Path(data)]
    out = Path(out)
    _check_out(out)
    defaults = {
        "columns": None,
        "wide": None,
        "sheet": 0,
        "sep": None,
        "decimal": None,
        "encoding": None,
        "early": 3,
    }
    study, design, table_roles = _prepare_study(data, **{**defaults, **options})
    read = [Path(p) for p in study.files.values()] or paths
    sources = [{"path": p.name, "sha256": sha256_of(p)} for p in read if p.is_file()]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.alliance-init-", dir=out.parent))
    try:
        files = {}
        tables = {"sessions": study.sessions, "clients": study.clients}
        if len(study.events):
            tables["events"] = study.events
        for table in TABLE_ROLES:
            if len(getattr(study, table)):
                tables[table] = getattr(study, table)
        for table, frame in tables.items():
            if table == "clients" and (frame.empty or "client" not in frame.columns):
                continue
            path = staging / f"{table}.csv"
            frame.to_csv(path, index=False)
            files[table] = out / path.name
        package = study.codebook.to_dict()
        package.setdefault("name", normalize_name(out.name) or "study")
        known = {r.get("name") for r in package.get("resources", [])}
        for table in TABLE_ROLES:
            if table in files and table not in known:
                package.setdefault("resources", []).append(
                    _optional_resource(table, tables[table], table_roles.get(table, {}))
                )
        package["resources"] = [
            {**r, "path": f"{r['name']}.csv"}
            for r in package.get("resources", [])
            if r.get("name") in files
        ]
        package["sources"] = sources
        (staging / "datapackage.json").write_text(
            json.dumps(package, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8"
        )
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return InitResult(
        folder=out,
        design=design,
        study=study,
        files=files,
        sources=sources,
        table_roles=table_roles,
    )


def _optional_resource(table: str, frame: pd.DataFrame, found: dict[str, str]) -> dict:
    """A codebook resource for an optional table: types, roles, where each came from."""
    fields = []
    for col in frame.columns:
        values = frame[col]
        kind = (
            "integer"
            if pd.api.types.is_integer_dtype(values)
            else "number"
            if pd.api.types.is_numeric_dtype(values)
            else "string"
        )
        fld = {"name": str(col), "type": kind}
        if col in TABLE_ROLES[table]:
            fld["role"] = col
            if col in found and found[col] != col:
                fld["source_name"] = found[col]
        if col == "coder":
            fld["rater"] = "observer"
        fields.append(fld)
    return {"name": table, "schema": {"fields": fields}}
