"""Models that link the alliance to outcome; each returns a results object with tidy frames."""

from alliance.models.lmm import LmmResult, lmm

__all__ = ["LmmResult", "lmm"]
