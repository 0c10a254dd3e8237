"""Numerical core of :func:`alliance.models.lmm`: the profiled deviance of a nested LMM.

The model is ``y = X beta + sum_k Z_k b_k + e`` with ``e ~ N(0, sigma^2 I)`` and, for each
grouping level ``k`` (clients, therapists, sites, ...), independent group effects
``b_kg ~ N(0, sigma^2 Lambda_k Lambda_k')`` where ``Lambda_k`` is a small lower-triangular
relative covariance factor whose free entries form ``theta`` (lme4's parametrization, Bates
et al. 2015).

For a given ``theta`` the penalized least-squares problem is solved through the Cholesky
factor of the augmented matrix

    [Lambda' Z' Z Lambda + I   Lambda' Z' X   Lambda' Z' y]
    [X' Z Lambda               X' X           X' y        ]
    [y' Z Lambda               y' X           y' y        ]

which, because the levels are nested (every client in one therapist, every therapist in one
site), has no fill-in when the clients are eliminated first, then the therapists, then the
sites: each group couples only with its ancestors. Every step is a batched operation on small
``(groups, q, q)`` arrays plus segment sums (``np.add.reduceat``) into the parents, so one
evaluation costs O(number of groups) after the sufficient statistics (per-group cross
products) have been formed once in O(rows).

The gradient is analytic: ``d r^2`` by the envelope theorem and ``d log|M|`` as
``tr(M^-1 dM)``, where only the blocks of ``M^-1`` on the sparsity pattern of the factor are
needed; they come from the Takahashi recurrences run top-down over the same tree.

Everything here works on numpy arrays; formula handling and results live in ``lmm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LevelSpec", "Structure", "Factor", "build_structure", "ProfiledDeviance"]


# --------------------------------------------------------------------------- small batched linalg


def _chol(a: np.ndarray) -> np.ndarray:
    """Cholesky factors of a stack of small SPD matrices ``(G, q, q)``."""
    if a.shape[-1] == 1:
        return np.sqrt(a)
    return np.linalg.cholesky(a)


def _tri_inv(low: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices ``(G, q, q)`` by forward substitution."""
    q = low.shape[-1]
    if q == 1:
        return 1.0 / low
    inv = np.zeros_like(low)
    diag = np.diagonal(low, axis1=-2, axis2=-1)
    for i in range(q):
        row = -low[..., i : i + 1, :i] @ inv[..., :i, :] if i else np.zeros_like(low[..., :1, :])
        row[..., 0, i] += 1.0
        inv[..., i, :] = row[..., 0, :] / diag[..., i : i + 1]
    return inv


