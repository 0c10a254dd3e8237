"""Registry of questionnaires: items, ranges, keys, subscales, norms, cut-offs, citations.

Only facts are stored (item counts, ranges, keys, subscale membership, norms and
citations), never item wording. Where a published value is not certain it is left
out (``None``) rather than guessed; pass your own value to the function that needs it.
``docs/measurement.md`` lists every stored value with its source and every value that
was deliberately left out.

Conventions
-----------
* Items are numbered from 1, as on the printed form; the default item columns of an
  instrument named ``phq9`` are ``phq9_1 .. phq9_9``.
* ``cutoff`` is the boundary of the clinical (or "concern") range on the scored scale.
  For scales where higher is worse a score ``>= cutoff`` is in the clinical range; for
  scales where higher is better (alliance scales, the ORS) a score ``< cutoff`` is.
* ``reverse_items=None`` means the registry does not know the reverse keys (published
  versions differ); :func:`alliance.score` then asks for them instead of guessing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from alliance._checks import close_matches

__all__ = [
    "REGISTRY",
    "Instrument",
    "get",
    "higher_is_better",
    "list_instruments",
    "load",
    "register",
]

CONSTRUCTS = ("alliance", "outcome", "rupture")
RATERS = ("client", "therapist", "observer")
SCORINGS = ("sum", "mean")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Instrument:
    """A questionnaire's scoring facts.

    Every instrument is checked when it is made (also when loaded from a file), and a
    ``ValueError`` lists every problem found.

    Attributes
    ----------
    name : str
        Registry key and item-column prefix, e.g. ``"phq9"`` for ``phq9_1 .. phq9_9``.
        Lower-case letters, digits and underscores, starting with a letter.
    title : str
        Full name.
    construct : str
        ``"alliance"``, ``"outcome"`` or ``"rupture"``.
    rater : str
        ``"client"``, ``"therapist"`` or ``"observer"``.
    n_items : int
        Number of items.
    item_min, item_max : float
        Allowed item values (inclusive).
    reverse_items : tuple of int or None
        1-based numbers of reverse-keyed items; ``()`` when there are none and ``None``
        when the registry does not know them (scoring then asks for them).
    subscales : dict
        Subscale name -> tuple of 1-based item numbers.
    scoring : str
        ``"sum"`` or ``"mean"`` of the (keyed) items.
    multiplier : float
        Factor applied after scoring (CORE-OM clinical score: mean x 10).
    higher_is_better : bool
        True for alliance scales and the ORS; False for symptom scales.
    max_missing : int
        Items that may be missing and still be prorated (the published rule; 0 where
        no rule is published, so any missing item gives a missing score).
    cutoff : float or None
        Clinical cut-off on the scored scale (see the module notes for its direction).
    bands : dict
        Severity band label -> lower bound of the band, on the scored scale.
    reliable_change : float or None
        Published reliable-change threshold in points of the scored scale.
    reliability : float or None
        The reliability the reliable-change threshold rests on, where published.
    clinical_mean, clinical_sd, functional_mean, functional_sd : float or None
        Published norms on the scored scale (Jacobson & Truax cut-offs).
    citation : str
        The source of these facts.
    notes : str
        What was left out and why, and other caveats.

    Examples
    --------
    >>> from alliance.instruments import Instrument
    >>> Instrument("mood4", "Four-item mood check", "outcome", "client", 4, 0, 3).score_range
    (0.0, 12.0)
    >>> Instrument("mood4", "Four-item mood check", "outcome", "client", 4, 0, 3,
    ...            reverse_items=(5,))
    Traceback (most recent call last):
    ...
    ValueError: instrument 'mood4' is not valid: reverse_items must be item numbers 1..4, got 5
    """

    name: str
    title: str
    construct: str
    rater: str
    n_items: int
    item_min: float
    item_max: float
    reverse_items: tuple[int, ...] | None = ()
    subscales: dict[str, tuple[int, ...]] = field(default_factory=dict)
    scoring: str = "sum"
    multiplier: float = 1.0
    higher_is_better: bool = False
    max_missing: int = 0
    cutoff: float | None = None
    bands: dict[str, float] = field(default_factory=dict)
    reliable_change: float | None = None
    reliability: float | None = None
    clinical_mean: float | None = None
    clinical_sd: float | None = None
    functional_mean: float | None = None
    functional_sd: float | None = None
    citation: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError(f"instrument {self.name!r} is not valid: " + "; ".join(problems))
        # normalise containers so that lists from JSON/YAML behave like the built-ins
        if self.reverse_items is not None:
            object.__setattr__(self, "reverse_items", tuple(int(i) for i in self.reverse_items))
        object.__setattr__(
            self,
            "subscales",
            {str(k): tuple(int(i) for i in v) for k, v in dict(self.subscales).items()},
        )
        object.__setattr__(self, "bands", {str(k): float(v) for k, v in dict(self.bands).items()})

    __hash__ = None  # type: ignore[assignment]  # holds dicts; compare with ==

    @property
    def items(self) -> list[str]:
        """Default item column names: ``<name>_1 .. <name>_<n_items>``."""
        return [f"{self.name}_{i}" for i in range(1, self.n_items + 1)]

    @property
    def score_range(self) -> tuple[float, float]:
        """Lowest and highest possible scale score."""
        k = self.n_items if self.scoring == "sum" else 1
        return (self.item_min * k * self.multiplier, self.item_max * k * self.multiplier)

    def to_dict(self) -> dict[str, Any]:
        """The instrument as a plain dict (the format :func:`load` reads).

        Examples
        --------
        >>> from alliance import instruments
        >>> d = instruments.get("core10").to_dict()
        >>> d["reverse_items"], d["max_missing"]
        ([2, 3], 1)
        """
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["reverse_items"] is not None:
            out["reverse_items"] = list(out["reverse_items"])
        out["subscales"] = {k: list(v) for k, v in out["subscales"].items()}
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _problems(ins: Instrument) -> list[str]:
    """Every problem with an instrument's facts, as fix-it messages."""
    p: list[str] = []
    if not isinstance(ins.name, str) or not _NAME.match(ins.name):
        p.append(
            "name must be lower-case letters, digits and underscores starting with a letter "
            f"(it is the item-column prefix), got {ins.name!r}"
        )
    if ins.construct not in CONSTRUCTS:
        p.append(f"construct must be one of {', '.join(CONSTRUCTS)}, got {ins.construct!r}")
    if ins.rater not in RATERS:
        p.append(f"rater must be one of {', '.join(RATERS)}, got {ins.rater!r}")
    n = ins.n_items
    n_ok = isinstance(n, int) and not isinstance(n, bool) and n >= 1
    if not n_ok:
        p.append(f"n_items must be a whole number >= 1, got {n!r}")
    if not (_is_number(ins.item_min) and _is_number(ins.item_max)):
        p.append(f"item_min and item_max must be numbers, got {ins.item_min!r}, {ins.item_max!r}")
    elif ins.item_min >= ins.item_max:
        p.append(f"item_min ({ins.item_min}) must be below item_max ({ins.item_max})")

    def check_numbers(label: str, values: object) -> None:
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            p.append(f"{label} must be a list of item numbers, got {values!r}")
            return
        values = list(values)  # type: ignore[call-overload]
        bad = [v for v in values if not (isinstance(v, int) and not isinstance(v, bool))]
        if bad:
            p.append(f"{label} must be whole item numbers, got {bad[0]!r}")
        elif n_ok:
            out = [v for v in values if not 1 <= v <= n]
            if out:
                p.append(f"{label} must be item numbers 1..{n}, got {', '.join(map(str, out))}")
        if len(set(map(repr, values))) != len(values):
            p.append(f"{label} lists an item twice")

    if ins.reverse_items is not None:
        check_numbers("reverse_items", ins.reverse_items)
    if not isinstance(ins.subscales, Mapping):
        p.append("subscales must map a subscale name to its item numbers")
    else:
        for sub, members in ins.subscales.items():
            if not isinstance(sub, str) or not _NAME.match(sub):
                p.append(f"subscale name {sub!r} must be lower-case letters, digits, underscores")
            check_numbers(f"subscale {sub!r}", members)
    if ins.scoring not in SCORINGS:
        p.append(f"scoring must be 'sum' or 'mean', got {ins.scoring!r}")
    if not _is_number(ins.multiplier) or ins.multiplier <= 0:
        p.append(f"multiplier must be a positive number, got {ins.multiplier!r}")
    if not isinstance(ins.higher_is_better, bool):
        p.append(f"higher_is_better must be true or false, got {ins.higher_is_better!r}")
    mm = ins.max_missing
    if not (isinstance(mm, int) and not isinstance(mm, bool)) or mm < 0 or (n_ok and mm >= n):
        p.append(f"max_missing must be a whole number from 0 to n_items - 1, got {mm!r}")
    for label in ("cutoff", "reliable_change", "clinical_mean", "functional_mean"):
        value = getattr(ins, label)
        if value is not None and not _is_number(value):
            p.append(f"{label} must be a number or None, got {value!r}")
    for label in ("reliable_change", "clinical_sd", "functional_sd"):
        value = getattr(ins, label)
        if value is not None and (not _is_number(value) or value <= 0):
            p.append(f"{label} must be a positive number or None, got {value!r}")
    if ins.reliability is not None and (
        not _is_number(ins.reliability) or not 0 < ins.reliability <= 1
    ):
        p.append(f"reliability must be a number in (0, 1] or None, got {ins.reliability!r}")
    if not isinstance(ins.bands, Mapping) or not all(_is_number(v) for v in ins.bands.values()):
        p.append("bands must map a band label to the band's lower bound (a number)")
    return p


