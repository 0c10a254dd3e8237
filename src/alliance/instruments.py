"""Registry of questionnaires: items, ranges, keys, subscales, norms, cut-offs, citations.

Only facts are stored (item counts, ranges, keys, subscale membership, norms and
citations), never item wording. Where a published value is not certain it is left
out (``None``) rather than guessed; pass your own value to the function that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from alliance._checks import close_matches

__all__ = ["Instrument", "get", "list_instruments", "register", "REGISTRY"]


@dataclass(frozen=True)
class Instrument:
    """A questionnaire's scoring facts.

    Attributes
    ----------
    name : str
        Registry key and item-column prefix, e.g. ``"phq9"`` for ``phq9_1 .. phq9_9``.
    title : str
        Full name.
    construct : str
        ``"alliance"``, ``"outcome"`` or ``"rupture"``.
    rater : str
        ``"client"``, ``"therapist"`` or ``"observer"``.
    n_items : int
        Number of items.
    item_min, item_max : float
        Allowed item values.
    reverse_items : tuple of int
        1-based numbers of reverse-keyed items.
    subscales : dict
        Subscale name -> tuple of 1-based item numbers.
    scoring : str
        ``"sum"`` or ``"mean"`` of the (keyed) items.
    multiplier : float
        Factor applied after scoring (CORE-OM clinical score: mean x 10).
    higher_is_better : bool
        True for alliance scales and the ORS; False for symptom scales.
    max_missing : int
        Items that may be missing before a score is not prorated (published rule).
    cutoff : float or None
        Clinical cut-off on the scored scale.
    bands : dict
        Severity band label -> lower bound of the band.
    reliable_change : float or None
        Published reliable-change threshold in points of the scored scale.
    reliability : float or None
        The reliability the reliable-change threshold rests on.
    clinical_mean, clinical_sd, functional_mean, functional_sd : float or None
        Published norms on the scored scale (Jacobson & Truax cut-offs).
    citation : str
        The source of these facts.
    """

    name: str
    title: str
    construct: str
    rater: str
    n_items: int
    item_min: float
    item_max: float
    reverse_items: tuple[int, ...] = ()
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

    @property
    def items(self) -> list[str]:
        """Default item column names: ``<name>_1 .. <name>_<n_items>``."""
        return [f"{self.name}_{i}" for i in range(1, self.n_items + 1)]

    @property
    def score_range(self) -> tuple[float, float]:
        """Lowest and highest possible scale score."""
        k = self.n_items if self.scoring == "sum" else 1
        return (self.item_min * k * self.multiplier, self.item_max * k * self.multiplier)


REGISTRY: dict[str, Instrument] = {}


def register(instrument: Instrument, *, replace: bool = False) -> Instrument:
    """Add an instrument to the registry.

    Examples
    --------
    >>> from alliance.instruments import Instrument, register, get
    >>> _ = register(Instrument("mood4", "Four-item mood check", "outcome", "client", 4, 0, 3),
    ...              replace=True)
    >>> get("mood4").score_range
    (0, 12)
    """
    if instrument.name in REGISTRY and not replace:
        raise ValueError(
            f"an instrument named {instrument.name!r} is already registered; "
            "pass replace=True to overwrite it or choose another name"
        )
    REGISTRY[instrument.name] = instrument
    return instrument


def get(name: str | Instrument) -> Instrument:
    """Look up an instrument by name (case-insensitive; ``-`` and spaces ignored).

    Examples
    --------
    >>> from alliance import instruments
    >>> instruments.get("PHQ-9").cutoff
    10.0
    """
    if isinstance(name, Instrument):
        return name
    key = str(name).lower().replace("-", "").replace(" ", "")
    key = {"waisr": "wai_sr", "wais": "wai_s", "haqii": "haq_ii", "coreom": "core_om",
           "core10": "core10", "oq45": "oq45"}.get(key.replace("_", ""), key)
    if key not in REGISTRY:
        near = close_matches(key, REGISTRY)
        tip = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise KeyError(
            f"no instrument named {name!r}.{tip} alliance.instruments.list_instruments() "
            "lists them; alliance.instruments.register() adds your own"
        )
    return REGISTRY[key]


def list_instruments() -> pd.DataFrame:
    """All registered instruments, one row each.

    Examples
    --------
    >>> from alliance import instruments
    >>> table = instruments.list_instruments()
    >>> {"wai_sr", "phq9"} <= set(table["name"])
    True
    """
    rows = [
        {
            "name": ins.name,
            "title": ins.title,
            "construct": ins.construct,
            "rater": ins.rater,
            "n_items": ins.n_items,
            "item_min": ins.item_min,
            "item_max": ins.item_max,
            "higher_is_better": ins.higher_is_better,
            "cutoff": ins.cutoff,
            "reliable_change": ins.reliable_change,
            "citation": ins.citation,
        }
        for ins in REGISTRY.values()
    ]
    return pd.DataFrame(rows)


for _ins in (
    Instrument(
        "wai_sr",
        "Working Alliance Inventory - Short Revised",
        "alliance",
        "client",
        12,
        1,
        5,
        subscales={"goal": (4, 6, 8, 11), "task": (1, 2, 10, 12), "bond": (3, 5, 7, 9)},
        higher_is_better=True,
        citation="Hatcher, R. L., & Gillaspy, J. A. (2006). Psychotherapy Research, 16(1), 12-25.",
    ),
    Instrument(
        "srs",
        "Session Rating Scale",
        "alliance",
        "client",
        4,
        0,
        10,
        higher_is_better=True,
        cutoff=36.0,
        citation="Duncan, B. L., et al. (2003). Journal of Brief Therapy, 3(1), 3-12.",
    ),
    Instrument(
        "phq9",
        "Patient Health Questionnaire-9",
        "outcome",
        "client",
        9,
        0,
        3,
        cutoff=10.0,
        bands={"minimal": 0, "mild": 5, "moderate": 10, "moderately severe": 15, "severe": 20},
        citation="Kroenke, K., Spitzer, R. L., & Williams, J. B. W. (2001). "
        "Journal of General Internal Medicine, 16(9), 606-613.",
    ),
):
    register(_ins)
