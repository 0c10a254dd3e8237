"""The Study container: long tables and their codebook.

A study is ``sessions`` (one row per client x session), ``clients`` (one row per
client) and ``events`` (rupture / repair markers, may be empty), described by a
codebook in the Frictionless ``datapackage.json`` layout. Three more tables are
optional and empty by default: ``therapists`` (one row per therapist), ``segments``
(observer codes of the Rupture Resolution Rating System, one row per coder x session
segment x marker) and ``coders`` (which coder rated which session).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "Study",
    "Codebook",
    "CODER_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "EVENT_SOURCES",
    "PHASES",
    "PRIOR_THERAPY",
    "RUPTURE_MARKERS",
    "SEGMENT_COLUMNS",
    "TERMINATIONS",
    "THERAPIST_COLUMNS",
    "marker_type",
]

#: Columns of the events table, in order.
EVENT_COLUMNS = ["client", "session", "kind", "resolved", "source"]
#: Allowed values of ``events.kind``.
EVENT_KINDS = ("withdrawal", "confrontation", "unspecified")
#: Allowed values of ``events.source``.
EVENT_SOURCES = ("self-report", "observer", "detected")
#: Allowed values of ``sessions.phase`` (Kadushin & Kadushin 2013).
PHASES = ("exploration", "assessment", "treatment")
#: Allowed values of ``clients.termination`` (how treatment ended).
TERMINATIONS = ("completed", "dropped_out", "referred", "other")
#: Allowed values of ``clients.prior_therapy``; ``prior_negative_therapy`` is derived from
#: it (``harmful`` -> true, ``none`` / ``helpful`` -> false) when the clients table lacks it.
PRIOR_THERAPY = ("none", "helpful", "harmful")

#: Rupture markers of the Rupture Resolution Rating System (3RS; Eubanks, Muran &
#: Safran 2015), by type. ``segments.marker`` holds a subtype, or the type itself
#: (``withdrawal`` / ``confrontation``) when only the type was coded, or is empty for a
#: coded segment without a marker.
RUPTURE_MARKERS = {
    "withdrawal": (
        "denial",
        "minimal_response",
        "abstract_communication",
        "avoidant_storytelling",
        "deferential_appeasing",
        "content_affect_split",
        "self_criticism_hopelessness",
    ),
    "confrontation": (
        "complaints_about_therapist",
        "rejects_intervention",
        "complaints_about_activities",
        "complaints_about_parameters",
        "complaints_about_progress",
        "defends_self",
        "controls_pressures_therapist",
    ),
}
#: Columns of the segments table: required first (client, session, segment, coder),
#: then marker, significance (1-5), strategy (free text) and resolution (1-5).
SEGMENT_COLUMNS = [
    "client",
    "session",
    "segment",
    "coder",
    "marker",
    "significance",
    "strategy",
    "resolution",
]
#: Columns of the coders table: one row per coder x rated session.
CODER_COLUMNS = ["coder", "client", "session"]
#: Columns the therapists table may hold (``therapist`` is required).
THERAPIST_COLUMNS = ["therapist", "site", "experience"]


def marker_type(marker: object) -> str | None:
    """The 3RS type (``withdrawal`` / ``confrontation``) of a marker name, or None.

    Examples
    --------
    >>> from alliance.study import marker_type
    >>> marker_type("minimal_response"), marker_type("confrontation"), marker_type(None)
    ('withdrawal', 'confrontation', None)
    """
    if not isinstance(marker, str):
        return None
    name = marker.strip().lower()
    for kind, subtypes in RUPTURE_MARKERS.items():
        if name == kind or name in subtypes:
            return kind
    return None


_FIELD_COLUMNS = [
    "table",
    "name",
    "type",
    "description",
    "instrument",
    "rater",
    "minimum",
    "maximum",
]


class Codebook:
    """A study's codebook, kept as a Frictionless Data Package dictionary.

    Parameters
    ----------
    package : dict, optional
        A ``datapackage.json`` dictionary. Each resource (``sessions``, ``clients``,
        ``events``) has ``schema.fields``; a field may carry ``instrument``, ``rater``
        and ``constraints`` (``minimum``, ``maximum``) beside the standard keys.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fields = study.codebook.fields("sessions")
    >>> fields.set_index("name").loc["wai_sr_1", ["instrument", "rater", "minimum", "maximum"]]
    ... # doctest: +NORMALIZE_WHITESPACE
    instrument    wai_sr
    rater         client
    minimum          1.0
    maximum          5.0
    Name: wai_sr_1, dtype: object
    """

    def __init__(self, package: dict[str, Any] | None = None):
        self.package: dict[str, Any] = copy.deepcopy(package) if package else {"resources": []}
        self.package.setdefault("resources", [])

    @classmethod
    def from_file(cls, path: str | Path) -> Codebook:
        """Read a ``datapackage.json`` file."""
        path = Path(path)
        try:
            package = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} is not valid JSON ({err}); a codebook must be a Frictionless "
                "datapackage.json file"
            ) from err
        return cls(package)

    def to_dict(self) -> dict[str, Any]:
        """The codebook as a plain dictionary (a copy)."""
        return copy.deepcopy(self.package)

    def write(self, path: str | Path) -> None:
        """Write the codebook as JSON."""
        Path(path).write_text(json.dumps(self.package, indent=2) + "\n", encoding="utf-8")

    def resource(self, table: str) -> dict[str, Any] | None:
        """The resource dictionary of one table, or None."""
        for res in self.package["resources"]:
            if res.get("name") == table:
                return res
        return None

    def fields(self, table: str | None = None) -> pd.DataFrame:
        """All declared fields as a tidy DataFrame (one row per table x column)."""
        rows = []
        for res in self.package["resources"]:
            if table is not None and res.get("name") != table:
                continue
            for fld in res.get("schema", {}).get("fields", []):
                cons = fld.get("constraints", {})
                rows.append(
                    {
                        "table": res.get("name"),
                        "name": fld.get("name"),
                        "type": fld.get("type"),
                        "description": fld.get("description"),
                        "instrument": fld.get("instrument"),
                        "rater": fld.get("rater"),
                        "minimum": cons.get("minimum"),
                        "maximum": cons.get("maximum"),
                    }
                )
        frame = pd.DataFrame(rows, columns=_FIELD_COLUMNS)
        for col in ("minimum", "maximum"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        return frame

    def field(self, table: str, name: str) -> dict[str, Any] | None:
        """One field's dictionary, or None when the codebook does not declare it."""
        res = self.resource(table)
        if res is None:
            return None
        for fld in res.get("schema", {}).get("fields", []):
            if fld.get("name") == name:
                return fld
        return None

    #: Field roles that make a column an identifier (read as text, never as a number).
    IDENTIFIER_ROLES = ("identifier", "client", "therapist", "site")

    def identifiers(self, table: str) -> list[str]:
        """The columns of one table the codebook makes identifiers, read as text.

        A field is an identifier when its ``type`` is ``string``, its ``role`` is one of
        :attr:`IDENTIFIER_ROLES`, it has ``"identifier": true``, or it is one of the
        table's foreign-key fields. Such a column is read as text in every format and
        engine even when typed ``integer``, so ``01`` stays ``01``.

        Examples
        --------
        >>> from alliance.study import Codebook
        >>> book = Codebook({"resources": [{"name": "sessions", "schema": {"fields": [
        ...     {"name": "case_no", "type": "integer", "role": "client"},
        ...     {"name": "session", "type": "integer"}]}}]})
        >>> book.identifiers("sessions")
        ['case_no']
        """
        res = self.resource(table)
        if res is None:
            return []
        schema = res.get("schema", {}) or {}
        keys: set[str] = set()
        for fk in schema.get("foreignKeys", []) or []:
            fields = fk.get("fields", []) if isinstance(fk, dict) else []
            keys |= {fields} if isinstance(fields, str) else set(fields)
        out = []
        for fld in schema.get("fields", []) or []:
            name = fld.get("name") if isinstance(fld, dict) else None
            if not isinstance(name, str):
                continue
            if (
                fld.get("type") == "string"
                or fld.get("role") in self.IDENTIFIER_ROLES
                or fld.get("identifier") is True
                or name in keys
            ):
                out.append(name)
        return out

    @property
    def citation(self) -> str | None:
        """How to cite the data, when the codebook says."""
        return self.package.get("citation")

    @property
    def licence(self) -> str | None:
        """The data licence's name, when the codebook says."""
        lic = self.package.get("licenses") or []
        return lic[0].get("name") if lic else None

    def __repr__(self) -> str:
        n = sum(len(r.get("schema", {}).get("fields", [])) for r in self.package["resources"])
        return f"Codebook({self.package.get('name', 'unnamed')!r}, {n} fields)"


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client": pd.Series(dtype="object"),
            "session": pd.Series(dtype="Int64"),
            "kind": pd.Series(dtype="object"),
            "resolved": pd.Series(dtype="boolean"),
            "source": pd.Series(dtype="object"),
        }
    )


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _derive_prior_negative(clients: pd.DataFrame) -> pd.DataFrame:
    """Add ``prior_negative_therapy`` from ``prior_therapy`` when only the latter is given."""
    if "prior_therapy" not in clients.columns or "prior_negative_therapy" in clients.columns:
        return clients
    text = clients["prior_therapy"].astype("string").str.strip().str.lower()
    known = text.isin(PRIOR_THERAPY)
    derived = pd.array(
        [bool(v == "harmful") if ok else pd.NA for v, ok in zip(text, known, strict=True)],
        dtype="boolean",
    )
    out = clients.copy()
    out.insert(list(out.columns).index("prior_therapy") + 1, "prior_negative_therapy", derived)
    out.attrs = dict(clients.attrs)
    out.attrs["derived_columns"] = [
        *clients.attrs.get("derived_columns", []),
        "prior_negative_therapy",
    ]
    return out