REGISTRY: dict[str, Instrument] = {}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name).lower())


def register(instrument: Instrument, *, replace: bool = False) -> Instrument:
    """Add an instrument to the registry.

    Parameters
    ----------
    instrument : Instrument
        The instrument; make one from a dict or file with :func:`load`.
    replace : bool
        Overwrite an instrument of the same name.

    Returns
    -------
    Instrument
        The registered instrument.

    Examples
    --------
    >>> from alliance.instruments import Instrument, register, get
    >>> _ = register(Instrument("mood4", "Four-item mood check", "outcome", "client", 4, 0, 3),
    ...              replace=True)
    >>> get("mood4").score_range
    (0.0, 12.0)
    """
    if not isinstance(instrument, Instrument):
        raise TypeError(
            f"register() takes an Instrument, not {type(instrument).__name__}; "
            "use alliance.instruments.load() for a dict or a YAML/JSON file"
        )
    clash = [n for n in REGISTRY if _key(n) == _key(instrument.name) and n != instrument.name]
    if clash or (instrument.name in REGISTRY and not replace):
        taken = clash[0] if clash else instrument.name
        raise ValueError(
            f"an instrument named {taken!r} is already registered; "
            "pass replace=True to overwrite it or choose another name"
        )
    REGISTRY[instrument.name] = instrument
    return instrument


