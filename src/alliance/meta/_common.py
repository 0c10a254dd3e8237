"""Input handling shared by the meta-analysis modules (private to :mod:`alliance.meta`).

:func:`prepare` validates a study table, turns correlations into Fisher's z (or takes a
generic effect size with its variance), builds the moderator design and logs the rows
left out; :func:`set_r_scale`, :func:`params_frame` and :func:`pooled_frame` build the
result tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance._checks import format_rows, require_columns, require_frame
from alliance.meta import _core as core
from alliance.results import exclusion_log

__all__ = [
    "METHODS",
    "TESTS",
    "Prepared",
    "check_options",
    "formula_of",
    "params_frame",
    "pooled_frame",
    "prepare",
    "set_r_scale",
]

METHODS = core.TAU2_METHODS
TESTS = ("z", "knha")


# --------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------
@dataclass
class Prepared:
    frame: pd.DataFrame  # kept rows, original columns plus yi, vi
    measure: str  # "r" (Fisher z of correlations) or "generic"
    X: np.ndarray
    terms: list[str]
    model_spec: Any
    mods: str | None
    labels: np.ndarray
    excluded_rows: pd.DataFrame  # row, study, reason
    excluded: pd.DataFrame  # the exclusion log (reason, column, n_rows, n_clients)


def formula_of(mods: str | Sequence[str] | None) -> str | None:
    if mods is None:
        return None
    if isinstance(mods, str):
        text = mods.strip()
        return text if text.startswith("~") else "~ " + text
    mods = list(mods)
    if not mods:
        return None
    return "~ " + " + ".join(str(m) for m in mods)


def prepare(
    data: pd.DataFrame,
    *,
    r: str | None,
    n: str | None,
    yi: str | None,
    vi: str | None,
    sei: str | None,
    study: str | None,
    mods: str | Sequence[str] | None,
    extra: Sequence[str] = (),
) -> Prepared:
    data = require_frame(data)
    formula = formula_of(mods)
    if yi is not None:
        if vi is None and sei is None:
            raise ValueError(
                "yi= needs its sampling variances: pass vi='<variance column>' or "
                "sei='<standard error column>'"
            )
        require_columns(data, yi=yi, vi=vi, sei=sei, study=study)
        measure = "generic"
        value_cols = [yi, vi if vi is not None else sei]
    else:
        if r is None or n is None:
            raise ValueError(
                "name the effect sizes: r='<correlation column>' and n='<sample size column>' "
                "for correlations, or yi= and vi= for other effect sizes"
            )
        require_columns(data, r=r, n=n, study=study)
        measure = "r"
        value_cols = [r, n]
    mod_cols: list[str] = []
    if formula is not None:
        import formulaic

        try:
            mod_cols = sorted(formulaic.Formula(formula).required_variables)
        except Exception as err:  # formulaic raises several parser errors
            raise ValueError(
                f"could not read the moderator formula {formula!r} ({err}); write it as "
                "'~ rater + year' or pass a list of column names"
            ) from err
        require_columns(data, **{f"moderator {c!r}": c for c in mod_cols})
    for c in extra:
        if c is not None:
            require_columns(data, **{c: c})

    frame = data.reset_index(drop=True)
    check_cols = value_cols + mod_cols + [c for c in extra if c is not None]
    missing = frame[check_cols].isna()
    excluded_rows = missing.any(axis=1)
    reasons = missing.apply(
        lambda row: "missing " + ", ".join(c for c in check_cols if row[c]), axis=1
    )
    excluded = pd.DataFrame(
        {
            "row": np.flatnonzero(excluded_rows.to_numpy()),
            "study": (frame.loc[excluded_rows, study].to_numpy() if study else None),
            "reason": reasons[excluded_rows].to_numpy() if excluded_rows.any() else [],
        }
    )
    sizes = (
        pd.to_numeric(frame.loc[excluded_rows, n], errors="coerce")
        if measure == "r"
        else pd.Series(np.nan, index=frame.index[excluded_rows])
    )
    log_rows = []
    for reason, idx in excluded.groupby("reason", sort=False).groups.items():
        part = sizes.iloc[list(idx)]
        first = str(reason).removeprefix("missing ").split(", ")[0]
        log_rows.append(
            (
                str(reason),
                first,
                len(idx),
                int(part.sum()) if len(part) and part.notna().all() else None,
            )
        )
    log = exclusion_log(log_rows)
    kept = frame.loc[~excluded_rows].copy()

    if measure == "r":
        rv = pd.to_numeric(kept[r], errors="coerce").to_numpy(dtype=float)
        nv = pd.to_numeric(kept[n], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(rv) | (np.abs(rv) >= 1))
        if bad.size:
            raise ValueError(
                f"column {r!r} has {bad.size} values outside (-1, 1) "
                f"({format_rows(kept.index[bad])}); correlations must lie strictly between "
                "-1 and 1"
            )
        bad = np.flatnonzero(~np.isfinite(nv) | (nv <= 3))
        if bad.size:
            raise ValueError(
                f"column {n!r} has {bad.size} sample sizes of 3 or less "
                f"({format_rows(kept.index[bad])}); Fisher's z needs n > 3 (its variance is "
                "1 / (n - 3)); drop those studies or pass yi= and vi= yourself"
            )
        kept["yi"] = np.arctanh(rv)
        kept["vi"] = 1.0 / (nv - 3.0)
    else:
        y = pd.to_numeric(kept[yi], errors="coerce").to_numpy(dtype=float)
        if vi is not None:
            v = pd.to_numeric(kept[vi], errors="coerce").to_numpy(dtype=float)
            vname = vi
        else:
            v = pd.to_numeric(kept[sei], errors="coerce").to_numpy(dtype=float) ** 2
            vname = sei
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ValueError(
                f"column {yi!r} has non-numeric values ({format_rows(kept.index[bad])}); "
                "effect sizes must be numbers"
            )
        bad = np.flatnonzero(~np.isfinite(v) | (v <= 0))
        if bad.size:
            raise ValueError(
                f"column {vname!r} has {bad.size} values that are not positive "
                f"({format_rows(kept.index[bad])}); sampling variances (and standard errors) "
                "must be > 0"
            )
        kept["yi"] = y
        kept["vi"] = v
    k = len(kept)
    if k < 2:
        raise ValueError(
            f"a meta-analysis needs at least 2 effects with complete data; found {k} "
            f"({len(excluded)} rows excluded, see the reasons with missing values)"
        )
    if formula is None:
        X = np.ones((k, 1))
        terms = ["intercept"]
        spec = None
    else:
        import formulaic

        mm = formulaic.model_matrix(formula, kept)
        X = np.asarray(mm, dtype=float)
        terms = ["intercept" if c == "Intercept" else str(c) for c in mm.columns]
        spec = mm.model_spec
        rank = np.linalg.matrix_rank(X)
        if rank < X.shape[1]:
            raise ValueError(
                f"the moderators in {formula!r} are collinear (design rank {rank} < "
                f"{X.shape[1]} columns); drop a moderator or merge sparse categories"
            )
        if X.shape[1] >= k:
            raise ValueError(
                f"{X.shape[1]} coefficients cannot be estimated from {k} effects; use fewer "
                "moderators"
            )
    labels = (
        kept[study].astype(str).to_numpy()
        if study is not None
        else np.array([f"{i + 1}" for i in kept.index])
    )
    return Prepared(kept, measure, X, terms, spec, formula, labels, excluded, log)


def check_options(method: str, test: str, level: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if test not in TESTS:
        raise ValueError(
            f"test must be 'z' (normal) or 'knha' (Knapp-Hartung, t with k - p df), not {test!r}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}")


def set_r_scale(result) -> None:
    """Back-transform a Fisher-z pooled estimate and its intervals to r (None otherwise)."""
    if result.measure == "r":
        result.z = result.estimate
        result.r = float(np.tanh(result.estimate))
        result.r_ci_low, result.r_ci_high = np.tanh(result.ci_low), np.tanh(result.ci_high)
        result.r_pi_low, result.r_pi_high = np.tanh(result.pi_low), np.tanh(result.pi_high)
    else:
        result.z = result.r = None
        result.r_ci_low = result.r_ci_high = result.r_pi_low = result.r_pi_high = None


def params_frame(terms, fit) -> pd.DataFrame:
    """The coefficient table of a fitted (multilevel) meta-analytic model."""
    return pd.DataFrame(
        {
            "term": terms,
            "estimate": fit.beta,
            "se": fit.se,
            "statistic": fit.stat,
            "df": fit.ddf,
            "p": fit.pval,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
        }
    )


def pooled_frame(result, common: dict[str, Any]) -> pd.DataFrame:
    """The pooled estimate on the analysis scale, and on the r scale for correlations."""
    rows = [
        {
            "scale": "z" if result.measure == "r" else "yi",
            "estimate": result.estimate,
            "se": result.se,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "pi_low": result.pi_low,
            "pi_high": result.pi_high,
            **common,
        }
    ]
    if result.measure == "r":
        rows.append(
            {
                "scale": "r",
                "estimate": result.r,
                "se": np.nan,
                "ci_low": result.r_ci_low,
                "ci_high": result.r_ci_high,
                "pi_low": result.r_pi_low,
                "pi_high": result.r_pi_high,
                **common,
            }
        )
    return pd.DataFrame(rows)
