"""The Study container: three long tables and their codebook.

A study is ``sessions`` (one row per client x session), ``clients`` (one row per
client) and ``events`` (rupture / repair markers, may be empty), described by a
codebook in the Frictionless ``datapackage.json`` layout.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Study", "Codebook", "EVENT_COLUMNS", "EVENT_KINDS", "EVENT_SOURCES", "PHASES"]

#: Columns of the events table, in order.
EVENT_COLUMNS = ["client", "session", "kind", "resolved", "source"]
#: Allowed values of ``events.kind``.
EVENT_KINDS = ("withdrawal", "confrontation", "unspecified")
#: Allowed values of ``events.source``.
EVENT_SOURCES = ("self-report", "observer", "detected")
#: Allowed values of ``sessions.phase`` (Kadushin & Kadushin 2013).
PHASES = ("exploration", "assessment", "treatment")

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
        if self.events is None:
            self.events = _empty_events()
        if self.codebook is None:
            self.codebook = Codebook()

    @property
    def n_clients(self) -> int:
        """Number of distinct clients in the sessions table."""
        return int(self.sessions["client"].nunique()) if "client" in self.sessions else 0

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Study({label}{len(self.sessions)} sessions, {len(self.clients)} clients, "
            f"{len(self.events)} events)"
        )
