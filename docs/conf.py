"""Sphinx configuration of the alliance documentation site (``make docs``).

The site is built offline from the checkout: the API pages come from the numpydoc
docstrings (autosummary), the notebooks are shown with their committed outputs (never
re-executed here), and the validation page is generated from the committed reference
values by ``scripts/validation_page.py`` each time the site is built.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

import alliance  # noqa: E402

project = "alliance"
author = "The alliance developers"
copyright = "2026, the alliance developers (BSD-3-Clause)"
release = alliance.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinx_copybutton",
]

# Generated pages live under _generated/ and _notebooks/ (git ignores both).
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# API reference: one page per public function or class, from the docstrings.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# Notebooks: show the committed outputs; the docs build never executes code.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

html_theme = "pydata_sphinx_theme"
html_title = f"alliance {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # the validation table is wide: give it the whole page
    "secondary_sidebar_items": {"**": ["page-toc"], "_generated/validation": []},
}
html_sidebars = {"_generated/validation": []}
html_last_updated_fmt = None  # no build date: the same checkout gives the same pages
html_copy_source = False


def _copy_notebooks() -> None:
    """Copy the analysis notebooks (committed outputs) and their jupytext twins."""
    target = DOCS / "_notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    import nbformat

    for book in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(book, as_version=4)
        twin = book.with_suffix(".py")
        if twin.exists():
            shutil.copy2(twin, target / twin.name)
            link = nbformat.v4.new_markdown_cell(
                f"*Source:* {{download}}`{twin.name} <{twin.name}>` (the jupytext twin of "
                f"`notebooks/{book.name}`; outputs as committed, not re-executed here)."
            )
            title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
            nb.cells.insert(title, link)
        nbformat.write(nb, target / book.name)


def _validation_page() -> None:
    """Write _generated/validation.md from the committed references (computed now)."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validation_page.py"), str(out / "validation.md")],
        check=True,
        cwd=ROOT,
    )


_copy_notebooks()
_validation_page()

#: The public modules whose ``__all__`` makes the API reference, in the order of the
#: data flow (io -> schema -> ... -> report). A test checks every listed name has a page.
API_MODULES = {
    "alliance": "Reading and validating a study",
    "alliance.io": "Input and output",
    "alliance.schema": "Validation",
    "alliance.study": "The study and its codebook",
    "alliance.design": "Column roles and the early window",
    "alliance.intake": "Bringing your own study (alliance init)",
    "alliance.datasets": "Bundled datasets",
    "alliance.simulate": "Simulation with known truth",
    "alliance.instruments": "Questionnaire registry",
    "alliance.scoring": "Scoring",
    "alliance.reliability": "Reliability and agreement",
    "alliance.change": "Change and clinical significance",
    "alliance.ruptures": "Ruptures and repairs",
    "alliance.observer": "Observer-coded ruptures (3RS)",
    "alliance.models": "Mixed models and alliance -> outcome models",
    "alliance.results": "The results contract",
    "alliance.tables": "APA tables",
    "alliance.monitoring": "Routine outcome monitoring",
    "alliance.meta": "Meta-analysis",
    "alliance.ipd": "Two-stage IPD meta-analysis",
    "alliance.dyad": "Client and therapist: agreement, response surfaces, one-with-many",
    "alliance.power": "Power by simulation",
    "alliance.describe": "Descriptive tables",
    "alliance.privacy": "Privacy",
    "alliance.export": "Export",
    "alliance.plots": "Figures",
    "alliance.report": "Reports",
}


def public_objects(module_name: str) -> list[str]:
    """The documented names of a public module: its ``__all__`` functions and classes."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # a package of submodules (plots): every public callable
        names = [n for n in dir(module) if not n.startswith("_")]
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            out.append(name)
    return sorted(set(out), key=str.lower)


def _api_pages() -> None:
    """Write one autosummary page per public module under _generated/api/."""
    folder = DOCS / "_generated" / "api"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    toc = []
    for module_name, title in API_MODULES.items():
        names = public_objects(module_name)
        if not names:
            continue
        lines = [
            f"# `{module_name}`: {title}",
            "",
            "```{eval-rst}",
            f".. currentmodule:: {module_name}",
            "",
            ".. autosummary::",
            "   :toctree: ../stubs",
            "   :nosignatures:",
            "",
            *[f"   {name}" for name in names],
            "```",
            "",
        ]
        (folder / f"{module_name}.md").write_text("\n".join(lines), encoding="utf-8")
        toc.append(module_name)
    index = [
        "# API reference",
        "",
        "Every public function and class, generated from its numpydoc docstring. The",
        "examples in the docstrings are run as doctests by `make test`, so the code shown",
        "here runs as shown.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *toc,
        "```",
        "",
    ]
    (folder / "index.md").write_text("\n".join(index), encoding="utf-8")


_api_pages()
