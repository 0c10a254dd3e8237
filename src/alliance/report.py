"""Build reports: run the analysis notebooks with papermill and render them to HTML.

A report folder holds one HTML page per notebook, the executed notebooks, an
``index.html`` and ``provenance.json`` (SHA-256 of every input file, package versions,
seed, command, date). It is written into a temporary folder first and moved into
place only when every notebook ran, so a failed run never leaves half a report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from alliance.datasets import _REGISTRY as DATASETS
from alliance.datasets import dataset_path
from alliance.paths import notebooks_dir

__all__ = ["NotebookFailed", "ReportResult", "build_report", "provenance", "list_notebooks"]

logger = logging.getLogger(__name__)

_PACKAGES = (
    "alliance",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "pingouin",
    "papermill",
)


class NotebookFailed(RuntimeError):
    """A notebook raised an error while the report was being built."""


@dataclass
class ReportResult:
    """Where a report was written and what went into it."""

    folder: Path
    pages: list[Path]
    provenance: dict

    @property
    def index(self) -> Path:
        """The report's index page."""
        return self.folder / "index.html"


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered analysis notebooks, in order (``NN_name.ipynb``).

    Examples
    --------
    >>> from alliance.report import list_notebooks
    >>> list_notebooks()[0].name
    '01_data_overview.ipynb'
    """
    folder = folder or notebooks_dir()
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_files(data: str) -> list[Path]:
    if data in DATASETS:
        try:
            folder = dataset_path(data)
        except KeyError:
            return []
        return sorted(p for p in folder.iterdir() if p.is_file())
    path = Path(data)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return [path] if path.exists() else []


def provenance(data: str, *, seed: int, command: str | None = None) -> dict:
    """What a report was made from: input hashes, package versions, seed, command, date.

    Examples
    --------
    >>> from alliance.report import provenance
    >>> p = provenance("demo", seed=2026)
    >>> sorted(p)
    ['command', 'created', 'data', 'inputs', 'packages', 'platform', 'python', 'seed']
    >>> len(p["inputs"][0]["sha256"])
    64
    """
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "data": str(data),
        "inputs": [{"file": p.name, "sha256": _sha256(p)} for p in _input_files(str(data))],
        "seed": seed,
        "command": command or " ".join(["alliance", *sys.argv[1:]]),
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def build_report(
    data: str | Path = "demo",
    out: str | Path = "reports/demo",
    *,
    alliance: str | None = None,
    outcome: str | None = None,
    instrument: str | None = None,
    seed: int = 2026,
    notebooks: list[Path] | None = None,
    command: str | None = None,
    progress: bool = False,
) -> ReportResult:
    """Run the analysis notebooks on a study and render an HTML report.

    Parameters
    ----------
    data : str or pathlib.Path, default "demo"
        A bundled dataset's name, or a sessions file or study folder.
    out : str or pathlib.Path, default "reports/demo"
        The report folder; replaced only when the whole run succeeds.
    alliance, outcome : str, optional
        Score columns, when the data do not use the default names.
    instrument : str, optional
        The outcome instrument's registry name.
    seed : int, default 2026
        Passed to every notebook.
    notebooks : list of pathlib.Path, optional
        Which notebooks to run (default: all numbered notebooks).
    command : str, optional
        The command line to record in the provenance.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    ReportResult

    Raises
    ------
    NotebookFailed
        Naming the notebook and cell that failed; nothing is written to ``out``.

    Examples
    --------
    >>> import tempfile
    >>> from alliance.report import build_report, list_notebooks
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     result = build_report("demo", tmp + "/demo", notebooks=list_notebooks()[:1])
    """
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    data = str(data)
    if data not in DATASETS and not Path(data).exists():
        raise FileNotFoundError(
            f"--data {data!r} is neither a bundled dataset ({', '.join(DATASETS)}) "
            "nor an existing file or folder"
        )
    if data not in DATASETS:
        data = str(Path(data).resolve())
    out = Path(out)
    books = notebooks or list_notebooks()
    params = {"data": data, "seed": seed}
    for key, value in (
        ("alliance_col", alliance),
        ("outcome", outcome),
        ("instrument", instrument),
    ):
        if value is not None:
            params[key] = value
    prov = provenance(data, seed=seed, command=command)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    pages = []
    try:
        (staging / "notebooks").mkdir()
        for book in tqdm(books, desc="notebooks", disable=not progress, unit="nb"):
            executed = staging / "notebooks" / book.name
            try:
                pm.execute_notebook(
                    str(book),
                    str(executed),
                    parameters=params,
                    progress_bar=False,
                    cwd=str(book.parent),
                    kernel_name="python3",
                    language="python",
                )
            except pm.PapermillExecutionError as err:
                raise NotebookFailed(
                    f"{book.name} failed in cell {err.exec_count} with {err.ename}: {err.evalue}. "
                    f"Nothing was written to {out}."
                ) from err
            nb = nbformat.read(executed, as_version=4)
            body, _ = exporter.from_notebook_node(nb)
            page = staging / (book.stem + ".html")
            page.write_text(body, encoding="utf-8")
            pages.append(page.name)
        (staging / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n", "utf-8")
        (staging / "index.html").write_text(_index(pages, prov), encoding="utf-8")
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            out.rename(backup)
            staging.rename(out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ReportResult(folder=out, pages=[out / p for p in pages], provenance=prov)


def _index(pages: list[str], prov: dict) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(p)}">{html.escape(p[3:-5].replace("_", " ").capitalize())}'
        "</a></li>"
        for p in pages
    )
    inputs = "\n".join(
        f"<tr><td>{html.escape(i['file'])}</td><td><code>{i['sha256']}</code></td></tr>"
        for i in prov["inputs"]
    )
    packages = ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>alliance report: {html.escape(prov["data"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }}
h1 {{ font-size: 1.6rem; }} td {{ padding: .2rem .6rem; vertical-align: top; }}
code {{ font-size: .8rem; word-break: break-all; }}
.prov {{ background: #f6f6f6; padding: 1rem; border-radius: .4rem; font-size: .9rem; }}
</style></head>
<body>
<h1>alliance report</h1>
<p>Data: <strong>{html.escape(Path(prov["data"]).name)}</strong>. Every page below was
produced by re-executing the project's notebooks on these data.</p>
<ol>
{items}
</ol>
<div class="prov"><h2>Provenance</h2>
<table>
<tr><td>Command</td><td><code>{html.escape(prov["command"])}</code></td></tr>
<tr><td>Created (UTC)</td><td>{prov["created"]}</td></tr>
<tr><td>Seed</td><td>{prov["seed"]}</td></tr>
<tr><td>Python</td><td>{prov["python"]} on {html.escape(prov["platform"])}</td></tr>
<tr><td>Packages</td><td>{html.escape(packages)}</td></tr>
</table>
<h3>Input files (SHA-256)</h3>
<table>{inputs}</table></div>
</body></html>
"""


