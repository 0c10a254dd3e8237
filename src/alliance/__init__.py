"""alliance: a research toolkit for the therapeutic alliance.

Load session-by-session alliance and outcome data, validate and score it, detect
ruptures and repairs, fit the models that link the alliance to outcome, and build
reports that anyone can re-execute.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from alliance import datasets, design, instruments, io, schema, scoring
from alliance.datasets import load_study
from alliance.design import Design, resolve_design
from alliance.io import read_study
from alliance.results import Result
from alliance.schema import ValidationError, validate
from alliance.scoring import score
from alliance.study import Codebook, Study

try:
    __version__ = version("alliance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# Heavier layers load on first use (``alliance.models``, ``alliance.plots``, ...), so
# ``import alliance`` stays quick for the command line and for parallel workers.
_LAZY = (
    "change",
    "describe",
    "dyad",
    "export",
    "ipd",
    "meta",
    "models",
    "monitoring",
    "observer",
    "paths",
    "plots",
    "power",
    "privacy",
    "reliability",
    "report",
    "results",
    "ruptures",
    "simulate",
    "tables",
    "terms",
)

__all__ = [
    "Codebook",
    "Design",
    "Result",
    "Study",
    "ValidationError",
    "__version__",
    "datasets",
    "design",
    "instruments",
    "io",
    "load_study",
    "read_study",
    "resolve_design",
    "schema",
    "score",
    "scoring",
    "validate",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"alliance.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'alliance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
