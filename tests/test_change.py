"""Reliable change, clinical significance and sudden gains, checked on hand-worked cases.

Every expected value is worked out by hand in the comments next to it, from the
formulas of Jacobson & Truax (1991) and Tang & DeRubeis (1999) and the missing-value
adjustment of the R package suddengains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alliance import change
from alliance.instruments import Instrument


def long(scores: dict) -> pd.DataFrame:
    """{client: {session: score}} -> long frame with columns client, session, y."""
    rows = [(c, s, v) for c, by in scores.items() for s, v in by.items()]
    return pd.DataFrame(rows, columns=["client", "session", "y"])


# --------------------------------------------------------------------------- RCI


def test_rci_jacobson_truax_by_hand():
    # sd = 7.5, reliability = .88
    # SE = 7.5 * sqrt(1 - .88) = 7.5 * 0.34641 = 2.59808
    # S_diff = sqrt(2) * 2.59808 = 3.67423
    # client a: 30 -> 22, change -8, RCI = -8 / 3.67423 = -2.17732 -> reliable
    # client b: 30 -> 23, change -7, RCI = -7 / 3.67423 = -1.90516 -> not reliable
    # client c: 20 -> 28, change +8, RCI = +2.17732 -> reliable deterioration
    data = long({"a": {1: 30, 5: 22}, "b": {1: 30, 5: 23}, "c": {1: 20, 5: 28}})
    rc = change.reliable_change(data, outcome="y", sd=7.5, reliability=0.88)
    assert rc["rci"].round(5).tolist() == [-2.17732, -1.90516, 2.17732]
    assert rc["category"].tolist() == [
        "reliable improvement",
        "no reliable change",
        "reliable deterioration",
    ]
    assert rc["reliable_improvement"].tolist() == [True, False, False]
    assert rc["reliable_deterioration"].tolist() == [False, False, True]
    assert "Jacobson & Truax" in rc.attrs["method"]


def test_rci_sd_from_pre_scores():
    # pre scores 10, 20, 30: SD = 10; reliability .75
    # S_diff = sqrt(2) * 10 * sqrt(.25) = 7.07107; client a: change -15 -> RCI -2.12132
    data = long({"a": {1: 10, 2: -5}, "b": {1: 20, 2: 20}, "c": {1: 30, 2: 30}})
    rc = change.reliable_change(data, outcome="y", sd="pre", reliability=0.75)
    assert rc.loc[0, "rci"] == pytest.approx(-15 / (math.sqrt(2) * 10 * 0.5))


def test_rci_threshold_in_points_and_instrument():
    # published threshold 5 points: |change| >= 5 is reliable; rci = change / (5 / 1.96)
    ins = Instrument("toy", "Toy scale", "outcome", "client", 5, 0, 4, reliable_change=5.0)
    data = long({"a": {1: 12, 2: 7}, "b": {1: 12, 2: 8}, "c": {1: 12, 2: 17}})
    rc = change.reliable_change(data, outcome="y", instrument=ins)
    assert rc["category"].tolist() == [
        "reliable improvement",
        "no reliable change",
        "reliable deterioration",
    ]
    assert rc.loc[0, "rci"] == pytest.approx(-5 / (5 / 1.96))
    same = change.reliable_change(data, outcome="y", threshold=5)
    pd.testing.assert_series_equal(rc["category"], same["category"])


def test_rci_direction_higher_is_better():
    # on an alliance-like scale a rise of 8 is an improvement
    data = long({"a": {1: 30, 2: 38}})
    rc = change.reliable_change(
        data, outcome="y", sd=7.5, reliability=0.88, direction="higher_is_better"
    )
    assert rc.loc[0, "category"] == "reliable improvement"


def test_rci_keeps_every_client_and_says_why():
    data = long(
        {
            "single": {1: 20},  # one session only
            "allmissing": {1: np.nan, 2: np.nan},
            "gap": {2: 25, 3: np.nan, 7: 10},  # unsorted later and missing in between
            "latepre": {1: np.nan, 2: 18, 3: 17},
        }
    )
    data = data.sample(frac=1, random_state=3)  # unsorted input
    rc = change.reliable_change(data, outcome="y", sd=5, reliability=0.8).set_index("client")
    assert set(rc.index) == {"single", "allmissing", "gap", "latepre"}
    assert rc.loc["single", "category"] == "no post score"
    assert rc.loc["single", "post_source"] == "missing"
    assert rc.loc["allmissing", "category"] == "no pre score"
    assert rc.loc["gap", ["pre_session", "post_session"]].tolist() == [2, 7]
    assert rc.loc["gap", "change"] == -15
    assert rc.loc["latepre", ["pre", "post"]].tolist() == [18, 17]


def test_rci_carry_forward_says_so():
    # fixed sessions: pre = session 1, post = session 4; client b lacks session 4,
    # its last observation (session 3, score 14) is carried forward
    data = long({"a": {1: 20, 4: 10}, "b": {1: 20, 2: 15, 3: 14}, "c": {1: 20}})
    plain = change.reliable_change(data, outcome="y", threshold=5, first=1, last=4)
    assert plain["post_source"].tolist() == ["observed", "missing", "missing"]
    locf = change.reliable_change(
        data, outcome="y", threshold=5, first=1, last=4, carry_forward=True
    ).set_index("client")
    assert locf.loc["b", "post"] == 14 and locf.loc["b", "post_session"] == 3
    assert locf.loc["b", "post_source"] == "carried forward"
    # c has only the pre score: carried forward, change 0
    assert locf.loc["c", "post_source"] == "carried forward"
    assert locf.loc["c", "change"] == 0
    assert locf.loc["c", "category"] == "no reliable change"


def test_rci_needs_a_yardstick():
    data = long({"a": {1: 20, 2: 10}})
    with pytest.raises(ValueError, match="sd= and reliability="):
        change.reliable_change(data, outcome="y")
    with pytest.raises(ValueError, match="pass sd="):
        change.reliable_change(data, outcome="y", reliability=0.8)


def test_rci_input_errors():
    data = long({"a": {1: 20, 2: 10}})
    with pytest.raises(KeyError, match="Did you mean 'y'"):
        change.reliable_change(data, outcome="Y", threshold=5)
    dup = pd.concat([data, data.iloc[[0]]])
    with pytest.raises(ValueError, match="repeat a client x session"):
        change.reliable_change(dup, outcome="y", threshold=5)
    frac = data.assign(session=[1.0, 1.5])
    with pytest.raises(ValueError, match="non-integer"):
        change.reliable_change(frac, outcome="y", threshold=5)
    with pytest.raises(TypeError, match="DataFrame"):
        change.reliable_change(data.to_dict(), outcome="y", threshold=5)


# ------------------------------------------------------------ clinical significance


def test_cutoffs_by_hand():
    # lower is better: a = 30 - 2*8 = 14, b = 8 + 2*5 = 18,
    # c = (5*30 + 8*8) / (5 + 8) = 214 / 13 = 16.4615
    cut = change.clinical_cutoffs(30, 8, 8, 5)
    assert cut["value"].round(4).tolist() == [14.0, 18.0, 16.4615]
    # higher is better (e.g. the ORS): a = 20 + 2*6 = 32, b = 30 - 2*4 = 22,
    # c = (4*20 + 6*30) / 10 = 26
    up = change.clinical_cutoffs(20, 6, 30, 4, direction="higher_is_better")
    with pytest.warns(DeprecationWarning, match="direction="):
        old = change.clinical_cutoffs(20, 6, 30, 4, higher_is_better=True)
    assert old["value"].tolist() == up["value"].tolist()
    assert up["value"].tolist() == [32.0, 22.0, 26.0]


def test_clinical_significance_categories_by_hand():
    # norms as above, cutoff c = 16.4615; reliable change threshold 7 points
    # a: 30 -> 10   change -20 reliable, crosses c            -> recovered
    # b: 30 -> 20   change -10 reliable, stays above c        -> improved
    # c: 30 -> 27   change  -3                                -> unchanged
    # d: 20 -> 30   change +10 reliable worse                 -> deteriorated
    # e: 15 -> 5    change -10 reliable, but began below c    -> improved
    # f: 25         no post score
    data = long(
        {
            "a": {1: 30, 9: 10},
            "b": {1: 30, 9: 20},
            "c": {1: 30, 9: 27},
            "d": {1: 20, 9: 30},
            "e": {1: 15, 9: 5},
            "f": {1: 25},
        }
    )
    cs = change.clinical_significance(
        data,
        outcome="y",
        threshold=7,
        clinical_mean=30,
        clinical_sd=8,
        functional_mean=8,
        functional_sd=5,
    )
    assert cs["category"].tolist() == [
        "recovered",
        "improved",
        "unchanged",
        "deteriorated",
        "improved",
        "no post score",
    ]
    assert cs["cutoff"].iloc[0] == pytest.approx(214 / 13)
    assert cs.attrs["cutoffs"]["a"] == 14.0
    # cut-off a from the data: pre scores 30, 30, 30, 20, 15, 25 -> mean 25, SD 6.3246
    # a = 25 - 2 * 6.3246 = 12.3509; client a (post 10) recovers, b (post 20) does not
    cs_a = change.clinical_significance(data, outcome="y", threshold=7, cutoff="a")
    assert cs_a["cutoff"].iloc[0] == pytest.approx(
        25 - 2 * np.std([30, 30, 30, 20, 15, 25], ddof=1)
    )
    assert cs_a["category"].tolist()[:2] == ["recovered", "improved"]
    with pytest.raises(ValueError, match="functional_mean="):
        change.clinical_significance(data, outcome="y", threshold=7, cutoff="c")


def test_clinical_significance_instrument_cutoff():
    # PHQ-9 published cut-off 10 when no norms are known; lower is better
    data = long({"a": {1: 18, 2: 6}, "b": {1: 18, 2: 12}})
    cs = change.clinical_significance(data, outcome="y", instrument="phq9", threshold=5)
    assert cs["cutoff"].tolist() == [10.0, 10.0]
    assert cs["category"].tolist() == ["recovered", "improved"]


# ------------------------------------------------------------------ sudden gains


def test_sudden_gain_complete_windows_by_hand():
    # gain between sessions 3 and 4: 31 -> 20
    # (1) 31 - 20 = 11 >= 7        (2) 11 >= .25 * 31 = 7.75
    # (3) pre 30, 29, 31: mean 30, var 1; post 20, 19, 18: mean 19, var 1
    #     pooled SD = sqrt((2*1 + 2*1) / 4) = 1; 30 - 19 = 11 > 2.776 * 1
    # reversal: midpoint 20 + 11/2 = 25.5; later scores 19, 18, 20, 17 never reach it
    data = long({1: dict(zip(range(1, 9), [30, 29, 31, 20, 19, 18, 20, 17], strict=True))})
    sg = change.sudden_gains(data, outcome="y", cutoff=7)
    assert len(sg) == 1
    row = sg.iloc[0]
    assert (row["pregain_session"], row["postgain_session"]) == (3, 4)
    assert row["magnitude"] == 11 and row["pct_change"] == pytest.approx(11 / 31)
    assert (row["pre_mean"], row["post_mean"], row["pooled_sd"]) == (30, 19, 1)
    assert row["critical_value"] == pytest.approx(2.776, abs=5e-4)
    assert (row["n_pre"], row["n_post"]) == (3, 3)
    assert not row["reversed"]


def test_sudden_gain_absent_session_uses_five_value_critical_value():
    # session 2 absent (no row): pre window for the 3 -> 4 gain holds sessions 1 and 3
    # pre 24, 22: mean 23, var 2; post 12, 13, 11: mean 12, var 1
    # pooled SD = sqrt((1*2 + 2*1) / 3) = 1.1547; critical value t(.975, df=3) = 3.182
    # 23 - 12 = 11 > 3.182 * 1.1547 = 3.674 -> gain
    data = long({"a": {1: 24, 3: 22, 4: 12, 5: 13, 6: 11}})
    sg = change.sudden_gains(data, outcome="y", cutoff=7)
    assert sg["pregain_session"].tolist() == [3]
    assert sg.loc[0, "critical_value"] == pytest.approx(3.182, abs=5e-4)
    assert sg.loc[0, "pooled_sd"] == pytest.approx(math.sqrt(4 / 3))
    assert (sg.loc[0, "n_pre"], sg.loc[0, "n_post"]) == (2, 3)


def test_sudden_gain_adjustment_decides():
    # pre (sessions 1, 3; session 2 missing) 20, 26: mean 23, var 18
    # post 14, 12, 16: mean 14, var 4; pooled SD = sqrt((18 + 2*4) / 3) = 2.9439
    # difference 9: with 5 values 3.182 * 2.9439 = 9.367 > 9 -> no gain;
    # unadjusted 2.776 * 2.9439 = 8.172 < 9 -> gain
    scores = {1: 20, 2: np.nan, 3: 26, 4: 14, 5: 12, 6: 16}
    data = long({"a": scores})
    assert change.sudden_gains(data, outcome="y", cutoff=7).empty
    loose = change.sudden_gains(data, outcome="y", cutoff=7, crit3_adjust=False)
    assert loose["pregain_session"].tolist() == [3]
    assert loose.loc[0, "critical_value"] == pytest.approx(2.776, abs=5e-4)
    # a NaN row and an absent row are the same thing
    absent = long({"a": {k: v for k, v in scores.items() if k != 2}})
    assert change.sudden_gains(absent, outcome="y", cutoff=7, crit3_adjust=False).equals(loose)


def test_sudden_gain_four_values_and_too_few():
    # sessions 1-4: 25, 27, 15, 13. Gain 2 -> 3: pre 25, 27 (mean 26, var 2);
    # post 15, 13 (mean 14, var 2); pooled SD = sqrt((2 + 2) / 2) = 1.4142;
    # df = 2, t = 4.303; 12 > 4.303 * 1.4142 = 6.085 -> gain
    data = long({"a": {1: 25, 2: 27, 3: 15, 4: 13}})
    sg = change.sudden_gains(data, outcome="y", cutoff=7)
    assert sg["pregain_session"].tolist() == [2]
    assert sg.loc[0, "critical_value"] == pytest.approx(4.303, abs=5e-4)
    # gain 1 -> 2 has a single pre value: criterion 3 cannot be judged -> no gain
    first = long({"b": {1: 30, 2: 18, 3: 17, 4: 19, 5: 18}})
    out = change.sudden_gains(first, outcome="y", cutoff=7)
    assert out.empty
    assert out.attrs["n_intervals_assessed"] == 2  # intervals 2->3 and 3->4 only


def test_sudden_gain_criterion_two():
    # 40 -> 36: 4 points >= cutoff 3 but 4 < .25 * 40 = 10 -> fails criterion 2
    # criterion 3: pre 40, 41, 40 (mean 40.33, var .3333); post 36, 35, 36 (mean 35.67,
    # var .3333); pooled SD .5774; 4.667 > 2.776 * .5774 = 1.603
    data = long({"a": {1: 40, 2: 41, 3: 40, 4: 36, 5: 35, 6: 36}})
    assert change.sudden_gains(data, outcome="y", cutoff=3).empty
    assert change.sudden_gains(data, outcome="y", cutoff=3, pct=None)[
        "pregain_session"
    ].tolist() == [3]


def test_reversal_at_exactly_half():
    # gain 3 -> 4: 20 -> 10 (magnitude 10), midpoint 15. Session 6 scores exactly 15:
    # half the gain lost -> reversed ("at least 50%"), reversal_session 6.
    # (suddengains tests value > midpoint, so it would not count this tie.)
    data = long({"a": {1: 21, 2: 20, 3: 20, 4: 10, 5: 11, 6: 15, 7: 9}})
    sg = change.sudden_gains(data, outcome="y", cutoff=7)
    assert sg["pregain_session"].tolist() == [3]
    assert bool(sg.loc[0, "reversed"]) and sg.loc[0, "reversal_session"] == 6
    # session 5 (N+1 + 1 = N+2) is the first that can reverse; 14.9 does not
    data2 = long({"a": {1: 21, 2: 20, 3: 20, 4: 10, 5: 11, 6: 14.9, 7: 9}})
    assert not change.sudden_gains(data2, outcome="y", cutoff=7).loc[0, "reversed"]


def test_sudden_losses_mirror():
    # loss 3 -> 4 on a lower-is-better scale: 10 -> 22 (12 points >= 7, >= 2.5)
    # pre 10, 11, 10 (mean 10.33, var .3333); post 22, 23, 21 (mean 22, var 1)
    # pooled SD = sqrt((2*.3333 + 2*1) / 4) = .8165; 11.67 > 2.776 * .8165
    # reversal: midpoint 22 - 6 = 16; session 7 scores 12 <= 16 -> reversed at 7
    data = long({"a": dict(zip(range(1, 8), [10, 11, 10, 22, 23, 21, 12], strict=True))})
    sl = change.sudden_losses(data, outcome="y", cutoff=7)
    assert sl["pregain_session"].tolist() == [3]
    assert sl.loc[0, "magnitude"] == 12
    assert bool(sl.loc[0, "reversed"]) and sl.loc[0, "reversal_session"] == 7
    assert change.sudden_gains(data, outcome="y", cutoff=7).empty


def test_sudden_gains_higher_is_better_instrument():
    # on the WAI-SR (higher is better) a rise is a gain: 30 -> 42
    data = long({"a": {1: 30, 2: 31, 3: 30, 4: 42, 5: 43, 6: 42}})
    sg = change.sudden_gains(data, outcome="y", instrument="wai_sr", cutoff=7)
    assert sg["pregain_session"].tolist() == [3]
    assert change.sudden_gains(data, outcome="y", cutoff=7).empty  # default: lower is better


def test_sudden_gains_select_and_ties_and_unsorted():
    # two equal gains of 10 (sessions 3->4 and 7->8) and one of 12 for client b
    a = {1: 40, 2: 41, 3: 40, 4: 30, 5: 31, 6: 30, 7: 30, 8: 20, 9: 21, 10: 20}
    b = {1: 40, 2: 41, 3: 40, 4: 30, 5: 31, 6: 30, 7: 32, 8: 20, 9: 21, 10: 20}
    data = long({"a": a, "b": b, "one": {1: 20}, "none": {1: np.nan, 2: np.nan}})
    data = data.sample(frac=1, random_state=7)
    every = change.sudden_gains(data, outcome="y", cutoff=7)
    assert every[["client", "pregain_session"]].values.tolist() == [
        ["a", 3],
        ["a", 7],
        ["b", 3],
        ["b", 7],
    ]
    first = change.sudden_gains(data, outcome="y", cutoff=7, select="first")
    assert first["pregain_session"].tolist() == [3, 3]
    largest = change.sudden_gains(data, outcome="y", cutoff=7, select="largest")
    # a: tie at 10 -> the earliest (3); b: 12 at 7 -> 8
    assert largest[["client", "pregain_session"]].values.tolist() == [["a", 3], ["b", 7]]
    assert set(every.attrs["clients_without_assessable_interval"]) == {"one", "none"}
    assert every.attrs["n_clients"] == 4


def test_sudden_gains_needs_cutoff():
    data = long({"a": {1: 20, 2: 10}})
    with pytest.raises(ValueError, match="cutoff="):
        change.sudden_gains(data, outcome="y")
    with pytest.raises(ValueError, match="select="):
        change.sudden_gains(data, outcome="y", cutoff=7, select="best")
    with pytest.raises(ValueError, match="direction="):
        change.sudden_gains(data, outcome="y", cutoff=7, direction="up")


def test_sudden_gains_vectorized_matches_per_client():
    # many clients at once give the same gains as each client alone
    rng = np.random.default_rng(1)
    n, s = 40, 12
    frame = pd.DataFrame(
        {
            "client": np.repeat(np.arange(n), s),
            "session": np.tile(np.arange(1, s + 1), n),
            "y": np.round(rng.normal(20, 6, n * s)),
        }
    )
    frame = frame[rng.random(len(frame)) > 0.15]  # absent sessions
    together = change.sudden_gains(frame, outcome="y", cutoff=5)
    alone = pd.concat(
        [change.sudden_gains(g, outcome="y", cutoff=5) for _, g in frame.groupby("client")],
        ignore_index=True,
    )
    assert len(together) > 0
    pd.testing.assert_frame_equal(together, alone, check_dtype=False)
