"""Validation of a study's tables (placeholder: filled in by the foundation work)."""

from __future__ import annotations

__all__ = ["ValidationError", "validate"]


class ValidationError(ValueError):
    """Raised by :func:`validate` with every problem found."""


def validate(study, **kwargs):  # pragma: no cover - replaced shortly
    return study
