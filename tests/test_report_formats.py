"""Tables and reports in Word and LaTeX, provenance of the code, clean pages."""

from __future__ import annotations

import re

import docx
import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.tables import ApaTable


def _numbers(text: str) -> list[str]:
    return re.findall(r"-?\d*\.\d+|-?\d+", text)


def _balanced(latex: str) -> None:
    opened = re.findall(r"\\begin\{(\w+)\}", latex)
    closed = re.findall(r"\\end\{(\w+)\}", latex)
    assert opened == closed[::-1], (opened, closed)
    depth = 0
    for ch in latex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


@pytest.fixture(scope="module")
def mixed():
    demo = alliance.datasets.load_dataset("demo")
    return alliance.models.lmm("phq9 ~ session + (1 + session | client)", demo.sessions)


def test_model_table_has_random_effects_fit_and_apa_numbers(mixed):
    table = mixed.apa_table(number=3)
    body = table.to_frame()
    terms = body["Term"].tolist()
    assert terms[:2] == ["Intercept", "session"]
    assert "σ² client (Intercept)" in terms and "σ² residual" in terms
    assert any(t.startswith("r client:") for t in terms)
    corr = body.loc[body["Term"].str.startswith("r "), "b"].iloc[0]
    assert re.fullmatch(r"-?\.\d\d", corr)  # no leading zero for r
    assert set(body["p"].head(2)) <= {"< .001"} or all(
        re.fullmatch(r"\.\d{3}|< \.001", p) for p in body["p"].head(2)
    )
    assert "clients = 300" in table.note and "AIC = " in table.note
    assert "log-likelihood = " in table.note and table.label == "Table 3"


def test_from_frame_integers_p_and_headers():
    frame = pd.DataFrame(
        {"n_clients": [300.0, 12.0], "mean": [3.14159, np.nan], "r": [0.312, -0.05]}
    )
    frame["p"] = [0.0341, 0.00002]
    t = ApaTable.from_frame(frame, title="Sizes")
    body = t.to_frame()
    assert body.columns.tolist() == ["N clients", "Mean", "r", "p"]
    assert body.iloc[0].tolist() == ["300", "3.14", ".31", ".034"]
    assert body.iloc[1].tolist() == ["12", "", "-.05", "< .001"]
    indexed = ApaTable.from_frame(frame.set_index("n_clients"))
    assert indexed.to_frame().columns[0] == "N clients"
    assert ApaTable.from_frame(frame).to_frame().shape == (2, 4)  # no 0..n index column


def test_to_docx_reads_back(tmp_path, mixed):
    table = mixed.apa_table(number=1)
    path = table.to_docx(tmp_path / "t.docx")
    doc = docx.Document(path)
    assert len(doc.tables) == 1
    word = doc.tables[0]
    assert len(word.rows) == 1 + len(table.to_frame()) + len(table.sections)
    assert word.cell(0, 0).text == "Term"
    texts = [p.text for p in doc.paragraphs]
    assert texts[0] == "Table 1" and texts[1] == table.title
    assert texts[-1].startswith("Note. N = ")
    cells = [c.text for row in word.rows for c in row.cells]
    for value in table.to_frame()["b"]:
        assert value in cells
    again = docx.Document()
    assert table.to_docx(again) is again and len(again.tables) == 1
    with pytest.raises(TypeError, match="python-docx Document"):
        table.to_docx(42)


def test_latex_has_the_html_numbers_and_balanced_environments(mixed):
    table = mixed.apa_table(number=2)
    latex = table.to_latex()
    _balanced(latex)
    html_cells = re.sub(r"<[^>]+>", " ", table.to_html())
    html_numbers = _numbers(html_cells.replace("&lt;", "<"))
    tex_numbers = _numbers(re.sub(r"\\[a-z]+|\$\^2\$|\{|\}", " ", latex.split("\\midrule", 1)[1]))
    body_numbers = _numbers(" ".join(table.to_frame().to_numpy().ravel()))
    assert body_numbers and all(n in tex_numbers for n in body_numbers)
    assert all(n in html_numbers for n in body_numbers)
    assert latex.count(r"\multicolumn") == len(table.sections)


