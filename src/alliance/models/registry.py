"""The model registry: every alliance analysis, what it estimates, and how power simulates it.

A model is one public function plus a decorator::

    @register_model(
        name="my_model",
        estimates="what the focal term means, in words",
        citation="Author (year)",
        roles=("alliance", "outcome", "client", "session", "therapist"),
        focal_term="{alliance}_slope",
        simulate=Simulation(effects=("within",), truth=per_alliance_point("within")),
    )
    def my_model(data, alliance="alliance", outcome="outcome", ...): ...

``roles`` are the column roles the function takes as keyword arguments (the argument has
the role's name unless ``arguments`` maps it to another); ``focal_term`` names the row of
``result.params`` that answers the model's question, with ``{role}`` replaced by the column
that plays the role. :func:`list_models` lists the registered models, :func:`get_model`
finds one by name, and :func:`alliance.power.simulate_power` runs any model whose entry
has a :class:`Simulation` hook, without code of its own for that model.

Roles are resolved from a study by :func:`study_roles`: the codebook first (a field's
``role`` property, or the construct of its ``instrument``), then conventional column names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alliance.design import ROLES as DESIGN_ROLES
from alliance.design import resolve_design
from alliance.simulate import Effects, simulate_study
from alliance.study import Study

__all__ = [
    "ModelSpec",
    "Simulation",
    "draw_study",
    "focal_row",
    "get_model",
    "list_models",
    "per_alliance_point",
    "register_model",
    "scale_points",
    "statsmodels_lagged_engine",
    "study_roles",
    "unregister_model",
]

#: Roles a model may need, in the order :func:`study_roles` reports them: the roles
#: :data:`alliance.design.ROLES` resolves, plus ``technique`` (the first of the design's
#: technique columns).
ROLES = (*DESIGN_ROLES, "technique")
_TOKEN = re.compile(r"\{(\w+)\}")


def draw_study(design: Mapping[str, Any], effects: Effects, seed: np.random.Generator) -> Study:
    """Draw one simulated study for a design row (the default of :class:`Simulation`).

    Parameters
    ----------
    design : mapping
        ``n_therapists``, ``clients_per_therapist``, ``n_sessions`` and optionally
        ``n_sites`` (a row of the power design grid).
    effects : alliance.simulate.Effects
        The generating values.
    seed : numpy.random.Generator
        The simulation's random numbers.

    Returns
    -------
    Study
        :func:`alliance.simulate.simulate_study` of that size.

    Examples
    --------
    >>> import numpy as np
    >>> from alliance.models import draw_study
    >>> from alliance.simulate import Effects
    >>> study = draw_study({"n_therapists": 2, "clients_per_therapist": 3, "n_sessions": 4},
    ...                    Effects(), np.random.default_rng(1))
    >>> study.n_clients
    6
    """
    sites = design.get("n_sites", 1)
    return simulate_study(
        int(design["n_therapists"]),
        int(design["clients_per_therapist"]),
        int(design["n_sessions"]),
        n_sites=1 if sites is None or pd.isna(sites) else int(sites),
        effects=effects,
        seed=seed,
    )


@dataclass(frozen=True)
class Simulation:
    """How :func:`alliance.power.simulate_power` simulates data for a model.

    Attributes
    ----------
    effects : tuple of str
        The :class:`alliance.simulate.Effects` fields the simulation plants for this model;
        the first is the effect the focal term estimates (its value is the ``planted``
        column of a power table).
    truth : callable or None
        ``truth(effects, study, roles) -> float``: the value of the focal term implied by
        the generating values, in the focal term's units on the drawn ``study`` (e.g. per
        point of the alliance column as the codebook scores it). None when the focal term
        has no closed-form truth: power is then reported without bias or coverage.
    options : mapping
        Keyword arguments passed to the model's function in every simulation (e.g. a faster
        method).
    draw : callable
        ``draw(design, effects, rng) -> Study`` for one row of the design grid; default
        :func:`draw_study`. Designs fitted on subsets of one draw (``nested=True``) need a
        study in the :func:`alliance.simulate.simulate_study` layout.
    null : mapping
        More generating values that make the truth exactly zero when the planted effect is
        zero (e.g. a second path through which the focal term picks up a difference).
    engines : mapping
        Other fitting engines for comparison, name -> ``fit(study, roles) -> dict`` with
        estimate, se, ci_low, ci_high and p.
    """

    effects: tuple[str, ...]
    truth: Callable[[Effects, Study, dict], float] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    draw: Callable[[Mapping[str, Any], Effects, np.random.Generator], Study] = draw_study
    null: Mapping[str, float] = field(default_factory=dict)
    engines: Mapping[str, Callable[[Study, dict], dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        effects = (self.effects,) if isinstance(self.effects, str) else tuple(self.effects)
        if not effects:
            raise ValueError("a Simulation plants at least one Effects field")
        known = set(Effects.__dataclass_fields__)
        unknown = [e for e in [*effects, *self.null] if e not in known]
        if unknown:
            raise ValueError(
                f"Simulation names unknown Effects field(s) {unknown}; see alliance.simulate.Effects"
            )
        object.__setattr__(self, "effects", effects)

    @property
    def effect(self) -> str:
        """The Effects field whose value the focal term estimates."""
        return self.effects[0]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its function, what it estimates and how power simulates it.

    Attributes
    ----------
    name : str
        Registry key.
    function : callable
        The public function, called as ``function(data, **roles, **options)``.
    estimates : str
        What the focal term estimates, in words.
    citation : str
        The paper(s) the model follows.
    roles : tuple of str
        The column roles the function takes (see :data:`ROLES`).
    focal_term : str
        Template of the focal row of ``result.params``, ``{role}`` replaced by its column.
    simulation : Simulation or None
        How power simulates data for the model; None when it cannot.
    arguments : mapping
        Role -> argument name, where the function's argument is not named after the role.
    options : mapping
        Keyword arguments always passed (e.g. ``effect="outcome->alliance"`` for the reverse direction).
    aliases : tuple of str
        Other names :func:`get_model` accepts.
    """

    name: str
    function: Callable[..., Any]
    estimates: str
    citation: str
    roles: tuple[str, ...]
    focal_term: str
    simulation: Simulation | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def qualname(self) -> str:
        """``module.function`` of the public function."""
        module = self.function.__module__
        public = "alliance.models" if module.startswith("alliance.models.") else module
        return f"{public}.{self.function.__name__}"

    def focal(self, roles: Mapping[str, str]) -> str:
        """The focal term's name for the columns in ``roles``.

        Examples
        --------
        >>> from alliance.models import get_model
        >>> get_model("within_between").focal({"alliance": "wai_sr", "outcome": "phq9"})
        'wai_sr_within'
        """

        def sub(match: re.Match) -> str:
            role = match.group(1)
            if role not in roles:
                raise KeyError(
                    f"model {self.name!r}: the focal term {self.focal_term!r} needs the "
                    f"{role!r} column; pass it (e.g. {role}='column name') or declare it in "
                    "the codebook"
                )
            return str(roles[role])

        return _TOKEN.sub(sub, self.focal_term)

    def fit(self, data, roles: Mapping[str, str] | None = None, **options):
        """Call the model's function with the columns of ``roles`` (default: from ``data``).

        Examples
        --------
        >>> import alliance
        >>> from alliance.models import get_model
        >>> study = alliance.datasets.load_dataset("demo")
        >>> spec = get_model("early_alliance")
        >>> fit = spec.fit(study)
        >>> fit.params.set_index("term").loc[spec.focal(alliance.models.study_roles(study)),
        ...                                  "estimate"] < 0
        np.True_
        """
        roles = dict(study_roles(data) if roles is None else roles)
        kwargs = {self.arguments.get(r, r): roles[r] for r in self.roles if r in roles}
        return self.function(data, **kwargs, **{**self.options, **options})

    def estimate(self, data, roles: Mapping[str, str] | None = None, **options) -> dict:
        """The focal row of the fitted model: estimate, se, ci_low, ci_high, p."""
        roles = dict(study_roles(data) if roles is None else roles)
        result = self.fit(data, roles, **options)
        return focal_row(result.params, self.focal(roles), self.name)


