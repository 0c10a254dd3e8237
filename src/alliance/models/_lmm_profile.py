"""Likelihood profiles of a fitted LMM: the engine behind ``LmmResult.confint("profile")``.

As lme4's ``profile.merMod`` (Bates et al. 2015, section 5.1), on the ML deviance:

- a variance parameter (an SD or a correlation of a random-effect term, or the residual SD
  ``sigma``) is fixed and the non-profiled deviance
  ``-2 log L = log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)`` (fixed effects
  profiled out) is minimized over the other variance parameters;
- a fixed effect ``beta_j = b`` is fixed and the profiled deviance is minimized over theta.
  For a given theta the penalized residual sum of squares is quadratic in ``b``:
  ``r^2_b = r^2 + (b - beta_j(theta))^2 / [(R_X'R_X)^-1]_jj``, so no new design is needed.

The signed square root ``zeta = sign(x - x_hat) sqrt(D(x) - D_min)`` is solved for
``+-z`` (Brent's method), which is what lme4's spline interpolation of the profile
approximates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["Profiler", "VarPar", "lower_factor"]


@dataclass
class VarPar:
    """One variance parameter on lme4's sd/cor scale: ``kind`` is ``sd``, ``cor`` or
    ``sigma``; ``level``, ``row``, ``col`` locate it in its level's covariance matrix."""

    kind: str
    level: int
    row: int
    col: int


def lower_factor(m: np.ndarray, blocks: list[list[int]]) -> np.ndarray:
    """Lower-triangular ``L`` (non-negative diagonal) with ``L L' = M M'``, block by block."""
    out = np.zeros_like(m)
    for block in blocks:
        idx = np.ix_(block, block)
        _, r = np.linalg.qr(m[idx].T)
        low = r.T
        sign = np.where(np.diag(low) < 0, -1.0, 1.0)
        out[idx] = low * sign
    return out


