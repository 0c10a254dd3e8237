"""Validation of a study's three tables, reporting every problem at once.

:func:`validate` checks structure (required columns, identifiers, whole-number
sessions, duplicates, one therapist per client), the codebook (declared columns,
ranges, allowed values) and the instrument registry (item ranges for columns named
``<instrument>_<item>``). Missing scores are never an error: they are counted in the
report.

:func:`validate_file` does the same checks on a sessions file too big for memory:
rules about single rows batch by batch, rules across rows (duplicates, one therapist
per client, clients without sessions) with DuckDB SQL over the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance import instruments
from alliance._checks import close_matches, format_rows
from alliance.study import (
    EVENT_KINDS,
    EVENT_SOURCES,
    PHASES,
    PRIOR_THERAPY,
    RUPTURE_MARKERS,
    TERMINATIONS,
    Study,
    marker_type,
)

__all__ = [
    "ValidationError",
    "ValidationReport",
    "validate",
    "validate_file",
    "find_scores",
    "KNOWN_COLUMNS",
]

#: Column names the package knows without a codebook, per table.
KNOWN_COLUMNS = {
    "sessions": ["client", "therapist", "site", "session", "date", "phase"],
    "clients": [
        "client",
        "therapist",
        "site",
        "prior_negative_therapy",
        "prior_therapy",
        "termination",
        "condition",
    ],
    "events": ["client", "session", "kind", "resolved", "source"],
    "therapists": ["therapist", "site", "experience"],
    "segments": [
        "client",
        "session",
        "segment",
        "coder",
        "marker",
        "significance",
        "strategy",
        "resolution",
    ],
    "coders": ["coder", "client", "session"],
}
_REQUIRED = {
    "sessions": ["client", "session"],
    "clients": ["client"],
    "events": ["client", "session"],
    "therapists": ["therapist"],
    "segments": ["client", "session", "segment", "coder"],
    "coders": ["coder", "client", "session"],
}
#: The optional tables checked when they hold rows.
_OPTIONAL = ("therapists", "segments", "coders")
#: Texts read as true and as false in a yes/no column (English and German, any case).
TRUE_WORDS = frozenset({"true", "1", "1.0", "yes", "y", "t", "ja", "j", "wahr"})
FALSE_WORDS = frozenset({"false", "0", "0.0", "no", "n", "f", "nein", "falsch"})
_TRUE = set(TRUE_WORDS)
_FALSE = set(FALSE_WORDS)


class ValidationError(ValueError):
    """A study failed validation; ``.problems`` is a DataFrame of every problem."""

    def __init__(self, message: str, problems: pd.DataFrame):
        super().__init__(message)
        self.problems = problems


@dataclass
class ValidationReport:
    """What :func:`validate` found in a valid study.

    Attributes
    ----------
    problems : pandas.DataFrame
        Empty for a valid study (kept for a uniform interface).
    notes : pandas.DataFrame
        Things worth knowing that are not errors (table, column, note).
    missing : pandas.DataFrame
        Missing values per sessions column (column, n_missing, share_missing).
    n_clients, n_sessions, n_therapists : int
        Sizes of the study.
    """

    problems: pd.DataFrame
    notes: pd.DataFrame
    missing: pd.DataFrame
    n_clients: int
    n_sessions: int
    n_therapists: int
    therapist_changes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problems.empty

    def summary(self) -> str:
        """A short plain-text summary."""
        lines = [
            f"{self.n_sessions} session rows, {self.n_clients} clients, "
            f"{self.n_therapists} therapists: valid."
        ]
        miss = self.missing[self.missing["n_missing"] > 0]
        if len(miss):
            lines.append(
                f"{len(miss)} columns have missing values (largest: "
                f"{miss.iloc[0]['column']}, {int(miss.iloc[0]['n_missing'])} rows)."
            )
        lines += [f"note: {n}" for n in self.notes["note"]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ValidationReport(ok={self.ok}, notes={len(self.notes)})"


class _Problems:
    def __init__(self, files: dict[str, str]):
        self.rows: list[dict] = []
        self.notes: list[dict] = []
        self.files = files
        # table -> file row number of each position (when checks run on a subset of rows)
        self.row_numbers: dict[str, np.ndarray] = {}

    def add(self, table: str, column: str | None, rows, problem: str, fix: str) -> None:
        if rows is not None and table in self.row_numbers:
            rows = self.row_numbers[table][np.asarray(rows, dtype=np.int64) - 1]
        rows = [int(r) for r in rows] if rows is not None else []
        self.rows.append(
            {
                "file": Path(self.files[table]).name if table in self.files else table,
                "table": table,
                "column": column,
                "rows": rows,
                "problem": problem,
                "fix": fix,
            }
        )

    def note(self, table: str, column: str | None, note: str) -> None:
        self.notes.append({"table": table, "column": column, "note": note})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.rows, columns=["file", "table", "column", "rows", "problem", "fix"]
        )


def _row_numbers(mask: pd.Series) -> np.ndarray:
    """1-based positions of True values (row 1 is the first data row)."""
    return np.flatnonzero(np.asarray(mask, dtype=bool)) + 1


def _boolean_like(col: pd.Series) -> pd.Series:
    """Mask of values that are not true/false/missing."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return pd.Series(False, index=col.index)
    text = col.astype("string").str.strip().str.lower()
    return text.notna() & ~text.isin(_TRUE | _FALSE)


