"""Random-effects meta-analysis of alliance-outcome effects.

The alliance-outcome link is known through meta-analyses (Flückiger et al., 2018:
r = .278 over 295 studies). This module pools correlations (through Fisher's z) or any
effect size with a known sampling variance (``yi``, ``vi``), so that the usual analyses
no longer need R's metafor:

* :func:`meta_analysis` -- fixed-effect and random-effects models with the REML, ML,
  DL, PM, HE and SJ estimators of tau^2, the Knapp-Hartung adjustment, Q-profile
  confidence intervals for tau^2 / I^2 / H^2, and prediction intervals
  (``metafor::rma.uni``, ``confint``, ``predict``).
* :func:`meta_regression` -- the same with moderators (``rma.uni(mods = ~ ...)``).
* :func:`multilevel_meta_analysis` -- effects nested in studies, a three-level model
  (``rma.mv(random = ~ 1 | study/effect)``).
* :func:`cluster_robust` -- cluster-robust (RVE) standard errors with the CR2
  small-sample correction and Satterthwaite degrees of freedom (clubSandwich).
* :func:`egger_test`, :func:`trim_and_fill`, :func:`leave_one_out`, :func:`influence`
  -- small-study and sensitivity tools (``regtest``, ``trimfill``, ``leave1out``,
  ``influence``).
* :func:`two_stage_ipd` -- per-site (or per-therapist) alliance-outcome correlations
  from session-level data, then pooled (two-stage individual-participant meta-analysis).
* :func:`example_studies` -- a bundled, **synthetic** table of study-level
  alliance-outcome correlations.

Forest and funnel plots live in :mod:`alliance.plots.meta`. Agreement with metafor is
checked against committed reference values (``tests/reference/metafor_reference.R``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance import _meta_core as core
from alliance._checks import format_rows, require_columns, require_frame

__all__ = [
    "MetaResult",
    "MultilevelMetaResult",
    "TrimFillResult",
    "cluster_robust",
    "egger_test",
    "example_studies",
    "influence",
    "leave_one_out",
    "meta_analysis",
    "meta_regression",
    "multilevel_meta_analysis",
    "trim_and_fill",
    "two_stage_ipd",
]

METHODS = core.TAU2_METHODS
_TESTS = ("z", "knha")


# --------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    frame: pd.DataFrame  # kept rows, original columns plus yi, vi
    measure: str  # "r" (Fisher z of correlations) or "generic"
    X: np.ndarray
    terms: list[str]
    model_spec: Any
    mods: str | None
    labels: np.ndarray
    excluded: pd.DataFrame


def _formula(mods: str | Sequence[str] | None) -> str | None:
    if mods is None:
        return None
    if isinstance(mods, str):
        text = mods.strip()
        return text if text.startswith("~") else "~ " + text
    mods = list(mods)
    if not mods:
        return None
    return "~ " + " + ".join(str(m) for m in mods)


def _prepare(
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
) -> _Prepared:
    data = require_frame(data)
    formula = _formula(mods)
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
    return _Prepared(kept, measure, X, terms, spec, formula, labels, excluded)


def _check_options(method: str, test: str, level: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if test not in _TESTS:
        raise ValueError(
            f"test must be 'z' (normal) or 'knha' (Knapp-Hartung, t with k - p df), not {test!r}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}")


def _set_r_scale(result) -> None:
    """Back-transform a Fisher-z pooled estimate and its intervals to r (None otherwise)."""
    if result.measure == "r":
        result.z = result.estimate
        result.r = float(np.tanh(result.estimate))
        result.r_ci_low, result.r_ci_high = np.tanh(result.ci_low), np.tanh(result.ci_high)
        result.r_pi_low, result.r_pi_high = np.tanh(result.pi_low), np.tanh(result.pi_high)
    else:
        result.z = result.r = None
        result.r_ci_low = result.r_ci_high = result.r_pi_low = result.r_pi_high = None


def _params_frame(terms, fit) -> pd.DataFrame:
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


def _pooled_frame(result, common: dict[str, Any]) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
class MetaResult:
    """Result of :func:`meta_analysis` / :func:`meta_regression`.

    Attributes
    ----------
    estimate, se, ci_low, ci_high, pi_low, pi_high : float
        Pooled estimate on the model scale (Fisher's z for correlations), its standard
        error, confidence interval and prediction interval. NaN for models with moderators
        (use :attr:`params` and :meth:`predict`).
    z : float or None
        The pooled estimate on Fisher's z scale (correlations only, else None).
    r : float or None
        The pooled correlation, ``tanh(z)`` (correlations only). ``r_ci_low``,
        ``r_ci_high``, ``r_pi_low`` and ``r_pi_high`` are its intervals.
    tau2, tau, se_tau2 : float
        Between-study (residual) variance, its square root and its standard error.
    I2, H2 : float
        I^2 in percent and H^2.
    Q, Q_df, Q_p : float
        Cochran's Q (the test for residual heterogeneity with moderators), df and p.
    QM, QM_df, QM_p : float
        Omnibus test of the moderators (of the intercept when there are none).
    R2 : float
        Percent of heterogeneity accounted for by the moderators (NaN without them).
    k : int
        Number of effects.
    params : pandas.DataFrame
        One row per coefficient: term, estimate, se, statistic, df, p, ci_low, ci_high.
    heterogeneity : pandas.DataFrame
        tau2, tau, I2, H2 with Q-profile confidence intervals.
    data : pandas.DataFrame
        The analysed rows with ``yi``, ``vi``, ``sei`` and ``weight`` (percent) added.
    excluded : pandas.DataFrame
        Rows left out (row, study, reason).
    """

    def __init__(self, fit: core.UniFit, prep: _Prepared, *, study: str | None):
        self._fit = fit
        self._prep = prep
        self.study = study
        self.measure = prep.measure
        self.method = fit.method
        self.test = fit.test
        self.level = fit.level
        self.mods = prep.mods
        self.terms = list(prep.terms)
        self.k = fit.k
        self.p = fit.p
        self.tau2 = float(fit.tau2)
        self.tau = math.sqrt(self.tau2)
        self.se_tau2 = float(fit.se_tau2)
        self.I2 = float(fit.I2)
        self.H2 = float(fit.H2)
        self.Q = float(fit.QE)
        self.Q_df = fit.k - fit.p
        self.Q_p = float(fit.QEp)
        self.QM = float(fit.QM)
        self.QM_df = fit.QMdf
        self.QM_p = float(fit.QMp)
        self.df = fit.ddf
        self.excluded = prep.excluded
        w = 1.0 / (fit.vi + fit.tau2)
        frame = prep.frame.copy()
        frame["sei"] = np.sqrt(frame["vi"])
        frame["weight"] = 100 * w / w.sum()
        self.data = frame
        self.labels = prep.labels
        self.params = _params_frame(self.terms, fit)
        self.intercept_only = fit.p == 1 and prep.mods is None
        if self.intercept_only:
            pred = core.predict_uni(fit)
            self.estimate = pred["pred"]
            self.se = pred["se"]
            self.ci_low, self.ci_high = pred["ci_low"], pred["ci_high"]
            self.pi_low, self.pi_high = pred["pi_low"], pred["pi_high"]
            if self.method == "FE":
                self.pi_low, self.pi_high = self.ci_low, self.ci_high
        else:
            self.estimate = self.se = self.ci_low = self.ci_high = np.nan
            self.pi_low = self.pi_high = np.nan
        _set_r_scale(self)
        self.R2 = np.nan
        if not self.intercept_only and self.method == "FE":
            # adjusted R^2 of the weighted regression (as metafor for fixed-effects models)
            base = core.fit_uni(fit.y, fit.vi, None, method="FE")
            if base.QE > 0:
                adj = 1 - (fit.QE / (fit.k - fit.p)) / (base.QE / (fit.k - 1))
                self.R2 = max(0.0, 100 * adj)
            else:
                self.R2 = 0.0
        if not self.intercept_only and self.method != "FE":
            base = core.fit_uni(fit.y, fit.vi, None, method=self.method, test="z")
            if base.tau2 > 0:
                self.R2 = max(0.0, 100 * (base.tau2 - self.tau2) / base.tau2)
            else:
                self.R2 = 0.0
        self.loglik = fit.ll_reml if self.method == "REML" else fit.ll_ml
        self._heterogeneity: pd.DataFrame | None = None

    # ---- derived tables --------------------------------------------------------------
    @property
    def heterogeneity(self) -> pd.DataFrame:
        """tau2, tau, I2 (%) and H2 with Q-profile confidence intervals.

        The interval for tau^2 inverts the generalized Q statistic (Viechtbauer, 2007),
        as ``confint.rma.uni``; those for I^2 and H^2 are its transformations.
        """
        if self._heterogeneity is None:
            if self.method == "FE":
                lb = ub = np.nan
            else:
                lb, ub = core.qprofile_tau2(self._fit)
            vt = self._fit.vt

            def i2(t):
                return 100 * t / (vt + t)

            def h2(t):
                return t / vt + 1

            self._heterogeneity = pd.DataFrame(
                {
                    "parameter": ["tau2", "tau", "I2", "H2"],
                    "estimate": [self.tau2, self.tau, self.I2, self.H2],
                    "ci_low": [lb, math.sqrt(lb) if lb == lb else lb, i2(lb), h2(lb)],
                    "ci_high": [ub, math.sqrt(ub) if ub == ub else ub, i2(ub), h2(ub)],
                }
            )
        return self._heterogeneity.copy()

    def predict(self, newdata: pd.DataFrame | None = None) -> pd.DataFrame:
        """Predicted effects with confidence and prediction intervals (``predict.rma``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Moderator values, one row per prediction. Required for models with moderators;
            without moderators the pooled estimate is returned.

        Returns
        -------
        pandas.DataFrame
            estimate, se, ci_low, ci_high, pi_low, pi_high (model scale), plus ``r``,
            ``r_ci_low``, ... (back-transformed) for correlations.
        """
        if self._prep.model_spec is None:
            Xn = np.ones((1 if newdata is None else len(newdata), 1))
        else:
            if newdata is None:
                raise ValueError(
                    "this model has moderators; pass newdata= with a row per prediction and "
                    f"the columns {', '.join(self._prep.model_spec.required_variables)}"
                )
            Xn = np.asarray(self._prep.model_spec.get_model_matrix(newdata), dtype=float)
        rows = [core.predict_uni(self._fit, x) for x in Xn]
        out = pd.DataFrame(rows).rename(columns={"pred": "estimate"})
        if self.method == "FE":
            out["pi_low"], out["pi_high"] = out["ci_low"], out["ci_high"]
        if self.measure == "r":
            for c in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
                name = "r" if c == "estimate" else "r_" + c
                out[name] = np.tanh(out[c])
        return out

    def to_frame(self) -> pd.DataFrame:
        """The result as a tidy table.

        Without moderators: one row per scale (``z`` and ``r`` for correlations, ``yi``
        otherwise) with estimate, se, ci_low, ci_high, pi_low, pi_high, k, tau2, tau, I2,
        H2, Q, Q_df, Q_p, method, test. With moderators: :attr:`params` with the
        heterogeneity statistics as extra columns.
        """
        common = {
            "k": self.k,
            "tau2": self.tau2,
            "tau": self.tau,
            "I2": self.I2,
            "H2": self.H2,
            "Q": self.Q,
            "Q_df": self.Q_df,
            "Q_p": self.Q_p,
            "method": self.method,
            "test": self.test,
        }
        if not self.intercept_only:
            out = self.params.copy()
            for key, val in common.items():
                out[key] = val
            out["R2"] = self.R2
            return out
        return _pooled_frame(self, common)

    def summary(self) -> str:
        """A plain-text summary (like printing a metafor model)."""
        kind = "Fixed-effect" if self.method == "FE" else "Random-effects"
        if not self.intercept_only:
            kind = "Mixed-effects" if self.method != "FE" else "Fixed-effects with moderators"
        lines = [
            f"{kind} meta-analysis (k = {self.k}; tau^2 estimator: {self.method}; "
            f"test: {self.test})",
        ]
        if self.method != "FE":
            het = self.heterogeneity.set_index("parameter")
            lines.append(
                f"tau^2 = {self.tau2:.4f} [{het.loc['tau2', 'ci_low']:.4f}, "
                f"{het.loc['tau2', 'ci_high']:.4f}], I^2 = {self.I2:.1f}%, H^2 = {self.H2:.2f}"
            )
        lines.append(f"Q({self.Q_df}) = {self.Q:.3f}, p = {self.Q_p:.4g}")
        if self.intercept_only:
            lines.append(
                f"estimate = {self.estimate:.4f} (SE {self.se:.4f}), "
                f"{100 * self.level:g}% CI [{self.ci_low:.4f}, {self.ci_high:.4f}], "
                f"PI [{self.pi_low:.4f}, {self.pi_high:.4f}]"
            )
            if self.measure == "r":
                lines.append(
                    f"r = {self.r:.3f}, CI [{self.r_ci_low:.3f}, {self.r_ci_high:.3f}], "
                    f"PI [{self.r_pi_low:.3f}, {self.r_pi_high:.3f}]"
                )
        else:
            lines.append(f"QM = {self.QM:.3f}, p = {self.QM_p:.4g}; R^2 = {self.R2:.1f}%")
            lines.append(self.params.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if len(self.excluded):
            lines.append(f"{len(self.excluded)} rows excluded (see .excluded)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def meta_analysis(
    data: pd.DataFrame,
    r: str | None = "r",
    n: str | None = "n",
    study: str | None = "study",
    *,
    yi: str | None = None,
    vi: str | None = None,
    sei: str | None = None,
    mods: str | Sequence[str] | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
) -> MetaResult:
    """Fixed-effect or random-effects meta-analysis (as ``metafor::rma.uni``).

    Correlations are pooled on Fisher's z scale (``z = atanh(r)``, ``v = 1 / (n - 3)``)
    and transformed back; any other effect size is pooled as given (``yi``, ``vi``).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per effect (study).
    r, n : str
        Columns with the correlation and the sample size. Ignored when ``yi`` is given.
    study : str or None
        Column with study labels (``None``: number the rows).
    yi, vi, sei : str, optional
        Columns with a generic effect size (e.g. a standardized mean difference) and its
        sampling variance (or standard error).
    mods : str or list of str, optional
        Moderators, as a formula (``"~ rater + year"``) or column names. Categorical
        columns are dummy coded against their first level (sorted). See
        :func:`meta_regression`.
    method : {"REML", "ML", "DL", "PM", "HE", "SJ", "FE"}
        Estimator of tau^2: restricted maximum likelihood (default), maximum likelihood,
        DerSimonian-Laird, Paule-Mandel, Hedges, Sidik-Jonkman; "FE" fits the
        fixed-effect (common-effect) model.
    test : {"z", "knha"}
        Normal-theory tests and intervals, or the Knapp-Hartung (Hartung-Knapp-Sidik-
        Jonkman) adjustment with t on k - p df, which also widens the prediction interval.
    level : float
        Confidence level of all intervals.

    Returns
    -------
    MetaResult
        ``.to_frame()`` gives the pooled estimate on both scales; attributes ``z``,
        ``r``, ``se``, ``ci_low``, ``ci_high``, ``pi_low``, ``pi_high``, ``tau2``, ``I2``
        (percent), ``Q``, ``k``; ``.heterogeneity`` adds Q-profile CIs.

    Notes
    -----
    I^2 = 100 tau^2 / (tau^2 + s^2) with the "typical" within-study variance
    s^2 = (k - p) / tr(P) (Higgins & Thompson, 2002), as metafor. The prediction interval
    is estimate +/- crit * sqrt(se^2 + tau^2) with crit from the normal (``test="z"``)
    or t(k - p) distribution (``test="knha"``).

    Rows with missing values are left out and listed in ``.excluded``; impossible values
    (``|r| >= 1``, ``n <= 3``, ``vi <= 0``) raise ``ValueError``.

    References
    ----------
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
    Journal of Statistical Software, 36(3). Flückiger, C., Del Re, A. C., Wampold, B. E.,
    & Horvath, A. O. (2018). The alliance in adult psychotherapy: A meta-analytic
    synthesis. Psychotherapy, 55(4), 316-340.

    Examples
    --------
    >>> from alliance import meta
    >>> studies = meta.example_studies()
    >>> res = meta.meta_analysis(studies, r="r", n="n", study="study")
    >>> round(res.r, 3), res.k
    (0.289, 60)
    >>> round(res.I2, 1)
    58.1
    >>> res.to_frame()[["scale", "estimate", "ci_low", "ci_high"]].round(3)
      scale  estimate  ci_low  ci_high
    0     z     0.298   0.255    0.341
    1     r     0.289   0.249    0.328
    """
    _check_options(method, test, level)
    prep = _prepare(data, r=r, n=n, yi=yi, vi=vi, sei=sei, study=study, mods=mods)
    fit = core.fit_uni(
        prep.frame["yi"].to_numpy(),
        prep.frame["vi"].to_numpy(),
        prep.X,
        method=method,
        test=test,
        level=level,
    )
    return MetaResult(fit, prep, study=study)


def meta_regression(
    data: pd.DataFrame,
    mods: str | Sequence[str],
    r: str | None = "r",
    n: str | None = "n",
    study: str | None = "study",
    *,
    yi: str | None = None,
    vi: str | None = None,
    sei: str | None = None,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
) -> MetaResult:
    """Mixed-effects meta-regression (as ``rma.uni(yi, vi, mods = ~ ...)``).

    Same as :func:`meta_analysis` with moderators, but the Knapp-Hartung adjustment is
    the default (``test="knha"``), as recommended for meta-regression.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per effect.
    mods : str or list of str
        Formula (``"~ rater + treatment"``) or column names.
    r, n, study, yi, vi, sei, method, test, level
        As in :func:`meta_analysis`.

    Returns
    -------
    MetaResult
        ``.params`` has the coefficients; ``QM``/``QM_p`` the omnibus moderator test
        (an F test under Knapp-Hartung); ``tau2`` is the residual heterogeneity and
        ``R2`` the percent of heterogeneity accounted for.

    Examples
    --------
    >>> from alliance import meta
    >>> res = meta.meta_regression(meta.example_studies(), mods="~ rater")
    >>> res.params["term"].tolist()
    ['intercept', 'rater[T.observer]', 'rater[T.therapist]']
    >>> res.QM_df
    (2, 57)
    """
    if _formula(mods) is None:
        raise ValueError("meta_regression needs moderators: mods='~ rater' or mods=['rater']")
    return meta_analysis(
        data,
        r=r,
        n=n,
        study=study,
        yi=yi,
        vi=vi,
        sei=sei,
        mods=mods,
        method=method,
        test=test,
        level=level,
    )


# --------------------------------------------------------------------------------------
# multilevel (three-level) model
# --------------------------------------------------------------------------------------
class MultilevelMetaResult:
    """Result of :func:`multilevel_meta_analysis`.

    Attributes
    ----------
    sigma2 : pandas.Series
        Variance components by level (between studies, within studies).
    tau2 : float
        Total heterogeneity, the sum of ``sigma2``.
    I2 : pandas.Series
        I^2 (percent) by level and in total (Cheung, 2014), with the typical sampling
        variance defined as in :func:`meta_analysis`.
    estimate, z, r, se, ci_low, ci_high, pi_low, pi_high, Q, Q_df, Q_p, k, params, data
        As in :class:`MetaResult`.
    n_studies : int
        Number of top-level clusters.
    """

    def __init__(self, fit: core.MvFit, prep: _Prepared, levels: list[str]):
        self._fit = fit
        self._prep = prep
        self.levels = levels
        self.study = levels[0]
        self.measure = prep.measure
        self.method = fit.method
        self.test = fit.test
        self.level = fit.level
        self.mods = prep.mods
        self.terms = list(prep.terms)
        self.k = fit.k
        self.p = fit.p
        self.n_studies = int(fit.Z[0].shape[1])
        self.sigma2 = pd.Series(fit.sigma2, index=levels, name="sigma2")
        self.tau2 = float(np.sum(fit.sigma2))
        self.I2 = pd.Series(fit.I2, index=[*levels, "total"], name="I2")
        self.Q = float(fit.QE)
        self.Q_df = fit.k - fit.p
        self.Q_p = float(fit.QEp)
        self.QM, self.QM_df, self.QM_p = float(fit.QM), fit.QMdf, float(fit.QMp)
        self.loglik = float(fit.ll)
        self.excluded = prep.excluded
        self.data = prep.frame.copy()
        self.data["sei"] = np.sqrt(self.data["vi"])
        self.labels = prep.labels
        self.params = _params_frame(self.terms, fit)
        self.intercept_only = prep.mods is None
        if self.intercept_only:
            est, se, crit = float(fit.beta[0]), float(fit.se[0]), fit.crit
            self.estimate, self.se = est, se
            self.ci_low, self.ci_high = est - crit * se, est + crit * se
            half = crit * math.sqrt(se**2 + self.tau2)
            self.pi_low, self.pi_high = est - half, est + half
        else:
            self.estimate = self.se = self.ci_low = self.ci_high = np.nan
            self.pi_low = self.pi_high = np.nan
        _set_r_scale(self)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: as :meth:`MetaResult.to_frame`, with one sigma2 column per level."""
        common: dict[str, Any] = {"k": self.k, "n_studies": self.n_studies}
        for lev, val in self.sigma2.items():
            common[f"sigma2_{lev}"] = val
        common.update(
            {
                "tau2": self.tau2,
                "I2": float(self.I2["total"]),
                "Q": self.Q,
                "Q_df": self.Q_df,
                "Q_p": self.Q_p,
                "method": self.method,
                "test": self.test,
            }
        )
        if not self.intercept_only:
            out = self.params.copy()
            for key, val in common.items():
                out[key] = val
            return out
        return _pooled_frame(self, common)

    def summary(self) -> str:
        """A plain-text summary."""
        comps = ", ".join(f"sigma2[{k}] = {v:.4f}" for k, v in self.sigma2.items())
        lines = [
            f"Multilevel meta-analysis (k = {self.k} effects in {self.n_studies} "
            f"{self.study} clusters; {self.method}; test: {self.test})",
            f"{comps}; I^2 total = {self.I2['total']:.1f}%",
            f"Q({self.Q_df}) = {self.Q:.3f}, p = {self.Q_p:.4g}",
            self.params.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _indicator(codes: np.ndarray) -> np.ndarray:
    _, inv = np.unique(codes, return_inverse=True)
    Z = np.zeros((len(codes), inv.max() + 1))
    Z[np.arange(len(codes)), inv] = 1.0
    return Z


def multilevel_meta_analysis(
    data: pd.DataFrame,
    r: str | None = "r",
    n: str | None = "n",
    study: str = "study",
    effect: str | None = None,
    *,
    yi: str | None = None,
    vi: str | None = None,
    sei: str | None = None,
    mods: str | Sequence[str] | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
) -> MultilevelMetaResult:
    """Three-level meta-analysis: effects nested in studies (``rma.mv``).

    Fits ``y_ij = x_ij' b + u_i + w_ij + e_ij`` with ``u_i ~ N(0, sigma2_study)``,
    ``w_ij ~ N(0, sigma2_effect)`` and known sampling variances, as
    ``metafor::rma.mv(yi, vi, random = ~ 1 | study/effect)``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per effect; several rows may share a study.
    r, n, yi, vi, sei, mods, level
        As in :func:`meta_analysis`.
    study : str
        Column identifying the study (the upper level).
    effect : str, optional
        Column identifying the effect within its study; by default each row is its own
        effect.
    method : {"REML", "ML"}
        Estimation of the variance components.
    test : {"z", "t"}
        Normal tests, or t tests with k - p df (metafor's ``test="t"``). For small
        numbers of studies prefer :func:`cluster_robust` (CR2).

    Returns
    -------
    MultilevelMetaResult

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance import meta
    >>> studies = meta.example_studies()
    >>> # two alliance measures per study: pretend each study reported the effect twice
    >>> long = pd.concat([studies.assign(effect=1), studies.assign(effect=2)])
    >>> res = meta.multilevel_meta_analysis(long, study="study", effect="effect")
    >>> res.n_studies, res.k
    (60, 120)
    """
    if method not in ("REML", "ML"):
        raise ValueError(f"method must be 'REML' or 'ML' for a multilevel model, not {method!r}")
    if test not in ("z", "t"):
        raise ValueError(f"test must be 'z' or 't' for a multilevel model, not {test!r}")
    if study is None:
        raise ValueError("name the study column: study='<column>'")
    prep = _prepare(data, r=r, n=n, yi=yi, vi=vi, sei=sei, study=study, mods=mods, extra=[effect])
    frame = prep.frame
    top = frame[study].astype(str).to_numpy()
    inner = (
        frame[effect].astype(str).to_numpy()
        if effect is not None
        else np.arange(len(frame)).astype(str)
    )
    nested = np.char.add(np.char.add(top, "\x1f"), inner)
    if len(np.unique(nested)) < len(nested):
        dup = pd.Series(nested).duplicated(keep=False).to_numpy()
        raise ValueError(
            f"{dup.sum()} rows share a {study!r} x {effect!r} combination "
            f"({format_rows(frame.index[dup])}); each effect must be identified uniquely "
            "within its study"
        )
    Z = [_indicator(top), _indicator(nested)]
    fit = core.fit_mv(
        frame["yi"].to_numpy(),
        frame["vi"].to_numpy(),
        prep.X,
        Z,
        method=method,
        test=test,
        level=level,
    )
    return MultilevelMetaResult(fit, prep, [study, effect or "effect"])


# --------------------------------------------------------------------------------------
# cluster-robust inference
# --------------------------------------------------------------------------------------
def cluster_robust(
    result: MetaResult | MultilevelMetaResult, cluster: str | None = None, *, level: float = 0.95
) -> pd.DataFrame:
    """Cluster-robust (RVE) tests with the CR2 correction and Satterthwaite df.

    The bias-reduced linearization estimator (Bell & McCaffrey, 2002; Pustejovsky &
    Tipton, 2018) with the model's inverse-variance weights, as
    ``clubSandwich::coef_test(fit, vcov = "CR2", cluster = ...)``.

    Parameters
    ----------
    result : MetaResult or MultilevelMetaResult
        A fitted model.
    cluster : str, optional
        Column of ``result.data`` with the clusters (e.g. study, lab, sample). Defaults
        to the study column.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        term, estimate, se, statistic, df (Satterthwaite), p, ci_low, ci_high, clusters.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance import meta
    >>> studies = meta.example_studies()
    >>> long = pd.concat([studies.assign(effect=1), studies.assign(effect=2)])
    >>> res = meta.multilevel_meta_analysis(long, study="study", effect="effect")
    >>> rob = meta.cluster_robust(res)
    >>> rob[["term", "clusters"]]
            term  clusters
    0  intercept        60
    """
    if not isinstance(result, MetaResult | MultilevelMetaResult):
        raise TypeError("result must come from meta_analysis or multilevel_meta_analysis")
    cluster = cluster or result.study
    if cluster is None:
        raise ValueError("name the clustering column: cluster='<column of result.data>'")
    require_columns(result.data, table="result.data", cluster=cluster)
    fit = result._fit
    if isinstance(result, MultilevelMetaResult):
        V = fit.V
        cl = result.data[cluster].astype(str).to_numpy()
        top = result.data[result.study].astype(str).to_numpy()
        # random effects must be nested in the clusters
        per_study = pd.Series(cl).groupby(top).nunique()
        if (per_study > 1).any():
            raise ValueError(
                f"the {result.study!r} random effects are not nested in {cluster!r}: "
                f"{int((per_study > 1).sum())} studies span several clusters; cluster by "
                f"{result.study!r} or a coarser grouping"
            )
    else:
        V = np.diag(fit.vi + fit.tau2)
        cl = result.data[cluster].astype(str).to_numpy()
    out = core.cr2(fit.y, fit.X, V, fit.beta, cl)
    se = np.sqrt(np.diag(out["vcov"]))
    stat = fit.beta / se
    df = out["df"]
    crit = stats.t.isf((1 - level) / 2, df)
    return pd.DataFrame(
        {
            "term": result.terms,
            "estimate": fit.beta,
            "se": se,
            "statistic": stat,
            "df": df,
            "p": 2 * stats.t.sf(np.abs(stat), df),
            "ci_low": fit.beta - crit * se,
            "ci_high": fit.beta + crit * se,
            "clusters": out["clusters"],
        }
    )


# --------------------------------------------------------------------------------------
# small-study effects and sensitivity
# --------------------------------------------------------------------------------------
def _require_uni(result: Any, what: str) -> MetaResult:
    if not isinstance(result, MetaResult):
        raise TypeError(f"{what} needs a result of meta_analysis(), not {type(result).__name__}")
    return result


def egger_test(result: MetaResult, *, model: str = "rma", predictor: str = "sei") -> pd.DataFrame:
    """Egger's regression test for funnel-plot asymmetry (``metafor::regtest``).

    Parameters
    ----------
    result : MetaResult
        A fitted model (moderators are kept, and the predictor is added to them).
    model : {"rma", "lm"}
        ``"rma"``: a meta-regression with the model's tau^2 estimator and test (metafor's
        default). ``"lm"``: the classical weighted regression of Egger et al. (1997), with
        a multiplicative dispersion and a t test.
    predictor : {"sei", "vi"}
        Standard error (Egger) or sampling variance (a PET-PEESE-style variant).

    Returns
    -------
    pandas.DataFrame
        One row: model, predictor, statistic, df, p, and the limit estimate (the
        intercept: the expected effect as the standard error goes to 0) with its CI.

    Examples
    --------
    >>> from alliance import meta
    >>> res = meta.meta_analysis(meta.example_studies())
    >>> eg = meta.egger_test(res)
    >>> eg[["model", "predictor"]].iloc[0].tolist()
    ['rma', 'sei']
    """
    result = _require_uni(result, "egger_test")
    if model not in ("rma", "lm"):
        raise ValueError(f"model must be 'rma' or 'lm', not {model!r}")
    if predictor not in ("sei", "vi"):
        raise ValueError(f"predictor must be 'sei' or 'vi', not {predictor!r}")
    fit = result._fit
    pred = np.sqrt(fit.vi) if predictor == "sei" else fit.vi
    X = np.column_stack([fit.X, pred])
    j = X.shape[1] - 1
    if model == "rma":
        eg = core.fit_uni(
            fit.y,
            fit.vi,
            X,
            method=result.method,
            test=result.test,
            level=result.level,
            btt=np.array([j]),
        )
        stat, p, df = eg.stat[j], eg.pval[j], eg.ddf
        limit, lo, hi = eg.beta[0], eg.ci_low[0], eg.ci_high[0]
    else:
        eg = core.fit_uni(fit.y, fit.vi, X, method="FE", test="knha", level=result.level)
        stat, p, df = eg.stat[j], eg.pval[j], eg.ddf
        limit, lo, hi = eg.beta[0], eg.ci_low[0], eg.ci_high[0]
    return pd.DataFrame(
        [
            {
                "model": model,
                "predictor": predictor,
                "statistic": float(stat),
                "df": float(df),
                "p": float(p),
                "limit": float(limit),
                "limit_ci_low": float(lo),
                "limit_ci_high": float(hi),
            }
        ]
    )


@dataclass
class TrimFillResult:
    """Result of :func:`trim_and_fill`.

    Attributes
    ----------
    k0 : int
        Estimated number of missing studies.
    se_k0 : float
        Its standard error.
    side : str
        Side of the funnel on which studies were imputed ("left" or "right").
    estimator : str
        "L0" or "R0".
    filled : pandas.DataFrame
        The imputed effects (yi, vi, sei).
    result : MetaResult
        The model refitted to observed plus imputed effects.
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    filled: pd.DataFrame
    result: MetaResult

    def to_frame(self) -> pd.DataFrame:
        """The adjusted pooled estimate with k0 and side columns."""
        out = self.result.to_frame()
        out["k0"] = self.k0
        out["side"] = self.side
        return out


def trim_and_fill(
    result: MetaResult, *, estimator: str = "L0", side: str | None = None, maxiter: int = 100
) -> TrimFillResult:
    """Duval and Tweedie's trim-and-fill method (``metafor::trimfill``).

    Parameters
    ----------
    result : MetaResult
        A model without moderators.
    estimator : {"L0", "R0"}
        Estimator of the number of missing studies.
    side : {"left", "right"}, optional
        Where studies are missing; by default chosen from the sign of Egger's slope (as
        metafor).
    maxiter : int
        Iteration limit.

    Returns
    -------
    TrimFillResult

    Notes
    -----
    Trim-and-fill is a sensitivity analysis, not a correction: it assumes the asymmetry
    is caused by suppressed studies.

    Examples
    --------
    >>> from alliance import meta
    >>> tf = meta.trim_and_fill(meta.meta_analysis(meta.example_studies()))
    >>> tf.k0 >= 0
    True
    """
    result = _require_uni(result, "trim_and_fill")
    if not result.intercept_only:
        raise ValueError("trim-and-fill only applies to models without moderators")
    if estimator not in ("L0", "R0"):
        raise ValueError(f"estimator must be 'L0' or 'R0', not {estimator!r}")
    fit = result._fit
    y0, v0 = fit.y, fit.vi
    method = result.method
    if side is None:
        sj = core.fit_uni(y0, v0, np.column_stack([np.ones_like(y0), np.sqrt(v0)]), method=method)
        side = "right" if sj.beta[1] < 0 else "left"
    elif side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    yy = -y0 if side == "right" else y0.copy()
    order = np.argsort(yy, kind="stable")
    yy, vv = yy[order], v0[order]
    k = len(yy)
    k0, k0_old, it = 0, -1, 0
    se_k0 = np.nan
    beta = np.nan
    while k0 != k0_old:
        k0_old = k0
        it += 1
        if it > maxiter:
            raise RuntimeError(
                "the trim-and-fill algorithm did not converge; raise maxiter= or use estimator='R0'"
            )
        trimmed = core.fit_uni(yy[: k - k0], vv[: k - k0], method=method)
        beta = float(trimmed.beta[0])
        yc = yy - beta
        ranks = stats.rankdata(np.abs(yc), method="ordinal")
        signed = np.sign(yc) * ranks
        if estimator == "R0":
            neg = -signed[signed < 0]
            k0 = (k - (neg.max() if neg.size else 0)) - 1
            se_k0 = math.sqrt(2 * max(0, k0) + 2)
        else:
            Sr = signed[signed > 0].sum()
            k0 = (4 * Sr - k * (k + 1)) / (2 * k - 1)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * k0**3
                + 27 * k0**2
                + 17 * k0
                - 18 * k * k0**2
                - 18 * k * k0
                + 6 * k**2 * k0
            ) / 24
            se_k0 = 4 * math.sqrt(max(var_sr, 0)) / (2 * k - 1)
        k0 = int(max(0, round(k0)))
        se_k0 = max(0.0, se_k0)
    if k0 > 0:
        mirrored = 2 * beta - yy[k - k0 :]
        y_fill = -mirrored if side == "right" else mirrored
        v_fill = vv[k - k0 :]
    else:
        y_fill = np.array([])
        v_fill = np.array([])
    filled = pd.DataFrame(
        {
            "study": [f"Filled {i + 1}" for i in range(k0)],
            "yi": y_fill,
            "vi": v_fill,
            "sei": np.sqrt(v_fill),
        }
    )
    frame = pd.DataFrame(
        {
            "study": np.concatenate([result.labels, filled["study"].to_numpy()]),
            "yi": np.concatenate([y0, y_fill]),
            "vi": np.concatenate([v0, v_fill]),
            "filled": np.r_[np.zeros(len(y0), bool), np.ones(k0, bool)],
        }
    )
    refit = meta_analysis(
        frame,
        yi="yi",
        vi="vi",
        study="study",
        method=method,
        test=result.test,
        level=result.level,
    )
    if result.measure == "r":
        # keep the correlation scale for reporting
        refit.measure = "r"
        refit.z = refit.estimate
        refit.r = float(np.tanh(refit.estimate))
        refit.r_ci_low, refit.r_ci_high = np.tanh(refit.ci_low), np.tanh(refit.ci_high)
        refit.r_pi_low, refit.r_pi_high = np.tanh(refit.pi_low), np.tanh(refit.pi_high)
    return TrimFillResult(k0, float(se_k0), side, estimator, filled, refit)


def leave_one_out(result: MetaResult) -> pd.DataFrame:
    """Refit the model leaving out each study in turn (``metafor::leave1out``).

    Parameters
    ----------
    result : MetaResult
        A model without moderators.

    Returns
    -------
    pandas.DataFrame
        One row per left-out study: study, estimate, se, statistic, p, ci_low, ci_high,
        Q, Q_p, tau2, I2, H2 (and r, r_ci_low, r_ci_high for correlations).

    Examples
    --------
    >>> from alliance import meta
    >>> loo = meta.leave_one_out(meta.meta_analysis(meta.example_studies()))
    >>> len(loo)
    60
    """
    result = _require_uni(result, "leave_one_out")
    if not result.intercept_only:
        raise ValueError("leave_one_out applies to models without moderators; use influence()")
    fit = result._fit
    rows = []
    mask = np.ones(fit.k, bool)
    for i in range(fit.k):
        mask[:] = True
        mask[i] = False
        f = core.fit_uni(
            fit.y[mask], fit.vi[mask], method=result.method, test=result.test, level=result.level
        )
        rows.append(
            {
                "study": result.labels[i],
                "estimate": f.beta[0],
                "se": f.se[0],
                "statistic": f.stat[0],
                "p": f.pval[0],
                "ci_low": f.ci_low[0],
                "ci_high": f.ci_high[0],
                "Q": f.QE,
                "Q_p": f.QEp,
                "tau2": f.tau2,
                "I2": f.I2,
                "H2": f.H2,
            }
        )
    out = pd.DataFrame(rows)
    if result.measure == "r":
        out["r"] = np.tanh(out["estimate"])
        out["r_ci_low"] = np.tanh(out["ci_low"])
        out["r_ci_high"] = np.tanh(out["ci_high"])
    return out


def influence(result: MetaResult) -> pd.DataFrame:
    """Case-deletion influence diagnostics (``metafor::influence.rma.uni``).

    Parameters
    ----------
    result : MetaResult
        A fitted model (with or without moderators).

    Returns
    -------
    pandas.DataFrame
        One row per study: rstudent (externally standardized residual), dffits, cook_d,
        cov_r, tau2_del, QE_del, hat, weight (percent), one ``dfbetas_<term>`` column
        per coefficient, and ``influential`` (metafor's rule: ``|dffits| > 3 sqrt(p/(k-p))``,
        pchisq(cook_d, p) > .5, hat > 3p/k, or any ``|dfbetas| > 1``).

    Examples
    --------
    >>> from alliance import meta
    >>> inf = meta.influence(meta.meta_analysis(meta.example_studies()))
    >>> list(inf.columns[:4])
    ['study', 'rstudent', 'dffits', 'cook_d']
    """
    result = _require_uni(result, "influence")
    fit = result._fit
    k, p = fit.k, fit.p
    X, y, vi = fit.X, fit.y, fit.vi
    w = 1.0 / (vi + fit.tau2)
    xtwx_inv, _ = core._wls_parts(w, X)
    hat = np.einsum("ij,jk,ik->i", X, xtwx_inv, X) * w
    weight = 100 * w / w.sum()
    btt = fit.btt
    svb = np.linalg.inv(fit.vb[np.ix_(btt, btt)])
    pred_full = X @ fit.beta
    cols = {
        k_: np.full(k, np.nan)
        for k_ in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del")
    }
    dfbs = np.full((k, p), np.nan)
    mask = np.ones(k, bool)
    det_full = np.linalg.det(fit.vb[np.ix_(btt, btt)])
    for i in range(k):
        mask[:] = True
        mask[i] = False
        try:
            f = core.fit_uni(
                y[mask],
                vi[mask],
                X[mask],
                method=result.method,
                test=result.test,
                level=result.level,
                btt=btt,
            )
        except (ValueError, np.linalg.LinAlgError):
            continue
        xi = X[i]
        delpred = float(xi @ f.beta)
        vdelpred = float(xi @ f.vb @ xi)
        cols["tau2_del"][i] = f.tau2
        cols["QE_del"][i] = f.QE
        cols["dffits"][i] = (pred_full[i] - delpred) / math.sqrt(f.s2w * hat[i] * (f.tau2 + vi[i]))
        vb_del, _ = core._wls_parts(1.0 / (vi + f.tau2), X)
        dfb = fit.beta - f.beta
        dfbs[i] = dfb / np.sqrt(f.s2w * np.diag(vb_del))
        d = dfb[btt]
        cols["cook_d"][i] = float(d @ svb @ d)
        cols["cov_r"][i] = np.linalg.det(f.vb[np.ix_(btt, btt)]) / det_full
        resid = y[i] - delpred
        se_resid = math.sqrt(vi[i] * f.s2w + vdelpred + f.tau2 * f.s2w)
        cols["rstudent"][i] = resid / se_resid
    out = pd.DataFrame({"study": result.labels, **cols, "hat": hat, "weight": weight})
    for j, term in enumerate(result.terms):
        out[f"dfbetas_{term}"] = dfbs[:, j]
    infl = (
        (np.abs(out["dffits"]) > 3 * math.sqrt(p / (k - p)))
        | (stats.chi2.cdf(out["cook_d"], len(btt)) > 0.5)
        | (out["hat"] > 3 * p / k)
        | (np.abs(dfbs) > 1).any(axis=1)
    )
    out["influential"] = infl.fillna(False).astype(bool)
    return out


# --------------------------------------------------------------------------------------
# two-stage individual-participant meta-analysis
# --------------------------------------------------------------------------------------
def two_stage_ipd(
    data: pd.DataFrame,
    alliance: str = "alliance",
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    group: str = "site",
    *,
    first_sessions: int = 3,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
) -> MetaResult:
    """Two-stage individual-participant meta-analysis of the alliance-outcome link.

    Stage one: per group (site, therapist, ...), the Pearson correlation across clients
    between early alliance (the mean of the client's first ``first_sessions`` sessions)
    and the client's last observed outcome. Stage two: those correlations are pooled with
    :func:`meta_analysis` (Fisher's z).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session (e.g. ``study.sessions``).
    alliance, outcome : str
        Alliance and outcome score columns (e.g. ``"wai_sr"``, ``"phq9"``).
    client, session, group : str
        Client, session-number and grouping columns. Clients are identified within
        their group.
    first_sessions : int
        How many of the client's first sessions (in session order) make up early
        alliance; missing alliance scores among them are skipped.
    method, test, level
        As in :func:`meta_analysis`. Knapp-Hartung (``"knha"``) is the default because
        multi-site projects usually have few sites.

    Returns
    -------
    MetaResult
        ``.data`` has one row per group (group, n, r); groups with fewer than 4 usable
        clients cannot be pooled (Fisher's z needs n > 3) and are listed in
        ``.excluded`` together with the clients left out and why.

    Notes
    -----
    With symptom measures (higher = worse, e.g. PHQ-9) a good alliance goes with a low
    last score, so the pooled r is negative. Early alliance is measured before the last
    outcome only if the client has more sessions than ``first_sessions``; clients whose
    last outcome falls within their first ``first_sessions`` sessions are left out.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from alliance import meta
    >>> rng = np.random.default_rng(1)
    >>> rows = []
    >>> for site in range(6):
    ...     for c in range(30):
    ...         a = rng.normal()
    ...         for s in range(1, 9):
    ...             rows.append((f"s{site}", f"c{c}", s, a + rng.normal(0, .5),
    ...                          10 - 2 * a + rng.normal(0, 2)))
    >>> long = pd.DataFrame(rows, columns=["site", "client", "session", "wai", "phq9"])
    >>> res = meta.two_stage_ipd(long, alliance="wai", outcome="phq9", group="site")
    >>> res.k, res.r < 0
    (6, True)
    """
    data = require_columns(
        data, alliance=alliance, outcome=outcome, client=client, session=session, group=group
    )
    if int(first_sessions) != first_sessions or first_sessions < 1:
        raise ValueError(f"first_sessions must be a whole number >= 1, not {first_sessions!r}")
    frame = data[[group, client, session, alliance, outcome]].copy()
    keys = [group, client]
    n_missing_group = int(frame[group].isna().sum())
    frame = frame.loc[frame[group].notna()]
    frame = frame.sort_values([*keys, session], kind="stable")
    frame["_rank"] = frame.groupby(keys, sort=False).cumcount() + 1
    early = (
        frame.loc[frame["_rank"] <= first_sessions]
        .groupby(keys, sort=False)[alliance]
        .mean()
        .rename("early_alliance")
    )
    with_out = frame.loc[frame[outcome].notna()]
    last = with_out.groupby(keys, sort=False).agg(
        last_outcome=(outcome, "last"), last_rank=("_rank", "last")
    )
    clients = early.to_frame().join(last, how="outer").reset_index()
    reason = pd.Series("", index=clients.index, dtype=object)
    reason[clients["early_alliance"].isna()] = (
        f"no {alliance} score in the first {first_sessions} sessions"
    )
    no_out = clients["last_outcome"].isna() & (reason == "")
    reason[no_out] = f"no {outcome} score"
    too_early = (clients["last_rank"] <= first_sessions) & (reason == "")
    reason[too_early] = f"last {outcome} score within the first {first_sessions} sessions"
    usable = clients.loc[reason == ""]
    ex_clients = clients.loc[reason != "", [group, client]].assign(reason=reason[reason != ""])

    def _corr(g: pd.DataFrame) -> float:
        if len(g) < 2 or g["early_alliance"].std() == 0 or g["last_outcome"].std() == 0:
            return np.nan
        return float(np.corrcoef(g["early_alliance"], g["last_outcome"])[0, 1])

    per = usable.groupby(group, sort=True)
    table = pd.DataFrame(
        {
            "n": per.size(),
            "r": per[["early_alliance", "last_outcome"]].apply(_corr),
        }
    ).reset_index()
    all_groups = pd.Index(frame[group].unique())
    missing_groups = all_groups.difference(table[group])
    if len(missing_groups):
        table = pd.concat(
            [table, pd.DataFrame({group: missing_groups, "n": 0, "r": np.nan})],
            ignore_index=True,
        )
    small = table["n"] <= 3
    constant = table["r"].isna() & ~small
    ex_groups = pd.concat(
        [
            table.loc[small, [group]].assign(
                reason="fewer than 4 usable clients (Fisher's z needs n > 3)"
            ),
            table.loc[constant, [group]].assign(
                reason=f"no variation in early {alliance} or last {outcome}"
            ),
        ]
    )
    pooled = table.loc[~small & ~constant].reset_index(drop=True)
    if len(pooled) < 2:
        raise ValueError(
            f"only {len(pooled)} {group} groups have at least 4 usable clients; pooling needs "
            f"2 or more. Check group={group!r} or lower first_sessions"
        )
    res = meta_analysis(pooled, r="r", n="n", study=group, method=method, test=test, level=level)
    excluded = pd.concat(
        [
            ex_groups.assign(level="group"),
            ex_clients.assign(level="client"),
        ],
        ignore_index=True,
    )
    if n_missing_group:
        excluded = pd.concat(
            [
                excluded,
                pd.DataFrame(
                    {
                        "level": ["session rows"],
                        "reason": [f"{n_missing_group} rows with missing {group}"],
                    }
                ),
            ],
            ignore_index=True,
        )
    cols = ["level", group, client, "reason"]
    res.excluded = excluded.reindex(columns=cols)
    return res


# --------------------------------------------------------------------------------------
# bundled data
# --------------------------------------------------------------------------------------
def example_studies() -> pd.DataFrame:
    """A **synthetic** study-level table of alliance-outcome correlations.

    60 invented studies generated by ``datasets/make_meta_example.py`` (seeded) and
    calibrated to the published summary of Flückiger et al. (2018): the pooled
    correlation is near .28 with moderate heterogeneity (I^2 about 58%). These are not
    real studies; use them for examples, teaching and tests only. The codebook is
    ``datasets/meta_alliance_outcome.json``.

    Returns
    -------
    pandas.DataFrame
        study, year, n, r, rater (client/therapist/observer), measure
        (WAI/CALPAS/HAq/other), treatment (CBT/psychodynamic/humanistic/other).

    Examples
    --------
    >>> from alliance import meta
    >>> studies = meta.example_studies()
    >>> studies.shape
    (60, 7)
    >>> meta.example_studies.codebook()["synthetic"]
    True
    """
    path = resources.files("alliance.datasets").joinpath("meta_alliance_outcome.csv")
    with resources.as_file(path) as p:
        return pd.read_csv(p)


def _example_codebook() -> dict:
    path = resources.files("alliance.datasets").joinpath("meta_alliance_outcome.json")
    return json.loads(path.read_text(encoding="utf-8"))


example_studies.codebook = _example_codebook  # type: ignore[attr-defined]
