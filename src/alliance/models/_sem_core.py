"""A small structural equation engine: RAM matrices and full-information ML (FIML).

The models of :mod:`alliance.models.sem` are linear SEMs with a mean structure. This module
holds the parts they share:

* a lavaan-like parameter table (``lhs``, ``op``, ``rhs``, ``label``, ``free``, ``value``)
  with the operators ``=~`` (loading), ``~`` (regression), ``~~`` ((co)variance) and
  ``~1`` (intercept or mean); rows that share a ``label`` are constrained equal;
* the RAM representation of McArdle & McDonald (1984): directed paths ``A``, symmetric
  paths ``S`` and means ``m`` over all variables, with the model-implied moments of the
  observed variables ``Sigma = F B S B' F'`` and ``mu = F B m``, ``B = (I - A)^-1``;
* the FIML log-likelihood over the missing-data patterns (Arbuckle, 1996), with its
  analytic gradient; the estimates maximise it (L-BFGS, then Newton steps on the
  numerical Hessian of the analytic gradient);
* standard errors from the observed information (the Hessian of the log-likelihood),
  which is what lavaan reports for ``missing = "fiml"`` (``information = "observed"``).

References
----------
Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data.
In G. A. Marcoulides & R. E. Schumacker (Eds.), Advanced structural equation modeling
(pp. 243-277). Erlbaum.

McArdle, J. J., & McDonald, R. P. (1984). Some algebraic properties of the Reticular
Action Model for moment structures. British Journal of Mathematical and Statistical
Psychology, 37(2), 234-251.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

__all__ = [
    "ParTable",
    "FimlFit",
    "RobustFit",
    "fit_fiml",
    "fit_indices",
    "maximize",
    "casewise_scores",
    "robust_vcov",
    "unrestricted_fit",
    "saturated_information",
    "scaled_test",
]

_LOG2PI = math.log(2.0 * math.pi)


@dataclass
class ParTable:
    """A model as a list of parameter rows.

    Each row is ``(lhs, op, rhs, label, free, value)``: ``value`` is the start value of a
    free parameter or the value of a fixed one. Free rows with the same non-empty label
    share one parameter.
    """

    observed: list[str]
    rows: list[tuple[str, str, str, str, bool, float]] = field(default_factory=list)

    def add(
        self, lhs: str, op: str, rhs: str, *, label: str = "", free: bool = True, value: float = 0.0
    ) -> None:
        if op not in {"=~", "~", "~~", "~1"}:
            raise ValueError(f"unknown operator {op!r}")
        self.rows.append((lhs, op, rhs, label, bool(free), float(value)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["lhs", "op", "rhs", "label", "free", "value"])


class _Ram:
    """Index arrays that map the free parameters into the RAM matrices."""

    def __init__(self, table: ParTable):
        obs = list(table.observed)
        names = list(obs)
        for lhs, op, rhs, *_ in table.rows:
            for v in (lhs, rhs) if op != "~1" else (lhs,):
                if v not in names:
                    names.append(v)
        self.names = names
        self.n_obs = len(obs)
        self.n_var = len(names)
        pos = {v: i for i, v in enumerate(names)}
        # parameter index of every free row
        ids: dict[str, int] = {}
        par_of_row = []
        start = []
        for k, (_lhs, _op, _rhs, label, free, value) in enumerate(table.rows):
            if not free:
                par_of_row.append(-1)
                continue
            key = label if label else f"__row{k}"
            if key not in ids:
                ids[key] = len(ids)
                start.append(value)
            par_of_row.append(ids[key])
        self.n_par = len(ids)
        self.start = np.asarray(start, dtype=float)
        self.par_of_row = np.asarray(par_of_row, dtype=int)
        a_fixed = np.zeros((self.n_var, self.n_var))
        s_fixed = np.zeros((self.n_var, self.n_var))
        m_fixed = np.zeros(self.n_var)
        a_idx, s_idx, m_idx = [], [], []  # (row, col, par) triples
        for (lhs, op, rhs, _label, free, value), par in zip(table.rows, par_of_row, strict=True):
            if op == "=~":
                i, j = pos[rhs], pos[lhs]
                (a_idx.append((i, j, par)) if free else a_fixed.__setitem__((i, j), value))
            elif op == "~":
                i, j = pos[lhs], pos[rhs]
                (a_idx.append((i, j, par)) if free else a_fixed.__setitem__((i, j), value))
            elif op == "~~":
                i, j = pos[lhs], pos[rhs]
                if free:
                    s_idx.append((i, j, par))
                else:
                    s_fixed[i, j] = s_fixed[j, i] = value
            else:
                i = pos[lhs]
                (m_idx.append((i, par)) if free else m_fixed.__setitem__(i, value))
        self.a_fixed, self.s_fixed, self.m_fixed = a_fixed, s_fixed, m_fixed
        self.a_idx = np.asarray(a_idx, dtype=int).reshape(-1, 3)
        self.s_idx = np.asarray(s_idx, dtype=int).reshape(-1, 3)
        self.m_idx = np.asarray(m_idx, dtype=int).reshape(-1, 2)

    def scales(self, sd_observed: np.ndarray, table: ParTable) -> np.ndarray:
        """A typical size of every free parameter, from the observed SDs.

        A latent variable takes the smallest scale of its indicators over their fixed
        loadings (a slope with loadings 0..T-1 is small); a path
        ``i <- j`` scales as ``sd_i / sd_j``, a (co)variance as ``sd_i sd_j``, a mean as
        ``sd_i``. Optimising ``theta / scale`` makes the problem well conditioned.
        """
        sd = dict(zip(self.names[: self.n_obs], sd_observed, strict=True))
        latent: dict[str, float] = {}
        for lhs, op, rhs, _label, free, value in table.rows:
            if op == "=~" and lhs not in sd:
                size = abs(value) if not free and value != 0 else 1.0
                latent[lhs] = min(latent.get(lhs, np.inf), sd.get(rhs, 1.0) / size)
        sd.update(latent)
        out = np.ones(self.n_par)
        done = np.zeros(self.n_par, dtype=bool)
        for (lhs, op, rhs, *_), par in zip(table.rows, self.par_of_row, strict=True):
            if par < 0 or done[par]:
                continue
            a, b = sd.get(lhs, 1.0), sd.get(rhs, 1.0)
            if op == "=~":
                out[par] = b / a
            elif op == "~":
                out[par] = a / b
            elif op == "~~":
                out[par] = a * b
            else:
                out[par] = a
            done[par] = True
        return out

    def matrices(self, theta: np.ndarray):
        a = self.a_fixed.copy()
        s = self.s_fixed.copy()
        m = self.m_fixed.copy()
        if len(self.a_idx):
            a[self.a_idx[:, 0], self.a_idx[:, 1]] = theta[self.a_idx[:, 2]]
        if len(self.s_idx):
            s[self.s_idx[:, 0], self.s_idx[:, 1]] = theta[self.s_idx[:, 2]]
            s[self.s_idx[:, 1], self.s_idx[:, 0]] = theta[self.s_idx[:, 2]]
        if len(self.m_idx):
            m[self.m_idx[:, 0]] = theta[self.m_idx[:, 1]]
        b = np.linalg.inv(np.eye(self.n_var) - a)
        return a, s, m, b

    def implied(self, theta: np.ndarray):
        """Model-implied covariance (all variables) and observed mean/covariance."""
        _a, s, m, b = self.matrices(theta)
        total = b @ s @ b.T
        mean = b @ m
        no = self.n_obs
        return total, mean, total[:no, :no], mean[:no]


@dataclass
class _Group:
    """Missing-data patterns with the same number of observed variables, stacked."""

    index: np.ndarray  # (g, k) observed variable positions
    n: np.ndarray  # (g,) rows per pattern
    mean: np.ndarray  # (g, k)
    cov: np.ndarray  # (g, k, k), divisor n


def _patterns(y: np.ndarray) -> tuple[list[_Group], int]:
    seen = ~np.isnan(y)
    keep = seen.any(axis=1)
    y, seen = y[keep], seen[keep]
    keys, inverse = np.unique(seen, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    by_size: dict[int, list] = {}
    for p, key in enumerate(keys):
        rows = y[inverse == p][:, key]
        mean = rows.mean(axis=0)
        dev = rows - mean
        by_size.setdefault(int(key.sum()), []).append(
            (np.flatnonzero(key), len(rows), mean, dev.T @ dev / len(rows))
        )
    groups = [
        _Group(
            index=np.stack([m[0] for m in members]),
            n=np.array([m[1] for m in members], dtype=float),
            mean=np.stack([m[2] for m in members]),
            cov=np.stack([m[3] for m in members]),
        )
        for _k, members in sorted(by_size.items())
    ]
    return groups, len(keys)


class _Objective:
    """The FIML log-likelihood over the missing-data patterns, with its gradient.

    Each pattern needs the inverse and the log-determinant of its observed block
    ``Sigma_oo``. A pattern with fewer missing (m) than observed (k) variables gets them
    from the inverse ``Omega`` of the whole ``Sigma`` (one inverse per evaluation):
    ``Sigma_oo^-1 = Omega_oo - Omega_om Omega_mm^-1 Omega_mo`` and
    ``log det Sigma_oo = log det Sigma + log det Omega_mm``, an m x m instead of a k x k
    inverse (most patterns of a panel miss a few sessions; issue 16). When ``Sigma`` as a
    whole is not positive definite every block is inverted directly, as before.
    """

    def __init__(self, ram: _Ram, groups: list[_Group]):
        self.ram = ram
        self.groups = groups
        self.const = (
            -0.5 * _LOG2PI * sum(float(g.n @ np.full(len(g.n), g.index.shape[1])) for g in groups)
        )
        self.n = int(sum(g.n.sum() for g in groups))
        p = ram.n_obs
        # flat positions of each pattern's observed block in the p x p matrix (for bincount)
        self.flat_sig = [(g.index[:, :, None] * p + g.index[:, None, :]).ravel() for g in groups]
        self.flat_mu = [g.index.ravel() for g in groups]
        # the missing positions, for the groups inverted through Omega
        self.flat_om: list[np.ndarray | None] = []
        self.flat_mm: list[np.ndarray | None] = []
        for g in groups:
            k = g.index.shape[1]
            if p - k >= k:
                self.flat_om.append(None)
                self.flat_mm.append(None)
                continue
            seen = np.zeros((len(g.n), p), dtype=bool)
            np.put_along_axis(seen, g.index, True, axis=1)
            miss = np.stack([np.flatnonzero(~row) for row in seen]).reshape(len(g.n), p - k)
            self.flat_om.append((g.index[:, :, None] * p + miss[:, None, :]).ravel())
            self.flat_mm.append((miss[:, :, None] * p + miss[:, None, :]).ravel())
        self.any_complement = any(f is not None for f in self.flat_om)
        self.flat_sig_all = np.concatenate(self.flat_sig)
        self.flat_mu_all = np.concatenate(self.flat_mu)

    def _block_inverses(self, sigma: np.ndarray):
        """Yield ``(inverse, logdet)`` of every group's observed blocks (None: not PD)."""
        omega = None
        if self.any_complement:
            try:
                chol = np.linalg.cholesky(sigma)
                logdet_all = 2.0 * float(np.log(np.diagonal(chol)).sum())
                omega = np.linalg.inv(sigma)
                flat_omega = omega.ravel()
            except np.linalg.LinAlgError:
                omega = None
        flat_sigma = sigma.ravel()
        for k_grp, grp in enumerate(self.groups):
            g, k = grp.index.shape
            if omega is not None and self.flat_om[k_grp] is not None:
                m = sigma.shape[0] - k
                inv = flat_omega[self.flat_sig[k_grp]].reshape(g, k, k)
                if m == 0:
                    yield inv, np.full(g, logdet_all)
                    continue
                o_mm = flat_omega[self.flat_mm[k_grp]].reshape(g, m, m)
                o_om = flat_omega[self.flat_om[k_grp]].reshape(g, k, m)
                try:
                    chol_mm = np.linalg.cholesky(o_mm)
                except np.linalg.LinAlgError:  # pragma: no cover - Omega is PD here
                    yield None, None
                    return
                logdet = logdet_all + 2.0 * np.log(np.diagonal(chol_mm, axis1=1, axis2=2)).sum(1)
                inv = inv - o_om @ np.linalg.solve(o_mm, np.swapaxes(o_om, 1, 2))
                yield inv, logdet
                continue
            sub = flat_sigma[self.flat_sig[k_grp]].reshape(g, k, k)
            try:
                chol = np.linalg.cholesky(sub)
            except np.linalg.LinAlgError:
                yield None, None
                return
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            yield np.linalg.inv(sub), logdet

    def loglik(self, theta: np.ndarray, gradient: bool = False):
        ram = self.ram
        fail = (-np.inf, None) if gradient else -np.inf
        try:
            _a, s, m, b = ram.matrices(theta)
        except np.linalg.LinAlgError:
            return fail
        p_mat = b[: ram.n_obs]  # F B
        sigma = p_mat @ s @ p_mat.T
        mu = p_mat @ m
        ll = self.const
        p_obs = ram.n_obs
        if gradient:
            w_sig, w_mu = [], []
        for grp, (inv, logdet) in zip(self.groups, self._block_inverses(sigma), strict=False):
            if inv is None:
                return fail
            d = grp.mean - mu[grp.index]
            w = grp.cov + d[:, :, None] * d[:, None, :]
            ll -= 0.5 * float(grp.n @ (logdet + np.einsum("gij,gij->g", inv, w)))
            if gradient:
                iw = inv @ w @ inv
                w_sig.append((-0.5 * grp.n[:, None, None] * (inv - iw)).ravel())
                w_mu.append((grp.n[:, None] * np.einsum("gij,gj->gi", inv, d)).ravel())
        if gradient and np.isfinite(ll):
            g_sig = np.bincount(
                self.flat_sig_all, weights=np.concatenate(w_sig), minlength=p_obs * p_obs
            ).reshape(p_obs, p_obs)
            g_mu = np.bincount(self.flat_mu_all, weights=np.concatenate(w_mu), minlength=p_obs)
        if not np.isfinite(ll):
            return fail
        if not gradient:
            return ll
        mmat = p_mat.T @ g_sig @ p_mat  # dL/dS (before symmetry)
        d_a = 2.0 * mmat @ s @ b.T + np.outer(p_mat.T @ g_mu, b @ m)
        d_m = p_mat.T @ g_mu
        grad = np.zeros(ram.n_par)
        if len(ram.a_idx):
            np.add.at(grad, ram.a_idx[:, 2], d_a[ram.a_idx[:, 0], ram.a_idx[:, 1]])
        if len(ram.s_idx):
            i, j = ram.s_idx[:, 0], ram.s_idx[:, 1]
            np.add.at(grad, ram.s_idx[:, 2], np.where(i == j, 1.0, 2.0) * mmat[i, j])
        if len(ram.m_idx):
            np.add.at(grad, ram.m_idx[:, 1], d_m[ram.m_idx[:, 0]])
        return ll, grad


