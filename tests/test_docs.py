"""The documentation site builds offline with warnings as errors, complete and validated.

Builds the site as `make docs` does (Sphinx with -W: a broken cross-reference or a
malformed docstring fails), then checks that every public function and class has its API
page and that the validation page, computed from the committed references during the
build, reports every comparison within its tolerance.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _conf():
    spec = importlib.util.spec_from_file_location("alliance_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "docs",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"the docs build failed:\n{run.stderr[-4000:]}"
    return out


def test_every_public_object_has_an_api_page(site):
    conf = _conf()
    missing = [
        f"{module}.{name}"
        for module in conf.API_MODULES
        for name in conf.public_objects(module)
        if not (site / "_generated" / "stubs" / f"{module}.{name}.html").exists()
    ]
    assert not missing, f"no API page for {missing}"
    # the docstring is rendered, not shown as raw reStructuredText
    page = (site / "_generated" / "stubs" / "alliance.change.reliable_change.html").read_text()
    assert "autofunction" not in page and "currentmodule" not in page
    assert "Parameters" in page and "Examples" in page
    assert len(list((site / "_generated" / "stubs").glob("*.html"))) > 80


def test_pages_of_the_site_exist(site):
    for page in ("index", "getting_started", "guide", "notebooks", "changelog", "cite"):
        assert (site / f"{page}.html").exists(), page
    books = sorted((site / "_notebooks").glob("[0-9][0-9]_*.html"))
    assert len(books) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    # committed outputs are shown (not re-executed): the overview notebook has its figures
    assert "<img" in books[0].read_text(encoding="utf-8")


def test_validation_page_is_computed_and_every_row_agrees(site):
    text = (DOCS / "_generated" / "validation.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`alliance." in line]
    assert len(rows) > 100  # lme4, psych, metafor, lavaan and sandwich comparisons
    failing = [row for row in rows if "FAILS" in row]
    assert not failing, "\n".join(failing)
    assert (site / "_generated" / "validation.html").exists()


def test_agreement_measure_can_fail():
    spec = importlib.util.spec_from_file_location("vp", ROOT / "scripts" / "validation_page.py")
    vp = importlib.util.module_from_spec(spec)
    sys.modules["vp"] = vp  # dataclasses look their module up there
    spec.loader.exec_module(vp)
    assert vp.agreement([1.0, 2.0], [1.0, 2.0]) == 0
    assert vp.agreement([1.001], [1.0]) == pytest.approx(1e-3)
    row = vp.Row("x", "f", "r", "d", "q", tolerance=1e-6, achieved=1e-3)
    assert not row.ok
    with pytest.raises(ValueError, match="reference values"):
        vp.agreement([1.0, 2.0], [1.0])
