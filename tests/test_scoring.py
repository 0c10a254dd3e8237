"""Scoring: sums and means, reverse keys, prorating rules, range errors, demo totals."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import instruments


def items_frame(name, rows):
    ins = instruments.get(name)
    return pd.DataFrame(rows, columns=ins.items, dtype=float)


def test_sum_and_subscales_wai_sr():
    rows = [list(range(1, 6)) + list(range(1, 6)) + [1, 2], [5] * 12]
    out = alliance.score(items_frame("wai_sr", rows), "wai_sr")
    assert out["wai_sr"].tolist() == [33.0, 60.0]
    # goal = items 4, 6, 8, 11 -> values 4, 1, 3, 1
    assert out["wai_sr_goal"].tolist() == [9.0, 20.0]
    assert out["wai_sr_task"].tolist() == [1 + 2 + 5 + 2, 20.0]
    assert out["wai_sr_bond"].tolist() == [3 + 5 + 2 + 4, 20.0]
    assert out["wai_sr_n_missing"].tolist() == [0, 0]


def test_reverse_keys_oq45():
    row = np.zeros(45)
    row[[0, 11]] = 4  # items 1 and 12 are reverse keyed: 4 -> 0
    out = alliance.score(items_frame("oq45", [row]), "oq45")
    # 7 other reverse-keyed items at 0 -> 4 each
    assert out["oq45"].iloc[0] == 7 * 4


def test_core_om_mean_times_ten_and_prorating():
    ins = instruments.get("core_om")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, size=(5, 34)).astype(float)
    keyed = x.copy()
    rev = np.array(ins.reverse_items) - 1
    keyed[:, rev] = 4 - keyed[:, rev]
    x[1, :3] = np.nan  # 3 missing: prorated
    x[2, :4] = np.nan  # 4 missing: over the limit
    out = alliance.score(pd.DataFrame(x, columns=ins.items), "core_om")
    expected = np.nanmean(np.where(np.isnan(x), np.nan, keyed), axis=1) * 10
    expected[2] = np.nan
    np.testing.assert_allclose(out["core_om"], expected)
    assert out["core_om_n_missing"].tolist() == [0, 3, 4, 0, 0]
    risk = np.array(ins.subscales["risk"]) - 1
    np.testing.assert_allclose(out["core_om_risk"].iloc[0], keyed[0, risk].mean() * 10)
    assert out.attrs["scoring"]["n_over_limit"] == 1
    assert out.attrs["scoring"]["n_prorated"] == 1


def test_core10_published_rule_one_missing():
    df = items_frame("core10", [[2] * 10, [2] * 9 + [np.nan], [2] * 8 + [np.nan] * 2])
    out = alliance.score(df, "core10")
    assert out["core10"].tolist()[:2] == [20.0, 20.0]
    assert np.isnan(out["core10"].iloc[2])


def test_prorate_options_phq9():
    df = items_frame("phq9", [[1] * 9, [1] * 8 + [np.nan], [3] * 7 + [np.nan] * 2])
    default = alliance.score(df, "phq9")  # no published rule stored: 0 missing allowed
    assert default["phq9"].isna().tolist() == [False, True, True]
    two = alliance.score(df, "phq9", prorate=2)
    assert two["phq9"].tolist() == [9.0, 9.0, 27.0]
    off = alliance.score(df, "phq9", prorate=False)
    assert off["phq9"].notna().sum() == 1
    with pytest.raises(ValueError, match="prorate must be"):
        alliance.score(df, "phq9", prorate=9)


def test_rows_over_limit_kept_counted_and_logged(caplog):
    df = items_frame("phq9", [[1] * 9, [np.nan] * 9, [0] * 9])
    df.index = [10, 11, 12]
    with caplog.at_level(logging.INFO, logger="alliance.scoring"):
        out = alliance.score(df, "phq9")
    assert len(out) == 3 and out.index.tolist() == [10, 11, 12]
    assert out.attrs["scoring"]["rows_over_limit"] == [11]
    assert "row 11" in caplog.text


def test_subscale_prorating_uses_same_limit():
    row = [np.nan, 2, 2, np.nan, 2, 2, 2, np.nan, 2, 2, 2, 2]  # goal misses items 4 and 8
    out = alliance.score(items_frame("wai_sr", [row]), "wai_sr", prorate=3)
    assert out["wai_sr"].iloc[0] == 24.0
    assert out["wai_sr_goal"].iloc[0] == 8.0
    out1 = alliance.score(items_frame("wai_sr", [row]), "wai_sr", prorate=1)
    assert np.isnan(out1["wai_sr_goal"].iloc[0]) and out1["wai_sr_task"].iloc[0] == 8.0


def test_out_of_range_error_names_rows_and_items():
    df = items_frame("phq9", [[0] * 9, [0] * 9, [0] * 9, [0] * 9])
    df.loc[1, "phq9_2"] = 4
    df.loc[3, "phq9_9"] = -1
    with pytest.raises(ValueError) as err:
        alliance.score(df, "phq9")
    msg = str(err.value)
    assert "rows 1, 3" in msg and "phq9_2 = 4" in msg and "phq9_9 = -1" in msg
    assert "0-3" in msg


def test_text_items_raise_clear_error():
    df = items_frame("phq9", [[0] * 9, [1] * 9]).astype(object)
    df.loc[1, "phq9_5"] = "several days"
    with pytest.raises(ValueError, match="phq9_5.*non-numeric.*'several days'.*row 1"):
        alliance.score(df, "phq9")


def test_nullable_integer_items():
    df = items_frame("gad7", [[1] * 7, [2] * 6 + [np.nan]]).astype("Int64")
    out = alliance.score(df, "gad7", prorate=1)
    assert out["gad7"].tolist() == [7.0, 14.0]


def test_missing_column_and_custom_items():
    df = items_frame("gad7", [[1] * 7])
    with pytest.raises(KeyError, match="gad7_7"):
        alliance.score(df.drop(columns="gad7_7"), "gad7")
    renamed = df.set_axis([f"g{i}" for i in range(7)], axis=1)
    out = alliance.score(renamed, "gad7", items=list(renamed.columns), name="anx")
    assert out["anx"].iloc[0] == 7.0 and "anx_n_missing" in out
    with pytest.raises(ValueError, match="7 items"):
        alliance.score(renamed, "gad7", items=list(renamed.columns)[:6])


def test_unknown_reverse_keys_must_be_given():
    df = pd.DataFrame([[1] * 12], columns=instruments.get("wai_s").items)
    with pytest.raises(ValueError, match="reverse="):
        alliance.score(df, "wai_s")
    out = alliance.score(df, "wai_s", reverse=[4, 10])
    assert out["wai_s"].iloc[0] == 10 + 2 * 7


def test_user_instrument_and_input_untouched():
    ins = instruments.load(
        {
            "name": "tiny",
            "title": "t",
            "construct": "rupture",
            "rater": "observer",
            "n_items": 3,
            "item_min": 0,
            "item_max": 2,
            "reverse_items": [1],
            "scoring": "mean",
        },
        register=False,
    )
    df = pd.DataFrame({"tiny_1": [0, 2], "tiny_2": [1, 1], "tiny_3": [2, np.nan]})
    before = df.copy()
    out = alliance.score(df, ins, prorate=1)
    np.testing.assert_allclose(out["tiny"], [(2 + 1 + 2) / 3, (0 + 1) / 2])
    pd.testing.assert_frame_equal(df, before)


def test_demo_totals_reproduced(demo):
    sessions = demo.sessions
    assert sessions["wai_sr"].notna().sum() > 1000  # the check below runs on real totals
    for name in ("wai_sr", "phq9"):
        k = instruments.get(name).n_items
        out = alliance.score(sessions, name, prorate=k - 1, name=f"{name}_check")
        # the bundled totals are stored rounded to 4 decimals
        np.testing.assert_allclose(out[f"{name}_check"], sessions[name], rtol=0, atol=5.1e-5)
        assert out[f"{name}_check"].isna().sum() == sessions[name].isna().sum()
