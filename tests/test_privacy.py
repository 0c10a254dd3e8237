"""Small-cell suppression and pseudonyms."""

from __future__ import annotations

import pandas as pd

from alliance.privacy import pseudonymize, suppress_small_cells


def test_suppression_is_idempotent():
    t = pd.DataFrame({"group": ["a", "b"], "n_clients": [12, 2], "mean": [1.5, 2.5]})
    once = suppress_small_cells(t)
    twice = suppress_small_cells(once)
    pd.testing.assert_frame_equal(once, twice)
    assert once["n_clients"].tolist() == ["12", "<5"] and pd.isna(once["mean"].iloc[1])


def test_nothing_small_leaves_the_table_as_it_is():
    t = pd.DataFrame({"group": ["a"], "n_clients": [12], "mean": [1.5]})
    pd.testing.assert_frame_equal(suppress_small_cells(t), t)


def test_pseudonyms_depend_on_the_salt():
    ids = pd.Series(["C001", "C002"])
    assert not pseudonymize(ids, "one").equals(pseudonymize(ids, "two"))
    assert pseudonymize(ids, "one").equals(pseudonymize(ids, "one"))


def _book(folder, code):
    import nbformat

    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    params = nbformat.v4.new_code_cell("data = 'demo'\nseed = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    book = folder / "01_book.ipynb"
    nbformat.write(nb, book)
    return book


def _study(folder, clients, therapists):
    folder.mkdir()
    rows = [
        {"client": c, "therapist": therapists[i % len(therapists)], "session": s, "wai_sr": 40.0}
        for i, c in enumerate(clients)
        for s in (1, 2)
    ]
    pd.DataFrame(rows).to_csv(folder / "sessions.csv", index=False)
    return folder


def test_multi_word_names_and_titles_are_refused(tmp_path):
    import pytest

    from alliance.report import PrivacyError, build_report

    data = _study(tmp_path / "s", ["Anna Maria Berg", "Jon Lie", "Kari Nordmann"], ["Dr. K. Olsen"])
    for code in ("print('seen: anna   maria BERG')", "print('with Dr. K. Olsen today')"):
        book = _book(tmp_path, code)
        with pytest.raises(PrivacyError, match="01_book"):
            build_report(data, tmp_path / "r", notebooks=[book])
        assert not (tmp_path / "r").exists()


def test_numeric_ids_still_get_their_report(tmp_path):
    from alliance.report import PrivacyError, build_report

    data = _study(tmp_path / "s", [str(i) for i in range(1, 301)], ["1", "2", "3"])
    book = _book(
        tmp_path,
        "import pandas as pd\nprint('300 clients, 600 sessions, 2 each')\n"
        "pd.DataFrame({'measure': ['n_clients', 'n_sessions'], 'value': [300, 2]})",
    )
    result = build_report(data, tmp_path / "r", notebooks=[book])
    assert "--pseudonymize" in result.notes[0]
    assert "--pseudonymize" in (result.folder / "index.html").read_text()
    leaky = _book(
        tmp_path,
        "import alliance\nalliance.read_study(data).sessions[['client', 'wai_sr']].head()",
    )
    try:
        build_report(data, tmp_path / "r2", notebooks=[leaky])
    except PrivacyError as error:
        assert "01_book" in str(error)
    else:
        raise AssertionError("a table of client ids was not refused")


def test_find_identifiers_positions():
    from alliance.privacy import Identifiers, find_identifiers

    ids = Identifiers(frozenset({"7", "dr. k. olsen"}), frozenset({"client", "therapist"}))
    assert find_identifiers("<h2>Results for client 7</h2>", ids) == {"7"}
    assert find_identifiers("<p>7 of 12 clients</p>", ids) == set()
    assert find_identifiers("client,score\n7,3\n", ids, kind="csv") == {"7"}
    assert find_identifiers("measure,value\nn,7\n", ids, kind="csv") == set()
    assert find_identifiers("<td>Dr.&nbsp;K. Olsen</td>", ids) == {"dr. k. olsen"}
    assert find_identifiers("Dr. K. Olsenberg", ids) == set()


def test_identifiers_inside_headings_labels_and_legends():
    """Long names anywhere; short codes inside a heading; a bare number never (Table 7)."""
    from alliance.privacy import Identifiers, find_identifiers

    ids = Identifiers(
        frozenset({"anna maria berg", "dr. müller", "7", "12", "c07", "t1"}),
        frozenset({"client", "therapist"}),
    )
    refused = {
        "<h2>Sessions of Anna Maria Berg</h2>": {"anna maria berg"},
        "<h3>CASELOAD OF DR.&nbsp;MÜLLER (site A)</h3>": {"dr. müller"},
        "<figcaption>Figure 2. Dr. Müller's clients</figcaption>": {"dr. müller"},
        "<h2>Trajectory of C07 over sessions</h2>": {"c07"},
        "<h2>Client C07's trajectory</h2>": {"c07"},
        "<h2>Client 7's trajectory</h2>": {"7"},
        "<label>Therapist T1</label>": {"t1"},
        "<caption>Alliance of t1, 12 clients</caption>": {"t1"},
        "<h2>7</h2>": {"7"},
    }
    for page, expected in refused.items():
        assert find_identifiers(page, ids) == expected, page
    allowed = [
        "<h2>Table 7</h2><p>Table 7. Means of 12 clients over 7 sessions</p>",
        "<caption>Table 7. Alliance by site (n = 12)</caption>",
        "<h2>Figure 12: alliance over 7 sessions</h2>",
        "<h2>Client outcomes at session 12</h2>",
        "<p>From T0 to T1 the alliance grew</p>",  # body text: short ids only in id places
    ]
    for page in allowed:
        assert find_identifiers(page, ids) == set(), page
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg">'
        '<g id="text_1"><text>Alliance of C07</text></g>'
        '<g id="text_2"><text>12</text></g>'  # a bar's count: not an identifier
        '<g id="legend_1"><text>T1 (n = 12)</text><text>Table 7</text></g></svg>'
    )
    assert find_identifiers(svg, ids, kind="svg") == {"c07", "t1"}
    legend = '<svg xmlns="http://www.w3.org/2000/svg"><g id="legend_1"><text>7</text></g></svg>'
    assert find_identifiers(legend, ids, kind="svg") == {"7"}


