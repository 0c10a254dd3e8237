"""Build reports: run the analysis notebooks with papermill and render them to HTML.

A report folder holds one HTML page per notebook, the executed notebooks, an
``index.html``, ``provenance.json`` (SHA-256 of every input file that was read, package
versions, the code's git commit and tree state, the lock file's SHA-256, seed, command,
date) and a manifest (``.alliance-report.json``) listing every file the report wrote.
With ``formats`` (``alliance report --format html,docx,latex``) it also holds
``report.docx`` (every saved table and figure, numbered, with captions, in report order)
and ``latex/`` (one booktabs table per saved table, and ``tables.tex`` to compile them). It is built in a staging folder beside ``out`` and swapped into
place only when every notebook ran and no page or file shows an identifier of the study,
so a failed run never leaves half a report. ``out`` must be a new or empty folder or a
previous report: a folder holding anything else, or the data folder, is refused and
nothing is touched (see :mod:`alliance._outdir`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from alliance import instruments as _instruments
from alliance._files import sha256_of
from alliance._outdir import OutputRefused, ReportFolder, checkpoint
from alliance.datasets import dataset_files, dataset_names
from alliance.paths import notebooks_dir

__all__ = [
    "FORMATS",
    "NotebookFailed",
    "OutputRefused",
    "PrivacyError",
    "ReportResult",
    "UnreadableData",
    "build_report",
    "provenance",
    "list_notebooks",
]

logger = logging.getLogger(__name__)

#: Names of the bundled datasets that ``--data`` accepts besides a path.
DATASETS = dataset_names()

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


#: The output formats of a report (the HTML pages are always written).
FORMATS = ("html", "docx", "latex")

#: Arguments that keep notebook kernels quiet (no TCP or shutdown messages on the console).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.enabled=False"]

#: Lines the notebook kernels' C libraries may print at shutdown (ZeroMQ's signaler
#: assertion when a socket closes under it); they say nothing about the report.
KERNEL_NOISE = re.compile(r"Assertion failed: pfd\.revents & POLLIN|src/signaler\.cpp")


#: The first line of the traceback a kernel logs when its ZeroMQ sockets close under its
#: I/O thread at shutdown (``zmq.error.ZMQError: Socket operation on non-socket``).
SHUTDOWN_TRACEBACK = "ERROR:tornado.general:Uncaught exception in ZMQStream callback"


def _without_shutdown_tracebacks(lines: list[str]) -> list[str]:
    """``lines`` without the kernels' shutdown tracebacks (header to ``zmq.error`` line).

    Any other traceback, and a shutdown block that does not end in a ZeroMQ error, is
    kept whole: only the known shutdown race is dropped.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith(SHUTDOWN_TRACEBACK):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "Traceback")) or not lines[j]):
                j += 1
            if j < len(lines) and lines[j].startswith("zmq.error."):
                i = j + 1
                continue
        out.append(lines[i])
        i += 1
    return out


@contextlib.contextmanager
def kernel_noise_held():
    """Hold what the kernels write to the process's stderr; pass on all but known noise.

    Kernels inherit file descriptor 2, so their C libraries write past Python's
    ``sys.stderr``. While a notebook runs, descriptor 2 goes to a temporary file; every
    line except :data:`KERNEL_NOISE` is then written to stderr as it came.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor (embedded interpreters): nothing to hold
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [
                ln
                for ln in _without_shutdown_tracebacks(text.splitlines())
                if ln.strip() and not KERNEL_NOISE.search(ln)
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def parse_formats(formats: str | Sequence[str] | None) -> tuple[str, ...]:
    """The report formats asked for, checked, in the order of :data:`FORMATS`.

    Examples
    --------
    >>> from alliance.report import parse_formats
    >>> parse_formats("latex,html"), parse_formats(None)
    (('html', 'latex'), ('html',))
    """
    if formats is None:
        return ("html",)
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = {str(f).strip().lower() for f in items if str(f).strip()}
    chosen = {"latex" if f == "tex" else "docx" if f == "word" else f for f in chosen}
    unknown = sorted(chosen - set(FORMATS))
    if unknown:
        raise ValueError(
            f"unknown report format(s) {unknown}; choose among {', '.join(FORMATS)}, "
            "e.g. --format html,docx,latex"
        )
    return tuple(f for f in FORMATS if f in chosen or f == "html")


#: The backend a notebook kernel needs for its figures to be captured in the page.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@contextlib.contextmanager
def inline_figures():
    """Run notebook kernels with the inline figure backend, whatever the caller set.

    A kernel inherits the environment of the process that starts it. ``MPLBACKEND=Agg``
    (set by a Makefile, a CI job or a headless shell) would make every kernel draw its
    figures off-screen, and the pages would have no figures at all.

    Examples
    --------
    >>> import os
    >>> from alliance.report import INLINE_BACKEND, inline_figures
    >>> with inline_figures():
    ...     os.environ["MPLBACKEND"] == INLINE_BACKEND
    True
    """
    before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = before


class NotebookFailed(RuntimeError):
    """A notebook raised an error while the report was being built."""


@dataclass
class ReportResult:
    """Where a report was written and what went into it."""

    folder: Path
    pages: list[Path]
    provenance: dict
    notes: list[str] = field(default_factory=list)

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


def _input_files(data: str, study=None) -> list[Path]:
    """The files a study was read from (never the data folder's other files)."""
    if data in DATASETS:
        return dataset_files(data)
    if study is None:
        from alliance.datasets import load_study

        study = load_study(data)
    files = []
    for name in study.files.values():
        path = Path(name)
        if path.is_file() and path not in files:
            files.append(path)
    return files


def provenance(data: str, *, seed: int, command: str | None = None, study=None) -> dict:
    """What a report was made from: input hashes, package versions, seed, command, date.

    Only the files the study was read from are listed (its sessions, clients and events
    tables and codebook), never the other files of its folder.

    Examples
    --------
    >>> from alliance.report import provenance
    >>> p = provenance("demo", seed=2026)
    >>> sorted(p)  # doctest: +NORMALIZE_WHITESPACE
    ['code', 'command', 'created', 'data', 'inputs', 'lock_sha256', 'packages', 'platform',
     'python', 'seed']
    >>> len(p["inputs"][0]["sha256"])
    64
    >>> sorted(p["code"])
    ['checkout', 'clean', 'commit']
    """
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "data": str(data),
        "inputs": [
            {"file": p.name, "sha256": sha256_of(p)} for p in _input_files(str(data), study)
        ],
        "seed": seed,
        "command": command or " ".join(["alliance", *sys.argv[1:]]),
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "code": code_state(),
        "lock_sha256": _lock_sha256(),
    }