def _hessian(grad_fun, x: np.ndarray, rel: float = 1e-5, g0: np.ndarray | None = None):
    """Central-difference Hessian from an analytic gradient, symmetrised.

    With ``g0`` (the gradient at ``x``) forward differences instead: half the gradients,
    accurate to about ``rel``, enough to take Newton steps but not for standard errors.
    """
    n = len(x)
    h = np.empty((n, n))
    for k in range(n):
        step = rel * max(1.0, abs(x[k]))
        up, down = x.copy(), x.copy()
        up[k] += step
        if g0 is None:
            down[k] -= step
            h[:, k] = (grad_fun(up) - grad_fun(down)) / (2.0 * step)
        else:
            h[:, k] = (grad_fun(up) - g0) / step
    return 0.5 * (h + h.T)


def _newton_polish(obj, grad, theta: np.ndarray, scale: np.ndarray, n: float):
    """Newton steps to a scaled gradient below 1e-9; returns ``(theta, gradient, hessian)``.

    The numerical Hessian (2 gradients per parameter) is by far the costliest part of a
    fit, so one Hessian serves every step while the steps keep improving the
    log-likelihood (a chord / simplified Newton method; near the optimum it converges
    almost as fast as Newton's) while each step cuts the scaled gradient at least
    fourfold. The first Hessian is a forward-difference one (half the gradients); any
    later one (the steps faltered: near a boundary, a Heywood case) is central. The
    central-difference Hessian for the standard errors is computed at the final
    estimates (issue 16).
    """
    hess, central, g_prev = None, False, np.inf
    for _ in range(20):
        g = grad(theta)
        g_now = np.max(np.abs(g * scale)) / n
        if g_now < 1e-9:
            break
        if hess is not None and g_now > 0.25 * g_prev:
            hess = None  # the reused Hessian no longer contracts the gradient: recompute
        fresh = hess is None
        if fresh:
            # forward differences for the first steps; central ones when those falter
            hess = _hessian(grad, theta, g0=None if central else g)
        try:
            step = np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            break
        ll_old = obj.loglik(theta)
        for _k in range(30):
            trial = theta - step
            ll_new = obj.loglik(trial)
            if np.isfinite(ll_new) and ll_new >= ll_old - 1e-9:
                break
            step = step / 2.0
        else:
            if fresh and central:
                break
            hess, central = None, True
            continue
        if fresh and not central:
            central = True  # any later Hessian: central differences
        theta, g_prev = trial, g_now
    g = grad(theta)
    return theta, g, _hessian(grad, theta)