# ---- a report in every format: the first notebook and a small model notebook
MODEL_NOTEBOOK = """
import matplotlib.pyplot as plt
import alliance
from alliance.export import save_figure, save_table

study = alliance.datasets.load_study(data)
fit = alliance.models.lmm("phq9 ~ session + (1 | client)", study.sessions)
table = fit.apa_table()
save_table(table, "phq9_course", export_dir)
fig, ax = plt.subplots(figsize=(4, 3))
study.sessions.groupby("session")["phq9"].mean().plot(ax=ax)
ax.set_xlabel("session")
ax.set_ylabel("PHQ-9 (mean)")
files = save_figure(fig, "phq9_mean", export_dir, caption="Mean PHQ-9 by session")
table
"""
LAST_LINE_PATH = 'save_table(fit.apa_table(), "phq9_course_again", export_dir)'


@pytest.fixture(scope="module")
def formats_report(tmp_path_factory):
    import nbformat

    from alliance.report import build_report, list_notebooks

    tmp = tmp_path_factory.mktemp("formats")
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    params = nbformat.v4.new_code_cell("data = 'demo'\nseed = 1\nexport_dir = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Course of the PHQ-9"),
        params,
        nbformat.v4.new_code_cell(MODEL_NOTEBOOK.strip()),
        nbformat.v4.new_code_cell(LAST_LINE_PATH),
    ]
    book = tmp / "02_model.ipynb"
    nbformat.write(nb, book)
    books = [list_notebooks()[0], book]
    return build_report("demo", tmp / "out", notebooks=books, formats="html,docx,latex")


def test_word_file_reads_back_with_every_table_and_figure(formats_report):
    from alliance.export import saved

    folder = formats_report.folder
    tables, figures = saved(folder, "tables"), saved(folder, "figures")
    assert len(tables) == 5 and len(figures) == 2  # 3 + 2 tables, 1 + 1 figures
    doc = docx.Document(folder / "report.docx")
    assert len(doc.tables) == len(tables)
    assert len(doc.inline_shapes) == len(figures)
    texts = [p.text for p in doc.paragraphs]
    assert [t for t in texts if re.fullmatch(r"Table \d+", t)] == [
        f"Table {i}" for i in range(1, 6)
    ]
    assert [t for t in texts if re.fullmatch(r"Figure \d+", t)] == ["Figure 1", "Figure 2"]
    assert "Mean PHQ-9 by session" in texts
    # report order: the first notebook's tables and figure come before the model's
    assert texts.index("Figure 1") < texts.index("Table 4") < texts.index("Figure 2")
    alts = [s._inline.docPr.get("descr") for s in doc.inline_shapes]
    assert all(alts) and "PHQ-9 (mean) by session" in alts[1]
    model = doc.tables[3]
    assert model.cell(0, 0).text == "Term" and model.cell(1, 0).text == "Fixed effects"
    assert any(row.cells[0].text == "σ² residual" for row in model.rows)
    study_sizes = [[c.text for c in row.cells] for row in doc.tables[0].rows]
    assert ["clients", "300"] in study_sizes  # integers as integers, not 300.0
    assert not any(re.fullmatch(r"\d+", row[0]) for row in study_sizes[1:])  # no index column


def test_latex_tables_match_the_page_and_are_balanced(formats_report):
    folder = formats_report.folder
    texs = sorted((folder / "latex").glob("*.tex"))
    assert {p.stem for p in texs} == {
        "study_sizes",
        "missing_values",
        "scores_by_phase",
        "phq9_course",
        "phq9_course_again",
        "tables",
    }
    for tex in texs:
        _balanced(tex.read_text(encoding="utf-8"))
    latex = (folder / "latex" / "phq9_course.tex").read_text(encoding="utf-8")
    assert r"\toprule" in latex and r"\bottomrule" in latex
    # the page shows the same APA table: same numbers, same order
    page = (folder / "02_model.html").read_text(encoding="utf-8")
    shown = page[page.index('<table class="alliance-apa"') :]
    shown = shown[: shown.index("</table>")]
    rows = shown.split("<tbody", 1)[1].split(">", 1)[1].split("</tbody>", 1)[0]
    cells = re.sub(r"<[^>]+>", " ", rows).replace("&lt;", "<")
    body = latex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    body = re.sub(r"\\multicolumn\{\d+\}\{l\}|\$\^2\$|\\[a-z]+\{\}|\\[a-z]+|[{}]", " ", body)
    assert _numbers(cells) and _numbers(cells) == _numbers(body)
    main = (folder / "latex" / "tables.tex").read_text(encoding="utf-8")
    assert r"\usepackage{booktabs}" in main and r"\input{phq9_course.tex}" in main


