"""Numerical engine of :mod:`alliance.meta` (arrays in, dictionaries out).

The public functions in :mod:`alliance.meta` validate data frames and build design
matrices; everything here works on plain NumPy arrays so it can be reused by the
sensitivity tools (leave-one-out, influence, trim-and-fill, Egger's test) without
going back through pandas.

The estimators follow the definitions used by R's metafor (Viechtbauer, 2010), so
that the two agree to numerical precision; see ``docs/meta.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize, stats

#: Estimators of the between-study variance accepted by ``fit_uni``.
TAU2_METHODS = ("REML", "ML", "DL", "PM", "HE", "SJ", "FE")

#: Convergence threshold of the iterative estimators (change in tau^2 between steps).
THRESHOLD = 1e-13
MAXITER = 2000


# --------------------------------------------------------------------------------------
# small linear-algebra helpers
# --------------------------------------------------------------------------------------
def wls_parts(w: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (X'WX)^-1 and the projection P = W - W X (X'WX)^-1 X' W."""
    WX = w[:, None] * X
    xtwx_inv = np.linalg.inv(X.T @ WX)
    P = np.diag(w) - WX @ xtwx_inv @ WX.T
    return xtwx_inv, P


def _q_gen(tau2: float, y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Generalized Q statistic y'P(tau2)y (residual weighted sum of squares)."""
    w = 1.0 / (vi + tau2)
    WX = w[:, None] * X
    beta = np.linalg.solve(X.T @ WX, WX.T @ y)
    resid = y - X @ beta
    return float(np.sum(w * resid**2))


def _root(fun, lo: float, hi: float) -> float:
    """Brent's root between ``lo`` and ``hi``, growing ``hi`` until the sign changes."""
    f_lo = fun(lo)
    f_hi = fun(hi)
    grow = 0
    while np.sign(f_hi) == np.sign(f_lo):
        hi *= 10.0
        f_hi = fun(hi)
        grow += 1
        if grow > 30:
            raise RuntimeError(f"no root of the Q-profile equation below tau^2 = {hi:g}")
    return float(
        optimize.brentq(fun, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    )


# --------------------------------------------------------------------------------------
# tau^2 estimators (rma.uni)
# --------------------------------------------------------------------------------------
@dataclass
class Tau2Fit:
    tau2: float
    se_tau2: float
    iterations: int = 0
    converged: bool = True


def _tau2_he(y, vi, X) -> tuple[float, float, np.ndarray, float]:
    k, p = X.shape
    xtx_inv = np.linalg.inv(X.T @ X)
    P = np.eye(k) - X @ xtx_inv @ X.T
    rss = float(y @ P @ y)
    PV = P * vi[None, :]
    tr_pv = float(np.trace(PV))
    return (rss - tr_pv) / (k - p), rss, PV, tr_pv


def estimate_tau2(y: np.ndarray, vi: np.ndarray, X: np.ndarray, method: str) -> Tau2Fit:
    """Between-study variance by one of :data:`TAU2_METHODS` (metafor's definitions)."""
    k, p = X.shape
    if method == "FE":
        return Tau2Fit(0.0, np.nan)
    if k - p < 1:
        raise ValueError(
            f"cannot estimate tau^2 with k = {k} effects and {p} coefficients; "
            "add studies, drop moderators, or use method='FE'"
        )
    if method == "HE":
        tau2, _, PV, tr_pv = _tau2_he(y, vi, X)
        tau2 = max(0.0, tau2)
        se = math.sqrt(
            (2 * np.sum(PV * PV.T) + 4 * tau2 * tr_pv + 2 * tau2**2 * (k - p)) / (k - p) ** 2
        )
        return Tau2Fit(tau2, se)
    if method == "DL":
        _, P = wls_parts(1.0 / vi, X)
        rss = float(y @ P @ y)
        tr_p = float(np.trace(P))
        tau2 = max(0.0, (rss - (k - p)) / tr_p)
        se = math.sqrt((2 * (k - p) + 4 * tau2 * tr_p + 2 * tau2**2 * np.sum(P * P)) / tr_p**2)
        return Tau2Fit(tau2, se)
    if method == "SJ":
        tau2_0 = float(np.var(y))  # var(y) * (k - 1) / k
        if tau2_0 <= 0:
            return Tau2Fit(0.0, np.nan)
        _, P = wls_parts(1.0 / (vi + tau2_0), X)
        rss = float(y @ P @ y)
        tau2 = max(0.0, tau2_0 * rss / (k - p))
        PV = P * vi[None, :]
        se = math.sqrt(
            tau2_0**2
            / (k - p) ** 2
            * (2 * np.sum(PV * PV.T) + 4 * tau2 * np.sum(PV * P) + 2 * tau2**2 * np.sum(P * P))
        )
        return Tau2Fit(tau2, se)
    if method == "PM":
        target = k - p
        if _q_gen(0.0, y, vi, X) < target:
            tau2 = 0.0
        else:
            hi = max(100.0, 10 * float(np.var(y)))
            tau2 = _root(lambda t: _q_gen(t, y, vi, X) - target, 0.0, hi)
        w = 1.0 / (vi + tau2)
        se = math.sqrt(2 * k**2 / (k - p) / np.sum(w) ** 2)
        return Tau2Fit(tau2, se)
    if method in ("ML", "REML"):
        return _tau2_fisher_scoring(y, vi, X, method)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(TAU2_METHODS)}")


def _loglik_uni(tau2: float, y, vi, X, method: str) -> float:
    k, p = X.shape
    w = 1.0 / (vi + tau2)
    WX = w[:, None] * X
    xtwx = X.T @ WX
    beta = np.linalg.solve(xtwx, WX.T @ y)
    rss = float(np.sum(w * (y - X @ beta) ** 2))
    if method == "ML":
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * np.sum(np.log(vi + tau2)) - 0.5 * rss
    return (
        -0.5 * (k - p) * math.log(2 * math.pi)
        + 0.5 * np.linalg.slogdet(X.T @ X)[1]
        - 0.5 * np.sum(np.log(vi + tau2))
        - 0.5 * np.linalg.slogdet(xtwx)[1]
        - 0.5 * rss
    )


def _tau2_fisher_scoring(y, vi, X, method) -> Tau2Fit:
    """ML / REML by Fisher scoring with step halving at the zero boundary (as metafor)."""
    he, *_ = _tau2_he(y, vi, X)
    tau2 = max(0.0, he)
    change = np.inf
    it = 0
    while change > THRESHOLD:
        it += 1
        old = tau2
        w = 1.0 / (vi + tau2)
        _, P = wls_parts(w, X)
        Py = P @ y
        if method == "ML":
            adj = (Py @ Py - np.sum(w)) / np.sum(w**2)
        else:
            adj = (Py @ Py - np.trace(P)) / np.sum(P * P)
        while tau2 + adj < 0:
            adj /= 2
        tau2 = tau2 + adj
        # once the step has shrunk to rounding level relative to tau2, we are done
        change = abs(old - tau2)
        if change <= 4 * np.finfo(float).eps * max(abs(tau2), 1e-300):
            break
        if it > MAXITER:
            return Tau2Fit(tau2, np.nan, it, converged=False)
    # guard against a local maximum: compare with the likelihood at tau2 = 0
    if (
        tau2 > 0
        and _loglik_uni(0.0, y, vi, X, method) - _loglik_uni(tau2, y, vi, X, method) > 1e-10
    ):
        tau2 = 0.0
    w = 1.0 / (vi + tau2)
    _, P = wls_parts(w, X)
    se = math.sqrt(2 / np.sum(w**2)) if method == "ML" else math.sqrt(2 / np.sum(P * P))
    return Tau2Fit(tau2, se, it)


# --------------------------------------------------------------------------------------
# the univariate random-effects model (rma.uni)
# --------------------------------------------------------------------------------------
@dataclass
class UniFit:
    """Everything computed for one random-effects (or fixed-effect) model."""

    y: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    method: str
    test: str
    level: float
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    crit: float
    ddf: float
    tau2: float
    se_tau2: float
    s2w: float
    QE: float
    QEp: float
    QM: float
    QMdf: tuple
    QMp: float
    I2: float
    H2: float
    vt: float
    ll_ml: float
    ll_reml: float
    btt: np.ndarray
    iterations: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])


