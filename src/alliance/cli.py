"""The ``alliance`` command line.

Exit codes: 0 success; 1 the data are invalid or an analysis failed; 2 a usage error
(unknown option, missing file).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="alliance",
    help="Research toolkit for the therapeutic alliance: validate, score, analyse, report.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from alliance import __version__

        out.print(f"alliance {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what is being done."),
) -> None:
    """Research toolkit for the therapeutic alliance.

    Start with `alliance datasets` to see the bundled data, `alliance validate FILE` to
    check your own, and `alliance report --data demo` to build a report.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


def _dialect_options():
    sep = typer.Option(None, "--sep", help="CSV separator: ',' ';' '|' or 'tab' (detected).")
    dec = typer.Option(None, "--decimal", help="Decimal mark of a CSV: '.' or ',' (detected).")
    enc = typer.Option(
        None, "--encoding", help="Text encoding of a CSV, e.g. utf-8, cp1252 (detected)."
    )
    return sep, dec, enc


_SEP, _DECIMAL, _ENCODING = _dialect_options()


def _dialect(sep: str | None, decimal: str | None, encoding: str | None) -> dict:
    if sep is not None and sep.lower() in ("tab", "\\t"):
        sep = "\t"
    return {"sep": sep, "decimal": decimal, "encoding": encoding}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().strip('"') or type(error).__name__
    return text


