"""Column roles, resolved once: which column is the client, the session, the alliance, ...

Every analysis needs to know which column plays which part. :func:`resolve_design`
answers that once for a study, in this order of precedence:

1. explicit arguments (``client="ClientID"``, ``alliance="wai"``);
2. the study's codebook: a ``role`` property on a field of ``datapackage.json``
   (beside the ``instrument`` and ``rater`` properties fields already carry);
3. conventional names, matched ignoring case, spaces and punctuation, in English and
   German (``ClientID``, ``Klient``, ``TherapeutID``, ``Sitzung``, ``Datum``, ...).

Questionnaire items are recognised the same way: ``PHQ9_1`` is ``phq9_1``, and
``WAI_1 .. WAI_12`` are offered as WAI-SR items when all twelve lie within 1..5 (as
WAI-S items when they use 1..7). The result, a :class:`Design`, lists every role with
where it came from, so a researcher sees every guess and how to change it.

:func:`canonical_study` turns a study into the form every analysis of the package
reads: role columns under their canonical names, identifiers as text, items named
``<instrument>_<n>``, scale scores added where only items were given, client-level
columns in the clients table, and a codebook that records the roles.

:class:`EarlyWindow` is the one definition of "early alliance" the package uses.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance import instruments
from alliance._checks import close_matches
from alliance.schema import FALSE_WORDS, TRUE_WORDS
from alliance.study import Codebook, Study

__all__ = [
    "ROLES",
    "Design",
    "EarlyWindow",
    "as_window",
    "fill_roles",
    "canonical_study",
    "normalize_name",
    "resolve_design",
]

#: Each role: (level, what it is, conventional names after :func:`normalize_name`).
ROLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "client": (
        "session",
        "the client identifier",
        (
            "client",
            "client_id",
            "clientid",
            "client_code",
            "klient",
            "klientin",
            "klient_id",
            "klientid",
            "patient",
            "patient_id",
            "patientid",
            "patientin",
            "pat_id",
            "patid",
            "pid",
            "participant",
            "participant_id",
            "case",
            "case_id",
            "fall",
            "fallnummer",
            "chiffre",
            "proband",
            "vp",
            "vpn",
            "id",
        ),
    ),
    "therapist": (
        "session",
        "the therapist (or social worker) identifier",
        (
            "therapist",
            "therapist_id",
            "therapistid",
            "therapeut",
            "therapeutin",
            "therapeut_id",
            "therapeutid",
            "therapeuten_id",
            "clinician",
            "clinician_id",
            "counselor",
            "counsellor",
            "social_worker",
            "worker",
            "worker_id",
            "berater",
            "beraterin",
            "behandler",
            "behandlerin",
        ),
    ),
    "site": (
        "session",
        "the site (clinic, service) identifier",
        (
            "site",
            "site_id",
            "clinic",
            "centre",
            "center",
            "service",
            "standort",
            "klinik",
            "einrichtung",
            "ambulanz",
            "praxis",
        ),
    ),
    "session": (
        "session",
        "the session number (whole numbers from 0 or 1)",
        (
            "session",
            "session_number",
            "session_no",
            "session_nr",
            "sessionnumber",
            "sess",
            "sitzung",
            "sitzungsnummer",
            "sitzung_nr",
            "stunde",
            "termin",
            "visit",
        ),
    ),
    "date": ("session", "the session date", ("date", "session_date", "datum", "sitzungsdatum")),
    "phase": ("session", "the interview phase", ("phase", "interview_phase")),
    "condition": (
        "client",
        "the treatment condition",
        ("condition", "arm", "treatment", "bedingung", "gruppe", "behandlung", "intervention"),
    ),
    "prior_negative_therapy": (
        "client",
        "whether the client had a prior negative therapy experience",
        (
            "prior_negative_therapy",
            "prior_negative",
            "negative_prior_therapy",
            "prior_negative_experience",
            "negative_vorerfahrung",
            "vorerfahrung_negativ",
        ),
    ),
    "termination": (
        "client",
        "how treatment ended (termination reason)",
        (
            "termination",
            "termination_reason",
            "end_reason",
            "dropout_reason",
            "beendigung",
            "behandlungsende",
            "abbruch",
        ),
    ),
    "alliance": ("session", "the alliance score", ("alliance", "alliance_score")),
    "outcome": ("session", "the outcome (symptom) score", ("outcome", "outcome_score")),
    "alliance_therapist": ("session", "the therapist-rated alliance score", ()),
    "alliance_observer": ("session", "the observer-rated alliance score", ()),
}

#: Roles that are scale scores (found from instruments, never renamed to the role).
SCORE_ROLES = ("alliance", "outcome", "alliance_therapist", "alliance_observer")


def _score_role(ins: instruments.Instrument, rater: str | None = None) -> str | None:
    """The role of a scale score: by construct, and for the alliance by who rated it."""
    if ins.construct == "outcome":
        return "outcome"
    if ins.construct != "alliance":
        return None
    rater = rater or ins.rater
    return {"therapist": "alliance_therapist", "observer": "alliance_observer"}.get(
        rater, "alliance"
    )


#: Session-level technique counts the package knows by name.
TECHNIQUES = ("paraphrasing", "reflection", "confrontation", "interpretation", "validation")

_ITEM = re.compile(r"^(?P<stub>[a-z][a-z0-9_]*?)_?(?P<n>\d+)$")


def normalize_name(name: object) -> str:
    """A column name as the conventions compare it: lower case, ``_`` for any gap.

    Examples
    --------
    >>> from alliance.design import normalize_name
    >>> normalize_name("Client ID"), normalize_name("PHQ-9_1"), normalize_name(" Sitzung ")
    ('client_id', 'phq_9_1', 'sitzung')
    """
    text = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower())
    return text.strip("_")


def _aliases(ins: instruments.Instrument) -> set[str]:
    """Item-name stubs that may mean this instrument (``wai``, ``waisr``, ``phq``...)."""
    name = ins.name
    flat = name.replace("_", "")
    out = {name, flat}
    if ins.rater != "client":
        return out  # therapist and observer forms only by their own name: WAI_1 is a client's
    head = re.sub(r"[_\d]*(ii|i)?$", "", name) if name.endswith(("_ii", "_i")) else None
    if head:
        out |= {head, head + "2"}
    out.add(re.sub(r"[_\d]+$", "", name))
    out.add(name.split("_")[0])
    return {a for a in out if a}


@dataclass(frozen=True)
class EarlyWindow:
    """The one definition of the early alliance: the mean of the first rated sessions.

    Parameters
    ----------
    sessions : int, default 3
        How many sessions make up the early window.
    counts : {"rated", "numbers"}, default "rated"
        ``"rated"``: the first ``sessions`` sessions that have an alliance rating, so a
        client who missed session 2 contributes sessions 1, 3 and 4. ``"numbers"``:
        session numbers up to the first session number + ``sessions`` - 1, so missed
        sessions shorten the window.
    min_ratings : int, optional
        Ratings a client needs in the window to get an early score; by default all
        ``sessions`` of them for ``"rated"`` and 1 for ``"numbers"``. Clients with fewer
        get a missing early score and are counted in ``n_short``.

    Examples
    --------
    >>> import alliance
    >>> from alliance.design import EarlyWindow
    >>> study = alliance.datasets.load_dataset("demo")
    >>> early = EarlyWindow(3).compute(study.sessions, "wai_sr")
    >>> list(early.columns)
    ['client', 'early', 'n_ratings', 'last_session']
    >>> early.attrs["n_short"]
    1
    """

    sessions: int = 3
    counts: str = "rated"
    min_ratings: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sessions, bool) or not isinstance(self.sessions, int | np.integer):
            raise TypeError(f"early must be a whole number of sessions, got {self.sessions!r}")
        if self.sessions < 1:
            raise ValueError(f"early must be at least 1 session, got {self.sessions}")
        if self.counts not in ("rated", "numbers"):
            raise ValueError(f"counts must be 'rated' or 'numbers', got {self.counts!r}")
        need = self.min_ratings
        if need is not None and not 1 <= need <= self.sessions:
            raise ValueError(f"min_ratings must lie in 1..{self.sessions}, got {need}")

    @property
    def needed(self) -> int:
        """Ratings a client needs in the window."""
        if self.min_ratings is not None:
            return int(self.min_ratings)
        return self.sessions if self.counts == "rated" else 1

    def describe(self) -> str:
        """The window in words, for notes and reports."""
        if self.counts == "rated":
            what = f"the mean of the first {self.sessions} rated sessions"
        else:
            what = f"the mean of the ratings in the first {self.sessions} session numbers"
        return f"early alliance: {what} (at least {self.needed} rating(s) needed)"

    def mask(
        self, frame: pd.DataFrame, alliance: str, client: str, session: str
    ) -> tuple[pd.Series, pd.Series, str]:
        """Which rows lie in each client's window, which clients have enough ratings.

        ``frame`` must be sorted by client and session. Returns ``(in_window, enough,
        reason)``: boolean Series on ``frame``'s index (``enough`` repeated on every row
        of a client) and the exclusion reason for clients without enough ratings.
        """
        g = frame[client]
        rated = frame[alliance].notna()
        if self.counts == "rated":
            rank = rated.astype(int).groupby(g).cumsum().where(rated)
            in_window = rated & (rank <= self.sessions)
            where = f"first {self.sessions} rated sessions"
        else:
            first = frame[session].groupby(g).transform("min")
            in_window = rated & (frame[session] <= first + self.sessions - 1)
            where = f"first {self.sessions} session numbers"
        enough = in_window.groupby(g).transform("sum") >= self.needed
        if self.counts == "rated" and self.needed == self.sessions:
            reason = f"fewer than {self.sessions} rated {alliance} sessions"
        else:
            reason = f"fewer than {self.needed} {alliance} ratings in the {where}"
        return in_window.astype(bool), enough.astype(bool), reason

    def compute(
        self,
        data: pd.DataFrame,
        alliance: str,
        client: str = "client",
        session: str = "session",
    ) -> pd.DataFrame:
        """Each client's early alliance.

        Returns
        -------
        pandas.DataFrame
            client, early (NaN when too few ratings), n_ratings, last_session (the last
            session in the window). ``attrs["n_short"]`` counts clients who fell short.
        """
        frame = data[[client, session, alliance]].copy()
        frame = frame.sort_values([client, session], kind="stable")
        rated = frame[frame[alliance].notna()]
        if self.counts == "rated":
            window = rated.groupby(client, sort=False).head(self.sessions)
        else:
            first = frame.groupby(client, sort=False)[session].transform("min")
            window = rated[rated[session] <= first.loc[rated.index] + self.sessions - 1]
        grouped = window.groupby(client, sort=False)
        out = pd.DataFrame({client: pd.unique(frame[client])})
        stats = pd.DataFrame(
            {
                "early": grouped[alliance].mean(),
                "n_ratings": grouped[alliance].size(),
                "last_session": grouped[session].max(),
            }
        )
        out = out.merge(stats, left_on=client, right_index=True, how="left")
        out["n_ratings"] = out["n_ratings"].fillna(0).astype(int)
        short = out["n_ratings"] < self.needed
        out.loc[short, "early"] = np.nan
        out = out.rename(columns={client: "client"}).reset_index(drop=True)
        out.attrs["n_short"] = int(short.sum())
        out.attrs["window"] = self.describe()
        return out


def as_window(early: int | EarlyWindow | None = 3, **legacy: int | None) -> EarlyWindow:
    """An :class:`EarlyWindow` from ``early=`` (or a former argument name, with a warning).

    ``legacy`` holds the argument a function used to take (``k=``, ``early_sessions=``,
    ``first_sessions=``); when given it wins and a ``DeprecationWarning`` names ``early=``.

    Examples
    --------
    >>> from alliance.design import as_window
    >>> as_window(4).sessions, as_window(None) is None
    (4, True)
    """
    import warnings

    for name, value in legacy.items():
        if value is not None:
            warnings.warn(
                f"{name}= is now early= (the same name in every analysis); pass early={value!r}",
                DeprecationWarning,
                stacklevel=3,
            )
            early = value
    if early is None or isinstance(early, EarlyWindow):
        return early
    return EarlyWindow(early)


def higher_is_better(data, column: str, direction: str | None = None) -> bool:
    """Whether higher scores of ``column`` are better, from ``direction=`` or the study.

    ``direction`` wins; else the instrument the study's design gives the column (its
    codebook's ``instrument``, or a registered instrument's name such as ``phq9``) decides
    (:func:`alliance.instruments.higher_is_better`); else lower is better.

    Examples
    --------
    >>> import alliance
    >>> from alliance.design import higher_is_better
    >>> study = alliance.datasets.load_dataset("demo")
    >>> higher_is_better(study, "phq9"), higher_is_better(study, "wai_sr")
    (False, True)
    >>> higher_is_better(study, "phq9", direction="higher_is_better")
    True
    """
    if direction is not None:
        return instruments.higher_is_better(direction)
    name = None
    try:
        design = resolve_design(data)
        for role, col in design.columns.items():
            if col == column and design.instruments.get(role):
                name = design.instruments[role]
    except (KeyError, ValueError, TypeError):
        name = None
    if name is None and column in instruments.REGISTRY:
        name = column
    return instruments.higher_is_better(None, name) if name else False


def therapist_role(
    data, therapist: str | bool | None = None, *, design: Design | None = None
) -> tuple[str | None, str | None]:
    """The therapist column an analysis nests clients in, and the note that says so.

    An explicit column wins; ``False`` means no therapist level. Left as None, a
    :class:`~alliance.study.Study` whose design has a therapist column (its codebook's
    ``role``, or the conventional names) nests clients in it, and the note says so and how
    to turn it off; a plain DataFrame gets no therapist level, as before.

    Returns
    -------
    (str or None, str or None)
        The column (None for none) and the note for the result (None when nothing was
        chosen for the caller).

    Examples
    --------
    >>> import alliance
    >>> from alliance.design import therapist_role
    >>> study = alliance.datasets.load_dataset("demo")
    >>> column, note = therapist_role(study)
    >>> column, note.split(":")[0]
    ('therapist', 'clients nested in therapists')
    >>> therapist_role(study, False), therapist_role(study.sessions)
    ((None, None), (None, None))
    """
    if therapist is False:
        return None, None
    if therapist is True:
        therapist = None
    elif therapist is not None:
        return str(therapist), None
    if not isinstance(data, Study):
        return None, None
    try:
        column = (design or resolve_design(data)).columns.get("therapist")
    except (KeyError, ValueError, TypeError):
        return None, None
    if not column:
        return None, None
    return column, (
        f"clients nested in therapists: the study's therapist column {column!r} (from its "
        "design); pass therapist=False to fit without a therapist level"
    )


def from_study_roles(function=None, *, optional: tuple[str, ...] = ()):
    """Decorate an analysis so that the roles left out are read from the data's design.

    ``alliance=`` and ``outcome=`` left as None are found by :func:`fill_roles` (the
    study's codebook ``role``, then conventional names, with an error naming close matches);
    ``therapist=`` left out is the Study's therapist column (:func:`therapist_role`), and
    the result gains a note saying so. The analysis's first parameter is the data. Roles
    in ``optional`` stay None when the data have no such column (``@from_study_roles(
    optional=("alliance",))`` for an analysis that needs the alliance only sometimes).

    Examples
    --------
    >>> import alliance
    >>> from alliance.design import from_study_roles
    >>> @from_study_roles
    ... def roles(data, alliance=None, outcome=None, therapist=None):
    ...     return alliance, outcome, therapist
    >>> roles(alliance.datasets.load_dataset("demo"))
    ('wai_sr', 'phq9', 'therapist')
    >>> roles(alliance.datasets.load_dataset("demo").sessions, outcome="phq9")
    ('wai_sr', 'phq9', None)
    """
    if function is None:
        return functools.partial(from_study_roles, optional=tuple(optional))
    signature = inspect.signature(function)
    first = next(iter(signature.parameters))
    scores = [r for r in ("alliance", "outcome") if r in signature.parameters]
    has_therapist = "therapist" in signature.parameters
    therapist_default = signature.parameters["therapist"].default if has_therapist else None

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs)
        data = bound.arguments.get(first)
        missing = [r for r in scores if bound.arguments.get(r) is None and data is not None]
        given = bound.arguments.get("therapist", therapist_default)
        auto = has_therapist and given is None
        # one design for every role left out (resolving it reads the whole study)
        design = resolve_design(data) if missing or (auto and isinstance(data, Study)) else None
        for role in missing:
            try:
                bound.arguments[role] = _role_column(design, role)
            except KeyError:
                if role not in optional:
                    raise
        note = None
        if has_therapist:
            column, note = therapist_role(data, given, design=design)
            bound.arguments["therapist"] = column
        result = function(*bound.args, **bound.kwargs)
        notes = getattr(result, "notes", None)
        if note and isinstance(notes, list) and note not in notes:
            notes.insert(0, note)
        return result

    return wrapper


def fill_roles(data, **roles: str | None) -> dict[str, str]:
    """Roles left as None, found by :func:`resolve_design` (codebook, then names).

    Analyses call this so that ``alliance=`` and ``outcome=`` may be left out for a Study
    whose codebook declares them or a table with conventional names.

    Raises
    ------
    KeyError
        Naming the role, the close matches and how to pass it.

    Examples
    --------
    >>> import alliance
    >>> from alliance.design import fill_roles
    >>> fill_roles(alliance.datasets.load_dataset("demo"), alliance=None, outcome="phq9")
    {'alliance': 'wai_sr', 'outcome': 'phq9'}
    """
    missing = [r for r, c in roles.items() if c is None]
    if not missing:
        return dict(roles)
    design = resolve_design(data)
    return {**roles, **{role: _role_column(design, role) for role in missing}}


def _role_column(design: Design, role: str) -> str:
    """The design's column for ``role``; a KeyError naming close matches when it has none."""
    column = design.columns.get(role)
    if column is None:
        near = design.suggestions.get(role, [])
        tip = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
        raise KeyError(
            f"no {role} column was found ({ROLES[role][1]}).{tip} Pass {role}='COLUMN', "
            f'or give the field "role": "{role}" in the codebook'
        )
    return column


@dataclass
class Design:
    """Which column plays which role in a study, and where each answer came from.

    Attributes
    ----------
    columns : dict
        Role -> column name in the data (None when the study has no such column).
    sources : dict
        Role -> ``"argument"``, ``"codebook"``, ``"name"`` (a conventional name) or
        ``"items"`` (a score computed from recognised items).
    items : dict
        Instrument registry name -> {item number: column}, for every questionnaire whose
        items were recognised.
    instruments : dict
        ``alliance`` and ``outcome`` -> the registry name of their questionnaire (or None).
    techniques : list of str
        Session-level technique columns.
    early : EarlyWindow
        The early-alliance window every analysis uses.
    suggestions : dict
        Role -> close matches for a role that was not found.
    labels : dict
        Column -> {code: label} from SPSS/Stata value labels or the codebook.

    Examples
    --------
    >>> import alliance
    >>> design = alliance.resolve_design(alliance.datasets.load_dataset("demo"))
    >>> design.client, design.session, design.alliance, design.outcome
    ('client', 'session', 'wai_sr', 'phq9')
    >>> design.instruments
    {'alliance': 'wai_sr', 'outcome': 'phq9', 'alliance_therapist': 'wai_sr_t'}
    """

    columns: dict[str, str | None]
    sources: dict[str, str] = field(default_factory=dict)
    items: dict[str, dict[int, str]] = field(default_factory=dict)
    instruments: dict[str, str | None] = field(default_factory=dict)
    techniques: list[str] = field(default_factory=list)
    early: EarlyWindow = field(default_factory=EarlyWindow)
    suggestions: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)

    def __getattr__(self, name: str):
        columns = self.__dict__.get("columns", {})
        if name in ROLES:
            return columns.get(name)
        raise AttributeError(name)

    def has(self, role: str) -> bool:
        """Whether the study has a column for ``role``."""
        return self.columns.get(role) is not None

    def missing(self, roles: Sequence[str]) -> list[str]:
        """The roles among ``roles`` the study lacks, described in words."""
        return [ROLES[r][1] for r in roles if r in ROLES and not self.has(r)]

    def table(self) -> pd.DataFrame:
        """One row per role: role, column, source, what it is, close matches if missing."""
        rows = []
        for role, (level, what, _) in ROLES.items():
            column = self.columns.get(role)
            source = self.sources.get(role, "")
            if role in SCORE_ROLES and self.instruments.get(role):
                what = f"{what} ({self.instruments[role]})"
            rows.append(
                {
                    "role": role,
                    "column": column,
                    "source": source if column else "not found",
                    "level": level,
                    "what": what,
                    "did_you_mean": ", ".join(self.suggestions.get(role, [])),
                }
            )
        for ins, its in self.items.items():
            cols = [its[k] for k in sorted(its)]
            rows.append(
                {
                    "role": f"items of {ins}",
                    "column": f"{cols[0]} .. {cols[-1]}",
                    "source": "items",
                    "level": "session",
                    "what": f"{len(cols)} items of {instruments.get(ins).title}",
                    "did_you_mean": "",
                }
            )
        if self.techniques:
            rows.append(
                {
                    "role": "techniques",
                    "column": ", ".join(self.techniques),
                    "source": "name",
                    "level": "session",
                    "what": "technique counts per session",
                    "did_you_mean": "",
                }
            )
        return pd.DataFrame(rows)

    def renames(self) -> dict[str, str]:
        """Data column -> canonical name (roles and items), for :func:`canonical_study`."""
        out: dict[str, str] = {}
        for role, column in self.columns.items():
            if column is not None and role not in SCORE_ROLES:
                out[column] = role
        for ins, its in self.items.items():
            for k, column in its.items():
                out[column] = f"{ins}_{k}"
        for role in SCORE_ROLES:
            column, ins = self.columns.get(role), self.instruments.get(role)
            if column is not None and ins and self.sources.get(role) != "items":
                if normalize_name(column) == ins:
                    out[column] = ins
        return out

    def frame(self, study: Study) -> pd.DataFrame:
        """The one long frame: sessions with the client-level role columns attached.

        Rows are the sessions table's, in order; client-level roles (condition, prior
        negative therapy, termination, and therapist/site when only the clients table
        has them) are joined on the client identifier as text.
        """
        sessions = study.sessions
        client = self.columns.get("client") or "client"
        wanted = [
            self.columns[r]
            for r in ROLES
            if self.columns.get(r) and self.columns[r] not in sessions.columns
        ]
        have = [c for c in wanted if c in study.clients.columns]
        if not have or client not in study.clients.columns:
            return sessions.copy()
        extra = study.clients[[client, *have]].drop_duplicates(client)
        extra[client] = extra[client].astype(str)
        keys = sessions[client].astype(str)
        joined = pd.DataFrame({client: keys}).merge(extra, on=client, how="left")
        out = sessions.copy()
        for col in have:
            out[col] = joined[col].to_numpy()
        return out

    def summary(self) -> str:
        """The roles as plain text, with how to change a guess."""
        table = self.table()
        lines = []
        for row in table.itertuples():
            if row.column:
                lines.append(f"  {row.role:<24} {row.column:<28} ({row.source})")
            else:
                tip = f"; did you mean {row.did_you_mean}?" if row.did_you_mean else ""
                lines.append(f"  {row.role:<24} {'-':<28} (not found{tip})")
        lines.append(f"  {self.early.describe()}")
        return "\n".join(lines)


