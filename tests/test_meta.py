"""Tests of alliance.meta against R's metafor / clubSandwich and on known truths.

Reference values come from ``tests/reference/metafor_reference.R`` (metafor 3.8-1,
clubSandwich 0.5.8), stored in ``tests/reference/metafor_reference.json``.

Tolerances: rtol 1e-6 with atol 1e-8 (for values at or near zero, e.g. tau^2 on the
homogeneous simulated data) on estimates, SEs, tau^2, I^2, H^2, Q statistics, p values
and intervals of ``rma.uni``; the same for ``rma.mv``, whose reference optimizer (nlminb)
is the looser of the two (about 5e-7 relative on sigma^2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import ipd, meta

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "metafor_reference.json").read_text())
RTOL, ATOL = 1e-6, 1e-8


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "data" / f"meta_{name}.csv")


DATA = {
    "molloy2014": _read("molloy2014"),
    "bcg": _read("bcg"),
    "alliance": _read("alliance_outcome"),
    "sim_homog": _read("sim_homog"),
    "konstantopoulos2011": _read("konstantopoulos2011"),
}
ES_ARGS = {
    "molloy2014": {"r": "ri", "n": "ni"},
    "bcg": {"yi": "yi", "vi": "vi"},
    "alliance": {"r": "r", "n": "n"},
    "sim_homog": {"r": "r", "n": "n"},
}


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol
    )


def _fit(rec, **extra):
    return meta.meta_analysis(
        DATA[rec["dataset"]],
        study=None,
        mods=rec.get("mods"),
        method=rec["method"],
        test=rec["test"],
        **ES_ARGS[rec["dataset"]],
        **extra,
    )


def _id(rec):
    return f"{rec['dataset']}-{rec['method']}-{rec['test']}-{rec.get('mods') or 'int'}"


# ---- rma.uni -----------------------------------------------------------------------------
@pytest.mark.parametrize("rec", REF["uni"], ids=_id)
def test_rma_uni_matches_metafor(rec):
    res = _fit(rec)
    close(res.params["estimate"], rec["beta"])
    close(res.params["se"], rec["se"])
    close(res.params["statistic"], rec["zval"])
    close(res.params["p"], rec["pval"])
    close(res.params["ci_low"], rec["ci_lb"])
    close(res.params["ci_high"], rec["ci_ub"])
    close(res.tau2, rec["tau2"])
    close(res.I2, rec["I2"])
    close(res.H2, rec["H2"])
    close(res.Q, rec["QE"])
    close(res.Q_p, rec["QEp"])
    close(res.QM, rec["QM"])
    close(res.QM_p, rec["QMp"])
    assert res.k == rec["k"]
    if rec["method"] != "FE":
        close(res.se_tau2, rec["se_tau2"])
        het = res.heterogeneity.set_index("parameter")
        close(het.loc["tau2", ["ci_low", "ci_high"]], rec["tau2_ci"])
        close(het.loc["I2", ["ci_low", "ci_high"]], rec["I2_ci"])
        close(het.loc["H2", ["ci_low", "ci_high"]], rec["H2_ci"])
    close(res.loglik, rec["ll_reml"] if rec["method"] == "REML" else rec["ll_ml"])
    if rec.get("mods") is None:
        close(res.estimate, rec["pred"])
        if rec["method"] != "FE":
            close([res.pi_low, res.pi_high], [rec["pi_lb"], rec["pi_ub"]])
    else:
        close(res.R2, rec["R2"], atol=1e-6)


def test_reference_covers_estimators_and_datasets():
    seen = {(r["dataset"], r["method"], r["test"]) for r in REF["uni"]}
    for ds in ("molloy2014", "bcg", "alliance", "sim_homog"):
        for m in ("REML", "ML", "DL", "PM", "HE", "SJ"):
            assert (ds, m, "z") in seen and (ds, m, "knha") in seen
    # the homogeneous simulated data put some estimators on the boundary
    assert any(r["tau2"] == 0 for r in REF["uni"] if r["dataset"] == "sim_homog")


def test_correlation_scale_attributes():
    rec = next(r for r in REF["uni"] if r["dataset"] == "molloy2014" and r["method"] == "REML")
    res = _fit(rec)
    assert res.z == pytest.approx(rec["pred"], rel=RTOL)
    assert res.r == pytest.approx(np.tanh(rec["pred"]), rel=RTOL)
    assert res.r_ci_low == pytest.approx(np.tanh(np.atleast_1d(rec["ci_lb"])[0]), rel=RTOL)
    assert res.r_pi_high == pytest.approx(np.tanh(rec["pi_ub"]), rel=RTOL)
    frame = res.pooled()
    assert frame["scale"].tolist() == ["z", "r"]
    for col in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "I2", "Q", "k"):
        assert col in frame
    assert frame.loc[1, "estimate"] == pytest.approx(res.r)
    # to_frame is the results contract's table, the same layout as every other analysis
    contract = res.to_frame()
    assert contract.columns[:3].tolist() == ["model", "term", "estimate"]
    assert contract["estimate"].iloc[0] == pytest.approx(res.z)


def test_sei_and_vi_give_the_same_model():
    d = DATA["bcg"].assign(sei=np.sqrt(DATA["bcg"]["vi"]))
    a = meta.meta_analysis(d, study="author", yi="yi", vi="vi")
    b = meta.meta_analysis(d, study="author", yi="yi", sei="sei")
    assert a.estimate == pytest.approx(b.estimate, rel=1e-12)
    assert a.r is None and a.z is None


def test_fisher_z_by_hand():
    d = pd.DataFrame({"study": list("abc"), "r": [0.1, 0.3, 0.5], "n": [50, 100, 200]})
    res = meta.meta_analysis(d, method="FE")
    z, w = np.arctanh(d["r"]), d["n"] - 3
    assert res.z == pytest.approx(np.sum(w * z) / np.sum(w), rel=1e-12)
    assert res.se == pytest.approx(1 / np.sqrt(w.sum()), rel=1e-12)


def test_predict_with_moderators():
    rec = next(r for r in REF["uni"] if r["dataset"] == "bcg" and r.get("mods") == "~ ablat")
    res = _fit(rec)
    pr = res.predict(pd.DataFrame({"ablat": [0.0, 30.0]}))
    close(pr["estimate"], [rec["beta"][0], rec["beta"][0] + 30 * rec["beta"][1]])
    with pytest.raises(ValueError, match="newdata"):
        res.predict()
    assert np.isnan(res.estimate)
    assert res.to_frame()["term"].tolist() == ["intercept", "ablat"]


# ---- small-study and sensitivity tools ---------------------------------------------------
def _uni(dataset, method="REML", test="z"):
    return meta.meta_analysis(
        DATA[dataset], study=None, method=method, test=test, **ES_ARGS[dataset]
    )


@pytest.mark.parametrize(
    "rec", REF["egger"], ids=lambda r: f"{r['dataset']}-{r['model']}-{r['test']}"
)
def test_egger_matches_regtest(rec):
    res = _uni(rec["dataset"], rec["method"], "z" if rec["model"] == "lm" else rec["test"])
    eg = meta.egger_test(res, model=rec["model"]).iloc[0]
    close(eg["statistic"], rec["stat"])
    close(eg["p"], rec["p"])
    close(eg["limit"], rec["limit"])
    close([eg["limit_ci_low"], eg["limit_ci_high"]], rec["limit_ci"])
    # regtest gives no df for a z test; ours is infinite there
    assert eg["df"] == (np.inf if rec["df"] is None else rec["df"])


@pytest.mark.parametrize(
    "rec", REF["trimfill"], ids=lambda r: f"{r['dataset']}-{r['method']}-{r['estimator']}"
)
def test_trim_and_fill_matches_trimfill(rec):
    tf = meta.trim_and_fill(_uni(rec["dataset"], rec["method"]), estimator=rec["estimator"])
    assert tf.side == rec["side"]
    assert tf.k0 == rec["k0"]
    close(tf.result.estimate, rec["beta"])
    close(tf.result.se, rec["se"])
    close(tf.result.tau2, rec["tau2"])
    close([tf.result.ci_low, tf.result.ci_high], [rec["ci_lb"], rec["ci_ub"]])
    close(np.sort(tf.filled["yi"]), np.sort(np.atleast_1d(rec["yi_filled"])))


@pytest.mark.parametrize("rec", REF["leave1out"], ids=lambda r: f"{r['dataset']}-{r['test']}")
def test_leave_one_out_matches_leave1out(rec):
    loo = meta.leave_one_out(_uni(rec["dataset"], rec["method"], rec["test"]))
    close(loo["estimate"], rec["estimate"])
    close(loo["se"], rec["se"])
    close(loo["ci_low"], rec["ci_lb"])
    close(loo["ci_high"], rec["ci_ub"])
    close(loo["Q"], rec["Q"])
    close(loo["tau2"], rec["tau2"])
    close(loo["I2"], rec["I2"])


@pytest.mark.parametrize("rec", REF["influence"], ids=lambda r: f"{r['dataset']}-{r['test']}")
def test_influence_matches_metafor(rec):
    inf = meta.influence(_uni(rec["dataset"], rec["method"], rec["test"]))
    for ours, theirs in [
        ("rstudent", "rstudent"),
        ("dffits", "dffits"),
        ("cook_d", "cook_d"),
        ("cov_r", "cov_r"),
        ("tau2_del", "tau2_del"),
        ("QE_del", "QE_del"),
        ("hat", "hat"),
        ("weight", "weight"),
        ("dfbetas_intercept", "dfbetas"),
    ]:
        close(inf[ours], rec[theirs])


# ---- three-level model and CR2 -----------------------------------------------------------
def _mv(rec):
    return meta.multilevel_meta_analysis(
        DATA["konstantopoulos2011"],
        yi="yi",
        vi="vi",
        study="district",
        effect="school",
        mods=rec["mods"],
        method=rec["method"],
        test=rec["test"],
    )


@pytest.mark.parametrize("rec", REF["mv"], ids=lambda r: f"{r['method']}-{r['test']}-{r['mods']}")
def test_rma_mv_three_level_matches_metafor(rec):
    res = _mv(rec)
    close(res.params["estimate"], rec["beta"])
    close(res.params["se"], rec["se"])
    close(res.params["ci_low"], rec["ci_lb"])
    close(res.params["ci_high"], rec["ci_ub"])
    close(res.params["p"], rec["pval"])
    close(res.sigma2, rec["sigma2"])
    close(res.Q, rec["QE"])
    close(res.QM, rec["QM"])
    close(res.loglik, rec["ll"])
    if rec["mods"] is None:
        close([res.pi_low, res.pi_high], [rec["pi_lb"], rec["pi_ub"]])


@pytest.mark.parametrize("rec", REF["cr2"], ids=lambda r: f"{r['model']}-{r['method']}-{r['mods']}")
def test_cr2_matches_clubsandwich(rec):
    if rec["model"] == "rma.mv":
        res = _mv({**rec, "test": "z"})
    else:
        res = meta.meta_analysis(
            DATA["konstantopoulos2011"], yi="yi", vi="vi", study=None, mods=rec["mods"]
        )
    rob = meta.cluster_robust(res, cluster="district")
    close(rob["estimate"], rec["beta"])
    close(rob["se"], rec["se"])
    close(rob["df"], rec["df"])
    close(rob["p"], rec["p"])
    assert (rob["clusters"] == 11).all()


def test_cluster_robust_requires_nesting():
    res = _mv({"mods": None, "method": "REML", "test": "z"})
    with pytest.raises(ValueError, match="not nested"):
        meta.cluster_robust(res, cluster="year")  # a district spans several years
    with pytest.raises(KeyError, match="cluster"):
        meta.cluster_robust(res, cluster="distrct")


# ---- input checks ------------------------------------------------------------------------
def test_missing_column_names_close_match():
    with pytest.raises(KeyError, match="Did you mean 'ri'"):
        meta.meta_analysis(DATA["molloy2014"], r="rii", n="ni", study=None)


def test_impossible_values_raise_with_rows():
    d = pd.DataFrame({"study": list("abc"), "r": [0.2, 1.0, 0.3], "n": [40, 50, 60]})
    with pytest.raises(ValueError, match=r"outside \(-1, 1\).*row 1"):
        meta.meta_analysis(d)
    d = pd.DataFrame({"study": list("abc"), "r": [0.2, 0.1, 0.3], "n": [40, 3, 60]})
    with pytest.raises(ValueError, match="n > 3"):
        meta.meta_analysis(d)
    with pytest.raises(ValueError, match="method must be one of"):
        meta.meta_analysis(DATA["alliance"], method="EB")
    with pytest.raises(ValueError, match="test must be"):
        meta.meta_analysis(DATA["alliance"], test="t")
    with pytest.raises(ValueError, match="vi="):
        meta.meta_analysis(DATA["bcg"], yi="yi", study=None)


def test_missing_rows_are_excluded_and_logged():
    d = DATA["alliance"].copy()
    d.loc[[3, 10], "r"] = np.nan
    d.loc[20, "rater"] = None
    res = meta.meta_analysis(d, mods="~ rater")
    assert res.k == 57
    assert res.excluded_rows["row"].tolist() == [3, 10, 20]
    assert "missing r" in res.excluded_rows["reason"].iloc[0]
    assert "missing rater" in res.excluded_rows["reason"].iloc[2]
    # the exclusion log of the results contract: one row per reason
    log = res.excluded.set_index("reason")
    assert list(res.excluded.columns) == ["reason", "column", "n_rows", "n_clients"]
    assert log.loc["missing r", "n_rows"] == 2 and log.loc["missing r", "column"] == "r"
    assert log.loc["missing rater", "column"] == "rater"
    assert log.loc["missing rater", "n_clients"] == d.loc[20, "n"]
    assert log.loc["missing r", "n_clients"] == d.loc[[3, 10], "n"].sum()


def test_collinear_moderators_raise():
    d = DATA["alliance"].assign(year2=lambda x: x["year"] * 2)
    with pytest.raises(ValueError, match="collinear"):
        meta.meta_analysis(d, mods=["year", "year2"])


def test_multilevel_duplicate_effect_ids_raise():
    d = DATA["konstantopoulos2011"].copy()
    d.loc[1, "school"] = d.loc[0, "school"]
    with pytest.raises(ValueError, match="identified uniquely"):
        meta.multilevel_meta_analysis(d, yi="yi", vi="vi", study="district", effect="school")


# ---- two-stage IPD -----------------------------------------------------------------------
def _ipd(seed=7, n_sites=8, n_clients=40, rho=-0.4):
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(n_sites), n_clients)
    client = np.tile(np.arange(n_clients), n_sites)
    a = rng.normal(size=site.size)
    last = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=site.size)
    rows = []
    for s in range(1, 7):
        rows.append(
            pd.DataFrame(
                {
                    "site": [f"site{x}" for x in site],
                    "client": client,
                    "session": s,
                    "wai": a + (0 if s <= 3 else rng.normal(0, 5, site.size)),
                    "phq9": np.where(s == 6, last, rng.normal(0, 5, site.size)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_two_stage_ipd_recovers_correlation():
    long = _ipd()
    res = ipd.two_stage_ipd(long, alliance="wai", outcome="phq9", group="site")
    assert res.k == 8
    assert (res.data["n"] == 40).all()
    # per-site r computed by hand for one site
    one = long[long["site"] == "site0"]
    early = one[one["session"] <= 3].groupby("client")["wai"].mean()
    last = one[one["session"] == 6].set_index("client")["phq9"]
    assert res.data.loc[0, "r"] == pytest.approx(np.corrcoef(early, last.loc[early.index])[0, 1])
    assert -0.5 < res.r < -0.3
    assert res.test == "knha"


def test_two_stage_ipd_logs_small_groups_and_clients():
    long = _ipd(n_sites=4, n_clients=20)
    long.loc[long["site"] == "site3", "site"] = np.where(
        long.loc[long["site"] == "site3", "client"] < 3, "tiny", "site3"
    )
    long.loc[(long["client"] == 5) & (long["site"] == "site0") & (long["session"] > 1), "phq9"] = (
        np.nan
    )
    res = ipd.two_stage_ipd(long, alliance="wai", outcome="phq9", group="site")
    assert res.k == 4
    ex = res.excluded_rows
    assert ex.loc[ex["level"] == "group", "site"].tolist() == ["tiny"]
    client_rows = ex[ex["level"] == "client"]
    assert len(client_rows) == 1 and "within the early window" in client_rows["reason"].iloc[0]
    log = res.excluded.set_index("reason")
    # the client of site0 under its own reason (6 session rows); "tiny" keeps its 3 clients
    assert log.loc[client_rows["reason"].iloc[0], ["n_rows", "n_clients"]].tolist() == [6, 1]
    tiny = log.loc["fewer than 4 usable clients (Fisher's z needs n > 3)"]
    assert tiny[["column", "n_rows", "n_clients"]].tolist() == ["site", 18, 3]
    assert res.n["clients"] == res.data["n"].sum() == 3 * 20 - 1 + 17
    with pytest.raises(KeyError, match="alliance"):
        ipd.two_stage_ipd(long, alliance="wai_sr", outcome="phq9")


def test_two_stage_ipd_uses_the_shared_early_window():
    # a client who missed the rating of session 2: the first 3 *rated* sessions are 1, 3, 4
    long = _ipd(n_sites=4, n_clients=20)
    gap = (long["site"] == "site0") & (long["client"] == 0)
    long.loc[gap & (long["session"] == 2), "wai"] = np.nan
    res = ipd.two_stage_ipd(long, alliance="wai", outcome="phq9", group="site")
    assert res.n["clients"] == 80  # kept: its window is sessions 1, 3 and 4
    one = long[gap & long["wai"].notna()].nsmallest(3, "session")["wai"].mean()
    site0 = long[long["site"] == "site0"]
    early = site0[site0["session"] <= 3].groupby("client")["wai"].mean()
    early.loc[0] = one
    last = site0[site0["session"] == 6].set_index("client")["phq9"]
    r = np.corrcoef(early, last.loc[early.index])[0, 1]
    assert res.data.set_index("site").loc["site0", "r"] == pytest.approx(r)
    # at least 2 of 3 ratings: counted windows of session numbers, the client is kept
    # with a shorter window; needing all 3 numbers drops it and counts it
    strict = ipd.two_stage_ipd(
        long,
        alliance="wai",
        outcome="phq9",
        group="site",
        early=alliance.design.EarlyWindow(3, counts="numbers", min_ratings=3),
    )
    assert strict.n["clients"] == 79
    assert strict.excluded.set_index("reason").filter(like="fewer than", axis=0)[
        "n_clients"
    ].tolist() == [1]
    assert any("1 client(s) had too few ratings" in n for n in strict.notes)


# ---- bundled dataset ---------------------------------------------------------------------
def test_example_dataset_is_synthetic_and_calibrated():
    studies = meta.example_studies()
    assert meta.example_studies.codebook()["synthetic"] is True
    assert "SYNTHETIC" in meta.example_studies.codebook()["description"]
    res = meta.meta_analysis(studies)
    assert 0.25 < res.r < 0.32
    assert 30 < res.I2 < 80
    pd.testing.assert_frame_equal(studies, DATA["alliance"])


def test_example_dataset_is_reproducible():
    import importlib.util

    path = Path(alliance.datasets.__file__).parent / "make_meta_example.py"
    spec = importlib.util.spec_from_file_location("make_meta_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pd.testing.assert_frame_equal(mod.make(), meta.example_studies(), check_dtype=False)


def test_two_stage_ipd_on_demo_study(demo):
    study = demo
    res = ipd.two_stage_ipd(study.sessions, alliance="wai_sr", outcome="phq9", group="site")
    groups_out = (res.excluded_rows["level"] == "group").sum()
    assert res.k == study.sessions["site"].nunique() - groups_out
    assert res.r < 0  # better early alliance, lower final PHQ-9
    assert list(res.excluded_rows.columns) == ["level", "site", "client", "reason"]
    assert list(res.excluded.columns) == ["reason", "column", "n_rows", "n_clients"]


def test_moved_names_stay_importable_from_meta():
    assert meta.two_stage_ipd is ipd.two_stage_ipd
    assert meta.example_studies is alliance.datasets.example_studies
    from alliance.meta import two_stage_ipd

    assert two_stage_ipd is ipd.two_stage_ipd