def get(name: str | Instrument) -> Instrument:
    """Look up an instrument by name (case-insensitive; ``-``, ``_`` and spaces ignored).

    Parameters
    ----------
    name : str or Instrument
        A registry name such as ``"phq9"``, ``"PHQ-9"`` or ``"WAI-SR"``; an
        ``Instrument`` is returned as it is.

    Returns
    -------
    Instrument

    Raises
    ------
    KeyError
        When no instrument has that name, with close matches.

    Examples
    --------
    >>> from alliance import instruments
    >>> instruments.get("PHQ-9").cutoff
    10.0
    >>> instruments.get("WAI-SR").subscales["goal"]
    (4, 6, 8, 11)
    """
    if isinstance(name, Instrument):
        return name
    if not isinstance(name, str):
        raise TypeError(f"instrument must be a registry name or an Instrument, not {name!r}")
    keys = {_key(n): n for n in REGISTRY}
    if _key(name) not in keys:
        near = close_matches(name, REGISTRY) or close_matches(_key(name), keys)
        near = [keys.get(n, n) for n in near]
        tip = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise KeyError(
            f"no instrument named {name!r}.{tip} alliance.instruments.list_instruments() "
            "lists them; alliance.instruments.load() adds your own"
        )
    return REGISTRY[keys[_key(name)]]


