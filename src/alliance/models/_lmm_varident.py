"""Group-specific residual variances for :func:`alliance.models.lmm` (nlme's ``varIdent``).

With ``residual_groups="dv"`` the residual SD of a row in group ``g`` is ``sigma * r_g``, with
``r`` of the first group (in sorted order) fixed at 1, as ``lme(..., weights = varIdent(form =
~ 1 | dv))`` in nlme (Pinheiro & Bates 2000, sec. 5.2). For fixed ratios the model is an
ordinary LMM of the rows divided by ``r_g`` (outcome, fixed- and random-effect columns alike):
the random effects keep their scale, and the (restricted) log-likelihood of the original data
is that of the scaled data minus ``sum_i log r_g(i)`` (the Jacobian of the scaling; REML's
``X' V^-1 X`` is unchanged). So the ratios are found by an outer one- or few-dimensional
search over ``log r`` around the engine's profiled deviance in theta, and the final fit is the
engine's at the best ratios.

Standard errors of the fixed effects are conditional on the variance parameters (as nlme's
and lme4's). :func:`varpar_vcov` gives the asymptotic covariance of all variance
parameters, ratios included (twice the inverse Hessian of the deviance), and
:func:`varcomp_vcov` that of the variance components on their natural scale, which the
mediation model needs for the covariance of random paths.

Everything here works on numpy arrays and engine objects; ``lmm.py`` owns the formula side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize

__all__ = [
    "fit_ratios",
    "random_covariance_vcov",
    "row_scale",
    "start_log_ratios",
    "varcomp_vcov",
    "varpar_vcov",
]

# make(log_r) -> deviance object of the rows divided by their group's ratio r_g (the engine's
# ProfiledDeviance or CrossedDeviance); log r of the groups after the first
MakeDeviance = Callable[[np.ndarray], Any]


def row_scale(log_r: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row multipliers ``1 / r_g(i)`` (the reference group first, at ratio 1)."""
    ratios = np.exp(np.r_[0.0, np.asarray(log_r, dtype=float)])
    return 1.0 / ratios[codes]


