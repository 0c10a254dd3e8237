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
