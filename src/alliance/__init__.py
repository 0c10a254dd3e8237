"""alliance: a research toolkit for the therapeutic alliance.

Load session-by-session alliance and outcome data, validate and score it, detect
ruptures and repairs, fit the models that link the alliance to outcome, and build
reports that anyone can re-execute.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from alliance import datasets, instruments, io
from alliance.io import read_study
from alliance.schema import ValidationError, validate
from alliance.study import Codebook, Study

try:
    __version__ = version("alliance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Codebook",
    "Study",
    "ValidationError",
    "__version__",
    "datasets",
    "instruments",
    "io",
    "read_study",
    "validate",
]