@dataclass
class FimlFit:
    """The result of :func:`fit_fiml`."""

    table: pd.DataFrame  # the parameter table with est, se, z, p, std_all
    theta: np.ndarray
    vcov: np.ndarray
    loglik: float
    n: int
    n_par: int
    converged: bool
    message: str
    gradient_max: float
    implied_cov: np.ndarray  # all variables
    implied_mean: np.ndarray
    names: list[str]
    n_patterns: int

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_par

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.n) * self.n_par


def fit_fiml(
    table: ParTable,
    data: np.ndarray,
    *,
    maxiter: int = 5000,
    theta0: np.ndarray | None = None,
    lbfgs_tol: tuple[float, float] | None = (1e-13, 1e-7),
) -> FimlFit:
    """Fit a parameter table to data (rows x observed variables, NaN = missing) by FIML.

    Rows with every variable missing carry no information and are left out (the caller
    counts them). ``theta0`` replaces the table's start values (e.g. another fit's
    estimates). ``lbfgs_tol`` is L-BFGS's (ftol, gtol); the Newton steps that follow
    polish the optimum to a scaled gradient below 1e-9 either way, so a looser L-BFGS
    (e.g. ``(1e-9, 1e-5)`` from :func:`maximize`'s optimum) only saves time; ``None``
    skips L-BFGS and takes the Newton steps from ``theta0`` (falling back to L-BFGS when
    they do not get the scaled gradient below 1e-6).
    """
    ram = _Ram(table)
    data = np.asarray(data, dtype=float)
    if data.shape[1] != ram.n_obs:
        raise ValueError("data must have one column per observed variable")
    groups, n_patterns = _patterns(data)
    obj = _Objective(ram, groups)
    n = float(obj.n)
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(data, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    scale = ram.scales(sd, table)

    def fun(phi):
        ll, g = obj.loglik(phi * scale, gradient=True)
        if not np.isfinite(ll):
            return 1e10, np.zeros_like(phi)
        return -ll / n, -g * scale / n

    def grad(t):
        ll, g = obj.loglik(t, gradient=True)
        if not np.isfinite(ll):
            raise np.linalg.LinAlgError("the model-implied covariance is not positive definite")
        return g

    def lbfgs(start, tol):
        res = optimize.minimize(
            fun,
            start / scale,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "maxfun": 2 * maxiter, "ftol": tol[0], "gtol": tol[1]},
        )
        return res.x * scale

    start = ram.start if theta0 is None else np.asarray(theta0, dtype=float)
    with threadpool_limits(1):
        if lbfgs_tol is None:
            # Newton steps straight from theta0 (another L-BFGS run's optimum); back to
            # L-BFGS first when they do not reach the optimum from there
            theta, g, hess = _newton_polish(obj, grad, start, scale, n)
            if not np.max(np.abs(g * scale)) / n < 1e-6:
                theta, g, hess = _newton_polish(obj, grad, lbfgs(start, (1e-9, 1e-5)), scale, n)
        else:
            theta, g, hess = _newton_polish(obj, grad, lbfgs(start, lbfgs_tol), scale, n)
    info = -hess
    try:
        vcov = np.linalg.inv(info)
        eig = np.linalg.eigvalsh(info * np.outer(scale, scale) / n)
        identified = eig.min() > 1e-8 * max(1.0, eig.max())
    except np.linalg.LinAlgError:
        vcov = np.full_like(info, np.nan)
        identified = False
    gmax = float(np.max(np.abs(g * scale))) / n if len(g) else 0.0
    converged = bool(identified and gmax < 1e-4)
    if not identified:
        message = (
            "the information matrix is singular: some parameters are not identified by these "
            "data (too few clients per session, or too few sessions for the model)"
        )
    elif gmax >= 1e-4:
        message = f"the largest gradient element is {gmax:.2g} after optimisation"
    else:
        message = "converged"
    se = np.sqrt(np.where(np.diag(vcov) > 0, np.diag(vcov), np.nan))
    total, mean, _, _ = ram.implied(theta)
    frame = table.frame()
    par = ram.par_of_row
    frame["est"] = np.where(par >= 0, theta[np.maximum(par, 0)], frame["value"])
    frame["se"] = np.where(par >= 0, se[np.maximum(par, 0)], np.nan)
    frame["z"] = frame["est"] / frame["se"]
    frame["p"] = 2.0 * stats.norm.sf(np.abs(frame["z"]))
    frame["par"] = par
    sd = pd.Series(np.sqrt(np.clip(np.diag(total), 0, None)), index=ram.names)
    std = frame["est"].to_numpy(dtype=float).copy()
    variance = {
        lhs: est
        for lhs, op, rhs, est in zip(
            frame["lhs"], frame["op"], frame["rhs"], frame["est"], strict=True
        )
        if op == "~~" and lhs == rhs
    }
    for k, (lhs, op, rhs) in enumerate(zip(frame["lhs"], frame["op"], frame["rhs"], strict=True)):
        if op == "~":
            std[k] = std[k] * sd[rhs] / sd[lhs]
        elif op == "=~":
            std[k] = std[k] * sd[lhs] / sd[rhs]
        elif op == "~~" and lhs == rhs:
            std[k] = std[k] / sd[lhs] ** 2 if sd[lhs] > 0 else np.nan
        elif op == "~~":
            # residual covariances become residual correlations, as in lavaan's std.all
            vl, vr = variance.get(lhs, np.nan), variance.get(rhs, np.nan)
            std[k] = std[k] / math.sqrt(vl * vr) if vl > 0 and vr > 0 else np.nan
        else:
            std[k] = std[k] / sd[lhs] if sd[lhs] > 0 else np.nan
    frame["std_all"] = std
    return FimlFit(
        table=frame,
        theta=theta,
        vcov=vcov,
        loglik=float(obj.loglik(theta)),
        n=obj.n,
        n_par=ram.n_par,
        converged=converged,
        message=message,
        gradient_max=gmax,
        implied_cov=total,
        implied_mean=mean,
        names=ram.names,
        n_patterns=n_patterns,
    )