def _source_root() -> Path:
    """The folder holding the package's ``src/`` (a checkout) or its install location."""
    here = Path(__file__).resolve().parent
    return here.parents[1] if here.parent.name == "src" else here.parent


def code_state(folder: Path | None = None) -> dict:
    """The git commit of the code and whether its tree was clean (None outside a checkout).

    ``clean`` is False when tracked files differ from the commit (untracked files do not
    count). Outside a git checkout, or without git, every value is None and nothing fails.

    Examples
    --------
    >>> import tempfile
    >>> from alliance.report import code_state
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     code_state(tmp)
    {'checkout': False, 'commit': None, 'clean': None}
    """
    folder = Path(folder) if folder is not None else _source_root()
    none = {"checkout": False, "commit": None, "clean": None}
    git = shutil.which("git")
    if git is None:
        return none

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    top = run("rev-parse", "--show-toplevel")
    if not top or Path(top.strip()).resolve() != folder.resolve():
        return none
    commit = (run("rev-parse", "HEAD") or "").strip() or None
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"checkout": True, "commit": commit, "clean": None if status is None else not status}


def _lock_sha256() -> str | None:
    lock = _source_root() / "requirements.lock"
    return sha256_of(lock) if lock.is_file() else None


class PrivacyError(RuntimeError):
    """A rendered report page showed an identifier; the report was not written."""