def start_log_ratios(y: np.ndarray, x: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """Log SD ratios of the least-squares residuals by group (a starting value)."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    res = y - x @ beta
    sd = np.array([np.sqrt(np.mean(res[codes == g] ** 2)) for g in range(ngroups)])
    sd = np.maximum(sd, 1e-8 * max(sd.max(), 1e-300))
    return np.log(sd[1:] / sd[0])


def _inner(dev, theta0: np.ndarray, ftol: float = 1e-11) -> tuple[float, np.ndarray]:
    """Minimize the profiled deviance in theta (L-BFGS-B, analytic gradient, scaled)."""
    st = dev.st
    diag = np.array([r == c for _, r, c in st.theta_pos])
    scale = np.where(diag, np.maximum(np.abs(theta0), 1e-3), 1.0)
    lower = st.lower_bounds()
    bounds = [
        (lo / s if np.isfinite(lo) else None, None) for lo, s in zip(lower, scale, strict=True)
    ]

    def fun(phi):
        d, g = dev.deviance_and_gradient(phi * scale)
        return d, g * scale

    res = optimize.minimize(
        fun,
        theta0 / scale,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": ftol, "gtol": 1e-8, "maxcor": 20},
    )
    theta = res.x * scale
    theta[diag & (theta < 0)] = 0.0
    return float(dev.deviance(theta)), theta


def fit_ratios(
    make: MakeDeviance,
    codes: np.ndarray,
    log_r0: np.ndarray,
    theta0: np.ndarray,
) -> dict[str, Any]:
    """Maximize the (restricted) likelihood over theta and the residual SD ratios jointly.

    One L-BFGS-B run over ``(theta, log r)``: the theta gradient is the engine's analytic one
    at the current ratios, the ``log r`` gradient a central difference of the deviance (the
    rows rescaled). Returns ``log_r`` (one per group after the first), ``theta`` at the
    optimum (the engine's parametrization) and the deviance of the original data there.
    """
    counts = np.bincount(codes)
    theta0 = np.asarray(theta0, dtype=float)
    log_r0 = np.asarray(log_r0, dtype=float)
    k, m = len(theta0), len(log_r0)
    dev0 = make(log_r0)
    st0 = dev0.st
    diag = np.array([r == c for _, r, c in st0.theta_pos])
    if not np.isfinite(dev0.deviance(theta0)):
        # a moment start can be far off for a slope on a small-variance column: the factor
        # breaks down; start from smaller relative SDs, uncorrelated
        for sd in (1.0, 0.1, 0.01):
            cand = np.where(diag, sd, 0.0)
            if np.isfinite(dev0.deviance(cand)):
                theta0 = cand
                break
    scale = np.where(diag, np.maximum(np.abs(theta0), 1e-3), 1.0)
    lower = st0.lower_bounds()
    bounds = [
        (lo / s if np.isfinite(lo) else None, None) for lo, s in zip(lower, scale, strict=True)
    ] + [(-12.0, 12.0)] * m
    cache: dict[bytes, Any] = {}
    evals = {"n": 0}

    def dev_at(log_r):
        key = np.asarray(log_r, dtype=float).tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = make(log_r)
        return cache[key]

    def value(theta, log_r):
        return dev_at(log_r).deviance(theta) + 2.0 * float(counts[1:] @ log_r)

    phi0 = np.r_[theta0 / scale, log_r0]

    def fun(phi):
        evals["n"] += 1
        theta, log_r = phi[:k] * scale, phi[k:]
        d, g = dev_at(log_r).deviance_and_gradient(theta)
        if not np.isfinite(d):
            # where the factor breaks down, a steep bowl around the start, never a flat
            # infinite value: a zero gradient there read as convergence (NaN estimates)
            away = phi - phi0
            return 1e10 * (1.0 + float(away @ away)), 2e10 * away
        g_r = np.empty(m)
        for j in range(m):
            h = 1e-6
            e = np.zeros(m)
            e[j] = h
            g_r[j] = (value(theta, log_r + e) - value(theta, log_r - e)) / (2 * h)
        return d + 2.0 * float(counts[1:] @ log_r), np.r_[g * scale, g_r]

    res = optimize.minimize(
        fun,
        phi0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
    )
    theta, log_r = res.x[:k] * scale, res.x[k:]
    theta[diag & (theta < 0)] = 0.0
    dev = make(log_r)
    d, theta = _inner(dev, theta, ftol=1e-14)
    return {
        "log_r": log_r,
        "theta": theta,
        "deviance": d + 2.0 * float(counts[1:] @ log_r),
        "evaluations": evals["n"],
        "message": str(res.message),
    }


def _full_deviance(make: MakeDeviance, codes: np.ndarray, reml: bool):
    """``-2 log L(theta, sigma, log r)`` (sigma not profiled) and its analytic theta part."""
    counts = np.bincount(codes)

    def parts(theta, sigma, log_r):
        dev = make(log_r)
        prof, g_ld, g_r2, r2, _ = dev.varpar_parts(theta)
        nr = dev.st.n - dev.st.p if reml else dev.st.n
        ld = prof - nr * (1.0 + math.log(2.0 * math.pi * r2 / nr))
        s2 = sigma * sigma
        value = ld + r2 / s2 + nr * math.log(2.0 * math.pi * s2) + 2.0 * float(counts[1:] @ log_r)
        g_theta = g_ld + g_r2 / s2
        g_sigma = -2.0 * r2 / (s2 * sigma) + 2.0 * nr / sigma
        return value, g_theta, g_sigma

    return parts


def varpar_vcov(
    make: MakeDeviance,
    codes: np.ndarray,
    theta: np.ndarray,
    sigma: float,
    log_r: np.ndarray,
    *,
    reml: bool,
    rel: float = 1e-4,
) -> np.ndarray:
    """Asymptotic covariance of ``(theta, sigma, log r)``: ``2 H^-1`` of the deviance.

    The gradient is analytic in theta and sigma and a central difference in ``log r``; the
    Hessian is its central difference.
    """
    parts = _full_deviance(make, codes, reml)
    k, m = len(theta), len(log_r)
    x0 = np.r_[theta, sigma, log_r]

    def grad(xv):
        th, sg, lr = xv[:k], float(xv[k]), xv[k + 1 :]
        _, g_t, g_s = parts(th, sg, lr)
        g_r = np.empty(m)
        for j in range(m):
            h = 1e-4
            e = np.zeros(m)
            e[j] = h
            g_r[j] = (parts(th, sg, lr + e)[0] - parts(th, sg, lr - e)[0]) / (2 * h)
        return np.r_[g_t, g_s, g_r]

    size = k + 1 + m
    hess = np.empty((size, size))
    for i in range(size):
        h = rel * max(abs(x0[i]), 0.1)
        e = np.zeros(size)
        e[i] = h
        hess[:, i] = (grad(x0 + e) - grad(x0 - e)) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    vals, vecs = np.linalg.eigh(hess)
    keep = vals > 1e-8 * max(abs(vals).max(), 1e-300)
    return 2.0 * (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T


def varcomp_vcov(
    templates: list[np.ndarray],
    shifts: list[np.ndarray],
    theta: np.ndarray,
    sigma: float,
    log_r: np.ndarray,
    vcov_full: np.ndarray,
    entries: list[tuple[int, int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Values and asymptotic covariance of random-effect (co)variances ``sigma^2 (A L L'A')``.

    ``entries`` lists ``(level, i, j)``; the delta method maps ``vcov_full`` (of theta, sigma,
    log r) to these entries through a numerical Jacobian.
    """
    k = len(theta)
    m = len(log_r)

    def values(xv):
        th, sg = xv[:k], xv[k]
        out = []
        covs = []
        for tmpl, a in zip(templates, shifts, strict=True):
            lam = np.zeros(tmpl.shape)
            mask = tmpl >= 0
            lam[mask] = th[tmpl[mask]]
            al = a @ lam
            covs.append(sg * sg * al @ al.T)
        for lev, i, j in entries:
            out.append(covs[lev][i, j])
        return np.array(out)

    x0 = np.r_[theta, sigma, log_r]
    v0 = values(x0)
    jac = np.empty((len(entries), k + 1 + m))
    for i in range(k + 1 + m):
        h = 1e-6 * max(abs(x0[i]), 0.1)
        e = np.zeros(k + 1 + m)
        e[i] = h
        jac[:, i] = (values(x0 + e) - values(x0 - e)) / (2 * h)
    return v0, jac @ vcov_full @ jac.T


def random_covariance_vcov(
    fit, entries: list[tuple[str, str, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """Random-effect (co)variances of an :class:`~alliance.models.LmmResult` and their
    asymptotic covariance matrix (delta method; residual SD ratios included when fitted).

    ``entries``: ``(level name, term, term2)`` (``term == term2`` for a variance).
    """
    f = fit._fit
    eng = f["engine"]
    names = [lv.name for lv in f["levels"]]
    idx = []
    for group, t1, t2 in entries:
        k = names.index(group)
        terms = f["levels"][k].terms
        idx.append((k, terms.index(t1), terms.index(t2)))
    vi = f.get("varident")
    if vi is not None:
        log_r = vi["log_r"]
        vfull = varpar_vcov(vi["make"], vi["codes"], eng["theta"], fit.sigma, log_r, reml=fit.reml)
    else:
        log_r = np.zeros(0)
        vfull = np.asarray(fit.vcov_varpar)
    return varcomp_vcov(eng["templates"], eng["shifts"], eng["theta"], fit.sigma, log_r, vfull, idx)