def fit_uni(
    y: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray | None = None,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    btt: np.ndarray | None = None,
    tau2: float | None = None,
) -> UniFit:
    """Fit a (mixed-effects) meta-regression model, as ``metafor::rma.uni``.

    ``tau2`` fixes the between-study variance instead of estimating it.
    """
    y = np.asarray(y, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = y.shape[0]
    if X is None:
        X = np.ones((k, 1))
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    if tau2 is None:
        t2 = estimate_tau2(y, vi, X, method)
    else:
        t2 = Tau2Fit(float(tau2), np.nan)
    tau2 = t2.tau2
    w = 1.0 / (vi + tau2)
    vb, _ = wls_parts(w, X)
    beta = vb @ ((w[:, None] * X).T @ y)
    resid = y - X @ beta
    rss_f = float(np.sum(w * resid**2))
    s2w = 1.0
    if test == "knha":
        s2w = 0.0 if rss_f <= np.finfo(float).eps else rss_f / (k - p)
    elif test not in ("z", "t"):
        raise ValueError(f"test must be 'z', 't' or 'knha', not {test!r}")
    vb = s2w * vb
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    if btt is None:
        intercept = p > 1 and np.allclose(X[:, 0], 1.0)
        btt = np.arange(1, p) if intercept else np.arange(p)
    btt = np.asarray(btt, dtype=int)
    m = len(btt)
    try:
        QM = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    except (np.linalg.LinAlgError, ValueError):
        QM = np.nan
    alpha = 1 - level
    if test in ("knha", "t"):
        ddf = k - p
        QM = QM / m
        QMdf = (m, k - p)
        QMp = float(stats.f.sf(QM, m, k - p)) if k - p > 0 else np.nan
        pval = 2 * stats.t.sf(np.abs(stat), ddf) if ddf > 0 else np.full(p, np.nan)
        crit = float(stats.t.isf(alpha / 2, ddf)) if ddf > 0 else np.nan
    else:
        ddf = np.inf
        QMdf = (m, None)
        QMp = float(stats.chi2.sf(QM, m))
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = float(stats.norm.isf(alpha / 2))
    ci_low = beta - crit * se
    ci_high = beta + crit * se

    # heterogeneity
    if k > p:
        wf = 1.0 / vi
        _, P = wls_parts(wf, X)
        QE = max(0.0, float(y @ P @ y))
        QEp = float(stats.chi2.sf(QE, k - p))
        vt = (k - p) / float(np.trace(P))
        if method == "FE":
            I2 = max(0.0, 100 * (QE - (k - p)) / QE) if QE > 0 else 0.0
            H2 = QE / (k - p)
        else:
            I2 = 100 * tau2 / (vt + tau2)
            H2 = tau2 / vt + 1
    else:
        QE, QEp, I2, H2, vt = 0.0, 1.0, 0.0, 1.0, 0.0

    ll_ml = -0.5 * k * math.log(2 * math.pi) - 0.5 * np.sum(np.log(vi + tau2)) - 0.5 * rss_f
    xtwx = X.T @ (w[:, None] * X)
    ll_reml = (
        -0.5 * (k - p) * math.log(2 * math.pi)
        + 0.5 * np.linalg.slogdet(X.T @ X)[1]
        - 0.5 * np.sum(np.log(vi + tau2))
        - 0.5 * np.linalg.slogdet(xtwx)[1]
        - 0.5 * rss_f
    )
    return UniFit(
        y=y,
        vi=vi,
        X=X,
        method=method,
        test=test,
        level=level,
        beta=beta,
        vb=vb,
        se=se,
        stat=stat,
        pval=np.asarray(pval, dtype=float),
        ci_low=ci_low,
        ci_high=ci_high,
        crit=crit,
        ddf=float(ddf),
        tau2=tau2,
        se_tau2=t2.se_tau2,
        s2w=s2w,
        QE=QE,
        QEp=QEp,
        QM=QM,
        QMdf=QMdf,
        QMp=QMp,
        I2=I2,
        H2=H2,
        vt=vt,
        ll_ml=float(ll_ml),
        ll_reml=float(ll_reml),
        btt=btt,
        iterations=t2.iterations,
    )


def predict_uni(fit: UniFit, x: np.ndarray | None = None) -> dict:
    """Predicted value, its CI and the prediction interval (as ``predict.rma``)."""
    if x is None:
        x = np.zeros(fit.p)
        x[0] = 1.0
    x = np.asarray(x, dtype=float)
    pred = float(x @ fit.beta)
    se = float(math.sqrt(x @ fit.vb @ x))
    crit = fit.crit
    pi_se = math.sqrt(se**2 + fit.tau2)
    return {
        "pred": pred,
        "se": se,
        "ci_low": pred - crit * se,
        "ci_high": pred + crit * se,
        "pi_low": pred - crit * pi_se,
        "pi_high": pred + crit * pi_se,
    }


def qprofile_tau2(fit: UniFit) -> tuple[float, float]:
    """Q-profile confidence interval for tau^2 (Viechtbauer 2007; ``confint.rma.uni``)."""
    y, vi, X = fit.y, fit.vi, fit.X
    k, p = X.shape
    df = k - p
    if df < 1:
        return (np.nan, np.nan)
    alpha = 1 - fit.level
    crit_u = stats.chi2.isf(alpha / 2, df)  # upper quantile -> lower bound
    crit_l = stats.chi2.ppf(alpha / 2, df)  # lower quantile -> upper bound
    q0 = _q_gen(0.0, y, vi, X)
    hi = max(100.0, 10 * fit.tau2)
    if q0 < crit_l:
        ub = 0.0
    else:
        ub = _root(lambda t: _q_gen(t, y, vi, X) - crit_l, 0.0, hi)
    if q0 < crit_u:
        lb = 0.0
    else:
        lb = _root(lambda t: _q_gen(t, y, vi, X) - crit_u, 0.0, hi)
    return lb, ub


# --------------------------------------------------------------------------------------
# multilevel model (rma.mv with nested random intercepts)
# --------------------------------------------------------------------------------------
@dataclass
class MvFit:
    y: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    Z: list  # one (k x g) indicator matrix per level
    method: str
    test: str
    level: float
    sigma2: np.ndarray
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    crit: float
    ddf: float
    QE: float
    QEp: float
    QM: float
    QMdf: tuple
    QMp: float
    I2: np.ndarray
    ll: float
    V: np.ndarray
    btt: np.ndarray
    iterations: int = 0
    converged: bool = True

    @property
    def k(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])