# --------------------------------------------------------------------------- multi-start


def _scaled_lbfgs(
    ram, table: ParTable, data: np.ndarray, options: dict, information: np.ndarray | None = None
):
    """L-BFGS on the FIML log-likelihood with parameters scaled by the variables' SDs.

    With ``information`` (the observed information of the same model at another start's
    optimum) the parameters are whitened by it instead: ``phi = U theta`` with
    ``U'U = information / n``. Near that optimum the objective is then close to
    ``|phi - phi*|^2 / 2``, and L-BFGS reaches it (or another maximum) in a few dozen
    iterations instead of a few hundred (issue 16); the gradient tolerance is then
    in those units (``gtol = 1e-6``: a log-likelihood within about ``n * 1e-12`` of the
    maximum). Returns ``(theta, objective, scipy result)``.
    """
    groups, _ = _patterns(data)
    obj = _Objective(ram, groups)
    n = float(obj.n)
    upper = None
    if information is not None:
        try:
            upper = np.linalg.cholesky(0.5 * (information + information.T) / n).T
        except np.linalg.LinAlgError:
            upper = None
    if upper is not None:
        options = {**options, "ftol": 1e-12, "gtol": 1e-6}

        def to_theta(phi):
            return np.linalg.solve(upper, phi)

        def from_theta(theta):
            return upper @ theta

        def chain(g):
            return np.linalg.solve(upper.T, g)
    else:
        with np.errstate(invalid="ignore"):
            sd = np.nanstd(data, axis=0)
        scale = ram.scales(np.where(np.isfinite(sd) & (sd > 0), sd, 1.0), table)

        def to_theta(phi):
            return phi * scale

        def from_theta(theta):
            return theta / scale

        def chain(g):
            return g * scale

    def fun(phi):
        ll, g = obj.loglik(to_theta(phi), gradient=True)
        if not np.isfinite(ll):
            return 1e10, np.zeros_like(phi)
        return -ll / n, -chain(g) / n

    with threadpool_limits(1):
        res = optimize.minimize(
            fun, from_theta(ram.start), jac=True, method="L-BFGS-B", options=options
        )
    return to_theta(res.x), obj, res


