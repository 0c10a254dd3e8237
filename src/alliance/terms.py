"""Readable names of model terms, for tables and figures: one rule for the whole package.

Models name their terms after the columns and the way they enter the model
(``alliance_within``, ``phq9_lag1``, ``alliance_early:prior_negative_therapy``,
``rater[T.therapist]``, ``prior_negative_therapy=True``). :func:`term_label` turns such a
name into what a results section prints: the column's label from the study's codebook
(:func:`alliance.tables.codebook_labels`), the role of the term (within or between
clients, previous session, early window), ``×`` for interactions and the level of a
categorical predictor. Names it does not recognise are returned with underscores as
spaces; item names such as ``wai_sr_3`` and identifiers are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["term_label", "term_labeller", "use_labels"]

#: Labels every call falls back on, set by :func:`use_labels` (and so by
#: :func:`alliance.plots.set_theme`, which every report notebook calls with its study).
_DEFAULT: dict[str, str] = {}

#: Paths and effects of the mediation models, by the names their results use.
_STATISTICAL = {
    "a": "a path",
    "b": "b path",
    "ab": "Indirect effect (a × b)",
    "cov_ab": "Cov(a, b)",
    "direct": "Direct effect",
    "indirect": "Indirect effect",
    "total": "Total effect",
    "Intercept": "Intercept",
}

#: How a suffix changes a column's label (applied to the label of the rest of the name).
_SUFFIXES = (
    ("_within", "{}, within client"),
    ("_between", "{}, between clients"),
    ("_therapist_mean", "{}, therapist mean"),
    ("_lag1", "{}, previous session"),
    ("_lag", "{}, previous session"),
    ("_early", "Early {}"),
    ("_slope", "{} slope"),
)

#: Words that name a grouping or a fixed piece of a label, never relabelled inside text.
_KEEP = {"client", "therapist", "site", "coder", "residual", "nested", "session", "Intercept"}

_ITEM = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_\d+$")
_TOKEN = re.compile(
    r"[A-Za-z][A-Za-z0-9_]*(?:\[T\.[^\]]+\])?(?::[A-Za-z][A-Za-z0-9_]*(?:\[T\.[^\]]+\])?)*"
    r"(?:=[A-Za-z0-9_.\-]+)?"
)
_YES = {"true": "yes", "1": "yes", "1.0": "yes", "false": "no", "0": "no", "0.0": "no"}


def _lower_first(text: str) -> str:
    """``Alliance`` -> ``alliance`` but ``WAI-SR total`` stays (an acronym leads)."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _humanize(name: str) -> str:
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text.islower() else text


def _one(term: str, labels: Mapping[str, str]) -> str:
    if term in labels:
        return labels[term]
    if ":" in term:
        return " × ".join(_one(part, labels) for part in term.split(":"))
    match = re.fullmatch(r"(.+)\[T\.(.+)\]", term)
    if match:
        base, level = _one(match[1], labels), match[2]
        yes = _YES.get(level.lower())
        return base if yes == "yes" else f"{base}: {yes or level}"
    if "=" in term:
        base, _, level = term.partition("=")
        return f"{_one(base, labels)}: {_YES.get(level.lower(), level)}"
    if term in _STATISTICAL:
        return _STATISTICAL[term]
    for suffix, pattern in _SUFFIXES:
        if term.endswith(suffix) and len(term) > len(suffix):
            base = term[: -len(suffix)]
            inner = _one(base, labels)
            if pattern.startswith("{}"):
                return pattern.format(inner)
            return pattern.format(_lower_first(inner))
    if _ITEM.match(term):
        return term
    return _instrument(term) or _humanize(term)


def _instrument(name: str) -> str | None:
    """A registered questionnaire's short name: ``wai_sr_t`` -> ``WAI-SR-T``, ``phq9`` ->
    ``PHQ-9`` (the abbreviation in its title, else its name in capitals)."""
    from alliance import instruments

    try:
        title = instruments.get(name).title
    except (KeyError, ValueError):
        return None
    short = re.search(r"\(([^()]+)\)\s*$", title or "")
    if short:
        return short[1]
    return re.sub(r"([A-Z])(\d)", r"\1-\2", name.upper().replace("_", "-"))


def term_label(term: object, labels: Mapping[str, str] | None = None) -> str:
    """The readable name of a model term (or of a table cell that names terms).

    Parameters
    ----------
    term : str
        A term as a result's ``params["term"]`` holds it, or a cell such as
        ``"r client: Intercept, x_within"`` whose term names are relabelled in place.
    labels : mapping, optional
        Column -> label, e.g. :func:`alliance.tables.codebook_labels` of the study, plus
        any names of your own (they win: ``{"alliance_early": "Early alliance (1-3)"}``).
        They win over the labels set by :func:`use_labels`.

    Returns
    -------
    str
        The label; a name with nothing to relabel comes back unchanged.

    Examples
    --------
    >>> import alliance
    >>> from alliance.terms import term_label, use_labels
    >>> _ = use_labels()  # none set yet (alliance.plots.set_theme sets a study's)
    >>> labels = alliance.tables.codebook_labels(alliance.datasets.load_dataset("demo"))
    >>> term_label("phq9_lag1", labels)
    'PHQ-9 total, previous session'
    >>> term_label("alliance_early:prior_negative_therapy", labels)
    'Early alliance × Prior negative therapy'
    >>> term_label("prior_negative_therapy=False"), term_label("rater[T.therapist]")
    ('Prior negative therapy: no', 'Rater: therapist')
    >>> term_label("wai_sr_t_between")
    'WAI-SR-T, between clients'
    >>> term_label("end phq9 at t + 1")
    'end PHQ-9 at t + 1'
    >>> term_label("r client: Intercept, x_within", {"x": "Reflections"})
    'r client: Intercept, Reflections, within client'
    """
    if not isinstance(term, str) or not term:
        return "" if term is None else str(term)
    labels = {**_DEFAULT, **dict(labels or {})}
    whole = _TOKEN.fullmatch(term)
    if whole:
        return _one(term, labels)

    def swap(match: re.Match) -> str:
        token = match[0]
        if token in labels:
            return labels[token]
        if token in _KEEP:
            return token
        if not re.search(r"[_:=\[]", token):
            return _instrument(token) or token  # a questionnaire named in running text
        return _one(token, labels)

    return _TOKEN.sub(swap, term)


def term_labeller(labels: Mapping[str, str] | None = None) -> Callable[[object], str]:
    """:func:`term_label` with ``labels`` fixed, for ``Series.map`` and ``ApaTable.rename``.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.terms import term_labeller
    >>> pd.Series(["sessions_elapsed", "rupture_repaired"]).map(term_labeller()).tolist()
    ['Sessions elapsed', 'Rupture repaired']
    """
    fixed = dict(labels or {})
    return lambda term: term_label(term, fixed)


def use_labels(labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Set the labels :func:`term_label` falls back on (None clears them).

    :func:`alliance.plots.set_theme` calls this with the study's codebook labels, so the
    tables and figures of a report name terms the same way.

    Returns
    -------
    dict
        The labels now in use.

    Examples
    --------
    >>> from alliance.terms import term_label, use_labels
    >>> _ = use_labels({"phq9": "PHQ-9"})
    >>> term_label("phq9_between")
    'PHQ-9, between clients'
    >>> use_labels()
    {}
    """
    _DEFAULT.clear()
    _DEFAULT.update(dict(labels or {}))
    return dict(_DEFAULT)
