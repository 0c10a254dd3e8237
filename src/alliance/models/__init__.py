"""Models that link the alliance to outcome; each returns a results object with tidy frames.

Every model is one call on a Study or a long DataFrame and returns an
:class:`alliance.results.Result`: a :class:`ModelResult` subclass with the model's typed
attributes (:class:`EarlyAllianceResult`, :class:`ModerationResult`, ...), or the engines'
:class:`LmmResult` and :class:`GlmmResult` (``.params``, ``.excluded``, ``.nobs``, ``.n``,
``.variance_components``, ``.loglik``, ``.summary()``, ``.to_frame()``, ``.apa_table()``,
``.plot()``). The mixed models are fitted by :func:`lmm`. See ``docs/models.md``.

Also here: :func:`dynamic_panel` and :func:`riclpm` (structural equation models fitted by
full-information ML, ``alliance.models.sem``) and :func:`dropout_model`.
"""

from __future__ import annotations

from alliance.models import dropout, sem
from alliance.models._result import ModelResult
from alliance.models.dropout import DropoutResult, dropout_model, person_period
from alliance.models.early import EarlyAllianceResult, early_alliance
from alliance.models.glmm import GlmmResult, glmm
from alliance.models.lmm import LmmResult, lmm
from alliance.models.mediation import MediationResult, mediation
from alliance.models.moderation import ModerationResult, moderation
from alliance.models.rupture_outcome import RuptureOutcomeResult, rupture_outcome
from alliance.models.sem import PanelResult, dynamic_panel, riclpm
from alliance.models.therapist import TherapistResult, therapist_contributions
from alliance.models.within_between import WithinBetweenResult, within_between

__all__ = [
    "DropoutResult",
    "EarlyAllianceResult",
    "GlmmResult",
    "LmmResult",
    "MediationResult",
    "ModelResult",
    "ModerationResult",
    "PanelResult",
    "RuptureOutcomeResult",
    "TherapistResult",
    "WithinBetweenResult",
    "dropout",
    "dropout_model",
    "dynamic_panel",
    "early_alliance",
    "glmm",
    "lmm",
    "mediation",
    "moderation",
    "person_period",
    "riclpm",
    "rupture_outcome",
    "sem",
    "therapist_contributions",
    "within_between",
]