def maximize(
    table: ParTable,
    data: np.ndarray,
    *,
    ftol: float = 1e-7,
    gtol: float = 1e-4,
    maxiter: int = 5000,
    information: np.ndarray | None = None,
) -> tuple[np.ndarray, float, bool, dict[str, float]]:
    """L-BFGS only, no Newton polish and no Hessian: a cheap fit from one start (issue 16).

    Returns ``(theta, loglik, success, labelled)``, ``labelled`` the estimate of each
    labelled parameter. Used for the further starting points of a multi-start fit:
    the best is then refitted with :func:`fit_fiml` (``theta0=theta``), which polishes
    it and computes the standard errors. ``information``: the observed information of
    the same model at another start's optimum; L-BFGS then runs in coordinates whitened
    by it, converges in far fewer iterations and to a tight tolerance (``ftol`` and
    ``gtol`` are then 1e-12 and 1e-6 in those units; see :func:`_scaled_lbfgs`).
    """
    ram = _Ram(table)
    data = np.asarray(data, dtype=float)
    theta, obj, res = _scaled_lbfgs(
        ram,
        table,
        data,
        {"maxiter": maxiter, "maxfun": 2 * maxiter, "ftol": ftol, "gtol": gtol},
        information=information,
    )
    labelled = {
        row[3]: float(theta[par])
        for row, par in zip(table.rows, ram.par_of_row, strict=True)
        if row[3] and par >= 0
    }
    return theta, float(obj.loglik(theta)), bool(res.success), labelled


# --------------------------------------------------------------------------- fit indices


def _saturated(data: np.ndarray, mean0: np.ndarray, cov0: np.ndarray):
    """FIML fit of the unrestricted model (free means and covariances), lavaan's H1.

    Started from ``mean0``/``cov0`` (the fitted model's implied moments, close to the
    maximum when the model fits). L-BFGS runs in whitened coordinates: the observed
    variables are ``L0 f`` with ``L0`` the Cholesky factor of ``cov0`` (fixed loadings) and
    the latent ``f`` has free means and covariances, started at ``L0^-1 mean0`` and the
    identity. That is the same model (``Sigma = L0 Phi L0'``), but its likelihood is close
    to spherical in ``Phi``, so L-BFGS needs a fraction of the iterations it needs on the
    raw moments (issue 16). Returns the log-likelihood, the means, the covariances and the
    largest scaled gradient element of the raw moments (as :func:`_saturated_table`
    orders and scales them).
    """
    p = data.shape[1]
    cov0 = 0.5 * (cov0 + cov0.T)
    try:
        l0 = np.linalg.cholesky(cov0)
    except np.linalg.LinAlgError:
        sd = np.sqrt(np.clip(np.nanvar(data, axis=0), 1e-12, None))
        l0, cov0 = np.diag(sd), np.diag(sd**2)
    obs = [f"v{i}" for i in range(p)]
    white = ParTable(observed=obs)
    for j in range(p):
        for i in range(j, p):
            white.add(f"f{j}", "=~", obs[i], free=False, value=float(l0[i, j]))
    kappa0 = np.linalg.solve(l0, mean0)
    for i in range(p):
        for j in range(i, p):
            white.add(f"f{i}", "~~", f"f{j}", value=1.0 if i == j else 0.0)
    for i in range(p):
        white.add(f"f{i}", "~1", "", value=float(kappa0[i]))
    ram_w = _Ram(white)
    groups, _ = _patterns(data)
    obj_w = _Objective(ram_w, groups)
    n = float(obj_w.n)

    def fun(x):
        ll, g = obj_w.loglik(x, gradient=True)
        if not np.isfinite(ll):
            return 1e10, np.zeros_like(x)
        return -ll / n, -g / n

    with threadpool_limits(1):
        res = optimize.minimize(
            fun,
            ram_w.start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 10000, "maxfun": 20000, "ftol": 1e-15, "gtol": 1e-10},
        )
    _, _, cov, mean = ram_w.implied(res.x)
    # the gradient of the raw moments (the parameters of _saturated_table), scaled as before
    table = _saturated_table(mean, cov)
    ram = _Ram(table)
    obj = _Objective(ram, groups)
    theta = ram.start
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(data, axis=0)
    scale = ram.scales(np.where(np.isfinite(sd) & (sd > 0), sd, 1.0), table)
    ll, g = obj.loglik(theta, gradient=True)
    if not np.isfinite(ll):
        return float(ll), mean, cov, np.inf
    return float(ll), mean, cov, float(np.max(np.abs(g * scale))) / n


