"""Reliability against values printed by R's psych (tests/reference/psych_reference.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import reliability as rel

REF = Path(__file__).parent / "reference"
RTOL = 1e-6  # psych's closed-form estimators: agreement is ~1e-13 in practice
RTOL_REML = 2e-5  # psych's nested coefficients come from iterative lme/lmer fits


def ref(name):
    return json.loads((REF / f"psych_{name}.json").read_text())


def data(name):
    return pd.read_csv(REF / "data" / f"psych_{name}.csv")


# ---- alpha -------------------------------------------------------------------------------
ALPHA = [
    ("bfi_agreeableness", "bfi_ac"),
    ("bfi_conscientiousness", "bfi_ac"),
    ("attitude", "attitude"),
]


@pytest.mark.parametrize(("key", "csv"), ALPHA)
def test_alpha_matches_psych(key, csv):
    r = ref("alpha")[key]
    reverse = [r["reverse"]] if isinstance(r["reverse"], str) else r["reverse"]
    out = rel.alpha(data(csv), r["items"], reverse=reverse).iloc[0]
    pairs = {
        "raw_alpha": "alpha",
        "std_alpha": "std_alpha",
        "g6": "g6",
        "average_r": "average_r",
        "median_r": "median_r",
        "s_n": "s_n",
        "ase": "ase",
        "mean": "mean",
        "sd": "sd",
        "feldt_low": "ci_low",
        "feldt_high": "ci_high",
    }
    for theirs, ours in pairs.items():
        np.testing.assert_allclose(out[ours], r[theirs], rtol=RTOL, err_msg=f"{key} {theirs}")
    items = rel.alpha(data(csv), r["items"], reverse=reverse, by_item=True)
    np.testing.assert_allclose(items["alpha_if_dropped"], r["drop_raw_alpha"], rtol=RTOL)
    np.testing.assert_allclose(items["r_drop"], r["r_drop"], rtol=RTOL)


def test_alpha_with_instrument_reverse_keys_and_subscales():
    ins = alliance.instruments.load(
        {
            "name": "agree5",
            "title": "bfi agreeableness",
            "construct": "alliance",
            "rater": "client",
            "n_items": 5,
            "item_min": 1,
            "item_max": 6,
            "reverse_items": [1],
            "subscales": {"first": [1, 2, 3]},
        },
        register=False,
    )
    bfi = data("bfi_ac").rename(columns={f"A{i}": f"agree5_{i}" for i in range(1, 6)})
    out = rel.alpha(bfi, instrument=ins)
    assert out["scale"].tolist() == ["agree5", "agree5_first"]
    np.testing.assert_allclose(
        out.loc[0, "alpha"], ref("alpha")["bfi_agreeableness"]["raw_alpha"], rtol=RTOL
    )
    assert out.loc[0, "ci_low"] < out.loc[0, "alpha"] < out.loc[0, "ci_high"]
    # without the reverse key alpha drops sharply: the test can fail
    unkeyed = rel.alpha(bfi, ins.items, reverse=[])
    assert unkeyed.loc[0, "alpha"] < out.loc[0, "alpha"] - 0.1


def test_alpha_errors():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [1, 1, 1], "c": [2, 3, 1]})
    with pytest.raises(ValueError, match="'b'.*no variance"):
        rel.alpha(df)
    with pytest.raises(KeyError, match="reverse"):
        rel.alpha(df, ["a", "c"], reverse=["z"])
    with pytest.raises(ValueError, match="at least 2"):
        rel.alpha(df, ["a"])


# ---- ICC ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "csv"), [("sf", "sf"), ("sim", "icc_sim")])
def test_icc_matches_psych(key, csv):
    r = ref("icc")[key]
    out = rel.icc(data(csv))
    assert out["type"].tolist() == r["type"]
    for theirs, ours in {
        "ICC": "icc",
        "F": "f",
        "p": "p",
        "lower": "ci_low",
        "upper": "ci_high",
        "df1": "df1",
        "df2": "df2",
    }.items():
        np.testing.assert_allclose(out[ours], r[theirs], rtol=RTOL, err_msg=f"{key} {theirs}")


def test_icc_long_format_and_dropped_targets():
    wide = data("sf")
    long = wide.reset_index(names="target").melt("target", var_name="judge", value_name="y")
    out = rel.icc(long, target="target", rater="judge", rating="y")
    np.testing.assert_allclose(out["icc"], ref("icc")["sf"]["ICC"], rtol=RTOL)
    gappy = pd.concat([wide, pd.DataFrame({"J1": [5.0], "J2": [np.nan], "J3": [1], "J4": [2]})])
    assert rel.icc(gappy)["n_dropped"].iloc[0] == 1
    with pytest.raises(ValueError, match="target=, rater= and rating="):
        rel.icc(long, target="target")


# ---- Cohen's kappa -----------------------------------------------------------------------
def fce_weighted_variance(a, b, levels, w):
    """Fleiss, Cohen & Everitt (1969) variance of weighted kappa, written as loops."""
    q, n = len(levels), len(a)
    p = np.zeros((q, q))
    for i, j in zip(a, b, strict=True):
        p[levels.index(i), levels.index(j)] += 1 / n
    r, c = p.sum(1), p.sum(0)
    po = sum(w[i, j] * p[i, j] for i in range(q) for j in range(q))
    pe = sum(w[i, j] * r[i] * c[j] for i in range(q) for j in range(q))
    wi = [sum(c[j] * w[i, j] for j in range(q)) for i in range(q)]
    wj = [sum(r[i] * w[i, j] for i in range(q)) for j in range(q)]
    s = sum(
        p[i, j] * (w[i, j] * (1 - pe) - (wi[i] + wj[j]) * (1 - po)) ** 2
        for i in range(q)
        for j in range(q)
    )
    return (s - (po * pe - 2 * pe + po) ** 2) / (n * (1 - pe) ** 4)


@pytest.mark.parametrize(("key", "csv"), [("bates", "kappa_bates"), ("codes", "kappa_codes")])
def test_cohen_kappa_matches_psych(key, csv):
    r = ref("kappa")[key]
    df = data(csv)
    out = rel.cohen_kappa(df).set_index("statistic")
    np.testing.assert_allclose(out.loc["unweighted", "estimate"], r["kappa"], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(out.loc["weighted", "estimate"], r["weighted_kappa"], rtol=RTOL)
    np.testing.assert_allclose(out.loc["unweighted", "se"] ** 2, r["var_kappa"], rtol=RTOL)
    np.testing.assert_allclose(out.loc["unweighted", "ci_low"], r["lower"][0], rtol=RTOL)
    np.testing.assert_allclose(out.loc["unweighted", "ci_high"], r["upper"][0], rtol=RTOL)
    assert out.loc["unweighted", "n"] == r["n"]
    # weighted variance: Fleiss, Cohen & Everitt (1969); psych weights the column-category
    # term by the row margin instead (docs/measurement.md), so compare with the formula.
    levels = sorted(set(df.iloc[:, 0]) | set(df.iloc[:, 1]))
    q = len(levels)
    w = 1 - (np.subtract.outer(np.arange(q), np.arange(q)) / (q - 1)) ** 2
    expected = fce_weighted_variance(df.iloc[:, 0], df.iloc[:, 1], levels, w)
    np.testing.assert_allclose(out.loc["weighted", "se"] ** 2, expected, rtol=1e-10)


def test_cohen_kappa_string_codes_and_missing():
    df = pd.DataFrame({"a": ["w", "c", "n", "n", None, "w"], "b": ["w", "c", "n", "w", "n", "w"]})
    out = rel.cohen_kappa(df, weights=None)
    assert out.loc[0, "n"] == 5 and out.loc[0, "n_dropped"] == 1
    # by hand: po = 4/5; margins a: c .2, n .4, w .4; b: c .2, n .2, w .6 -> pc = .36
    np.testing.assert_allclose(out.loc[0, "estimate"], (0.8 - 0.36) / (1 - 0.36))
    np.testing.assert_allclose(out.loc[1, "estimate"], out.loc[0, "estimate"])


# ---- Fleiss and Krippendorff -------------------------------------------------------------
# Fleiss' kappa example on Wikipedia (10 subjects, 14 raters, 5 categories): kappa = 0.210
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_published_example_and_statsmodels():
    rows = [np.repeat(np.arange(5), c) for c in FLEISS_COUNTS]
    df = pd.DataFrame(rows, columns=[f"r{i}" for i in range(14)])
    out = rel.fleiss_kappa(df).iloc[0]
    assert round(out["estimate"], 3) == 0.210
    from statsmodels.stats import inter_rater  # a dependency of the package: never skipped

    np.testing.assert_allclose(
        out["estimate"], inter_rater.fleiss_kappa(np.array(FLEISS_COUNTS)), rtol=1e-12
    )
    assert out["p"] < 0.001


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders x 12 units
KRIPP = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
]


@pytest.mark.parametrize(("measurement", "value"), [("nominal", 0.743), ("interval", 0.849)])
def test_krippendorff_published_example(measurement, value):
    df = pd.DataFrame(np.array(KRIPP).T, columns=list("ABCD"))
    out = rel.krippendorff_alpha(df, measurement=measurement).iloc[0]
    assert round(out["estimate"], 3) == value
    assert out["n"] == 11  # unit 12 has a single code
    assert out["measurement"] == measurement


def test_krippendorff_level_is_the_older_name_of_measurement():
    df = pd.DataFrame(np.array(KRIPP).T, columns=list("ABCD"))
    with pytest.warns(DeprecationWarning, match="measurement="):
        old = rel.krippendorff_alpha(df, level="interval").iloc[0]["estimate"]
    assert round(old, 3) == 0.849
    with pytest.warns(DeprecationWarning, match="measurement="):
        both = rel.agreement(df, level="interval", measurement="interval")
    assert both.set_index("statistic").loc["krippendorff_alpha", "estimate"] == old
    with pytest.raises(ValueError, match="disagree"):
        rel.krippendorff_alpha(df, measurement="nominal", level="interval")


def test_level_is_the_confidence_level_and_ci_its_former_name():
    df = pd.DataFrame(np.array(KRIPP).T, columns=list("ABCD")).iloc[:, :2].dropna()
    codes = df.astype(int)
    new = rel.cohen_kappa(codes, level=0.9)
    with pytest.warns(DeprecationWarning, match="pass level="):
        old = rel.cohen_kappa(codes, ci=0.9)
    pd.testing.assert_frame_equal(new, old)
    wide = rel.cohen_kappa(codes)
    assert (new["ci_high"] - new["ci_low"] < wide["ci_high"] - wide["ci_low"]).all()
    with pytest.raises(ValueError, match="disagree"):
        rel.cohen_kappa(codes, level=0.9, ci=0.8)
    with pytest.raises(ValueError, match="between 0 and 1"):
        rel.cohen_kappa(codes, level=95)
    items = pd.DataFrame(np.random.default_rng(1).integers(1, 6, (60, 4)), columns=list("abcd"))
    with pytest.warns(DeprecationWarning):
        rel.alpha(items, ci=0.9)
    with pytest.warns(DeprecationWarning):
        rel.fleiss_kappa(codes, ci=0.9)
    with pytest.raises(ValueError, match="measurement must be one of"):
        rel.agreement(df, measurement="categorical")


def test_krippendorff_bootstrap_is_seeded():
    df = pd.DataFrame(np.array(KRIPP).T, columns=list("ABCD"))
    a = rel.krippendorff_alpha(df, n_boot=50, seed=3)
    b = rel.krippendorff_alpha(df, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "ci_low"] <= a.loc[0, "estimate"] <= a.loc[0, "ci_high"]


def test_agreement_two_and_three_coders():
    two = data("kappa_codes")
    out = rel.agreement(two, weights="quadratic").set_index("statistic")
    assert list(out.index) == [
        "percent_agreement",
        "cohen_kappa",
        "weighted_kappa",
        "krippendorff_alpha",
    ]
    np.testing.assert_allclose(
        out.loc["cohen_kappa", "estimate"], ref("kappa")["codes"]["kappa"], rtol=RTOL
    )
    three = two.assign(coder3=two["coder1"])
    out3 = rel.agreement(three).set_index("statistic")
    assert {"fleiss_kappa", "mean_pairwise_cohen_kappa"} <= set(out3.index)
    assert out3.loc["fleiss_kappa", "estimate"] > out.loc["cohen_kappa", "estimate"] - 0.2


# ---- multilevel reliability --------------------------------------------------------------
ML = [
    ("shrout", "shrout", "Person", "Time", ["Item1", "Item2", "Item3"]),
    ("sim", "ml_sim", "client", "time", [f"item{j}" for j in range(1, 5)]),
]


@pytest.mark.parametrize(("key", "csv", "grp", "time", "items"), ML)
def test_multilevel_reliability_matches_psych(key, csv, grp, time, items):
    r = ref("multilevel")[key]
    out = rel.multilevel_reliability(data(csv), items, grp, time).set_index("quantity")
    for q in ("RkF", "R1R", "RkR", "Rc"):
        np.testing.assert_allclose(out.loc[q, "estimate"], r["aov"][q], rtol=RTOL, err_msg=q)
    names = {
        "ID": "client",
        "Time": "session",
        "Items": "item",
        "ID x time": "client x session",
        "ID x items": "client x item",
        "time x items": "session x item",
        "Residual": "residual",
    }
    for theirs, ours in names.items():
        np.testing.assert_allclose(
            out.loc[ours, "estimate"], r["aov"]["components"][theirs], rtol=RTOL, err_msg=theirs
        )
    for q in ("RkRn", "Rcn"):
        np.testing.assert_allclose(out.loc[q, "estimate"], r["lmer"][q], rtol=RTOL_REML)
        np.testing.assert_allclose(out.loc[q, "estimate"], r["nlme"][q], rtol=RTOL_REML)
    assert out["n_clients"].iloc[0] == r["n_obs"] and out["n_sessions"].iloc[0] == r["n_time"]


def test_multilevel_reliability_unbalanced_needs_consent():
    df = data("shrout")
    df.loc[0, "Item1"] = np.nan
    items = ["Item1", "Item2", "Item3"]
    with pytest.raises(ValueError, match="balanced design.*drop_incomplete=True"):
        rel.multilevel_reliability(df, items, "Person", "Time")
    out = rel.multilevel_reliability(df, items, "Person", "Time", drop_incomplete=True)
    assert out["clients_dropped"].iloc[0] == 1 and out["rows_dropped"].iloc[0] == 4
    assert out["n_clients"].iloc[0] == 4


def test_demo_reliability_runs():
    study = alliance.datasets.load_dataset("demo")
    table = rel.alpha(study.sessions, instrument="phq9")
    assert table.loc[0, "n"] > 100 and 0 < table.loc[0, "alpha"] < 1


# ---- omega -------------------------------------------------------------------------------
RTOL_OMEGA = 1e-3  # iterative minres fit and GPA rotation; ~1e-5 achieved


@pytest.mark.parametrize(("key", "csv"), [("thurstone", "thurstone"), ("bfi_acn", "bfi_ac")])
def test_omega_matches_psych(key, csv):
    r = ref("omega")[key]
    out = rel.omega(data(csv), n_factors=3)
    for name in ("omega_h", "omega_total", "omega_limit", "alpha", "g6"):
        np.testing.assert_allclose(out.loc[0, name], r[name], rtol=RTOL_OMEGA, err_msg=name)
    loadings = out.tables["loadings"]
    np.testing.assert_allclose(loadings["g"], r["g"], atol=RTOL_OMEGA)
    np.testing.assert_allclose(loadings["h2"], r["h2"], atol=RTOL_OMEGA)


def test_omega_flips_reverse_keyed_items():
    out = rel.omega(data("bfi_ac"), n_factors=3)
    assert "A1" in out.attrs["reversed"]
    with pytest.raises(ValueError, match="n_factors"):
        rel.omega(data("attitude"), n_factors=4)


# References: tests/reference/psych_omega_multistart.R -> psych_omega_multistart.json
# (psych 2.2.9, psychTools::ability and bfi E1-E5, O1-O5, 3 factors). Tolerances: omega_h
# and omega_total 1e-4 absolute (issue 16); g and h2 loadings 1e-3; the off-diagonal
# residual sum of squares of the unrotated minres solution never above psych's.
@pytest.mark.parametrize(("key", "csv"), [("bfi_eo", "bfi_eo"), ("ability", "ability")])
def test_omega_factor_solution_at_least_as_good_as_psych(key, csv):
    from alliance.reliability.consistency import omega_extraction

    r = json.loads((REF / "psych_omega_multistart.json").read_text())[key]
    d = data(csv)
    out = rel.omega(d, n_factors=3)
    assert abs(out.loc[0, "omega_h"] - r["omega_h"]) < 1e-4
    assert abs(out.loc[0, "omega_total"] - r["omega_total"]) < 1e-4
    loadings = out.tables["loadings"]
    np.testing.assert_allclose(loadings["g"], r["g"], atol=1e-3)
    np.testing.assert_allclose(loadings["h2"], r["h2"], atol=1e-3)
    fit = omega_extraction(d.corr().to_numpy(), 3)
    assert fit["residual_ss"] <= r["residual_ss"] * (1 + 1e-9)
    np.testing.assert_allclose(fit["communalities"], r["communalities"], atol=1e-3)


def test_omega_extraction_escapes_a_worse_local_minimum():
    """On ability a single precise fit from 1 - smc stops at a worse minimum (0.0635 vs
    psych's 0.0631, one communality .60 instead of .18); the multi-start does not."""
    from alliance.reliability.consistency import omega_extraction

    r = json.loads((REF / "psych_omega_multistart.json").read_text())["ability"]
    corr = data("ability").corr().to_numpy()
    single = omega_extraction(corr, 3, multi_start=False)
    multi = omega_extraction(corr, 3)
    assert single["residual_ss"] > r["residual_ss"] + 1e-4  # the old single start
    assert multi["residual_ss"] <= r["residual_ss"] * (1 + 1e-9)
    assert multi["communalities"][8] < 0.25 < single["communalities"][8]
