"""Generalizability theory: a G-study by crossed random effects and its D-study.

:func:`g_study` decomposes the variance of a score in a crossed (and partly nested) design
-- coders x sessions, sessions nested in clients -- into the variance components of
generalizability theory (Cronbach, Gleser, Nanda & Rajaratnam 1972; Brennan 2001), fitted
by REML with crossed random intercepts (:func:`alliance.models.lmm`, as lme4's ``lmer``).
From the components it gives the generalizability (G, relative) and dependability (phi,
absolute) coefficients for a chosen number of levels of each facet (the D-study).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alliance._checks import require_columns, require_frame
from alliance.results import Result, exclusion_log

__all__ = ["GStudyResult", "g_study"]

G_CITATION = (
    "Cronbach, Gleser, Nanda & Rajaratnam (1972); Brennan (2001), Generalizability Theory; "
    "Shavelson & Webb (1991)"
)


@dataclass
class GStudyResult(Result):
    """Result of :func:`g_study` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        The grand mean (term ``Intercept``) from the mixed model.
    components : pandas.DataFrame
        One row per variance component (``component`` names its variables joined by
        ``:``; ``Residual`` last): variance, share (of the total), facets (the facets in
        it, ``;``-joined), role (``universe``: the object of measurement's score;
        ``relative``: error for relative decisions (and absolute ones); ``absolute``: error
        for absolute decisions only).
    coefficients : pandas.DataFrame
        The D-study for ``n``: one row per design, ``n_<facet>`` columns, then universe
        (the universe-score variance), relative_error, absolute_error, g, phi, sem_relative,
        sem_absolute (square roots of the error variances).
    n_observed : dict of str to float
        Mean number of levels of each facet per object of measurement in the data.
    variance_components : pandas.DataFrame
        The mixed model's ``VarCorr`` table.
    mixed_model : alliance.models.LmmResult
        The fitted model.
    """

    model: str
    params: pd.DataFrame
    components: pd.DataFrame
    coefficients: pd.DataFrame
    object: str
    facets: list[str]
    nested: dict[str, str]
    n_observed: dict[str, float]
    nobs: int
    excluded: pd.DataFrame
    variance_components: pd.DataFrame
    mixed_model: Any = field(repr=False, default=None)
    notes: list[str] = field(default_factory=list)
    citation: str = G_CITATION
    loglik: float = math.nan
    converged: bool | None = None
    singular: bool | None = None

    def _n_by_level(self) -> dict[str, int]:
        frame = self.mixed_model.model_frame() if self.mixed_model is not None else None
        out = {"ratings": self.nobs}
        if frame is not None:
            for name in self.components["component"]:
                if name != "Residual" and ":" not in name and name in frame:
                    out[name] = int(frame[name].nunique())
        return out

    def d_study(self, n: int | Mapping[str, int | Sequence[int]]) -> pd.DataFrame:
        """G and phi coefficients for other numbers of facet levels (a D-study).

        Parameters
        ----------
        n : int or dict
            Levels of each facet per object of measurement: ``{"coder": [1, 2, 3]}``
            (every combination of the lists is a row), or an int when there is one facet.
            Facets left out keep their observed mean number.

        Returns
        -------
        pandas.DataFrame
            The layout of :attr:`coefficients`, one row per design.

        Examples
        --------
        >>> import alliance
        >>> from alliance.reliability import g_study
        >>> seg = alliance.datasets.load_dataset("dyads").segments
        >>> seg = seg[seg["client"].isin(seg["client"].unique()[:12])]
        >>> per_session = (seg.assign(score=seg["marker"].notna())
        ...                .groupby(["client", "session", "coder"], as_index=False)["score"].sum())
        >>> g = g_study(per_session, score="score", object="session", facets=["coder"],
        ...             nested={"session": "client"})
        >>> g.d_study({"coder": [1, 2, 4]})["n_coder"].tolist()
        [1, 2, 4]
        """
        return _d_study(self.components, self.facets, self.n_observed, n)


def _d_study(
    components: pd.DataFrame,
    facets: list[str],
    observed: dict[str, float],
    n: int | Mapping[str, int | Sequence[int]] | None,
) -> pd.DataFrame:
    if n is None:
        n = {}
    if not isinstance(n, Mapping):
        if len(facets) != 1:
            raise ValueError(
                f"with {len(facets)} facets pass n as a dict, e.g. n={{{facets[0]!r}: 2}}"
            )
        n = {facets[0]: n}
    unknown = [k for k in n if k not in facets]
    if unknown:
        raise KeyError(f"n names {unknown}, which are not facets ({facets})")
    grid = {}
    for f in facets:
        values = n.get(f, observed[f])
        values = list(values) if isinstance(values, Sequence) else [values]
        for v in values:
            if not (isinstance(v, int | float | np.integer | np.floating) and v > 0):
                raise ValueError(f"n[{f!r}] must be positive numbers of levels, got {v!r}")
        grid[f] = values
    rows = []
    for combo in itertools.product(*grid.values()):
        sizes = dict(zip(facets, combo, strict=True))
        tau = rel = ab = 0.0
        for comp in components.itertuples():
            inside = [f for f in str(comp.facets).split(";") if f]
            div = float(np.prod([sizes[f] for f in inside])) if inside else 1.0
            if comp.role == "universe":
                tau += comp.variance
            elif comp.role == "relative":
                rel += comp.variance / div
                ab += comp.variance / div
            else:
                ab += comp.variance / div
        row: dict[str, Any] = {f"n_{f}": sizes[f] for f in facets}
        row.update(
            universe=tau,
            relative_error=rel,
            absolute_error=ab,
            g=tau / (tau + rel) if tau + rel > 0 else math.nan,
            phi=tau / (tau + ab) if tau + ab > 0 else math.nan,
            sem_relative=math.sqrt(rel),
            sem_absolute=math.sqrt(ab),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _ancestors(var: str, nested: dict[str, str]) -> list[str]:
    out = []
    while var in nested:
        var = nested[var]
        if var in out:
            raise ValueError(f"nested= has a cycle through {var!r}")
        out.append(var)
    return out


def g_study(
    data: pd.DataFrame,
    score: str,
    facets: Sequence[str],
    object: str,
    *,
    nested: Mapping[str, str] | None = None,
    n: int | Mapping[str, int | Sequence[int]] | None = None,
) -> GStudyResult:
    """G-study of a crossed design by REML variance components, with a D-study.

    The score is decomposed into one random intercept per **effect** of the design: every
    combination of the object of measurement, the facets and the grouping variables the
    object is nested in, where a nested variable always appears with what it is nested
    in (Brennan 2001, ch. 3). The effect of all variables together (one rating per cell)
    is confounded with the residual and is the residual. The model
    ``score ~ 1 + (1 | effect) + ...`` is fitted by :func:`alliance.models.lmm` (REML,
    crossed factors), as ``lmer`` would. Example: sessions nested in clients, crossed with
    coders, ``object="session"``, ``facets=["coder"]``, ``nested={"session": "client"}``
    gives the components client, client:session, coder, client:coder and the residual
    (session x coder).

    Each component has a role for the object of measurement:

    * **universe** (no facet in it): the object's universe-score variance tau;
    * **relative** (a facet and the object or what it is nested in): relative error;
    * **absolute** (only facets): adds to the absolute error only.

    For ``n'`` levels of each facet per object (the D-study), each error component is
    divided by the product of the ``n'`` of the facets in it (the residual: of all facets),
    ``delta`` sums the relative ones, ``Delta`` all of them, and ``G = tau / (tau + delta)``
    (generalizability, for rank ordering) and ``phi = tau / (tau + Delta)`` (dependability,
    for absolute decisions). In a balanced one-facet design G and phi for ``n'`` raters are
    Shrout & Fleiss's ICC(3,k) and ICC(2,k) (and ICC(3,1), ICC(2,1) for one rater).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format: one row per rating.
    score : str
        The numeric score column.
    facets : sequence of str
        The facets of measurement error (e.g. ``["coder"]``, ``["coder", "session"]``).
    object : str
        The object of measurement (e.g. ``"session"`` or ``"client"``).
    nested : dict, optional
        ``{variable: what it is nested in}``, e.g. ``{"session": "client"}`` when session
        numbers restart in every client. A variable the object is nested in that is not a
        facet becomes part of the universe score. The object may not be nested in a facet.
    n : int or dict, optional
        D-study levels of each facet (see :meth:`GStudyResult.d_study`); default: the mean
        observed number per object.

    Returns
    -------
    GStudyResult
        ``.components`` (variance, share, role), ``.coefficients`` (G and phi for ``n``),
        ``.d_study(n)``, ``.mixed_model``.

    Raises
    ------
    KeyError
        A column is missing or ``n`` names no facet.
    ValueError
        A non-numeric score, a variable listed twice, the object nested in a facet, a
        parent of a facet that is not a facet, or a variable that is nested in another
        without ``nested=`` saying so.

    Examples
    --------
    >>> import alliance
    >>> from alliance.reliability import g_study
    >>> seg = alliance.datasets.load_dataset("dyads").segments
    >>> seg = seg[seg["client"].isin(seg["client"].unique()[:12])]
    >>> per_session = (seg.assign(score=seg["marker"].notna())
    ...                .groupby(["client", "session", "coder"], as_index=False)["score"].sum())
    >>> g = g_study(per_session, score="score", object="session", facets=["coder"],
    ...             nested={"session": "client"}, n=2)
    >>> g.components["component"].tolist()[-1]
    'Residual'
    >>> bool(0 < g.coefficients["g"].iloc[0] < 1)
    True
    """
    from alliance.models.lmm import lmm  # deferred: the engine is light, models/ is not

    frame = require_frame(data)
    facets = list(facets)
    nested = dict(nested or {})
    if not facets:
        raise ValueError("g_study needs at least one facet, e.g. facets=['coder']")
    names = [object, *facets]
    if len(set(names)) != len(names):
        raise ValueError(f"object and facets must be distinct variables, got {names}")
    above = _ancestors(object, nested)
    reachable = set(names) | set(above)
    for f in facets:
        reachable |= set(_ancestors(f, nested))
    for child, parent in nested.items():
        if parent == child:
            raise ValueError(f"{child!r} cannot be nested in itself")
        if child not in reachable:
            raise ValueError(
                f"nested= names {child!r}, which is neither the object, a facet nor what "
                f"they are nested in ({sorted(reachable)})"
            )
    if any(a in facets for a in above):
        raise ValueError(
            f"the object {object!r} is nested in a facet ({above}); g_study handles objects "
            "crossed with or containing the facets (swap object and facet, or drop nested=)"
        )
    for f in facets:
        for a in _ancestors(f, nested):
            if a not in facets and a not in above and a != object:
                raise ValueError(
                    f"facet {f!r} is nested in {a!r}, which is not a facet: add {a!r} to facets"
                )
    variables = [*[a for a in reversed(above) if a not in names], *names]
    require_columns(frame, score=score, **{f"variable {v}": v for v in variables})
    values = pd.to_numeric(frame[score], errors="coerce")
    junk = values.isna() & frame[score].notna()
    if junk.any():
        raise ValueError(
            f"the score {score!r} has {int(junk.sum())} non-numeric values; recode them to "
            "numbers or missing (NaN)"
        )
    work = frame[variables].astype("string").assign(_score=values.astype(float))
    log = []
    keep = pd.Series(True, index=work.index)
    for col in ["_score", *variables]:
        miss = keep & work[col].isna()
        if miss.any():
            log.append((f"missing {score if col == '_score' else col}", col, int(miss.sum()), None))
            keep &= ~miss
    work = work[keep]
    nobs = len(work)
    if nobs < 3:
        raise ValueError(f"g_study needs ratings to decompose; {nobs} complete rows")

    def key(vs):
        if len(vs) == 1:
            return work[vs[0]]
        parts = [work[v].astype(str) for v in vs]
        return parts[0].str.cat(parts[1:], sep="\x1f")

    # effects: subsets of the variables closed under nesting
    effects = []
    for size in range(1, len(variables) + 1):
        for combo in itertools.combinations(variables, size):
            if all(nested[v] in combo for v in combo if v in nested):
                effects.append(combo)
    groups = {}
    for combo in effects:
        groups[combo] = key(combo)
    counts = {c: int(g.nunique()) for c, g in groups.items()}
    # an undeclared nesting: each level of v with one level of w makes v and w:v one effect
    for v, w in itertools.permutations(variables, 2):
        if nested.get(v) == w or w in _ancestors(v, nested) or v in _ancestors(w, nested):
            continue
        unit = key([v, *_ancestors(v, nested)])
        if unit.nunique() > 1 and work[w].groupby(unit).nunique().eq(1).all():
            raise ValueError(
                f"every {v!r} level occurs with one {w!r} only: {v!r} is nested in {w!r}; "
                f"declare it with nested={{{v!r}: {w!r}}}"
            )
    fitted = [c for c in effects if counts[c] < nobs]
    notes = []
    if len(fitted) < len(effects):
        top = [":".join(c) for c in effects if counts[c] >= nobs]
        notes.append(
            f"{', '.join(top)} has one rating per cell: confounded with the residual, which "
            "stands for it (and for error)."
        )
    model_frame = pd.DataFrame({"score": work["_score"].to_numpy()})
    labels = {}
    for i, combo in enumerate(fitted):
        model_frame[f"e{i}"] = groups[combo].to_numpy()
        labels[f"e{i}"] = ":".join(combo)
    if not fitted:
        raise ValueError("every effect has one rating per group: nothing to decompose")
    formula = "score ~ 1 + " + " + ".join(f"(1 | e{i})" for i in range(len(fitted)))
    if np.ptp(model_frame["score"].to_numpy()) == 0:
        raise ValueError(f"the score {score!r} is constant: there is no variance to decompose")
    try:
        fit = lmm(formula, model_frame, reml=True)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"the mixed model of the G-study could not be fitted ({err}); the design may have "
            "too few levels per effect (check that the facets vary within the object)"
        ) from None
    vc = fit.variance_components.assign(group=fit.variance_components["group"].replace(labels))
    obj_side = {object, *above}
    rows = []
    by_name = dict(zip(vc["group"], vc["vcov"], strict=True))
    for combo in fitted:
        name = ":".join(combo)
        inside = [v for v in combo if v in facets]
        if not inside:
            role = "universe"
        elif obj_side & set(combo):
            role = "relative"
        else:
            role = "absolute"
        rows.append(
            {"component": name, "variance": by_name[name], "facets": ";".join(inside), "role": role}
        )
    rows.append(
        {
            "component": "Residual",
            "variance": by_name["Residual"],
            "facets": ";".join(facets),
            "role": "relative",
        }
    )
    comps = pd.DataFrame(rows)
    total = comps["variance"].sum()
    comps.insert(2, "share", comps["variance"] / total if total > 0 else math.nan)
    obj_key = key([object, *above])
    observed = {}
    for f in facets:
        cell = [obj_key] + [work[a] for a in _ancestors(f, nested) if a in facets]
        observed[f] = float(work.groupby(cell)[f].nunique().mean())
    coefficients = _d_study(comps, facets, observed, n)
    notes += list(fit.notes)
    return GStudyResult(
        model=f"G-study of {score}: {object} x {' x '.join(facets)}",
        params=fit.params,
        components=comps,
        coefficients=coefficients,
        object=object,
        facets=facets,
        nested=nested,
        n_observed=observed,
        nobs=nobs,
        excluded=exclusion_log(log),
        variance_components=vc,
        mixed_model=fit,
        notes=notes,
        loglik=float(fit.loglik),
        converged=fit.converged,
        singular=fit.singular,
    )
