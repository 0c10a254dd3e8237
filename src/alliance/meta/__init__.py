"""Random-effects meta-analysis of alliance-outcome effects.

The alliance-outcome link is known through meta-analyses (Flückiger et al., 2018:
r = .278 over 295 studies). This module pools correlations (through Fisher's z) or any
effect size with a known sampling variance (``yi``, ``vi``), so that the usual analyses
no longer need R's metafor:

* :func:`meta_analysis` -- fixed-effect and random-effects models with the REML, ML,
  DL, PM, HE and SJ estimators of tau^2, the Knapp-Hartung adjustment, Q-profile
  confidence intervals for tau^2 / I^2 / H^2, and prediction intervals
  (``metafor::rma.uni``, ``confint``, ``predict``).
* :func:`meta_regression` -- the same with moderators (``rma.uni(mods = ~ ...)``).
* :func:`multilevel_meta_analysis` -- effects nested in studies, a three-level model
  (``rma.mv(random = ~ 1 | study/effect)``).
* :func:`cluster_robust` -- cluster-robust (RVE) standard errors with the CR2
  small-sample correction and Satterthwaite degrees of freedom (clubSandwich).
* :func:`egger_test`, :func:`trim_and_fill`, :func:`leave_one_out`, :func:`influence`
  -- small-study and sensitivity tools (``regtest``, ``trimfill``, ``leave1out``,
  ``influence``).

The package is split by topic: :mod:`alliance.meta.univariate` (``rma.uni``),
:mod:`alliance.meta.multilevel` (``rma.mv``, CR2) and :mod:`alliance.meta.bias` (small-study
effects and sensitivity); every public name is importable from ``alliance.meta``. The
session-level two-stage IPD analysis lives in :mod:`alliance.ipd` and the bundled,
**synthetic** study table in :mod:`alliance.datasets` (``example_studies``); both stay
importable from here as well.

Every result is an :class:`alliance.results.Result`. Forest and funnel plots live in
:mod:`alliance.plots.meta`. Agreement with metafor is checked against committed reference values (``tests/reference/metafor_reference.R``).
"""

from __future__ import annotations

from alliance.datasets.meta_example import example_studies as example_studies
from alliance.meta.bias import TrimFillResult, egger_test, influence, leave_one_out, trim_and_fill
from alliance.meta.multilevel import (
    MultilevelMetaResult,
    cluster_robust,
    multilevel_meta_analysis,
)
from alliance.meta.univariate import MetaResult, meta_analysis, meta_regression

__all__ = [
    "MetaResult",
    "MultilevelMetaResult",
    "TrimFillResult",
    "cluster_robust",
    "egger_test",
    "influence",
    "leave_one_out",
    "meta_analysis",
    "meta_regression",
    "multilevel_meta_analysis",
    "trim_and_fill",
]


def __getattr__(name: str):
    if name == "two_stage_ipd":  # alliance.ipd imports this package: load it on first use
        from alliance.ipd import two_stage_ipd

        return two_stage_ipd
    raise AttributeError(f"module 'alliance.meta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"two_stage_ipd"})
