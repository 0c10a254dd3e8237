"""Estimated marginal means and pairwise contrasts of an LMM, as R's emmeans.

The reference grid crosses every level of each factor of the fixed part with each numeric
variable at its mean over the rows of the fit (or at the values given in ``at``); a
marginal mean of a level of ``specs`` is the equally weighted average of the grid's
predictions over the other factors, ``L beta`` with ``L`` the average of the grid's
model-matrix rows. SEs are ``sqrt(L V L')`` and the df Satterthwaite's (emmeans with
``lmer.df = "satterthwaite"``) or Kenward-Roger's (``lmer.df = "kenward-roger"``; then
``V`` is the adjusted covariance).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from alliance.results import Result

__all__ = ["MarginalMeans", "marginal_means"]

ADJUST = ("tukey", "holm", "bonferroni", "none")


@dataclass(repr=False)
class MarginalMeans(Result):
    """Result of :meth:`alliance.models.LmmResult.marginal_means`.

    Attributes
    ----------
    means : pandas.DataFrame
        One row per combination of the ``specs`` levels: the ``specs`` columns, then
        ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high`` (emmeans' ``emmean``, ``SE``,
        ``df``, ``lower.CL``, ``upper.CL``).
    contrasts : pandas.DataFrame
        Pairwise differences (``contrast`` labelled ``"a - b"`` as emmeans), ``estimate``,
        ``se``, ``df``, ``statistic`` (t), ``p`` (adjusted by ``adjust``), ``ci_low``,
        ``ci_high`` (unadjusted intervals).
    params : pandas.DataFrame
        The means in the results contract's layout (``term`` the level label;
        ``statistic``/``p`` test each mean against zero).
    grid : pandas.DataFrame
        The reference grid the means average over.
    ddf, adjust : str
    """

    means: pd.DataFrame
    contrasts: pd.DataFrame
    params: pd.DataFrame
    grid: pd.DataFrame
    ddf: str
    adjust: str
    nobs: int
    excluded: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict, repr=False)

    citation = (
        "Searle, Speed & Milliken (1980), The American Statistician 34(4); Lenth, emmeans "
        "(R package)"
    )

    @property
    def model(self) -> str:
        return "estimated marginal means"

    def _n_by_level(self) -> dict[str, int]:
        return dict(self.counts)  # the fitted model's N by level

    def __repr__(self) -> str:
        return f"<MarginalMeans: {len(self.means)} means, {len(self.contrasts)} contrasts>"

    def summary(self) -> str:
        fmt = {"float_format": lambda v: f"{v:.4g}", "index": False}
        lines = [
            f"Estimated marginal means ({self.ddf} df)",
            self.means.to_string(**fmt),
            "",
            f"Pairwise contrasts (p adjusted: {self.adjust})",
            self.contrasts.to_string(**fmt),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _is_factor(name: str, column: pd.Series, formula: str) -> bool:
    if re.search(rf"C\(\s*{re.escape(name)}\b", formula):
        return True
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if (column == c).any()]
    return sorted(column.unique().tolist())


def _label(values: tuple) -> str:
    return " ".join(str(v) for v in values)


def marginal_means(
    fit,
    specs,
    at: dict | None,
    *,
    ddf: str,
    level: float,
    adjust: str,
    spec,
    data: pd.DataFrame,
    linear_test,
) -> MarginalMeans:
    """See :meth:`alliance.models.LmmResult.marginal_means` (``spec``: the fixed part's
    formulaic model spec; ``data``: the rows of the fit; ``linear_test(w, ddf)``: estimate,
    SE and df of ``w' beta``)."""
    if isinstance(specs, str):
        specs = [specs]
    specs = list(specs)
    if not specs:
        raise ValueError("specs must name at least one variable of the fixed part.")
    if adjust not in ADJUST:
        raise ValueError(f"adjust must be one of {', '.join(ADJUST)}, not {adjust!r}.")
    at = dict(at or {})
    variables = sorted(spec.required_variables)
    unknown = [v for v in [*specs, *at] if v not in variables]
    if unknown:
        raise ValueError(
            f"{', '.join(map(repr, unknown))} is not a variable of the fixed part "
            f"({', '.join(variables)}); marginal means are over the fixed-effect variables."
        )
    values: dict[str, list] = {}
    factors = set()
    for v in variables:
        col = data[v]
        if _is_factor(v, col, fit.formula):
            factors.add(v)
            levels = _levels(col)
            if v in at:
                wanted = at[v] if isinstance(at[v], list | tuple | np.ndarray) else [at[v]]
                bad = [w for w in wanted if w not in levels]
                if bad:
                    raise ValueError(
                        f"at[{v!r}] has values that are not levels of {v!r} in the fit's "
                        f"rows: {bad}; the levels are {levels}."
                    )
                levels = list(wanted)
            values[v] = levels
        elif v in at:
            vals = at[v]
            values[v] = [float(x) for x in np.atleast_1d(vals)]
        else:
            values[v] = [float(col.mean())]
    for v in specs:
        if v not in factors and len(values[v]) < 2:
            raise ValueError(
                f"{v!r} is numeric: give the values to compare in at, e.g. "
                f"at={{{v!r}: [0, 1]}}, or name a factor."
            )
    rows = list(itertools.product(*[values[v] for v in variables]))
    grid = pd.DataFrame(rows, columns=variables)
    for v in factors:
        if isinstance(data[v].dtype, pd.CategoricalDtype):
            grid[v] = pd.Categorical(grid[v], categories=data[v].cat.categories)
        elif pd.api.types.is_bool_dtype(data[v]):
            grid[v] = grid[v].astype(bool)
    mm = spec.get_model_matrix(grid)
    xg = np.column_stack([mm.iloc[:, j].to_numpy(dtype=float) for j in range(mm.shape[1])])
    keys = list(itertools.product(*[values[v] for v in specs]))
    lmats = []
    for key in keys:
        mask = np.ones(len(grid), dtype=bool)
        for v, k in zip(specs, key, strict=True):
            mask &= (grid[v] == k).to_numpy()
        lmats.append(xg[mask].mean(axis=0))
    mean_rows = []
    for key, w in zip(keys, lmats, strict=True):
        est, se, df = linear_test(w, ddf)
        q = float(stats.t.ppf(0.5 + level / 2, df))
        mean_rows.append((*key, est, se, df, est - q * se, est + q * se))
    means = pd.DataFrame(mean_rows, columns=[*specs, "estimate", "se", "df", "ci_low", "ci_high"])
    pairs = list(itertools.combinations(range(len(keys)), 2))
    con_rows = []
    for i, j in pairs:
        w = lmats[i] - lmats[j]
        est, se, df = linear_test(w, ddf)
        t = est / se if se > 0 else np.nan
        q = float(stats.t.ppf(0.5 + level / 2, df))
        con_rows.append(
            (f"{_label(keys[i])} - {_label(keys[j])}", est, se, df, t, est - q * se, est + q * se)
        )
    contrasts = pd.DataFrame(
        con_rows, columns=["contrast", "estimate", "se", "df", "statistic", "ci_low", "ci_high"]
    )
    t_abs = contrasts["statistic"].abs().to_numpy()
    dfs = contrasts["df"].to_numpy()
    raw = 2 * stats.t.sf(t_abs, dfs)
    m = len(contrasts)
    if adjust == "none" or m <= 1:
        p = raw
    elif adjust == "bonferroni":
        p = np.minimum(raw * m, 1.0)
    elif adjust == "holm":
        order = np.argsort(raw)
        adj = np.maximum.accumulate((m - np.arange(m)) * raw[order])
        p = np.empty(m)
        p[order] = np.minimum(adj, 1.0)
    else:  # tukey: studentized range over the number of means, as emmeans
        k = len(keys)
        p = stats.studentized_range.sf(t_abs * np.sqrt(2.0), k, dfs)
    contrasts.insert(5, "p", p)
    label = [_label(k) for k in keys]
    params = pd.DataFrame(
        {
            "term": label,
            "estimate": means["estimate"],
            "se": means["se"],
            "df": means["df"],
            "statistic": means["estimate"] / means["se"],
            "p": 2 * stats.t.sf(np.abs(means["estimate"] / means["se"]), means["df"]),
            "ci_low": means["ci_low"],
            "ci_high": means["ci_high"],
        }
    )
    notes = []
    averaged = [v for v in variables if v not in specs and v in factors and len(values[v]) > 1]
    if averaged:
        notes.append(f"averaged over the levels of {', '.join(averaged)} (equal weights).")
    held = [v for v in variables if v not in factors and v not in specs and len(values[v]) == 1]
    if held:
        notes.append(
            "numeric variables held at "
            + ", ".join(f"{v} = {values[v][0]:.4g}" for v in held)
            + (" (their means)" if not set(held) & set(at) else "")
            + "."
        )
    inter = [
        v
        for v in specs
        if any(":" in str(c) and re.search(rf"\b{re.escape(v)}\b", str(c)) for c in mm.columns)
    ]
    if inter:
        notes.append(
            f"{', '.join(inter)} interact(s) with other variables: the means hold those at the "
            "grid values above and may mislead (as emmeans warns); consider at= or means by "
            "both variables."
        )
    if adjust == "tukey" and m > 1:
        notes.append(f"p values Tukey-adjusted for a family of {len(keys)} means.")
    return MarginalMeans(
        means=means,
        contrasts=contrasts,
        params=params,
        grid=grid,
        ddf=ddf,
        adjust=adjust,
        nobs=fit.nobs,
        excluded=fit.excluded,
        notes=notes,
        counts=fit.n.to_dict(),
    )
