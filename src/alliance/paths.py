"""Where the project's folders are: one place, so no notebook hard-codes a path."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_ROOT", "NOTEBOOKS", "REPORTS", "DATA_RAW", "DATA_PROCESSED", "notebooks_dir"]

#: The source checkout holding notebooks/, data/ and reports/ (src/alliance/ -> ../..).
PROJECT_ROOT = Path(os.environ.get("ALLIANCE_PROJECT_ROOT", Path(__file__).resolve().parents[2]))
NOTEBOOKS = PROJECT_ROOT / "notebooks"
REPORTS = PROJECT_ROOT / "reports"
DATA_RAW = PROJECT_ROOT / "data" / "raw"
DATA_PROCESSED = PROJECT_ROOT / "data" / "processed"


def notebooks_dir() -> Path:
    """The analysis notebooks folder, with a clear error when it cannot be found."""
    if not NOTEBOOKS.is_dir():
        raise FileNotFoundError(
            f"the analysis notebooks were not found at {NOTEBOOKS}; reports are built from a "
            "clone of the alliance repository (set ALLIANCE_PROJECT_ROOT to its folder)"
        )
    return NOTEBOOKS
