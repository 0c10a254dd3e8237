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