def _codebook_roles(book: Codebook | None) -> dict[str, str]:
    if book is None:
        return {}
    found: dict[str, str] = {}
    for resource in book.package.get("resources", []):
        for fld in resource.get("schema", {}).get("fields", []):
            role = fld.get("role")
            if role in ROLES and role not in found:
                found[role] = fld["name"]
    return found


def _match_items(columns: Sequence[str], data: pd.DataFrame | None) -> dict[str, dict[int, str]]:
    """Recognise questionnaire item columns (case-insensitive, WAI by its range)."""
    groups: dict[str, dict[int, str]] = {}
    for col in columns:
        m = _ITEM.match(normalize_name(col))
        if m:
            groups.setdefault(m.group("stub").rstrip("_"), {})[int(m.group("n"))] = col
    registry = [instruments.get(n) for n in instruments.list_instruments()["name"]]
    found: dict[str, dict[int, str]] = {}
    for stub, its in groups.items():
        options = []
        for ins in registry:
            if stub not in _aliases(ins) or set(range(1, ins.n_items + 1)) - set(its):
                continue
            cols = [its[k] for k in range(1, ins.n_items + 1)]
            if data is not None:
                values = data[cols].apply(pd.to_numeric, errors="coerce").stack()
                if len(values) and (values.min() < ins.item_min or values.max() > ins.item_max):
                    continue
            exact = stub in (ins.name, ins.name.replace("_", ""))
            options.append((not exact, ins.item_max - ins.item_min, ins.name))
        if options and min(options)[2] not in found:
            name = min(options)[2]
            n = instruments.get(name).n_items
            found[name] = {k: its[k] for k in range(1, n + 1)}
    return found


