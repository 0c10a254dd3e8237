"""Parametric bootstrap of :func:`alliance.models.lmm` fits (lme4's ``bootMer``).

Responses are simulated from a fitted model, ``y* = X beta + sum_levels Z b* + sigma e``
with ``b*`` drawn from the fitted random-effect covariances and ``e`` standard normal, and
the model is refitted to each. All responses are drawn first from one seeded generator, so
the results do not depend on the number of parallel jobs (joblib, when installed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap", "simulate_responses"]


def simulate_responses(
    mean: np.ndarray,
    sigma: float,
    zs: Sequence[np.ndarray],
    codes: Sequence[np.ndarray],
    covs: Sequence[np.ndarray],
    ngroups: Sequence[int],
    nsim: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(nsim, n)`` responses: ``mean + sum Z b* + sigma e`` per simulation."""
    n = len(mean)
    roots = []
    for cov in covs:
        vals, vecs = np.linalg.eigh(np.asarray(cov, float))
        roots.append(vecs * np.sqrt(np.clip(vals, 0, None)))
    out = np.empty((nsim, n))
    for s in range(nsim):
        y = mean + sigma * rng.standard_normal(n)
        for z, c, root, g in zip(zs, codes, roots, ngroups, strict=True):
            b = rng.standard_normal((g, root.shape[0])) @ root.T
            y = y + np.einsum("ij,ij->i", z, b[c])
        out[s] = y
    return out


def _one(refit: Callable[[np.ndarray], Any], y: np.ndarray, fun: Callable[[Any], Any]):
    try:
        return fun(refit(y))
    except (ValueError, np.linalg.LinAlgError):
        return None


def bootstrap(
    responses: np.ndarray,
    refit: Callable[[np.ndarray], Any],
    fun: Callable[[Any], Any],
    n_jobs: int = 1,
) -> list:
    """``fun(refit(y))`` for each simulated response ``y`` (None where a refit failed);
    ``n_jobs != 1`` runs them with joblib when it is installed."""
    if n_jobs != 1:
        try:
            from joblib import Parallel, delayed
        except ImportError:  # pragma: no cover - joblib is in the lock file
            pass
        else:
            return Parallel(n_jobs=n_jobs)(delayed(_one)(refit, y, fun) for y in responses)
    return [_one(refit, y, fun) for y in responses]
