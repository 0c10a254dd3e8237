"""Profiled (RE)ML deviance of an LMM with crossed or partially crossed grouping factors.

Same model and criterion as :mod:`alliance.models._lmm_core` (lme4's parametrization:
``b = Lambda u``, ``u ~ N(0, sigma^2 I)``), for designs whose grouping factors are not nested.

The blocked scheme of MixedModels.jl (Bates et al.): the random effects are ordered with the
grouping factor that has the most levels first. Its block of ``Lambda' Z' Z Lambda + I`` is
block diagonal (one ``q x q`` block per group; diagonal for a scalar term), so it is factored
group by group with batched small Cholesky factors. The blocks of all other factors (few
levels: therapists, items, departments) are eliminated into a dense Schur complement

    S = Lambda_r' Z_r' Z_r Lambda_r + I - M_21 M_21',  M_21 = Lambda_r' Z_r' Z_1 Lambda_1 L_1^-T

(``M_21`` sparse, with one nonzero per distinct pair of groups) factored by a dense Cholesky,
or, when ``S`` is large and sparse (many groups that meet few others: the sessions and the
session x coder cells of a G-study), by SuperLU with a minimum-degree order of its fixed pattern
found once (:class:`SchurFactor`). One dense evaluation costs O(rows of ``M_21`` x its nonzeros +
m^3 / 3) with ``m`` the number of random effects outside the largest factor, memory O(data +
m^2); a sparse one costs what the fill of ``S`` costs. For scalar terms ``S`` is assembled on
its fixed pattern by one weighted ``bincount`` (:class:`ScalarSchur`).

The gradient in theta is analytic for scalar terms with a dense ``S``
(:meth:`CrossedDeviance.gradient_parts`), by central differences otherwise; the Hessian is by
finite differences (theta is short for the designs this path serves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from alliance.models import _lmm_core as core
from alliance.models._lmm_core import LevelSpec

__all__ = [
    "RandomDesign",
    "random_design",
    "CrossedStructure",
    "build_crossed",
    "CrossedDeviance",
    "MAX_DENSE",
]

MAX_DENSE = 12_000  # most random effects outside the largest grouping factor (dense m x m)


@dataclass
class RandomDesign:
    """The random-effect design of any set of terms: sparse ``Z``, ``Lambda(theta)`` pattern.

    Columns of ``Z`` are ordered level by level (in the order given), and within a level group
    by group, the ``q_k`` columns of one group together: column ``offsets[k] + g * q_k + i`` is
    column ``i`` of level ``k``'s design for group ``g``. ``Lambda`` is block diagonal with one
    copy of level ``k``'s lower-triangular ``q_k x q_k`` factor per group; ``templates[k]``
    maps its entries to positions in ``theta`` (``-1`` = structural zero), ``theta_pos[t]`` is
    ``(level, row, col)`` of ``theta[t]`` (lme4's order: levels, then column-major lower
    triangle).

    Attributes
    ----------
    z : scipy.sparse.csc_matrix
        ``n x Q`` random-effect model matrix.
    q, ngroups, offsets : list of int
    templates : list of numpy.ndarray
    theta_pos : list of tuple
    """

    z: sparse.csc_matrix
    q: list[int]
    ngroups: list[int]
    offsets: list[int]
    templates: list[np.ndarray]
    theta_pos: list[tuple[int, int, int]]

    @property
    def ntheta(self) -> int:
        return len(self.theta_pos)

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal entries of ``Lambda`` (standard deviations), -inf otherwise."""
        return np.array([0.0 if r == c else -np.inf for _, r, c in self.theta_pos])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The small ``q_k x q_k`` factor of every level at ``theta``."""
        out = []
        for tmpl in self.templates:
            lam = np.zeros(tmpl.shape)
            mask = tmpl >= 0
            lam[mask] = theta[tmpl[mask]]
            out.append(lam)
        return out

    def lambda_matrix(self, theta: np.ndarray, levels: range | None = None) -> sparse.csr_matrix:
        """Sparse block-diagonal ``Lambda`` over ``levels`` (default all), ``Q x Q``."""
        lams = self.lambdas(np.asarray(theta, float))
        levels = range(len(self.q)) if levels is None else levels
        rows, cols, vals = [], [], []
        base = self.offsets[levels[0]] if len(levels) else 0
        for k in levels:
            q, g = self.q[k], self.ngroups[k]
            start = self.offsets[k] - base
            gi = np.arange(g) * q + start
            for i in range(q):
                for j in range(i + 1):
                    if lams[k][i, j] != 0.0:
                        rows.append(gi + i)
                        cols.append(gi + j)
                        vals.append(np.full(g, lams[k][i, j]))
        size = sum(self.q[k] * self.ngroups[k] for k in levels)
        if not rows:
            return sparse.csr_matrix((size, size))
        return sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(size, size),
        )


def random_design(levels: list[LevelSpec], n: int) -> RandomDesign:
    """Build ``Z``, the ``Lambda`` pattern and the theta mapping for arbitrary random terms.

    Parameters
    ----------
    levels : list of LevelSpec
        One per grouping factor (crossed, nested or partially crossed, in any order): integer
        group codes ``0 .. G-1`` per row, the ``n x q`` design columns and the theta template
        (see :class:`alliance.models._lmm_core.LevelSpec`).
    n : int
        Number of rows.

    Returns
    -------
    RandomDesign
    """
    q = [lv.q for lv in levels]
    ng = [int(lv.codes.max()) + 1 for lv in levels]
    offsets = np.concatenate([[0], np.cumsum([a * b for a, b in zip(q, ng, strict=True)])])
    rows, cols, vals = [], [], []
    for k, lv in enumerate(levels):
        for i in range(lv.q):
            rows.append(np.arange(n))
            cols.append(offsets[k] + lv.codes * lv.q + i)
            vals.append(lv.z[:, i])
    z = sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, int(offsets[-1])),
    )
    templates, theta_pos = [], []
    for k, lv in enumerate(levels):
        tmpl = np.where(lv.template >= 0, lv.template + len(theta_pos), -1)
        templates.append(tmpl)
        entries = sorted(
            (int(tmpl[i, j]), i, j) for i in range(lv.q) for j in range(lv.q) if tmpl[i, j] >= 0
        )
        theta_pos.extend((k, i, j) for _, i, j in entries)
    return RandomDesign(z, q, ng, [int(o) for o in offsets[:-1]], templates, theta_pos)


@dataclass
class CrossedStructure(RandomDesign):
    """A :class:`RandomDesign` plus the cross products the deviance needs (formed once)."""

    n: int = 0
    p: int = 0
    wtw: np.ndarray | None = None  # [X y]' [X y]
    r: list[dict[int, np.ndarray]] | None = None  # r[k][k]: per-group Z_k'Z_k, (q, q, G)
    rroot: list[np.ndarray] | None = None  # per-group Z_k'[X y], (q_k, p + 1, G_k)
    r1r: sparse.csr_matrix | None = None  # Z_r' Z_1, m x q_1 G_1
    rrr: np.ndarray | sparse.csr_matrix | None = None  # Z_r' Z_r, m x m (sparse if sparse_schur)
    sparse_schur: bool = False  # factor S by a sparse LU (see SchurFactor)
    scalar: ScalarSchur | None = None  # scalar terms: S assembled on a fixed pattern
    order: np.ndarray | None = None  # fill-reducing order of the sparse S, found once
    zrw: np.ndarray | None = None  # Z_r' [X y], m x (p + 1)
    original: list[np.ndarray] | None = None

    @property
    def k(self) -> int:
        return len(self.q)


SPARSE_MIN = 1_000  # smallest Schur complement factored as a sparse matrix
SPARSE_DENSITY = 0.05  # ... if at most this share of its entries can be nonzero


def _schur_is_sparse(r1r: sparse.csr_matrix, rrr: sparse.csr_matrix) -> bool:
    """Whether ``S`` (pattern of ``R_rr + R_r1 R_r1'``) is large and sparse enough for SuperLU."""
    m = rrr.shape[0]
    if m < SPARSE_MIN:
        return False
    ones = r1r.copy()
    ones.data[:] = 1.0
    pattern = ones @ ones.T + rrr
    return pattern.nnz <= SPARSE_DENSITY * m * m


@dataclass
class ScalarSchur:
    """Fixed pattern of ``S`` for scalar terms (every ``q_k = 1``), formed once.

    With scalar terms ``Lambda_r = diag(l)`` and ``K = Lambda_1 L_1^-T = diag(k)``, so
    ``S_ij = l_i l_j (R_rr,ij - sum_g R_r1,ig R_r1,jg k_g^2) + delta_ij`` on the pattern of
    ``R_rr + R_r1 R_r1' + I``: one weighted ``bincount`` over the pairs of nonzeros that share
    a column of ``R_r1`` (a group of the largest factor) per evaluation, no sparse products.
    """

    rows: np.ndarray  # row and column of each pattern entry (CSC order)
    cols: np.ndarray
    indices: np.ndarray  # the CSC pattern
    indptr: np.ndarray
    rrr: np.ndarray  # R_rr on the pattern
    diag: np.ndarray  # 1.0 on the diagonal entries of the pattern
    pair_pos: np.ndarray  # pattern entry of each pair
    pair_group: np.ndarray  # the group g of each pair
    pair_w: np.ndarray  # R_r1,ig R_r1,jg
    r1r_rows: np.ndarray  # row index of each stored entry of R_r1 (CSR)


MAX_PAIRS = 20_000_000  # most pairs of R_r1 nonzeros kept for the scalar assembly


def _scalar_schur(r1r: sparse.csr_matrix, rrr: sparse.csr_matrix) -> ScalarSchur | None:
    m = rrr.shape[0]
    csc = r1r.tocsc()
    counts = np.diff(csc.indptr)
    if int((counts.astype(np.int64) ** 2).sum()) > MAX_PAIRS:
        return None
    ones = csc.copy()
    ones.data[:] = 1.0
    pattern = (ones @ ones.T + abs(rrr) + sparse.identity(m)).tocsc()
    pattern.sort_indices()
    rows = pattern.indices.astype(np.int64)
    cols = np.repeat(np.arange(m, dtype=np.int64), np.diff(pattern.indptr))
    keys = cols * m + rows  # sorted (CSC order)
    # all pairs (i, j) of nonzeros in the same column g of R_r1
    group = np.repeat(np.arange(csc.shape[1]), counts)
    start = np.repeat(csc.indptr[:-1], counts)
    reps = counts[group]
    first = np.repeat(np.arange(len(group)), reps)  # entry a, repeated once per partner
    offs = np.arange(len(first)) - np.repeat(np.cumsum(reps) - reps, reps)
    second = start[first] + offs  # entry b in the same column
    pi, pj = csc.indices[first], csc.indices[second]
    pair_pos = np.searchsorted(keys, pj.astype(np.int64) * m + pi)
    rcoo = rrr.tocoo()
    rpos = np.searchsorted(keys, rcoo.col.astype(np.int64) * m + rcoo.row)
    rvals = np.bincount(rpos, weights=rcoo.data, minlength=len(keys))
    return ScalarSchur(
        rows=rows,
        cols=cols,
        indices=pattern.indices,
        indptr=pattern.indptr,
        rrr=rvals,
        diag=(rows == cols).astype(float),
        pair_pos=pair_pos,
        pair_group=group[first],
        pair_w=csc.data[first] * csc.data[second],
        r1r_rows=np.repeat(np.arange(m), np.diff(r1r.indptr)),
    )


def build_crossed(y: np.ndarray, x: np.ndarray, levels: list[LevelSpec]) -> CrossedStructure:
    """Cross products of a non-nested design; ``levels[0]`` is eliminated block by block."""
    n, p = x.shape
    des = random_design(levels, n)
    w = np.column_stack([x, y])
    q1g1 = des.q[0] * des.ngroups[0]
    z = des.z
    z1, zr = z[:, :q1g1], z[:, q1g1:]
    m = zr.shape[1]
    r1r = sparse.csr_matrix(zr.T @ z1)
    rrr = sparse.csr_matrix(zr.T @ zr)
    sparse_schur = _schur_is_sparse(r1r, rrr)
    if m > MAX_DENSE and not sparse_schur:
        raise ValueError(
            f"the crossed design has {m} random effects outside its largest grouping factor "
            f"(more than {MAX_DENSE}); this engine keeps those in a dense block. Drop or merge "
            "a grouping factor with many levels, or fit the model in lme4."
        )
    ztw = np.asarray(z.T @ w)
    r, rroot = [], []
    for k, lv in enumerate(levels):
        qk, gk = lv.q, des.ngroups[k]
        rk = np.empty((qk, qk, gk))
        for i in range(qk):
            for j in range(i, qk):
                rk[i, j] = np.bincount(lv.codes, weights=lv.z[:, i] * lv.z[:, j], minlength=gk)
                rk[j, i] = rk[i, j]
        r.append({k: rk})
        block = ztw[des.offsets[k] : des.offsets[k] + qk * gk]  # (G q) x (p + 1)
        rroot.append(np.ascontiguousarray(block.reshape(gk, qk, p + 1).transpose(1, 2, 0)))
    return CrossedStructure(
        z=des.z,
        q=des.q,
        ngroups=des.ngroups,
        offsets=des.offsets,
        templates=des.templates,
        theta_pos=des.theta_pos,
        n=n,
        p=p,
        wtw=w.T @ w,
        r=r,
        rroot=rroot,
        r1r=r1r,
        rrr=rrr if sparse_schur else rrr.toarray(),
        sparse_schur=sparse_schur,
        scalar=_scalar_schur(r1r, rrr) if m and all(qk == 1 for qk in des.q) else None,
        zrw=ztw[q1g1:],
        original=[np.arange(g) for g in des.ngroups],
    )


@dataclass
class CrossedFactor:
    """Blocked Cholesky factor of the augmented PLS matrix at one theta."""

    theta: np.ndarray
    l1inv: np.ndarray  # (q1, q1, G1)
    logdiag1: np.ndarray
    m21: sparse.csr_matrix  # m x q1 G1
    schur: SchurFactor  # the factored Schur complement S (m x m)
    mroot1: np.ndarray  # (p + 1) x q1 G1
    c2: np.ndarray  # m x (p + 1): Lambda_r' Z_r' [X y] - M_21 mroot1'
    lroot: np.ndarray  # (p + 1) x (p + 1) lower
    extra: dict | None = None  # scalar terms: T on the pattern, diag(Lambda_r), S^-1 c2

    @property
    def logdet_l(self) -> float:
        return 2.0 * float(self.logdiag1.sum()) + self.schur.logdet

    @property
    def logdet_rx(self) -> float:
        p = self.lroot.shape[0] - 1
        return 2.0 * float(np.log(np.diag(self.lroot)[:p]).sum())

    @property
    def r2(self) -> float:
        return float(self.lroot[-1, -1] ** 2)


class SchurFactor:
    """Cholesky-type factor of the Schur complement ``S`` (symmetric positive definite).

    Dense ``S`` (few random effects outside the largest factor, or a dense ``S`` such as
    InstEval's lecturers): LAPACK's Cholesky. Sparse ``S`` (many groups that meet few others,
    e.g. sessions and session x coder cells of a G-study): SuperLU with a minimum-degree
    ordering of ``S + S'`` and diagonal pivots only (``S`` is positive definite, so no pivoting
    is needed and ``U = D L'``); ``log det S`` is the sum of ``log U_ii``.
    """

    def __init__(self, s, *, is_sparse: bool, order: np.ndarray | None = None) -> None:
        self.m = s.shape[0]
        self.is_sparse = is_sparse
        self.order = order
        self.permuted = order is not None
        if not self.m:
            self.logdet = 0.0
            return
        if is_sparse:
            from scipy.sparse import linalg as splinalg

            s = sparse.csc_matrix(s)
            if order is not None:  # the pattern is fixed: reuse the ordering found once
                s = s[order][:, order]
            try:
                lu = splinalg.splu(
                    s,
                    permc_spec="MMD_AT_PLUS_A" if order is None else "NATURAL",
                    diag_pivot_thresh=0.0,
                    options={"SymmetricMode": True},
                )
            except RuntimeError as err:  # "Factor is exactly singular"
                raise np.linalg.LinAlgError(str(err)) from None
            if not np.array_equal(lu.perm_r, lu.perm_c):
                raise np.linalg.LinAlgError("the Schur complement needed off-diagonal pivots")
            d = lu.U.diagonal()
            if np.any(d <= 0) or not np.all(np.isfinite(d)):
                raise np.linalg.LinAlgError("the Schur complement is not positive definite")
            self.lu = lu
            self.logdet = float(np.log(d).sum())
            if order is None:
                self.order = np.argsort(lu.perm_c)
        else:
            self.chol = linalg.cho_factor(s, lower=True, check_finite=False)
            self.logdet = 2.0 * float(np.log(np.diag(self.chol[0])).sum())

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``S^-1 b``."""
        if not self.m:
            return np.zeros_like(b)
        if self.is_sparse:
            b = np.asarray(b, dtype=float)
            if not self.permuted:
                return self.lu.solve(b)
            out = np.empty_like(b)
            out[self.order] = self.lu.solve(b[self.order])
            return out
        return linalg.cho_solve(self.chol, b, check_finite=False)


def _blockdiag(blocks: np.ndarray) -> sparse.csr_matrix:
    """Sparse block-diagonal matrix from a stack ``(q, q, G)``."""
    q, _, g = blocks.shape
    base = np.arange(g) * q
    rows = np.concatenate([base + i for i in range(q) for _ in range(q)])
    cols = np.concatenate([base + j for _ in range(q) for j in range(q)])
    vals = np.concatenate([blocks[i, j] for i in range(q) for j in range(q)])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(q * g, q * g))


class CrossedDeviance:
    """lme4's profiled deviance (REML or ML) of a crossed design; same interface as
    :class:`alliance.models._lmm_core.ProfiledDeviance`."""

    def __init__(self, st: CrossedStructure, reml: bool = True) -> None:
        self.st = st
        self.reml = reml

    def factor(self, theta: np.ndarray) -> CrossedFactor:
        st = self.st
        theta = np.asarray(theta, dtype=float)
        lam = st.lambdas(theta)
        p = st.p
        lam1 = lam[0]
        r11 = st.r[0][0]
        d1 = core.stack_lmul(lam1.T, core.stack_rmul(r11, lam1))
        for i in range(st.q[0]):
            d1[i, i] += 1.0
        l1 = core.stack_chol(d1)
        l1inv = core.stack_tri_inv(l1)
        logdiag1 = np.log(np.stack([l1[i, i] for i in range(st.q[0])]))
        # K = blockdiag(Lambda_1 L_1^-T)
        kblk = _blockdiag(core.stack_lmul(lam1, core.stack_t(l1inv)))
        z1w = st.rroot[0].transpose(2, 0, 1).reshape(-1, p + 1)  # row g q1 + i: group g, col i
        mroot1 = np.asarray((kblk.T @ z1w).T)  # (p + 1) x q1 G1
        droot = st.wtw - mroot1 @ mroot1.T
        m = st.rrr.shape[0]
        if m and st.scalar is not None:
            sc = st.scalar
            lr = np.concatenate([np.full(st.ngroups[k], lam[k][0, 0]) for k in range(1, st.k)])
            kd = lam1[0, 0] * l1inv[0, 0]  # diagonal of K
            vals = np.bincount(
                sc.pair_pos, weights=sc.pair_w * (kd * kd)[sc.pair_group], minlength=len(sc.rows)
            )
            tvals = sc.rrr - vals  # S - I = Lambda_r T Lambda_r on the pattern
            vals = lr[sc.rows] * lr[sc.cols] * tvals + sc.diag
            if st.sparse_schur:
                s = sparse.csc_matrix((vals, sc.indices, sc.indptr), shape=(m, m))
            else:
                s = np.zeros((m, m))
                s[sc.rows, sc.cols] = vals
            r1r = st.r1r
            m21 = sparse.csr_matrix(
                (r1r.data * lr[sc.r1r_rows] * kd[r1r.indices], r1r.indices, r1r.indptr),
                shape=r1r.shape,
            )
            schur = SchurFactor(s, is_sparse=st.sparse_schur, order=st.order)
            if st.sparse_schur and st.order is None:
                st.order = schur.order
            c2 = lr[:, None] * st.zrw - m21 @ mroot1.T
            sc2 = schur.solve(c2)
            droot -= c2.T @ sc2
            extra = {"tvals": tvals, "lr": lr, "sc2": sc2}
        elif m:
            lamr = st.lambda_matrix(theta, range(1, st.k))
            m21 = sparse.csr_matrix(lamr.T @ st.r1r @ kblk)
            if st.sparse_schur:
                # S = Lambda_r' R_rr Lambda_r + I - M_21 M_21', kept sparse
                s = (lamr.T @ st.rrr @ lamr - m21 @ m21.T + sparse.identity(m)).tocsc()
            else:
                s = np.asarray(lamr.T @ (lamr.T @ st.rrr).T)  # Lambda_r' R_rr Lambda_r
                s -= (m21 @ m21.T).toarray()
                s[np.diag_indices(m)] += 1.0
            schur = SchurFactor(s, is_sparse=st.sparse_schur)
            c2 = np.asarray(lamr.T @ st.zrw) - m21 @ mroot1.T
            droot -= c2.T @ schur.solve(c2)
            extra = None
        else:
            m21 = sparse.csr_matrix((0, mroot1.shape[1]))
            schur = SchurFactor(np.zeros((0, 0)), is_sparse=False)
            c2 = np.zeros((0, p + 1))
            extra = None
        lroot = np.linalg.cholesky(droot)
        return CrossedFactor(theta, l1inv, logdiag1, m21, schur, mroot1, c2, lroot, extra)

    def deviance_from(self, f: CrossedFactor) -> float:
        n, p = self.st.n, self.st.p
        if self.reml:
            nr = n - p
            return f.logdet_l + f.logdet_rx + nr * (1.0 + np.log(2.0 * np.pi * f.r2 / nr))
        return f.logdet_l + n * (1.0 + np.log(2.0 * np.pi * f.r2 / n))

    def deviance(self, theta: np.ndarray) -> float:
        try:
            return self.deviance_from(self.factor(theta))
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            return np.inf

    def solve(self, f: CrossedFactor) -> tuple[np.ndarray, list[np.ndarray]]:
        """Fixed effects and spherical random effects ``u`` per level, ``(q_k, G_k)``."""
        st = self.st
        p = st.p
        lxx = f.lroot[:p, :p]
        beta = np.linalg.solve(lxx.T, f.lroot[p, :p])
        m = f.schur.m
        if m:
            u2 = f.schur.solve(f.c2[:, p] - f.c2[:, :p] @ beta)
        else:
            u2 = np.zeros(0)
        rhs1 = f.mroot1[p] - beta @ f.mroot1[:p] - f.m21.T @ u2
        q1, g1 = st.q[0], st.ngroups[0]
        u1 = core.stack_tv(f.l1inv, rhs1.reshape(g1, q1).T)
        u = [u1]
        base = st.offsets[1] if st.k > 1 else 0
        for k in range(1, st.k):
            lo = st.offsets[k] - base
            seg = u2[lo : lo + st.q[k] * st.ngroups[k]]
            u.append(seg.reshape(st.ngroups[k], st.q[k]).T)
        return beta, u

    def sigma_xx(self, f: CrossedFactor) -> np.ndarray:
        p = self.st.p
        li = np.linalg.inv(f.lroot[:p, :p])
        return li.T @ li

    # ---- analytic gradient (scalar terms, dense Schur complement)
    def _analytic(self) -> bool:
        st = self.st
        return st.scalar is not None and not st.sparse_schur and st.rrr.shape[0] > 0

    def gradient_parts(self, theta: np.ndarray, f: CrossedFactor) -> tuple[np.ndarray, np.ndarray]:
        """Analytic ``d log det / d theta`` (with ``R_X`` for REML) and ``d r^2 / d theta``.

        Scalar terms only (``Lambda = diag(theta_k)``, one ``theta`` per level). With
        ``A = Lambda'Z'Z Lambda + I``: ``d log|A| / d theta_k = 2 sum_{c in k}
        (1 - (A^-1)_cc) / theta_k``, taken in forms without the cancellation at small
        ``theta_k``: for the largest factor ``theta_1 (R_11,g - m_g' S^-1 m_g) / d_g`` (``m_g``
        the column of ``M_21 / theta_1``, ``d_g = 1 + theta_1^2 R_11,g``), for the others
        ``sum_j (S^-1)_cj l_j T_jc`` (``S - I = Lambda_r T Lambda_r``). By the envelope theorem
        ``d r^2 / d theta_k = -2 sum_{c in k} u_c^2 / theta_k`` and, with
        ``W = A^-1 Lambda Z'X``, ``d log|R_X'R_X| / d theta_k = -2 tr(Sxx W_k'W_k) / theta_k``
        (each ratio is O(theta_k), 0 at 0).
        """
        st = self.st
        ex = f.extra
        p = st.p
        sc = st.scalar
        k = st.k
        th = np.array([float(theta[st.templates[j][0, 0]]) for j in range(k)])
        r11 = st.r[0][0][0, 0]
        d1 = 1.0 + th[0] ** 2 * r11
        level_r = np.repeat(np.arange(1, k), st.ngroups[1:])  # level of each rest column
        # S^-1 from the Cholesky factor (LAPACK potri)
        c_, lower = f.schur.chol
        sinv, info = linalg.lapack.dpotri(c_, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("potri failed")
        sinv = np.tril(sinv) + np.tril(sinv, -1).T
        g_ld = np.zeros(k)
        # largest factor
        # m_g' S^-1 m_g summed over the pairs of nonzeros of each column g of R_r1
        lr = ex["lr"]
        sv = sinv[sc.rows, sc.cols] * lr[sc.rows] * lr[sc.cols]
        wt = np.bincount(sc.pair_group, weights=sc.pair_w * sv[sc.pair_pos], minlength=len(d1))
        wt /= d1
        g_ld[0] = 2.0 * th[0] * float(((r11 - wt) / d1).sum())
        # the other factors
        contrib = sinv[sc.cols, sc.rows] * ex["lr"][sc.rows] * ex["tvals"]
        g_ld[1:] = 2.0 * np.bincount(level_r[sc.cols], weights=contrib, minlength=k)[1:]
        # u and W = A^-1 Lambda Z'[X y] by block back substitution
        sc2 = ex["sc2"]
        x1 = f.l1inv[0, 0][:, None] * (f.mroot1.T - f.m21.T @ sc2)  # G1 x (p + 1)
        beta, _ = self.solve(f)
        levels = np.concatenate([np.zeros(st.ngroups[0], int), level_r])
        xall = np.concatenate([x1, sc2], axis=0)
        u = xall[:, p] - xall[:, :p] @ beta
        safe = np.where(th > 0, th, 1.0)
        usq = np.bincount(levels, weights=u * u, minlength=k)
        g_r2 = np.where(th > 0, -2.0 * usq / safe, 0.0)
        if self.reml:
            sxx = self.sigma_xx(f)
            wx = xall[:, :p]
            quad = np.einsum("ci,ij,cj->c", wx, sxx, wx)
            tr = np.bincount(levels, weights=quad, minlength=k)
            g_ld += np.where(th > 0, -2.0 * tr / safe, 0.0)
        return g_ld, g_r2

    # ---- finite-difference derivatives
    def _parts(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        f = self.factor(theta)
        ld = f.logdet_l + (f.logdet_rx if self.reml else 0.0)
        return ld, f.r2, self.sigma_xx(f)

    def _steps(self, theta: np.ndarray, rel: float) -> np.ndarray:
        return rel * np.maximum(np.abs(theta), 0.1)

    def deviance_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        # the deviance is defined for any theta (Lambda' Z'Z Lambda + I is always positive
        # definite), so central differences may step past a bound
        theta = np.asarray(theta, dtype=float)
        if self._analytic():
            try:
                f = self.factor(theta)
                g_ld, g_r2 = self.gradient_parts(theta, f)
            except (np.linalg.LinAlgError, linalg.LinAlgError):
                return np.inf, np.zeros(len(theta))
            nr = self.st.n - self.st.p if self.reml else self.st.n
            return self.deviance_from(f), g_ld + nr / f.r2 * g_r2
        dev = self.deviance(theta)
        if not np.isfinite(dev):
            return np.inf, np.zeros(len(theta))
        h = self._steps(theta, 1e-6)
        g = np.empty(len(theta))
        for i in range(len(theta)):
            e = np.zeros(len(theta))
            e[i] = h[i]
            g[i] = (self.deviance(theta + e) - self.deviance(theta - e)) / (2 * h[i])
        return dev, g

    def varpar_parts(self, theta: np.ndarray):
        """As ``ProfiledDeviance.varpar_parts`` (derivatives by central differences)."""
        theta = np.asarray(theta, dtype=float)
        if self._analytic():
            f = self.factor(theta)
            g_ld, g_r2 = self.gradient_parts(theta, f)
            ld = f.logdet_l + (f.logdet_rx if self.reml else 0.0)
            nr = self.st.n - self.st.p if self.reml else self.st.n
            dev = ld + nr * (1.0 + np.log(2.0 * np.pi * f.r2 / nr))
            return dev, g_ld, g_r2, f.r2, self.sigma_xx(f)
        ld, r2, sxx = self._parts(theta)
        k = len(theta)
        h = self._steps(theta, 1e-5)
        g_ld, g_r2 = np.empty(k), np.empty(k)
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            ldp, r2p, _ = self._parts(theta + e)
            ldm, r2m, _ = self._parts(theta - e)
            g_ld[i] = (ldp - ldm) / (2 * h[i])
            g_r2[i] = (r2p - r2m) / (2 * h[i])
        nr = self.st.n - self.st.p if self.reml else self.st.n
        dev = ld + nr * (1.0 + np.log(2.0 * np.pi * r2 / nr))
        return dev, g_ld, g_r2, r2, sxx

    def varpar_hessian(self, theta, sigma, g_r2, r2, rel: float = 1e-3):
        """Hessian of ``-2 log L(theta, sigma)`` by second differences in theta (analytic in
        sigma) and ``d (R_X'R_X)^{-1} / d theta`` by central differences."""
        theta = np.asarray(theta, dtype=float)
        k = len(theta)
        nr = self.st.n - self.st.p if self.reml else self.st.n
        s2 = sigma * sigma
        h = self._steps(theta, rel)

        def comb(t):
            ld, r2_, sxx = self._parts(t)
            return ld + r2_ / s2, sxx

        f0, _ = comb(theta)
        fp, fm, sxxp, sxxm = {}, {}, {}, {}
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            fp[i], sxxp[i] = comb(theta + e)
            fm[i], sxxm[i] = comb(theta - e)
        hess = np.empty((k + 1, k + 1))
        dsxx = np.empty((k, self.st.p, self.st.p))
        for i in range(k):
            hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
            dsxx[i] = (sxxp[i] - sxxm[i]) / (2 * h[i])
            for j in range(i):
                e = np.zeros(k)
                e[i], e[j] = h[i], h[j]
                f_pp, _ = comb(theta + e)
                f_mm, _ = comb(theta - e)
                # f(+i+j) + f(-i-j) - f(+i) - f(-i) - f(+j) - f(-j) + 2 f0 = 2 h_i h_j f_ij
                val = (f_pp + f_mm - fp[i] - fm[i] - fp[j] - fm[j] + 2 * f0) / (2 * h[i] * h[j])
                hess[i, j] = hess[j, i] = val
        hess[:k, k] = hess[k, :k] = -2.0 * g_r2 / (s2 * sigma)
        hess[k, k] = 6.0 * r2 / (s2 * s2) - 2.0 * nr / s2
        return hess, dsxx