def list_instruments() -> pd.DataFrame:
    """All registered instruments, one row each.

    Returns
    -------
    pandas.DataFrame
        name, title, construct, rater, n_items, item_min, item_max, reverse_items,
        subscales, scoring, multiplier, score_min, score_max, higher_is_better,
        max_missing, cutoff, reliable_change, reliability, clinical_mean, clinical_sd,
        functional_mean, functional_sd, citation. Unknown values are missing.

    Examples
    --------
    >>> from alliance import instruments
    >>> table = instruments.list_instruments()
    >>> {"wai_sr", "phq9", "core_om"} <= set(table["name"])
    True
    >>> table.set_index("name").loc["core10", "cutoff"]
    np.float64(11.0)
    """
    rows = []
    for ins in REGISTRY.values():
        low, high = ins.score_range
        rows.append(
            {
                "name": ins.name,
                "title": ins.title,
                "construct": ins.construct,
                "rater": ins.rater,
                "n_items": ins.n_items,
                "item_min": ins.item_min,
                "item_max": ins.item_max,
                "reverse_items": (
                    None
                    if ins.reverse_items is None
                    else ", ".join(map(str, ins.reverse_items)) or "none"
                ),
                "subscales": "; ".join(
                    f"{k}: {', '.join(map(str, v))}" for k, v in ins.subscales.items()
                ),
                "scoring": ins.scoring,
                "multiplier": ins.multiplier,
                "score_min": low,
                "score_max": high,
                "higher_is_better": ins.higher_is_better,
                "max_missing": ins.max_missing,
                "cutoff": ins.cutoff,
                "reliable_change": ins.reliable_change,
                "reliability": ins.reliability,
                "clinical_mean": ins.clinical_mean,
                "clinical_sd": ins.clinical_sd,
                "functional_mean": ins.functional_mean,
                "functional_sd": ins.functional_sd,
                "citation": ins.citation,
            }
        )
    table = pd.DataFrame(rows)
    for col in (
        "cutoff",
        "reliable_change",
        "reliability",
        "clinical_mean",
        "clinical_sd",
        "functional_mean",
        "functional_sd",
    ):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table


def load(
    source: Mapping[str, Any] | str | Path, *, register: bool = True, replace: bool = False
) -> Instrument:
    """Make an instrument from a dict or a YAML/JSON file, check it, and register it.

    Parameters
    ----------
    source : dict, str or pathlib.Path
        A mapping with the :class:`Instrument` fields, or the path of a ``.yaml``,
        ``.yml`` or ``.json`` file holding one. Required: name, title, construct, rater,
        n_items, item_min, item_max.
    register : bool
        Add it to the registry, so that ``alliance.score(data, "<name>")`` finds it.
    replace : bool
        Overwrite a registered instrument of the same name.

    Returns
    -------
    Instrument

    Raises
    ------
    ValueError
        Listing unknown or missing fields (with close matches) and every bad value.

    Examples
    --------
    >>> from alliance import instruments
    >>> spec = {"name": "my_alliance", "title": "Clinic alliance check",
    ...         "construct": "alliance", "rater": "client", "n_items": 3,
    ...         "item_min": 1, "item_max": 7, "reverse_items": [2],
    ...         "higher_is_better": True, "max_missing": 1}
    >>> ins = instruments.load(spec, replace=True)
    >>> ins.items, ins.score_range
    (['my_alliance_1', 'my_alliance_2', 'my_alliance_3'], (3.0, 21.0))
    >>> instruments.load({**spec, "n_item": 3}, register=False)
    Traceback (most recent call last):
    ...
    ValueError: instrument file/dict has unknown field 'n_item' (did you mean 'n_items'?)
    """
    origin = "instrument file/dict"
    if isinstance(source, str | Path):
        path = Path(source)
        origin = f"instrument file {path.name!r}"
        if not path.is_file():
            raise FileNotFoundError(f"no instrument file at {str(path)!r}; check the path")
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix.lower()
        if suffix == ".json":
            spec = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            raise ValueError(
                f"{origin} must end in .json, .yaml or .yml (got {suffix or 'no suffix'!r})"
            )
    elif isinstance(source, Mapping):
        spec = source
    else:
        raise TypeError(f"load() takes a dict or a file path, not {type(source).__name__}")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{origin} must hold one mapping of field: value")
    known = [f.name for f in fields(Instrument)]
    problems = []
    for key in spec:
        if key not in known:
            near = close_matches(str(key), known)
            tip = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
            problems.append(f"unknown field {key!r}{tip}")
    required = ["name", "title", "construct", "rater", "n_items", "item_min", "item_max"]
    missing = [k for k in required if k not in spec]
    if missing:
        problems.append(f"missing required field(s) {', '.join(missing)}")
    if problems:
        raise ValueError(f"{origin} has " + "; ".join(problems))
    values = dict(spec)
    if values.get("subscales") is None:
        values["subscales"] = {}
    if values.get("bands") is None:
        values["bands"] = {}
    for key in (
        "cutoff",
        "reliable_change",
        "reliability",
        "clinical_mean",
        "clinical_sd",
        "functional_mean",
        "functional_sd",
        "multiplier",
        "item_min",
        "item_max",
    ):
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = values[key] if key in ("item_min", "item_max") else float(values[key])
    instrument = Instrument(**values)
    if register:
        globals()["register"](instrument, replace=replace)
    return instrument


