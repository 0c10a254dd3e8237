"""Validation of a study's three tables, reporting every problem at once.

:func:`validate` checks structure (required columns, identifiers, whole-number
sessions, duplicates, one therapist per client), the codebook (declared columns,
ranges, allowed values) and the instrument registry (item ranges for columns named
``<instrument>_<item>``). Missing scores are never an error: they are counted in the
report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance import instruments
from alliance._checks import close_matches, format_rows
from alliance.study import EVENT_KINDS, EVENT_SOURCES, PHASES, Study

__all__ = ["ValidationError", "ValidationReport", "validate", "find_scores", "KNOWN_COLUMNS"]

#: Column names the package knows without a codebook, per table.
KNOWN_COLUMNS = {
    "sessions": ["client", "therapist", "site", "session", "date", "phase"],
    "clients": ["client", "therapist", "site", "prior_negative_therapy", "condition"],
    "events": ["client", "session", "kind", "resolved", "source"],
}
_REQUIRED = {
    "sessions": ["client", "session"],
    "clients": ["client"],
    "events": ["client", "session"],
}
_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f"}


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

    def add(self, table: str, column: str | None, rows, problem: str, fix: str) -> None:
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
    ...     print(err.problems[["column", "rows"]].to_string(index=False))
     column rows
    session  [4]
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

    problems = found.frame()
    missing = (
        sessions.isna()
        .sum()
        .rename("n_missing")
        .rename_axis("column")
        .reset_index()
        .assign(share_missing=lambda d: d["n_missing"] / max(len(sessions), 1))
        .sort_values("n_missing", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    report = ValidationReport(
        problems=problems,
        notes=pd.DataFrame(found.notes, columns=["table", "column", "note"]),
        missing=missing,
        n_clients=int(sessions["client"].nunique()) if "client" in sessions else 0,
        n_sessions=len(sessions),
        n_therapists=int(sessions["therapist"].nunique()) if "therapist" in sessions else 0,
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
            tip = (
                f"rename {near[0]!r} to {col!r} (read_study(..., columns={{{near[0]!r}: {col!r}}}))"
                if near
                else f"add a {col!r} column or map yours with read_study(..., columns={{...}})"
            )
            found.add(table, col, None, f"required column {col!r} is missing", tip)


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
    missing = sessions["therapist"].isna()
    if missing.any():
        found.add(
            "sessions",
            "therapist",
            _row_numbers(missing),
            "therapist identifier is empty",
            "fill in who saw the client in that session",
        )
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


def _check_codebook(found: _Problems, study: Study) -> None:
    fields = study.codebook.fields()
    if fields.empty:
        return
    for table in ("sessions", "clients", "events"):
        data = getattr(study, table)
        declared = fields[fields["table"] == table]
        if declared.empty or data is None:
            continue
        names = set(declared["name"])
        for col in data.columns:
            if col not in names:
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
                if not (table == "events" and data.empty):
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
            if fld.type in ("integer", "number"):
                _check_numeric(found, table, data, fld.name, fld.minimum, fld.maximum, "codebook")
            if fld.type == "boolean":
                bad = _boolean_like(data[fld.name])
                if bad.any():
                    found.add(
                        table,
                        fld.name,
                        _row_numbers(bad),
                        "value is not true/false",
                        "use true/false (or 1/0, yes/no); leave empty when unknown",
                    )
            spec = study.codebook.field(table, fld.name) or {}
            enum = spec.get("constraints", {}).get("enum")
            if enum and fld.name not in ("phase",):
                _check_allowed(found, table, data, fld.name, tuple(map(str, enum)))


def _check_numeric(found, table, data, column, low, high, source) -> None:
    raw = data[column]
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        num = raw.astype("float64")
        not_number = pd.Series(False, index=data.index)
    else:
        num = pd.to_numeric(raw, errors="coerce")
        text = raw.astype("string").str.strip()
        not_number = num.isna() & raw.notna() & (text != "")
    if not_number.any():
        examples = raw[not_number].astype(str).unique()[:3].tolist()
        found.add(
            table,
            column,
            _row_numbers(not_number),
            f"value(s) {examples} are not numbers",
            "recode text such as 'n/a' or '3 (guess)' to a number or an empty cell",
        )
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
                "use true/false (or 1/0, yes/no); leave empty when unknown",
            )
    if "client" not in sessions.columns:
        return
    known = set(clients["client"].dropna())
    orphan = ~sessions["client"].isin(known) & sessions["client"].notna()
    if orphan.any():
        ids = sessions.loc[orphan, "client"].astype(str).unique()
        found.add(
            "sessions",
            "client",
            _row_numbers(orphan),
            f"{len(ids)} client(s) in sessions but not in clients (e.g. {ids[:3].tolist()})",
            "add them to the clients table, or check for typos in the identifiers",
        )
    unseen = ~clients["client"].isin(set(sessions["client"].dropna()))
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
        orphan = ~events["client"].isin(set(sessions["client"].dropna()))
        if orphan.any():
            found.add(
                "events",
                "client",
                _row_numbers(orphan),
                "event for a client with no session rows",
                "check the client identifier against the sessions table",
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
        ``{"alliance": column or None, "outcome": column or None, "instrument": name or None}``;
        ``instrument`` is the outcome's instrument when known.

    Examples
    --------
    >>> import alliance
    >>> from alliance.schema import find_scores
    >>> find_scores(alliance.datasets.load_dataset("demo"))
    {'alliance': 'wai_sr', 'outcome': 'phq9', 'instrument': 'phq9'}
    >>> find_scores(alliance.datasets.load_dataset("btheb"))
    {'alliance': None, 'outcome': 'bdi_ii', 'instrument': 'bdi_ii'}
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
    return found