def unrestricted_fit(fit: FimlFit, data: np.ndarray):
    """The unrestricted (H1) FIML fit started at ``fit``'s implied moments.

    Returns (log-likelihood, means, covariances, largest scaled gradient element); rows
    with every variable missing are left out.
    """
    data = np.asarray(data, dtype=float)
    data = data[np.isfinite(data).any(axis=1)]
    p = data.shape[1]
    return _saturated(data, fit.implied_mean[:p], fit.implied_cov[:p, :p])


def _independence_loglik(data: np.ndarray) -> float:
    """FIML log-likelihood of lavaan's baseline model (free means and variances only).

    With a diagonal covariance the FIML likelihood factors over the variables, so each
    variable's ML mean and variance over its observed values maximise it.
    """
    ll = 0.0
    for col in data.T:
        x = col[np.isfinite(col)]
        if len(x):
            ll -= 0.5 * len(x) * (_LOG2PI + math.log(np.var(x)) + 1.0)
    return ll


def _rmsea_ci(x2: float, df: int, n: int, level: float = 0.90) -> tuple[float, float]:
    """lavaan's RMSEA confidence interval: the noncentral chi-square inversion."""
    if df < 1 or not np.isfinite(x2):
        return 0.0, 0.0
    upper_p, lower_p = 1 - (1 - level) / 2, (1 - level) / 2

    def cdf(lam: float) -> float:
        return float(stats.chi2.cdf(x2, df)) if lam <= 0 else float(stats.ncx2.cdf(x2, df, lam))

    if cdf(0.0) - upper_p < 0:
        low = 0.0
    else:
        lam = optimize.brentq(lambda v: cdf(v) - upper_p, 0.0, x2, xtol=1e-12)
        low = math.sqrt(lam / (n * df))
    top = max(n, 4 * x2)
    if cdf(top) - lower_p > 0 or cdf(0.0) - lower_p < 0:
        high = 0.0
    else:
        lam = optimize.brentq(lambda v: cdf(v) - lower_p, 0.0, top, xtol=1e-12)
        high = math.sqrt(lam / (n * df))
    return low, high


def fit_indices(fit: FimlFit, data: np.ndarray, h1=None) -> dict[str, float]:
    """lavaan's ``fitMeasures`` of a FIML fit (``missing = "ml"``, normal likelihood).

    * ``chisq`` = 2 (logl_H1 - logl_H0), H1 the unrestricted model (all means and
      covariances free) fitted by FIML; ``df`` = p(p + 3)/2 - npar; ``pvalue`` its
      upper chi-square tail.
    * The baseline is the independence model (free means and variances, fixed.x = FALSE),
      ``baseline.df`` = p(p - 1)/2.
    * ``cfi`` = 1 - max(X2 - df, 0) / max(X2 - df, X2_b - df_b, 0) (1 when both are 0);
      ``tli`` = 1 - ((X2 - df) df_b) / ((X2_b - df_b) df).
    * ``rmsea`` = sqrt(max(X2 / (N df) - 1 / N, 0)) with N the clients in the fit; its
      90% CI inverts the noncentral chi-square in its noncentrality; ``rmsea.pvalue`` is
      the test of close fit (RMSEA <= .05).
    * ``srmr`` (lavaan's ``srmr_bentler`` with means): the root mean square of the
      residual covariances and means, standardized by the H1 standard deviations,
      over the p(p + 3)/2 moments; the H1 moments are the unrestricted FIML estimates.

    ``h1``: the result of :func:`unrestricted_fit` when it is already computed.
    """
    data = np.asarray(data, dtype=float)
    data = data[np.isfinite(data).any(axis=1)]
    p = data.shape[1]
    n = fit.n
    implied_cov = fit.implied_cov[:p, :p]
    implied_mean = fit.implied_mean[:p]
    ll1, mean1, cov1, grad1 = h1 if h1 is not None else _saturated(data, implied_mean, implied_cov)
    x2 = max(2.0 * (ll1 - fit.loglik), 0.0)
    df = p * (p + 3) // 2 - fit.n_par
    x2b = 2.0 * (ll1 - _independence_loglik(data))
    dfb = p * (p - 1) // 2
    t1, t2 = max(x2 - df, 0.0), max(x2 - df, x2b - dfb, 0.0)
    cfi = 1.0 if t1 == 0 and t2 == 0 else 1.0 - t1 / t2
    tb = (x2b - dfb) * df
    tli = 1.0 - (x2 - df) * dfb / tb if df > 0 and tb != 0 else 1.0
    rmsea = math.sqrt(max(x2 / n / df - 1.0 / n, 0.0)) if df > 0 else 0.0
    low, high = _rmsea_ci(x2, df, n)
    sd1 = np.sqrt(np.diag(cov1))
    r_cov = (cov1 - implied_cov) / np.outer(sd1, sd1)
    r_mean = (mean1 - implied_mean) / sd1
    iu = np.triu_indices(p)
    srmr = math.sqrt((np.sum(r_cov[iu] ** 2) + np.sum(r_mean**2)) / (p * (p + 3) / 2))
    return {
        "chisq": x2,
        "df": float(df),
        "pvalue": float(stats.chi2.sf(x2, df)) if df > 0 else np.nan,
        "baseline.chisq": x2b,
        "baseline.df": float(dfb),
        "baseline.pvalue": float(stats.chi2.sf(x2b, dfb)),
        "cfi": cfi,
        "tli": tli,
        "rmsea": rmsea,
        "rmsea.ci.lower": low,
        "rmsea.ci.upper": high,
        "rmsea.pvalue": float(stats.ncx2.sf(x2, df, n * df * 0.05**2)) if df > 0 else np.nan,
        "srmr": srmr,
        "unrestricted.logl": ll1,
        "unrestricted.max_gradient": grad1,
    }


