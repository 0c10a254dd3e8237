"""McDonald's omega (placeholder while the factor model is written)."""

from __future__ import annotations

__all__ = ["omega"]


def omega(*args, **kwargs):  # pragma: no cover
    raise NotImplementedError
