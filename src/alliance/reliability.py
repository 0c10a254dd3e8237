"""Reliability of scores: alpha, omega, ICC, multilevel reliability, inter-rater agreement."""

from __future__ import annotations

__all__: list[str] = []