def _score_columns(
    columns: Sequence[str], book: Codebook | None, items: dict[str, dict[int, str]]
) -> tuple[dict[str, str | None], dict[str, str | None], dict[str, str]]:
    """Score columns of each score role, their instruments, and the sources."""
    column: dict[str, str | None] = dict.fromkeys(SCORE_ROLES)
    ins_of: dict[str, str | None] = dict.fromkeys(SCORE_ROLES)
    source: dict[str, str] = {}
    item_cols = {c for its in items.values() for c in its.values()}
    candidates: list[tuple[str, str, str, str | None]] = []
    if book is not None:
        for resource in book.package.get("resources", []):
            for fld in resource.get("schema", {}).get("fields", []):
                name, ins = fld.get("name"), fld.get("instrument")
                if isinstance(ins, str) and name in columns and not _ITEM.match(name):
                    candidates.append((name, ins, "codebook", fld.get("rater")))
    for col in columns:
        if col not in item_cols:
            candidates.append((col, normalize_name(col), "name", None))
    for col, ins_name, how, rater in candidates:
        try:
            ins = instruments.get(ins_name)
        except KeyError:
            continue
        role = _score_role(ins, rater)
        if role is not None and column[role] is None:
            column[role], ins_of[role], source[role] = col, ins.name, how
    for ins_name in items:
        ins = instruments.get(ins_name)
        role = _score_role(ins)
        if role is not None and column[role] is None:
            column[role], ins_of[role], source[role] = ins.name, ins.name, "items"
    return column, ins_of, source


