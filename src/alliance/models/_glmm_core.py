"""Numerical core of :func:`alliance.models.glmm`: families, blocked Cholesky, PIRLS, AGQ.

The system ``Lambda' Z' W Z Lambda + I`` is factored blockwise: the random term with the most
levels is block diagonal (diagonal for a scalar term) and the remaining terms, with the fixed
effects appended when they are updated inside PIRLS, form a small dense block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import linalg, sparse, special, stats

__all__ = ["Family", "Term", "Engine", "family"]


@dataclass(frozen=True)
class Family:
    name: str
    link: str

    def linkinv(self, eta):
        if self.link == "logit":
            return special.expit(eta)
        if self.link == "probit":
            return stats.norm.cdf(eta)
        if self.link == "cloglog":
            return -np.expm1(-np.exp(eta))
        if self.link == "log":
            return np.exp(eta)
        return eta  # identity

    def mu_eta(self, eta):
        if self.link == "logit":
            m = special.expit(eta)
            return np.maximum(m * (1 - m), np.finfo(float).tiny)
        if self.link == "probit":
            return np.maximum(stats.norm.pdf(eta), np.finfo(float).tiny)
        if self.link == "cloglog":
            e = np.minimum(eta, 700)
            return np.maximum(np.exp(e - np.exp(e)), np.finfo(float).tiny)
        if self.link == "log":
            return np.maximum(np.exp(eta), np.finfo(float).tiny)
        return np.ones_like(eta)

    def variance(self, mu):
        if self.name == "binomial":
            return mu * (1 - mu)
        return mu

    def clip(self, mu):
        eps = 1e-15
        if self.name == "binomial":
            return np.clip(mu, eps, 1 - eps)
        return np.maximum(mu, eps)

    def dev_resid(self, y, mu, wt):
        if self.name == "binomial":
            a = special.xlogy(y, y) - special.xlogy(y, mu)
            b = special.xlogy(1 - y, 1 - y) - special.xlogy(1 - y, 1 - mu)
            return 2 * wt * (a + b)
        return 2 * wt * (special.xlogy(y, y) - special.xlogy(y, mu) - (y - mu))

    def aic(self, y, mu, wt):
        """-2 log-likelihood with its constants (R's ``family()$aic`` without the 2p)."""
        if self.name == "binomial":
            m = np.round(wt)
            k = np.round(m * y)
            return -2 * np.sum(stats.binom.logpmf(k, m, mu))
        return -2 * np.sum(wt * stats.poisson.logpmf(np.round(y), mu))


_LINKS = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log", "identity", "sqrt")}


def family(name: str, link: str | None) -> Family:
    if name not in _LINKS:
        raise ValueError(f"family must be 'binomial' or 'poisson', not {name!r}.")
    link = link or _LINKS[name][0]
    if link not in _LINKS[name] or link == "sqrt":
        raise ValueError(
            f"link {link!r} is not available for the {name} family; use one of "
            f"{[lk for lk in _LINKS[name] if lk != 'sqrt']}."
        )
    return Family(name, link)


@dataclass
class Term:
    """One random term: group code per row, its design columns, number of levels."""

    name: str
    codes: np.ndarray
    x: np.ndarray  # n x k
    columns: list[str]
    labels: object
    nlev: int

    @property
    def k(self) -> int:
        return self.x.shape[1]

    def tri(self) -> tuple[np.ndarray, np.ndarray]:
        """Row/column indices of the lower triangle, column by column (lme4's theta order)."""
        rows, cols = [], []
        for c in range(self.k):
            for r in range(c, self.k):
                rows.append(r)
                cols.append(c)
        return np.array(rows), np.array(cols)


class Engine:
    """Laplace / adaptive Gauss-Hermite deviance of a GLMM for given theta (and beta)."""

    def __init__(self, y, x, terms, fam, wt, offset):
        # rows sorted by the first term's groups, so sums over its levels are contiguous
        # (np.add.reduceat); nothing row-level leaves the engine
        c1 = terms[0].codes
        if np.any(np.diff(c1) < 0):
            order = np.argsort(c1, kind="stable")
            y, x, wt, offset = y[order], x[order], wt[order], offset[order]
            terms = [replace(t, codes=t.codes[order], x=t.x[order]) for t in terms]
        c1 = terms[0].codes
        starts = np.flatnonzero(np.r_[True, c1[1:] != c1[:-1]])
        self.starts1 = starts if len(starts) == terms[0].nlev and c1[0] == 0 else None
        self.y, self.x, self.terms, self.fam = y, x, terms, fam
        self.wt, self.offset = wt, offset
        self.n, self.p = x.shape
        self.ntheta = [t.k * (t.k + 1) // 2 for t in terms]
        self.t1 = terms[0]
        self.rest = terms[1:]
        off = [0]
        for t in self.rest:
            off.append(off[-1] + t.nlev * t.k)
        self.rest_off = off
        self.q_rest = off[-1]
        if self.q_rest > 4000:
            raise ValueError(
                f"the random terms after {self.t1.name!r} have {self.q_rest} random effects in "
                "all; the dense block of this engine is limited to 4000. Put the factor with "
                "most levels first is automatic; reduce the smaller crossed factors."
            )
        self.u = np.zeros(sum(t.nlev * t.k for t in terms))
        self.beta = np.zeros(self.p)
        # the saturated part of the deviance, and aic(mu) - deviance(mu), do not depend on mu
        # (for integer trials and counts): computed once, so each evaluation needs only logs
        self.wy = wt * y
        if fam.name == "binomial":
            self.w1y = wt * (1 - y)
            sat = special.xlogy(y, y) + special.xlogy(1 - y, 1 - y)
        else:
            sat = special.xlogy(y, y) - y
        self.sat = 2 * np.sum(wt * sat)
        mu0 = fam.clip(np.full(len(y), 0.5) if fam.name == "binomial" else np.maximum(y, 0.5))
        self.aic_const = fam.aic(y, mu0, wt) - self._dev(mu0)
        m = np.round(wt)
        exact = np.allclose(m, wt) and (
            fam.name == "poisson" or np.allclose(np.round(m * y), m * y)
        )
        self.aic_exact = not exact

    def _dev(self, mu, eta=None):
        """Sum of the deviance residuals at mu (log-scale helpers for the logit link)."""
        fam = self.fam
        if fam.name == "binomial":
            if eta is not None and fam.link == "logit":
                # -log(mu) = softplus(-eta), -log(1 - mu) = softplus(eta)
                sp = np.logaddexp(0.0, eta)
                return 2 * (self.wy @ (sp - eta) + self.w1y @ sp) + self.sat
            return -2 * (self.wy @ np.log(mu) + self.w1y @ np.log1p(-mu)) + self.sat
        return 2 * (self.wt @ mu - self.wy @ np.log(mu)) + self.sat

    def aic(self, mu, eta=None):
        if self.aic_exact:
            return self.fam.aic(self.y, mu, self.wt)
        return self._dev(mu, eta) + self.aic_const

    # ---------------------------------------------------------------- theta
    def lambdas(self, theta):
        out, i = [], 0
        for t, m in zip(self.terms, self.ntheta, strict=True):
            lam = np.zeros((t.k, t.k))
            r, c = t.tri()
            lam[r, c] = theta[i : i + m]
            out.append(lam)
            i += m
        return out

    def lower_bounds(self):
        lb = []
        for t in self.terms:
            r, c = t.tri()
            lb += [0.0 if a == b else -np.inf for a, b in zip(r, c, strict=True)]
        return np.array(lb)

    def setup(self, theta, with_x):
        lams = self.lambdas(theta)
        self.v = [t.x @ lam for t, lam in zip(self.terms, lams, strict=True)]
        self.with_x = with_x
        # dense design of the rest block (n x q_r + p) is never formed; columns by term
        self.qr = self.q_rest + (self.p if with_x else 0)

    # ---------------------------------------------------------------- linear predictor
    def zlu(self, u):
        eta = np.zeros(self.n)
        i = 0
        for t, v in zip(self.terms, self.v, strict=True):
            if t.k == 1:
                eta += v[:, 0] * u[i : i + t.nlev][t.codes]
            else:
                ut = u[i : i + t.nlev * t.k].reshape(t.nlev, t.k)
                eta += np.einsum("ij,ij->i", v, ut[t.codes])
            i += t.nlev * t.k
        return eta

    def _sum1(self, vals):
        """Sums of ``vals`` over the levels of the first term."""
        if self.starts1 is not None:
            return np.add.reduceat(vals, self.starts1)
        return np.bincount(self.t1.codes, vals, minlength=self.t1.nlev)

    def _sum_rest(self, m, vals):
        """Sums of ``vals`` over the rest effects of ``rest_idx[m]`` (through the first term's
        levels when the rest term is constant within them, as therapists over clients)."""
        rc = self.rest_client[m]
        if rc is not None:
            return np.bincount(rc, self._sum1(vals), minlength=self.q_rest)
        return np.bincount(self.rest_idx[m][2], vals, minlength=self.q_rest)

    # ---------------------------------------------------------------- structure (once)
    def _structure(self):
        """Index arrays and the sparsity pattern of A21 (rest x term 1), built once.

        The pattern of the random part of A21 is the set of (rest effect, term-1 effect)
        pairs that share an observation; each PIRLS iteration only fills in its values."""
        t1 = self.t1
        k1, q1 = t1.k, t1.nlev * t1.k
        self.q1 = q1
        # rest-effect row index per observation, per (rest term, column)
        self.rest_idx = []  # (j, a, index array)
        for j, t in enumerate(self.rest):
            for a in range(t.k):
                self.rest_idx.append((j, a, self.rest_off[j] + t.codes * t.k + a))
        self.rest_client = []
        for _j, _a, ri in self.rest_idx:
            rc = None
            if self.starts1 is not None:
                rc = ri[self.starts1]
                if not np.array_equal(rc[t1.codes], ri):
                    rc = None
            self.rest_client.append(rc)
        keys, combos = [], []
        for j, a, ri in self.rest_idx:
            for b in range(k1):
                keys.append(ri.astype(np.int64) * q1 + t1.codes * k1 + b)
                combos.append((j, a, b))
        if keys:
            allk = np.concatenate(keys)
            uniq, inv = np.unique(allk, return_inverse=True)
            self.npairs = len(uniq)
            self.pair_idx = [
                (j, a, b, inv[i * self.n : (i + 1) * self.n]) for i, (j, a, b) in enumerate(combos)
            ]
            rows = uniq // q1
            self.a21_indices = (uniq % q1).astype(np.int32)
            self.a21_indptr = np.concatenate(
                [[0], np.cumsum(np.bincount(rows, minlength=self.q_rest))]
            )
            self.a21_group = self.a21_indices[::k1] // k1  # term-1 group of each k1-run
            # one rest effect per term-1 column (the rest terms nest term 1, e.g. clients
            # within therapists): L21 L21' is diagonal
            self.a21_rows = rows
            self.a21_nested = self.npairs == q1
            # nested: each combination's pair index is constant within a first-term level
            self.pair_client = None
            if self.a21_nested and self.starts1 is not None:
                pc = [pidx[self.starts1] for _j, _a, _b, pidx in self.pair_idx]
                if all(
                    np.array_equal(c[t1.codes], pidx)
                    for c, (_j, _a, _b, pidx) in zip(pc, self.pair_idx, strict=True)
                ):
                    self.pair_client = pc
        else:
            self.npairs = 0
            self.pair_idx = []
        # A22 random block: diagonal entries of one term's own column pairs, dense otherwise
        self.a22_idx = []
        qr = self.q_rest
        for ia, (_j, _a, ri) in enumerate(self.rest_idx):
            for jb, (_j2, _b, rj) in enumerate(self.rest_idx):
                if jb < ia:
                    continue
                flat = None if ia == jb else ri.astype(np.int64) * qr + rj
                self.a22_idx.append((ia, jb, flat))

    def factor(self, w):
        t1, v1 = self.t1, self.v[0]
        k1 = t1.k
        nl1 = t1.nlev
        if not hasattr(self, "q1"):
            self._structure()
        q1 = self.q1
        wv1 = v1 * w[:, None]
        a11 = np.zeros((nl1, k1, k1))
        for a in range(k1):
            for b in range(a, k1):
                s = self._sum1(wv1[:, a] * v1[:, b])
                a11[:, a, b] = s
                a11[:, b, a] = s
        a11 += np.eye(k1)
        if k1 == 1:
            l11 = np.sqrt(a11)
            linv = 1.0 / l11
        else:
            l11 = np.linalg.cholesky(a11)
            linv = np.linalg.inv(l11)
        qrest = self.q_rest
        p = self.p if self.with_x else 0
        # random part of A21 (sparse, fixed pattern) and of A22 (dense, small)
        if self.npairs:
            vals = np.zeros(self.npairs)
            wvr = {}
            for m, (j, a, b, pidx) in enumerate(self.pair_idx):
                key = (j, a)
                if key not in wvr:
                    wvr[key] = self.v[1 + j][:, a] * w
                if self.pair_client is not None:
                    vals[self.pair_client[m]] += self._sum1(wvr[key] * v1[:, b])
                else:
                    vals += np.bincount(pidx, wvr[key] * v1[:, b], minlength=self.npairs)
            if k1 == 1:
                l21v = vals * linv[self.a21_indices, 0, 0]
            else:
                l21v = np.einsum("ma,mba->mb", vals.reshape(-1, k1), linv[self.a21_group]).ravel()
            l21r = sparse.csr_matrix((l21v, self.a21_indices, self.a21_indptr), shape=(qrest, q1))
            a22r = np.zeros((qrest, qrest))
            for ia, jb, flat in self.a22_idx:
                j, a, _ri = self.rest_idx[ia]
                _j2, b, _rj = self.rest_idx[jb]
                wab = self.v[1 + j][:, a] * w * self.v[1 + _j2][:, b]
                if flat is None:
                    a22r[np.diag_indices(qrest)] += self._sum_rest(ia, wab)
                else:
                    s = np.bincount(flat, wab, minlength=qrest * qrest).reshape(qrest, qrest)
                    a22r += s + s.T
            a22r[np.diag_indices(qrest)] += 1.0
            if self.a21_nested:
                srr = np.diag(np.bincount(self.a21_rows, l21v * l21v, minlength=qrest))
            else:
                srr = (l21r @ l21r.T).toarray()
        else:
            l21r = sparse.csr_matrix((0, q1))
            a22r = np.zeros((0, 0))
            srr = a22r
        a22 = np.zeros((qrest + p, qrest + p))
        a22[:qrest, :qrest] = a22r - srr
        if p:
            wx = self.x * w[:, None]
            a21x = np.empty((p, nl1, k1))
            for b in range(k1):
                for j in range(p):
                    a21x[j, :, b] = self._sum1(wx[:, j] * v1[:, b])
            if k1 == 1:
                l21x = a21x.reshape(p, q1) * linv[:, 0, 0][None, :]
            else:
                l21x = np.einsum("rga,gba->rgb", a21x, linv).reshape(p, q1)
            a22[qrest:, qrest:] = wx.T @ self.x - l21x @ l21x.T
            if qrest:
                arx = np.zeros((qrest, p))
                for m, (j, a, _ri) in enumerate(self.rest_idx):
                    vr = self.v[1 + j][:, a]
                    for c in range(p):
                        arx[:, c] += self._sum_rest(m, wx[:, c] * vr)
                arx -= l21r @ l21x.T
                a22[:qrest, qrest:] = arx
                a22[qrest:, :qrest] = arx.T
        else:
            l21x = np.zeros((0, q1))
        if qrest + p:
            l22 = linalg.cholesky(a22, lower=True, check_finite=False)
        else:
            l22 = np.zeros((0, 0))
        self.qr = qrest + p
        self.l11, self.linv, self.l21r, self.l21x, self.l22 = l11, linv, l21r, l21x, l22
        ld = 2 * np.sum(np.log(np.diagonal(l11, axis1=1, axis2=2)))
        d22 = np.diag(l22)
        ld += 2 * np.sum(np.log(d22[:qrest]))
        self.ldrx = 2 * np.sum(np.log(d22[qrest:]))
        return ld

    def _l21_dot(self, y1):
        out = self.l21r @ y1
        if len(self.l21x):
            out = np.concatenate([out, self.l21x @ y1])
        return out

    def _l21t_dot(self, x2):
        out = self.l21r.T @ x2[: self.q_rest]
        if len(self.l21x):
            out = out + self.l21x.T @ x2[self.q_rest :]
        return out

    def solve(self, b1, b2):
        t1 = self.t1
        k1 = t1.k
        if k1 == 1:
            y1 = self.linv[:, 0, 0] * b1
        else:
            y1 = np.einsum("gab,gb->ga", self.linv, b1.reshape(t1.nlev, k1)).ravel()
        if self.qr:
            y2 = linalg.solve_triangular(
                self.l22, b2 - self._l21_dot(y1), lower=True, check_finite=False
            )
            x2 = linalg.solve_triangular(self.l22, y2, lower=True, trans="T", check_finite=False)
            y1 = y1 - self._l21t_dot(x2)
        else:
            x2 = b2
        if k1 == 1:
            x1 = self.linv[:, 0, 0] * y1
        else:
            x1 = np.einsum("gba,gb->ga", self.linv, y1.reshape(t1.nlev, k1)).ravel()
        return x1, x2

    def ztw(self, r):
        """(Z Lambda)' r split as (term-1 part, rest part)."""
        t1, v1 = self.t1, self.v[0]
        if t1.k == 1:
            b1 = self._sum1(r * v1[:, 0])
        else:
            b1 = np.stack([self._sum1(r * v1[:, a]) for a in range(t1.k)], 1).ravel()
        b2 = np.zeros(self.q_rest)
        if not hasattr(self, "q1"):
            self._structure()
        for m, (j, a, _ri) in enumerate(self.rest_idx):
            b2 += self._sum_rest(m, r * self.v[1 + j][:, a])
        return b1, b2

    # ---------------------------------------------------------------- PIRLS
    def eta_of(self, u, beta):
        key = getattr(self, "_xb_key", None)
        if key is None or not np.array_equal(key, beta):
            self._xb_key = np.array(beta, float)
            self._xb = self.offset + self.x @ self._xb_key
        return self._xb + self.zlu(u)

    def pdev(self, u, beta):
        """Penalized deviance at (u, beta) and mu; the deviance alone is kept in ``_last_dev``."""
        eta = self.eta_of(u, beta)
        if self.fam.link == "logit":
            eta = np.clip(eta, -34.5, 34.5)  # the clip of mu, on the logit scale
            e = np.exp(-np.abs(eta))
            mu = np.where(eta >= 0, 1.0, e) / (1.0 + e)
            sp = np.maximum(eta, 0.0) + np.log1p(e)  # -log(1 - mu); -log(mu) = sp - eta
            if self.fam.name == "binomial":
                dev = 2 * (self.wy @ (sp - eta) + self.w1y @ sp) + self.sat
            else:
                dev = self._dev(mu)
        else:
            mu = self.fam.clip(self.fam.linkinv(eta))
            dev = self._dev(mu)
        self._last_dev = dev
        return dev + u @ u, mu

    def _weights(self, mu):
        """PIRLS weights and working residuals at mu (eta from mu for the canonical links)."""
        fam = self.fam
        if (fam.name, fam.link) in (("binomial", "logit"), ("poisson", "log")):
            v = fam.variance(mu)
            return self.wt * np.maximum(v, np.finfo(float).tiny), self.wt * (self.y - mu)
        eta = self._eta_last
        me = fam.mu_eta(eta)
        v = fam.variance(mu)
        return self.wt * me**2 / v, self.wt * (self.y - mu) * me / v

    def _mu_only(self, u, beta):
        """The mean at (u, beta) without the deviance (one transcendental pass fewer)."""
        eta = self.eta_of(u, beta)
        if self.fam.link == "logit":
            return special.expit(np.clip(eta, -34.5, 34.5))
        return self.fam.clip(self.fam.linkinv(eta))

    def pirls(self, theta, beta=None, tol=1e-13, maxit=60):
        """Conditional modes u (and beta when ``beta`` is None); returns the Laplace deviance.

        PIRLS starts from the modes of the previous call (or those set in ``u``). When the
        first Newton step predicts a change of the penalized deviance below the convergence
        tolerance (a warm start, as in finite differences), the step is taken without
        evaluating the deviance at the start: the same stopping rule as a measured change."""
        with_x = beta is None
        self.setup(theta, with_x)
        u = self.u.copy()
        b = self.beta.copy() if with_x else np.asarray(beta, float)
        q1 = self.t1.nlev * self.t1.k
        scale = getattr(self, "_pd_scale", None)
        old = None
        dev_u = np.nan
        if scale is not None:
            mu = self._mu_only(u, b)
            if not np.all(np.isfinite(mu)):
                scale = None
        if scale is None:
            old, mu = self.pdev(u, b)
            if not np.isfinite(old):
                u[:] = 0
                old, mu = self.pdev(u, b)
            dev_u = self._last_dev
        for _ in range(maxit):
            self._eta_last = self.eta_of(u, b) if self.fam.link not in ("logit", "log") else None
            w, r = self._weights(mu)
            self.factor(w)
            b1, b2 = self.ztw(r)
            b1 = b1 - u[:q1]
            b2 = b2 - u[q1:]
            if with_x:
                b2 = np.concatenate([b2, self.x.T @ r])
            d1, d2 = self.solve(b1, b2)
            du = np.concatenate([d1, d2[: self.q_rest]])
            db = d2[self.q_rest :] if with_x else 0.0
            if old is None:
                pred = b1 @ d1 + b2 @ d2  # predicted decrease of the penalized deviance
                if 0 <= pred < tol * (abs(scale) + 0.1):
                    new, mu_new = self.pdev(u + du, b + db)
                    if np.isfinite(new):
                        u, b, mu = u + du, b + db, mu_new
                        dev_u = self._last_dev
                        old = new
                        break
                old, _ = self.pdev(u, b)
                if not np.isfinite(old):
                    u[:] = 0
                    old, mu = self.pdev(u, b)
                    dev_u = self._last_dev
                    continue
            step = 1.0
            for _h in range(30):
                new, mu_new = self.pdev(u + step * du, b + step * db)
                if np.isfinite(new) and new <= old + 1e-12 * abs(old):
                    break
                step /= 2
            u = u + step * du
            b = b + step * db
            mu = mu_new
            dev_u = self._last_dev
            if abs(old - new) < tol * (abs(new) + 0.1):
                old = new
                break
            old = new
        self._eta_last = self.eta_of(u, b) if self.fam.link not in ("logit", "log") else None
        w, _r = self._weights(mu)
        ld = self.factor(w)
        self.u, self.mu = u, mu
        if with_x:
            self.beta = b
        self.ld = ld
        self.sqru = u @ u
        self._pd_scale = old
        aic = self.fam.aic(self.y, mu, self.wt) if self.aic_exact else dev_u + self.aic_const
        return aic + u @ u + ld

    def agq(self, theta, beta, nagq):
        """lme4's adaptive Gauss-Hermite deviance for one scalar random term."""
        self.pirls(theta, beta)
        t = self.t1
        u0 = self.u.copy()
        dr0 = self.fam.dev_resid(self.y, self.mu, self.wt)
        devc0 = np.bincount(t.codes, dr0, minlength=t.nlev) + u0**2
        sd = 1.0 / self.l11[:, 0, 0]
        z, wgh = np.polynomial.hermite_e.hermegauss(nagq)
        wgh = wgh / np.sqrt(2 * np.pi) * np.exp(z**2 / 2)
        mult = np.zeros(t.nlev)
        lin = self.offset + self.x @ np.asarray(beta, float)
        for zk, wk in zip(z, wgh, strict=True):
            if zk == 0:
                mult += wk
                continue
            uk = u0 + zk * sd
            mu = self.fam.clip(self.fam.linkinv(lin + self.v[0][:, 0] * uk[t.codes]))
            dk = np.bincount(t.codes, self.fam.dev_resid(self.y, mu, self.wt), minlength=t.nlev)
            mult += np.exp(-(dk + uk**2 - devc0) / 2) * wk
        self.u = u0
        return devc0.sum() + self.ld - 2 * np.sum(np.log(mult))