@dataclass
class Study:
    """A therapy study in three long tables.

    Parameters
    ----------
    sessions : pandas.DataFrame
        One row per client x session: ``client``, ``therapist``, ``session`` and
        score or item columns; optional ``site``, ``date``, ``phase`` and technique counts.
    clients : pandas.DataFrame, optional
        One row per client: ``client``, ``therapist``, optional ``site``,
        ``prior_negative_therapy`` and baseline covariates. Made from ``sessions``
        when not given.
    events : pandas.DataFrame, optional
        Rupture / repair markers: ``client``, ``session``, ``kind``, ``resolved``,
        ``source``. Empty when not given.
    therapists : pandas.DataFrame, optional
        One row per therapist: ``therapist``, optional ``site``, ``experience`` (years)
        and other therapist covariates. Empty when not given.
    segments : pandas.DataFrame, optional
        Observer codes of the Rupture Resolution Rating System (Eubanks, Muran & Safran
        2015), one row per coder x session segment x marker: ``client``, ``session``,
        ``segment``, ``coder``, ``marker`` (see :data:`RUPTURE_MARKERS`; empty for a
        coded segment without a marker), ``significance`` (1-5), ``strategy`` (the
        resolution strategy, free text) and ``resolution`` (1-5). Empty when not given;
        :func:`alliance.ruptures.aggregate_segments` makes session-level scores.
    coders : pandas.DataFrame, optional
        Which coder rated which session: ``coder``, ``client``, ``session`` (one row per
        coder x session). Empty when not given.
    codebook : Codebook, optional
        What each column means: instrument, rater, allowed range.
    truth : dict, optional
        For simulated studies, the values the data were generated from.
    name : str, optional
        A label used in reports.
    files : dict, optional
        Table -> path of the file it was read from (for provenance).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> study.sessions[["client", "therapist", "session"]].dtypes.tolist()
    [dtype('O'), dtype('O'), dtype('int64')]
    >>> len(study.clients) == study.sessions["client"].nunique()
    True
    """

    sessions: pd.DataFrame
    clients: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    codebook: Codebook = field(default_factory=Codebook)
    therapists: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    coders: pd.DataFrame | None = None
    truth: dict[str, Any] | None = None
    name: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.sessions, pd.DataFrame):
            raise TypeError(
                f"Study.sessions must be a pandas DataFrame, not {type(self.sessions).__name__}"
            )
        if self.clients is None:
            keep = [c for c in ("client", "therapist", "site") if c in self.sessions.columns]
            if "client" in keep:
                self.clients = self.sessions[keep].drop_duplicates("client").reset_index(drop=True)
            else:
                self.clients = pd.DataFrame(columns=keep)
            self.clients.attrs["derived"] = True  # made from sessions, not read from a file
        else:
            self.clients = _derive_prior_negative(self.clients)
        if self.events is None:
            self.events = _empty_events()
        if self.therapists is None:
            self.therapists = _empty(["therapist"])
        if self.segments is None:
            self.segments = _empty(SEGMENT_COLUMNS)
        if self.coders is None:
            self.coders = _empty(CODER_COLUMNS)
        if self.codebook is None:
            self.codebook = Codebook()

    @property
    def n_clients(self) -> int:
        """Number of distinct clients in the sessions table."""
        return int(self.sessions["client"].nunique()) if "client" in self.sessions else 0

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        extra = "".join(
            f", {len(getattr(self, t))} {t}"
            for t in ("therapists", "segments", "coders")
            if len(getattr(self, t))
        )
        return (
            f"Study({label}{len(self.sessions)} sessions, {len(self.clients)} clients, "
            f"{len(self.events)} events{extra})"
        )
