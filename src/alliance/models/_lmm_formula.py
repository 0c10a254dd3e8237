"""Split an lme4-style formula into its fixed part and its random-effect terms."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RandomTerm", "parse_formula"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class RandomTerm:
    """``(expr | group)``: the design of the term and the grouping columns.

    ``group`` is a tuple of column names whose combination defines the groups (``a:b``).
    ``correlated`` is False for ``||`` terms, which are split column by column.
    """

    expr: str
    group: tuple[str, ...]
    correlated: bool = True

    @property
    def group_name(self) -> str:
        return ":".join(self.group)


def _split_top(text: str) -> list[tuple[str, str]]:
    """Split on '+' and '-' outside parentheses; returns (sign, term) pairs."""
    parts: list[tuple[str, str]] = []
    depth = 0
    sign = "+"
    buf: list[str] = []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(
                    f"unbalanced parentheses in formula {text!r}: a ')' has no matching '('."
                )
        if depth == 0 and ch in "+-":
            term = "".join(buf).strip()
            if term:
                parts.append((sign, term))
            elif ch == "-" and sign == "-":
                sign = "+"
                continue
            sign = ch if term or not parts or ch == "-" else sign
            buf = []
            continue
        buf.append(ch)
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in formula {text!r}: a '(' is never closed.")
    term = "".join(buf).strip()
    if term:
        parts.append((sign, term))
    return parts


def _outer_parens(term: str) -> str | None:
    """The inside of ``( ... )`` if the parentheses enclose the whole term, else None."""
    if not (term.startswith("(") and term.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(term):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - 1:
            return None
    return term[1:-1]


def _bar_position(inner: str) -> tuple[int, int] | None:
    """Position and width of the top-level '|' or '||' in ``inner``."""
    depth = 0
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            width = 2 if inner[i : i + 2] == "||" else 1
            return i, width
        i += 1
    return None


def _groups(spec: str, formula: str) -> list[tuple[str, ...]]:
    """``therapist/client`` -> [(therapist,), (therapist, client)]; ``a:b`` -> [(a, b)]."""
    spec = spec.strip()
    inner = _outer_parens(spec)
    if inner is not None:
        spec = inner.strip()
    if "+" in spec or "*" in spec:
        raise ValueError(
            f"grouping {spec!r} in {formula!r} is not supported: write one grouping per term, "
            "e.g. (1 | client) + (1 | therapist), or nested ones as (1 | therapist/client)."
        )
    chain = [p.strip() for p in spec.split("/")]
    out: list[tuple[str, ...]] = []
    prefix: tuple[str, ...] = ()
    for part in chain:
        cols = tuple(c.strip() for c in part.split(":"))
        for c in cols:
            if not c or not _NAME.match(c):
                raise ValueError(
                    f"grouping {spec!r} in {formula!r} must name columns of the data "
                    f"(got {c!r}); e.g. (1 | client) or (1 | therapist/client)."
                )
        prefix = prefix + cols
        out.append(prefix)
    return out


def parse_formula(formula: str) -> tuple[str, str, list[RandomTerm]]:
    """Split ``"y ~ x + (1 + x | client) + (1 | therapist)"``.

    Returns
    -------
    response : str
    fixed : str
        The right-hand side without the random terms (formulaic syntax), ``"1"`` if empty.
    random : list of RandomTerm
    """
    if not isinstance(formula, str):
        raise TypeError(
            f"formula must be a string like 'outcome ~ alliance + (1 | client)', "
            f"not {type(formula).__name__}."
        )
    if formula.count("~") != 1:
        raise ValueError(
            f"formula {formula!r} needs exactly one '~' between the outcome and the predictors, "
            "e.g. 'phq9 ~ wai_sr + session + (1 + session | client)'."
        )
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not lhs:
        raise ValueError(f"formula {formula!r} has no outcome on the left of '~'.")
    fixed: list[tuple[str, str]] = []
    random: list[RandomTerm] = []
    for sign, term in _split_top(rhs):
        inner = _outer_parens(term)
        bar = _bar_position(inner) if inner is not None else None
        if bar is None:
            fixed.append((sign, term))
            continue
        if sign == "-":
            raise ValueError(f"cannot subtract the random-effect term {term!r} in {formula!r}.")
        pos, width = bar
        expr = inner[:pos].strip()
        if not expr:
            raise ValueError(
                f"random-effect term {term!r} has nothing left of '|'; write (1 | group) for a "
                "random intercept."
            )
        for group in _groups(inner[pos + width :], formula):
            random.append(RandomTerm(expr=expr, group=group, correlated=width == 1))
    pieces = []
    for sign, term in fixed:
        pieces.append(term if not pieces and sign == "+" else f"{sign} {term}")
    fixed_rhs = " ".join(pieces) if pieces else "1"
    if fixed_rhs.startswith("- "):
        fixed_rhs = "1 " + fixed_rhs
    return lhs, fixed_rhs, random