def _mv_parts(sigma2, vi, G, X):
    V = np.diag(vi) + sum(s * g for s, g in zip(sigma2, G, strict=True))
    Vinv = np.linalg.inv(V)
    Vinv = (Vinv + Vinv.T) / 2
    VX = Vinv @ X
    xtvx_inv = np.linalg.inv(X.T @ VX)
    P = Vinv - VX @ xtvx_inv @ VX.T
    return V, Vinv, xtvx_inv, P


def _mv_loglik(sigma2, y, vi, G, X, method):
    k, p = X.shape
    V, Vinv, xtvx_inv, P = _mv_parts(sigma2, vi, G, X)
    beta = xtvx_inv @ (X.T @ Vinv @ y)
    r = y - X @ beta
    rss = float(r @ Vinv @ r)
    ld = np.linalg.slogdet(V)[1]
    if method == "ML":
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * ld - 0.5 * rss
    return (
        -0.5 * (k - p) * math.log(2 * math.pi)
        + 0.5 * np.linalg.slogdet(X.T @ X)[1]
        - 0.5 * ld
        + 0.5 * np.linalg.slogdet(xtvx_inv)[1]
        - 0.5 * rss
    )


def fit_mv(
    y: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray,
    Z: list,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    btt: np.ndarray | None = None,
) -> MvFit:
    """Nested random-intercept model, as ``metafor::rma.mv(random = ~ 1 | a/b)``.

    Variance components are found by Fisher scoring on the (restricted) likelihood with
    projection onto sigma^2 >= 0, then checked by the likelihood itself.
    """
    if method not in ("REML", "ML"):
        raise ValueError(f"method must be 'REML' or 'ML' for a multilevel model, not {method!r}")
    y = np.asarray(y, float)
    vi = np.asarray(vi, float)
    k, p = X.shape
    G = [z @ z.T for z in Z]
    q = len(G)
    # start: split the HE estimate of total heterogeneity evenly
    he, *_ = _tau2_he(y, vi, X)
    start = max(he, 0.01 * float(np.var(y)), 1e-8) / q
    sigma2 = np.full(q, start)
    it = 0
    converged = False
    ll_old = _mv_loglik(sigma2, y, vi, G, X, method)
    while it < MAXITER:
        it += 1
        V, Vinv, xtvx_inv, P = _mv_parts(sigma2, vi, G, X)
        M = P if method == "REML" else Vinv
        Py = P @ y
        MG = [M @ g for g in G]
        score = np.array(
            [0.5 * (Py @ g @ Py) - 0.5 * np.trace(mg) for g, mg in zip(G, MG, strict=True)]
        )
        info = np.array([[0.5 * np.sum(a * b.T) for b in MG] for a in MG])
        # free parameters: those not stuck at zero with a negative score
        free = ~((sigma2 <= 0) & (score <= 0))
        step = np.zeros(q)
        if free.any():
            step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
        new = np.maximum(sigma2 + step, 0.0)
        ll_new = _mv_loglik(new, y, vi, G, X, method)
        halve = 0
        while ll_new < ll_old - 1e-12 and halve < 50:
            step /= 2
            new = np.maximum(sigma2 + step, 0.0)
            ll_new = _mv_loglik(new, y, vi, G, X, method)
            halve += 1
        change = np.max(np.abs(new - sigma2))
        sigma2, ll_old = new, ll_new
        if change < THRESHOLD or change <= 4 * np.finfo(float).eps * np.max(np.abs(sigma2)):
            converged = True
            break
    V, Vinv, xtvx_inv, P = _mv_parts(sigma2, vi, G, X)
    beta = xtvx_inv @ (X.T @ Vinv @ y)
    vb = xtvx_inv
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    if btt is None:
        intercept = p > 1 and np.allclose(X[:, 0], 1.0)
        btt = np.arange(1, p) if intercept else np.arange(p)
    btt = np.asarray(btt, int)
    m = len(btt)
    QM = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    alpha = 1 - level
    if test == "t":
        ddf = k - p
        QM /= m
        QMdf = (m, k - p)
        QMp = float(stats.f.sf(QM, m, k - p))
        pval = 2 * stats.t.sf(np.abs(stat), ddf)
        crit = float(stats.t.isf(alpha / 2, ddf))
    elif test == "z":
        ddf = np.inf
        QMdf = (m, None)
        QMp = float(stats.chi2.sf(QM, m))
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = float(stats.norm.isf(alpha / 2))
    else:
        raise ValueError(f"test must be 'z' or 't' for a multilevel model, not {test!r}")
    wf = 1.0 / vi
    _, Pf = wls_parts(wf, X)
    QE = max(0.0, float(y @ Pf @ y))
    QEp = float(stats.chi2.sf(QE, k - p))
    vt = (k - p) / float(np.trace(Pf))
    total = float(np.sum(sigma2))
    I2 = 100 * np.append(sigma2, total) / (total + vt)
    return MvFit(
        y=y,
        vi=vi,
        X=X,
        Z=Z,
        method=method,
        test=test,
        level=level,
        sigma2=sigma2,
        beta=beta,
        vb=vb,
        se=se,
        stat=stat,
        pval=np.asarray(pval, float),
        ci_low=beta - crit * se,
        ci_high=beta + crit * se,
        crit=crit,
        ddf=float(ddf),
        QE=QE,
        QEp=QEp,
        QM=QM,
        QMdf=QMdf,
        QMp=QMp,
        I2=I2,
        ll=_mv_loglik(sigma2, y, vi, G, X, method),
        V=V,
        btt=btt,
        iterations=it,
        converged=converged,
    )


