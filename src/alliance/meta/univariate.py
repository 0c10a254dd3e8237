"""Univariate meta-analysis and meta-regression (``metafor::rma.uni``).

:func:`meta_analysis` fits fixed-effect and random-effects models with the REML, ML, DL,
PM, HE and SJ estimators of tau^2, the Knapp-Hartung adjustment, Q-profile confidence
intervals for tau^2 / I^2 / H^2 and prediction intervals; :func:`meta_regression` the same
with moderators. Both return a :class:`MetaResult`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance.meta import _core as core
from alliance.meta._common import (
    Prepared,
    check_options,
    formula_of,
    params_frame,
    pooled_frame,
    prepare,
    set_r_scale,
)
from alliance.results import Result, tidy_params

__all__ = ["MetaResult", "meta_analysis", "meta_regression"]


def _counts(frame: pd.DataFrame, study: str | None, prep: Prepared) -> dict[str, int]:
    """Effects, studies and (correlations) participants of the analysed rows."""
    out = {"effects": len(frame)}
    if study is not None and study in frame:
        out["studies"] = int(frame[study].nunique())
    if prep.measure == "r":
        out["participants"] = int(np.round(1.0 / frame["vi"] + 3.0).sum())
    return out


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
class MetaResult(Result):
    """Result of :func:`meta_analysis` / :func:`meta_regression` (a :class:`~alliance.results.Result`).

    ``params`` has the contract's columns (``df`` is inf for z tests); ``nobs`` is ``k``;
    ``n`` counts effects, studies and (for correlations) participants; ``fit_measures``
    holds Q, I2, H2 and the moderator test; ``variance_components`` the between-study
    variance. ``pooled()`` is the pooled estimate on both scales (see there).

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
        The exclusion log (reason, column, n_rows, n_clients): rows with missing values by
        reason; ``n_clients`` is the summed sample size of those studies (``<NA>`` when it
        is not known). ``excluded_rows`` lists them one by one (row, study, reason).
    """

    citation = (
        "Viechtbauer (2010), Journal of Statistical Software 36(3); "
        "Borenstein, Hedges, Higgins & Rothstein (2009), Introduction to Meta-Analysis"
    )

    def __init__(self, fit: core.UniFit, prep: Prepared, *, study: str | None):
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
        self.excluded_rows = prep.excluded_rows
        self.notes: list[str] = []
        self.title: str | None = None
        w = 1.0 / (fit.vi + fit.tau2)
        frame = prep.frame.copy()
        frame["sei"] = np.sqrt(frame["vi"])
        frame["weight"] = 100 * w / w.sum()
        self.data = frame
        self.labels = prep.labels
        self.params = tidy_params(params_frame(self.terms, fit))
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
        set_r_scale(self)
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
        self.nobs = self.k
        self.n_by_level = _counts(frame, study, prep)
        self.fit_measures = pd.Series(
            {
                "k": self.k,
                "Q": self.Q,
                "Q_df": self.Q_df,
                "Q_p": self.Q_p,
                "I2": self.I2,
                "H2": self.H2,
                "QM": self.QM,
                "QM_p": self.QM_p,
                "R2": self.R2,
            },
            name="fit",
            dtype=object,
        )
        self.variance_components = pd.DataFrame(
            {
                "group": [study or "study"],
                "term": ["intercept"],
                "vcov": [self.tau2],
                "sdcor": [self.tau],
                "se": [self.se_tau2],
            }
        )

    @property
    def model(self) -> str:
        """The analysis in words, e.g. ``"random-effects meta-analysis (REML)"``."""
        if self.title:
            return self.title
        if self.method == "FE":
            kind = "fixed-effect" if self.intercept_only else "fixed-effects meta-regression"
        else:
            kind = "random-effects" if self.intercept_only else "mixed-effects meta-regression"
        name = f"{kind} meta-analysis" if "regression" not in kind else kind
        return f"{name} ({self.method}, test {self.test})"

    def _n_by_level(self) -> dict[str, int]:
        return dict(self.n_by_level)

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

    def pooled(self) -> pd.DataFrame:
        """The pooled estimate with its heterogeneity statistics, as a tidy table.

        :meth:`to_frame` is the results contract's table (the analysis' name, then
        :attr:`params`); this is the meta-analytic summary. Without moderators: one row per scale (``z`` and ``r`` for correlations, ``yi``
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
        return pooled_frame(self, common)

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
        ``.pooled()`` gives the pooled estimate on both scales; attributes ``z``,
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
    >>> res.pooled()[["scale", "estimate", "ci_low", "ci_high"]].round(3)
      scale  estimate  ci_low  ci_high
    0     z     0.298   0.255    0.341
    1     r     0.289   0.249    0.328
    """
    check_options(method, test, level)
    prep = prepare(data, r=r, n=n, yi=yi, vi=vi, sei=sei, study=study, mods=mods)
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
    if formula_of(mods) is None:
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
