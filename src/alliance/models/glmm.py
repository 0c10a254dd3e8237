"""Generalized linear mixed models (binomial, Poisson) as lme4's ``glmer``.

:func:`glmm` maximizes the Laplace approximation to the log-likelihood (``nagq=1``, glmer's
default) or, for a single scalar random effect, adaptive Gauss-Hermite quadrature
(``nagq > 1``). Conditional modes are found by penalized iteratively reweighted least squares;
the optimisation runs in glmer's two stages (theta with the fixed effects inside PIRLS, then
theta and the fixed effects together). Nested and crossed random intercepts and slopes are
allowed. See ``docs/glmm.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from formulaic import model_matrix
from scipy import optimize, special, stats
from threadpoolctl import threadpool_limits

from alliance._checks import require_columns, require_frame
from alliance.models._glmm_core import Engine, Term
from alliance.models._lmm_formula import parse_formula
from alliance.models._result import ModelResult
from alliance.results import exclusion_log, level_name

__all__ = ["glmm", "GlmmResult"]

SINGULAR_TOL = 1e-4


@dataclass
class GlmmResult(ModelResult):
    """Results of :func:`glmm` (a :class:`~alliance.models._result.ModelResult`).

    Attributes
    ----------
    family, link : str
    nagq : int
        Quadrature points (1 = Laplace).
    theta : numpy.ndarray
        Relative covariance factors in lme4's order.
    vcov : pandas.DataFrame
        Covariance of the fixed effects (inverse of the finite-difference Hessian of the
        deviance, as glmer's default ``use.hessian=TRUE``).
    ranef : dict of pandas.DataFrame
        Conditional modes per grouping factor (levels x terms), as lme4's ``ranef``.
    aic, bic, deviance : float
        As lme4's ``summary`` (deviance = -2 log-likelihood).
    df_resid : int
    converged, singular : bool
    formula : str
    rows : pandas.Index
        Index labels of the rows of ``data`` the fit used.
    outcome : numpy.ndarray
        ``(n, 2)``: the response as a proportion (or count) and its prior weight (trials), per
        row used; :func:`alliance.models.compare` checks that compared models share them.
    """

    family: str = "binomial"
    link: str = "logit"
    nagq: int = 1
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    ranef: dict = field(default_factory=dict)
    aic: float = float("nan")
    bic: float = float("nan")
    deviance: float = float("nan")
    df_resid: int = 0
    converged: bool = True
    singular: bool = False
    formula: str = ""
    rows: pd.Index = field(default_factory=lambda: pd.RangeIndex(0))
    outcome: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    _fixed_spec: Any = field(default=None, repr=False)
    _x: np.ndarray | None = field(default=None, repr=False)

    def predict(
        self,
        data: pd.DataFrame | None = None,
        *,
        type: Literal["link", "response"] = "link",
        interval: Literal["confidence"] | None = None,
        level: float = 0.95,
        offset=None,
    ) -> pd.Series | pd.DataFrame:
        """Population-level predictions (random effects at 0), on the link or response scale.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            New rows with the fixed-effect variables; default the rows used in the fit
            (without their offset).
        type : {"link", "response"}
            The linear predictor ``x' beta`` or the mean ``linkinv(x' beta)`` (the mean of a
            group whose random effects are 0, not the average over groups).
        interval : {"confidence"}, optional
            Add the Wald interval: on the link scale ``x' beta +- z se`` with
            ``se^2 = x' V x`` (``V`` = :attr:`vcov`); on the response scale the link interval
            transformed back and the delta-method SE ``mu_eta(eta) se``, as emmeans'
            ``type = "response"``.
        level : float, default 0.95
        offset : str or array, optional
            Offset of the new rows (a column of ``data`` or one value per row).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Without ``interval`` a Series; with it estimate, se, df (inf), lower, upper.

        Examples
        --------
        >>> import pandas as pd
        >>> from alliance.datasets import load_dataset
        >>> from alliance.models import glmm
        >>> d = load_dataset("demo").sessions
        >>> d = d.assign(low=(d["wai_sr"] < d["wai_sr"].median()).astype(int))
        >>> fit = glmm("low ~ session + (1 | client)", d)
        >>> p = fit.predict(pd.DataFrame({"session": [1, 10]}), type="response",
        ...                 interval="confidence")
        >>> p.columns.tolist()
        ['estimate', 'se', 'df', 'lower', 'upper']
        >>> bool(((p["lower"] > 0) & (p["upper"] < 1)).all())
        True
        """
        from alliance.models import _glmm_core as core

        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', not {type!r}.")
        if interval not in (None, "confidence"):
            raise ValueError(
                f"interval must be 'confidence' or None, not {interval!r} (prediction "
                "intervals of a binary or count outcome are not defined here)."
            )
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
        if self._fixed_spec is None:
            raise ValueError("this GlmmResult keeps no model design; fit it with glmm().")
        if data is None:
            x, index = self._x, self.rows
        else:
            data = require_frame(data, "data")
            need = sorted(self._fixed_spec.required_variables)
            require_columns(data, table="data", **{f"variable {c!r}": c for c in need})
            if data[need].isna().any(axis=None):
                raise ValueError(
                    "data has missing values in a fixed-effect variable; drop or fill those "
                    "rows before predicting."
                )
            x = np.asarray(self._fixed_spec.get_model_matrix(data), float)
            index = data.index
        off = np.zeros(len(x))
        if offset is not None:
            if isinstance(offset, str):
                if data is None or offset not in data:
                    raise KeyError(f"offset={offset!r} is not a column of data.")
                off = data[offset].to_numpy(float)
            else:
                off = np.asarray(offset, float)
                if off.shape != (len(x),):
                    raise ValueError(f"offset must have one value per row ({len(x)}).")
        eta = off + x @ self.params["estimate"].to_numpy()
        fam = core.family(self.family, self.link)
        if interval is None:
            out = eta if type == "link" else fam.linkinv(eta)
            return pd.Series(out, index=index, name="predicted")
        v = self.vcov.to_numpy()
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, v, x))
        q = stats.norm.ppf(0.5 + level / 2)
        lo, hi = eta - q * se, eta + q * se
        if type == "response":
            est = fam.linkinv(eta)
            se = fam.mu_eta(eta) * se
            lo, hi = fam.linkinv(lo), fam.linkinv(hi)
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        else:
            est = eta
        return pd.DataFrame(
            {"estimate": est, "se": se, "df": np.inf, "lower": lo, "upper": hi}, index=index
        )


def _response(lhs: str, frame: pd.DataFrame, weights):
    """(y as proportion, prior weights) from a 0/1, ``cbind(s, f)`` or proportion response."""
    if lhs.replace(" ", "").startswith("cbind(") and lhs.endswith(")"):
        inner = lhs.strip()[len("cbind(") : -1]
        depth, cut = 0, None
        for i, ch in enumerate(inner):
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                cut = i
        if cut is None:
            raise ValueError(f"{lhs!r} needs two arguments: cbind(successes, failures).")
        s = frame.eval(inner[:cut]).to_numpy(float)
        f = frame.eval(inner[cut + 1 :]).to_numpy(float)
        if np.any(s < 0) or np.any(f < 0):
            raise ValueError(f"{lhs!r}: successes and failures must be non-negative counts.")
        m = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(m > 0, s / np.where(m > 0, m, 1), 0.0)
        return y, m
    y = frame.eval(lhs).to_numpy(float) if lhs not in frame else frame[lhs].to_numpy(float)
    wt = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    return y, wt


def _vars(expr: str, frame: pd.DataFrame) -> list[str]:
    import re

    return [
        c
        for c in frame.columns
        if re.search(rf"(?<![A-Za-z0-9_.]){re.escape(str(c))}(?![A-Za-z0-9_.])", expr)
    ]


def _separation(x: np.ndarray, y: np.ndarray, wt: np.ndarray, names: list[str]) -> str | None:
    """Name a fixed effect whose unpenalized logistic fit diverges (complete or quasi-complete
    separation): the linear program ``max sum(s) s.t. sign * X b >= 0`` direction test."""
    # quick exit: an unpenalized logistic fit (IRLS) that converges with no fitted probability
    # at 0 or 1 has finite estimates, so there is no separation; otherwise the linear program
    b = np.zeros(x.shape[1])
    dev_old = np.inf
    for _ in range(30):
        eta = x @ b
        mu = 1 / (1 + np.exp(-np.clip(eta, -40, 40)))
        w = wt * mu * (1 - mu)
        try:
            b = b + np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (wt * (y - mu)))
        except np.linalg.LinAlgError:
            break
        eta = x @ b
        mu = 1 / (1 + np.exp(-np.clip(eta, -40, 40)))
        dev = -2 * np.sum(wt * (special.xlogy(y, mu) + special.xlogy(1 - y, 1 - mu)))
        if abs(dev_old - dev) < 1e-10 * (abs(dev) + 1):
            if np.max(np.abs(eta)) < 15:
                return None
            break
        dev_old = dev
    succ = (y > 0) & (wt > 0)
    fail = (y < 1) & (wt > 0)
    rows = np.vstack([x[succ], -x[fail]])
    if len(rows) == 0:
        return None
    # find b with rows @ b >= 0, not all zero: maximize sum(rows @ b) with |b| <= 1
    res = optimize.linprog(
        -rows.sum(0),
        A_ub=-rows,
        b_ub=np.zeros(len(rows)),
        bounds=[(-1, 1)] * x.shape[1],
        method="highs",
    )
    if res.status == 0 and -res.fun > 1e-7:
        b = res.x
        j = int(np.argmax(np.abs(b)))
        return names[j]
    return None


class _Objective:
    """The stage-2 deviance with warm starts: PIRLS can be started from a given ``u``, and the
    conditional modes of the last evaluation are kept, so finite differences start each
    evaluation from a first-order prediction of its modes (fewer PIRLS iterations, and a
    more accurately converged inner problem)."""

    def __init__(self, fun, eng):
        self.fun, self.eng = fun, eng
        self.last_par: np.ndarray | None = None
        self.last_u: np.ndarray | None = None
        self.calls = 0

    def __call__(self, par, start=None):
        if start is not None:
            self.eng.u = start.copy()
        val = self.fun(par)
        self.calls += 1
        self.last_par, self.last_u = np.array(par, float), self.eng.u.copy()
        return val

    def u_at(self, par):
        if self.last_par is not None and np.array_equal(self.last_par, par):
            return self.last_u
        return None


def _fd_grad_hess(f, par, f0, lb, ntheta, d=1e-4, grad_only=False, cheap=False):
    """Central finite-difference gradient and Hessian of ``f`` at ``par`` (lme4's deriv12
    with delta 1e-4); a variance parameter at its bound 0 is differenced one-sided.

    The mixed second differences are the symmetric
    ``(f(++) - f(+.) - f(.+) + 2 f - f(-.) - f(.-) + f(--)) / (2 d^2)``, second-order
    accurate like deriv12's four-point formula at two evaluations per pair (the forward
    ``(f(++) - f(+.) - f(.+) + f) / d^2`` is first-order only: with a predictor on a large
    scale it moved the standard errors by several per mille from glmer's).

    With ``grad_only`` only the gradient and the diagonal of the Hessian are computed
    (2k evaluations instead of 2k + k(k - 1)); the off-diagonal entries are 0. With
    ``cheap`` the mixed differences are the forward ones (k(k - 1) / 2 evaluations), good
    enough for Newton steps far from the optimum, not for the covariance. When ``f`` is
    an :class:`_Objective`, each evaluation's PIRLS starts from a linear prediction of its
    conditional modes from those already computed."""
    k = len(par)
    warm = isinstance(f, _Objective)
    shift = np.zeros(k)
    near = np.zeros(k, bool)
    near[:ntheta] = np.isfinite(lb) & (par[:ntheta] < d)
    shift[near] = d - par[near]
    base = par + shift
    ub = f.u_at(base) if warm else None
    if near.any() or (warm and ub is None):
        fb = f(base)
        ub = f.last_u if warm else None
    else:
        fb = f0

    def ev(x, start=None):
        return f(x, start=start) if warm else f(x)

    fp, fm = np.zeros(k), np.zeros(k)
    up, um = [None] * k, [None] * k
    g, h = np.zeros(k), np.zeros((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = d
        fp[i] = ev(base + e, ub)
        if warm:
            up[i] = f.last_u
        fm[i] = ev(base - e, 2 * ub - up[i] if warm else None)
        if warm:
            um[i] = f.last_u
        g[i] = (fp[i] - fm[i]) / (2 * d)
        h[i, i] = (fp[i] - 2 * fb + fm[i]) / d**2
    if not grad_only:
        for i in range(k):
            for j in range(i):
                e = np.zeros(k)
                e[i] = e[j] = d
                fpp = ev(base + e, up[i] + up[j] - ub if warm else None)
                if cheap:
                    h[i, j] = h[j, i] = (fpp - fp[i] - fp[j] + fb) / d**2
                    continue
                fmm = ev(base - e, um[i] + um[j] - ub if warm else None)
                h[i, j] = h[j, i] = (fpp - fp[i] - fp[j] + 2 * fb - fm[i] - fm[j] + fmm) / (
                    2 * d**2
                )
    g = g - h @ shift
    return g, h


def _newton(f, par, lb, ntheta, maxit=16, dtol=1e-9, near=1e-5):
    """Newton iterations on ``f`` with finite-difference derivatives and step halving; a
    variance parameter at its bound 0 with a gradient pushing below is held fixed. Returns
    (par, f(par), gradient, Hessian, converged).

    The steps start from a cheap finite-difference Hessian (forward mixed differences) and
    reuse it with a fresh central gradient at each point, BFGS-updated along the steps (2k
    evaluations a step instead of k(k + 1) + 1). Once the Newton decrement is below
    ``near`` the accurate Hessian (second-order mixed differences, the one returned for the
    covariance) is computed; convergence (decrement below ``dtol``) is declared only with
    that Hessian, computed at the returned point or at a point whose decrement was below
    ``near`` (within ~sqrt(2 near) of the optimum in the deviance's own metric, where the
    Hessian is the same to far below the reference tolerances)."""
    par = par.copy()
    par[:ntheta] = np.where(np.isfinite(lb), np.maximum(par[:ntheta], 0), par[:ntheta])
    dev = f(par)
    g, h = _fd_grad_hess(f, par, dev, lb, ntheta, cheap=True)
    h_acc = None  # the accurate Hessian, once computed
    acc_near = False  # h_acc was computed at a point with decrement below ``near``
    last_dec = np.inf
    ok = False

    def accurate():
        nonlocal g, h, h_acc, acc_near, last_dec
        g, h = _fd_grad_hess(f, par, dev, lb, ntheta)
        h_acc = h
        acc_near = False
        last_dec = np.inf
        return True

    fresh = False  # h is the accurate Hessian at par
    for _it in range(maxit):
        at_bound = np.zeros(len(par), bool)
        at_bound[:ntheta] = np.isfinite(lb) & (par[:ntheta] <= 1e-8)
        free = ~(at_bound & (g > 0))
        gf = g[free]
        try:
            hf = h[np.ix_(free, free)]
            np.linalg.cholesky(hf)
            step = np.zeros(len(par))
            step[free] = -np.linalg.solve(hf, gf)
        except np.linalg.LinAlgError:
            if fresh:
                break
            fresh = accurate()
            continue
        dec = -gf @ step[free]  # Newton decrement: the deviance still to gain
        if fresh:
            acc_near = dec < near
        if dec < dtol:
            if fresh or (acc_near and h is h_acc):
                ok = True
                break
            fresh = accurate()
            continue
        if not fresh and dec < near and not (acc_near and h is h_acc):
            fresh = accurate()  # close: the accurate Hessian, for the last steps and the SEs
            continue
        if not fresh and dec > 0.1 * last_dec:  # the reused Hessian converges slowly
            fresh = accurate()
            continue
        last_dec = dec
        accepted = False
        for _h in range(20):
            cand = par + step
            cand[:ntheta] = np.where(np.isfinite(lb), np.maximum(cand[:ntheta], 0), cand[:ntheta])
            fc = f(cand)
            if np.isfinite(fc) and fc <= dev:
                accepted = True
                break
            step /= 2
        if not accepted:
            break
        small = dev - fc < 1e-10 and np.max(np.abs(step)) < 1e-7
        par, dev = cand, fc
        if small:
            fresh = accurate()
            ok = True
            break
        g_old = g
        g, _ = _fd_grad_hess(f, par, dev, lb, ntheta, grad_only=True)
        fresh = False
        if acc_near and h is h_acc:
            continue  # the accurate Hessian from a point this close is kept as it is
        # BFGS update of the reused Hessian along the step (secant condition h s = dg)
        yv = g - g_old
        hs = h @ step
        if yv @ step > 1e-12 * np.sqrt((yv @ yv) * (step @ step)) and step @ hs > 0:
            h = h + np.outer(yv, yv) / (yv @ step) - np.outer(hs, hs) / (step @ hs)
    else:
        fresh = accurate()
        ok = False
    if h_acc is None or h is not h_acc:
        accurate()
    return par, dev, g, h, ok


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str = "binomial",
    link: str | None = None,
    nagq: int = 1,
    weights=None,
    offset=None,
) -> GlmmResult:
    """Fit a binomial or Poisson generalized linear mixed model as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        lme4 syntax: ``"y ~ x + (1 | client) + (1 | therapist)"``; a binomial response is
        0/1, ``cbind(successes, failures)`` or a proportion with ``weights=`` trials.
        Crossed and nested random intercepts and slopes are allowed.
    data : pandas.DataFrame
    family : {"binomial", "poisson"}
    link : str, optional
        ``logit`` (default), ``probit`` or ``cloglog`` for binomial; ``log`` (default) or
        ``identity`` for Poisson.
    nagq : int
        1 = Laplace approximation; > 1 = adaptive Gauss-Hermite quadrature with that many
        points, only for a single scalar random effect (as glmer).
    weights : str or array, optional
        Prior weights (binomial trials for a proportion response): a column name or array.
    offset : str or array, optional
        A column name or array added to the linear predictor (e.g. log exposure).

    Returns
    -------
    GlmmResult
        Wald z tests, variance components, conditional modes, logLik/AIC/BIC as lme4.

    Examples
    --------
    >>> from alliance.datasets import load_dataset
    >>> from alliance.models import glmm
    >>> d = load_dataset("demo").sessions
    >>> d = d.assign(low=(d["wai_sr"] < d["wai_sr"].median()).astype(int))
    >>> fit = glmm("low ~ session + (1 | client)", d)
    >>> fit.params["term"].tolist()
    ['(Intercept)', 'session']
    >>> fit.converged
    True
    """
    # small dense factorizations: BLAS threads only add overhead (and stall on a busy machine)
    with threadpool_limits(1):
        return _glmm(formula, data, family, link, nagq, weights, offset)


def _glmm(formula, data, family, link, nagq, weights, offset) -> GlmmResult:
    from alliance.models import _glmm_core as core

    require_frame(data, "data")
    fam = core.family(family, link)
    lhs, fixed, random = parse_formula(formula)
    if not random:
        raise ValueError(
            f"formula {formula!r} has no random-effect term; add one, e.g. + (1 | client)."
        )
    if nagq < 1 or int(nagq) != nagq:
        raise ValueError(f"nagq must be a positive integer, not {nagq!r}.")
    frame = data.copy()
    extra_cols = {}
    for nm, val in (("weights", weights), ("offset", offset)):
        if isinstance(val, str):
            if val not in frame:
                raise KeyError(f"{nm}={val!r} is not a column of data.")
            extra_cols[nm] = frame[val].to_numpy(float)
        elif val is not None:
            arr = np.asarray(val, float)
            if arr.shape != (len(frame),):
                raise ValueError(f"{nm} must have one value per row of data ({len(frame)}).")
            extra_cols[nm] = arr
    used = set(_vars(lhs, frame)) | set(_vars(fixed, frame))
    for rt in random:
        used |= set(_vars(rt.expr, frame)) | set(rt.group)
    missing = [g for rt in random for g in rt.group if g not in frame]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in data.")
    keep = frame[sorted(used)].notna().all(axis=1).to_numpy()
    for v in extra_cols.values():
        keep &= np.isfinite(v)
    excluded = exclusion_log(
        [("missing value in a model variable", None, int((~keep).sum()), None)]
        if (~keep).any()
        else []
    )
    rows_used = data.index[keep]
    frame = frame.loc[keep].reset_index(drop=True)
    extra_cols = {k: v[keep] for k, v in extra_cols.items()}
    y, wt = _response(lhs, frame, extra_cols.get("weights"))
    if "weights" in extra_cols and lhs.startswith("cbind"):
        wt = wt * extra_cols["weights"]
    if fam.name == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        raise ValueError(
            "a binomial response must be 0/1, a proportion in [0, 1] with weights= trials, or "
            "cbind(successes, failures)."
        )
    if fam.name == "poisson" and (np.any(y < 0)):
        raise ValueError("a Poisson response must be non-negative counts.")
    off = extra_cols.get("offset", np.zeros(len(y)))
    mm = model_matrix(fixed, frame)
    names = [str(c).replace("Intercept", "(Intercept)") for c in mm.columns]
    names = [n.replace("[T.", "").replace("]", "") for n in names]
    x = np.asarray(mm, float)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("the fixed-effect design is rank deficient; remove a redundant term.")
    terms = []
    for rt in random:
        zm = model_matrix(rt.expr, frame)
        cols = [str(c).replace("Intercept", "(Intercept)") for c in zm.columns]
        if len(rt.group) == 1:
            key = frame[rt.group[0]].astype(str)
        else:
            key = frame[list(rt.group)].astype(str).agg(":".join, axis=1)
        codes, labels = pd.factorize(key, sort=True)
        zx = np.asarray(zm, float)
        if rt.correlated:
            terms.append(Term(rt.group_name, codes, zx, cols, labels, len(labels)))
        else:
            for j, c in enumerate(cols):
                terms.append(Term(rt.group_name, codes, zx[:, [j]], [c], labels, len(labels)))
    terms.sort(key=lambda t: -t.nlev)
    if nagq > 1 and (len(terms) != 1 or terms[0].k != 1):
        raise ValueError(
            "nagq > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect, "
            "e.g. (1 | client), as glmer; use nagq=1 (Laplace) for this design."
        )
    if fam.name == "binomial" and fam.link == "logit":
        bad = _separation(x, y, wt, names)
        if bad is not None:
            raise ValueError(
                f"complete or quasi-complete separation: the fixed effect {bad!r} predicts the "
                "outcome perfectly in part of the data, so its estimate is infinite. Remove or "
                "merge the predictor (or categories) that separates, or use a penalized model."
            )
    eng = Engine(y, x, terms, fam, wt, off)
    lb = eng.lower_bounds()
    th0 = np.where(np.isfinite(lb), 1.0, 0.0)
    ntheta = len(th0)
    bounds = [(0 if np.isfinite(b) else None, None) for b in lb]
    # stage 1: theta with beta inside PIRLS (glmer's nAGQ = 0)
    eng.beta = np.zeros(x.shape[1])
    r1 = optimize.minimize(
        lambda th: eng.pirls(th),
        th0,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-7, "gtol": 1e-4},  # only a start for the Newton stage
    )
    eng.pirls(r1.x)
    beta1 = eng.beta.copy()

    def dev2(par):
        th, b = par[:ntheta], par[ntheta:]
        th = np.where(np.isfinite(lb), np.maximum(th, 0), th)
        if nagq > 1:
            return eng.agq(th, b, nagq)
        return eng.pirls(th, b)

    par0 = np.concatenate([r1.x, beta1])
    # stage 2: Newton with the central finite-difference gradient and Hessian from the stage-1
    # optimum (the Hessian is needed for the covariance anyway, as lme4's deriv12 with delta
    # 1e-4); L-BFGS-B first if Newton stalls (an indefinite Hessian far from the optimum)
    obj = _Objective(dev2, eng)
    par, dev, g, h, grad_ok = _newton(obj, par0, lb, ntheta)
    if not grad_ok:
        bounds2 = bounds + [(None, None)] * x.shape[1]
        r2 = optimize.minimize(
            obj,
            par,
            method="L-BFGS-B",
            bounds=bounds2,
            options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 500},
        )
        par, dev, g, h, grad_ok = _newton(obj, r2.x, lb, ntheta)
    dev = obj(par)  # leaves the engine at the optimum (its conditional modes)
    theta, beta = par[:ntheta], par[ntheta:]
    u = eng.u.copy()
    notes: list[str] = []
    try:
        vc = np.linalg.inv(h / 2)[ntheta:, ntheta:]
        if np.any(np.diag(vc) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        eng.pirls(theta)
        eng.beta = beta
        rx = eng.l22[eng.q_rest :, eng.q_rest :]
        vc = np.linalg.inv(rx @ rx.T)
        notes.append(
            "the Hessian is not positive definite; the covariance of the fixed "
            "effects is the conditional one (use.hessian=FALSE)."
        )
        dev2(par)
    se = np.sqrt(np.diag(vc))
    z = beta / se
    p = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(0.975)
    params = pd.DataFrame(
        {
            "term": names,
            "estimate": beta,
            "se": se,
            "df": np.inf,
            "statistic": z,
            "p": p,
            "ci_low": beta - q * se,
            "ci_high": beta + q * se,
        }
    )
    lams = eng.lambdas(theta)
    rows, ranef, i = [], {}, 0
    singular = False
    for t, lam in zip(terms, lams, strict=True):
        cov = lam @ lam.T
        singular |= bool(np.any(np.abs(np.diag(lam)) < SINGULAR_TOL))
        sd = np.sqrt(np.diag(cov))
        for a in range(t.k):
            rows.append((t.name, t.columns[a], "", cov[a, a], sd[a]))
        for a in range(t.k):
            for b in range(a + 1, t.k):
                cor = cov[b, a] / (sd[a] * sd[b]) if sd[a] * sd[b] > 0 else np.nan
                rows.append((t.name, t.columns[a], t.columns[b], cov[b, a], cor))
        ut = u[i : i + t.nlev * t.k].reshape(t.nlev, t.k)
        ranef[t.name] = pd.DataFrame(
            ut @ lam.T, index=pd.Index(t.labels, name=t.name), columns=t.columns
        )
        i += t.nlev * t.k
    vcomp = pd.DataFrame(rows, columns=["group", "term", "term2", "variance", "sd_cor"])
    loglik = -dev / 2
    npar = ntheta + len(beta)
    nobs = len(y)
    if singular:
        notes.append("boundary (singular) fit: a random-effect variance is estimated at 0.")
    return GlmmResult(
        model=f"GLMM ({fam.name}, {fam.link})",
        params=params,
        variance_components=vcomp,
        loglik=loglik,
        nobs=nobs,
        excluded=excluded,
        missing_data="complete cases on the model variables (rows dropped are logged)",
        citation="Bates, Maechler, Bolker & Walker (2015). Fitting linear mixed-effects models "
        "using lme4. Journal of Statistical Software, 67(1).",
        notes=notes,
        family=fam.name,
        link=fam.link,
        nagq=int(nagq),
        theta=theta,
        vcov=pd.DataFrame(vc, index=names, columns=names),
        ranef=ranef,
        aic=-2 * loglik + 2 * npar,
        bic=-2 * loglik + math.log(nobs) * npar,
        deviance=-2 * loglik,
        df_resid=nobs - npar,
        converged=grad_ok,
        singular=singular,
        n_by_level={"rows": nobs, **{level_name(k): len(v) for k, v in ranef.items()}},
        formula=formula,
        rows=rows_used,
        outcome=np.column_stack([y, wt]),
        _fixed_spec=mm.model_spec,
        _x=x,
    )