_BUILT_IN = (
    Instrument(
        "wai_sr",
        "Working Alliance Inventory - Short Revised",
        "alliance",
        "client",
        12,
        1,
        5,
        reverse_items=(),
        subscales={"goal": (4, 6, 8, 11), "task": (1, 2, 10, 12), "bond": (3, 5, 7, 9)},
        higher_is_better=True,
        citation="Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a "
        "revised short version of the Working Alliance Inventory. Psychotherapy Research, "
        "16(1), 12-25.",
        notes="No reverse-keyed items. No published prorating rule, cut-off, norms or "
        "reliable-change value is stored. Some studies report the item mean instead of "
        "the sum; make an Instrument with scoring='mean' for that.",
    ),
    Instrument(
        "wai_s",
        "Working Alliance Inventory - Short Form",
        "alliance",
        "client",
        12,
        1,
        7,
        reverse_items=None,
        higher_is_better=True,
        citation="Tracey, T. J., & Kokotovic, A. M. (1989). Factor structure of the Working "
        "Alliance Inventory. Psychological Assessment, 1(3), 207-210.",
        notes="Goal, Task and Bond subscales of 4 items each, but item order and the "
        "negatively worded items differ between the published client and therapist "
        "forms, so neither subscale membership nor reverse keys are stored: pass "
        "reverse= (and subscales=) to alliance.score for the form you used.",
    ),
    Instrument(
        "wai_sr_t",
        "Working Alliance Inventory - Short Revised, therapist form (WAI-SR-T)",
        "alliance",
        "therapist",
        12,
        1,
        5,
        reverse_items=None,
        higher_is_better=True,
        citation="Hatcher, R. L., Lindqvist, K., & Falkenström, F. (2020). Psychometric "
        "evaluation of the Working Alliance Inventory-Therapist version: Current and new "
        "short forms. Psychotherapy Research, 30(6), 706-717. "
        "https://doi.org/10.1080/10503307.2019.1677964",
        notes="The therapist's counterpart of the WAI-SR: 12 items rated 1-5, as the client "
        "form. Item order, reverse keys and subscale membership of the therapist form were "
        "not verified against the primary source, so reverse_items is None and no "
        "subscales are stored: pass reverse= (and subscales=) to alliance.score for the "
        "form you used. Hatcher et al. (2020) also propose a new therapist short form; "
        "register it with alliance.instruments.load. No prorating rule, cut-off, norms or "
        "reliable-change value is stored.",
    ),
    Instrument(
        "wai_o_s",
        "Working Alliance Inventory - Observer form, short (WAI-O-S)",
        "alliance",
        "observer",
        12,
        1,
        7,
        reverse_items=None,
        higher_is_better=True,
        citation="Tichenor, V., & Hill, C. E. (1989). A comparison of six measures of working "
        "alliance. Psychotherapy: Theory, Research, Practice, Training, 26(2), 195-199 (the "
        "36-item observer form, WAI-O, from which the short form is drawn).",
        notes="12 items rated by a trained observer from a recording, 1-7 as the WAI-O. The "
        "primary source of the 12-item short observer form is cited differently across "
        "studies and was not verified, so it is not given; some versions rate 0-6: check your manual and make your own Instrument when it differs. "
        "Reverse keys and subscale membership are not stored (None / empty); no cut-off, "
        "norms or reliable-change value is stored. Observer ratings are session-level: one "
        "row per coder x session, averaged over coders before alliance models.",
    ),
    Instrument(
        "srs",
        "Session Rating Scale",
        "alliance",
        "client",
        4,
        0,
        10,
        reverse_items=(),
        higher_is_better=True,
        cutoff=36.0,
        citation="Duncan, B. L., Miller, S. D., Sparks, J. A., Claud, D. A., Reynolds, L. R., "
        "Brown, J., & Johnson, L. D. (2003). The Session Rating Scale. Journal of Brief "
        "Therapy, 3(1), 3-12.",
        notes="Four visual-analogue lines scored 0-10 (to 0.1). A total below 36 is the "
        "usual flag for an alliance concern in feedback systems (PCOMS).",
    ),
    Instrument(
        "haq_ii",
        "Revised Helping Alliance Questionnaire (HAq-II)",
        "alliance",
        "client",
        19,
        1,
        6,
        reverse_items=None,
        higher_is_better=True,
        citation="Luborsky, L., Barber, J. P., Siqueland, L., Johnson, S., Najavits, L. M., "
        "Frank, A., & Daley, D. (1996). The Revised Helping Alliance Questionnaire "
        "(HAq-II). Journal of Psychotherapy Practice and Research, 5(3), 260-271.",
        notes="Has negatively worded items, but their numbers are not stored here (not "
        "verified against the primary source): pass reverse= to alliance.score.",
    ),
    Instrument(
        "phq9",
        "Patient Health Questionnaire-9",
        "outcome",
        "client",
        9,
        0,
        3,
        reverse_items=(),
        cutoff=10.0,
        bands={"minimal": 0, "mild": 5, "moderate": 10, "moderately severe": 15, "severe": 20},
        citation="Kroenke, K., Spitzer, R. L., & Williams, J. B. W. (2001). The PHQ-9. Journal "
        "of General Internal Medicine, 16(9), 606-613.",
        notes="No reliable-change value, norms or prorating rule is stored (none taken from "
        "the primary source); pass them to the functions that need them.",
    ),
    Instrument(
        "gad7",
        "Generalized Anxiety Disorder-7",
        "outcome",
        "client",
        7,
        0,
        3,
        reverse_items=(),
        cutoff=10.0,
        bands={"minimal": 0, "mild": 5, "moderate": 10, "severe": 15},
        citation="Spitzer, R. L., Kroenke, K., Williams, J. B. W., & Lowe, B. (2006). A brief "
        "measure for assessing generalized anxiety disorder: the GAD-7. Archives of "
        "Internal Medicine, 166(10), 1092-1097.",
        notes="Cut-off 10 is the cut point proposed by Spitzer et al. (2006). No "
        "reliable-change value, norms or prorating rule is stored.",
    ),
    Instrument(
        "bdi_ii",
        "Beck Depression Inventory-II",
        "outcome",
        "client",
        21,
        0,
        3,
        reverse_items=(),
        bands={"minimal": 0, "mild": 14, "moderate": 20, "severe": 29},
        citation="Beck, A. T., Steer, R. A., & Brown, G. K. (1996). Manual for the Beck "
        "Depression Inventory-II. San Antonio, TX: Psychological Corporation.",
        notes="Items 16 and 18 have lettered response options (1a/1b ...) that are scored "
        "0-3. No single clinical cut-off is stored (studies use 14 or 20); use the bands. "
        "No reliable-change value, norms or prorating rule is stored.",
    ),
    Instrument(
        "ors",
        "Outcome Rating Scale",
        "outcome",
        "client",
        4,
        0,
        10,
        reverse_items=(),
        higher_is_better=True,
        cutoff=25.0,
        reliable_change=5.0,
        citation="Miller, S. D., Duncan, B. L., Brown, J., Sparks, J. A., & Claud, D. A. "
        "(2003). The Outcome Rating Scale. Journal of Brief Therapy, 2(2), 91-100.",
        notes="Adult clinical cut-off 25 (below it is the clinical range). Reliable change "
        "'about 5 points'; the reliability it rests on is not stored.",
    ),
    Instrument(
        "oq45",
        "Outcome Questionnaire-45",
        "outcome",
        "client",
        45,
        0,
        4,
        reverse_items=(1, 12, 13, 20, 21, 24, 31, 37, 43),
        cutoff=64.0,
        reliable_change=14.0,
        citation="Lambert, M. J., Burlingame, G. M., Umphress, V., Hansen, N. B., Vermeersch, "
        "D. A., Clouse, G. C., & Yanchar, S. C. (1996). The reliability and validity of the "
        "Outcome Questionnaire. Clinical Psychology & Psychotherapy, 3(4), 249-258.",
        notes="Cut-off 63/64: 63 or below is the functional range, 64 or above clinical. "
        "Reliable change 14 points; the reliability it rests on is not stored. Subscale "
        "membership (symptom distress, interpersonal relations, social role) and norms "
        "are not stored (not verified).",
    ),
    Instrument(
        "core_om",
        "CORE Outcome Measure",
        "outcome",
        "client",
        34,
        0,
        4,
        reverse_items=(3, 4, 7, 12, 19, 21, 31, 32),
        subscales={
            "wellbeing": (4, 14, 17, 31),
            "problems": (2, 5, 8, 11, 13, 15, 18, 20, 23, 27, 28, 30),
            "functioning": (1, 3, 7, 10, 12, 19, 21, 25, 26, 29, 32, 33),
            "risk": (6, 9, 16, 22, 24, 34),
        },
        scoring="mean",
        multiplier=10.0,
        max_missing=3,
        cutoff=10.0,
        citation="Evans, C., Connell, J., Barkham, M., Margison, F., McGrath, G., "
        "Mellor-Clark, J., & Audin, K. (2002). Towards a standardised brief outcome "
        "measure: psychometric properties and utility of the CORE-OM. British Journal of "
        "Psychiatry, 180, 51-60. Cut-off: Connell, J., et al. (2007). Journal of Mental "
        "Health, 16(1), 69-79.",
        notes="Clinical score = item mean x 10 (0-40); prorated with at most 3 items "
        "missing. The eight positively worded items are reverse keyed. Evans et al. (2002) "
        "gave gender-specific cut-offs (mean item score about 1.19 men, 1.29 women); the "
        "single clinical-score cut-off 10 follows Connell et al. (2007). Norms and the "
        "reliable-change value are not stored.",
    ),
    Instrument(
        "core10",
        "CORE-10",
        "outcome",
        "client",
        10,
        0,
        4,
        reverse_items=(2, 3),
        max_missing=1,
        cutoff=11.0,
        reliable_change=6.0,
        citation="Barkham, M., Bewick, B., Mullin, T., Gilbody, S., Connell, J., Cahill, J., "
        "Mellor-Clark, J., Richards, D., Unsworth, G., & Evans, C. (2013). The CORE-10: A "
        "short measure of psychological distress for routine use in the psychological "
        "therapies. Counselling and Psychotherapy Research, 13(1), 3-13.",
        notes="Total 0-40 (the sum, equal to the clinical score mean x 10); prorated with "
        "at most 1 item missing. Items 2 and 3 are positively worded and reverse keyed. "
        "Reliable change 'about 6 points'; the reliability it rests on is not stored.",
    ),
)

