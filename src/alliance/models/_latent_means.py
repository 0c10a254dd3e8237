"""Two-level saturated model with latent cluster means (the latent covariate model).

Each client's vector of scores ``y_ij`` (e.g. end outcome, baseline, early alliance) is split
into a latent therapist mean and the client's deviation from it,
``y_ij = mu + u_j + e_ij`` with ``u_j ~ N(0, Sigma_B)`` and ``e_ij ~ N(0, Sigma_W)``, fitted
by maximum likelihood (any caseload sizes, a therapist with one client included). The
between- and within-therapist regressions of the first variable on the others are functions
of ``Sigma_B`` and ``Sigma_W``, with delta-method standard errors from the observed
information. This is the latent-covariate model of Lüdtke et al. (2008) for a saturated
two-level structure, as lavaan fits it with ``level: 1`` / ``level: 2`` blocks (the reference
is ``tests/reference/lavaan_therapist_latent.R``): the therapist mean is not the observed
caseload mean, whose unreliability with small caseloads biases the between-therapist slope
towards the within-therapist one.

Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
(2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["LatentFit", "fit_latent_means"]


@dataclass
class LatentFit:
    """ML estimates of the two-level saturated model (``gamma``: slopes on the covariates)."""

    mu: np.ndarray
    gamma: np.ndarray
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    loglik: float
    cov: np.ndarray | None  # covariance of theta = (mu, vec gamma, vech Sigma_W, vech Sigma_B)
    converged: bool
    singular: bool
    n_clusters: int
    nobs: int

    @property
    def theta(self) -> np.ndarray:
        return _pack(self.mu, self.gamma, self.sigma_w, self.sigma_b)

    def delta(self, fun) -> tuple[np.ndarray, np.ndarray]:
        """Estimates of ``fun(mu, gamma, sigma_w, sigma_b)`` (a vector) and their covariance."""
        theta = self.theta
        shape = self.gamma.shape
        est = np.asarray(fun(*_unpack(theta, shape)), dtype=float)
        if self.cov is None:
            return est, np.full((len(est), len(est)), np.nan)
        jac = _jacobian(lambda t: np.asarray(fun(*_unpack(t, shape)), dtype=float), theta)
        return est, jac @ self.cov @ jac.T


def _vech(m: np.ndarray) -> np.ndarray:
    return m[np.tril_indices(len(m))]


def _unvech(v: np.ndarray, p: int) -> np.ndarray:
    m = np.zeros((p, p))
    m[np.tril_indices(p)] = v
    return m + np.tril(m, -1).T


def _pack(mu, gamma, sw, sb) -> np.ndarray:
    return np.concatenate([mu, gamma.ravel(), _vech(sw), _vech(sb)])


def _unpack(theta: np.ndarray, shape: tuple[int, int]):
    p, c = shape
    q = p * (p + 1) // 2
    k = p + p * c
    return (
        theta[:p],
        theta[p:k].reshape(p, c),
        _unvech(theta[k : k + q], p),
        _unvech(theta[k + q :], p),
    )


class _Data:
    def __init__(self, y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> None:
        _, inv = np.unique(groups, return_inverse=True)
        self.n = np.bincount(inv)
        self.p, self.c = y.shape[1], x.shape[1]
        self.nobs = len(y)
        self.n_clusters = len(self.n)

        def cluster_means(v):
            sums = np.zeros((self.n_clusters, v.shape[1]))
            np.add.at(sums, inv, v)
            return sums / self.n[:, None]

        self.ybar, self.xbar = cluster_means(y), cluster_means(x)
        dy, dx = y - self.ybar[inv], x - self.xbar[inv]
        self.syy, self.syx, self.sxx = dy.T @ dy, dy.T @ dx, dx.T @ dx
        self.sizes = [(m, self.n == m) for m in np.unique(self.n)]

    def ss_within(self, gamma):
        return self.syy - gamma @ self.syx.T - self.syx @ gamma.T + gamma @ self.sxx @ gamma.T

    def loglik(self, mu, gamma, sw, sb) -> float:
        p, n_obs, n_cl = self.p, self.nobs, self.n_clusters
        ll = -0.5 * n_obs * p * np.log(2 * np.pi)
        if n_obs > n_cl:
            sign, logdet = np.linalg.slogdet(sw)
            if sign <= 0:
                return -np.inf
            ll -= 0.5 * (n_obs - n_cl) * logdet
            ll -= 0.5 * np.trace(np.linalg.solve(sw, self.ss_within(gamma)))
        resid = self.ybar - mu - self.xbar @ gamma.T
        for m, idx in self.sizes:
            v = sb + sw / m
            sign, logdet = np.linalg.slogdet(v)
            if sign <= 0:
                return -np.inf
            d = resid[idx]
            quad = float(np.sum(d * np.linalg.solve(v, d.T).T))
            ll -= 0.5 * (idx.sum() * (logdet + p * np.log(m)) + quad)
        return float(ll)

    def score(self, mu, gamma, sw, sb):
        """Gradient: d/dmu, d/dgamma and the symmetric-matrix gradients of Sigma_W, Sigma_B."""
        p, n_obs, n_cl = self.p, self.nobs, self.n_clusters
        g_mu = np.zeros(p)
        g_gamma = np.zeros_like(gamma)
        g_w = np.zeros((p, p))
        g_b = np.zeros((p, p))
        if n_obs > n_cl:
            wi = np.linalg.inv(sw)
            g_w -= 0.5 * ((n_obs - n_cl) * wi - wi @ self.ss_within(gamma) @ wi)
            g_gamma += wi @ (self.syx - gamma @ self.sxx)
        resid = self.ybar - mu - self.xbar @ gamma.T
        for m, idx in self.sizes:
            vi = np.linalg.inv(sb + sw / m)
            d = resid[idx]
            vd = d @ vi
            g_mu += vd.sum(axis=0)
            g_gamma += vd.T @ self.xbar[idx]
            g = -0.5 * (idx.sum() * vi - vd.T @ vd)
            g_b += g
            g_w += g / m
        return g_mu, g_gamma, g_w, g_b


def _sym_to_vech(g: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. the free elements (vech) of a symmetric matrix."""
    return (2 * g - np.diag(np.diag(g)))[np.tril_indices(len(g))]


