"""Three-level meta-analysis (``metafor::rma.mv``) and cluster-robust (CR2) inference.

:func:`multilevel_meta_analysis` fits effects nested in studies; :func:`cluster_robust`
gives RVE tests with the CR2 small-sample correction and Satterthwaite degrees of freedom
(``clubSandwich::coef_test``) for a univariate or a multilevel model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance._checks import format_rows, require_columns
from alliance.meta import _core as core
from alliance.meta._common import Prepared, params_frame, pooled_frame, prepare, set_r_scale
from alliance.meta.univariate import MetaResult
from alliance.results import Result, tidy_params

__all__ = ["MultilevelMetaResult", "cluster_robust", "multilevel_meta_analysis"]


# --------------------------------------------------------------------------------------
# multilevel (three-level) model
# --------------------------------------------------------------------------------------
class MultilevelMetaResult(Result):
    """Result of :func:`multilevel_meta_analysis` (a :class:`~alliance.results.Result`).

    ``variance_components`` has one row per level (sigma2); ``fit_measures`` Q and I2;
    ``n`` the effects and studies.

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
    excluded, excluded_rows
        As in :class:`MetaResult`.
    """

    citation = (
        "Viechtbauer (2010), Journal of Statistical Software 36(3); Cheung (2014), "
        "Psychological Methods 19(2), 211-229"
    )

    def __init__(self, fit: core.MvFit, prep: Prepared, levels: list[str]):
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
        self.excluded_rows = prep.excluded_rows
        self.notes: list[str] = []
        self.data = prep.frame.copy()
        self.data["sei"] = np.sqrt(self.data["vi"])
        self.labels = prep.labels
        self.params = tidy_params(params_frame(self.terms, fit))
        self.intercept_only = prep.mods is None
        self.nobs = self.k
        self.variance_components = pd.DataFrame(
            {
                "group": list(self.sigma2.index),
                "term": "intercept",
                "vcov": self.sigma2.to_numpy(),
                "sdcor": np.sqrt(self.sigma2.to_numpy()),
            }
        )
        self.fit_measures = pd.Series(
            {
                "k": self.k,
                "Q": self.Q,
                "Q_df": self.Q_df,
                "Q_p": self.Q_p,
                **{f"I2_{lev}": float(v) for lev, v in self.I2.items()},
            },
            name="fit",
            dtype=object,
        )
        if self.intercept_only:
            est, se, crit = float(fit.beta[0]), float(fit.se[0]), fit.crit
            self.estimate, self.se = est, se
            self.ci_low, self.ci_high = est - crit * se, est + crit * se
            half = crit * math.sqrt(se**2 + self.tau2)
            self.pi_low, self.pi_high = est - half, est + half
        else:
            self.estimate = self.se = self.ci_low = self.ci_high = np.nan
            self.pi_low = self.pi_high = np.nan
        set_r_scale(self)

    @property
    def model(self) -> str:
        return f"multilevel meta-analysis ({self.method}, test {self.test})"

    def _n_by_level(self) -> dict[str, int]:
        return {"effects": self.k, "studies": self.n_studies}

    def pooled(self) -> pd.DataFrame:
        """Tidy summary: as :meth:`MetaResult.pooled`, with one sigma2 column per level."""
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
        return pooled_frame(self, common)

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
    prep = prepare(data, r=r, n=n, yi=yi, vi=vi, sei=sei, study=study, mods=mods, extra=[effect])
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