def validate(
    study: Study,
    *,
    allow_therapist_change: bool = False,
    check_instruments: bool = True,
    raise_on_error: bool = True,
) -> ValidationReport:
    """Check a study and list every problem at once.

    Parameters
    ----------
    study : Study
        The study, e.g. from :func:`alliance.read_study`.
    allow_therapist_change : bool, default False
        Accept clients who saw more than one therapist (the session's therapist is
        then the one that counts); their changes are listed in the report.
    check_instruments : bool, default True
        Check columns named ``<instrument>_<item>`` (e.g. ``phq9_3``) against the
        instrument registry's item range, beside the codebook's declared ranges.
    raise_on_error : bool, default True
        Raise :class:`ValidationError` when a problem is found; otherwise return the
        report with its ``problems`` table filled.

    Returns
    -------
    ValidationReport
        Counts of missing values (never an error) and notes.

    Raises
    ------
    ValidationError
        A ``ValueError`` whose message lists every problem: file, row numbers
        (the first data row is row 1), column, what is wrong and how to fix it.

    Examples
    --------
    >>> import alliance
    >>> report = alliance.validate(alliance.datasets.load_dataset("demo"))
    >>> report.ok
    True
    >>> broken = alliance.datasets.load_dataset("demo")
    >>> broken.sessions["session"] = broken.sessions["session"].astype(float)
    >>> broken.sessions.loc[3, "session"] = 2.5
    >>> try:
    ...     alliance.validate(broken)
    ... except alliance.ValidationError as err:
    ...     print(err.problems[["column", "rows"]].head(1).to_string(index=False))
    ...     print(len(err.problems))  # + the segments and coders of the session now absent
     column rows
    session  [4]
    3
    """
    if not isinstance(study, Study):
        raise TypeError(
            f"validate expects an alliance.Study, not {type(study).__name__}; "
            "wrap a sessions table with alliance.Study(sessions=df) or use alliance.read_study"
        )
    found = _Problems(study.files)
    sessions, clients, events = study.sessions, study.clients, study.events
    _check_required(found, "sessions", sessions)
    _check_required(found, "clients", clients)
    if events is not None and len(events.columns):
        _check_required(found, "events", events)

    ok_cols = set(sessions.columns)
    if len(sessions) == 0:
        found.add(
            "sessions",
            None,
            None,
            "the sessions table has no rows (an empty or header-only file)",
            "export the table again with one row per client x session",
        )
    _check_whitespace(found, "sessions", sessions, _text_columns(study, "sessions"))
    if not clients.attrs.get("derived"):
        _check_whitespace(found, "clients", clients, _text_columns(study, "clients"))
    _check_scores(found, study)
    _check_numeric_text(found, study)
    if {"client", "session"} <= ok_cols:
        _check_ids(found, "sessions", sessions)
        _check_session_numbers(found, "sessions", sessions)
        _check_duplicates(found, sessions)
    changes = pd.DataFrame()
    if {"client", "therapist"} <= ok_cols:
        changes = _check_therapists(found, sessions, allow_therapist_change)
    elif "therapist" not in ok_cols:
        found.note(
            "sessions",
            "therapist",
            "no therapist column: therapist-level models and ICCs will not be available",
        )
    if "phase" in ok_cols:
        _check_allowed(found, "sessions", sessions, "phase", PHASES)
    _check_codebook(found, study)
    if check_instruments:
        _check_instrument_items(found, study)
    if "client" in clients.columns:
        _check_clients(found, sessions, clients)
    if events is not None and len(events) and {"client", "session"} <= set(events.columns):
        _check_events(found, sessions, events)
    _check_observer_tables(found, study)

    return _finish(
        found,
        sessions.isna().sum(),
        n_rows=len(sessions),
        n_clients=int(sessions["client"].nunique()) if "client" in sessions else 0,
        n_therapists=int(sessions["therapist"].nunique()) if "therapist" in sessions else 0,
        changes=changes,
        raise_on_error=raise_on_error,
    )