class UnreadableData(ValueError):
    """The study could not be read (exit code 2 on the command line)."""


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
    salt: str | None = None,
    show_therapists: bool = False,
    columns: Mapping[str, str] | None = None,
    wide: Sequence[str] | None = None,
    dialect: Mapping[str, str | None] | None = None,
    formats: str | Sequence[str] | None = None,
    jobs: int | None = None,
) -> ReportResult:
    """Run the analysis notebooks on a study and render an HTML report (and Word, LaTeX).

    Parameters
    ----------
    data : str or pathlib.Path, default "demo"
        A bundled dataset's name, or a sessions file or study folder.
    out : str or pathlib.Path, default "reports/demo"
        The report folder: a new or empty folder, or a previous report (which is replaced
        only when the whole run succeeds, removing only the files it listed). It may not
        be, lie in or contain the data folder.
    alliance, outcome : str, optional
        Score columns, when they cannot be found from the codebook or known names.
    instrument : str, optional
        The outcome instrument's registry name.
    seed : int, default 2026
        Passed to every notebook.
    notebooks : list of pathlib.Path, optional
        Which notebooks to run (default: all numbered notebooks).
    command : str, optional
        The command line to record in the provenance.
    progress : bool, default False
        Show a progress bar when standard error is a terminal, else print one line per
        notebook there.
    salt : str, optional
        Replace client and therapist identifiers by stable salted pseudonyms
        (:func:`alliance.privacy.pseudonymize`) before any notebook sees the data. Keep
        the salt private: with it the same identifiers map to the same pseudonyms.
    show_therapists : bool, default False
        Allow therapist identifiers and session dates in the report.
    columns : mapping, optional
        Column renames for your own data, ``{"ClientID": "client", "Sitzung": "session"}``
        (``alliance report --column``). Roles not given are found from the codebook or
        conventional names (:func:`alliance.resolve_design`).
    wide : list of str, optional
        Measures spread over sessions in a one-row-per-client file (``--wide phq9``).
    dialect : mapping, optional
        ``sep``, ``decimal`` and ``encoding`` of CSV input (detected when not given).
    formats : str or list of str, optional
        ``"html"`` (default; the pages are always written), ``"docx"`` (``report.docx``:
        the saved tables and figures, numbered, with captions) and ``"latex"``
        (``latex/*.tex`` booktabs tables), e.g. ``"html,docx,latex"``.
    jobs : int, optional
        Notebooks run at once (default 2, or ``ALLIANCE_REPORT_JOBS``; see
        :func:`report_jobs`); the report is the same for any number.

    Your own data are read once, put in canonical form (:func:`alliance.design.canonical_study`:
    role names, items named ``<instrument>_<n>``, scale scores added from items) and the
    notebooks run on that copy, which is removed when the report is done; the input files
    are only read and are what the provenance lists.

    Returns
    -------
    ReportResult

    Raises
    ------
    OutputRefused
        When ``out`` holds files that no report wrote, is the data folder (or lies in or
        contains it), or another run is writing it; nothing is touched.
    alliance.ValidationError
        When the study is invalid (every problem listed).
    NotebookFailed
        Naming the notebook and cell that failed; nothing is written to ``out``.
    PrivacyError
        When a page or file shows a client identifier (or a therapist identifier or a
        date unless ``show_therapists``); nothing is written to ``out``. Identifiers are
        the study's actual values (see :func:`alliance.privacy.find_identifiers`).

    Examples
    --------
    >>> import tempfile
    >>> from alliance.report import build_report, list_notebooks
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = build_report("demo", tmp + "/demo", notebooks=list_notebooks()[:1])
    ...     sorted(p.name for p in result.folder.iterdir())
    ... # doctest: +NORMALIZE_WHITESPACE
    ['.alliance-report.json', '01_data_overview.html', 'figures', 'index.html', 'notebooks',
     'provenance.json', 'tables']
    """
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter
    from tqdm import tqdm

    from alliance.datasets import dataset_path, load_study
    from alliance.intake import prepare_study
    from alliance.io import write_study
    from alliance.privacy import identifier_values
    from alliance.schema import find_scores, validate

    data = str(data)
    chosen = parse_formats(formats)
    if data not in DATASETS and not Path(data).exists():
        raise FileNotFoundError(
            f"--data {data!r} is neither a bundled dataset ({', '.join(DATASETS)}) "
            "nor an existing file or folder"
        )
    if data not in DATASETS:
        data = str(Path(data).resolve())
    books = list_notebooks() if notebooks is None else notebooks
    try:
        if data in DATASETS:
            study = load_study(data)
        else:
            study, _ = prepare_study(data, columns=columns, wide=wide, **dict(dialect or {}))
    except (FileNotFoundError, KeyError):
        raise
    except Exception as err:  # any reader's error: one clear message
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UnreadableData(f"cannot read {data}: {first}") from err
    validate(study)  # raises ValidationError listing every problem
    scores = find_scores(study, alliance=alliance, outcome=outcome)
    prov = provenance(data, seed=seed, command=command, study=study)
    if data in DATASETS:
        folders = [dataset_path(data)] if data == "demo" else []
    else:
        folders = [Path(data)] if Path(data).is_dir() else []
    inputs = _input_files(data, study)
    forbidden = identifier_values(study, therapists=not show_therapists, dates=not show_therapists)
    notes = _advice(study, salt is not None)
    if notes:
        prov["advice"] = notes
    writer = ReportFolder(Path(out), folders=folders, files=inputs)
    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.log.setLevel(logging.ERROR)
    started = time.monotonic()
    tty = progress and sys.stderr.isatty()
    pages: list[tuple[str, str]] = []
    with writer:
        staging = writer.staging
        (staging / "notebooks").mkdir()
        run_data = data
        if salt is not None:
            run_data = str(_pseudonymized_copy(study, staging / ".data", salt))
            prov["pseudonymized"] = True
        elif data not in DATASETS:  # the canonical copy every notebook reads
            run_data = str(write_study(study, staging / ".data", fmt="parquet"))
        params = {
            "data": run_data,
            "seed": seed,
            "alliance_col": scores["alliance"],
            "outcome": scores["outcome"],
            "instrument": instrument or scores["instrument"],
            "alliance_instrument": scores["alliance_instrument"],
        }
        skipped: list[tuple[str, str]] = []
        runs: list[tuple[Path, Path, Path, Path]] = []  # book, source, executed, export
        for book in books:
            lacking = requirements(nbformat.read(book, as_version=4), study, scores)
            if lacking:
                skipped.append(
                    (_title(nbformat.read(book, as_version=4), book), "needs " + ", ".join(lacking))
                )
                if progress and not tty:
                    _say(f"{book.stem}: not run, needs {', '.join(lacking)}")
                continue
            source = book
            trimmed, dropped = skip_sections(
                nbformat.read(book, as_version=4), study, bundled=data in DATASETS
            )
            if dropped:  # run the notebook without the sections the data cannot support
                source = staging / ".sections" / book.name
                source.parent.mkdir(exist_ok=True)
                nbformat.write(trimmed, source)
                skipped += [(f"{_title(trimmed, book)}: {t}", r) for t, r in dropped]
            part = staging / ".parts" / book.stem  # each notebook saves into its own folder
            part.mkdir(parents=True)
            runs.append((book, source, staging / "notebooks" / book.name, part))

        def run(item: tuple[Path, Path, Path, Path]) -> float:
            book, source, executed, part = item
            t0 = time.monotonic()
            declared = pm.inspect_notebook(str(book))
            values = {**params, "export_dir": str(part.resolve())}
            try:
                pm.execute_notebook(
                    str(source),
                    str(executed),
                    parameters={k: v for k, v in values.items() if k in declared},
                    progress_bar=False,
                    cwd=str(book.parent),
                    kernel_name="python3",
                    language="python",
                    extra_arguments=KERNEL_ARGUMENTS,
                )
            except pm.PapermillExecutionError as err:
                raise NotebookFailed(
                    f"{book.name} failed in cell {err.exec_count} with {err.ename}: "
                    f"{err.evalue}. Nothing was written to {out}."
                ) from err
            return time.monotonic() - t0

        workers = max(1, min(report_jobs(jobs), len(runs) or 1))
        seconds: dict[str, float] = {}
        with inline_figures(), kernel_noise_held():
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run, item) for item in runs]
                bar = tqdm(total=len(futures), desc="notebooks", disable=not tty, unit="nb")
                try:
                    for item, future in zip(runs, futures, strict=True):
                        seconds[item[0].name] = future.result()
                        bar.update()
                        checkpoint("notebook")
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
                finally:
                    bar.close()
        offsets = _merge_parts(staging, [part for *_, part in runs])
        for book, _, executed, part in runs:
            nb = nbformat.read(executed, as_version=4)
            figures = {e["name"]: e for e in _saved(part, "figures")}
            shown, alts = _for_page(nb, figures)
            body, _ = exporter.from_notebook_node(shown)
            body = _scrub_paths(_with_alt_text(body, alts), part)
            body = _scrub_paths(body, staging)
            body = _renumber_tables(body, offsets[part])
            _refuse_leaks(book.name, body, "html", forbidden, out)
            page = staging / (book.stem + ".html")
            page.write_text(body, encoding="utf-8")
            pages.append((page.name, _title(nb, book)))
            if progress and not tty:
                shown = body.count("<img")
                _say(f"{book.stem}: {seconds[book.name]:.1f} s, {shown} figure(s)")
        shutil.rmtree(staging / ".parts", ignore_errors=True)
        shutil.rmtree(staging / ".data", ignore_errors=True)
        shutil.rmtree(staging / ".sections", ignore_errors=True)
        for kind in ("figures", "tables"):
            (staging / kind).mkdir(exist_ok=True)
        prov["skipped"] = [{"notebook": t, "reason": r} for t, r in skipped]
        prov["formats"] = list(chosen)
        if "docx" in chosen:
            _word(staging, pages, prov, study)
        if "latex" in chosen:
            _latex(staging, study)
        (staging / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n", "utf-8")
        (staging / "index.html").write_text(_index(pages, prov, staging), encoding="utf-8")
        for path in sorted(staging.rglob("*")):
            if not path.is_file():
                continue
            name = path.relative_to(staging).as_posix()
            if path.suffix.lower() == ".docx":
                _refuse_leaks(name, docx_text(path), "html", forbidden, out)
                continue
            kind = _KINDS.get(path.suffix.lower())
            if kind:
                text = path.read_text(encoding="utf-8", errors="replace")
                _refuse_leaks(name, text, kind, forbidden, out)
        writer.commit(prov["packages"].get("alliance") or "unknown")
    folder = writer.out
    prov["seconds"] = round(time.monotonic() - started, 1)
    return ReportResult(
        folder=folder, pages=[folder / p for p, _ in pages], provenance=prov, notes=notes
    )


def report_jobs(jobs: int | None = None) -> int:
    """How many notebooks a report runs at once: ``jobs``, else ``ALLIANCE_REPORT_JOBS``,
    else 2 (or 1 on a one-core machine).

    Each notebook runs in its own kernel and saves into its own folder; the pages, tables
    and figures are merged in notebook order, so the report is the same for any number.

    Examples
    --------
    >>> from alliance.report import report_jobs
    >>> report_jobs(1), report_jobs(3)
    (1, 3)
    """
    if jobs is None:
        env = os.environ.get("ALLIANCE_REPORT_JOBS", "").strip()
        if env:
            try:
                jobs = int(env)
            except ValueError:
                raise ValueError(
                    f"ALLIANCE_REPORT_JOBS must be a whole number, not {env!r}"
                ) from None
        else:
            jobs = min(2, os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    return int(jobs)


def _merge_parts(staging: Path, parts: list[Path]) -> dict[Path, int]:
    """Move each notebook's saved tables and figures into the report, in notebook order.

    The entries of every part's ``index.json`` are renumbered (``seq``) after those of the
    notebooks before it. Returns, per part, how many tables the notebooks before it saved
    (the offset of its table numbers).
    """
    from alliance.export import INDEX, saved

    offsets: dict[Path, int] = {}
    merged: dict[str, list[dict]] = {"tables": [], "figures": []}
    seq = 0
    for part in parts:
        offsets[part] = len(merged["tables"])
        entries = [(e.get("seq", 0), kind, e) for kind in merged for e in saved(part, kind)]
        for _, kind, entry in sorted(entries, key=lambda x: x[0]):
            seq += 1
            merged[kind].append({**entry, "seq": seq})
        for kind in merged:
            folder = part / kind
            if not folder.is_dir():
                continue
            target = staging / kind
            target.mkdir(exist_ok=True)
            for path in sorted(folder.iterdir()):
                if path.name != INDEX:
                    os.replace(path, target / path.name)
    for kind, entries in merged.items():
        if entries:
            (staging / kind).mkdir(exist_ok=True)
            (staging / kind / INDEX).write_text(
                json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    return offsets


_TABLE_NUMBER = re.compile(r'<strong class="apa-number">Table (\d+)</strong>')


def _renumber_tables(body: str, offset: int) -> str:
    """A page's table numbers (1, 2, ... within its notebook) as numbers of the report."""
    if not offset:
        return body
    return _TABLE_NUMBER.sub(
        lambda m: f'<strong class="apa-number">Table {int(m.group(1)) + offset}</strong>', body
    )


#: How each kind of report file is checked for identifiers (PNG images cannot be; a
#: Word file's text is checked as HTML, its tables as tables, see :func:`docx_text`).
_KINDS = {
    ".html": "html",
    ".svg": "svg",
    ".csv": "csv",
    ".ipynb": "ipynb",
    ".json": "text",
    ".tex": "text",
}


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _saved(folder: Path, kind: str) -> list[dict]:
    from alliance.export import saved

    return saved(folder, kind)


def _scrub_paths(text: str, staging: Path) -> str:
    """Never show the build machine's staging folder: paths in it read as report-relative."""
    for root in {str(staging.resolve()), str(staging)}:
        text = text.replace(root + "/", "").replace(root, ".")
    return text


_SAVE_FIGURE = re.compile(r"save_figure\(\s*\w+\s*,\s*[\"']([A-Za-z0-9_.-]+)[\"']")


def _for_page(nb, figures: Mapping[str, dict]):
    """The notebook as the page shows it, and the alt text of its figures in order.

    Alt text on every figure, the code one click away.

    An image gets the alt text its ``save_figure`` call recorded (else the section's
    heading); each code cell's source is put in a closed ``<details>`` before its outputs
    (the page hides the input cells themselves).
    """
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    alts_shown: list[str] = []
    heading = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heads = [
                ln.lstrip("#").strip() for ln in cell.source.splitlines() if ln.startswith("#")
            ]
            heading = heads[-1] if heads else heading
            continue
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if tags & {"parameters", "injected-parameters"}:  # paths of the build machine
            continue
        cell.outputs = [o for o in cell.get("outputs", []) if not _path_repr(o)]
        names = _SAVE_FIGURE.findall(cell.source)
        alts = [figures[n]["alt"] for n in names if n in figures and figures[n].get("alt")]
        for output in cell.get("outputs", []):
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            for mime in [m for m in output.get("data", {}) if m.startswith("image/")]:
                meta = output.setdefault("metadata", {}).setdefault(mime, {})
                if not meta.get("alt"):
                    meta["alt"] = alts.pop(0) if alts else f"Figure: {heading or 'analysis'}"
                if mime in ("image/png", "image/jpeg"):
                    alts_shown.append(meta["alt"])
        code = html.escape(cell.source)
        toggle = nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": '<details class="alliance-code"><summary>Code</summary>'
                f'<pre style="font-size: .8em; overflow-x: auto;"><code>{code}</code></pre>'
                "</details>"
            },
        )
        cell.outputs = [toggle, *cell.get("outputs", [])]
    return nb, alts_shown


_PATH_REPR = re.compile(r"^\[?(Posix|Windows)?Path\(")


def _path_repr(output) -> bool:
    """An output that only shows a path object (a ``save_table(...)`` left as last line)."""
    if output.get("output_type") != "execute_result":
        return False
    data = output.get("data", {})
    return set(data) == {"text/plain"} and bool(_PATH_REPR.match(str(data["text/plain"])))


#: What nbconvert's lab template writes on an image it has no alt text for.
_NO_ALT = 'alt="No description has been provided for this image"'


def _with_alt_text(body: str, alts: list[str]) -> str:
    """Put each figure's alt text on its ``<img>`` (the lab template drops it), in order."""
    for alt in alts:
        if _NO_ALT not in body:
            break
        body = body.replace(_NO_ALT, f'alt="{html.escape(alt)}"', 1)
    return body


def _report_tables(folder: Path, study=None) -> list[tuple[dict, object]]:
    """Every saved table as an :class:`~alliance.tables.ApaTable`, numbered in saving order."""
    import pandas as pd

    from alliance.tables import ApaTable, codebook_labels

    labels = codebook_labels(study)
    out = []
    entries = sorted(_saved(folder, "tables"), key=lambda e: e.get("seq", 0))
    for number, entry in enumerate(entries, start=1):
        path = folder / "tables" / entry["file"]
        if entry.get("apa"):
            body = pd.read_csv(path, dtype=str, keep_default_na=False)
            table = ApaTable(
                body,
                title=entry.get("title", ""),
                number=number,
                note=entry.get("note", ""),
                sections=tuple(tuple(s) for s in entry.get("sections", [])),
            )
        else:  # as text: the cells as saved (formatted estimates stay as they are)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            table = ApaTable.from_frame(
                frame,
                title=entry.get("title", ""),
                number=number,
                note=entry.get("note", ""),
                labels=labels,
            )
        out.append((entry, table))
    return out


