"""Reliable-change methods and clinical-significance approaches on hand-worked cases.

Every expected value is worked out by hand in the comments from the formulas of the
methods' papers as the R package clinicalsignificance (Claus, Wager & Bonnet, 2024)
documents them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from alliance import change

# three clients, sessions 1 (pre) and 2 (post); reliability .8
# pre 30, 20, 25: M1 = 25, S1 = 5; post 18, 22, 15: M2 = 18.3333, S2^2 = 12.3333
# cov(pre, post) = (5 * -1/3 + -5 * 11/3 + 0 * -10/3) / 2 = -10
DATA = pd.DataFrame(
    {
        "client": ["a", "a", "b", "b", "c", "c"],
        "session": [1, 2, 1, 2, 1, 2],
        "y": [30, 18, 20, 22, 25, 15],
    }
)


def rci_a(method, **kw):
    rc = change.reliable_change(DATA, outcome="y", reliability=0.8, method=method, **kw)
    return rc.set_index("client").loc["a", "rci"], rc


def test_gln_by_hand():
    # (x2 - M1 - r (x1 - M1)) / (S1 sqrt(1 - r^2)) = (18 - 25 - 4) / (5 * 0.6) = -11 / 3
    value, rc = rci_a("GLN")
    assert value == pytest.approx(-11 / 3, abs=1e-9)
    assert rc.attrs["rci_method"] == "GLN" and "Hsu" in rc.attrs["citation"]


def test_hll_by_hand():
    # (x2 - M2 - r (x1 - M1)) / (S1 sqrt(1 - r^2)) = (18 - 18.3333 - 4) / 3 = -1.44444
    value, rc = rci_a("HLL")
    assert value == pytest.approx((18 - 55 / 3 - 4) / 3, abs=1e-9)
    assert value == pytest.approx(-1.44444, abs=1e-5)
    # |-1.444| < 1.96: not reliable
    assert rc.set_index("client").loc["a", "category"] == "no reliable change"


def test_en_by_hand():
    # true pre t1 = .8 * (30 - 25) + 25 = 29; (18 - 29) / (5 sqrt(.2)) = -11 / 2.23607
    value, _ = rci_a("EN")
    assert value == pytest.approx(-4.91935, abs=1e-5)


def test_nk_by_hand():
    # post reliability .5: sqrt(.8^2 * 25 * .2 + 25 * .5) = sqrt(3.2 + 12.5) = 3.96232
    # (18 - 29) / 3.96232 = -2.77615
    value, _ = rci_a("NK", reliability_post=0.5)
    assert value == pytest.approx(-2.77615, abs=1e-5)
    with pytest.raises(ValueError, match="reliability_post="):
        rci_a("NK")


def test_ha_by_hand():
    # SE = 5 sqrt(.2), SE^2 = 5; r_xx1 = (25 - 5) / 25 = .8;
    # r_xx2 = (12.3333 - 5) / 12.3333 = .594595; 2 S1 S2 r12 = 2 * cov = -20
    # r_dd = (25 * .8 + 12.3333 * .594595 + 20) / (25 + 12.3333 + 20)
    #      = 47.3333 / 57.3333 = .825581
    # RC = (-12 * .825581 + (18.3333 - 25) * .174419) / (sqrt(.825581) * sqrt(10))
    #    = (-9.90698 - 1.16279) / 2.87330 = -3.85263
    value, rc = rci_a("HA")
    assert value == pytest.approx(-3.85263, abs=1e-4)
    assert rc.attrs["critical_value"] == pytest.approx(1.645)
    assert "r_dd=0.8256" in rc.attrs["method"]


def test_jt_default_unchanged():
    # the default stays Jacobson & Truax: S_diff = sqrt(2) * 5 * sqrt(.2) = 3.16228
    rc = change.reliable_change(DATA, outcome="y", sd="pre", reliability=0.8)
    assert rc.loc[0, "rci"] == pytest.approx(-12 / 3.16228, abs=1e-5)
    assert rc.attrs["rci_method"] == "JT"
    with pytest.raises(ValueError, match="method="):
        change.reliable_change(DATA, outcome="y", reliability=0.8, method="XYZ")


# ------------------------------------------------------------------ approaches

# threshold 7 points, cut-off 16 (lower is better: >= 16 dysfunctional)
# a 30 -> 10  reliable better, crosses         -> recovered
# b 30 -> 20  reliable better, stays above     -> improved
# c 20 -> 18  no reliable change               -> unchanged
# d 20 -> 30  reliable worse, began above      -> deteriorated
# e 10 -> 20  reliable worse, crosses upward   -> harmed
# f 25        no post score (left out of the percentages)
CS = pd.DataFrame(
    [
        ("a", 1, 30), ("a", 2, 10), ("b", 1, 30), ("b", 2, 20), ("c", 1, 20),
        ("c", 2, 18), ("d", 1, 20), ("d", 2, 30), ("e", 1, 10), ("e", 2, 20),
        ("f", 1, 25),
    ],
    columns=["client", "session", "y"],
)  # fmt: skip


def cats(**kw):
    cs = change.clinical_significance(CS, outcome="y", threshold=7, cutoff=16, **kw)
    return cs["category"].tolist(), cs


def test_combined_with_harmed():
    got, cs = cats()
    assert got == ["recovered", "improved", "unchanged", "deteriorated", "harmed", "no post score"]
    summary = cs.attrs["summary"].set_index("category")
    # 5 clients with both scores: each category 1 of 5 = 20%
    assert summary["n"].tolist() == [1, 1, 1, 1, 1]
    assert summary["percent"].tolist() == [20.0] * 5
    assert "1 clients without them are left out" in cs.attrs["summary_note"]


def test_distribution_and_statistical():
    got, _ = cats(approach="distribution")
    assert got == [
        "improved",
        "improved",
        "unchanged",
        "deteriorated",
        "deteriorated",
        "no post score",
    ]
    # cut-off only: a crosses down (recovered), e crosses up (harmed); 20 -> 18 stays
    got, _ = cats(approach="statistical")
    assert got == ["recovered", "unchanged", "unchanged", "unchanged", "harmed", "no post score"]


def test_percentage_approach():
    # improvement 50%, deterioration 25%: a -66.7% improved, b -33.3% unchanged,
    # c -10% unchanged, d +50% deteriorated, e +100% deteriorated
    got, _ = cats(approach="percentage", pct_improvement=0.5, pct_deterioration=0.25)
    assert got == [
        "improved",
        "unchanged",
        "unchanged",
        "deteriorated",
        "deteriorated",
        "no post score",
    ]
    # with the cut-off: a recovered, e harmed
    got, _ = cats(
        approach="percentage", pct_improvement=0.5, pct_deterioration=0.25, with_cutoff=True
    )
    assert got == ["recovered", "unchanged", "unchanged", "deteriorated", "harmed", "no post score"]
    with pytest.raises(ValueError, match="pct_improvement="):
        cats(approach="percentage")


def test_anchor_approach():
    # MID 10 points: a (-20) and b (-10) improved, c (-2) unchanged, d and e (+10) worse
    got, _ = cats(approach="anchor", mid_improvement=10)
    assert got == [
        "improved",
        "improved",
        "unchanged",
        "deteriorated",
        "deteriorated",
        "no post score",
    ]
    got, _ = cats(approach="anchor", mid_improvement=10, with_cutoff=True)
    assert got == ["recovered", "improved", "unchanged", "deteriorated", "harmed", "no post score"]
    with pytest.raises(ValueError, match="mid_improvement="):
        cats(approach="anchor")


@pytest.mark.parametrize("method", ["JT", "GLN", "HLL", "EN", "NK", "HA"])
def test_band_edge_is_the_critical_value(method):
    # a post score on the band's lower edge has rci = -z exactly
    kw = {"reliability_post": 0.5} if method == "NK" else {}
    if method == "JT":
        kw["sd"] = "pre"
    rc = change.reliable_change(DATA, outcome="y", reliability=0.8, method=method, **kw)
    band, z = rc.attrs["band"], rc.attrs["critical_value"]
    edge = band["intercept"] + band["slope"] * 30 - band["half_width"]
    moved = DATA.astype({"y": float})
    moved.loc[1, "y"] = edge  # client a: pre 30, post on the edge
    # the sample means and SDs change with the moved score for GLN..HA, so compare
    # the index of the moved score under the original parameters
    if method == "JT":
        again = change.reliable_change(moved, outcome="y", reliability=0.8, sd=5.0)
        assert again.loc[0, "rci"] == pytest.approx(-z)
    else:
        # rci is linear in post: rci(post) = (post - intercept - slope * pre) / (hw / z)
        a = rc.set_index("client").loc["a"]
        slope_per_point = z / band["half_width"]
        assert a["rci"] == pytest.approx(
            (a["post"] - band["intercept"] - band["slope"] * 30) * slope_per_point
        )


def test_plots_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    from alliance import plots

    _, cs = cats()
    ax = plots.jacobson_truax(cs)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "harmed (1)" in labels and "recovered (1)" in labels
    assert "1 clients without both scores" in ax.get_title()
    cs = cs.assign(condition=["x", "x", "y", "y", "y", "x"])
    ax = plots.category_bars(cs, by="condition")
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    # x: a recovered, b improved -> 50% each; y: unchanged, deteriorated, harmed 33.3%
    assert heights[-2:] == [50.0, 50.0]
    assert heights.count(round(100 / 3, 6)) == 3


def test_within_effect_size_by_hand():
    # pre 20, 18, 25, 22: M 21.25, SS 26.75, S1 = sqrt(8.9167) = 2.98608
    # post 10, 12, 20, 14: M 14, SS 56, S2 = sqrt(18.6667) = 4.32049
    # improvement pre - post 10, 6, 5, 8: M 7.25, SS 14.75, S_D = sqrt(4.9167) = 2.21736
    # cov = (5 + 6.5 + 22.5 + 0) / 3 = 11.3333; r = 11.3333 / (2.98608 * 4.32049) = .878462
    # d_av = 7.25 / 3.653285 = 1.98451; d_z = 7.25 / 2.21736 = 3.26966
    # d_rm = 3.26966 * sqrt(2 * .121538) = 1.61203; J = 1 - 3 / 11 = .727273
    # se(d_z) = sqrt(1/4 + 3.26966^2 / 8) = 1.25950
    d = pd.DataFrame(
        {"client": [1, 1, 2, 2, 3, 3, 4, 4], "session": [1, 2] * 4,
         "y": [20, 10, 18, 12, 25, 20, 22, 14]}
    )  # fmt: skip
    es = change.within_effect_size(d, outcome="y").set_index("definition")
    assert es.loc["d_av", "estimate"] == pytest.approx(1.98451, abs=1e-5)
    assert es.loc["d_z", "estimate"] == pytest.approx(3.26966, abs=1e-5)
    assert es.loc["d_rm", "estimate"] == pytest.approx(1.61203, abs=1e-5)
    assert es.loc["d_z", "g"] == pytest.approx(3.26966 * 8 / 11, abs=1e-5)
    assert es.loc["d_z", "se"] == pytest.approx(1.25950, abs=1e-5)
    assert es.loc["d_z", "r"] == pytest.approx(0.878462, abs=1e-6)
    assert es.loc["d_z", "ci_low"] == pytest.approx(3.26966 - 1.959964 * 1.25950, abs=1e-4)


def test_benchmark_verdicts():
    # g(d_z) of the hand-worked case 2.37794, CI 2.37794 +/- .727273 * 1.95996 * 1.2595
    # = .58261 to 4.17326: 0.5 below the interval -> "above"; 3 inside; 5 -> "below"
    d = pd.DataFrame(
        {"client": [1, 1, 2, 2, 3, 3, 4, 4], "session": [1, 2] * 4,
         "y": [20, 10, 18, 12, 25, 20, 22, 14]}
    )  # fmt: skip
    es = change.within_effect_size(d, outcome="y")
    got = change.benchmark(es, {"low": 0.5, "mid": 3.0, "high": 5.0}, definition="d_z")
    assert got["verdict"].tolist() == ["above", "not distinguishable", "below"]
    assert got.loc[1, "difference"] == pytest.approx(2.37794 - 3.0, abs=1e-5)
    with pytest.raises(ValueError, match="no benchmarks are built in"):
        change.benchmark(es, {})


def test_hlm_matches_lme4():
    # tests/reference/hlm_eb_slopes.R: lme4 REML fit, ranef(condVar = TRUE)
    import json
    from pathlib import Path

    ref_dir = Path(__file__).parent / "reference"
    ref = json.loads((ref_dir / "hlm_eb_slopes.json").read_text())
    data = pd.read_csv(ref_dir / "data" / "hlm_eb_slopes.csv")
    rc = change.reliable_change(data, outcome="y", method="HLM")
    rc = rc.set_index(rc["client"].astype(str)).loc[ref["client"]]
    expect = [ref["fixed_slope"][0] + dev for dev in ref["deviation"]]
    assert rc["eb_slope"].to_numpy() == pytest.approx(expect, abs=2e-3)
    assert rc["eb_slope_sd"].to_numpy() == pytest.approx(ref["condsd"], abs=2e-3)
    assert rc["rci"].to_numpy() == pytest.approx(
        [e / s for e, s in zip(expect, ref["condsd"], strict=True)], abs=2e-2
    )
    assert rc.attrs["rci_method"] == "HLM"


# ------------------------------------------------- Hageman & Arrindell cut-offs


def test_ha_true_score_cutoffs_and_group_level_by_hand():
    # DATA with r = .8, clinical norms from pre (M 25, S 5), functional M 20, S 5
    # SE^2 = 25 * .2 = 5; r_clin = .8; r_func = (25 - 5) / 25 = .8
    # true SDs 5 sqrt(.8) = 4.47214 both, so c_true = (20 + 25) / 2 = 22.5
    # r_post = (12.3333 - 5) / 12.3333 = .594595; sqrt(r_post) SE = 1.724232
    # CS_indiv = (M2 + (x2 - M2) r_post - 22.5) / 1.724232:
    #   a (18): (18.3333 - .198198 - 22.5) / 1.724232 = -2.53148  reliably functional
    #   b (22): (18.3333 + 2.180180 - 22.5) / 1.724232 = -1.15210  not beyond 1.645
    #   c (15): (18.3333 - 1.981982 - 22.5) / 1.724232 = -3.56602  reliably functional
    # pre >= 22.5 (dysfunctional): a and c; HA RCIs a -3.85263, c -3.27797, b 0.16997
    kw = dict(outcome="y", reliability=0.8, method="HA", functional_mean=20, functional_sd=5)
    cs = change.clinical_significance(DATA, cutoff="c", **kw)
    assert cs["cutoff"].iloc[0] == pytest.approx(22.5)
    assert "true-score" in cs["cutoff_rule"].iloc[0]
    assert cs["cs_indiv"].tolist() == pytest.approx([-2.53148, -1.15210, -3.56602], abs=1e-4)
    assert cs["category"].tolist() == ["recovered", "unchanged", "recovered"]
    assert cs["rci"].iloc[2] == pytest.approx(-3.27797, abs=1e-4)
    # group level: D = -12, 2, -10, M_D = -6.6667, S_D = 7.57188, r_dd = .825581
    # changed: z = 6.6667 / (7.57188 sqrt(.825581)) = .969003, Phi(z) = .833728
    # functional: z = (22.5 - 18.3333) / (sqrt(12.3333) sqrt(.594595)) = 1.538644,
    # Phi(z) = .938054
    group = cs.attrs["group_summary"].set_index("category")
    assert group.loc["changed", "z"] == pytest.approx(0.969003, abs=1e-5)
    assert group.loc["changed", "proportion"] == pytest.approx(0.833728, abs=1e-5)
    assert group.loc["functional", "z"] == pytest.approx(1.538644, abs=1e-5)
    assert group.loc["functional", "proportion"] == pytest.approx(0.938054, abs=1e-5)
    # the statistical approach uses the same true-score rule (no RCI)
    stat = change.clinical_significance(DATA, cutoff="c", approach="statistical", **kw)
    assert stat["category"].tolist() == ["recovered", "unchanged", "recovered"]
    # other methods have no group-level summary and keep observed-score cut-offs
    jt = change.clinical_significance(
        DATA, outcome="y", sd="pre", reliability=0.8, functional_mean=20, functional_sd=5
    )
    assert jt.attrs["group_summary"] is None and "cs_indiv" not in jt
    # observed-score c = (5 * 25 + 5 * 20) / 10 = 22.5 too, but "Jacobson & Truax"
    assert jt["cutoff_rule"].iloc[0].startswith("Jacobson & Truax")


def test_ha_cutoffs_errors():
    with pytest.raises(ValueError, match="reliability="):
        change.clinical_cutoffs(30, 8, 8, 5, method="HA")
    # functional SD 2 is below the SE sqrt(64 * .2) = 3.58
    with pytest.raises(ValueError, match="not larger than the standard error"):
        change.clinical_cutoffs(30, 8, 8, 2, method="HA", reliability=0.8)
    with pytest.raises(ValueError, match="method="):
        change.clinical_cutoffs(30, 8, method="XX")


# ------------------------------- the clinicalsignificance package's documented counts


def _claus():
    """claus_2020 HAM-D pre (1) and post (4), and the counts its package documents.

    tests/reference/make_claus2020_data.py recovers the 40 patients' scores from the
    package's own figure; tests/reference/clinicalsignificance_claus2020.json holds the
    counts with their sources (snapshots and reference pages of the package).
    """
    import json
    from pathlib import Path

    ref_dir = Path(__file__).parent / "reference"
    ref = json.loads((ref_dir / "clinicalsignificance_claus2020.json").read_text())
    data = pd.read_csv(ref_dir / "data" / "claus2020_hamd.csv")
    return data, ref


CLAUS = dict(outcome="hamd", first=1, last=4, reliability=0.8)


def _rc_kw(method):
    kw = dict(CLAUS, method=method)
    if method == "NK":
        kw["reliability_post"] = 0.5
    if method == "JT":
        kw["sd"] = "pre"
    return kw


@pytest.mark.parametrize("method", ["JT", "GLN", "HLL", "EN", "NK", "HA"])
def test_claus2020_distribution_and_combined_counts(method):
    data, ref = _claus()
    kw = _rc_kw(method)
    dist = change.clinical_significance(data, approach="distribution", **kw)
    assert dist.attrs["summary"]["n"].tolist() == ref["distribution"][method]
    comb = change.clinical_significance(data, functional_mean=8, functional_sd=8, cutoff="c", **kw)
    assert comb.attrs["summary"]["category"].tolist() == ref["combined_order"]
    assert comb.attrs["summary"]["n"].tolist() == ref["combined"][method]
    if method == "HA":
        group = comb.attrs["group_summary"].set_index("category")["percent"]
        for name, value in ref["ha_group_level_percent"].items():
            assert group[name] == pytest.approx(value, abs=0.005)


def test_claus2020_statistical_and_percentage_counts():
    data, ref = _claus()
    # descriptives of the clinical (pre) scores: 24.85 and 3.34
    rc = change.reliable_change(data, **_rc_kw("JT"))
    assert rc["pre"].mean() == pytest.approx(ref["descriptives"]["m_clinical"], abs=0.005)
    assert rc["pre"].std() == pytest.approx(ref["descriptives"]["sd_clinical"], abs=0.005)
    norms = dict(functional_mean=8, functional_sd=8)
    for key, method, cutoff, extra in (
        ("JT_a", "JT", "a", {}),
        ("JT_c", "JT", "c", norms),
        ("HA_c_true", "HA", "c", norms),
    ):
        cs = change.clinical_significance(
            data, approach="statistical", cutoff=cutoff, **_rc_kw(method), **extra
        )
        expect = ref["statistical"][key]
        assert cs["cutoff"].iloc[0] == pytest.approx(expect["cutoff"], abs=0.005), key
        assert cs.attrs["summary"]["n"].tolist() == expect["counts"], key
    for key, extra in (
        ("pct_improvement_0.5", {}),
        ("pct_improvement_0.5_deterioration_0.3", {"pct_deterioration": 0.3}),
    ):
        cs = change.clinical_significance(
            data, approach="percentage", pct_improvement=0.5, **_rc_kw("JT"), **extra
        )
        assert cs.attrs["summary"]["n"].tolist() == ref["percentage"][key]