# --------------------------------------------------------------------------- robust (MLR)
#
# lavaan's estimator = "MLR" with missing = "ml" (and cluster = ): the ML (FIML) estimates,
# a sandwich covariance A^-1 B A^-1 with A the observed information (the Hessian) and B the
# first-order information from the casewise scores (summed within clusters, times
# nC / (nC - 1), when there are clusters), and the Yuan-Bentler scaled chi-square in its
# Mplus variant (lavaan's test = "yuan.bentler.mplus"):
#     c = (tr(A1^-1 B1) - tr(A0^-1 B0)) / df,   chisq.scaled = chisq / c,
# A1, B1 the observed and first-order information of the unrestricted model at its FIML
# estimates, A0, B0 those of the model at its estimates (Yuan & Bentler, 2000; Asparouhov &
# Muthén, 2005, for the clustered version).


def table_of(fit: FimlFit, n_observed: int) -> ParTable:
    """The :class:`ParTable` a :class:`FimlFit` was fitted from (its first ``n_observed``
    variables are the observed ones, in the order of the data's columns)."""
    rows = [
        (r.lhs, r.op, r.rhs, r.label, bool(r.free), float(r.value))
        for r in fit.table[["lhs", "op", "rhs", "label", "free", "value"]].itertuples()
    ]
    return ParTable(observed=list(fit.names[:n_observed]), rows=rows)