def _finish(
    found: _Problems,
    n_missing: pd.Series,
    *,
    n_rows: int,
    n_clients: int,
    n_therapists: int,
    changes: pd.DataFrame,
    raise_on_error: bool,
) -> ValidationReport:
    """The report of :func:`validate` and :func:`validate_file`; raises on a problem."""
    problems = found.frame()
    missing = (
        n_missing.rename("n_missing")
        .rename_axis("column")
        .reset_index()
        .assign(share_missing=lambda d: d["n_missing"] / max(n_rows, 1))
        .sort_values("n_missing", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    report = ValidationReport(
        problems=problems,
        notes=pd.DataFrame(found.notes, columns=["table", "column", "note"]),
        missing=missing,
        n_clients=n_clients,
        n_sessions=n_rows,
        n_therapists=n_therapists,
        therapist_changes=changes,
    )
    if len(problems) and raise_on_error:
        raise ValidationError(_message(problems), problems)
    return report


def _message(problems: pd.DataFrame) -> str:
    n = len(problems)
    head = (
        f"the study has {n} problem{'s' if n != 1 else ''} "
        "(row numbers count the first data row as row 1):"
    )
    lines = [head]
    for i, p in enumerate(problems.itertuples(), start=1):
        where = p.file
        if p.rows:
            where += f", {format_rows(p.rows)}"
        if p.column:
            where += f", column {p.column!r}"
        lines.append(f"  {i}. {where}: {p.problem}. Fix: {p.fix}")
    return "\n".join(lines)


def _check_required(found: _Problems, table: str, data: pd.DataFrame) -> None:
    for col in _REQUIRED[table]:
        if col not in data.columns:
            near = close_matches(col, data.columns)
            one = [str(c) for c in data.columns]
            if len(one) == 1 and any(ch in one[0] for ch in ",;\t|"):
                found.add(
                    table,
                    col,
                    None,
                    f"required column {col!r} is missing: the whole header is one column "
                    f"({one[0][:40]!r})",
                    "the file uses another separator: pass it (read_study(..., sep=';') / "
                    "--sep ';'), or leave --sep out to detect it",
                )
                continue
            tip = (
                f"rename {near[0]!r} to {col!r} (read_study(..., columns={{{near[0]!r}: {col!r}}}))"
                if near
                else f"add a {col!r} column or map yours with read_study(..., columns={{...}})"
            )
            found.add(table, col, None, f"required column {col!r} is missing", tip)


def _text_columns(study: Study, table: str) -> list[str]:
    """Identifier columns: client, therapist, site and the codebook's text fields."""
    data = getattr(study, table)
    declared = set(study.codebook.identifiers(table))
    return [c for c in data.columns if c in {"client", "therapist", "site"} | declared]


def _check_whitespace(found: _Problems, table: str, data: pd.DataFrame, cols) -> None:
    for col in cols:
        values = data[col]
        if pd.api.types.is_numeric_dtype(values.dtype):
            continue
        text = values.dropna().astype(str)
        padded = text[text != text.str.strip()]
        if len(padded):
            mask = data[col].isin(set(padded.unique()))
            shown = [repr(v) for v in padded.unique()[:3]]
            found.add(
                table,
                col,
                _row_numbers(mask),
                f"identifier(s) with spaces before or after them ({', '.join(shown)}); "
                "' 01' and '01' would be two different people",
                "remove the spaces in the source file (identifiers are matched exactly as written)",
            )


def _score_columns(study: Study) -> dict[str, tuple[float, float, str]]:
    """Registry total-score columns of the sessions table -> (low, high, instrument)."""
    declared = study.codebook.fields("sessions")
    ranged = set(declared.loc[declared["minimum"].notna() | declared["maximum"].notna(), "name"])
    out = {}
    for col in study.sessions.columns:
        if col in ranged:
            continue
        try:
            ins = instruments.get(str(col))
        except KeyError:
            continue
        if ins.name != col or ins.scoring != "sum":
            continue
        k = ins.n_items * ins.multiplier
        out[col] = (k * ins.item_min, k * ins.item_max, ins.name)
    return out


def _check_scores(found: _Problems, study: Study) -> None:
    for col, (low, high, name) in _score_columns(study).items():
        _check_numeric(
            found,
            "sessions",
            study.sessions,
            col,
            low,
            high,
            f"{name} registry entry (items x item range)",
        )


def _numeric_text_candidates(study: Study) -> list[str]:
    """Text columns of the sessions table that neither the codebook nor the registry describe."""
    data = study.sessions
    declared = set(study.codebook.fields("sessions")["name"])
    skip = set(_text_columns(study, "sessions")) | {"session", "date", "phase"} | declared
    skip |= set(_score_columns(study))
    item = re.compile(r"^(?P<name>.+)_(?P<item>\d+)$")
    out = []
    for col in data.columns:
        if col in skip or pd.api.types.is_numeric_dtype(data[col].dtype):
            continue
        if pd.api.types.is_datetime64_any_dtype(data[col].dtype):
            continue
        match = item.match(str(col))
        if match:
            try:
                instruments.get(match["name"])
                continue  # checked against the registry
            except KeyError:
                pass
        out.append(col)
    return out


def _check_numeric_text(found: _Problems, study: Study, columns=None) -> None:
    """Text among numbers in a column the codebook and registry do not describe.

    A column counts as numeric when at least half its values are numbers; ``columns``
    gives that decision when it was made elsewhere (over a whole file, in
    :func:`validate_file`), and the check then runs on these rows only.
    """
    data = study.sessions
    if columns is None:
        columns = []
        for col in _numeric_text_candidates(study):
            raw = data[col].dropna()
            if raw.empty:
                continue
            num = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce")
            if num.notna().mean() >= 0.5:
                columns.append(col)
    for col in columns:
        if col in data.columns:
            _check_numeric(found, "sessions", data, col, None, None, "data")


def _check_ids(found: _Problems, table: str, data: pd.DataFrame) -> None:
    uniques = pd.Series(pd.unique(data["client"].dropna()))
    empty = uniques[uniques.astype(str).str.strip() == ""]
    blank = data["client"].isna() | data["client"].isin(empty)
    if blank.any():
        found.add(
            table,
            "client",
            _row_numbers(blank),
            "client identifier is empty",
            "fill in the client identifier or remove the row from your source file",
        )


def _check_session_numbers(found: _Problems, table: str, data: pd.DataFrame) -> None:
    raw = data["session"]
    num = pd.to_numeric(raw, errors="coerce")
    not_number = num.isna() & raw.notna()
    if not_number.any():
        examples = raw[not_number].astype(str).unique()[:3].tolist()
        found.add(
            table,
            "session",
            _row_numbers(not_number),
            f"session is not a number (e.g. {examples})",
            "sessions must be whole numbers (1, 2, 3, ...); recode labels such as 'S1' to numbers",
        )
    if raw.isna().any():
        found.add(
            table,
            "session",
            _row_numbers(raw.isna()),
            "session number is missing",
            "give every row its session number, or remove rows that are not sessions",
        )
    frac = num.notna() & (num != np.floor(num.fillna(0)))
    if frac.any():
        found.add(
            table,
            "session",
            _row_numbers(frac),
            f"{int(frac.sum())} non-integer session value(s) (e.g. {num[frac].iloc[0]})",
            "sessions must be whole numbers starting at 0 or 1; for irregular timing keep the "
            "session count here and put the date in a 'date' column",
        )
    neg = num.notna() & (num < 0)
    if neg.any():
        found.add(
            table,
            "session",
            _row_numbers(neg),
            "negative session number",
            "sessions count from 0 (intake) or 1; shift or correct the numbering",
        )


def _check_duplicates(found: _Problems, sessions: pd.DataFrame) -> None:
    dup = sessions.duplicated(["client", "session"], keep=False) & sessions["session"].notna()
    if dup.any():
        pairs = sessions.loc[dup, ["client", "session"]].drop_duplicates().head(3)
        shown = ", ".join(f"{c} session {s}" for c, s in pairs.itertuples(index=False))
        found.add(
            "sessions",
            "session",
            _row_numbers(dup),
            f"the same client x session appears more than once ({shown})",
            "keep one row per client and session: merge or renumber the repeated rows",
        )


def _check_therapists(found: _Problems, sessions: pd.DataFrame, allow: bool) -> pd.DataFrame:
    _check_therapist_missing(found, sessions)
    return _check_therapist_change(found, sessions, allow)


def _check_therapist_missing(found: _Problems, sessions: pd.DataFrame) -> None:
    missing = sessions["therapist"].isna()
    if missing.any():
        found.add(
            "sessions",
            "therapist",
            _row_numbers(missing),
            "therapist identifier is empty",
            "fill in who saw the client in that session",
        )


def _check_therapist_change(found: _Problems, sessions: pd.DataFrame, allow: bool) -> pd.DataFrame:
    counts = sessions.groupby("client", sort=False)["therapist"].nunique()
    multi = counts[counts > 1].index
    if not len(multi):
        return pd.DataFrame(columns=["client", "therapists"])
    changes = (
        sessions[sessions["client"].isin(multi)]
        .groupby("client", sort=False)["therapist"]
        .agg(lambda s: list(pd.unique(s.dropna())))
        .rename("therapists")
        .reset_index()
    )
    if allow:
        found.note(
            "sessions",
            "therapist",
            f"{len(multi)} client(s) changed therapist; each session's therapist is used",
        )
    else:
        rows = _row_numbers(sessions["client"].isin(multi))
        shown = ", ".join(
            f"{c} ({' and '.join(map(str, t))})" for c, t in changes.head(3).itertuples(index=False)
        )
        found.add(
            "sessions",
            "therapist",
            rows,
            f"{len(multi)} client(s) have more than one therapist: {shown}",
            "correct the therapist identifiers, or pass allow_therapist_change=True "
            "(command line: --allow-therapist-change) if clients really changed therapist",
        )
    return changes


def _check_allowed(found, table, data, column, allowed) -> None:
    col = data[column]
    uniques = pd.Series(pd.unique(col.dropna()))
    ok = {str(a).lower() for a in allowed}
    bad_values = uniques[~uniques.astype(str).str.strip().str.lower().isin(ok)]
    if len(bad_values):
        bad = col.isin(bad_values)
        values = bad_values.astype(str).tolist()[:4]
        found.add(
            table,
            column,
            _row_numbers(bad),
            f"value(s) {values} not among the allowed {list(allowed)}",
            f"recode to one of {', '.join(allowed)} (or leave empty when unknown)",
        )


def _check_codebook(
    found: _Problems,
    study: Study,
    tables: tuple[str, ...] = ("sessions", "clients", "events", *_OPTIONAL),
) -> None:
    fields = study.codebook.fields()
    if fields.empty:
        return
    for table in tables:
        data = getattr(study, table)
        declared = fields[fields["table"] == table]
        if declared.empty or data is None or data.attrs.get("derived"):
            continue  # a table made from the sessions (no file given) is not checked
        names = set(declared["name"])
        derived = set(data.attrs.get("derived_columns", ()))
        for col in data.columns:
            if col not in names and col not in derived:
                near = close_matches(col, names)
                if near:
                    found.add(
                        table,
                        col,
                        None,
                        f"column {col!r} is not in the codebook; did you mean {near[0]!r}?",
                        f"rename it to {near[0]!r}, or declare {col!r} in datapackage.json",
                    )
                else:
                    found.note(table, col, f"column {col!r} is not declared in the codebook")
        for fld in declared.itertuples():
            if fld.name not in data.columns:
                if not (table in ("events", *_OPTIONAL) and data.empty):
                    near = close_matches(fld.name, data.columns)
                    tip = f" (the data has {near[0]!r})" if near else ""
                    found.add(
                        table,
                        fld.name,
                        None,
                        f"the codebook declares column {fld.name!r} but the data lack it{tip}",
                        "add the column, rename yours, or remove it from datapackage.json",
                    )
                continue
            _check_rater(found, table, fld)
            if fld.type in ("integer", "number"):
                _check_numeric(found, table, data, fld.name, fld.minimum, fld.maximum, "codebook")
            role = (study.codebook.field(table, fld.name) or {}).get("role")
            if fld.type == "boolean" or role == "prior_negative_therapy":
                bad = _boolean_like(data[fld.name])
                if bad.any():
                    found.add(
                        table,
                        fld.name,
                        _row_numbers(bad),
                        "value is not true/false",
                        "use true/false (or 1/0, yes/no, ja/nein); leave empty when unknown",
                    )
            spec = study.codebook.field(table, fld.name) or {}
            enum = spec.get("constraints", {}).get("enum")
            if enum and fld.name not in ("phase",):
                _check_allowed(found, table, data, fld.name, tuple(map(str, enum)))


def _check_rater(found: _Problems, table: str, fld) -> None:
    """A declared rater must be a known one and agree with the registry's instrument."""
    rater = fld.rater if isinstance(fld.rater, str) else None
    if rater is None:
        return
    if rater not in instruments.RATERS:
        near = close_matches(rater, instruments.RATERS)
        tip = f" (did you mean {near[0]!r}?)" if near else ""
        found.add(
            table,
            fld.name,
            None,
            f"the codebook declares rater {rater!r}{tip}, not one of "
            f"{', '.join(instruments.RATERS)}",
            "set the field's rater in datapackage.json to client, therapist or observer",
        )
        return
    name = fld.instrument if isinstance(fld.instrument, str) else None
    if name is None:
        return
    try:
        ins = instruments.get(name)
    except KeyError:
        return
    if ins.rater != rater:
        found.add(
            table,
            fld.name,
            None,
            f"the codebook declares rater {rater!r} for instrument {ins.name!r}, which the "
            f"registry knows as {ins.rater}-rated",
            f"correct the rater, or name the {rater} form of the instrument (e.g. wai_sr_t "
            "for the therapist's WAI-SR)",
        )


def _check_numeric(found, table, data, column, low, high, source) -> None:
    raw = data[column]
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        num = raw.astype("float64")
        not_number = pd.Series(False, index=data.index)
    else:
        num = pd.to_numeric(raw, errors="coerce")
        text = raw.astype("string").str.strip()
        not_number = num.isna() & raw.notna() & (text != "")
    text_all = raw.astype("string").str.strip().str.lower()
    nan_text = text_all.isin(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"])
    infinite = pd.Series(np.isinf(num.to_numpy(dtype="float64", na_value=np.nan)), index=data.index)
    infinite |= nan_text.fillna(False).astype(bool)
    not_number &= ~infinite
    if not_number.any():
        examples = raw[not_number].astype(str).unique()[:3].tolist()
        found.add(
            table,
            column,
            _row_numbers(not_number),
            f"value(s) {examples} are not numbers",
            "recode text such as 'n/a' or '3 (guess)' to a number or an empty cell",
        )
    if infinite.any():
        examples = raw[infinite].astype(str).unique()[:3].tolist()
        found.add(
            table,
            column,
            _row_numbers(infinite),
            f"value(s) {examples} are not finite numbers",
            "replace inf / nan by the real value, or leave the cell empty when it is missing",
        )
        num = num.where(~infinite)
    outside = pd.Series(False, index=data.index)
    if low is not None and not pd.isna(low):
        outside |= num < low
    if high is not None and not pd.isna(high):
        outside |= num > high
    if outside.any():
        values = sorted(num[outside].unique().tolist())[:4]
        has_low = low is not None and not pd.isna(low)
        has_high = high is not None and not pd.isna(high)
        bound = (
            f"outside the range {low:g} to {high:g}"
            if has_low and has_high
            else (f"below the minimum {low:g}" if has_low else f"above the maximum {high:g}")
        )
        found.add(
            table,
            column,
            _row_numbers(outside),
            f"value(s) {values} {bound} that the {source} declares",
            "correct the entries (check for reverse-scored or differently coded exports, "
            "e.g. 0-4 instead of 1-5), or set them missing",
        )


def _check_instrument_items(found: _Problems, study: Study) -> None:
    declared = study.codebook.fields("sessions")
    ranged = set(declared.loc[declared["minimum"].notna() | declared["maximum"].notna(), "name"])
    pattern = re.compile(r"^(?P<name>.+)_(?P<item>\d+)$")
    for col in study.sessions.columns:
        match = pattern.match(str(col))
        if not match or col in ranged:
            continue
        try:
            ins = instruments.get(match["name"])
        except KeyError:
            continue
        item = int(match["item"])
        if item > ins.n_items:
            found.add(
                "sessions",
                col,
                None,
                f"{ins.title} has {ins.n_items} items, so there is no item {item}",
                f"rename the column, or pass check_instruments=False if it is not a {ins.name} item",
            )
            continue
        _check_numeric(
            found,
            "sessions",
            study.sessions,
            col,
            ins.item_min,
            ins.item_max,
            f"{ins.name} registry entry",
        )


def _check_clients(found: _Problems, sessions: pd.DataFrame, clients: pd.DataFrame) -> None:
    _check_client_table(found, clients)
    if "client" not in sessions.columns:
        return
    _check_orphans(found, sessions, clients)
    _check_client_links(found, sessions, clients)


def _check_client_table(found: _Problems, clients: pd.DataFrame) -> None:
    dup = clients["client"].duplicated(keep=False)
    if dup.any():
        found.add(
            "clients",
            "client",
            _row_numbers(dup),
            "client listed more than once",
            "keep one row per client in the clients table",
        )
    if "prior_negative_therapy" in clients.columns:
        bad = _boolean_like(clients["prior_negative_therapy"])
        if bad.any():
            found.add(
                "clients",
                "prior_negative_therapy",
                _row_numbers(bad),
                "value is not true/false",
                "use true/false (or 1/0, yes/no, ja/nein); leave empty when unknown",
            )
    if "termination" in clients.columns:
        _check_allowed(found, "clients", clients, "termination", TERMINATIONS)
    if "prior_therapy" in clients.columns:
        _check_allowed(found, "clients", clients, "prior_therapy", PRIOR_THERAPY)
        derived = "prior_negative_therapy" in clients.attrs.get("derived_columns", ())
        if "prior_negative_therapy" in clients.columns and not derived:
            _check_prior_agrees(found, clients)


def _check_prior_agrees(found: _Problems, clients: pd.DataFrame) -> None:
    """``prior_negative_therapy`` given beside ``prior_therapy`` must say the same."""
    kind = clients["prior_therapy"].astype("string").str.strip().str.lower()
    flag = clients["prior_negative_therapy"].astype("string").str.strip().str.lower()
    harmful = kind.eq("harmful")
    as_bool = flag.map(lambda v: True if v in _TRUE else (False if v in _FALSE else None))
    differ = kind.isin(PRIOR_THERAPY) & as_bool.notna() & (as_bool != harmful)
    differ = differ.fillna(False).astype(bool)
    if differ.any():
        found.add(
            "clients",
            "prior_negative_therapy",
            _row_numbers(differ),
            "prior_negative_therapy disagrees with prior_therapy (true exactly when "
            "prior_therapy is 'harmful')",
            "correct one of the two, or drop prior_negative_therapy and let it be derived "
            "from prior_therapy",
        )


def _is_arrow_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"


def _isin(values: pd.Series, pool: pd.Series) -> pd.Series:
    """``values.isin(set(pool.dropna()))``, fast when either holds Arrow-backed text."""
    uniques = pd.unique(pool.dropna())
    if _is_arrow_text(values) or _is_arrow_text(pool):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            left = pa.array(values.array if _is_arrow_text(values) else values.to_numpy(object))
            right = pa.array(uniques if _is_arrow_text(pool) else np.asarray(uniques, object))
            mask = pc.is_in(left, value_set=right.cast(left.type))
            return pd.Series(
                mask.fill_null(False).to_numpy(zero_copy_only=False), index=values.index
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass
    return values.isin(set(uniques))


def _check_orphans(found: _Problems, sessions: pd.DataFrame, clients: pd.DataFrame) -> None:
    orphan = ~_isin(sessions["client"], clients["client"]) & sessions["client"].notna()
    if orphan.any():
        ids = sessions.loc[orphan, "client"].astype(str).unique()
        found.add(
            "sessions",
            "client",
            _row_numbers(orphan),
            f"{len(ids)} client(s) in sessions but not in clients (e.g. {ids[:3].tolist()})",
            "add them to the clients table, or check for typos in the identifiers",
        )


def _check_client_links(found: _Problems, sessions: pd.DataFrame, clients: pd.DataFrame) -> None:
    """Clients without sessions; a clients-table therapist that differs from the sessions'."""
    unseen = ~_isin(clients["client"], sessions["client"])
    if unseen.any():
        found.note("clients", "client", f"{int(unseen.sum())} client(s) have no session rows")
    if {"therapist"} <= set(clients.columns) & set(sessions.columns):
        first = sessions.dropna(subset=["therapist"]).drop_duplicates("client")
        merged = clients.reset_index(drop=True).merge(
            first[["client", "therapist"]], on="client", how="left", suffixes=("", "_sessions")
        )
        differ = (
            merged["therapist_sessions"].notna()
            & merged["therapist"].notna()
            & (merged["therapist"].astype(str) != merged["therapist_sessions"].astype(str))
        )
        multi = sessions.groupby("client")["therapist"].nunique()
        differ &= ~merged["client"].isin(multi[multi > 1].index)
        if differ.any():
            found.add(
                "clients",
                "therapist",
                _row_numbers(differ),
                "the client's therapist differs from the one in the sessions table",
                "make the two tables agree on who the client's therapist is",
            )


def _check_events(found: _Problems, sessions: pd.DataFrame, events: pd.DataFrame) -> None:
    _check_session_numbers(found, "events", events)
    if "kind" in events.columns:
        _check_allowed(found, "events", events, "kind", EVENT_KINDS)
    if "source" in events.columns:
        _check_allowed(found, "events", events, "source", EVENT_SOURCES)
    if "resolved" in events.columns:
        bad = _boolean_like(events["resolved"])
        if bad.any():
            found.add(
                "events",
                "resolved",
                _row_numbers(bad),
                "value is not true/false",
                "use true/false, or leave empty when it is not known whether it was resolved",
            )
    if "client" in sessions.columns:
        orphan = ~_isin(events["client"], sessions["client"])
        if orphan.any():
            found.add(
                "events",
                "client",
                _row_numbers(orphan),
                "event for a client with no session rows",
                "check the client identifier against the sessions table",
            )


def _check_observer_tables(found: _Problems, study: Study) -> None:
    """The optional therapists, segments and coders tables, when they hold rows."""
    for table in _OPTIONAL:
        data = getattr(study, table, None)
        if data is not None and len(data):
            _check_required(found, table, data)
    therapists = study.therapists
    if therapists is not None and len(therapists) and "therapist" in therapists.columns:
        _check_therapist_table(found, study.sessions, therapists)
    segments = study.segments
    seg_ok = segments is not None and len(segments)
    if seg_ok and set(_REQUIRED["segments"]) <= set(segments.columns):
        _check_segments(found, study.sessions, segments)
    coders = study.coders
    if coders is not None and len(coders) and set(_REQUIRED["coders"]) <= set(coders.columns):
        _check_coders(found, study.sessions, segments if seg_ok else None, coders)


def _check_therapist_table(found: _Problems, sessions: pd.DataFrame, therapists: pd.DataFrame):
    dup = therapists["therapist"].duplicated(keep=False) & therapists["therapist"].notna()
    if dup.any():
        found.add(
            "therapists",
            "therapist",
            _row_numbers(dup),
            "therapist listed more than once",
            "keep one row per therapist in the therapists table",
        )
    if "experience" in therapists.columns:
        _check_numeric(found, "therapists", therapists, "experience", 0, None, "package")
    if "therapist" in sessions.columns:
        missing = (
            ~_isin(sessions["therapist"], therapists["therapist"]) & sessions["therapist"].notna()
        )
        if missing.any():
            ids = sessions.loc[missing, "therapist"].astype(str).unique()
            found.add(
                "sessions",
                "therapist",
                _row_numbers(missing),
                f"{len(ids)} therapist(s) in sessions but not in the therapists table "
                f"(e.g. {ids[:3].tolist()})",
                "add a row for each of them to the therapists table, or check the identifiers "
                "for typos",
            )
        unseen = ~_isin(therapists["therapist"], sessions["therapist"])
        if unseen.any():
            found.note(
                "therapists", "therapist", f"{int(unseen.sum())} therapist(s) have no sessions"
            )


def _marker_names() -> list[str]:
    return [n for kind, subs in RUPTURE_MARKERS.items() for n in (kind, *subs)]


def _check_segments(found: _Problems, sessions: pd.DataFrame, segments: pd.DataFrame) -> None:
    _check_session_numbers(found, "segments", segments)
    _check_ids(found, "segments", segments)
    num = pd.to_numeric(segments["segment"], errors="coerce")
    bad = segments["segment"].isna() | num.isna() | (num < 1) | (num != np.floor(num.fillna(0)))
    if bad.any():
        found.add(
            "segments",
            "segment",
            _row_numbers(bad),
            "segment is not a whole number from 1",
            "number the segments of each session 1, 2, 3, ... in the order they were coded "
            "(the 3RS codes 5-minute segments)",
        )
    blank = segments["coder"].isna() | (segments["coder"].astype("string").str.strip() == "")
    if blank.any():
        found.add(
            "segments",
            "coder",
            _row_numbers(blank),
            "coder identifier is empty",
            "say who coded each segment; the coders table lists who rated which session",
        )
    if "marker" in segments.columns:
        text = segments["marker"].astype("string").str.strip().str.lower()
        kinds = text.map(lambda v: marker_type(v) if isinstance(v, str) else None)
        unknown = text.notna() & (text != "") & kinds.isna()
        if unknown.any():
            names = _marker_names()
            values = text[unknown].unique().tolist()[:4]
            near = close_matches(str(values[0]), names)
            tip = f" (did you mean {near[0]!r}?)" if near else ""
            found.add(
                "segments",
                "marker",
                _row_numbers(unknown),
                f"unknown rupture marker(s) {values}{tip}",
                "use a 3RS marker name from alliance.study.RUPTURE_MARKERS (a withdrawal or "
                "confrontation subtype, or the type itself when no subtype was coded), or "
                "leave it empty for a coded segment without a marker",
            )
    for column, what in (("significance", "rupture significance"), ("resolution", "resolution")):
        if column in segments.columns:
            _check_rating(found, segments, column, what)
    if "significance" in segments.columns and "marker" in segments.columns:
        no_marker = segments["marker"].isna() | (
            segments["marker"].astype("string").str.strip() == ""
        )
        rated = pd.to_numeric(segments["significance"], errors="coerce").notna()
        orphan = (no_marker & rated).fillna(False).astype(bool)
        if orphan.any():
            found.add(
                "segments",
                "significance",
                _row_numbers(orphan),
                "significance rated for a row without a marker",
                "name the marker the rating belongs to, or clear the significance",
            )
    key = ["client", "session", "segment", "coder"] + (
        ["marker"] if "marker" in segments.columns else []
    )
    dup = segments.duplicated(key, keep=False)
    if dup.any():
        found.add(
            "segments",
            None,
            _row_numbers(dup),
            f"the same {' x '.join(key)} appears more than once",
            "keep one row per coder x segment x marker (merge repeated codes)",
        )
    if {"client", "session"} <= set(sessions.columns):
        absent = _absent_sessions(segments, sessions)
        if absent.any():
            pairs = segments.loc[absent, ["client", "session"]].drop_duplicates()
            shown = [f"{c} session {s}" for c, s in pairs.head(3).itertuples(index=False)]
            found.add(
                "segments",
                "session",
                _row_numbers(absent),
                f"{len(pairs)} coded session(s) are absent from the sessions table "
                f"(e.g. {', '.join(shown)})",
                "add the session rows to the sessions table, or correct the client and "
                "session numbers of the segments (they must name attended sessions)",
            )


def _check_rating(found: _Problems, data: pd.DataFrame, column: str, what: str) -> None:
    raw = data[column]
    num = pd.to_numeric(raw, errors="coerce")
    text = raw.astype("string").str.strip()
    not_number = (num.isna() & raw.notna() & (text != "")).fillna(False).astype(bool)
    bad = num.notna() & ((num < 1) | (num > 5) | (num != np.floor(num.fillna(0))))
    bad = (bad | not_number).fillna(False).astype(bool)
    if bad.any():
        values = raw[bad].astype(str).unique().tolist()[:4]
        found.add(
            "segments",
            column,
            _row_numbers(bad),
            f"{what} value(s) {values} are not whole numbers from 1 to 5",
            f"the 3RS rates {what} 1 (low) to 5 (high); correct the entries, or leave "
            "them empty when not rated",
        )


def _session_keys(frame: pd.DataFrame) -> pd.Series:
    num = pd.to_numeric(frame["session"], errors="coerce")
    as_text = num.map(lambda v: "" if pd.isna(v) else f"{float(v):g}")
    return frame["client"].astype("string").fillna("") + "\x1f" + as_text.astype("string")


def _absent_sessions(table: pd.DataFrame, sessions: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` whose client x session is not a row of ``sessions``."""
    have = set(_session_keys(sessions).tolist())
    keys = _session_keys(table)
    return ~keys.isin(have) & pd.to_numeric(table["session"], errors="coerce").notna()


def _check_coders(
    found: _Problems,
    sessions: pd.DataFrame,
    segments: pd.DataFrame | None,
    coders: pd.DataFrame,
) -> None:
    _check_session_numbers(found, "coders", coders)
    dup = coders.duplicated(["coder", "client", "session"], keep=False)
    if dup.any():
        found.add(
            "coders",
            None,
            _row_numbers(dup),
            "the same coder x client x session appears more than once",
            "keep one row per coder x rated session",
        )
    if {"client", "session"} <= set(sessions.columns):
        absent = _absent_sessions(coders, sessions)
        if absent.any():
            found.add(
                "coders",
                "session",
                _row_numbers(absent),
                "coder assigned to a session absent from the sessions table",
                "correct the client and session of the assignment, or add the session row",
            )
    if segments is None:
        found.note("coders", "coder", "a coders table was given without segments")
        return
    coded = set(segments["coder"].dropna().astype(str))
    idle = ~coders["coder"].astype(str).isin(coded)
    if idle.any():
        names = coders.loc[idle, "coder"].astype(str).unique().tolist()
        found.add(
            "coders",
            "coder",
            _row_numbers(idle),
            f"coder(s) {names[:4]} have no ratings in the segments table",
            "add their segment codes, or remove the coder's rows from the coders table "
            "if they did not code",
        )
    assigned = set((coders["coder"].astype(str) + "\x1f" + _session_keys(coders)).tolist())
    seg_keys = segments["coder"].astype(str) + "\x1f" + _session_keys(segments)
    unassigned = ~seg_keys.isin(assigned)
    if unassigned.any():
        found.add(
            "segments",
            "coder",
            _row_numbers(unassigned),
            "segments coded by a coder the coders table does not assign to that session",
            "add the coder x client x session to the coders table, or correct the coder identifier",
        )


def _row_level_checks(
    found: _Problems,
    sessions: pd.DataFrame,
    codebook,
    check_instruments: bool,
    numeric_text: list[str] = (),
) -> None:
    """The checks that look at one sessions row at a time, in :func:`validate`'s order."""
    cols = set(sessions.columns)
    part = Study(sessions=sessions, clients=pd.DataFrame(columns=["client"]), codebook=codebook)
    _check_whitespace(found, "sessions", sessions, _text_columns(part, "sessions"))
    _check_scores(found, part)
    _check_numeric_text(found, part, columns=list(numeric_text))
    if {"client", "session"} <= cols:
        _check_ids(found, "sessions", sessions)
        _check_session_numbers(found, "sessions", sessions)
    if {"client", "therapist"} <= cols:
        _check_therapist_missing(found, sessions)
    if "phase" in cols:
        _check_allowed(found, "sessions", sessions, "phase", PHASES)
    part = Study(sessions=sessions, clients=pd.DataFrame(columns=["client"]), codebook=codebook)
    _check_codebook(found, part, tables=("sessions",))
    if check_instruments:
        _check_instrument_items(found, part)


def _numeric_text_columns(con, source, plan, rename: dict, book) -> list[str]:
    """Text columns of a whole file in which at least half the values are numbers.

    The decision :func:`validate` makes on a loaded table, made here in one DuckDB pass
    over the file, so every batch checks the same columns (named after renaming).
    """
    from alliance import _stream

    back = {new: old for old, new in rename.items()}
    empty = pd.DataFrame(
        {
            rename.get(c, c): pd.Series(dtype=object if dtype == "string" else "float64")
            for c, (dtype, _) in plan.items()
        }
    )
    head = Study(sessions=empty, clients=pd.DataFrame(columns=["client"]), codebook=book)
    candidates = _numeric_text_candidates(head)
    if not candidates:
        return []
    parts = []
    for col in candidates:
        q = _stream.quote(back.get(col, col))
        text = f"trim(CAST({q} AS VARCHAR))"
        parts += [
            f"count(CASE WHEN {text} <> '' THEN 1 END)",
            f"count(TRY_CAST({text} AS DOUBLE))",
        ]
    row = con.sql(f"SELECT {', '.join(parts)} FROM {source.sql}").fetchall()[0]
    return [
        col for i, col in enumerate(candidates) if row[2 * i] and row[2 * i + 1] / row[2 * i] >= 0.5
    ]


def validate_file(
    path,
    *,
    clients=None,
    events=None,
    codebook=None,
    columns: dict[str, str] | None = None,
    allow_therapist_change: bool = False,
    check_instruments: bool = True,
    raise_on_error: bool = True,
    batch_rows: int = 1_000_000,
    progress: bool = False,
) -> ValidationReport:
    """Validate a study whose sessions file is too big for memory, batch by batch.

    The same checks and the same messages as :func:`validate`: rules about one row
    (identifiers, session numbers, ranges, allowed values, clients missing from the
    clients table) run on batches of ``batch_rows`` rows; rules across rows (repeated
    client x session, clients with more than one therapist, clients without sessions,
    events of unknown clients) run as DuckDB SQL over the file. Memory depends on
    ``batch_rows``, not on the file's length. Row numbers are the file's (the first
    data row is row 1).

    Parameters
    ----------
    path : str, pathlib.Path or list
        A CSV, TSV or Parquet sessions file, or a folder holding ``sessions.*`` (and
        optionally ``clients.*``, ``events.*``, ``datapackage.json``), as for
        :func:`alliance.read_study`. The clients and events tables are read into memory.
    clients, events, codebook : optional
        As for :func:`alliance.read_study`.
    columns : mapping, optional
        Column renames applied to every table, e.g. ``{"ClientID": "client"}``.
    allow_therapist_change, check_instruments, raise_on_error : bool
        As for :func:`validate`.
    batch_rows : int, default 1000000
        Rows checked at once.
    progress : bool, default False
        Show a progress bar (rows checked).

    Returns
    -------
    ValidationReport
        As from :func:`validate`. The problems' ``rows`` are row numbers of the file.

    Raises
    ------
    ValidationError
        When a problem is found and ``raise_on_error`` is True.

    Examples
    --------
    >>> import alliance
    >>> from alliance.datasets import dataset_path
    >>> report = alliance.schema.validate_file(dataset_path("demo"), batch_rows=1000)
    >>> report.ok, report.n_sessions, report.n_clients
    (True, 3688, 300)
    """
    from alliance import _sniff, _stream
    from alliance._layout import events_types, locate
    from alliance.io import read_table

    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a whole number of at least 1, got {batch_rows!r}")
    rename = dict(columns or {})
    back = {new: old for old, new in rename.items()}
    found_paths, book, book_path, _ = locate(path, clients, events, codebook)
    files = {t: str(p) for t, p in found_paths.items()}
    if book_path is not None:
        files["codebook"] = str(book_path)
    client_table = (
        read_table(found_paths["clients"], columns=rename, ids=book.identifiers("clients"))
        if "clients" in found_paths
        else None
    )
    event_table = (
        events_types(
            read_table(found_paths["events"], columns=rename, ids=book.identifiers("events"))
        )
        if "events" in found_paths
        else None
    )

    def q(name: str) -> str:
        return _stream.quote(back.get(name, name))

    with _stream.temporary_folder() as tmp:
        con = _stream.connect(temp_directory=tmp)
        try:
            header = _stream.header_of(found_paths["sessions"])
            wanted = set(_sniff.ID_COLUMNS) | set(book.identifiers("sessions"))
            ids = [c for c in header if rename.get(c, c) in wanted]
            source = _stream.open_source(con, found_paths["sessions"], ids=ids)
            source = _stream.as_parquet(con, source, tmp)
            plan = _stream.plan_dtypes(con, source, source.columns)
            names = [rename.get(c, c) for c in source.columns]
            numeric_text = _numeric_text_columns(con, source, plan, rename, book)
            flagged: list[pd.DataFrame] = []
            n_missing = pd.Series(0, index=names, dtype=np.int64)
            n_rows = 0
            template = None
            for batch in _stream.iter_frames(
                con, source, plan, batch_rows=batch_rows, progress=progress, desc="validating"
            ):
                batch = batch.rename(columns=rename) if rename else batch
                if template is None:
                    template = batch.iloc[:0]
                n_rows += len(batch)
                n_missing += batch.isna().sum().astype(np.int64)
                scratch = _Problems({})
                _row_level_checks(scratch, batch, book, check_instruments, numeric_text)
                hits = [p["rows"] for p in scratch.rows if p["table"] == "sessions" and p["rows"]]
                if hits:
                    positions = np.unique(np.concatenate([np.asarray(h) for h in hits])) - 1
                    flagged.append(batch.iloc[positions])
            if template is None:
                template = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
            rows_flagged = pd.concat([template, *flagged]) if flagged else template

            def subframe(sql: str, cols: list[str]) -> pd.DataFrame:
                sub = {back.get(c, c): plan[back.get(c, c)] for c in cols}
                table = con.sql(sql).to_arrow_table()
                frame = _stream.to_pandas(table, sub).rename(columns=rename)
                frame.index = pd.Index(
                    np.asarray(table.column("file_row_number").to_numpy(), np.int64) + 1
                )
                return frame

            src = source.sql
            has = set(names)
            dups = therapist_rows = per_client = orphans = None
            if client_table is not None and "client" in client_table.columns and "client" in has:
                known = pd.DataFrame({"k": client_table["client"].dropna().astype(str).unique()})
                con.register("known_clients", known)
                orphans = subframe(
                    f"SELECT file_row_number, {q('client')} FROM {src} WHERE {q('client')} IS "
                    f"NOT NULL AND CAST({q('client')} AS VARCHAR) NOT IN "
                    "(SELECT k FROM known_clients) ORDER BY file_row_number",
                    ["client"],
                )
            n_therapists = 0
            if {"client", "session"} <= has:
                dups = subframe(
                    f"SELECT s.file_row_number, s.{q('client')}, s.{q('session')} FROM {src} s "
                    f"JOIN (SELECT {q('client')} AS c, {q('session')} AS n FROM {src} "
                    f"WHERE {q('session')} IS NOT NULL GROUP BY ALL HAVING count(*) > 1) d "
                    f"ON s.{q('client')} IS NOT DISTINCT FROM d.c AND s.{q('session')} = d.n "
                    "ORDER BY s.file_row_number",
                    ["client", "session"],
                )
            if "client" in has:
                if "therapist" in has:
                    therapist_rows = subframe(
                        f"SELECT file_row_number, {q('client')}, {q('therapist')} FROM {src} "
                        f"WHERE {q('client')} IN (SELECT {q('client')} FROM {src} GROUP BY ALL "
                        f"HAVING count(DISTINCT {q('therapist')}) > 1) ORDER BY file_row_number",
                        ["client", "therapist"],
                    )
                    per_client = subframe(
                        f"SELECT {q('client')}, {q('therapist')}, min(file_row_number) AS "
                        f"file_row_number FROM {src} GROUP BY ALL ORDER BY file_row_number",
                        ["client", "therapist"],
                    )
                    count = f"SELECT count(DISTINCT {q('therapist')}) FROM {src}"
                    n_therapists = int(con.sql(count).fetchall()[0][0])
                else:
                    per_client = subframe(
                        f"SELECT {q('client')}, min(file_row_number) AS file_row_number "
                        f"FROM {src} GROUP BY ALL ORDER BY file_row_number",
                        ["client"],
                    )
        finally:
            con.close()

    found = _Problems(files)
    for table in _OPTIONAL:
        if table in found_paths:
            found.note(
                table,
                None,
                f"the {table} table is not checked when streaming; check it with "
                "alliance.validate(alliance.read_study(...))",
            )
    empty_events = event_table is None or not len(event_table.columns)
    _check_required(found, "sessions", rows_flagged)
    if client_table is not None:
        _check_required(found, "clients", client_table)
    if not empty_events:
        _check_required(found, "events", event_table)

    def on(frame: pd.DataFrame) -> pd.DataFrame:
        found.row_numbers["sessions"] = frame.index.to_numpy()
        return frame

    if n_rows == 0:
        found.add(
            "sessions",
            None,
            None,
            "the sessions table has no rows (an empty or header-only file)",
            "export the table again with one row per client x session",
        )
    head = Study(
        sessions=on(rows_flagged),
        clients=client_table if client_table is not None else None,
        codebook=book,
    )
    _check_whitespace(found, "sessions", rows_flagged, _text_columns(head, "sessions"))
    if client_table is not None:
        _check_whitespace(found, "clients", client_table, _text_columns(head, "clients"))
    _check_scores(found, head)
    _check_numeric_text(found, head, columns=numeric_text)

    flagged_rows = on(rows_flagged)
    if {"client", "session"} <= has:
        _check_ids(found, "sessions", flagged_rows)
        _check_session_numbers(found, "sessions", flagged_rows)
        _check_duplicates(found, on(dups))
    changes = pd.DataFrame()
    if {"client", "therapist"} <= has:
        _check_therapist_missing(found, on(rows_flagged))
        changes = _check_therapist_change(found, on(therapist_rows), allow_therapist_change)
    elif "therapist" not in has:
        found.note(
            "sessions",
            "therapist",
            "no therapist column: therapist-level models and ICCs will not be available",
        )
    on(rows_flagged)
    if "phase" in has:
        _check_allowed(found, "sessions", rows_flagged, "phase", PHASES)
    whole = Study(
        sessions=rows_flagged,
        clients=client_table if client_table is not None else pd.DataFrame(columns=["client"]),
        events=event_table,
        codebook=book,
    )
    _check_codebook(found, whole, tables=("sessions", "clients", "events"))
    if check_instruments:
        _check_instrument_items(found, whole)
    if client_table is not None and "client" in client_table.columns:
        _check_client_table(found, client_table)
        if "client" in has:
            _check_orphans(found, on(orphans), client_table)
            _check_client_links(found, per_client, client_table)
    found.row_numbers.pop("sessions")
    if (
        not empty_events
        and len(event_table)
        and {"client", "session"} <= set(event_table.columns)
        and per_client is not None
    ):
        _check_events(found, per_client, event_table)

    return _finish(
        found,
        n_missing,
        n_rows=n_rows,
        n_clients=int(per_client["client"].nunique()) if per_client is not None else 0,
        n_therapists=n_therapists,
        changes=changes,
        raise_on_error=raise_on_error,
    )


def find_scores(
    study: Study, *, alliance: str | None = None, outcome: str | None = None
) -> dict[str, str | None]:
    """Find the alliance and outcome score columns of a study.

    A name given is checked and kept. Otherwise the codebook is asked first (a field
    whose ``instrument`` is an alliance or outcome instrument and whose name is not an
    item such as ``wai_sr_3``), then the registry's instrument names (``wai_sr``,
    ``srs``, ``phq9``, ``bdi_ii``, ...) among the columns.

    Returns
    -------
    dict
        ``alliance`` and ``outcome`` (columns or None), ``instrument`` (the outcome's
        registry name when known) and ``alliance_instrument`` (the alliance's).

    Examples
    --------
    >>> import alliance
    >>> from alliance.schema import find_scores
    >>> find_scores(alliance.datasets.load_dataset("demo"))
    {'alliance': 'wai_sr', 'outcome': 'phq9', 'instrument': 'phq9', 'alliance_instrument': 'wai_sr'}
    >>> find_scores(alliance.datasets.load_dataset("btheb"))["outcome"]
    'bdi_ii'
    """
    columns = list(study.sessions.columns)
    found: dict[str, str | None] = {"alliance": alliance, "outcome": outcome}
    for role, name in found.items():
        if name is not None and name not in columns:
            near = close_matches(name, columns)
            tip = f" Did you mean {near[0]!r}?" if near else ""
            raise KeyError(f"the {role} column {name!r} is not in the sessions table.{tip}")
    item = re.compile(r"_\d+$")
    fields = study.codebook.fields("sessions")
    candidates: list[tuple[str, str]] = [
        (str(f.name), str(f.instrument))
        for f in fields.itertuples()
        if isinstance(f.instrument, str) and not item.search(str(f.name)) and f.name in columns
    ]
    candidates += [(c, c) for c in columns if not item.search(str(c))]
    instrument_of: dict[str, str] = {}
    for column, ins_name in candidates:
        try:
            ins = instruments.get(ins_name)
        except KeyError:
            continue
        role = "alliance" if ins.construct == "alliance" else "outcome"
        if ins.construct in ("alliance", "outcome") and found[role] is None:
            found[role] = column
        instrument_of.setdefault(column, ins.name)
    found["instrument"] = instrument_of.get(found["outcome"]) if found["outcome"] else None
    found["alliance_instrument"] = (
        instrument_of.get(found["alliance"]) if found["alliance"] else None
    )
    return found
