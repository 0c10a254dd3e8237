"""The committed notebooks follow the project's rules (nbval checks their numbers separately).

Each notebook: is numbered, has its jupytext twin in sync, a cell tagged ``parameters``
naming ``data`` and ``seed``, no function definitions (logic lives in the package), at
least one cell whose printed numbers nbval compares, stored outputs, and no warnings or
errors in those outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def book(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


def test_parameters_cell(book):
    _, nb = book
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert re.search(r"^data\s*=", tagged[0].source, re.M)
    assert re.search(r"^seed\s*=", tagged[0].source, re.M)
    assert re.search(r"^export_dir\s*=\s*None", tagged[0].source, re.M)


def test_no_logic_in_notebooks(book):
    _, nb = book
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not re.search(r"^\s*(def|class)\s", cell.source, re.M), cell.source[:80]


def test_checked_numbers_and_clean_outputs(book):
    path, nb = book
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any(c.source.startswith("# NBVAL_CHECK_OUTPUT") for c in code), path.name
    assert all(c.get("execution_count") for c in code), f"{path.name} has unexecuted cells"
    for cell in code:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name}: error output"
            assert output.get("name") != "stderr", f"{path.name}: {output.get('text', '')[:200]}"
            text = str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text, f"{path.name}: warning in output"


def test_jupytext_twin_in_sync(book):
    path, nb = book
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: pair with jupytext --set-formats ipynb,py:percent"
    paired = jupytext.read(twin)
    ours = [(c.cell_type, c.source.strip()) for c in nb.cells]
    theirs = [(c.cell_type, c.source.strip()) for c in paired.cells]
    assert ours == theirs, f"{path.name} and {twin.name} differ: run `make notebooks`"