def refresh_notebooks(folder: Path | None = None) -> list[Path]:
    """Re-execute the committed notebooks in place with their default parameters.

    Outputs are stored in the notebooks (that is what nbval checks), and the paired
    jupytext ``.py`` files are synced. Used by ``make notebooks``.
    """
    import jupytext
    import papermill as pm

    books = list_notebooks(folder)
    for book in books:
        paired = book.with_suffix(".py")
        if paired.exists() and paired.stat().st_mtime > book.stat().st_mtime:
            jupytext.write(jupytext.read(paired), book)
        pm.execute_notebook(
            str(book), str(book), progress_bar=False, cwd=str(book.parent), kernel_name="python3"
        )
        _strip_volatile(book)
    return books


def _strip_volatile(book: Path) -> None:
    """Drop papermill's timing metadata so re-running leaves no diff when nothing changed."""
    import nbformat

    nb = nbformat.read(book, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, book)


def screenshots(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """PNG screenshots of every page of a report, taken with headless Chromium."""
    import subprocess

    folder = Path(folder)
    out = Path(out) if out else folder / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError("chromium is not installed; `make screenshots` installs it")
    shots = []
    with tempfile.TemporaryDirectory() as profile:
        for page in sorted(folder.glob("*.html")):
            png = out / (page.stem + ".png")
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    f"--user-data-dir={profile}",
                    "--window-size=1200,2400",
                    f"--screenshot={png}",
                    page.resolve().as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            shots.append(png)
    return shots


if __name__ == "__main__":  # make notebooks / make screenshots
    import argparse

    parser = argparse.ArgumentParser(prog="python -m alliance.report")
    parser.add_argument("task", choices=["refresh-notebooks", "screenshots"])
    parser.add_argument("folder", nargs="?", default="reports/demo")
    args = parser.parse_args()
    if args.task == "refresh-notebooks":
        for done in refresh_notebooks():
            logger.info("executed %s", done)
    else:
        for shot in screenshots(args.folder):
            sys.stdout.write(f"{shot}\n")
