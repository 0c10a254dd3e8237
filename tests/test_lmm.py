"""Tests of alliance.models.lmm: agreement with lme4/lmerTest and statsmodels, properties.

Reference values: tests/reference/lme4_*.json, written by tests/reference/lme4_reference.R
(lme4 with bobyqa at rhoend 1e-12 then Nelder-Mead polish; lmerTest Satterthwaite df) on the
CSV data made by tests/reference/make_lmm_data.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance.models import LmmResult, lmm
from alliance.models._lmm_core import LevelSpec, ProfiledDeviance, build_structure
from alliance.models._lmm_crossed import CrossedDeviance, build_crossed
from alliance.models._lmm_formula import parse_formula

REF = Path(__file__).parent / "reference"
REF_FILES = sorted(REF.glob("lme4_*.json"))

# tolerances (relative unless stated)
TOL_FIXED = 1e-5
TOL_SE = 1e-4
TOL_VC = 1e-4
ABS_VC = 1e-6  # absolute, for components at or near zero
TOL_DF = 1e-3
TOL_LOGLIK = 1e-6  # ours may be higher; never lower by more than this (relative)


def _load(path: Path) -> tuple[dict, pd.DataFrame]:
    ref = json.loads(path.read_text())
    data = pd.read_csv(REF / ref["data"])
    return ref, data


def _py_formula(r_formula: str) -> str:
    return r_formula.replace("^", "**")


def _r_term(name: str) -> str:
    """Our (formulaic) coefficient name written the way lme4 writes it."""
    name = name.replace("Intercept", "(Intercept)")
    name = re.sub(r"(\w+)\[T\.(\w+)\]", r"\1\2", name)
    return name.replace(" ** ", "^")


@pytest.fixture(scope="module", params=REF_FILES, ids=[p.stem[5:] for p in REF_FILES])
def reference_fit(request) -> tuple[dict, LmmResult]:
    ref, data = _load(request.param)
    fit = lmm(_py_formula(ref["formula"]), data, reml=ref["reml"])
    return ref, fit


def test_reference_designs_cover_the_issue():
    names = {json.loads(p.read_text())["name"] for p in REF_FILES}
    assert {"intercept", "slope", "nested", "site", "boundary"} <= names


def test_fixed_effects_match_lme4(reference_fit):
    ref, fit = reference_fit
    fe = ref["fixef"]
    assert [_r_term(t) for t in fit.params["term"]] == fe["term"]
    np.testing.assert_allclose(fit.params["estimate"], fe["estimate"], rtol=TOL_FIXED)
    np.testing.assert_allclose(fit.params["se"], fe["se"], rtol=TOL_SE)
    np.testing.assert_allclose(fit.cov_params.to_numpy(), ref["vcov"], rtol=TOL_SE, atol=1e-10)


def test_satterthwaite_df_match_lmertest(reference_fit):
    ref, fit = reference_fit
    fe = ref["fixef"]
    np.testing.assert_allclose(fit.params["df"], fe["df"], rtol=TOL_DF)
    np.testing.assert_allclose(fit.params["statistic"], fe["t"], rtol=TOL_SE)
    np.testing.assert_allclose(fit.params["p"], fe["p"], rtol=1e-2, atol=1e-12)


def test_variance_components_match_lme4(reference_fit):
    ref, fit = reference_fit
    vc = ref["varcorr"]
    theirs = {
        (g.split(".")[0], v1, v2): (val, sd)
        for g, v1, v2, val, sd in zip(
            vc["grp"], vc["var1"], vc["var2"], vc["vcov"], vc["sdcor"], strict=True
        )
    }
    ours = fit.variance_components
    assert len(ours) == len(theirs)
    for row in ours.itertuples(index=False):
        key = (row.group, _r_term(row.term), _r_term(row.term2))
        val, sd = theirs[key]
        assert row.vcov == pytest.approx(val, rel=TOL_VC, abs=ABS_VC), key
        if row.term2 == "":
            assert row.sdcor == pytest.approx(sd, rel=TOL_VC, abs=1e-3), key
        elif abs(sd) < 0.999:  # a correlation; undefined-ish when a variance is zero
            assert row.sdcor == pytest.approx(sd, rel=1e-3, abs=1e-3), key
    assert fit.sigma == pytest.approx(ref["sigma"], rel=TOL_VC)


def test_loglik_and_information_criteria(reference_fit):
    ref, fit = reference_fit
    assert fit.loglik >= ref["loglik"] - TOL_LOGLIK * abs(ref["loglik"])
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-8)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-8)
    assert fit.bic == pytest.approx(ref["bic"], rel=1e-8)
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.converged
    assert fit.singular == ref["singular"]


def test_conditional_modes_match_lme4(reference_fit):
    ref, fit = reference_fit
    for group, re_ref in ref["ranef"].items():
        ours = fit.random_effects[group]
        terms = re_ref["terms"]
        terms = [terms] if isinstance(terms, str) else terms  # jsonlite unboxes length-1
        theirs = pd.DataFrame(
            np.asarray(re_ref["values"]).reshape(len(re_ref["levels"]), len(terms)),
            index=re_ref["levels"],
            columns=[c.replace("(Intercept)", "Intercept") for c in terms],
        )
        if isinstance(ours.index, pd.MultiIndex):  # a:b groups, which lme4 labels "x:y"
            ours = ours.set_axis([":".join(map(str, t)) for t in ours.index], axis=0)
        ours = ours.loc[theirs.index, theirs.columns]
        scale = np.maximum(theirs.abs().max().to_numpy(), 1e-3)
        np.testing.assert_allclose(ours.to_numpy() / scale, theirs.to_numpy() / scale, atol=1e-4)


def test_missing_values_are_counted_not_hidden():
    ref, data = _load(REF / "lme4_nested.json")
    fit = lmm(_py_formula(ref["formula"]), data)
    assert fit.n_excluded == data[["phq9", "alliance_within"]].isna().any(axis=1).sum() == 6
    counts = dict(zip(fit.excluded["column"], fit.excluded["n_rows"], strict=True))
    assert counts == {"phq9": 4, "alliance_within": 2}
    assert fit.nobs + fit.n_excluded == len(data)
    assert set(fit.excluded_index) == set(data.index[data.isna().any(axis=1)])


# --------------------------------------------------------------------------- statsmodels


# statsmodels is a dependency of the package, so these comparisons are never skipped


@pytest.mark.parametrize("slope", [False, True], ids=["intercept", "slope"])
def test_agrees_with_statsmodels(slope):
    import warnings

    import statsmodels.formula.api as smf

    data = pd.read_csv(REF / "data" / "lmm_main.csv").dropna()
    fixed = "phq9 ~ alliance_within + alliance_between + session"
    re_formula = "~session" if slope else "~1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm(fixed, data, groups=data["client"], re_formula=re_formula).fit(
            reml=True, method=["powell", "lbfgs"]
        )
    re = "(1 + session | client)" if slope else "(1 | client)"
    fit = lmm(f"{fixed} + {re}", data)
    # statsmodels' own optimum is less precise (its default lbfgs alone stops short on the
    # slope model), so the tolerances here are looser than against lme4; its REML
    # log-likelihood is on the same scale and ours must be at least as high
    assert fit.loglik >= sm.llf - 1e-9 * abs(sm.llf)
    assert fit.loglik == pytest.approx(sm.llf, rel=1e-7)
    np.testing.assert_allclose(fit.params["estimate"], sm.fe_params.to_numpy(), rtol=5e-4)
    np.testing.assert_allclose(fit.params["se"], sm.bse_fe.to_numpy(), rtol=5e-3)
    cov_sm = sm.cov_re.to_numpy()
    cov = fit.covariances["client"].to_numpy()
    np.testing.assert_allclose(cov, cov_sm, rtol=5e-3, atol=1e-3)
    assert fit.sigma**2 == pytest.approx(sm.scale, rel=1e-3)


def test_nested_intercepts_agree_with_statsmodels_variance_components():
    import warnings

    import statsmodels.formula.api as smf

    data = pd.read_csv(REF / "data" / "lmm_main.csv").dropna()
    fixed = "phq9 ~ alliance_within + alliance_between + session"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm(
            fixed,
            data,
            groups=data["therapist"],
            re_formula="1",
            vc_formula={"client": "0 + C(client)"},
        ).fit(reml=True, method=["powell", "lbfgs"])
    fit = lmm(f"{fixed} + (1 | therapist/client)", data)
    assert fit.loglik >= sm.llf - 1e-9 * abs(sm.llf)
    assert fit.loglik == pytest.approx(sm.llf, rel=1e-8)
    np.testing.assert_allclose(fit.params["estimate"], sm.fe_params.to_numpy(), rtol=1e-6)
    vc = fit.variance_components.set_index("group")["vcov"]
    assert vc["therapist"] == pytest.approx(sm.cov_re.iloc[0, 0], rel=1e-4)
    assert vc["therapist:client"] == pytest.approx(sm.vcomp[0], rel=1e-4)
    assert vc["Residual"] == pytest.approx(sm.scale, rel=1e-4)


# --------------------------------------------------------------------------- random designs


def simulate_sessions(
    seed: int,
    *,
    n_therapists: int = 8,
    clients: tuple[int, int] = (1, 7),
    max_sessions: int = 9,
    n_sites: int = 0,
) -> pd.DataFrame:
    """Unbalanced nested sessions: single-session clients, missed sessions, uneven therapists."""
    rng = np.random.default_rng(seed)
    rows = []
    cid = 0
    for t in range(n_therapists):
        site = f"s{t % n_sites}" if n_sites else "s0"
        th_eff = rng.normal(0, 1.0)
        for _ in range(int(rng.integers(clients[0], clients[1] + 1))):
            cid += 1
            b0, b1 = rng.normal(0, [2.0, 0.3])
            n_sess = 1 if rng.random() < 0.2 else int(rng.integers(2, max_sessions + 1))
            sess = np.arange(n_sess)
            sess = sess[(rng.random(n_sess) > 0.2) | (sess == 0)]
            for s in sess:
                x = rng.normal()
                y = 10 + th_eff + b0 + (b1 - 0.4) * s + 0.8 * x + rng.normal(0, 1.5)
                rows.append((f"t{t}", f"c{cid}", site, int(s), x, y))
    return pd.DataFrame(rows, columns=["therapist", "client", "site", "session", "x", "y"])


def dense_deviance(data, theta, reml, three_levels=False):
    """Profiled (RE)ML deviance from the dense marginal covariance (small data only)."""
    y = data["y"].to_numpy()
    n = len(y)
    x = np.column_stack([np.ones(n), data["x"], data["session"]])
    p = x.shape[1]
    cl = pd.factorize(data["client"])[0]
    th = pd.factorize(data["therapist"])[0]
    zc = np.zeros((n, 2 * (cl.max() + 1)))
    zc[np.arange(n), 2 * cl] = 1.0
    zc[np.arange(n), 2 * cl + 1] = data["session"]
    zt = np.zeros((n, th.max() + 1))
    zt[np.arange(n), th] = 1.0
    lc = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    cov = zc @ np.kron(np.eye(cl.max() + 1), lc @ lc.T) @ zc.T
    cov += theta[3] ** 2 * zt @ zt.T
    if three_levels:
        si = pd.factorize(data["site"])[0]
        zs = np.zeros((n, si.max() + 1))
        zs[np.arange(n), si] = 1.0
        cov += theta[4] ** 2 * zs @ zs.T
    w = cov + np.eye(n)
    wi = np.linalg.inv(w)
    xtwx = x.T @ wi @ x
    beta = np.linalg.solve(xtwx, x.T @ wi @ y)
    res = y - x @ beta
    r2 = res @ wi @ res
    logdet_w = np.linalg.slogdet(w)[1]
    if reml:
        return (
            logdet_w + np.linalg.slogdet(xtwx)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
        )
    return logdet_w + n * (1 + np.log(2 * np.pi * r2 / n))


def _structure(data, three_levels=False):
    y = data["y"].to_numpy()
    n = len(y)
    x = np.column_stack([np.ones(n), data["x"], data["session"]])
    levels = [
        LevelSpec(
            "client",
            pd.factorize(data["client"])[0],
            np.column_stack([np.ones(n), data["session"]]),
            np.array([[0, -1], [1, 2]]),
        ),
        LevelSpec(
            "therapist", pd.factorize(data["therapist"])[0], np.ones((n, 1)), np.array([[0]])
        ),
    ]
    if three_levels:
        levels.append(
            LevelSpec("site", pd.factorize(data["site"])[0], np.ones((n, 1)), np.array([[0]]))
        )
    return build_structure(y, x, levels)


SEEDS = [1, 2, 3, 4, 5]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_block_deviance_equals_dense_deviance(seed, reml):
    data = simulate_sessions(seed, n_sites=3)
    three = seed % 2 == 1
    st = _structure(data, three_levels=three)
    dev = ProfiledDeviance(st, reml=reml)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        theta = np.abs(rng.normal(0.6, 0.4, 5 if three else 4))
        theta[1] = rng.normal(0, 0.2)  # the off-diagonal may be negative
        assert dev.deviance(theta) == pytest.approx(
            dense_deviance(data, theta, reml, three), rel=1e-10
        )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_analytic_gradient_equals_finite_differences(seed, reml):
    data = simulate_sessions(seed, n_sites=3)
    st = _structure(data, three_levels=True)
    dev = ProfiledDeviance(st, reml=reml)
    rng = np.random.default_rng(seed + 100)
    theta = np.abs(rng.normal(0.6, 0.3, 5))
    theta[1] = rng.normal(0, 0.2)
    _, grad = dev.deviance_and_gradient(theta)
    h = 1e-6
    numeric = np.array(
        [(dev.deviance(theta + e) - dev.deviance(theta - e)) / (2 * h) for e in np.eye(5) * h]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_gradient_in_chunks_equals_gradient_at_once(monkeypatch):
    from alliance.models import _lmm_core

    data = simulate_sessions(9, n_sites=3)
    dev = ProfiledDeviance(_structure(data, three_levels=True), reml=True)
    theta = np.array([0.9, -0.1, 0.3, 0.6, 0.4])
    _, whole = dev.deviance_and_gradient(theta)
    monkeypatch.setattr(_lmm_core, "_CHUNK_BYTES", 8 * 30)  # a few groups per chunk
    _, chunked = dev.deviance_and_gradient(theta)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_designs_fit_and_are_invariant(seed):
    data = simulate_sessions(seed)
    formula = "y ~ x + session + (1 + session | client) + (1 | therapist)"
    fit = lmm(formula, data)
    assert fit.converged
    assert fit.nobs == len(data)
    assert fit.ngroups == {"client": data["client"].nunique(), "therapist": 8}
    # single-session clients are kept and get conditional modes
    single = data.groupby("client").size().loc[lambda s: s == 1].index
    assert len(single) > 0
    assert fit.random_effects["client"].loc[single].notna().all().all()
    # row order does not matter
    shuffled = data.sample(frac=1.0, random_state=seed)
    fit2 = lmm(formula, shuffled)
    np.testing.assert_allclose(fit2.params["estimate"], fit.params["estimate"], rtol=1e-6)
    assert fit2.loglik == pytest.approx(fit.loglik, rel=1e-9)
    # shifting the outcome moves the intercept only
    fit3 = lmm(formula, data.assign(y=data["y"] + 100.0))
    np.testing.assert_allclose(
        fit3.params["estimate"] - fit.params["estimate"], [100.0, 0, 0], atol=1e-5
    )
    np.testing.assert_allclose(fit3.params["se"], fit.params["se"], rtol=1e-5)
    # the optimum is at least as good as the method-of-moments start and as lme4's default start
    dev = ProfiledDeviance(_structure(data), reml=True)
    assert -0.5 * dev.deviance(np.array([1.0, 0.0, 1.0, 1.0])) <= fit.loglik + 1e-8
    # fitted + residuals = outcome
    np.testing.assert_allclose(fit.fitted + fit.residuals, data["y"])


def _template(q: int, correlated: bool) -> np.ndarray:
    tmpl = -np.ones((q, q), dtype=int)
    idx = 0
    for c in range(q):
        for r in range(c, q) if correlated else [c]:
            tmpl[r, c] = idx
            idx += 1
    return tmpl


def _dense_generic(y, x, levels, theta, reml):
    """Profiled deviance from the dense marginal covariance for any list of LevelSpec."""
    n, p = x.shape
    w = np.eye(n)
    offset = 0
    for lv in levels:
        tmpl = lv.template
        lam = np.zeros(tmpl.shape)
        lam[tmpl >= 0] = theta[offset + tmpl[tmpl >= 0]]
        offset += int(tmpl.max()) + 1
        same = lv.codes[:, None] == lv.codes[None, :]
        w += (lv.z @ lam @ lam.T @ lv.z.T) * same
    wi = np.linalg.inv(w)
    xtwx = x.T @ wi @ x
    beta = np.linalg.solve(xtwx, x.T @ wi @ y)
    res = y - x @ beta
    r2 = res @ wi @ res
    logdet = np.linalg.slogdet(w)[1]
    if reml:
        return (
            logdet + np.linalg.slogdet(xtwx)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
        )
    return logdet + n * (1 + np.log(2 * np.pi * r2 / n))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    q_client=st.integers(1, 3),
    q_therapist=st.integers(1, 2),
    site=st.booleans(),
    correlated=st.booleans(),
    reml=st.booleans(),
)
def test_property_block_deviance_and_gradient(seed, q_client, q_therapist, site, correlated, reml):
    """Any nesting depth, slopes at any level, correlated or not: the block-structured
    deviance equals the dense one and the analytic gradient equals finite differences."""
    data = simulate_sessions(seed, n_therapists=6, clients=(1, 5), max_sessions=7, n_sites=2)
    n = len(data)
    s = data["session"].to_numpy(float) / 4.0
    basis = np.column_stack([np.ones(n), s, s**2])
    levels = [
        LevelSpec(
            "client",
            pd.factorize(data["client"])[0],
            basis[:, :q_client],
            _template(q_client, correlated),
        ),
        LevelSpec(
            "therapist",
            pd.factorize(data["therapist"])[0],
            basis[:, :q_therapist],
            _template(q_therapist, correlated),
        ),
    ]
    if site:
        levels.append(
            LevelSpec("site", pd.factorize(data["site"])[0], basis[:, :1], _template(1, True))
        )
    y = data["y"].to_numpy()
    x = np.column_stack([np.ones(n), data["x"], s])
    structure = build_structure(y, x, levels)
    dev = ProfiledDeviance(structure, reml=reml)
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 0.3, structure.ntheta)
    diag = np.array([r == c for _, r, c in structure.theta_pos])
    theta[diag] = rng.uniform(0.2, 1.2, diag.sum())
    assert dev.deviance(theta) == pytest.approx(_dense_generic(y, x, levels, theta, reml), rel=1e-9)
    _, grad = dev.deviance_and_gradient(theta)
    h = 1e-6
    numeric = np.array(
        [
            (dev.deviance(theta + e) - dev.deviance(theta - e)) / (2 * h)
            for e in np.eye(len(theta)) * h
        ]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_nested_shorthand_and_unique_ids_agree():
    data = simulate_sessions(11)
    a = lmm("y ~ x + (1 | therapist/client)", data)
    b = lmm("y ~ x + (1 | therapist) + (1 | therapist:client)", data)
    c = lmm("y ~ x + (1 | therapist) + (1 | client)", data)
    for other in (b, c):
        np.testing.assert_allclose(a.params["estimate"], other.params["estimate"], rtol=1e-7)
        assert a.loglik == pytest.approx(other.loglik, rel=1e-10)
    assert set(a.ngroups) == {"therapist", "therapist:client"}
    assert isinstance(a.random_effects["therapist:client"].index, pd.MultiIndex)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_crossed_deviance_equals_dense_deviance(seed, reml):
    data = simulate_sessions(seed)
    data["client"] = "c" + (data.groupby("therapist").cumcount() % 6).astype(str)  # crossed
    nested = _structure(data)  # the same LevelSpecs, through the crossed engine
    specs = [
        LevelSpec(
            "client",
            pd.factorize(data["client"])[0],
            np.column_stack([np.ones(len(data)), data["session"]]),
            np.array([[0, -1], [1, 2]]),
        ),
        LevelSpec(
            "therapist",
            pd.factorize(data["therapist"])[0],
            np.ones((len(data), 1)),
            np.array([[0]]),
        ),
    ]
    x = np.column_stack([np.ones(len(data)), data["x"], data["session"]])
    y = data["y"].to_numpy()
    rng = np.random.default_rng(seed)
    for order in (specs, specs[::-1]):  # either factor may be the block-diagonal one
        st = build_crossed(y, x, order)
        dev = CrossedDeviance(st, reml=reml)
        for _ in range(3):
            theta = np.array(
                [
                    rng.uniform(0.2, 2),
                    rng.normal(0, 0.3),
                    rng.uniform(0.05, 0.5),
                    rng.uniform(0.1, 1.5),
                ]
            )
            th = theta if order is specs else np.concatenate([theta[3:], theta[:3]])
            assert dev.deviance(th) == pytest.approx(dense_deviance(data, theta, reml), rel=1e-10)
    assert nested.n == len(data)


def test_shifted_slope_reaches_the_unshifted_optimum():
    """Issue 16: sleepstudy with x = Days + 1000 is the same model as with Days."""
    ref, data = _load(REF / "lme4_sleepstudy.json")
    base = lmm("Reaction ~ Days + (Days | Subject)", data)
    shifted = lmm("Reaction ~ x + (x | Subject)", data.assign(x=data["Days"] + 1000))
    assert base.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    assert shifted.converged  # and it does converge (never a saddle reported as converged)
    assert shifted.loglik == pytest.approx(ref["loglik"], abs=1e-6 * abs(ref["loglik"]))
    np.testing.assert_allclose(
        shifted.params["estimate"].iloc[1], base.params["estimate"].iloc[1], rtol=1e-6
    )
    assert shifted.convergence["hessian_psd"]
    vc_b = base.variance_components.set_index(["group", "term", "term2"])
    vc_s = shifted.variance_components
    assert vc_s["vcov"].iloc[-1] == pytest.approx(vc_b["vcov"].iloc[-1], rel=1e-5)  # residual


# --------------------------------------------------------------------------- refusals


def test_reused_ids_fit_as_crossed_and_nesting_shorthand_still_works():
    data = simulate_sessions(3)
    # client ids reused across therapists: c1 under every therapist -> crossed factors
    data["client"] = "c" + (data.groupby("therapist").cumcount() % 5).astype(str)
    crossed = lmm("y ~ x + (1 | client) + (1 | therapist)", data)
    assert crossed.converged
    assert crossed.ngroups == {"client": 5, "therapist": data["therapist"].nunique()}
    fit = lmm("y ~ x + (1 | therapist/client)", data)
    assert fit.converged


def test_unidentifiable_models_are_refused_as_lme4_does():
    data = simulate_sessions(4)
    one = data.groupby("client").head(1).copy()  # every client one observation
    with pytest.raises(ValueError, match="client variance and the residual variance cannot"):
        lmm("y ~ x + (1 | client)", one)
    few = data.groupby("client").head(2).copy()  # 2 rows, intercept + slope per client
    with pytest.raises(ValueError, match="random effects .* cannot be told apart"):
        lmm("y ~ x + (1 + x | client)", few)
    with pytest.raises(ValueError, match="single group"):
        lmm("y ~ x + (1 | client)", data.assign(client="c1"))


def test_errors_say_how_to_fix():
    data = simulate_sessions(2)
    with pytest.raises(KeyError, match="Did you mean 'session'"):
        lmm("y ~ sesion + (1 | client)", data)
    with pytest.raises(KeyError, match="'clinet'"):
        lmm("y ~ x + (1 | clinet)", data)
    with pytest.raises(ValueError, match="no random-effect term"):
        lmm("y ~ x", data)
    with pytest.raises(ValueError, match="exactly one '~'"):
        lmm("y = x + (1 | client)", data)
    with pytest.raises(ValueError, match="rank deficient: 'x2'"):
        lmm("y ~ x + x2 + (1 | client)", data.assign(x2=2 * data["x"]))
    with pytest.raises(ValueError, match="single group"):
        lmm("y ~ x + (1 | client) + (1 | one)", data.assign(one="a"))
    with pytest.raises(TypeError, match="study.sessions"):
        lmm("y ~ x + (1 | client)", type("Study", (), {"sessions": data})())
    with pytest.raises(ValueError, match="ddf must be"):
        lmm("y ~ x + (1 | client)", data, ddf="containment")
    with pytest.raises(ValueError, match="unbalanced parentheses"):
        lmm("y ~ x + (1 | client", data)


def test_formula_parsing():
    lhs, fixed, random = parse_formula(
        "y ~ x*prior + I(s**2) - 1 + (1 + s || client) + (0 + s | site/therapist)"
    )
    assert lhs == "y"
    assert fixed == "x*prior + I(s**2) - 1"
    assert [(t.expr, t.group, t.correlated) for t in random] == [
        ("1 + s", ("client",), False),
        ("0 + s", ("site",), True),
        ("0 + s", ("site", "therapist"), True),
    ]


# --------------------------------------------------------------------------- results object


@pytest.fixture(scope="module")
def demo_fit() -> LmmResult:
    data = simulate_sessions(21, n_therapists=10, n_sites=2)
    return lmm("y ~ x + session + (1 + session | client) + (1 | therapist)", data)


def test_results_tables(demo_fit):
    fit = demo_fit
    assert list(fit.params.columns) == [
        "term",
        "estimate",
        "se",
        "df",
        "statistic",
        "p",
        "ci_low",
        "ci_high",
    ]
    assert list(fit.variance_components.columns) == ["group", "term", "term2", "vcov", "sdcor"]
    assert fit.variance_components["group"].iloc[-1] == "Residual"
    assert (fit.params["ci_low"] < fit.params["estimate"]).all()
    frame = fit.to_frame()
    assert set(frame["part"]) == {"fixed", "random"}
    assert len(frame) == len(fit.params) + len(fit.variance_components)
    text = fit.summary()
    assert "Satterthwaite" in text and "Random effects" in text and "Intercept" in text
    r2 = fit.r2
    assert 0 < r2["marginal"] < r2["conditional"] < 1
    icc = fit.icc
    assert list(icc["group"]) == ["client", "therapist"]
    assert ((icc["icc"] > 0) & (icc["icc"] < 1)).all()
    assert fit.convergence["max_scaled_gradient"] < 2e-3
    cov = fit.covariances["client"]
    vc = fit.variance_components.set_index(["group", "term", "term2"])["vcov"]
    assert cov.loc["Intercept", "session"] == pytest.approx(vc[("client", "Intercept", "session")])
    assert cov.loc["session", "session"] == pytest.approx(vc[("client", "session", "")])


def test_contrast_matches_params(demo_fit):
    row = demo_fit.params.iloc[1]
    c = demo_fit.contrast([0, 1, 0])
    assert c["estimate"] == pytest.approx(row["estimate"])
    assert c["df"] == pytest.approx(row["df"])
    assert c["p"] == pytest.approx(row["p"])
    with pytest.raises(ValueError, match="one entry per fixed effect"):
        demo_fit.contrast([1, 0])


def test_predict(demo_fit):
    data = simulate_sessions(21, n_therapists=10, n_sites=2)
    np.testing.assert_allclose(demo_fit.predict(data), demo_fit.fitted)
    new = data.head(3).assign(client="new", therapist="new")
    fixed_only = demo_fit.predict(new, random=False)
    np.testing.assert_allclose(demo_fit.predict(new), fixed_only)
    beta = demo_fit.params["estimate"].to_numpy()
    expected = beta[0] + beta[1] * new["x"] + beta[2] * new["session"]
    np.testing.assert_allclose(fixed_only, expected)


def test_wald_option():
    data = simulate_sessions(5)
    fit = lmm("y ~ x + (1 | client)", data, ddf="wald")
    assert np.isinf(fit.params["df"]).all()
    assert "Wald" in fit.summary()


def test_singular_fit_is_reported():
    ref, data = _load(REF / "lme4_boundary.json")
    fit = lmm(_py_formula(ref["formula"]), data)
    assert fit.singular and fit.converged
    ther = fit.variance_components.query("group == 'therapist'")
    assert ther["vcov"].iloc[0] == pytest.approx(0.0, abs=ABS_VC)
    assert "Singular fit" in fit.summary()


def test_module_is_importable_by_path():
    # the function shadows the module name in alliance.models; the module stays reachable
    assert sys.modules["alliance.models.lmm"].lmm is lmm