def _word(folder: Path, pages: list[tuple[str, str]], prov: dict, study=None) -> Path:
    """``report.docx``: the saved tables and figures in report order, numbered, with captions."""
    import docx
    from docx.shared import Inches

    tables = _report_tables(folder, study)
    figures = sorted(_saved(folder, "figures"), key=lambda e: e.get("seq", 0))
    items = [(e.get("seq", 0), "table", (e, t)) for e, t in tables]
    items += [(e.get("seq", 0), "figure", (n, e)) for n, e in enumerate(figures, start=1)]
    items.sort(key=lambda item: item[0])
    document = docx.Document()
    document.core_properties.title = f"alliance report: {Path(prov['data']).name}"
    document.core_properties.author = "alliance"
    document.add_heading(f"alliance report: {Path(prov['data']).name}", level=0)
    code = prov.get("code") or {}
    made = f"Made with alliance {prov['packages'].get('alliance') or 'unknown'}"
    if code.get("commit"):
        made += f" (commit {code['commit'][:12]}{'' if code.get('clean') else ', modified'})"
    document.add_paragraph(
        f"{made} on {prov['created']} (seed {prov['seed']}). Analyses: "
        + "; ".join(title for _, title in pages)
        + "."
    )
    for _, kind, payload in items:
        if kind == "table":
            _, table = payload
            table.to_docx(document)
            document.add_paragraph()
            continue
        number, entry = payload
        head = document.add_paragraph()
        head.add_run(f"Figure {number}").bold = True
        head.paragraph_format.keep_with_next = True
        title = document.add_paragraph()
        title.add_run(entry.get("caption", "")).italic = True
        title.paragraph_format.keep_with_next = True
        document.add_picture(str(folder / "figures" / entry["file"]), width=Inches(6))
        shape = document.inline_shapes[-1]._inline.docPr
        shape.set("descr", entry.get("alt", ""))
        shape.set("title", f"Figure {number}")
    if not items:
        document.add_paragraph("No tables or figures were saved by the notebooks.")
    path = folder / "report.docx"
    document.save(str(path))
    _normalize_docx(path)
    return path


