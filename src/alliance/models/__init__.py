"""Models that link the alliance to outcome; each returns a results object with tidy frames.

Every model is one call on a Study or a long DataFrame and returns an
:class:`alliance.results.Result`: a :class:`ModelResult` subclass with the model's typed
attributes (:class:`EarlyAllianceResult`, :class:`ModerationResult`, ...), or the engines'
:class:`LmmResult` and :class:`GlmmResult` (``.params``, ``.excluded``, ``.nobs``, ``.n``,
``.variance_components``, ``.loglik``, ``.summary()``, ``.to_frame()``, ``.apa_table()``,
``.plot()``). The mixed models are fitted by :func:`lmm` and :func:`glmm` and compared by
:func:`compare` (likelihood-ratio tests). See ``docs/models.md``.

Also here: :func:`dynamic_panel` and :func:`riclpm` (structural equation models fitted by
full-information ML, ``alliance.models.sem``) and :func:`dropout_model`.

Every analysis registers itself (:mod:`alliance.models.registry`): :func:`list_models`
lists them with what they estimate, the roles they need and their focal term;
:func:`register_model` adds your own, which :func:`alliance.power.simulate_power` can then
run.
"""

from __future__ import annotations

from alliance.models import dropout, sem
from alliance.models._lmm_emm import MarginalMeans
from alliance.models._result import ModelResult
from alliance.models.compare import ComparisonResult, compare
from alliance.models.dropout import DropoutResult, dropout_model, person_period
from alliance.models.early import EarlyAllianceResult, early_alliance
from alliance.models.glmm import GlmmResult, glmm
from alliance.models.group_difference import early_alliance_difference
from alliance.models.lmm import LmmResult, lmm
from alliance.models.mediation import MediationResult, mediation
from alliance.models.moderation import ModerationResult, moderation
from alliance.models.registry import (
    ModelSpec,
    Simulation,
    draw_study,
    focal_row,
    get_model,
    list_models,
    per_alliance_point,
    register_model,
    scale_points,
    study_roles,
    unregister_model,
)
from alliance.models.rupture_occurrence import RuptureOccurrenceResult, rupture_occurrence
from alliance.models.rupture_outcome import RuptureOutcomeResult, rupture_outcome
from alliance.models.sem import PanelResult, dynamic_panel, riclpm
from alliance.models.therapist import TherapistResult, therapist_contributions
from alliance.models.within_between import WithinBetweenResult, within_between

__all__ = [
    "ComparisonResult",
    "DropoutResult",
    "EarlyAllianceResult",
    "GlmmResult",
    "LmmResult",
    "MarginalMeans",
    "MediationResult",
    "ModelResult",
    "ModelSpec",
    "Simulation",
    "ModerationResult",
    "PanelResult",
    "RuptureOccurrenceResult",
    "RuptureOutcomeResult",
    "TherapistResult",
    "WithinBetweenResult",
    "compare",
    "dropout",
    "draw_study",
    "dropout_model",
    "dynamic_panel",
    "early_alliance",
    "early_alliance_difference",
    "focal_row",
    "get_model",
    "glmm",
    "list_models",
    "lmm",
    "mediation",
    "moderation",
    "per_alliance_point",
    "person_period",
    "register_model",
    "riclpm",
    "rupture_occurrence",
    "rupture_outcome",
    "scale_points",
    "sem",
    "study_roles",
    "therapist_contributions",
    "unregister_model",
    "within_between",
]
