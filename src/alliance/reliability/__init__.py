"""Reliability of scores: alpha, omega, ICC, multilevel reliability, inter-rater agreement.

Every function returns a tidy :class:`pandas.DataFrame` (one row per scale, coefficient
or form) with confidence intervals where the method has them. Each mirrors a function
of R's psych package and is tested against values psych printed
(``tests/reference/psych_reference.R``):

==============================  =====================================================
alliance                        R
==============================  =====================================================
:func:`alpha`                   ``psych::alpha`` (Feldt and Duhachek intervals)
:func:`omega`                   ``psych::omega`` (minres, oblimin, Schmid-Leiman)
:func:`icc`                     ``psych::ICC(x, lmer = FALSE)`` (Shrout & Fleiss 1979)
:func:`multilevel_reliability`  ``psych::multilevel.reliability`` (Shrout & Lane 2012)
:func:`cohen_kappa`             ``psych::cohen.kappa``
:func:`fleiss_kappa`            Fleiss (1971); null-hypothesis SE of Fleiss et al. (1979)
:func:`krippendorff_alpha`      Krippendorff (2004), via the ``krippendorff`` package
:func:`agreement`               all of the three above for a set of coders
:func:`g_study`                 G-study of a crossed design by REML (``lme4::lmer``)
==============================  =====================================================

The functions live in three modules by topic, and every one is importable from here:

* :mod:`alliance.reliability.consistency`: internal consistency of a scale's items
  (:func:`alpha`, :func:`omega`);
* :mod:`alliance.reliability.multilevel`: reliability from variance components of
  ratings or repeated measures (:func:`icc`, :func:`multilevel_reliability`);
* :mod:`alliance.reliability.coders`: agreement between coders of categories or ratings
  (:func:`cohen_kappa`, :func:`fleiss_kappa`, :func:`krippendorff_alpha`,
  :func:`agreement`);
* :mod:`alliance.reliability.generalizability`: G-studies and D-studies of crossed and
  nested designs (:func:`g_study`).
"""

from __future__ import annotations

from alliance.reliability.coders import agreement, cohen_kappa, fleiss_kappa, krippendorff_alpha
from alliance.reliability.consistency import alpha, omega
from alliance.reliability.generalizability import GStudyResult, g_study
from alliance.reliability.multilevel import icc, multilevel_reliability

__all__ = [
    "GStudyResult",
    "agreement",
    "alpha",
    "cohen_kappa",
    "fleiss_kappa",
    "g_study",
    "icc",
    "krippendorff_alpha",
    "multilevel_reliability",
    "omega",
]