for _ins in _BUILT_IN:
    register(_ins)


#: How ``direction=`` may be written, by the direction it means.
DIRECTIONS = {
    False: ("lower", "lower_is_better", "decrease"),
    True: ("higher", "higher_is_better", "increase"),
}


def higher_is_better(direction: str | None = None, instrument: str | None = None) -> bool:
    """Whether higher scores are better: from ``direction=``, else the instrument, else lower.

    Every analysis that needs the direction of improvement reads it here, so
    ``direction="lower_is_better"`` / ``"higher_is_better"`` mean the same everywhere.

    Parameters
    ----------
    direction : {"lower_is_better", "higher_is_better"}, optional
        Also ``"lower"``/``"higher"``, ``"decrease"``/``"increase"``.
    instrument : str, optional
        A registered instrument whose ``higher_is_better`` fact decides when ``direction``
        is not given; with neither, lower is better (symptom scales).

    Examples
    --------
    >>> from alliance.instruments import higher_is_better
    >>> higher_is_better("higher_is_better"), higher_is_better(instrument="phq9")
    (True, False)
    >>> higher_is_better(instrument="wai_sr"), higher_is_better()
    (True, False)
    """
    if direction is None:
        if instrument is None:
            return False
        return bool(get(instrument).higher_is_better)
    key = str(direction).lower()
    for value, names in DIRECTIONS.items():
        if key in names:
            return value
    raise ValueError(
        f"direction={direction!r} is not understood; pass direction='lower_is_better' "
        "(symptom scales such as the PHQ-9) or direction='higher_is_better' (alliance "
        "scales, the ORS), or name the instrument with instrument='...'"
    )