def _parse_columns(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        if "=" not in pair:
            err.print(f"--column expects OLD=NEW (e.g. ClientID=client), got {pair!r}")
            raise typer.Exit(2)
        old, new = pair.split("=", 1)
        mapping[old.strip()] = new.strip()
    return mapping


@app.command()
def datasets() -> None:
    """List the bundled datasets (name, size, source, licence)."""
    from alliance.datasets import list_datasets

    table = Table(title="Bundled datasets (alliance.datasets.load_dataset(name))")
    frame = list_datasets()
    for col in ("name", "n_clients", "n_sessions", "description", "licence"):
        table.add_column(col, overflow="fold")
    for row in frame.itertuples():
        table.add_row(
            row.name, str(row.n_clients), str(row.n_sessions), row.description, row.licence
        )
    out.print(table)


@app.command()
def validate(
    files: list[Path] = typer.Argument(
        ...,
        help="A sessions file (csv, tsv, xlsx, parquet, sav, dta), a study folder, or the "
        "sessions/clients/events files of one study.",
    ),
    column: list[str] = typer.Option(
        [], "--column", "-c", help="Rename a column on reading, OLD=NEW (repeatable)."
    ),
    allow_therapist_change: bool = typer.Option(
        False, "--allow-therapist-change", help="Accept clients who changed therapist."
    ),
    sep: str = _SEP,
    decimal: str = _DECIMAL,
    encoding: str = _ENCODING,
) -> None:
    """Check a study and list every problem at once.

    Exit 0 when valid, 1 when the data are invalid (the problems are listed), 2 when
    the input cannot be read (missing, not a table, ragged rows, duplicated names).
    """
    import alliance

    for path in files:
        if not path.exists():
            err.print(f"no such file or folder: {path}", markup=False, highlight=False)
            raise typer.Exit(2)
    columns = _parse_columns(column) or None
    try:
        study = alliance.read_study(
            [str(f) for f in files] if len(files) > 1 else files[0],
            columns=columns,
            **_dialect(sep, decimal, encoding),
        )
    except (ValueError, KeyError, OSError) as error:
        err.print(f"cannot read the study: {_one_line(error)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except Exception as error:  # never a traceback for the user
        err.print(f"cannot read the study: {_one_line(error)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    try:
        report = alliance.validate(study, allow_therapist_change=allow_therapist_change)
    except alliance.ValidationError as error:
        err.print(str(error), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except (ValueError, KeyError) as error:
        err.print(f"the study is invalid: {_one_line(error)}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    out.print(report.summary(), markup=False, highlight=False)


@app.command()
def init(
    files: list[Path] = typer.Argument(
        ...,
        help="Your data: one sessions file (csv, tsv, xlsx, sav, dta, parquet), a folder, "
        "or the sessions/clients/events files of one study, with optional therapists, "
        "segments (3RS codes) and coders tables (also named e.g. therapeuten, segmente, "
        "kodierer; their columns' roles are guessed and listed).",
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="A new folder for the study."),
    column: list[str] = typer.Option(
        [],
        "--column",
        "-c",
        help="Rename a column, OLD=NEW; NEW may be a role (client, therapist, site, session, "
        "date, phase, condition, prior_negative_therapy, termination) (repeatable).",
    ),
    wide: list[str] = typer.Option(
        [],
        "--wide",
        help="A measure spread over sessions in a one-row-per-client file, e.g. phq9 for "
        "phq9_s1 .. phq9_s12 (repeatable).",
    ),
    sheet: str = typer.Option("0", "--sheet", help="Excel sheet (name or 0-based number)."),
    early: int = typer.Option(3, "--early", help="Sessions in the early-alliance window."),
    sep: str = _SEP,
    decimal: str = _DECIMAL,
    encoding: str = _ENCODING,
) -> None:
    """Make a study folder from your own file(s): data, codebook and the roles guessed.

    Every guess is listed with where it came from; edit datapackage.json where one is
    wrong, then run `alliance validate STUDY` and `alliance report --data STUDY`. Input
    files are only read; --out must be a new or empty folder. Exit codes: 0 written,
    2 unreadable input, a role that cannot be found, or --out not empty.
    """
    import os

    from alliance.intake import init_study

    for path in files:
        if not path.exists():
            err.print(f"no such file or folder: {path}", markup=False, highlight=False)
            raise typer.Exit(2)
    try:
        result = init_study(
            [str(f) for f in files] if len(files) > 1 else files[0],
            out_dir,
            columns=_parse_columns(column) or None,
            wide=list(wide) or None,
            sheet=int(sheet) if sheet.isdigit() else sheet,
            early=early,
            **_dialect(sep, decimal, encoding),
        )
    except (typer.Exit, SystemExit):
        raise
    except Exception as error:  # never a traceback for the user
        if os.environ.get("ALLIANCE_DEBUG"):
            raise
        text = _one_line(error)
        text = text if "nothing was written" in text else f"nothing was written: {text}"
        err.print(text, markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(result.summary(), markup=False, highlight=False)


@app.command()
def score(
    sessions_file: Path = typer.Argument(
        ..., help="A sessions file (csv, xlsx, parquet, sav, dta)."
    ),
    instrument: list[str] = typer.Option(
        ..., "--instrument", "-i", help="Registry name, e.g. phq9 or wai_sr (repeatable)."
    ),
    out_file: Path = typer.Option(
        ..., "--out", "-o", help="Where to write the scored table (any readable format)."
    ),
    prorate: int = typer.Option(
        None,
        help="Most missing items a score may be prorated over (default: the instrument's "
        "published rule).",
    ),
    column: list[str] = typer.Option(
        [], "--column", "-c", help="Rename a column on reading, OLD=NEW (repeatable)."
    ),
    sep: str = _SEP,
    decimal: str = _DECIMAL,
    encoding: str = _ENCODING,
) -> None:
    """Score questionnaires: scale and subscale scores and a missing-item count per row.

    Items are read from the columns <instrument>_1 .. <instrument>_k. Rows with too many
    missing items keep a missing score and are counted; the input file is never changed.
    """
    import alliance
    from alliance.io import read_table, write_table

    if out_file.resolve() == sessions_file.resolve():
        err.print("--out must differ from the input: input files are never modified")
        raise typer.Exit(2)
    if not sessions_file.exists():
        err.print(f"no such file: {sessions_file}", markup=False)
        raise typer.Exit(2)
    try:
        data = read_table(
            sessions_file,
            columns=_parse_columns(column) or None,
            **_dialect(sep, decimal, encoding),
        )
    except (ValueError, KeyError, OSError) as error:
        err.print(f"cannot read {sessions_file.name}: {_one_line(error)}", markup=False)
        raise typer.Exit(2) from None
    except Exception as error:  # never a traceback for the user
        err.print(f"cannot read {sessions_file.name}: {_one_line(error)}", markup=False)
        raise typer.Exit(2) from None
    try:
        for name in instrument:
            data = alliance.score(data, name, prorate=True if prorate is None else prorate)
            c = data.attrs.get("scoring", {})
            if c:
                out.print(
                    f"{name}: {c['n_scored']} of {c['n_rows']} rows scored, {c['n_prorated']} "
                    f"prorated, {c['n_over_limit']} over the missing-item limit "
                    f"({c['max_missing']}; score left missing)",
                    markup=False,
                    highlight=False,
                )
    except KeyError as error:
        err.print(str(error).strip('"'), markup=False, highlight=False)
        raise typer.Exit(2) from None
    except ValueError as error:
        err.print(str(error), markup=False, highlight=False)
        raise typer.Exit(1) from None
    write_table(data, out_file)
    out.print(f"wrote {len(data)} rows to {out_file}", markup=False, highlight=False)


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the study into."),
    therapists: int = typer.Option(
        None, help="Number of therapists (default 30; not with --clients)."
    ),
    clients_per_therapist: int = typer.Option(
        None, help="Clients per therapist (default 10, or 25 with --clients)."
    ),
    sessions: int = typer.Option(
        None, help="Planned sessions per client (default 16, or 20 with --clients)."
    ),
    sites: int = typer.Option(None, help="Number of sites (default 3, or 20 with --clients)."),
    seed: int = typer.Option(2026, help="Random seed: the same seed gives the same study."),
    fmt: str = typer.Option(
        "csv",
        "--format",
        help="csv, parquet, tsv, xlsx, sav or dta (parquet or csv with --clients).",
    ),
    clients: int = typer.Option(
        None,
        "--clients",
        help="Total number of clients: write a routine-outcome-monitoring-scale study in "
        "chunks of clients (memory stays bounded; e.g. --clients 500000 --format parquet).",
    ),
    chunk_clients: int = typer.Option(
        20_000, "--chunk-clients", help="With --clients: clients simulated at once."
    ),
) -> None:
    """Write a simulated study with known truth (sessions, clients, events, codebook).

    With --clients the study is written chunk by chunk with
    alliance.simulate.simulate_rom (reproducible for the same seed and --chunk-clients);
    without it, the whole study is made in memory by simulate_study and the simulated
    ruptures are written to truth_ruptures.csv.
    """
    from alliance.simulate import simulate_rom, simulate_study, write_simulation

    if clients is not None:
        if therapists is not None:
            err.print(
                "give either --clients (total clients) or --therapists, not both; with "
                "--clients the number of therapists is clients / --clients-per-therapist"
            )
            raise typer.Exit(2)
        try:
            folder = simulate_rom(
                clients,
                out_dir,
                n_sessions=20 if sessions is None else sessions,
                clients_per_therapist=25
                if clients_per_therapist is None
                else clients_per_therapist,
                n_sites=20 if sites is None else sites,
                seed=seed,
                chunk_clients=chunk_clients,
                fmt=fmt,
                progress=True,
            )
        except ValueError as error:
            err.print(str(error), markup=False)
            raise typer.Exit(2) from None
        out.print(
            f"wrote {clients} simulated clients to {folder} (sessions.{fmt}, clients.{fmt}, "
            f"events.{fmt}, datapackage.json)",
            markup=False,
            highlight=False,
        )
        return
    try:
        study = simulate_study(
            30 if therapists is None else therapists,
            10 if clients_per_therapist is None else clients_per_therapist,
            16 if sessions is None else sessions,
            n_sites=3 if sites is None else sites,
            seed=seed,
        )
        write_simulation(study, out_dir, fmt=fmt)
    except ValueError as error:
        err.print(str(error), markup=False)
        raise typer.Exit(2) from None
    out.print(f"wrote {study} to {out_dir}", markup=False, highlight=False)


@app.command()
def report(
    data: str = typer.Option("demo", "--data", "-d", help="A bundled dataset or a path."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Report folder (reports/<name>)."),
    alliance_col: str = typer.Option(None, "--alliance", help="The alliance score column."),
    outcome: str = typer.Option(None, "--outcome", help="The outcome score column."),
    instrument: str = typer.Option(None, "--instrument", help="The outcome instrument."),
    seed: int = typer.Option(2026, help="Seed passed to every notebook."),
    pseudonymize: bool = typer.Option(
        False,
        "--pseudonymize",
        help="Replace client and therapist identifiers by salted pseudonyms; the salt is "
        "read from --salt-file or the ALLIANCE_SALT environment variable and never stored.",
    ),
    salt_file: Path = typer.Option(None, "--salt-file", help="A file holding the salt."),
    show_therapists: bool = typer.Option(
        False, "--show-therapists", help="Allow therapist identifiers and dates in the report."
    ),
    column: list[str] = typer.Option(
        [],
        "--column",
        "-c",
        help="Rename a column of your data, OLD=NEW, e.g. ClientID=client (repeatable).",
    ),
    wide: list[str] = typer.Option(
        [], "--wide", help="A measure spread over sessions, e.g. phq9 for phq9_s1.. (repeatable)."
    ),
    notebook: list[str] = typer.Option(
        [],
        "--notebook",
        "-n",
        help="Run only these notebooks, by number or name, e.g. 01 or 03_ruptures "
        "(repeatable; default: all).",
    ),
    formats: str = typer.Option(
        "html",
        "--format",
        "-f",
        help="Output formats, comma-separated: html (the pages, always written), docx "
        "(report.docx with the numbered tables and figures) and latex (latex/*.tex booktabs "
        "tables), e.g. html,docx,latex.",
    ),
    jobs: int = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Notebooks run at once (default 2, or ALLIANCE_REPORT_JOBS); the report is the "
        "same for any number.",
    ),
    sep: str = _SEP,
    decimal: str = _DECIMAL,
    encoding: str = _ENCODING,
) -> None:
    """Run the analysis notebooks on a study and render an HTML report with provenance.

    Client identifiers never appear in the report; therapist identifiers and session
    dates are masked too unless --show-therapists. The report is written only when every
    notebook ran, so a failure leaves no half-written report. --out must be a new or
    empty folder or a previous report (only the files it wrote are replaced), and never
    the data folder. Exit codes: 0 done, 1 invalid data or a failed notebook, 2 usage
    error or unreadable input. ALLIANCE_DEBUG=1 shows tracebacks.
    """
    import os

    try:
        _report(
            data,
            out_dir,
            alliance_col,
            outcome,
            instrument,
            seed,
            pseudonymize,
            salt_file,
            show_therapists,
            _dialect(sep, decimal, encoding),
            _parse_columns(column) or None,
            list(wide) or None,
            list(notebook) or None,
            formats,
            jobs,
        )
    except (typer.Exit, SystemExit):
        raise
    except BaseException as error:
        if os.environ.get("ALLIANCE_DEBUG"):
            raise
        code, message = _report_error(error)
        err.print(message, markup=False, highlight=False)
        raise typer.Exit(code) from None


def _report_error(error: BaseException) -> tuple[int, str]:
    """Exit code and message for an error of `alliance report` (no traceback)."""
    from alliance.report import NotebookFailed, OutputRefused, PrivacyError, UnreadableData
    from alliance.schema import ValidationError

    def line(e: BaseException) -> str:
        text = str(e).strip().strip('"')
        return (text.splitlines() or [type(e).__name__])[0]

    if isinstance(error, KeyboardInterrupt):
        return 130, "stopped; nothing was written to the report folder"
    if isinstance(error, ValidationError):
        return 1, str(error)
    if isinstance(error, NotebookFailed | PrivacyError):
        return 1, line(error)
    if isinstance(error, OutputRefused | UnreadableData | FileNotFoundError):
        return 2, line(error)
    if isinstance(error, KeyError | ValueError):
        return 2, line(error)
    if isinstance(error, OSError):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return 2, f"cannot read or write a file{where}: {error.strerror or error}"
    return 1, (
        f"the report failed with {type(error).__name__}: {line(error)}. Nothing was "
        "written; rerun with ALLIANCE_DEBUG=1 to see where"
    )


def _report(
    data,
    out_dir,
    alliance_col,
    outcome,
    instrument,
    seed,
    pseudonymize,
    salt_file,
    show_therapists,
    dialect,
    columns=None,
    wide=None,
    notebook=None,
    formats="html",
    jobs=None,
) -> None:
    import os
    import signal

    from alliance.report import build_report, parse_formats

    try:
        chosen = parse_formats(formats)
    except ValueError as error:
        err.print(f"--format: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from None

    salt = None
    if pseudonymize:
        if salt_file is not None:
            if not salt_file.is_file():
                err.print(
                    f"--salt-file {salt_file}: no such file; write the secret salt into a "
                    "file and pass its path (or set ALLIANCE_SALT)",
                    markup=False,
                )
                raise typer.Exit(2)
            try:
                salt = salt_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                err.print(f"--salt-file {salt_file} cannot be read: {error}", markup=False)
                raise typer.Exit(2) from None
        else:
            salt = os.environ.get("ALLIANCE_SALT", "")
        if not salt:
            err.print(
                "--pseudonymize needs a secret salt: put it in a file and pass --salt-file "
                "FILE, or set the ALLIANCE_SALT environment variable"
            )
            raise typer.Exit(2)

    name = data if not Path(data).exists() else Path(data).stem
    target = out_dir or Path("reports") / name

    def stop(signum, frame):  # SIGTERM: clean up the staging folder as Ctrl-C does
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        previous = None
    try:
        result = build_report(
            data,
            target,
            alliance=alliance_col,
            outcome=outcome,
            instrument=instrument,
            seed=seed,
            command=" ".join(["alliance", *sys.argv[1:]]),
            progress=True,
            salt=salt,
            show_therapists=show_therapists,
            columns=columns,
            wide=wide,
            dialect=dialect,
            notebooks=_chosen_notebooks(notebook),
            formats=chosen,
            jobs=jobs,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for note in result.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    prov = result.provenance
    ran = len(result.pages)
    extra = []
    if (result.folder / "report.docx").is_file():
        extra.append("report.docx")
    latex = sorted((result.folder / "latex").glob("*.tex")) if "latex" in chosen else []
    if latex:
        extra.append(f"{len(latex) - 1} LaTeX table(s)")
    skipped = len(prov.get("skipped", []))
    out.print(
        f"report written: {result.index} ({ran} page(s)"
        + (f", {skipped} section(s) skipped" if skipped else "")
        + (", " + ", ".join(extra) if extra else "")
        + f"; {prov.get('seconds', 0):.0f} s)",
        markup=False,
        highlight=False,
    )


def _chosen_notebooks(names: list[str] | None) -> list[Path] | None:
    """The notebooks ``--notebook`` names (by number or name prefix); exit 2 if unknown."""
    if not names:
        return None
    from alliance.report import list_notebooks

    books = list_notebooks()
    chosen = []
    for name in names:
        hits = [b for b in books if b.stem.startswith(name.removesuffix(".ipynb"))]
        if not hits:
            err.print(
                f"--notebook {name}: no such notebook; choose among "
                + ", ".join(b.stem for b in books),
                markup=False,
            )
            raise typer.Exit(2)
        chosen += [b for b in hits if b not in chosen]
    return chosen


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        err.print(f"{option} expects whole numbers separated by commas, e.g. 10,20,40")
        raise typer.Exit(2) from None
    if not values or min(values) < 1:
        err.print(f"{option} expects whole numbers of at least 1, e.g. 10,20,40")
        raise typer.Exit(2)
    return values


@app.command()
def power(
    therapists: str = typer.Option("10,20", help="Numbers of therapists, comma-separated."),
    clients_per_therapist: str = typer.Option("5,10", help="Clients per therapist, e.g. 5,10."),
    sessions: str = typer.Option("12", help="Planned sessions per client, e.g. 8,12."),
    model: str = typer.Option(
        "within",
        help="A registered model power can simulate, by name or alias (within, reverse, "
        "prior_negative_therapy, dropout_model, ...); --list shows them all.",
    ),
    list_models: bool = typer.Option(
        False, "--list", help="List the registered models power can simulate, and stop."
    ),
    effect: list[str] = typer.Option(
        [], "--effect", "-e", help="A generating value, NAME=VALUE (repeatable), e.g. within=-1."
    ),
    sims: int = typer.Option(100, help="Simulations per design."),
    seed: int = typer.Option(2026, help="Seed: the same seed gives the same power."),
    jobs: int = typer.Option(-1, help="Local processes (-1: all cores)."),
    dask: str = typer.Option(None, help="Address of a Dask scheduler to run on instead."),
    save_dir: Path = typer.Option(
        None, help="Folder for finished simulations; rerun with it to resume."
    ),
    out_file: Path = typer.Option(None, "--out", "-o", help="Write the power table (CSV)."),
    nested: bool = typer.Option(
        False,
        "--nested",
        help="Simulate the largest design once per draw and fit the smaller ones on its "
        "first therapists, clients and sessions (faster, smoother curves).",
    ),
) -> None:
    """Power to detect an alliance effect, by simulation over a grid of designs.

    Example: alliance power --therapists 10,20 --clients-per-therapist 5,10 --sessions 12
    --model within --effect within=-1.5 --sims 200 --save-dir power_runs
    """
    import itertools

    import pandas as pd

    from alliance.power import power_models, simulate_power

    if list_models:
        table = power_models()[["name", "aliases", "effects", "focal_term", "estimates"]]
        with pd.option_context("display.max_colwidth", 70, "display.width", 200):
            out.print(table.to_string(index=False), markup=False, highlight=False, soft_wrap=True)
        return
    grid = pd.DataFrame(
        list(
            itertools.product(
                _int_list(therapists, "--therapists"),
                _int_list(clients_per_therapist, "--clients-per-therapist"),
                _int_list(sessions, "--sessions"),
            )
        ),
        columns=["n_therapists", "clients_per_therapist", "n_sessions"],
    )
    effects = {}
    for pair in effect:
        name, _, value = pair.partition("=")
        try:
            effects[name.strip()] = float(value)
        except ValueError:
            err.print(f"--effect expects NAME=NUMBER (e.g. within=-1.5), got {pair!r}")
            raise typer.Exit(2) from None
    try:
        table = simulate_power(
            grid,
            effects,
            model,
            n_sims=sims,
            seed=seed,
            n_jobs=jobs,
            backend="dask" if dask else "loky",
            nested=nested,
            address=dask,
            save_dir=save_dir,
            progress=True,
        )
    except (KeyError, ValueError) as error:
        err.print(str(error).strip('"'), markup=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("stopped; finished simulations are kept in --save-dir (if given)")
        raise typer.Exit(130) from None
    if out_file is not None:
        table.to_csv(out_file, index=False)
    shown = table[
        [
            "n_therapists",
            "clients_per_therapist",
            "n_sessions",
            "n_sims",
            "n_failed",
            "power",
            "power_ci_low",
            "power_ci_high",
            "bias",
            "coverage",
        ]
    ]
    out.print(shown.round(3).to_string(index=False), markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``alliance`` script."""
    app()


if __name__ == "__main__":
    main()
