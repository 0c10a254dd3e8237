"""Reports: rendered pages, provenance, atomic writing, no client identifiers."""

from __future__ import annotations

import html
import json
import re

import nbformat
import pytest

from alliance.report import NotebookFailed, PrivacyError, build_report, list_notebooks, provenance


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    # every notebook, as `make report` runs them: the main job must work end to end
    out = tmp_path_factory.mktemp("reports") / "demo"
    return build_report("demo", out, command="pytest")


def test_report_pages_and_provenance(demo_report):
    folder = demo_report.folder
    books = [b.stem + ".html" for b in list_notebooks()]
    skipped = demo_report.provenance["skipped"]
    # the demo supports every notebook but the dyad one (it has no therapist rating)
    assert [s["notebook"][:3] for s in skipped] == ["10."]
    assert "therapist-rated alliance" in skipped[0]["reason"]
    assert [p.name for p in demo_report.pages] == [b for b in books if b != "10_dyads.html"]
    assert (folder / "index.html").exists() and (folder / "01_data_overview.html").exists()
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["seed"] == 2026 and prov["command"] == "pytest"
    names = {i["file"] for i in prov["inputs"]}
    assert "sessions.csv.gz" in names
    assert all(len(i["sha256"]) == 64 for i in prov["inputs"])
    index = (folder / "index.html").read_text()
    assert "Provenance" in index and prov["inputs"][0]["sha256"] in index


def test_report_shows_no_client_identifiers(demo_report):
    page = (demo_report.folder / "01_data_overview.html").read_text()
    assert "C001" not in page and "C150" not in page


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


def test_pages_show_apa_tables_not_frame_dumps(demo_report):
    for page in demo_report.pages:
        text = page.read_text(encoding="utf-8")
        assert not frame_dumps(text), (page.name, frame_dumps(text)[:1])
        assert not index_columns(text), page.name
        assert 'class="dataframe"' not in text, f"{page.name} shows a raw DataFrame"
        for table in re.findall(r'<table class="alliance-apa".*?</table>', text, flags=re.S):
            assert re.search(r'<strong class="apa-number">Table \d+</strong>', table), page.name
            heads = re.findall(r"<th[^>]*>(.*?)</th>", table)
            assert not any(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", h) for h in heads), heads


def test_failed_notebook_leaves_no_report(tmp_path):
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    params = nbformat.v4.new_code_cell("data = 'demo'\nseed = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    book = tmp_path / "01_broken.ipynb"
    nbformat.write(nb, book)
    out = tmp_path / "reports" / "broken"
    with pytest.raises(NotebookFailed, match="01_broken.ipynb failed in cell .*boom"):
        build_report("demo", out, notebooks=[book])
    assert not out.exists()
    assert list((tmp_path / "reports").iterdir()) == []


def test_provenance_hashes_a_user_file(tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text("client,session\nA,1\n")
    prov = provenance(str(path), seed=3, command="x")
    assert prov["inputs"] == [
        {
            "file": "sessions.csv",
            "sha256": "33859f47f56496bd5340b8761f183649aee15887447dbee11465722e1237efe2",
        }
    ]


def test_report_exports_figures_and_tables(demo_report):
    folder = demo_report.folder
    assert (folder / "figures" / "attendance_and_mean_trajectories.png").exists()
    assert (folder / "figures" / "attendance_and_mean_trajectories.svg").exists()
    table = (folder / "tables" / "study_sizes.csv").read_text()
    assert table.splitlines()[0] == "measure,value"
    assert "figures/attendance_and_mean_trajectories.png" in (folder / "index.html").read_text()


def test_a_page_showing_identifiers_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    params = nbformat.v4.new_code_cell("data = 'demo'\nseed = 1")
    params.metadata["tags"] = ["parameters"]
    leak = nbformat.v4.new_code_cell(
        "import alliance\nalliance.datasets.load_study(data).sessions[['client', 'wai_sr']].head()"
    )
    nb.cells = [params, leak]
    book = tmp_path / "01_leaky.ipynb"
    nbformat.write(nb, book)
    out = tmp_path / "reports" / "leaky"
    with pytest.raises(PrivacyError, match="01_leaky.ipynb shows .* identifier"):
        build_report("demo", out, notebooks=[book])
    assert not out.exists()
    # with pseudonyms the same page is allowed, and shows no real identifier
    result = build_report("demo", out, notebooks=[book], salt="a secret")
    page = result.pages[0].read_text()
    assert "C001" not in page and ">P" in page
    assert result.provenance["pseudonymized"] is True


def test_notebooks_that_do_not_apply_are_skipped_and_listed(tmp_path):
    books = [b for b in list_notebooks() if b.name.startswith(("01_", "03_", "05_"))]
    result = build_report("btheb", tmp_path / "btheb", notebooks=books)
    assert [p.name for p in result.pages] == ["01_data_overview.html"]
    reasons = {s["reason"] for s in result.provenance["skipped"]}
    assert "needs an alliance score, the alliance questionnaire's items" in reasons
    assert "needs an alliance score, the therapist (or social worker) identifier" in reasons
    assert "do not apply to these data" in (result.folder / "index.html").read_text()


def test_figures_are_byte_stable(demo_report, tmp_path):
    again = build_report("demo", tmp_path / "again", notebooks=list_notebooks()[:1])
    for name in ("attendance_and_mean_trajectories.png", "attendance_and_mean_trajectories.svg"):
        first = (demo_report.folder / "figures" / name).read_bytes()
        second = (again.folder / "figures" / name).read_bytes()
        assert first == second, name


def test_a_plain_csv_of_scores_with_its_own_column_names(tmp_path, demo):
    path = tmp_path / "scores.csv"
    demo.sessions[["client", "therapist", "session", "wai_sr", "phq9"]].rename(
        columns={"wai_sr": "alliance_total", "phq9": "symptoms"}
    ).to_csv(path, index=False)
    before = path.read_bytes()
    books = [b for b in list_notebooks() if b.name.startswith(("01_", "03_"))]
    result = build_report(
        path,
        tmp_path / "mine",
        notebooks=books,
        alliance="alliance_total",
        outcome="symptoms",
        instrument="phq9",
    )
    assert [p.name for p in result.pages] == ["01_data_overview.html"]
    assert result.provenance["skipped"][0]["reason"] == "needs the alliance questionnaire's items"
    assert "alliance score: alliance_total; outcome score: symptoms" in result.pages[0].read_text()
    assert path.read_bytes() == before


def test_provenance_of_the_real_dataset_hashes_the_file_it_is_read_from():
    files = [i["file"] for i in provenance("btheb", seed=1)["inputs"]]
    assert files == ["datapackage.json", "resources.tar.gz"]