class Profiler:
    """Profiles of an ML fit (``engine``: the pieces :func:`alliance.models.lmm` keeps)."""

    def __init__(self, engine: dict, n: int, p: int) -> None:
        self.dev = engine["dev"]
        self.theta_hat = np.asarray(engine["theta"], dtype=float)
        self.transform = engine["transform"]
        self.const = engine["const"]
        self.ymean = engine["ymean"]
        self.shifts = engine["shifts"]
        self.inv_shifts = [np.linalg.inv(a) for a in self.shifts]
        self.blocks = engine["blocks"]
        self.templates = engine["templates"]
        self.n = n
        self.p = p
        if self.dev.reml:
            raise ValueError("profiles are computed on an ML fit (refit with reml=False).")
        # variance parameters in lme4's order: per level, per block, the lower triangle of
        # the block column by column (diagonal -> sd, below it -> cor); sigma last
        self.varpars: list[VarPar] = []
        for k, blocks in enumerate(self.blocks):
            for block in blocks:
                for jc, c in enumerate(block):
                    for r in block[jc:]:
                        self.varpars.append(VarPar("sd" if r == c else "cor", k, r, c))
        self.varpars.append(VarPar("sigma", -1, -1, -1))
        f = self.dev.factor(self.theta_hat)
        self.sigma_hat = math.sqrt(f.r2 / n)
        self.v_hat = self.to_varpar(self.theta_hat, self.sigma_hat)
        self.d_min = self.deviance_varpar(self.v_hat)

    # ---- parametrizations
    def _lambdas_user(self, theta: np.ndarray) -> list[np.ndarray]:
        out = []
        for tmpl, a, blocks in zip(self.templates, self.shifts, self.blocks, strict=True):
            lam = np.zeros(tmpl.shape)
            mask = tmpl >= 0
            lam[mask] = theta[tmpl[mask]]
            out.append(lower_factor(a @ lam, blocks))
        return out

    def to_varpar(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        covs = [sigma**2 * lam @ lam.T for lam in self._lambdas_user(theta)]
        out = []
        for v in self.varpars:
            if v.kind == "sigma":
                out.append(sigma)
                continue
            cov = covs[v.level]
            if v.kind == "sd":
                out.append(math.sqrt(max(cov[v.row, v.row], 0.0)))
            else:
                sd = math.sqrt(cov[v.row, v.row] * cov[v.col, v.col])
                out.append(cov[v.row, v.col] / sd if sd > 0 else 0.0)
        return np.array(out)

    def to_theta(self, vp: np.ndarray) -> np.ndarray | None:
        sigma = vp[-1]
        qs = [t.shape[0] for t in self.templates]
        sd = [np.zeros(q) for q in qs]
        cor = [np.eye(q) for q in qs]
        for v, x in zip(self.varpars[:-1], vp[:-1], strict=True):
            if v.kind == "sd":
                sd[v.level][v.row] = x
            else:
                cor[v.level][v.row, v.col] = cor[v.level][v.col, v.row] = x
        theta = np.zeros(len(self.theta_hat))
        for k, tmpl in enumerate(self.templates):
            low = np.zeros((qs[k], qs[k]))
            for block in self.blocks[k]:
                idx = np.ix_(block, block)
                try:
                    chol = np.linalg.cholesky(cor[k][idx])
                except np.linalg.LinAlgError:
                    return None
                low[idx] = sd[k][block][:, None] * chol / sigma
            lam_c = lower_factor(self.inv_shifts[k] @ low, self.blocks[k])
            mask = tmpl >= 0
            theta[tmpl[mask]] = lam_c[mask]
        return theta

    # ---- deviances
    def deviance_varpar(self, vp: np.ndarray) -> float:
        sigma = vp[-1]
        if not sigma > 0:
            return np.inf
        theta = self.to_theta(vp)
        if theta is None:
            return np.inf
        try:
            f = self.dev.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        return f.logdet_l + f.r2 / sigma**2 + self.n * math.log(2 * math.pi * sigma**2)

    def deviance_fixed(self, theta: np.ndarray, j: int, b: float) -> float:
        try:
            f = self.dev.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        beta_c, _ = self.dev.solve(f)
        beta = self.transform @ beta_c
        if self.const is not None:
            beta[self.const] += self.ymean
        sxx = self.transform @ self.dev.sigma_xx(f) @ self.transform.T
        r2 = f.r2 + (b - beta[j]) ** 2 / sxx[j, j]
        return f.logdet_l + self.n * (1.0 + math.log(2 * math.pi * r2 / self.n))

    # ---- profiles
    def profile_varpar(self, i: int, x: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimum of the deviance with variance parameter ``i`` fixed at ``x``.

        SDs (and sigma) are optimized as variances: the deviance depends on an SD through
        its square, so its derivative in the SD vanishes at 0 and a gradient method would
        never leave a boundary estimate; in the variance it does not.
        """
        nv = len(self.varpars)
        free = np.arange(nv) != i
        if not free.any():
            vp = np.array([x])
            return self.deviance_varpar(vp), vp
        is_sd = np.array([v.kind != "cor" for v in self.varpars])[free]
        floor = 1e-2 * self.sigma_hat
        scale = np.where(is_sd, np.maximum(np.abs(self.v_hat[free]), floor) ** 2, 1.0)

        def expand(z):
            vp = np.empty(nv)
            vp[i] = x
            w = z * scale
            vp[free] = np.where(is_sd, np.sqrt(np.maximum(w, 0.0)), w)
            return vp

        def fun(z):
            return self.deviance_varpar(expand(z))

        lower = np.where(is_sd, 0.0, -1.0)
        upper = np.where(is_sd, np.inf, 1.0)
        bounds = [
            (lo / s, hi / s if np.isfinite(hi) else None)
            for lo, hi, s in zip(lower, upper, scale, strict=True)
        ]

        def pack(vp):
            v = vp[free]
            return np.where(is_sd, v**2, v) / scale

        z0 = pack(start)
        if not np.isfinite(fun(z0)):
            z0 = pack(self.v_hat)
        res = optimize.minimize(
            fun,
            z0,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-11, "gtol": 1e-6, "eps": 1e-6, "maxiter": 500},
        )
        return float(res.fun), expand(res.x)

    def profile_fixed(self, j: int, b: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimum over theta of the ML deviance with fixed effect ``j`` at ``b`` (diagonal
        entries of theta optimized as squares, for the reason given in
        :meth:`profile_varpar`)."""
        diag = np.isfinite(self.dev.st.lower_bounds())
        scale = np.maximum(np.abs(self.theta_hat), 1e-2)
        scale = np.where(diag, scale**2, scale)

        def expand(z):
            w = z * scale
            return np.where(diag, np.sqrt(np.maximum(w, 0.0)), w)

        bounds = [(0.0, None) if d else (None, None) for d in diag]
        z0 = np.where(diag, start**2, start) / scale
        res = optimize.minimize(
            lambda z: self.deviance_fixed(expand(z), j, b),
            z0,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-11, "gtol": 1e-6, "eps": 1e-6, "maxiter": 500},
        )
        return float(res.fun), expand(res.x)

    @staticmethod
    def _side(zeta, est: float, u0: float, u1: float, z: float, limit: float, to_x):
        """The bound on one side: the ``x = to_x(u)`` with ``|zeta(x)| = z``, searched in an
        unbounded ``u`` (the log of an SD, the Fisher z of a correlation) by secant steps
        until bracketed, then the Illinois method. ``limit`` is the ``u`` beyond which the
        parameter is at its boundary (returned when the profile stays within the cutoff)."""
        direction = 1.0 if u1 > u0 else -1.0

        def f(u):
            return abs(zeta(to_x(u))) - z

        a, fa = u0, -z
        b, fb = u1, f(u1)
        for _ in range(40):  # extrapolate outwards until the cutoff is crossed
            if fb >= 0 or not np.isfinite(fb):
                break
            step = (b - a) * (-fb) / (fb - fa) if fb > fa else 2.0 * (b - a)
            step = direction * min(max(direction * step, 0.1 * abs(b - a)), 4.0 * abs(b - a))
            a, fa = b, fb
            b = b + step
            if direction * (b - limit) >= 0:
                b = limit
                fb = f(b)
                if fb < 0:
                    return to_x(b)
                break
            fb = f(b)
        if not np.isfinite(fb):
            fb = abs(fb)
        side = 0
        for _ in range(100):  # Illinois (regula falsi with the stale end halved)
            c = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
            fc = f(c)
            if not np.isfinite(fc):
                c = 0.5 * (a + b)
                fc = f(c)
            if abs(fc) < 1e-7 or abs(b - a) < 1e-10 * max(1.0, abs(c)):
                return to_x(c)
            if fc > 0:
                b, fb = c, fc
                if side == -1:
                    fa *= 0.5
                side = -1
            else:
                a, fa = c, fc
                if side == 1:
                    fb *= 0.5
                side = 1
        return to_x(c)

    def varpar_interval(self, i: int, z: float) -> tuple[float, float]:
        est = self.v_hat[i]
        kind = self.varpars[i].kind
        warm = {"v": self.v_hat.copy()}

        def zeta(x):
            d, vp = self.profile_varpar(i, x, warm["v"])
            if not np.isfinite(d):
                return np.inf
            warm["v"] = vp
            return math.copysign(math.sqrt(max(d - self.d_min, 0.0)), x - est)

        if kind == "cor":
            edge = math.atanh(1.0 - 1e-8)
            u0 = math.atanh(min(max(est, -1 + 1e-8), 1 - 1e-8))
            lo = self._side(zeta, est, u0, u0 - 0.3, z, -edge, math.tanh)
            hi = self._side(zeta, est, u0, u0 + 0.3, z, edge, math.tanh)
            return (-1.0 if lo <= -1 + 2e-8 else lo), (1.0 if hi >= 1 - 2e-8 else hi)
        if est <= 1e-8 * self.sigma_hat:  # at the boundary: the lower bound is 0
            zeta_up = zeta
            u0 = math.log(1e-3 * self.sigma_hat)
            hi = self._side(
                lambda x: zeta_up(x) if x > 1e-3 * self.sigma_hat else 0.0,
                est,
                u0,
                u0 + 1.0,
                z,
                math.inf,
                math.exp,
            )
            return 0.0, hi
        u0 = math.log(est)
        floor = math.log(1e-6 * self.sigma_hat)
        lo = self._side(zeta, est, u0, u0 - 0.3, z, floor, math.exp)
        if lo <= 1e-6 * self.sigma_hat * (1 + 1e-9) and abs(zeta(0.0)) < z:
            lo = 0.0
        hi = self._side(zeta, est, u0, u0 + 0.3, z, math.inf, math.exp)
        return lo, hi

    def fixed_interval(self, j: int, est: float, se: float, z: float) -> tuple[float, float]:
        warm = {"t": self.theta_hat.copy()}

        def zeta(b):
            d, th = self.profile_fixed(j, b, warm["t"])
            warm["t"] = th
            return math.copysign(math.sqrt(max(d - self.d_min, 0.0)), b - est)

        lo = self._side(zeta, est, est, est - z * se, z, -math.inf, float)
        hi = self._side(zeta, est, est, est + z * se, z, math.inf, float)
        return lo, hi