def casewise_scores(table: ParTable, data: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Each row's gradient of the FIML log-likelihood with respect to the free parameters.

    Returns an array (rows of ``data`` x free parameters); a row with every variable
    missing scores 0. The rows sum to the gradient of :class:`_Objective`.
    """
    ram = _Ram(table)
    data = np.asarray(data, dtype=float)
    n_rows, p = data.shape
    if p != ram.n_obs:
        raise ValueError("data must have one column per observed variable")
    _a, s, m, b = ram.matrices(np.asarray(theta, dtype=float))
    u = b[: ram.n_obs]  # F B (p x v)
    sigma = u @ s @ u.T
    mu = u @ m
    w = u @ s @ b.T  # F B S B' (p x v)
    bm = b @ m
    # per-row gradients with respect to Sigma (p x p) and mu (p)
    g_sig = np.zeros((n_rows, p, p))
    g_mu = np.zeros((n_rows, p))
    seen = ~np.isnan(data)
    keys, inverse = np.unique(seen, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for k, key in enumerate(keys):
        if not key.any():
            continue
        rows = np.flatnonzero(inverse == k)
        o = np.flatnonzero(key)
        inv = np.linalg.inv(sigma[np.ix_(o, o)])
        d = data[np.ix_(rows, o)] - mu[o]
        sd = d @ inv  # (r, k)
        g_mu[np.ix_(rows, o)] = sd
        g_sig[np.ix_(rows, o, o)] = -0.5 * (inv[None] - sd[:, :, None] * sd[:, None, :])
    out = np.zeros((n_rows, ram.n_par))
    if len(ram.a_idx):
        i, j, par = ram.a_idx.T
        vals = 2.0 * np.einsum("nab,ak,bk->nk", g_sig, u[:, i], w[:, j])
        vals += (g_mu @ u[:, i]) * bm[j]
        np.add.at(out.T, par, vals.T)
    if len(ram.s_idx):
        i, j, par = ram.s_idx.T
        vals = np.einsum("nab,ak,bk->nk", g_sig, u[:, i], u[:, j]) * np.where(i == j, 1.0, 2.0)
        np.add.at(out.T, par, vals.T)
    if len(ram.m_idx):
        i, par = ram.m_idx.T
        np.add.at(out.T, par, (g_mu @ u[:, i]).T)
    return out


def _meat(scores: np.ndarray, cluster: np.ndarray | None) -> tuple[np.ndarray, int]:
    """First-order information: sum of outer products of the (cluster-summed) scores."""
    used = np.any(scores != 0, axis=1)
    if cluster is None:
        sc, n_units = scores[used], int(used.sum())
        return sc.T @ sc, n_units
    codes, ids = pd.factorize(pd.Series(np.asarray(cluster)[used]))
    sums = np.zeros((len(ids), scores.shape[1]))
    np.add.at(sums, codes, scores[used])
    n_c = len(ids)
    return sums.T @ sums * (n_c / (n_c - 1.0)), n_c


@dataclass
class RobustFit:
    """Robust (MLR) standard errors and scaled chi-square of a :class:`FimlFit`."""

    vcov: np.ndarray
    se: np.ndarray  # per free parameter
    n_clusters: int
    clustered: bool
    trace_h0: float
    meat_rank: int


def robust_vcov(fit: FimlFit, data: np.ndarray, cluster: np.ndarray | None = None) -> RobustFit:
    """lavaan's ``se = "robust.huber.white"`` (or ``"robust.cluster"`` with ``cluster``).

    ``cluster`` holds one label per row of ``data`` (e.g. each client's therapist); None
    treats the rows as independent.
    """
    data = np.asarray(data, dtype=float)
    if cluster is not None and len(cluster) != len(data):
        raise ValueError("cluster must have one label per row of the data")
    scores = casewise_scores(table_of(fit, data.shape[1]), data, fit.theta)
    meat, n_units = _meat(scores, cluster)
    bread = fit.vcov  # inverse of the observed information
    vcov = bread @ meat @ bread
    vcov = 0.5 * (vcov + vcov.T)
    diag = np.diag(vcov)
    return RobustFit(
        vcov=vcov,
        se=np.sqrt(np.where(diag > 0, diag, np.nan)),
        n_clusters=n_units,
        clustered=cluster is not None,
        trace_h0=float(np.sum(meat * bread.T)),
        meat_rank=int(np.linalg.matrix_rank(meat)),
    )


def _saturated_table(mean1: np.ndarray, cov1: np.ndarray) -> ParTable:
    # the same parameter table as _saturated's, started (here: evaluated) at given moments
    p = len(mean1)
    obs = [f"v{i}" for i in range(p)]
    table = ParTable(observed=obs)
    for i in range(p):
        for j in range(i, p):
            table.add(obs[i], "~~", obs[j], value=float(cov1[i, j]))
    for i in range(p):
        table.add(obs[i], "~1", "", value=float(mean1[i]))
    return table


def saturated_information(data: np.ndarray, mean1: np.ndarray, cov1: np.ndarray) -> np.ndarray:
    """Observed information (minus the Hessian of the FIML log-likelihood) of the
    unrestricted model at ``mean1``, ``cov1``, analytic, in the parameters of
    :func:`_saturated_table` (covariances i <= j row by row, then the means).

    Per missing-data pattern with n rows, observed block A = Sigma_oo^-1, d = ybar - mu,
    W = S + d d', M = A W A, g = A d, the log-likelihood -n/2 (log|Sigma| + tr(A W)) has
    second derivatives n/2 tr(dS A dS' A) - n/2 [tr(dS A dS' M) + tr(dS' A dS M)],
    -n g' dS A dmu and -n dmu' A dmu.
    """
    data = np.asarray(data, dtype=float)
    data = data[np.isfinite(data).any(axis=1)]
    p = data.shape[1]
    groups, _ = _patterns(data)
    a_all, m_all, g_all, n_all = [], [], [], []
    for grp in groups:
        rows, cols = grp.index[:, :, None], grp.index[:, None, :]
        inv = np.linalg.inv(cov1[rows, cols])
        d = grp.mean - mean1[grp.index]
        w = grp.cov + d[:, :, None] * d[:, None, :]
        mm = inv @ w @ inv
        g = np.einsum("gij,gj->gi", inv, d)
        for k in range(len(grp.n)):
            o = grp.index[k]
            full_a = np.zeros((p, p))
            full_m = np.zeros((p, p))
            full_g = np.zeros(p)
            full_a[np.ix_(o, o)] = inv[k]
            full_m[np.ix_(o, o)] = mm[k]
            full_g[o] = g[k]
            a_all.append(full_a)
            m_all.append(full_m)
            g_all.append(full_g)
            n_all.append(grp.n[k])
    a = np.stack(a_all).reshape(len(n_all), -1)
    mm = np.stack(m_all).reshape(len(n_all), -1)
    g = np.stack(g_all)
    n = np.asarray(n_all)[:, None]

    # tensor[i, j, k, l] = sum_p n_p (X_p[j, k] Y_p[l, i]) from (n X)' Y: [jk, li]
    def pair(x, y):
        return (x * n).T.dot(y).reshape(p, p, p, p).transpose(3, 0, 1, 2)

    h_ss = 0.5 * pair(a, a) - 0.5 * pair(a, mm) - 0.5 * pair(mm, a)
    h_ms = -((g * n).T.dot(a)).reshape(p, p, p)  # [i, j, m]: -sum n g_i A_jm
    h_mm = -(a * n).sum(axis=0).reshape(p, p)
    iu, ju = np.triu_indices(p)
    jac = np.zeros((p * p, len(iu)))
    jac[iu * p + ju, np.arange(len(iu))] = 1.0
    jac[ju * p + iu, np.arange(len(iu))] = 1.0
    hss = jac.T @ h_ss.reshape(p * p, p * p) @ jac
    hms = jac.T @ h_ms.reshape(p * p, p)
    hess = np.block([[hss, hms], [hms.T, h_mm]])
    return -0.5 * (hess + hess.T)


def scaled_test(
    fit: FimlFit,
    data: np.ndarray,
    robust: RobustFit,
    chisq: float,
    df: int,
    h1: tuple[np.ndarray, np.ndarray],
    cluster: np.ndarray | None = None,
) -> dict[str, float]:
    """lavaan's Yuan-Bentler (Mplus variant) scaled chi-square for MLR.

    ``h1`` is the unrestricted model's FIML means and covariances (as in
    :func:`fit_indices`); ``robust`` the model's :func:`robust_vcov` (its trace term).
    Returns lavaan's ``chisq.scaled``, ``df.scaled``, ``pvalue.scaled`` and
    ``chisq.scaling.factor`` (with the two traces).
    """
    data = np.asarray(data, dtype=float)
    mean1, cov1 = h1
    table = _saturated_table(mean1, cov1)
    theta1 = _Ram(table).start.copy()
    info1 = saturated_information(data, mean1, cov1)
    scores1 = casewise_scores(table, data, theta1)
    meat1, _ = _meat(scores1, cluster)
    trace_h1 = float(np.sum(meat1 * np.linalg.inv(info1).T))
    out = {
        "chisq.scaled": np.nan,
        "df.scaled": float(df),
        "pvalue.scaled": np.nan,
        "chisq.scaling.factor": np.nan,
        "trace.h1": trace_h1,
        "trace.h0": robust.trace_h0,
    }
    if df < 1:
        return out
    c = (trace_h1 - robust.trace_h0) / df
    if c > 0:
        out["chisq.scaling.factor"] = c
        out["chisq.scaled"] = chisq / c
        out["pvalue.scaled"] = float(stats.chi2.sf(chisq / c, df))
    return out