def _chol_params(m: np.ndarray) -> np.ndarray:
    low = np.linalg.cholesky(m)
    low[np.diag_indices(len(m))] = np.log(np.diag(low))
    return low[np.tril_indices(len(m))]


def _from_chol(v: np.ndarray, p: int) -> np.ndarray:
    low = np.zeros((p, p))
    low[np.tril_indices(p)] = v
    low[np.diag_indices(p)] = np.exp(np.diag(low))
    return low @ low.T


def _jacobian(fun, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector function (the Hessian from the score)."""
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    cols = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h[i]
        cols.append((fun(x + e) - fun(x - e)) / (2 * h[i]))
    return np.column_stack(cols)


def _natural_score(data: _Data, theta: np.ndarray) -> np.ndarray:
    g_mu, g_gamma, g_w, g_b = data.score(*_unpack(theta, (data.p, data.c)))
    return np.concatenate([g_mu, g_gamma.ravel(), _sym_to_vech(g_w), _sym_to_vech(g_b)])


def fit_latent_means(y: np.ndarray, groups: np.ndarray, x: np.ndarray | None = None) -> LatentFit:
    """ML fit of ``y_ij = mu + gamma x_ij + u_j + e_ij`` (complete rows).

    ``groups`` labels the clusters (therapists); ``x`` holds client-level covariates with a
    common slope and no therapist-level part (e.g. the baseline outcome), or None.
    """
    y = np.asarray(y, dtype=float)
    x = np.zeros((len(y), 0)) if x is None else np.asarray(x, dtype=float).reshape(len(y), -1)
    groups = np.asarray(groups)
    cy, sy = y.mean(axis=0), y.std(axis=0)
    cx, sx = x.mean(axis=0), x.std(axis=0)
    sy[sy == 0] = 1.0
    sx[sx == 0] = 1.0
    data = _Data((y - cy) / sy, (x - cx) / sx, groups)
    p, c = data.p, data.c
    q = p * (p + 1) // 2
    k = p + p * c
    if data.nobs <= data.n_clusters or data.n_clusters < 2:
        raise ValueError(
            f"{data.nobs} clients in {data.n_clusters} therapists: the latent therapist means "
            "need at least two therapists and at least one therapist with two clients."
        )
    gamma0 = np.linalg.lstsq(data.sxx, data.syx.T, rcond=None)[0].T if c else np.zeros((p, 0))
    sw0 = data.ss_within(gamma0) / (data.nobs - data.n_clusters)
    resid0 = data.ybar - data.xbar @ gamma0.T
    sb0 = np.cov(resid0, rowvar=False).reshape(p, p) - sw0 / data.n.mean()
    vals, vecs = np.linalg.eigh(sb0)
    sb0 = (vecs * np.maximum(vals, 0.05)) @ vecs.T
    x0 = np.concatenate([resid0.mean(axis=0), gamma0.ravel(), _chol_params(sw0), _vech(sb0)])
    rows, cols = np.tril_indices(p)

    def split(z):
        return z[:p], z[p:k].reshape(p, c), _from_chol(z[k : k + q], p), _unvech(z[k + q :], p)

    def negll(z):
        val = data.loglik(*split(z))
        return -val if np.isfinite(val) else 1e12

    def negscore(z):
        mu, gamma, sw, sb = split(z)
        if not np.isfinite(data.loglik(mu, gamma, sw, sb)):
            return np.zeros_like(z)
        low = np.zeros((p, p))
        low[rows, cols] = z[k : k + q]
        low[np.diag_indices(p)] = np.exp(np.diag(low))
        g_mu, g_gamma, g_w, g_b = data.score(mu, gamma, sw, sb)
        g_low = 2 * g_w @ low
        g_low[np.diag_indices(p)] *= np.diag(low)
        return -np.concatenate([g_mu, g_gamma.ravel(), g_low[rows, cols], _sym_to_vech(g_b)])

    best = None
    for start in (x0, np.concatenate([x0[: k + q], _vech(np.eye(p) * 0.1)])):
        res = optimize.minimize(negll, start, jac=negscore, method="BFGS", options={"gtol": 1e-8})
        if best is None or res.fun < best.fun:
            best = res
    mu, gamma, sw, sb = split(best.x)
    theta = _pack(mu, gamma, sw, sb)
    # Newton steps on the natural parameters polish the quasi-Newton optimum
    grad_max = np.inf
    for _ in range(4):
        grad = _natural_score(data, theta)
        grad_max = float(np.max(np.abs(grad)))
        if grad_max < 1e-9:
            break
        try:
            step = np.linalg.solve(_jacobian(lambda t: _natural_score(data, t), theta), grad)
        except np.linalg.LinAlgError:
            break
        f0, t = data.loglik(*_unpack(theta, (p, c))), 1.0
        while t > 1e-3 and not data.loglik(*_unpack(theta - t * step, (p, c))) >= f0:
            t /= 2
        if t <= 1e-3:
            break
        theta = theta - t * step
    mu_z, gamma_z, sw_z, sb_z = _unpack(theta, (p, c))
    # back to the data's scale
    gamma = gamma_z * sy[:, None] / sx[None, :]
    mu = cy + sy * mu_z - gamma @ cx
    sw = sw_z * np.outer(sy, sy)
    sb = sb_z * np.outer(sy, sy)
    raw = _Data(y, x, groups)
    loglik = raw.loglik(mu, gamma, sw, sb)
    singular = bool(np.linalg.eigvalsh(sb_z).min() < 1e-6)
    theta = _pack(mu, gamma, sw, sb)
    hess = _jacobian(lambda t: _natural_score(raw, t), theta)
    info = -(hess + hess.T) / 2
    cov = np.linalg.inv(info) if np.linalg.eigvalsh(info).min() > 0 else None
    return LatentFit(
        mu=mu,
        gamma=gamma,
        sigma_w=sw,
        sigma_b=sb,
        loglik=loglik,
        cov=cov,
        converged=grad_max < 1e-4 and cov is not None,
        singular=singular,
        n_clusters=data.n_clusters,
        nobs=data.nobs,
    )