def resolve_design(
    data: Study | pd.DataFrame,
    *,
    codebook: Codebook | None = None,
    early: int | EarlyWindow = 3,
    labels: Mapping[str, dict] | None = None,
    **roles: str | None,
) -> Design:
    """Resolve which column plays which role: arguments, then codebook, then names.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        A study (its sessions and clients tables and codebook are searched) or one long
        table of sessions.
    codebook : Codebook, optional
        A codebook for a DataFrame (a Study brings its own).
    early : int or EarlyWindow, default 3
        The early-alliance window (see :class:`EarlyWindow`).
    labels : mapping, optional
        Column -> {code: label}, e.g. SPSS value labels.
    **roles : str
        Explicit columns for roles (``client="ClientID"``, ``session="Sitzung"``,
        ``alliance="wai"``, ``outcome="phq9"``, ``therapist=None`` for none). Names are
        those of :data:`ROLES`.

    Returns
    -------
    Design

    Raises
    ------
    KeyError
        An explicit column that the data lack (with close matches), or an unknown role.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.design import resolve_design
    >>> frame = pd.DataFrame({"ClientID": ["01", "02"], "Sitzung": [1, 1],
    ...                       "TherapeutID": ["T1", "T1"], "BDI": [20, 31]})
    >>> d = resolve_design(frame, outcome="BDI")
    >>> d.client, d.session, d.therapist, d.outcome, d.sources["outcome"]
    ('ClientID', 'Sitzung', 'TherapeutID', 'BDI', 'argument')
    """
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        near = close_matches(unknown[0], list(ROLES))
        tip = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}.{tip}")
    if isinstance(data, Study):
        book = codebook or data.codebook
        tables = [data.sessions, data.clients]
    else:
        book = codebook
        tables = [data]
    columns: list[str] = []
    for table in tables:
        columns += [str(c) for c in table.columns if str(c) not in columns]
    sessions = tables[0]
    window = early if isinstance(early, EarlyWindow) else EarlyWindow(early)

    chosen: dict[str, str | None] = dict.fromkeys(ROLES)
    sources: dict[str, str] = {}
    for role, column in roles.items():
        if column is None:
            sources[role] = "argument"
            continue
        if column not in columns:
            near = close_matches(str(column), columns)
            tip = f" Did you mean {near[0]!r}?" if near else ""
            raise KeyError(f"the {role} column {column!r} is not in the data.{tip}")
        chosen[role], sources[role] = column, "argument"
    for role, column in _codebook_roles(book).items():
        if role not in sources and column in columns:
            chosen[role], sources[role] = column, "codebook"
    taken = {c for c in chosen.values() if c}
    by_name = {normalize_name(c): c for c in reversed(columns)}
    for role, (_, _, names) in ROLES.items():
        if role in sources:
            continue
        for conventional in names:
            column = by_name.get(conventional)
            if column is not None and column not in taken:
                chosen[role], sources[role] = column, "name"
                taken.add(column)
                break
    items = _match_items([c for c in sessions.columns if c not in taken], sessions)
    score, score_ins, score_src = _score_columns(
        [c for c in sessions.columns if c not in taken], book, items
    )
    ins_of: dict[str, str | None] = dict.fromkeys(SCORE_ROLES)
    for role in SCORE_ROLES:
        if role in sources:  # explicit: find its instrument from the codebook or the name
            col = chosen[role]
            if col is not None:
                fld = book.field("sessions", col) if book is not None else None
                name = (fld or {}).get("instrument") or normalize_name(col)
                try:
                    ins_of[role] = instruments.get(name).name
                except KeyError:
                    ins_of[role] = None
            continue
        chosen[role], ins_of[role] = score[role], score_ins[role]
        if score[role] is not None:
            sources[role] = score_src[role]
    suggestions = {}
    free = [c for c in columns if c not in {x for x in chosen.values() if x}]
    for role, (_, _, names) in ROLES.items():
        if chosen[role] is None and names:
            near = []
            for conventional in names[:6]:
                near += [m for m in close_matches(conventional, free) if m not in near]
            if near:
                suggestions[role] = near[:3]
    techniques = [c for c in sessions.columns if normalize_name(c) in TECHNIQUES]
    return Design(
        columns=chosen,
        sources=sources,
        items=items,
        instruments={r: i for r, i in ins_of.items() if i is not None or r in SCORE_ROLES[:2]},
        techniques=techniques,
        early=window,
        suggestions=suggestions,
        labels=dict(labels or {}),
    )