def test_latex_compiles_where_tex_is_installed(formats_report, tmp_path):
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex is not installed (balanced environments are checked above)")
    work = tmp_path / "latex"
    shutil.copytree(formats_report.folder / "latex", work)
    run = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]


def test_pages_show_no_paths_reprs_or_tracebacks(formats_report):
    import os

    folder = formats_report.folder
    home = os.path.expanduser("~")
    for page in sorted(folder.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        for bad in ("PosixPath(", "WindowsPath(", "Traceback", tempfile_root(), home + "/"):
            assert bad not in text, f"{page.name} shows {bad!r}"
        assert ".alliance-new" not in text and "/tmp/" not in text
        assert "No description has been provided" not in text, page.name
    page = (folder / "02_model.html").read_text(encoding="utf-8")
    assert 'alt="Figure: Mean PHQ-9 by session' in page
    assert page.count('<details class="alliance-code">') == 2  # the code, one click away
    assert "fit.apa_table()" in page


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir() + "/"


def test_every_new_file_is_in_the_manifest_and_provenance_names_the_code(formats_report):
    import json

    from alliance._outdir import MANIFEST

    folder = formats_report.folder
    listed = set(json.loads((folder / MANIFEST).read_text())["files"])
    for path in folder.rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            assert path.relative_to(folder).as_posix() in listed
    assert {"report.docx", "latex/tables.tex", "tables/index.json"} <= listed
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["formats"] == ["html", "docx", "latex"]
    assert set(prov["code"]) == {"checkout", "commit", "clean"}
    assert prov["lock_sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", prov["lock_sha256"])
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert 'href="report.docx"' in index and "Figure 2.</strong> Mean PHQ-9 by session" in index


def test_code_state_of_a_checkout(tmp_path):
    import shutil
    import subprocess

    from alliance.report import code_state

    assert code_state(tmp_path) == {"checkout": False, "commit": None, "clean": None}
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    state = code_state(tmp_path)
    assert state["checkout"] and state["clean"] is True and len(state["commit"]) == 40
    (tmp_path / "a.txt").write_text("2")
    assert code_state(tmp_path)["clean"] is False


def test_a_word_file_showing_an_identifier_is_found(tmp_path):
    from alliance.privacy import Identifiers, find_identifiers
    from alliance.report import docx_text

    path = ApaTable(pd.DataFrame({"client": ["C07"], "n": ["3"]}), title="T").to_docx(
        tmp_path / "t.docx"
    )
    ids = Identifiers(frozenset({"c07"}), frozenset({"client"}))
    assert find_identifiers(docx_text(path), ids) == {"c07"}


def test_unknown_format_is_a_clear_error():
    from alliance.report import parse_formats

    with pytest.raises(ValueError, match="unknown report format.*html, docx, latex"):
        parse_formats("html,pdf")
    assert parse_formats("word,tex") == ("html", "docx", "latex")


def test_cli_refuses_an_unknown_format(tmp_path):
    from typer.testing import CliRunner

    from alliance.cli import app

    out = tmp_path / "x"
    run = CliRunner().invoke(
        app, ["report", "--data", "demo", "--out", str(out), "--format", "html,pdf"]
    )
    assert run.exit_code == 2 and "unknown report format" in run.output
    assert not out.exists()


def test_the_kernels_shutdown_traceback_is_dropped_and_other_errors_kept():
    from alliance.report import _without_shutdown_tracebacks

    block = [
        "ERROR:tornado.general:Uncaught exception in ZMQStream callback",
        "Traceback (most recent call last):",
        '  File "zmqstream.py", line 585, in _log_error',
        "    f.result()",
        "zmq.error.ZMQError: Socket operation on non-socket",
    ]
    other = ["Traceback (most recent call last):", "  File 'x.py'", "ValueError: bad"]
    assert _without_shutdown_tracebacks(["01_a: 1 s", *block, "02_b: 2 s"]) == [
        "01_a: 1 s",
        "02_b: 2 s",
    ]
    assert _without_shutdown_tracebacks(other) == other
    unknown = [*block[:-1], "RuntimeError: something else"]
    assert _without_shutdown_tracebacks(unknown) == unknown
