"""The README's main command, `make report`, builds pages with every figure.

The Makefile exports ``MPLBACKEND=Agg`` for its own processes; the notebook kernels must
still capture their figures. This test runs the Makefile target itself, in a subprocess
with the parent's environment (``-o .venv/.installed``: the environment is installed),
and compares the figures on each page with those of the committed notebook, which was
executed on the same demo data.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from alliance.report import build_report, list_notebooks

ROOT = Path(__file__).resolve().parents[1]


def _committed_figures(book: Path) -> int:
    nb = json.loads(book.read_text(encoding="utf-8"))
    return sum(
        1
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The demo report as `make report` builds it (once for every check in this file)."""
    out = tmp_path_factory.mktemp("made") / "demo"
    env = dict(os.environ, MPLBACKEND="Agg")  # what a headless shell or CI may set
    run = subprocess.run(
        ["make", "-o", ".venv/.installed", "report", f"REPORT_OUT={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return out, run


def test_make_report_pages_have_every_figure(made):
    out, run = made
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    skipped = json.loads((out / "provenance.json").read_text())["skipped"]
    whole = {s["notebook"].split(":")[0] for s in skipped if s["reason"].startswith("needs")}
    checked = 0
    for book in books:
        page = out / f"{book.stem}.html"
        number = book.stem.split("_")[0].lstrip("0") + "."
        if not page.exists():  # a notebook the demo cannot support is listed with a reason
            assert any(t.startswith(number) for t in whole), f"{page.name} missing, not skipped"
            checked += 1
            continue
        html = page.read_text(encoding="utf-8")
        shown = len(re.findall(r"<img[^>]+src=\"data:image/png", html))
        assert shown == _committed_figures(book), f"{page.name}: {shown} figures"
        checked += 1
    assert checked == len(books)
    assert not whole, f"the demo (with its therapist ratings) supports every notebook: {whole}"
    assert sum(_committed_figures(b) for b in books) >= 10
    # all three formats, and a quiet build: one line per notebook, then the summary
    assert (out / "report.docx").is_file() and (out / "latex" / "tables.tex").is_file()
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == len(books), run.stderr[-3000:]
    assert all(re.match(r"^\d\d_\w+: ", ln) for ln in lines), run.stderr[-3000:]
    for noise in ("Warning", "KeyboardInterrupt", "Alternative text", "TCP", "Traceback"):
        assert noise not in run.stdout + run.stderr, noise
    assert "report written:" in run.stdout


def test_pages_provenance_and_no_client_identifiers(made):
    out, _ = made
    books = [b.stem + ".html" for b in list_notebooks()]
    prov = json.loads((out / "provenance.json").read_text())
    # the demo supports every notebook, the dyad one too (it has the therapist's WAI-SR-T);
    # skipping with the reason is checked on studies that lack a need (test_own_study.py)
    assert [s["notebook"] for s in prov["skipped"]] == []
    pages = sorted(p.name for p in out.glob("[0-9][0-9]_*.html"))
    assert pages == sorted(books)
    assert prov["seed"] == 2026 and "report" in prov["command"]
    assert "sessions.csv.gz" in {i["file"] for i in prov["inputs"]}
    assert all(len(i["sha256"]) == 64 for i in prov["inputs"])
    index = (out / "index.html").read_text()
    assert "Provenance" in index and prov["inputs"][0]["sha256"] in index
    page = (out / "01_data_overview.html").read_text()
    assert "C001" not in page and "C150" not in page


def test_report_exports_figures_and_tables(made):
    out, _ = made
    assert (out / "figures" / "attendance_and_mean_trajectories.png").exists()
    assert (out / "figures" / "attendance_and_mean_trajectories.svg").exists()
    table = (out / "tables" / "study_sizes.csv").read_text()
    assert table.splitlines()[0] == "Measure,Value"  # the APA table the page shows
    assert "figures/attendance_and_mean_trajectories.png" in (out / "index.html").read_text()


def test_figures_are_byte_stable(made, tmp_path):
    out, _ = made
    again = build_report("demo", tmp_path / "again", notebooks=list_notebooks()[:1])
    for name in ("attendance_and_mean_trajectories.png", "attendance_and_mean_trajectories.svg"):
        first = (out / "figures" / name).read_bytes()
        second = (again.folder / "figures" / name).read_bytes()
        assert first == second, name


def frame_dumps(page: str) -> list[str]:
    """Monospace dumps of a table in a page's outputs (the code toggle is not an output)."""
    page = re.sub(r'<details class="alliance-code">.*?</details>', "", page, flags=re.S)
    dumps = []
    for block in re.findall(r"<pre[^>]*>(.*?)</pre>", page, flags=re.S):
        text = html.unescape(re.sub(r"<[^>]+>", "", block))
        rows = [
            ln for ln in text.splitlines() if re.search(r"\S\s{2,}\S", ln) and len(ln.split()) >= 3
        ]
        if len(rows) >= 2:  # two lines of columns aligned by runs of spaces
            dumps.append(text)
    return dumps


def index_columns(page: str) -> list[str]:
    """Tables whose first column is a 0..n row index."""
    bad = []
    for table in re.findall(r"<table.*?</table>", page, flags=re.S):
        body = table.split("<tbody", 1)[-1]
        cells = re.findall(r"<tr[^>]*>\s*<t[dh][^>]*>(.*?)</t[dh]>", body, flags=re.S)
        firsts = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]
        if len(firsts) >= 2 and firsts == [str(i) for i in range(len(firsts))]:
            bad.append(table[:200])
    return bad


def test_page_checks_find_a_pandas_dump_and_an_index_column():
    import pandas as pd

    frame = pd.DataFrame({"measure": ["clients", "sites"], "value": [300.0, 3.0]})
    dump = f"<pre>{html.escape(frame.to_string())}</pre>"
    assert frame_dumps(dump) and index_columns(frame.to_html())
    code = f'<details class="alliance-code"><summary>Code</summary>{dump}</details>'
    assert not frame_dumps(code + "<pre>3666 session rows, 300 clients: valid.</pre>")
    assert not index_columns(frame.to_html(index=False))


def test_pages_show_apa_tables_not_frame_dumps(made):
    out, _ = made
    for page in sorted(out.glob("[0-9][0-9]_*.html")):
        text = page.read_text(encoding="utf-8")
        assert not frame_dumps(text), (page.name, frame_dumps(text)[:1])
        assert not index_columns(text), page.name
        assert 'class="dataframe"' not in text, f"{page.name} shows a raw DataFrame"
        for table in re.findall(r'<table class="alliance-apa".*?</table>', text, flags=re.S):
            assert re.search(r'<strong class="apa-number">Table \d+</strong>', table), page.name
            heads = re.findall(r"<th[^>]*>(.*?)</th>", table)
            assert not any(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", h) for h in heads), heads
