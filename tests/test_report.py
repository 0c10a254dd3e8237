"""Reports: provenance, atomic writing, skips, no client identifiers.

The whole demo report is built once, through the Makefile, in test_make_report.py; the
checks on its pages live there.
"""

from __future__ import annotations

import nbformat
import pytest

from alliance.report import NotebookFailed, PrivacyError, build_report, list_notebooks, provenance


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
