"""Bundled datasets: listing, loading, the real Beat the Blues data and its codebook."""

from __future__ import annotations

import numpy as np
import pytest

import alliance
from alliance.datasets import list_datasets, load_dataset, load_study


def test_list_datasets_columns_and_sizes():
    table = list_datasets()
    assert table.columns.tolist() == [
        "name",
        "description",
        "n_clients",
        "n_sessions",
        "source",
        "licence",
    ]
    sizes = table.set_index("name")
    assert sizes.loc["demo", "n_clients"] == 300
    assert sizes.loc["btheb", "n_sessions"] == 500


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(KeyError, match="Did you mean 'demo'"):
        load_dataset("dem")
    with pytest.raises(FileNotFoundError, match="neither a bundled dataset"):
        load_study("no/such/place.csv")


def test_load_returns_a_fresh_copy():
    a = load_dataset("demo")
    a.sessions.loc[0, "wai_sr"] = -99
    a.truth["effects"]["within"] = 5
    b = load_dataset("demo")
    assert b.sessions.loc[0, "wai_sr"] != -99
    assert b.truth["effects"]["within"] == -2.0


def test_btheb_matches_the_published_table():
    study = load_dataset("btheb")
    s = study.sessions
    # first two patients of HSAUR's BtheB: 29, 2, 2, NA, NA and 32, 16, 24, 17, 20
    np.testing.assert_array_equal(s["bdi_ii"].iloc[:5].to_numpy(), [29, 2, 2, np.nan, np.nan])
    np.testing.assert_array_equal(s["bdi_ii"].iloc[5:10].to_numpy(), [32, 16, 24, 17, 20])
    assert s["month"].unique().tolist() == [0, 2, 4, 6, 8]
    assert study.clients["condition"].value_counts().to_dict() == {"BtheB": 52, "TAU": 48}
    assert s["bdi_ii"].isna().sum() == 120  # missed assessments kept as rows
    assert "Proudfoot" in study.codebook.citation
    assert study.codebook.licence.startswith("GPL")
    assert alliance.validate(study).ok


def test_demo_codebook_declares_instruments_and_raters(demo):
    fields = demo.codebook.fields("sessions").set_index("name")
    assert fields.loc["wai_sr_1", "instrument"] == "wai_sr"
    assert fields.loc["phq9_9", "rater"] == "client"
    assert fields.loc["phq9_9", "maximum"] == 3
    assert demo.codebook.licence == "CC0-1.0"