def _normalize_docx(path: Path) -> None:
    """Rewrite a .docx with fixed zip timestamps, so a rerun gives the same bytes."""
    import zipfile

    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info.filename)) for info in src.infolist()]
    tmp = path.with_suffix(".docx.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>", b"", data)
            dst.writestr(fixed, data)
    os.replace(tmp, path)


def docx_text(path: Path) -> str:
    """A Word file's text as simple HTML (paragraphs, tables), for the identifier check.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from alliance.report import docx_text
    >>> from alliance.tables import ApaTable
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ApaTable(pd.DataFrame({"client": ["C07"]}), title="T").to_docx(tmp + "/t.docx")
    ...     "<th>client</th>" in docx_text(path)
    True
    """
    import docx

    document = docx.Document(str(path))
    esc = html.escape
    parts = [f"<p>{esc(p.text)}</p>" for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        rows = [[c.text for c in row.cells] for row in table.rows]
        if not rows:
            continue
        head = "".join(f"<th>{esc(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows[1:]
        )
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    for shape in document.inline_shapes:
        parts.append(f"<figcaption>{esc(shape._inline.docPr.get('descr') or '')}</figcaption>")
    return "\n".join(parts)


def _latex(folder: Path, study=None) -> list[Path]:
    """``latex/<name>.tex`` for every saved table, and ``latex/tables.tex`` that inputs them."""
    target = folder / "latex"
    target.mkdir(exist_ok=True)
    written = []
    for entry, table in _report_tables(folder, study):
        path = target / (Path(entry["file"]).stem + ".tex")
        path.write_text(table.to_latex(), encoding="utf-8")
        written.append(path)
    inputs = "\n".join(rf"\input{{{p.name}}}" for p in written) or "No tables were saved."
    main = target / "tables.tex"
    main.write_text(
        "% The report's tables; compile with pdflatex tables.tex\n"
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\usepackage[margin=2cm,landscape]{geometry}\n"
        "\\begin{document}\n" + inputs + "\n\\end{document}\n",
        encoding="utf-8",
    )
    return [*written, main]


def _refuse_leaks(name: str, text: str, kind: str, forbidden, out) -> None:
    from alliance.privacy import find_identifiers

    leaks = find_identifiers(text, forbidden, kind=kind)
    if leaks:
        raise PrivacyError(
            f"{name} shows {len(leaks)} identifier(s) or date(s) of the study (e.g. "
            f"{sorted(leaks)[:3]}); change the notebook to show summaries only, or use "
            f"--pseudonymize. Nothing was written to {out}."
        )


def _advice(study, pseudonymized: bool) -> list[str]:
    """Advice for the report: short or numeric client ids cannot be found everywhere."""
    from alliance.privacy import identifier_values

    ids = identifier_values(study, therapists=False, dates=False)
    if pseudonymized or not ids.short:
        return []
    example = sorted(ids.short, key=lambda v: (len(v), v))[0]
    return [
        f"Client identifiers of this study are short or numeric (e.g. {example!r}); they "
        "were looked for only where an identifier can stand (table columns, labels, "
        "legends, headings). Build reports you share with --pseudonymize."
    ]


def _pseudonymized_copy(study, folder: Path, salt: str) -> Path:
    """Write the study with client and therapist identifiers replaced by pseudonyms."""
    from alliance.io import write_study
    from alliance.privacy import pseudonymize
    from alliance.study import Study

    tables = {}
    for name in ("sessions", "clients", "events", "therapists", "segments", "coders"):
        if getattr(study, name, None) is None:
            continue
        frame = getattr(study, name).copy()
        for col, prefix in (("client", "P"), ("therapist", "H")):
            if col in frame.columns:
                frame[col] = pseudonymize(frame[col], salt, prefix=prefix)
        tables[name] = frame
    return write_study(Study(**tables, codebook=study.codebook), folder, fmt="parquet")


def _title(nb, book: Path) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return book.stem[3:].replace("_", " ").capitalize()


def _index(pages: list[tuple[str, str]], prov: dict, folder: Path) -> str:
    esc = html.escape
    items = "\n".join(f'<li><a href="{esc(p)}">{esc(t)}</a></li>' for p, t in pages)
    skipped = "".join(
        f"<li>{esc(s['notebook'])}: not run, {esc(s['reason'])}</li>"
        for s in prov.get("skipped", [])
    )
    if skipped:
        items += (
            '</ul><p>Analyses that do not apply to these data:</p><ul class="skip">'
            f'{skipped}</ul><ul class="pages">'
        )

    figures = sorted(_saved(folder, "figures"), key=lambda e: e.get("seq", 0))
    known = {e["file"] for e in figures}
    figures += [
        {"file": f.name, "caption": f.stem.replace("_", " ").capitalize(), "alt": ""}
        for f in sorted((folder / "figures").glob("*.png"))
        if f.name not in known
    ]
    gallery = "\n".join(
        f'<figure><a href="figures/{esc(e["file"])}"><img src="figures/{esc(e["file"])}" '
        f'alt="{esc(e.get("alt") or e["caption"])}"></a><figcaption><strong>Figure {n}.</strong> '
        f"{esc(e['caption'])} "
        f'(<a href="figures/{esc(Path(e["file"]).with_suffix(".svg").name)}">SVG</a>)'
        "</figcaption></figure>"
        for n, e in enumerate(figures, start=1)
        if (folder / "figures" / e["file"]).is_file()
    )
    saved_tables = {
        e["file"]: (n, e)
        for n, e in enumerate(
            sorted(_saved(folder, "tables"), key=lambda e: e.get("seq", 0)), start=1
        )
    }
    latex = (folder / "latex").is_dir()

    def table_item(t: Path) -> str:
        number, entry = saved_tables.get(t.name, (None, {}))
        label = f"Table {number}. {entry.get('title', '')}" if number else t.name
        tex = f' (<a href="latex/{esc(t.stem)}.tex">LaTeX</a>)' if latex else ""
        return f'<li>{esc(label)}: <a href="tables/{esc(t.name)}">CSV</a>{tex}</li>'

    tables = "\n".join(
        table_item(t)
        for t in sorted(
            (folder / "tables").glob("*.csv"),
            key=lambda t: (saved_tables.get(t.name, (10**6, {}))[0], t.name),
        )
    )
    downloads = []
    if (folder / "report.docx").is_file():
        downloads.append(
            '<li><a href="report.docx">report.docx</a>: every table and figure, numbered, '
            "with captions (Word, LibreOffice)</li>"
        )
    if latex:
        downloads.append(
            '<li><a href="latex/tables.tex">latex/tables.tex</a>: the tables as booktabs '
            "LaTeX (one file per table in <code>latex/</code>)</li>"
        )
    downloads_html = "<h2>Downloads</h2><ul>" + "".join(downloads) + "</ul>" if downloads else ""
    code = prov.get("code") or {}
    if code.get("commit"):
        state = "clean tree" if code.get("clean") else "tree with uncommitted changes"
        code_row = f"commit <code>{esc(code['commit'])}</code> ({state})"
    else:
        code_row = "not run from a git checkout"
    lock = esc(str(prov.get("lock_sha256") or "not found"))
    inputs = "\n".join(
        f"<tr><td>{esc(i['file'])}</td><td><code>{i['sha256']}</code></td></tr>"
        for i in prov["inputs"]
    )
    packages = ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v)
    pseudo = (
        "<p><strong>Client and therapist identifiers were pseudonymized.</strong></p>"
        if prov.get("pseudonymized")
        else ""
    )
    pseudo += "".join(f'<p class="advice">{esc(a)}</p>' for a in prov.get("advice", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>alliance report: {esc(Path(prov["data"]).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.5; }}
h1 {{ font-size: 1.7rem; margin-bottom: .2rem; }} h2 {{ margin-top: 2rem; }}
td {{ padding: .2rem .6rem; vertical-align: top; }}
ul.pages {{ list-style: none; padding-left: 1rem; }}
code {{ font-size: .8rem; word-break: break-all; }}
.prov {{ background: #f6f6f6; padding: .5rem 1rem 1rem; border-radius: .4rem;
        font-size: .9rem; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr));
           gap: 1rem; }}