def test_markdown_headings_in_a_notebook_are_checked():
    import nbformat

    from alliance.privacy import Identifiers, find_identifiers

    ids = Identifiers(frozenset({"c07", "7"}), frozenset({"client"}))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Table 7\n\nText about 7 sessions.")]
    assert find_identifiers(nbformat.writes(nb), ids, kind="ipynb") == set()
    nb.cells.append(nbformat.v4.new_markdown_cell("### Trajectory of C07"))
    assert find_identifiers(nbformat.writes(nb), ids, kind="ipynb") == {"c07"}


def test_titled_therapist_name_in_a_printed_heading_is_refused(tmp_path):
    import pytest

    from alliance.report import PrivacyError, build_report

    data = _study(tmp_path / "s", [str(i) for i in range(7, 13)], ["Prof. Dr. Eva Lind"])
    book = _book(
        tmp_path,
        "from IPython.display import HTML\nHTML('<h2>Caseload of Prof.&nbsp;Dr. Eva Lind</h2>')",
    )
    with pytest.raises(PrivacyError, match="01_book"):
        build_report(data, tmp_path / "r", notebooks=[book])
    assert not (tmp_path / "r").exists()
    fine = _book(  # client 7 exists, but "Table 7" names a table
        tmp_path, "from IPython.display import HTML\nHTML('<h2>Table 7</h2><p>7 sessions</p>')"
    )
    assert build_report(data, tmp_path / "r", notebooks=[fine]).folder.exists()
