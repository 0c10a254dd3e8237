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