figure {{ margin: 0; }} figure img {{ width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-size: .85rem; color: #555; }}
</style></head>
<body>
<h1>alliance report</h1>
<p>Data: <strong>{esc(Path(prov["data"]).name)}</strong>. Each page was produced by
re-executing the project's notebooks on these data; the command below reproduces the
numbers. Client identifiers are never shown, and table cells describing fewer than five
clients are suppressed.</p>
{pseudo}
<h2>Analyses</h2>
<ul class="pages">
{items}
</ul>
<h2>Figures</h2>
<div class="gallery">
{gallery or "<p>No figures were exported.</p>"}
</div>
<h2>Tables</h2>
<ul>
{tables or "<li>No tables were exported.</li>"}
</ul>
{downloads_html}
<div class="prov"><h2>Provenance</h2>
<table>
<tr><td>Command</td><td><code>{esc(_short_paths(prov["command"]))}</code></td></tr>
<tr><td>Code</td><td>alliance {esc(str(prov["packages"].get("alliance")))}, {code_row}</td></tr>
<tr><td>requirements.lock</td><td><code>{lock}</code> (SHA-256)</td></tr>
<tr><td>Created (UTC)</td><td>{prov["created"]}</td></tr>
<tr><td>Seed</td><td>{prov["seed"]}</td></tr>
<tr><td>Python</td><td>{prov["python"]} on {esc(prov["platform"])}</td></tr>
<tr><td>Packages</td><td>{esc(packages)}</td></tr>
</table>
<h3>Input files (SHA-256)</h3>
<table>{inputs}</table></div>
</body></html>
"""


def _short_paths(command: str) -> str:
    """A command line with absolute paths shortened to their last part (``.../demo``)."""
    return re.sub(r"(?<![\w.])/(?:[^\s/]+/)+([^\s/]+)", r".../\1", command)


def refresh_notebooks(folder: Path | None = None) -> list[Path]:
    """Re-execute the committed notebooks in place with their default parameters.

    Each notebook's text is first taken from its jupytext twin (``NN_name.py``) when that
    is newer, keeping cell ids so diffs stay small. Outputs are stored in the notebooks
    (that is what nbval checks). Used by ``make notebooks``.
    """
    import jupytext
    import nbformat
    import papermill as pm
    from jupytext.combine import combine_inputs_with_outputs

    books = list_notebooks(folder)
    for book in books:
        paired = book.with_suffix(".py")
        if paired.exists() and paired.stat().st_mtime > book.stat().st_mtime:
            merged = combine_inputs_with_outputs(
                jupytext.read(paired), nbformat.read(book, as_version=4)
            )
            nbformat.write(merged, book)
        with inline_figures():
            pm.execute_notebook(
                str(book),
                str(book),
                progress_bar=False,
                cwd=str(book.parent),
                kernel_name="python3",
            )
        _strip_volatile(book)
    return books


def requirements(nb, study, scores: dict) -> list[str]:
    """What a notebook needs that the study lacks (empty when it can run).

    A notebook declares its needs in its metadata (the jupytext header of its ``.py``
    twin): ``alliance: {requires: [...], columns: [...]}``, where a requirement is
    ``alliance`` or ``outcome`` (a score), ``alliance_items`` or ``outcome_items`` (all items
    of that score's questionnaire), a role of :func:`alliance.resolve_design` (such as
    ``therapist``, ``site`` or ``alliance_therapist``, the therapist-rated alliance) or a
    column.
    """
    from alliance.design import ROLES, resolve_design

    spec = nb.metadata.get("alliance", {})
    columns = set(study.sessions.columns) | set(study.clients.columns)
    missing = []
    design = None
    for role in spec.get("requires", []):
        if role in ("alliance_items", "outcome_items"):
            name = scores.get("alliance_instrument" if role == "alliance_items" else "instrument")
            items = _instruments.get(name).items if name else []
            if not items or not set(items) <= columns:
                which = role.split("_")[0]
                missing.append(f"the {which} questionnaire's items")
        elif role in ("alliance", "outcome"):
            if not scores.get(role):
                missing.append(f"an {role} score" if role == "alliance" else "an outcome score")
        elif role in ROLES:
            if design is None:
                design = resolve_design(study)
            if not design.has(role):
                missing.append(ROLES[role][1])
        elif role not in columns:
            missing.append(f"a {role} column")
    missing += [f"the column {c!r}" for c in spec.get("columns", []) if c not in columns]
    return missing


#: What a section's ``needs:`` tag may name besides a role or column.
SECTION_NEEDS = {
    "truth": "the simulated truth (only simulated data such as the demo have one)",
    "bundled": "the package's bundled data (it is an example on them)",
    "events": "rupture events (an events table)",
}


def skip_sections(nb, study, *, bundled: bool = False):
    """Drop the sections of a notebook that the study cannot support.

    A cell tagged ``needs:NAME`` (several tags may be given) runs only when the study
    has what NAME says: a role of :func:`alliance.resolve_design` (``therapist``,
    ``prior_negative_therapy``, ``phase``, ...) or a column of the sessions or clients
    table, ``truth`` (a simulated study), ``bundled`` (one of the bundled datasets) or
    ``events`` (rupture events). Each run of dropped cells is replaced by one note
    naming what is missing, so the page says what was skipped and why.

    Returns
    -------
    (notebook, list of (section title, reason))
        A copy of the notebook, and the sections dropped.

    Examples
    --------
    >>> import nbformat, alliance
    >>> from alliance.report import skip_sections
    >>> nb = nbformat.v4.new_notebook(cells=[
    ...     nbformat.v4.new_markdown_cell("## Truth", metadata={"tags": ["needs:truth"]}),
    ...     nbformat.v4.new_code_cell("1", metadata={"tags": ["needs:truth"]})])
    >>> out, dropped = skip_sections(nb, alliance.datasets.load_dataset("btheb"))
    >>> dropped
    [('Truth', 'needs the simulated truth (only simulated data such as the demo have one)')]
    """
    import copy

    import nbformat

    from alliance.design import ROLES, resolve_design

    design = resolve_design(study)
    columns = set(study.sessions.columns) | set(study.clients.columns)

    def lacking(need: str) -> str | None:
        if need == "truth":
            return None if study.truth else SECTION_NEEDS[need]
        if need == "bundled":
            return None if bundled else SECTION_NEEDS[need]
        if need == "events":
            return None if len(study.events) else SECTION_NEEDS[need]
        if need in ROLES:
            return None if design.has(need) else f"{ROLES[need][1]} (a {need} column)"
        return None if need in columns else f"the column {need!r}"

    out = copy.deepcopy(nb)
    cells, dropped = [], []
    previous: str | None = None
    for cell in out.cells:
        needs = [t[6:] for t in cell.metadata.get("tags", []) if t.startswith("needs:")]
        missing = [m for m in (lacking(n) for n in needs) if m]
        if not missing:
            cells.append(cell)
            previous = None
            continue
        reason = "needs " + ", ".join(missing)
        if previous != reason:
            title = "a section"
            if cell.cell_type == "markdown":
                heads = [ln for ln in cell.source.splitlines() if ln.startswith("#")]
                title = heads[0].lstrip("# ").strip() if heads else title
            dropped.append((title, reason))
            note = f"*{title}: skipped, because it {reason}.*"
            cells.append(nbformat.v4.new_markdown_cell(note))
            previous = reason
    out.cells = cells
    return out, dropped


def _strip_volatile(book: Path) -> None:
    """Drop timing metadata and merge split streams: a rerun leaves no diff if nothing changed."""
    import nbformat
    from nbconvert.preprocessors.coalescestreams import CoalesceStreamsPreprocessor

    nb = nbformat.read(book, as_version=4)
    merge = CoalesceStreamsPreprocessor()
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            merge.preprocess_cell(cell, {}, 0)  # one print, one output block, run after run
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
    _list_in_manifest(folder, shots)
    return shots


def _list_in_manifest(folder: Path, paths: list[Path]) -> None:
    """Add files written into a report folder to its manifest, so a new report replaces them."""
    from alliance._outdir import MANIFEST, read_manifest

    manifest = read_manifest(folder)
    if manifest is None:
        return
    for path in paths:
        try:
            rel = path.resolve().relative_to(folder.resolve())
        except ValueError:
            continue
        for parent in list(rel.parents)[:-1]:
            if parent.as_posix() not in manifest["dirs"]:
                manifest["dirs"].append(parent.as_posix())
        if rel.as_posix() not in manifest["files"]:
            manifest["files"].append(rel.as_posix())
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


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
