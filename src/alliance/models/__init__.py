"""Models that link the alliance to outcome; each returns a results object with tidy frames.

Every model is one call on a Study or a long DataFrame and returns a
:class:`~alliance.models._result.ModelResult` (``.params``, ``.variance_components``,
``.loglik``, ``.nobs``, ``.excluded``, ``.summary()``, ``.to_frame()``, ``.apa_table()``).
The mixed models are fitted by :func:`lmm`. See ``docs/models.md``.

The modules ``sem`` (dynamic panel models by ML-SEM) and ``dropout`` are loaded on first use.
"""

from __future__ import annotations

import importlib

from alliance.models._result import ModelResult
from alliance.models.early import early_alliance
from alliance.models.lmm import LmmResult, lmm
from alliance.models.mediation import mediation
from alliance.models.moderation import moderation
from alliance.models.rupture_outcome import rupture_outcome
from alliance.models.therapist import therapist_contributions
from alliance.models.within_between import within_between

__all__ = [
    "LmmResult",
    "ModelResult",
    "early_alliance",
    "lmm",
    "mediation",
    "moderation",
    "rupture_outcome",
    "therapist_contributions",
    "within_between",
]

_LAZY_MODULES = ("sem", "dropout")


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        try:
            module = importlib.import_module(f"alliance.models.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"alliance.models.{name}":
                raise
            raise AttributeError(
                f"alliance.models.{name} is not available in this installation."
            ) from err
        globals()[name] = module
        return module
    raise AttributeError(f"module 'alliance.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_MODULES])
