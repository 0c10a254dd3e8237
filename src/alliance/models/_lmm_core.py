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
#
# A stack of G small matrices is stored as an array of shape (rows, cols, G): each entry is a
# contiguous vector over the groups, so the loops below run over the (tiny) matrix dimensions
# only and every numpy call works on whole vectors of groups.


_CHUNK_BYTES = 64 * 2**20  # largest temporary per chunk of groups in the gradient


def stack_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stacked product ``(i, k, G) @ (k, j, G) -> (i, j, G)``."""
    return np.einsum("ikg,kjg->ijg", a, b)


def stack_mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Stacked matrix-vector product ``(i, k, G) @ (k, G) -> (i, G)``."""
    return np.einsum("ikg,kg->ig", a, v)


def stack_tv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Stacked transposed product ``(k, i, G)' @ (k, G) -> (i, G)``."""
    return np.einsum("kig,kg->ig", a, v)


def stack_lmul(m: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Constant matrix times a stack: ``(i, k) @ (k, j, G)``."""
    return np.einsum("ik,kjg->ijg", m, a)


def stack_rmul(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """A stack times a constant matrix: ``(i, k, G) @ (k, j)``."""
    return np.einsum("ikg,kj->ijg", a, m)


def stack_t(a: np.ndarray) -> np.ndarray:
    return a.transpose(1, 0, 2)


def stack_chol(a: np.ndarray) -> np.ndarray:
    """Cholesky factors (lower) of a stack of small SPD matrices ``(q, q, G)``."""
    q = a.shape[0]
    low = np.zeros_like(a)
    for j in range(q):
        s = a[j, j] - (low[j, :j] ** 2).sum(axis=0) if j else a[j, j]
        if not np.all(s > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        d = np.sqrt(s)
        low[j, j] = d
        for i in range(j + 1, q):
            low[i, j] = (a[i, j] - (low[i, :j] * low[j, :j]).sum(axis=0)) / d
    return low


def stack_tri_inv(low: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices ``(q, q, G)``."""
    q = low.shape[0]
    inv = np.zeros_like(low)
    for i in range(q):
        inv[i, i] = 1.0 / low[i, i]
        for j in range(i):
            inv[i, j] = -(low[i, j:i] * inv[j:i, j]).sum(axis=0) * inv[i, i]
    return inv


def _gsum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum_g x[..., g] @ y[..., g]`` for stacks ``(a, b, G)`` and ``(b, c, G)``."""
    return np.einsum("abg,bcg->ac", x, y)


def _segsum(x: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """Sum a stack over contiguous segments of groups (``starts``), or over all groups."""
    if starts is None:
        return x.sum(axis=-1)
    return np.add.reduceat(x, starts, axis=-1)


# --------------------------------------------------------------------------- structure


@dataclass
class LevelSpec:
    """One grouping level: its name, group codes per row, design columns and theta template.

    ``codes`` are integers ``0 .. G-1`` per row. ``template`` is a ``(q, q)`` integer array:
    ``-1`` where ``Lambda`` is structurally zero, otherwise the position of that entry in the
    level's part of ``theta`` (lower triangle only).
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
    """Sufficient statistics of a nested design, levels ordered innermost first.

    Groups are renumbered so that the children of every group are contiguous at each level.
    """

    n: int
    p: int
    q: list[int]
    ngroups: list[int]
    anc: list[dict[int, np.ndarray]]  # anc[k][j]: ancestor (level j) of each group of level k
    starts: list[dict[int, np.ndarray]]  # starts[k][j]: level-k segments, one per level-j group
    r: list[dict[int, np.ndarray]]  # r[k][j] = Z_k' Z_j per group of k, (q_k, q_j, G_k), j >= k
    rroot: list[np.ndarray]  # Z_k' [X y] per group of k, (q_k, p + 1, G_k)
    wtw: np.ndarray  # [X y]' [X y]
    theta_pos: list[tuple[int, int, int]]  # theta index -> (level, row, col)
    templates: list[np.ndarray]
    original: list[np.ndarray]  # original code of each renumbered group, per level

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


def _first_index(codes: np.ndarray, g: int) -> np.ndarray:
    first = np.empty(g, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return first


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    flag = np.empty(len(sorted_keys), dtype=bool)
    flag[0] = True
    flag[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(flag)


def build_structure(y: np.ndarray, x: np.ndarray, levels: list[LevelSpec]) -> Structure:
    """Form the per-group cross products of a nested design in one O(rows) pass.

    ``levels`` must be ordered innermost first and already checked to be nested. Rows need
    not be sorted: sums per group are ``np.bincount`` with weights.
    """
    n, p = x.shape
    kk = len(levels)
    ng = [int(lv.codes.max()) + 1 for lv in levels]
    # parent (old codes) of every group, from the group's first row
    parent_old = []
    for k in range(kk - 1):
        first = _first_index(levels[k].codes, ng[k])
        parent_old.append(levels[k + 1].codes[first])
    # renumber top-down so that siblings are contiguous: sort groups by (new parent, code)
    rank = [np.arange(ng[kk - 1])]
    original = [np.arange(ng[kk - 1])]
    for k in range(kk - 2, -1, -1):
        newpar = rank[0][parent_old[k]]
        perm = np.argsort(newpar, kind="stable")
        r_k = np.empty(ng[k], dtype=np.int64)
        r_k[perm] = np.arange(ng[k])
        rank.insert(0, r_k)
        original.insert(0, perm)
    # ancestors in the new numbering
    parent_new = []
    for k in range(kk - 1):
        par = np.empty(ng[k], dtype=np.int64)
        par[rank[k]] = rank[k + 1][parent_old[k]]
        parent_new.append(par)
    anc: list[dict[int, np.ndarray]] = []
    starts: list[dict[int, np.ndarray]] = []
    for k in range(kk):
        a_k: dict[int, np.ndarray] = {}
        cur = np.arange(ng[k])
        for j in range(k + 1, kk):
            cur = parent_new[j - 1][cur]
            a_k[j] = cur
        anc.append(a_k)
        starts.append({j: _starts(a) for j, a in a_k.items()})

    # cross products per innermost group: Z_i * [Z_j (j >= i), X, y]
    code1 = rank[0][levels[0].codes]
    zcols = [lv.z[:, c] for lv in levels for c in range(lv.q)]
    wcols = [x[:, c] for c in range(p)] + [y]
    qtot = len(zcols)
    g1 = ng[0]
    allcols = zcols + wcols
    cross = np.zeros((qtot, qtot + p + 1, g1))
    ones = [bool(np.all(z == 1.0)) for z in zcols]
    for i in range(qtot):
        for j in range(i, qtot + p + 1):
            w = allcols[j] if ones[i] else zcols[i] * allcols[j]
            cross[i, j] = np.bincount(code1, weights=w, minlength=g1)
            if j < qtot:
                cross[j, i] = cross[i, j]
    qs = [lv.q for lv in levels]
    offs = np.concatenate([[0], np.cumsum(qs)]).astype(int)
    r: list[dict[int, np.ndarray]] = []
    rroot: list[np.ndarray] = []
    for k in range(kk):
        agg = cross if k == 0 else np.add.reduceat(cross, starts[0][k], axis=-1)
        rows = slice(offs[k], offs[k + 1])
        r.append({j: np.ascontiguousarray(agg[rows, offs[j] : offs[j + 1]]) for j in range(k, kk)})
        rroot.append(np.ascontiguousarray(agg[rows, qtot:]))
    wtw = np.empty((p + 1, p + 1))
    wtw[:p, :p] = x.T @ x
    wtw[:p, p] = wtw[p, :p] = x.T @ y
    wtw[p, p] = y @ y

    templates = []
    theta_pos: list[tuple[int, int, int]] = []
    for k, lv in enumerate(levels):
        tmpl = np.where(lv.template >= 0, lv.template + len(theta_pos), -1)
        templates.append(tmpl)
        entries = sorted(
            (int(tmpl[i, j]), i, j) for i in range(lv.q) for j in range(lv.q) if tmpl[i, j] >= 0
        )
        theta_pos.extend((k, i, j) for _, i, j in entries)
    return Structure(
        n=n,
        p=p,
        q=qs,
        ngroups=ng,
        anc=anc,
        starts=starts,
        r=r,
        rroot=rroot,
        wtw=wtw,
        theta_pos=theta_pos,
        templates=templates,
        original=original,
    )


# --------------------------------------------------------------------------- the factorization


@dataclass
class Factor:
    """Block Cholesky factor of the augmented PLS matrix at one theta."""

    theta: np.ndarray
    lam: list[np.ndarray]
    linv: list[np.ndarray]  # L_k^{-1}, (q_k, q_k, G_k)
    logdiag: list[np.ndarray]
    m: list[dict[int, np.ndarray]]  # m[k][j] = L_{j,k}, (q_j, q_k, G_k), j > k
    mroot: list[np.ndarray]  # L_{[X y], k}, (p + 1, q_k, G_k)
    lroot: np.ndarray  # Cholesky factor of the [X y] Schur complement, (p + 1, p + 1)

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
        d, c, croot = [], [], []
        for k in range(kk):
            lk = lam[k]
            dk = stack_lmul(lk.T, stack_rmul(st.r[k][k], lk))
            for i in range(st.q[k]):
                dk[i, i] += 1.0
            d.append(dk)
            c.append(
                {
                    j: stack_lmul(lam[j].T, stack_rmul(stack_t(st.r[k][j]), lk))
                    for j in range(k + 1, kk)
                }
            )
            croot.append(stack_rmul(stack_t(st.rroot[k]), lk))
        droot = st.wtw.copy()
        linv, logdiag, m, mroot = [], [], [], []
        for k in range(kk):
            lk = stack_chol(d[k])
            li = stack_tri_inv(lk)
            lit = stack_t(li)
            logdiag.append(np.log(np.stack([lk[i, i] for i in range(st.q[k])])))
            mk = {j: stack_mm(c[k][j], lit) for j in range(k + 1, kk)}
            mr = stack_mm(croot[k], lit)
            for j in range(k + 1, kk):
                s = st.starts[k][j]
                d[j] -= _segsum(stack_mm(mk[j], stack_t(mk[j])), s)
                for i in range(k + 1, j):
                    c[i][j] -= _segsum(stack_mm(mk[j], stack_t(mk[i])), st.starts[k][i])
                croot[j] -= _segsum(stack_mm(mr, stack_t(mk[j])), s)
            droot -= _gsum(mr, stack_t(mr))
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
        """Fixed effects and spherical random effects ``u`` (per level, ``(q_k, G_k)``)."""
        st = self.st
        p = st.p
        lxx = f.lroot[:p, :p]
        beta = np.linalg.solve(lxx.T, f.lroot[p, :p])
        u: list[np.ndarray] = [np.empty(0)] * st.k
        for k in range(st.k - 1, -1, -1):
            rhs = f.mroot[k][p] - np.tensordot(beta, f.mroot[k][:p], axes=(0, 0))
            for j in range(k + 1, st.k):
                rhs -= stack_tv(f.m[k][j], np.take(u[j], st.anc[k][j], axis=1))
            u[k] = stack_tv(f.linv[k], rhs)  # L_k^{-T} rhs
        return beta, u

    def sigma_xx(self, f: Factor) -> np.ndarray:
        """``(R_X' R_X)^{-1}``: the covariance of the fixed effects divided by sigma^2."""
        p = self.st.p
        li = np.linalg.inv(f.lroot[:p, :p])
        return li.T @ li

    # ---- gradient pieces
    def grad_r2(self, f: Factor, beta: np.ndarray, u: list[np.ndarray]) -> list[np.ndarray]:
        """d r^2 / d Lambda_k per level (envelope theorem: -2 sum_g (Z_g' r) u_g')."""
        st = self.st
        kk = st.k
        lu = [f.lam[k] @ u[k] for k in range(kk)]  # b = Lambda u per group
        coef = np.append(-beta, 1.0)
        out = []
        for k in range(kk):
            v = np.tensordot(st.rroot[k], coef, axes=(1, 0))
            v -= stack_mv(st.r[k][k], lu[k])
            for j in range(k + 1, kk):
                v -= stack_mv(st.r[k][j], np.take(lu[j], st.anc[k][j], axis=1))
            for i in range(k):
                v -= _segsum(stack_tv(st.r[i][k], lu[i]), st.starts[i][k])
            out.append(-2.0 * (v @ u[k].T))
        return out

    def grad_logdet(self, f: Factor, with_x: bool) -> list[np.ndarray]:
        """d log|M| / d Lambda_k (``with_x``: M includes the X block, as REML needs).

        ``tr(M^-1 dM)`` needs ``M^-1`` only on the block pattern of the factor (each group with
        itself and its ancestors); those blocks come top-down from the Takahashi recurrences:
        ``S_ag = -S_anc B L^-1`` and ``S_gg = L^-T (L^-1 - B' S_ag)``, ``B`` the factor's column
        of the group below its diagonal block.
        """
        st = self.st
        kk = st.k
        p = st.p if with_x else 0
        grads = [np.zeros((q, q)) for q in st.q]
        sroot = self.sigma_xx(f) if with_x else np.zeros((0, 0))
        parent_f = np.zeros((0, 0, 0))

        def level_pass(k: int, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """Selected-inverse blocks of the groups ``sl`` of level k; adds their gradient."""
            blocks = [f.m[k][j][..., sl] for j in range(k + 1, kk)]
            if with_x:
                blocks.append(f.mroot[k][:p, :, sl])
            li = f.linv[k][..., sl]
            top_level = k == kk - 1
            sanc = None
            if blocks:
                b = np.concatenate(blocks, axis=0)  # (d_anc, q_k, groups)
                if top_level:
                    sanc_b = stack_lmul(sroot, b)
                else:
                    sanc = np.take(parent_f, st.anc[k][k + 1][sl], axis=2)
                    sanc_b = stack_mm(sanc, b)
                t = stack_mm(sanc_b, li)  # Sigma_anc B L^{-1}
                sig_gg = stack_mm(stack_t(li), li + stack_mm(stack_t(b), t))
                sig_ag = -t
            else:
                sig_gg = stack_mm(stack_t(li), li)
                sig_ag = np.zeros((0, *li.shape[1:]))
            lk = f.lam[k]
            grads[k] += 2.0 * _gsum(stack_rmul(st.r[k][k][..., sl], lk), sig_gg)
            off = 0
            for j in range(k + 1, kk):
                qj = st.q[j]
                s_ag = sig_ag[off : off + qj]
                rk = st.r[k][j][..., sl]
                grads[k] += 2.0 * _gsum(stack_rmul(rk, f.lam[j]), s_ag)
                grads[j] += 2.0 * _gsum(stack_rmul(stack_t(rk), lk), stack_t(s_ag))
                off += qj
            if with_x:
                grads[k] += 2.0 * _gsum(st.rroot[k][:, :p, sl], sig_ag[off:])
            return sig_gg, sig_ag, sanc

        for k in range(kk - 1, -1, -1):
            gk = st.ngroups[k]
            if k > 0:
                sig_gg, sig_ag, sanc = level_pass(k, slice(None))
                if sanc is None:  # the outermost level: its ancestor is the X block only
                    sanc = np.broadcast_to(sroot[:, :, None], (*sroot.shape, gk))
                top = np.concatenate([sig_gg, stack_t(sig_ag)], axis=1)
                bottom = np.concatenate([sig_ag, sanc], axis=1)
                parent_f = np.concatenate([top, bottom], axis=0)
            else:
                # the innermost level needs no blocks for a level below: process its groups in
                # chunks so that the gathered ancestor blocks (d_anc^2 per group) stay small
                d_anc = sum(st.q[1:]) + p
                step = max(1, _CHUNK_BYTES // (8 * max(d_anc, 1) ** 2))
                for lo in range(0, gk, step):
                    level_pass(0, slice(lo, min(lo + step, gk)))
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
    def varpar_parts(
        self, theta: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
        """Profiled deviance, ``d log|M| / d theta``, ``d r^2 / d theta``, ``r^2`` and
        ``(R_X' R_X)^{-1}`` at ``theta``.

        The non-profiled deviance ``-2 log L(theta, sigma)`` at beta-hat(theta) is
        ``log|M| + r^2 / sigma^2 + nr log(2 pi sigma^2)``, so its gradient in theta is
        ``g_logdet + g_r2 / sigma^2`` and its sigma derivatives are analytic; the profiled
        deviance's gradient is ``g_logdet + nr / r^2 g_r2``.
        """
        f = self.factor(theta)
        beta, u = self.solve(f)
        g_r2 = self._to_theta(self.grad_r2(f, beta, u))
        g_ld = self._to_theta(self.grad_logdet(f, with_x=self.reml))
        return self.deviance_from(f), g_ld, g_r2, f.r2, self.sigma_xx(f)

    def varpar_hessian(
        self, theta: np.ndarray, sigma: float, g_r2: np.ndarray, r2: float, rel: float = 1e-4
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hessian of ``-2 log L(theta, sigma)`` (central differences of the analytic gradient
        in theta, analytic in sigma) and, from the same evaluations, ``d (R_X'R_X)^{-1} / d
        theta`` (``(ntheta, p, p)``). ``g_r2`` and ``r2`` are those at ``theta``."""
        k = len(theta)
        nr = self.st.n - self.st.p if self.reml else self.st.n
        s2 = sigma * sigma
        h = np.empty((k + 1, k + 1))
        dsxx = np.empty((k, self.st.p, self.st.p))
        for i in range(k):
            step = rel * max(abs(theta[i]), 0.1)
            e = np.zeros(k)
            e[i] = step
            _, ld_p, r2g_p, _, sxx_p = self.varpar_parts(theta + e)
            _, ld_m, r2g_m, _, sxx_m = self.varpar_parts(theta - e)
            h[:k, i] = (ld_p - ld_m + (r2g_p - r2g_m) / s2) / (2 * step)
            dsxx[i] = (sxx_p - sxx_m) / (2 * step)
        h[:k, :k] = 0.5 * (h[:k, :k] + h[:k, :k].T)
        h[:k, k] = h[k, :k] = -2.0 * g_r2 / (s2 * sigma)
        h[k, k] = 6.0 * r2 / (s2 * s2) - 2.0 * nr / s2
        return h, dsxx