def _client_level(frame: pd.DataFrame, client: str, exclude: set[str]) -> list[str]:
    """Columns that never change within a client (and are not session-level roles)."""
    if frame[client].duplicated().sum() == 0:
        return []
    out = []
    grouped = frame.groupby(client, sort=False, dropna=False)
    for col in frame.columns:
        if col in exclude or col == client:
            continue
        if (grouped[col].nunique(dropna=False) <= 1).all():
            out.append(col)
    return out


def as_boolean(values: pd.Series) -> pd.Series:
    """A yes/no column as nullable booleans when every value reads as one, else unchanged.

    ``true/false``, ``1/0``, ``yes/no``, ``ja/nein`` (any case; blanks are missing), as
    SPSS, Excel and German exports write them. A column with any other value comes back
    as it was, so validation can name the rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.design import as_boolean
    >>> as_boolean(pd.Series(["ja", "Nein", None])).tolist()
    [True, False, <NA>]
    >>> as_boolean(pd.Series(["ja", "vielleicht"])).tolist()
    ['ja', 'vielleicht']
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values
    text = values.astype("string").str.strip().str.lower()
    text = text.mask(text == "")
    known = text.isna() | text.isin(TRUE_WORDS | FALSE_WORDS)
    if not known.all():
        return values
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(TRUE_WORDS).fillna(False).astype(bool)] = True
    out[text.isin(FALSE_WORDS).fillna(False).astype(bool)] = False
    return out


def canonical_study(study: Study, design: Design, *, score=None) -> Study:
    """The study under canonical names, ready for every analysis of the package.

    Role columns are renamed to their role (``ClientID`` -> ``client``), recognised items
    to ``<instrument>_<n>``; scale scores are added where only items were given
    when a scorer is given; client-level columns of a
    single sessions table (those that never change within a client, e.g. condition or
    prior negative therapy) are copied into a clients table; value labels become the
    codebook's ``categories`` and, for condition and termination reason, the values
    shown. Item and score values are never changed. The codebook records each field's
    ``role``, ``instrument`` and ``rater``.

    Parameters
    ----------
    study : Study
        The study as read.
    design : Design
        Its roles (:func:`resolve_design`).
    score : callable, optional
        ``score(sessions, instrument) -> values``: adds the scale score of each
        recognised questionnaire that has items but no score column (``alliance init``
        passes :func:`alliance.score`'s scale score).

    Returns
    -------
    Study

    Raises
    ------
    ValueError
        When two columns would get the same name, or there is no client or session
        column (naming the close matches and the ``--column`` option).

    Examples
    --------
    >>> import alliance
    >>> import pandas as pd
    >>> from alliance.design import canonical_study, resolve_design
    >>> from alliance.study import Study
    >>> raw = pd.DataFrame({"ClientID": ["01", "01", "02", "02"], "Sitzung": [1, 2, 1, 2],
    ...                     "Gruppe": ["CBT", "CBT", "PDT", "PDT"],
    ...                     **{f"PHQ9_{i}": [1, 2, 0, 3] for i in range(1, 10)}})
    >>> study = Study(raw)
    >>> def total(frame, name):
    ...     return alliance.score(frame, name, subscales=False)[name].to_numpy()
    >>> out = canonical_study(study, resolve_design(study), score=total)
    >>> out.sessions[["client", "session", "phq9"]].to_dict("list")
    {'client': ['01', '01', '02', '02'], 'session': [1, 2, 1, 2], 'phq9': [9.0, 18.0, 0.0, 27.0]}
    >>> out.clients.to_dict("list")
    {'client': ['01', '02'], 'condition': ['CBT', 'PDT']}
    """
    for role in ("client", "session"):
        if not design.has(role):
            near = design.suggestions.get(role, [])
            tip = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise ValueError(
                f"no {role} column was found ({ROLES[role][1]}).{tip} Name it with "
                f"--column YOURNAME={role} (Python: {role}='YOURNAME'), or give the field "
                f'"role": "{role}" in the codebook'
            )
    renames = design.renames()
    sessions = study.sessions.rename(columns=renames)
    clients = study.clients.rename(columns=renames)
    for table, frame in (("sessions", sessions), ("clients", clients)):
        dupes = frame.columns[frame.columns.duplicated()].unique().tolist()
        if dupes:
            sources = {c: [o for o, n in renames.items() if n == c] for c in dupes}
            first = dupes[0]
            raise ValueError(
                f"two {table} columns would both be called {first!r} "
                f"({', '.join(map(repr, sources[first]))} and the existing column); rename "
                "one with --column OLD=NEW, or tell which one plays the role"
            )
    if "session" in sessions.columns and pd.api.types.is_float_dtype(sessions["session"]):
        whole = sessions["session"].dropna()
        if len(whole) and (whole == whole.round()).all() and sessions["session"].notna().all():
            sessions["session"] = sessions["session"].astype("int64")  # SPSS stores 1 as 1.0
    for frame in (sessions, clients):  # yes/no words (English or German) as true/false
        if "prior_negative_therapy" in frame.columns:
            frame["prior_negative_therapy"] = as_boolean(frame["prior_negative_therapy"])
    added = [i for i in design.items if i not in sessions.columns and score is not None]
    for ins_name in added:  # scale scores from recognised items, by the caller's scorer
        sessions[ins_name] = score(sessions, ins_name)
    for column, mapping in design.labels.items():
        target = renames.get(column, column)
        if target in ("condition", "termination") and target in sessions.columns:
            sessions[target] = sessions[target].map(lambda v, m=mapping: m.get(v, v))
    session_roles = {r for r, (lvl, _, _) in ROLES.items() if lvl == "session"}
    item_cols = {f"{i}_{k}" for i, its in design.items.items() for k in its}
    scores = {renames.get(c, c) for c in (design.alliance, design.outcome) if c}
    measured = {
        c
        for c in sessions.columns
        if (study.codebook.field("sessions", c) or {}).get("instrument")
        or normalize_name(c) in set(instruments.list_instruments()["name"])
    }
    keep_in_sessions = (
        session_roles | item_cols | set(design.techniques) | set(added) | scores | measured
    )
    derived = bool(study.clients.attrs.get("derived"))
    if derived or clients.empty or "client" not in clients.columns:
        moved = _client_level(sessions, "client", keep_in_sessions - {"therapist", "site"})
        moved = [c for c in moved if c not in ("session", "date")]
        clients = sessions[["client", *moved]].drop_duplicates("client").reset_index(drop=True)
        if moved:
            sessions = sessions.drop(columns=[c for c in moved if c not in ("therapist", "site")])
    book = _canonical_codebook(study.codebook, renames, design, sessions, clients)
    extra = {  # the optional tables keep their rows; role columns get canonical names
        t: getattr(study, t).rename(columns=renames)
        for t in ("events", "therapists", "segments", "coders")
        if getattr(study, t, None) is not None
    }
    return Study(
        sessions=sessions.reset_index(drop=True),
        clients=clients.reset_index(drop=True),
        codebook=book,
        name=study.name,
        files=dict(study.files),
        **extra,
    )


def _field_type(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    return "string"


def _canonical_codebook(
    old: Codebook, renames: dict[str, str], design: Design, sessions, clients
) -> Codebook:
    """A codebook for the canonical tables, keeping what the old one said."""
    item_of = {f"{i}_{k}": i for i, its in design.items.items() for k in its}
    resources = []
    for table, frame in (("sessions", sessions), ("clients", clients)):
        if frame.empty and table == "clients":
            continue
        fields = []
        back = {new: orig for orig, new in renames.items()}
        for col in frame.columns:
            before = old.field(table, back.get(col, col)) or old.field(table, col) or {}
            fld = {k: v for k, v in before.items() if k != "name"}
            fld["name"] = col
            fld.setdefault("type", _field_type(frame[col]))
            if pd.api.types.is_bool_dtype(frame[col]):
                fld["type"] = "boolean"  # a yes/no text column read as true/false
            if col in ROLES and col not in SCORE_ROLES:
                fld["role"] = col
                if col in ("client", "therapist", "site"):
                    fld["type"] = "string"
            ins_name = item_of.get(col) or (col if col in design.items else None)
            if ins_name is None and col in design.instruments.values():
                ins_name = col
            if ins_name is not None:
                ins = instruments.get(ins_name)
                fld["instrument"] = ins.name
                fld["rater"] = ins.rater
                if col in item_of:
                    fld.setdefault(
                        "constraints", {"minimum": ins.item_min, "maximum": ins.item_max}
                    )
            for role in SCORE_ROLES:
                column = design.columns.get(role)
                if column is not None and renames.get(column, column) == col:
                    fld["role"] = role
            orig = back.get(col, col)
            if orig in design.labels:
                fld["categories"] = [
                    {"value": _plain(k), "label": str(v)} for k, v in design.labels[orig].items()
                ]
            if orig != col:
                fld["source_name"] = orig
            fields.append(fld)
        resources.append({"name": table, "schema": {"fields": fields}})
    package = {k: v for k, v in old.package.items() if k != "resources"}
    package["resources"] = resources
    return Codebook(package)


def _plain(value):
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