def focal_row(params: pd.DataFrame, term: str, model: str = "model") -> dict:
    """estimate, se, ci_low, ci_high and p of ``term`` in a parameter table.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.models import focal_row
    >>> params = pd.DataFrame({"term": ["x"], "estimate": [1.0], "se": [0.5],
    ...                        "ci_low": [0.0], "ci_high": [2.0], "p": [0.04]})
    >>> focal_row(params, "x")["se"]
    0.5
    """
    table = params.set_index("term")
    if term not in table.index:
        raise KeyError(
            f"{model}: no term {term!r} in the fitted parameters ({list(table.index)}); the "
            "registry entry's focal_term does not match the function's output"
        )
    row = table.loc[term]
    return {k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high", "p")}


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    *,
    name: str,
    estimates: str,
    citation: str,
    roles: tuple[str, ...],
    focal_term: str,
    simulate: Simulation | None = None,
    arguments: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    aliases: tuple[str, ...] = (),
    replace: bool = False,
) -> Callable:
    """Decorator that registers a public model function (returns it unchanged).

    Parameters
    ----------
    name : str
        Registry key (lower case, digits and underscores).
    estimates : str
        What the focal term estimates, in words.
    citation : str
        The paper(s) the model follows.
    roles : tuple of str
        Column roles the function takes as arguments (see :data:`ROLES`).
    focal_term : str
        The focal row of ``result.params``; ``{role}`` is replaced by the role's column,
        e.g. ``"{alliance}_within"``.
    simulate : Simulation, optional
        How power simulates data for it; without it power refuses the model.
    arguments : mapping, optional
        Role -> argument name where they differ (e.g. ``{"prior_negative_therapy":
        "moderator"}``).
    options : mapping, optional
        Keyword arguments always passed to the function for this entry (one function may
        be registered twice, e.g. with ``effect="outcome->alliance"``).
    aliases : tuple of str
        Other names for :func:`get_model`.
    replace : bool, default False
        Replace an entry of the same name instead of refusing it.

    Examples
    --------
    >>> from alliance.models import (
    ...     get_model, list_models, register_model, unregister_model)
    >>> @register_model(name="toy_early", estimates="nothing", citation="none",
    ...                 roles=("alliance",), focal_term="{alliance}")
    ... def toy_early(data, alliance="alliance"):
    ...     raise NotImplementedError
    >>> "toy_early" in set(list_models()["name"])
    True
    >>> unregister_model("toy_early")
    >>> "toy_early" in set(list_models()["name"])
    False
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"model name must be lower case letters, digits and _, got {name!r}")
    roles = (roles,) if isinstance(roles, str) else tuple(roles)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    missing = [r for r in _TOKEN.findall(focal_term) if r not in roles]
    if missing:
        raise ValueError(f"focal_term {focal_term!r} uses role(s) {missing} not in roles")
    if simulate is not None and not isinstance(simulate, Simulation):
        raise TypeError("simulate must be an alliance.models.Simulation or None")

    def decorate(function: Callable) -> Callable:
        taken = [n for n in (name, *aliases) if (n in _REGISTRY or n in _ALIASES)]
        if taken and not replace:
            raise ValueError(
                f"a model named {taken[0]!r} is already registered; pass replace=True or "
                "choose another name"
            )
        if replace:
            unregister_model(name, missing_ok=True)
        _REGISTRY[name] = ModelSpec(
            name=name,
            function=function,
            estimates=estimates,
            citation=citation,
            roles=roles,
            focal_term=focal_term,
            simulation=simulate,
            arguments=dict(arguments or {}),
            options=dict(options or {}),
            aliases=tuple(aliases),
        )
        for alias in aliases:
            _ALIASES[alias] = name
        return function

    return decorate


def unregister_model(name: str, *, missing_ok: bool = False) -> None:
    """Remove a registered model (and its aliases), e.g. one registered in a test."""
    spec = _REGISTRY.pop(_ALIASES.get(name, name), None)
    if spec is None:
        if missing_ok:
            return
        raise KeyError(f"no model named {name!r} is registered")
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def _load_builtins() -> None:
    """Import the model modules so their decorators have run.

    Discovery, not a dependency: the registry never uses a model module's names, so the
    package is imported by name (a model module importing the registry is no cycle).
    """
    import importlib

    importlib.import_module("alliance.models")


def get_model(name: str | ModelSpec) -> ModelSpec:
    """The registered model of that name (or alias), with close matches when there is none.

    Examples
    --------
    >>> from alliance.models import get_model
    >>> get_model("within").name
    'within_between'
    >>> get_model("early_aliance")
    Traceback (most recent call last):
    ...
    KeyError: "no model named 'early_aliance'. Did you mean 'early_alliance'..."
    """
    if isinstance(name, ModelSpec):
        return name
    _load_builtins()
    if not isinstance(name, str):
        raise TypeError(f"model must be a registered name or a ModelSpec, not {name!r}")
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        names = [*_REGISTRY, *_ALIASES]
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        tip = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise KeyError(
            f"no model named {name!r}.{tip} alliance.models.list_models() lists them; "
            "alliance.models.register_model adds your own"
        )
    return _REGISTRY[key]


def list_models(simulate: bool | None = None) -> pd.DataFrame:
    """The registered models, one row each.

    Parameters
    ----------
    simulate : bool, optional
        True: only the models power can simulate; False: only those it cannot.

    Returns
    -------
    pandas.DataFrame
        name, function, estimates, citation, roles (comma-separated), focal_term,
        simulate (whether :func:`alliance.power.simulate_power` can run it), effects (the
        :class:`alliance.simulate.Effects` fields it plants), aliases.

    Examples
    --------
    >>> from alliance.models import list_models
    >>> table = list_models()
    >>> row = table.set_index("name").loc["within_between"]
    >>> row["focal_term"], bool(row["simulate"])
    ('{alliance}_within', True)
    >>> "prior_negative_therapy" in list_models(simulate=True)["aliases"].str.cat(sep=",")
    True
    """
    _load_builtins()
    rows = [
        {
            "name": s.name,
            "function": s.qualname,
            "estimates": s.estimates,
            "citation": s.citation,
            "roles": ", ".join(s.roles),
            "focal_term": s.focal_term,
            "simulate": s.simulation is not None,
            "effects": ", ".join(s.simulation.effects) if s.simulation else "",
            "aliases": ", ".join(s.aliases),
        }
        for s in sorted(_REGISTRY.values(), key=lambda s: s.name)
    ]
    columns = [
        "name",
        "function",
        "estimates",
        "citation",
        "roles",
        "focal_term",
        "simulate",
        "effects",
        "aliases",
    ]
    table = pd.DataFrame(rows, columns=columns)
    if simulate is not None:
        table = table[table["simulate"] == bool(simulate)]
    return table.reset_index(drop=True)


# --- roles -----------------------------------------------------------------------------


def _fields(study) -> list[tuple[str, dict]]:
    codebook = getattr(study, "codebook", None)
    package = getattr(codebook, "package", None) or {}
    out = []
    for res in package.get("resources", []):
        for fld in res.get("schema", {}).get("fields", []):
            out.append((res.get("name"), fld))
    return out


def _instrument(name):
    from alliance import instruments

    try:
        return instruments.get(name) if name else None
    except KeyError:
        return None


def study_roles(data) -> dict[str, str]:
    """Which column plays which role: :func:`alliance.resolve_design` as a dict.

    The codebook comes first (a field's ``role`` property; for the alliance and the
    outcome, the scored total of an instrument of that construct), then conventional
    names in any case. Roles not found are left out; ``technique`` is the first
    technique column.

    Parameters
    ----------
    data : Study or pandas.DataFrame

    Returns
    -------
    dict
        role -> column name.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models import study_roles
    >>> roles = study_roles(alliance.datasets.load_dataset("demo"))
    >>> roles["alliance"], roles["outcome"], roles["therapist"]
    ('wai_sr', 'phq9', 'therapist')
    """
    design = resolve_design(data)
    roles = {r: c for r, c in design.columns.items() if c is not None}
    if design.techniques:
        roles["technique"] = design.techniques[0]
    return {r: roles[r] for r in ROLES if r in roles}


def scale_points(study, column: str) -> float:
    """Points of ``column`` per item-mean point of its instrument, from the codebook.

    A sum-scored instrument's total moves ``n_items`` (times its multiplier) points per
    item-mean point; a mean-scored one its multiplier. A column without a declared
    instrument is taken to be on the item-mean scale (1).

    Examples
    --------
    >>> import alliance
    >>> from alliance.models import scale_points
    >>> scale_points(alliance.datasets.load_dataset("demo"), "wai_sr")
    12.0
    """
    for _, fld in _fields(study):
        if fld.get("name") == column:
            ins = _instrument(fld.get("instrument"))
            if ins is not None:
                k = ins.n_items if ins.scoring == "sum" else 1
                return float(k * ins.multiplier)
    return 1.0


def per_alliance_point(effect: str, *, alliance_is_response: bool = False) -> Callable:
    """A ``truth`` hook for an effect stated per alliance item-mean point.

    The :class:`alliance.simulate.Effects` give alliance effects on the WAI-SR item-mean
    scale; a model fitted on the alliance column as the codebook scores it (the WAI-SR
    total) estimates the effect per point of that column: the value divided by
    :func:`scale_points` when the alliance is the predictor, multiplied when it is the
    response (``alliance_is_response=True``). Symptom effects are on the PHQ-9 total
    scale, the simulated outcome column.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models import per_alliance_point
    >>> from alliance.simulate import Effects
    >>> study = alliance.datasets.load_dataset("demo")
    >>> per_alliance_point("within")(Effects(within=-1.2), study, {"alliance": "wai_sr"})
    -0.1
    """

    def truth(effects: Effects, study, roles: Mapping[str, str]) -> float:
        points = scale_points(study, roles["alliance"]) if "alliance" in roles else 1.0
        value = float(getattr(effects, effect))
        return value * points if alliance_is_response else value / points

    truth.__name__ = f"truth_{effect}"
    truth.__qualname__ = truth.__name__
    return truth


def statsmodels_lagged_engine(*, reverse: bool = False) -> Callable[[Study, dict], dict]:
    """A comparison engine for the lagged within-client model, fitted with statsmodels.

    ``y[t+1] ~ x_within + x_between + session`` with a random client intercept
    (``statsmodels.formula.api.mixedlm``, REML), ``x`` the alliance (or the outcome when
    ``reverse=True``) detrended and person-mean centred as in
    :func:`alliance.models.within_between`; the columns come from ``roles``. Used by
    ``simulate_power(..., engine="statsmodels")`` to compare the package's engine with an
    independent one.
    """
    from alliance.models._prep import decompose, lead

    def fit(study, roles: Mapping[str, str]) -> dict:
        import statsmodels.formula.api as smf

        s = study.sessions
        client, session = roles["client"], roles["session"]
        x, y = (
            (roles["outcome"], roles["alliance"])
            if reverse
            else (roles["alliance"], roles["outcome"])
        )
        parts = decompose(s, x, client, session, detrend=True)
        frame = pd.DataFrame(
            {
                "g": s[client].to_numpy(),
                "session": s[session].to_numpy(),
                "x_within": parts["within"].to_numpy(),
                "x_between": parts["between"].to_numpy(),
                "y": lead(s, y, client, session).to_numpy(),
            }
        ).dropna()
        res = smf.mixedlm("y ~ x_within + x_between + session", frame, groups="g").fit(reml=True)
        lo, hi = res.conf_int().loc["x_within"]
        return {
            "estimate": float(res.params["x_within"]),
            "se": float(res.bse["x_within"]),
            "ci_low": float(lo),
            "ci_high": float(hi),
            "p": float(res.pvalues["x_within"]),
        }

    fit.__name__ = "statsmodels_lagged_reverse" if reverse else "statsmodels_lagged"
    return fit
