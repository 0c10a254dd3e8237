"""Kenward-Roger adjusted covariance and denominator df for a REML LMM (as pbkrtest).

Kenward & Roger (1997), Biometrics 53(3), in the form of pbkrtest (Halekoh & Hojsgaard
2014, J Stat Softw 59(9)): the marginal covariance ``Sigma = sum_i gamma_i G_i`` is linear
in the covariance parameters ``gamma`` (each random-effect variance and covariance, then the
residual variance), so the second-derivative terms of the adjustment vanish. With
``P_i = -X' S G_i S X``, ``Q_ij = X' S G_i S G_j S X`` (``S = Sigma^-1``), ``Phi`` the
unadjusted covariance of the fixed effects and ``W`` twice the inverse of the expected
REML information in ``gamma``, the adjusted covariance is
``Phi_A = Phi + 2 Phi (sum_ij W_ij (Q_ij - P_i Phi P_j)) Phi``; the df of a contrast ``L``
follow from ``A1``, ``A2`` as in pbkrtest's ``Lb_ddf``.

Everything is dense in the number of rows ``n`` (``n x n`` matrices), so this is for the
small samples Kenward-Roger is meant for; :data:`MAX_ROWS` bounds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = ["KenwardRoger", "kenward_roger", "MAX_ROWS"]

MAX_ROWS = 4000


@dataclass
class KenwardRoger:
    """Adjusted covariance ``phi_a`` with the pieces the df need (``p_list``, ``w``)."""

    phi: np.ndarray
    phi_a: np.ndarray
    p_list: list[np.ndarray]
    w: np.ndarray

    def ddf(self, lmat: np.ndarray) -> float:
        """Denominator df of the test of ``L beta = 0`` (pbkrtest's ``Lb_ddf``)."""
        lmat = np.atleast_2d(np.asarray(lmat, dtype=float))
        v0 = self.phi
        theta = lmat.T @ np.linalg.solve(lmat @ v0 @ lmat.T, lmat)
        tv = theta @ v0
        us = [tv @ p @ v0 for p in self.p_list]
        a1 = a2 = 0.0
        m = len(us)
        for i in range(m):
            for j in range(i, m):
                e = 1.0 if i == j else 2.0
                a1 += e * self.w[i, j] * np.trace(us[i]) * np.trace(us[j])
                a2 += e * self.w[i, j] * float(np.sum(us[i] * us[j].T))
        q = lmat.shape[0]
        b = (a1 + 6.0 * a2) / (2.0 * q)
        g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
        den = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        v0_ = 1.0 + c1 * b
        v1 = 1.0 - c2 * b
        v2 = 1.0 - c3 * b
        if abs(v0_) < 1e-10:
            v0_ = 0.0
        ratio = (1.0 - a2 / q) / v1 if v1 != 0 else 0.0
        rho = ratio**2 * v0_ / v2 / q
        return float(4.0 + (q + 2.0) / (q * rho - 1.0))


def kenward_roger(
    x: np.ndarray,
    zs: list[np.ndarray],
    codes: list[np.ndarray],
    blocks: list[list[list[int]]],
    covs: list[np.ndarray],
    sigma: float,
    phi: np.ndarray,
) -> KenwardRoger:
    """The Kenward-Roger adjustment at the REML estimates.

    ``zs``, ``codes``, ``blocks`` and ``covs`` are per grouping level: the random-effect
    design columns, the group of each row, the correlated blocks of columns and the
    estimated covariance matrix of the level's random effects; ``phi`` is the unadjusted
    covariance of the fixed effects.
    """
    n = x.shape[0]
    if n > MAX_ROWS:
        raise ValueError(
            f"Kenward-Roger df are computed with dense {n} x {n} matrices here and are "
            f"limited to {MAX_ROWS} rows; with this many rows Satterthwaite's df (the "
            "default) are practically the same."
        )
    same = [c[:, None] == c[None, :] for c in codes]
    gs: list[np.ndarray] = []
    sigma_mat = np.eye(n) * sigma**2
    for z, mask, blks, cov in zip(zs, same, blocks, covs, strict=True):
        for block in blks:
            for ja, a in enumerate(block):
                for b in block[ja:]:
                    outer = np.outer(z[:, a], z[:, b])
                    g = outer if a == b else outer + outer.T
                    g = g * mask
                    gs.append(g)
                    sigma_mat += cov[a, b] * g
    gs.append(np.eye(n))
    chol = linalg.cho_factor(sigma_mat, lower=True)
    s_inv = linalg.cho_solve(chol, np.eye(n))
    tt = s_inv @ x
    hh = [g @ s_inv for g in gs]
    oo = [h @ x for h in hh]
    m = len(gs)
    pp = [-(o.T @ tt) for o in oo]
    pp = [0.5 * (p + p.T) for p in pp]
    qq = {}
    for r in range(m):
        left = oo[r].T @ s_inv
        for s in range(r, m):
            qq[r, s] = left @ oo[s]
    ie2 = np.empty((m, m))
    for i in range(m):
        phi_p = phi @ pp[i]
        for j in range(i, m):
            k = float(np.sum(hh[i].T * hh[j]))
            val = k - 2.0 * float(np.sum(phi * qq[i, j])) + float(np.sum(phi_p * (pp[j] @ phi)))
            ie2[i, j] = ie2[j, i] = val
    if np.min(np.abs(np.linalg.eigvalsh(ie2))) > 1e-10:
        w = 2.0 * np.linalg.inv(ie2)
    else:
        w = 2.0 * np.linalg.pinv(ie2)
    w = 0.5 * (w + w.T)
    p = x.shape[1]
    uu = np.zeros((p, p))
    for i in range(m - 1):
        for j in range(i + 1, m):
            uu += w[i, j] * (qq[i, j] - pp[i] @ phi @ pp[j])
    uu = uu + uu.T
    for i in range(m):
        uu += w[i, i] * (qq[i, i] - pp[i] @ phi @ pp[i])
    phi_a = phi + 2.0 * phi @ uu @ phi
    return KenwardRoger(phi=phi, phi_a=phi_a, p_list=pp, w=w)
