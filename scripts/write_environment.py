"""Write environment.yml (conda users) from requirements.lock, so the two never drift.

Run by `make lock`; tests/test_environment.py checks that they agree.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(lock: Path = ROOT / "requirements.lock") -> list[str]:
    """The `name==version` lines of the lock file."""
    return [
        line.strip()
        for line in lock.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def main() -> None:
    lines = [
        "# conda users: conda env create -f environment.yml && conda activate alliance",
        "# Made from requirements.lock by scripts/write_environment.py (make lock); do not edit.",
        "name: alliance",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        *[f"      - {pin}" for pin in pins()],
        "      - -e .",
    ]
    (ROOT / "environment.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