# --------------------------------------------------------------------------------------
# cluster-robust variance with the CR2 small-sample correction (clubSandwich)
# --------------------------------------------------------------------------------------
def _inv_sqrt_sym(A: np.ndarray) -> np.ndarray:
    vals, vecs = linalg.eigh((A + A.T) / 2)
    tol = np.max(np.abs(vals)) * 1e-12 if vals.size else 0.0
    inv = np.where(vals > tol, 1.0 / np.sqrt(np.clip(vals, tol, None)), 0.0)
    return (vecs * inv) @ vecs.T


def cr2(y: np.ndarray, X: np.ndarray, V: np.ndarray, beta: np.ndarray, cluster: np.ndarray) -> dict:
    """CR2 sandwich estimator with inverse-variance working weights W = V^-1.

    Follows Pustejovsky & Tipton (2018) as implemented in clubSandwich's ``vcovCR`` for
    ``rma.uni`` / ``rma.mv`` objects, with Satterthwaite degrees of freedom for each
    coefficient (``coef_test(..., test = "Satterthwaite")``).
    """
    k, p = X.shape
    labels, idx = np.unique(cluster, return_inverse=True)
    J = len(labels)
    if J < 2:
        raise ValueError("cluster-robust variances need at least 2 clusters")
    groups = [np.flatnonzero(idx == j) for j in range(J)]
    W = np.linalg.inv(V)
    W = (W + W.T) / 2
    # clubSandwich works with the per-cluster blocks of W and of the target V only
    Wj = [W[np.ix_(g, g)] for g in groups]
    Xj = [X[g] for g in groups]
    M = np.linalg.inv(sum(x.T @ w @ x for x, w in zip(Xj, Wj, strict=True)))
    resid = y - X @ beta
    E = []
    for g, x, w in zip(groups, Xj, Wj, strict=True):
        theta = V[np.ix_(g, g)]
        R = linalg.cholesky(theta, lower=False)  # theta = R'R
        IH = np.eye(len(g)) - x @ M @ x.T @ w
        Gm = R @ IH @ theta @ R.T
        A = R.T @ _inv_sqrt_sym(Gm) @ R
        E.append(x.T @ w @ A)
    comps = np.column_stack([e @ resid[g] for e, g in zip(E, groups, strict=True)])
    vcov = M @ (comps @ comps.T) @ M
    # Satterthwaite degrees of freedom
    L = linalg.cholesky(M, lower=True)
    ME = [M @ e for e in E]
    Glist = [
        me @ linalg.cholesky(V[np.ix_(g, g)], lower=False).T
        for me, g in zip(ME, groups, strict=True)
    ]
    H = np.stack([me @ x @ L for me, x in zip(ME, Xj, strict=True)], axis=2)  # p x p x J
    df = np.empty(p)
    for i in range(p):
        Hi = H[i]  # p x J
        Pi = -(Hi.T @ Hi)
        Pi[np.diag_indices(J)] += np.array([np.sum(gm[i] ** 2) for gm in Glist])
        df[i] = np.trace(Pi) ** 2 / np.sum(Pi**2)
    return {"vcov": vcov, "df": df, "clusters": J}
