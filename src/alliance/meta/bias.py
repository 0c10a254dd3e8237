"""Small-study effects and sensitivity: Egger's test, trim-and-fill, leave-one-out, influence.

As metafor's ``regtest``, ``trimfill``, ``leave1out`` and ``influence``; each works on a
:class:`~alliance.meta.MetaResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.meta import _core as core
from alliance.meta.univariate import MetaResult, meta_analysis
from alliance.results import Result

__all__ = ["TrimFillResult", "egger_test", "influence", "leave_one_out", "trim_and_fill"]


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
class TrimFillResult(Result):
    """Result of :func:`trim_and_fill` (a :class:`~alliance.results.Result`).

    ``params``, ``loglik`` and ``variance_components`` are those of the refitted model;
    ``excluded`` that of the observed model; ``nobs`` counts observed plus filled effects.

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
    observed : MetaResult or None
        The model the method started from.
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    filled: pd.DataFrame
    result: MetaResult
    observed: MetaResult | None = None

    citation = (
        "Duval & Tweedie (2000), Biometrics 56(2), 455-463; Duval & Tweedie (2000), JASA "
        "95(449), 89-98"
    )

    @property
    def model(self) -> str:
        return f"trim-and-fill ({self.estimator}: {self.k0} effects filled on the {self.side})"

    @property
    def params(self) -> pd.DataFrame:
        return self.result.params

    @property
    def excluded(self) -> pd.DataFrame:
        base = self.observed if self.observed is not None else self.result
        return base.excluded

    @property
    def nobs(self) -> int:
        return self.result.k

    @property
    def loglik(self) -> float:
        return self.result.loglik

    @property
    def variance_components(self) -> pd.DataFrame:
        return self.result.variance_components

    @property
    def fit_measures(self) -> pd.Series:
        return pd.concat(
            [
                pd.Series({"k0": self.k0, "se_k0": self.se_k0}, dtype=object),
                self.result.fit_measures,
            ]
        ).rename("fit")

    @property
    def notes(self) -> list[str]:
        return [
            "Trim-and-fill is a sensitivity analysis, not a correction: it assumes the "
            "funnel-plot asymmetry comes from suppressed studies."
        ]

    def _n_by_level(self) -> dict[str, int]:
        observed = self.result.k - self.k0
        return {"effects": observed, "filled": self.k0}

    def summary(self) -> str:
        """The refitted model's summary, headed by k0 and the side."""
        return (
            f"Trim-and-fill ({self.estimator}): {self.k0} effects (SE {self.se_k0:.2f}) filled on "
            f"the {self.side}\n" + self.result.summary()
        )

    def pooled(self) -> pd.DataFrame:
        """The adjusted pooled estimate with k0 and side columns."""
        out = self.result.pooled()
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
    return TrimFillResult(k0, float(se_k0), side, estimator, filled, refit, observed=result)


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
    xtwx_inv, _ = core.wls_parts(w, X)
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
        vb_del, _ = core.wls_parts(1.0 / (vi + f.tau2), X)
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