def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _gsum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum_g x[g] @ y[g]`` for stacks ``(G, a, b)`` and ``(G, b, c)`` via one BLAS call."""
    g, a, b = x.shape
    c = y.shape[-1]
    return np.transpose(x, (1, 0, 2)).reshape(a, g * b) @ y.reshape(g * b, c)


def _segsum(x: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """Sum a stack over contiguous segments (``starts``) or over everything (``None``)."""
    if starts is None:
        return x.sum(axis=0)
    return np.add.reduceat(x, starts, axis=0)


# --------------------------------------------------------------------------- structure


@dataclass
class LevelSpec:
    """One grouping level: its name, group codes per row, design columns and theta template.

    ``template`` is a ``(q, q)`` integer array: ``-1`` where ``Lambda`` is structurally zero,
    otherwise the position of that entry in the level's part of ``theta`` (lower triangle only).
    """

    name: str
    codes: np.ndarray
    z: np.ndarray
    template: np.ndarray
    columns: list[str] = field(default_factory=list)

    @property
    def q(self) -> int:
        return self.z.shape[1]


@dataclass
class Structure:
    """Sufficient statistics of a nested design, levels ordered innermost first."""

    n: int
    p: int
    q: list[int]
    ngroups: list[int]
    anc: list[dict[int, np.ndarray]]  # anc[k][j]: ancestor index at level j of each group of k
    starts: list[dict[int, np.ndarray]]  # starts[k][j]: segments of level-k groups per level j
    r: list[dict[int, np.ndarray]]  # r[k][j] = Z_k' Z_j per group of k, (G_k, q_k, q_j), j >= k
    rroot: list[np.ndarray]  # Z_k' [X y] per group of k, (G_k, q_k, p + 1)
    wtw: np.ndarray  # [X y]' [X y]
    theta_pos: list[tuple[int, int, int]]  # theta index -> (level, row, col)
    templates: list[np.ndarray]
    order: np.ndarray  # row order used (sorted by the nesting)
    group_codes: list[np.ndarray]  # sorted-order code of each row, per level
    group_first_row: list[np.ndarray]  # original row position of the first row of each group

    @property
    def k(self) -> int:
        return len(self.q)

    @property
    def ntheta(self) -> int:
        return len(self.theta_pos)

    def lower_bounds(self) -> np.ndarray:
        return np.array([0.0 if r == c else -np.inf for _, r, c in self.theta_pos])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        out = []
        for tmpl in self.templates:
            lam = np.zeros(tmpl.shape)
            mask = tmpl >= 0
            lam[mask] = theta[tmpl[mask]]
            out.append(lam)
        return out


def build_structure(
    y: np.ndarray, x: np.ndarray, levels: list[LevelSpec], *, chunk: int = 1 << 16
) -> Structure:
    """Sort rows by the nesting and form the per-group cross products (one pass, O(rows)).

    ``levels`` must be ordered innermost first and already checked to be nested.
    ``templates`` index a global theta: level k's entries are offset by the sizes before it.
    """
    n, p = x.shape
    kk = len(levels)
    keys = [lv.codes for lv in levels]
    # lexsort: the last key is the primary one -> outermost level last in the key list
    order = np.lexsort(tuple(keys)) if kk else np.arange(n)
    sorted_codes = []
    starts_rows = []
    for lv in levels:
        c = lv.codes[order]
        change = np.empty(n, dtype=bool)
        change[0] = True
        # a new group starts where this level's code or any outer level's code changes
        change[1:] = c[1:] != c[:-1]
        starts_rows.append(change)
        sorted_codes.append(c)
    # make "new group" flags hierarchical: a change at an outer level is a change at inner ones
    for k in range(kk - 2, -1, -1):
        starts_rows[k] = starts_rows[k] | starts_rows[k + 1]
    group_of_row = [np.cumsum(s) - 1 for s in starts_rows]
    row_starts = [np.flatnonzero(s) for s in starts_rows]
    ngroups = [len(s) for s in row_starts]

    # ancestors and segment starts (groups are contiguous at every level after sorting)
    anc: list[dict[int, np.ndarray]] = []
    starts: list[dict[int, np.ndarray]] = []
    for k in range(kk):
        a_k = {}
        s_k = {}
        first_rows = row_starts[k]
        for j in range(k + 1, kk):
            a = group_of_row[j][first_rows]
            a_k[j] = a
            flag = np.empty(len(a), dtype=bool)
            flag[0] = True
            flag[1:] = a[1:] != a[:-1]
            s_k[j] = np.flatnonzero(flag)
        anc.append(a_k)
        starts.append(s_k)

    zs = [lv.z[order] for lv in levels]
    w = np.column_stack([x[order], y[order]])
    zall = np.column_stack(zs) if kk else np.zeros((n, 0))
    qs = [lv.q for lv in levels]
    offs = np.concatenate([[0], np.cumsum(qs)]).astype(int)
    qtot = int(offs[-1])
    full = np.column_stack([zall, w])  # (n, Q + p + 1)
    # per innermost group: Z_all' [Z_all X y]   (G_1, Q, Q + p + 1), in row chunks
    if kk:
        g1 = ngroups[0]
        cross = np.zeros((g1, qtot, full.shape[1]))
        rs = row_starts[0]
        bounds = list(range(0, n, chunk)) + [n]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            glo = group_of_row[0][lo]
            ghi = group_of_row[0][hi - 1]
            local = rs[glo : ghi + 1] - lo
            local[0] = 0
            for i in range(qtot):
                prod = zall[lo:hi, i : i + 1] * full[lo:hi]
                cross[glo : ghi + 1, i, :] += np.add.reduceat(prod, local, axis=0)
    r: list[dict[int, np.ndarray]] = []
    rroot: list[np.ndarray] = []
    for k in range(kk):
        if k == 0:
            agg = cross
        else:
            # groups of level k as segments of innermost groups
            flag = np.empty(ngroups[0], dtype=bool)
            a = anc[0][k]
            flag[0] = True
            flag[1:] = a[1:] != a[:-1]
            agg = np.add.reduceat(cross, np.flatnonzero(flag), axis=0)
        rows = slice(offs[k], offs[k + 1])
        r.append({j: agg[:, rows, offs[j] : offs[j + 1]].copy() for j in range(k, kk)})
        rroot.append(agg[:, rows, qtot:].copy())
    wtw = w.T @ w

    templates = []
    theta_pos: list[tuple[int, int, int]] = []
    for k, lv in enumerate(levels):
        tmpl = np.where(lv.template >= 0, lv.template + len(theta_pos), -1)
        templates.append(tmpl)
        entries = sorted(
            (int(tmpl[i, j]), i, j) for i in range(lv.q) for j in range(lv.q) if tmpl[i, j] >= 0
        )
        theta_pos.extend((k, i, j) for _, i, j in entries)
    first_orig = [order[rs] for rs in row_starts]
    return Structure(
        n=n,
        p=p,
        q=qs,
        ngroups=ngroups,
        anc=anc,
        starts=starts,
        r=r,
        rroot=rroot,
        wtw=wtw,
        theta_pos=theta_pos,
        templates=templates,
        order=order,
        group_codes=group_of_row,
        group_first_row=first_orig,
    )


# --------------------------------------------------------------------------- the factorization


@dataclass
class Factor:
    """Block Cholesky factor of the augmented PLS matrix at one theta."""

    theta: np.ndarray
    lam: list[np.ndarray]
    linv: list[np.ndarray]  # L_k^{-1}, (G_k, q_k, q_k)
    logdiag: list[np.ndarray]
    m: list[dict[int, np.ndarray]]  # m[k][j] = L_{j,k} (G_k, q_j, q_k), j > k
    mroot: list[np.ndarray]  # L_{[X y], k} (G_k, p + 1, q_k)
    lroot: np.ndarray  # Cholesky of the [X y] Schur complement, (p + 1, p + 1)

    @property
    def logdet_l(self) -> float:
        return 2.0 * float(sum(ld.sum() for ld in self.logdiag))

    @property
    def logdet_rx(self) -> float:
        p = self.lroot.shape[0] - 1
        return 2.0 * float(np.log(np.diag(self.lroot)[:p]).sum())

    @property
    def r2(self) -> float:
        return float(self.lroot[-1, -1] ** 2)


class ProfiledDeviance:
    """lme4's profiled deviance (REML or ML) of a nested design, with its analytic gradient."""

    def __init__(self, st: Structure, reml: bool = True) -> None:
        self.st = st
        self.reml = reml

    # ---- factorization
    def factor(self, theta: np.ndarray) -> Factor:
        st = self.st
        kk = st.k
        lam = st.lambdas(np.asarray(theta, dtype=float))
        d = []
        c: list[dict[int, np.ndarray]] = []
        croot = []
        for k in range(kk):
            lk = lam[k]
            d.append(lk.T @ st.r[k][k] @ lk + np.eye(st.q[k]))
            c.append({j: lam[j].T @ _t(st.r[k][j]) @ lk for j in range(k + 1, kk)})
            croot.append(_t(st.rroot[k]) @ lk)
        droot = st.wtw.copy()
        linv, logdiag, m, mroot = [], [], [], []
        for k in range(kk):
            lk = _chol(d[k])
            li = _tri_inv(lk)
            lit = _t(li)
            logdiag.append(np.log(np.diagonal(lk, axis1=-2, axis2=-1)))
            mk = {j: c[k][j] @ lit for j in range(k + 1, kk)}
            mr = croot[k] @ lit
            for j in range(k + 1, kk):
                s = st.starts[k][j]
                d[j] -= _segsum(mk[j] @ _t(mk[j]), s)
                for i in range(k + 1, j):
                    c[i][j] -= _segsum(mk[j] @ _t(mk[i]), st.starts[k][i])
                croot[j] -= _segsum(mr @ _t(mk[j]), s)
            droot -= _gsum(mr, _t(mr))
            linv.append(li)
            m.append(mk)
            mroot.append(mr)
        lroot = np.linalg.cholesky(droot)
        return Factor(np.asarray(theta, float), lam, linv, logdiag, m, mroot, lroot)

    def deviance_from(self, f: Factor) -> float:
        n, p = self.st.n, self.st.p
        if self.reml:
            nr = n - p
            return f.logdet_l + f.logdet_rx + nr * (1.0 + np.log(2.0 * np.pi * f.r2 / nr))
        return f.logdet_l + n * (1.0 + np.log(2.0 * np.pi * f.r2 / n))

    def deviance(self, theta: np.ndarray) -> float:
        try:
            return self.deviance_from(self.factor(theta))
        except np.linalg.LinAlgError:
            return np.inf

    # ---- solution of the PLS problem
    def solve(self, f: Factor) -> tuple[np.ndarray, list[np.ndarray]]:
        """Fixed effects and spherical random effects ``u`` (per level, ``(G_k, q_k)``)."""
        st = self.st
        p = st.p
        lxx = f.lroot[:p, :p]
        beta = np.linalg.solve(lxx.T, f.lroot[p, :p])
        u: list[np.ndarray] = [None] * st.k  # type: ignore[list-item]
        for k in range(st.k - 1, -1, -1):
            rhs = f.mroot[k][:, p, :] - np.einsum("gpq,p->gq", f.mroot[k][:, :p, :], beta)
            for j in range(k + 1, st.k):
                uj = u[j][st.anc[k][j]]
                rhs -= np.einsum("gjq,gj->gq", f.m[k][j], uj)
            u[k] = np.einsum("gqr,gq->gr", f.linv[k], rhs)  # L_k^{-T} rhs
        return beta, u

    def sigma_xx(self, f: Factor) -> np.ndarray:
        """``(R_X' R_X)^{-1}``: the covariance of the fixed effects divided by sigma^2."""
        p = self.st.p
        li = np.linalg.inv(f.lroot[:p, :p])
        return li.T @ li

    # ---- gradient pieces
    def grad_r2(self, f: Factor, beta: np.ndarray, u: list[np.ndarray]) -> list[np.ndarray]:
        """d r^2 / d Lambda_k for each level (envelope theorem: -2 sum_g (Z_g' r) u_g')."""
        st = self.st
        kk = st.k
        lu = [u[k] @ f.lam[k].T for k in range(kk)]  # b = Lambda u per group
        coef = np.append(-beta, 1.0)
        out = []
        for k in range(kk):
            v = st.rroot[k] @ coef
            v -= np.einsum("gab,gb->ga", st.r[k][k], lu[k])
            for j in range(k + 1, kk):
                v -= np.einsum("gab,gb->ga", st.r[k][j], lu[j][st.anc[k][j]])
            for i in range(k):
                contrib = np.einsum("gab,ga->gb", st.r[i][k], lu[i])
                v -= _segsum(contrib, st.starts[i][k])
            out.append(-2.0 * (v.T @ u[k]))
        return out

    def grad_logdet(self, f: Factor, with_x: bool) -> list[np.ndarray]:
        """d log|M| / d Lambda_k (``with_x``: M includes the X block, as REML needs)."""
        st = self.st
        kk = st.k
        p = st.p if with_x else 0
        grads = [np.zeros((q, q)) for q in st.q]
        if with_x:
            sroot = self.sigma_xx(f)
        else:
            sroot = np.zeros((0, 0))
        parent_f = None
        for k in range(kk - 1, -1, -1):
            blocks = [f.m[k][j] for j in range(k + 1, kk)]
            if with_x:
                blocks.append(f.mroot[k][:, :p, :])
            li = f.linv[k]
            gk = st.ngroups[k]
            if blocks:
                b = np.concatenate(blocks, axis=1)  # (G_k, d_anc, q_k)
                if k == kk - 1:
                    sanc_b = np.einsum("ab,gbq->gaq", sroot, b)
                else:
                    sanc = parent_f[st.anc[k][k + 1]]
                    sanc_b = sanc @ b
                t = sanc_b @ li  # Sigma_anc B L^{-1}
                sig_gg = _t(li) @ (li + _t(b) @ t)
                sig_ag = -t
            else:
                sig_gg = _t(li) @ li
                sig_ag = np.zeros((gk, 0, st.q[k]))
            lk = f.lam[k]
            grads[k] += 2.0 * _gsum(st.r[k][k] @ lk, sig_gg)
            off = 0
            for j in range(k + 1, kk):
                qj = st.q[j]
                s_ag = sig_ag[:, off : off + qj, :]
                rk = st.r[k][j]
                grads[k] += 2.0 * _gsum(rk @ f.lam[j], s_ag)
                grads[j] += 2.0 * _gsum(_t(rk) @ lk, _t(s_ag))
                off += qj
            if with_x:
                grads[k] += 2.0 * _gsum(st.rroot[k][:, :, :p], sig_ag[:, off:, :])
            if k > 0:
                if k == kk - 1:
                    sanc_full = np.broadcast_to(sroot, (gk, *sroot.shape))
                else:
                    sanc_full = parent_f[st.anc[k][k + 1]]
                top = np.concatenate([sig_gg, _t(sig_ag)], axis=2)
                bottom = np.concatenate([sig_ag, sanc_full], axis=2)
                parent_f = np.concatenate([top, bottom], axis=1)
        return grads

    def _to_theta(self, per_level: list[np.ndarray]) -> np.ndarray:
        return np.array([per_level[k][i, j] for k, i, j in self.st.theta_pos])

    def deviance_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            f = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(len(theta))
        dev = self.deviance_from(f)
        beta, u = self.solve(f)
        g_r2 = self._to_theta(self.grad_r2(f, beta, u))
        g_ld = self._to_theta(self.grad_logdet(f, with_x=self.reml))
        nr = self.st.n - self.st.p if self.reml else self.st.n
        return dev, g_ld + nr / f.r2 * g_r2

    # ---- the deviance as a function of (theta, sigma), as lmerTest uses it
    def varpar_gradient(self, varpar: np.ndarray) -> np.ndarray:
        """Gradient of the non-profiled deviance ``-2 log L(theta, sigma)`` at beta-hat(theta)."""
        theta, sigma = varpar[:-1], varpar[-1]
        f = self.factor(theta)
        beta, u = self.solve(f)
        g_r2 = self._to_theta(self.grad_r2(f, beta, u))
        g_ld = self._to_theta(self.grad_logdet(f, with_x=self.reml))
        s2 = sigma * sigma
        nr = self.st.n - self.st.p if self.reml else self.st.n
        g_theta = g_ld + g_r2 / s2
        g_sigma = -2.0 * f.r2 / (s2 * sigma) + 2.0 * nr / sigma
        return np.append(g_theta, g_sigma)
