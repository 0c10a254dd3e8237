"""Compute how closely each estimator agrees with its reference, and write the page.

Run by the documentation build (``docs/conf.py``), which ``tests/test_docs.py`` checks:
every number on the validation page is computed from the committed reference values in
``tests/reference/`` at the moment the page is built, never typed in. A reviewer reads
the page to decide whether to trust a number; the test fails when any row is outside
its stated tolerance, so the page and the test suite cannot disagree.

Agreement is the largest relative difference over the compared values,
``max |ours - theirs| / max(|theirs|, floor)``, where ``floor`` is 1e-6 times the
largest reference value of that quantity (so values at or near zero are compared on
the scale of the quantity, as the tests' absolute tolerances do).

Usage: ``python scripts/validation_page.py [OUT.md]`` (default: print to standard output).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
sys.path.insert(0, str(ROOT / "src"))


@dataclass
class Row:
    """One line of the validation table."""

    estimator: str
    function: str
    reference: str
    dataset: str
    quantity: str
    tolerance: float
    achieved: float = float("nan")
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.achieved <= self.tolerance)


def agreement(ours, theirs, scale=None) -> float:
    """Largest relative difference, on the scale of the quantity near zero.

    ``scale`` replaces ``|theirs|`` as the denominator where a reference is only precise
    to a known yardstick (an ML estimate is compared relative to the larger of its
    size and its standard error, since the optimiser stops at a tolerance of that order).
    """
    a = np.asarray(ours, dtype=float).ravel()
    b = np.asarray(theirs, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{a.size} values against {b.size} reference values")
    if not len(b):
        raise ValueError("no values to compare")
    denominator = np.abs(b) if scale is None else np.asarray(scale, dtype=float).ravel()
    floor = 1e-6 * max(float(np.nanmax(np.abs(b))), 1e-300)
    return float(np.nanmax(np.abs(a - b) / np.maximum(denominator, floor)))


def _json(name: str) -> dict:
    return json.loads((REF / name).read_text(encoding="utf-8"))


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / "data" / name)


# ------------------------------------------------------------------ lme4 / lmerTest
def _r_term(name: str) -> str:
    name = name.replace("Intercept", "(Intercept)")
    name = re.sub(r"(\w+)\[T\.(\w+)\]", r"\1\2", name)
    return name.replace(" ** ", "^")


def lme4_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance.models import lmm

    for path in sorted(REF.glob("lme4_*.json")):
        ref = _json(path.name)
        versions = ref.get("versions", {})
        lme4 = f"lme4 {versions.get('lme4', '?')}"
        data = REF / ref["data"]
        fits: dict = {}

        def fit(ref=ref, data=data, fits=fits):
            if "fit" not in fits:
                formula = ref["formula"].replace("^", "**")
                fits["fit"] = lmm(formula, pd.read_csv(data), reml=ref["reml"])
            return fits["fit"]

        def varcomp(ref=ref, fit=fit):
            vc = ref["varcorr"]
            theirs = {
                (g.split(".")[0], a, b): v
                for g, a, b, v in zip(vc["grp"], vc["var1"], vc["var2"], vc["vcov"], strict=True)
            }
            ours = fit().variance_components
            keys = [(r.group, _r_term(r.term), _r_term(r.term2)) for r in ours.itertuples()]
            return agreement(ours["vcov"], [theirs[k] for k in keys])

        crit = "REML" if ref["reml"] else "ML"
        label = f"{ref['formula']} ({crit})"
        base = {"function": "alliance.models.lmm", "dataset": f"{data.name}: {label}"}
        fe = ref["fixef"]
        yield (
            Row(
                "linear mixed model",
                reference=lme4,
                quantity="fixed effects",
                tolerance=1e-5,
                **base,
            ),
            lambda fit=fit, fe=fe: agreement(fit().params["estimate"], fe["estimate"]),
        )
        yield (
            Row(
                "linear mixed model",
                reference=lme4,
                quantity="standard errors",
                tolerance=1e-4,
                **base,
            ),
            lambda fit=fit, fe=fe: agreement(fit().params["se"], fe["se"]),
        )
        yield (
            Row(
                "linear mixed model",
                reference=lme4,
                quantity="variance components",
                tolerance=1e-4,
                **base,
            ),
            varcomp,
        )
        yield (
            Row(
                "linear mixed model",
                reference=lme4,
                quantity="log-likelihood",
                tolerance=1e-8,
                **base,
            ),
            lambda fit=fit, ref=ref: agreement(fit().loglik, ref["loglik"]),
        )
        yield (
            Row(
                "Satterthwaite df",
                reference=f"lmerTest {versions.get('lmerTest', '?')}",
                quantity="denominator df",
                tolerance=1e-3,
                **base,
            ),
            lambda fit=fit, fe=fe: agreement(fit().params["df"], fe["df"]),
        )


# ------------------------------------------------------------------ psych
def psych_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance import reliability as rel

    alpha_ref = _json("psych_alpha.json")
    psych = f"psych {alpha_ref['versions']['psych']}"
    for key, csv in [
        ("bfi_agreeableness", "psych_bfi_ac.csv"),
        ("bfi_conscientiousness", "psych_bfi_ac.csv"),
        ("attitude", "psych_attitude.csv"),
    ]:
        r = alpha_ref[key]
        reverse = [r["reverse"]] if isinstance(r["reverse"], str) else r["reverse"]

        def alpha_case(r=r, csv=csv, reverse=reverse):
            out = rel.alpha(_csv(csv), r["items"], reverse=reverse).iloc[0]
            names = {"raw_alpha": "alpha", "std_alpha": "std_alpha", "g6": "g6", "ase": "ase"}
            names |= {"feldt_low": "ci_low", "feldt_high": "ci_high", "average_r": "average_r"}
            return agreement([out[o] for o in names.values()], [r[t] for t in names])

        yield (
            Row(
                "Cronbach's alpha, G6, Feldt CI",
                "alliance.reliability.alpha",
                psych,
                f"{csv}: {key}",
                "estimates",
                1e-6,
            ),
            alpha_case,
        )

    icc_ref = _json("psych_icc.json")
    for key, csv in [("sf", "psych_sf.csv"), ("sim", "psych_icc_sim.csv")]:
        r = icc_ref[key]
        yield (
            Row(
                "ICC (six Shrout & Fleiss forms)",
                "alliance.reliability.icc",
                psych,
                csv,
                "ICC, F, CI",
                1e-6,
            ),
            lambda r=r, csv=csv: agreement(
                rel.icc(_csv(csv))[["icc", "f", "ci_low", "ci_high"]].to_numpy().T,
                [r["ICC"], r["F"], r["lower"], r["upper"]],
            ),
        )

    kappa_ref = _json("psych_kappa.json")
    for key, csv in [("bates", "psych_kappa_bates.csv"), ("codes", "psych_kappa_codes.csv")]:
        r = kappa_ref[key]

        def kappa_case(r=r, csv=csv):
            out = rel.cohen_kappa(_csv(csv)).set_index("statistic")
            ours = [out.loc["unweighted", "estimate"], out.loc["weighted", "estimate"]]
            ours.append(out.loc["unweighted", "se"] ** 2)
            return agreement(ours, [r["kappa"], r["weighted_kappa"], r["var_kappa"]])

        yield (
            Row(
                "Cohen's kappa (unweighted, weighted)",
                "alliance.reliability.cohen_kappa",
                psych,
                csv,
                "kappa, variance",
                1e-6,
            ),
            kappa_case,
        )

    omega_ref = _json("psych_omega.json")
    for key, csv in [("thurstone", "psych_thurstone.csv"), ("bfi_acn", "psych_bfi_ac.csv")]:
        r = omega_ref[key]
        yield (
            Row(
                "omega hierarchical and total",
                "alliance.reliability.omega",
                psych,
                csv,
                "omega_h, omega_t, alpha",
                1e-3,
            ),
            lambda r=r, csv=csv: agreement(
                rel.omega(_csv(csv), n_factors=3).loc[0, ["omega_h", "omega_total", "alpha"]],
                [r["omega_h"], r["omega_total"], r["alpha"]],
            ),
        )

    ml_ref = _json("psych_multilevel.json")
    for key, csv, grp, time, items in [
        ("shrout", "psych_shrout.csv", "Person", "Time", ["Item1", "Item2", "Item3"]),
        ("sim", "psych_ml_sim.csv", "client", "time", [f"item{j}" for j in range(1, 5)]),
    ]:
        r = ml_ref[key]["aov"]

        def ml_case(r=r, csv=csv, grp=grp, time=time, items=items):
            out = rel.multilevel_reliability(_csv(csv), items, grp, time).set_index("quantity")
            keys = [k for k in r if k in out.index and isinstance(r[k], int | float)]
            if not keys:
                raise ValueError("no shared quantities with the reference")
            return agreement(out.loc[keys, "estimate"], [r[k] for k in keys])

        yield (
            Row(
                "multilevel reliability (Shrout & Lane)",
                "alliance.reliability.multilevel_reliability",
                psych,
                csv,
                "generalizability coefficients",
                1e-6,
            ),
            ml_case,
        )


# ------------------------------------------------------------------ metafor / clubSandwich
def metafor_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance import meta

    ref = _json("metafor_reference.json")
    metafor = f"metafor {ref['metafor']}"
    files = {
        "molloy2014": ("meta_molloy2014.csv", {"r": "ri", "n": "ni"}),
        "bcg": ("meta_bcg.csv", {"yi": "yi", "vi": "vi"}),
        "alliance": ("meta_alliance_outcome.csv", {"r": "r", "n": "n"}),
        "sim_homog": ("meta_sim_homog.csv", {"r": "r", "n": "n"}),
    }
    for rec in ref["uni"]:
        csv, args = files[rec["dataset"]]
        mods = rec.get("mods")

        def uni(rec=rec, csv=csv, args=args, mods=mods):
            res = meta.meta_analysis(
                _csv(csv), study=None, mods=mods, method=rec["method"], test=rec["test"], **args
            )
            ours = [*res.params["estimate"], *res.params["se"], res.tau2, res.Q]
            theirs = [*np.ravel(rec["beta"]), *np.ravel(rec["se"]), rec["tau2"], rec["QE"]]
            return agreement(ours, theirs)

        what = f"{rec['method']}, {rec['test']} test" + (f", mods {mods}" if mods else "")
        yield (
            Row(
                "random/fixed-effects meta-analysis",
                "alliance.meta.meta_analysis",
                metafor,
                f"{csv}: {what}",
                "estimates, SEs, tau2, Q",
                1e-6,
            ),
            uni,
        )

    def uni_fit(dataset: str, method: str, test: str):
        csv, args = files[dataset]
        return meta.meta_analysis(_csv(csv), study=None, method=method, test=test, **args)

    for rec in ref["egger"]:
        test = "z" if rec["model"] == "lm" else rec["test"]

        def egger(rec=rec, test=test):
            eg = meta.egger_test(uni_fit(rec["dataset"], rec["method"], test), model=rec["model"])
            eg = eg.iloc[0]
            return agreement(
                [eg["statistic"], eg["p"], eg["limit"]], [rec["stat"], rec["p"], rec["limit"]]
            )

        yield (
            Row(
                "Egger's regression test",
                "alliance.meta.egger_test",
                f"{metafor} regtest",
                f"{files[rec['dataset']][0]}: {rec['model']}",
                "statistic, p, limit estimate",
                1e-6,
            ),
            egger,
        )
    for rec in ref["trimfill"]:

        def trimfill(rec=rec):
            tf = meta.trim_and_fill(
                uni_fit(rec["dataset"], rec["method"], "z"), estimator=rec["estimator"]
            )
            if tf.k0 != rec["k0"]:
                raise ValueError(f"k0 {tf.k0} against {rec['k0']}")
            ours = [tf.result.estimate, tf.result.se, tf.result.tau2]
            return agreement(ours, [rec["beta"], rec["se"], rec["tau2"]])

        yield (
            Row(
                "trim-and-fill",
                "alliance.meta.trim_and_fill",
                f"{metafor} trimfill",
                f"{files[rec['dataset']][0]}: {rec['method']}, {rec['estimator']}",
                "k0, estimate, SE, tau2",
                1e-6,
            ),
            trimfill,
        )

    def three_level(rec):
        return meta.multilevel_meta_analysis(
            _csv("meta_konstantopoulos2011.csv"),
            yi="yi",
            vi="vi",
            study="district",
            effect="school",
            mods=rec["mods"],
            method=rec["method"],
            test=rec["test"],
        )

    for rec in ref["mv"]:

        def mv(rec=rec):
            res = three_level(rec)
            ours = [*res.params["estimate"], *res.params["se"], *np.ravel(res.sigma2), res.loglik]
            return agreement(
                ours,
                [*np.ravel(rec["beta"]), *np.ravel(rec["se"]), *np.ravel(rec["sigma2"]), rec["ll"]],
            )

        yield (
            Row(
                "three-level meta-analysis",
                "alliance.meta.multilevel_meta_analysis",
                f"{metafor} rma.mv",
                f"meta_konstantopoulos2011.csv: {rec['method']}, {rec['test']}, mods {rec['mods']}",
                "estimates, SEs, sigma2, log-likelihood",
                1e-6,
            ),
            mv,
        )
    club = f"clubSandwich {ref['clubSandwich']} (CR2)"
    for rec in ref["cr2"]:

        def cr2(rec=rec):
            if rec["model"] == "rma.mv":
                res = three_level({**rec, "test": "z"})
            else:
                res = meta.meta_analysis(
                    _csv("meta_konstantopoulos2011.csv"),
                    yi="yi",
                    vi="vi",
                    study=None,
                    mods=rec["mods"],
                )
            rob = meta.cluster_robust(res, cluster="district")
            ours = [*rob["estimate"], *rob["se"], *rob["df"]]
            return agreement(
                ours, [*np.ravel(rec["beta"]), *np.ravel(rec["se"]), *np.ravel(rec["df"])]
            )

        yield (
            Row(
                "cluster-robust (CR2) meta-analysis",
                "alliance.meta.cluster_robust",
                club,
                f"meta_konstantopoulos2011.csv: {rec['model']}, {rec['method']}, mods {rec['mods']}",
                "estimates, SEs, Satterthwaite df",
                1e-6,
            ),
            cr2,
        )


# ------------------------------------------------------------------ lavaan
def lavaan_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance.models import sem

    ref = _json("lavaan_sem.json")
    lavaan = f"lavaan {ref['lavaan_version']}"
    fits: dict = {}

    def fitted(model: str):
        if model not in fits:
            data = _csv("sem_panel_long.csv")
            fits[model] = {
                "dpm": lambda: sem.dynamic_panel(data),
                "dpm_slopes": lambda: sem.dynamic_panel(data, slopes=True),
                "riclpm": lambda: sem.riclpm(data),
            }[model]()
        return fits[model]

    def key(lhs, op, rhs):
        return ("~~", *sorted([lhs, rhs])) if op == "~~" else (op, lhs, rhs)

    def compare(model: str, column: str) -> float:
        fit = fitted(model)
        table = getattr(fit, "parameter_table", None)
        if table is None:
            table = fit.parameter_table
        theirs = pd.DataFrame(ref[model]["params"])
        theirs["key"] = [key(*k) for k in zip(theirs.lhs, theirs.op, theirs.rhs, strict=True)]
        ours = table[table["free"]].assign(
            key=lambda t: [key(*k) for k in zip(t.lhs, t.op, t.rhs, strict=True)]
        )
        both = ours.merge(theirs, on="key", suffixes=("", "_lavaan"))
        if len(both) != len(ours):
            raise ValueError("a free parameter has no lavaan twin")
        if column == "est":  # lavaan stops at its convergence tolerance: SE as yardstick
            scale = np.maximum(np.abs(both["est_lavaan"]), both["se_lavaan"])
            return agreement(both["est"], both["est_lavaan"], scale=scale)
        return agreement(both[column], both[f"{column}_lavaan"])

    names = {
        "dpm": "dynamic panel model",
        "dpm_slopes": "dynamic panel model, random slopes",
        "riclpm": "RI-CLPM",
    }
    for model, title in names.items():
        func = "alliance.models.riclpm" if model == "riclpm" else "alliance.models.dynamic_panel"
        yield (
            Row(
                f"{title} (FIML)",
                func,
                lavaan,
                "sem_panel_long.csv",
                "estimates (relative to max(|est|, SE))",
                1e-4,
            ),
            lambda model=model: compare(model, "est"),
        )
        yield (
            Row(f"{title} (FIML)", func, lavaan, "sem_panel_long.csv", "standard errors", 1e-4),
            lambda model=model: compare(model, "se"),
        )
        yield (
            Row(f"{title} (FIML)", func, lavaan, "sem_panel_long.csv", "log-likelihood", 1e-8),
            lambda model=model: agreement(fitted(model).loglik, ref[model]["loglik"]),
        )


# ------------------------------------------------------------------ lavaan MLR, clustered
def lavaan_mlr_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance.models import sem

    ref = _json("lavaan_mlr_cluster.json")
    lavaan = f"lavaan {ref['lavaan_version']} (estimator = MLR, cluster = therapist)"
    cache: dict[str, object] = {}

    def fitted(model: str):
        if model not in cache:
            data = _csv("sem_panel_long.csv").merge(
                _csv("sem_panel_therapists.csv"), on="client", how="left"
            )
            kw = {"therapist": "therapist", "se": "robust"}
            cache[model] = {
                "dpm": lambda: sem.dynamic_panel(data, **kw),
                "dpm_slopes": lambda: sem.dynamic_panel(data, slopes=True, **kw),
                "riclpm": lambda: sem.riclpm(data, **kw),
            }[model]()
        return cache[model]

    def key(lhs, op, rhs):
        return ("~~", *sorted([lhs, rhs])) if op == "~~" else (op, lhs, rhs)

    def se(model: str) -> float:
        ours = fitted(model).parameter_table
        ours = ours[ours["free"]]
        ours = ours.assign(key=[key(*k) for k in zip(ours.lhs, ours.op, ours.rhs, strict=True)])
        theirs = pd.DataFrame(ref[model]["params"])
        theirs["key"] = [key(*k) for k in zip(theirs.lhs, theirs.op, theirs.rhs, strict=True)]
        both = ours.merge(theirs, on="key", suffixes=("", "_lavaan"))
        if len(both) != len(ours):
            raise ValueError("a free parameter has no lavaan twin")
        return agreement(both["se"], both["se_lavaan"])

    def scaled(model: str, name: str) -> float:
        return agreement(fitted(model).fit_measures[name], ref[model]["converged_h1"][name])

    names = {
        "dpm": "dynamic panel model",
        "dpm_slopes": "dynamic panel model, random slopes",
        "riclpm": "RI-CLPM",
    }
    for model, title in names.items():
        func = "alliance.models.riclpm" if model == "riclpm" else "alliance.models.dynamic_panel"
        row = f"{title} (FIML, MLR clustered)"
        yield (
            Row(row, func, lavaan, "sem_panel_long.csv", "robust standard errors", 1e-4),
            lambda model=model: se(model),
        )
        yield (
            Row(row, func, lavaan, "sem_panel_long.csv", "chisq.scaled", 1e-4),
            lambda model=model: scaled(model, "chisq.scaled"),
        )
        yield (
            Row(row, func, lavaan, "sem_panel_long.csv", "chisq.scaling.factor", 1e-4),
            lambda model=model: scaled(model, "chisq.scaling.factor"),
        )


# ------------------------------------------------------------------ glm + sandwich
def sandwich_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    import alliance

    ref = _json("sandwich_dropout.json")
    version = f"R glm + sandwich {ref['versions']['sandwich']} (vcovCL, HC1)"
    for method, key in [("logistic", "logistic"), ("discrete_time", "person_period")]:

        def case(method=method, key=key):
            study = alliance.datasets.load_dataset("demo")
            # the self-reported events, as tests/reference/make_dropout_data.py
            fit = alliance.models.dropout_model(
                study, alliance="wai_sr", method=method, ruptures=study.events
            )
            r = ref[key]
            ours = [*fit.params["estimate"], *fit.params["se"]]
            return agreement(ours, [*r["estimate"], *r["se"]])

        yield (
            Row(
                f"dropout model ({method})",
                "alliance.models.dropout_model",
                version,
                "demo",
                "estimates, cluster-robust SEs",
                1e-6,
            ),
            case,
        )


# ------------------------------------------------------------------ glmer
def glmer_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance.models.glmm import glmm

    # (reference file, nAGQ, tolerance of estimates, of SEs, what the row says)
    cases = [
        ("glmer_cbpp_agq5.json", 5, 1e-4, 1e-3, ""),
        ("glmer_cbpp.json", 1, 1e-3, 2e-2, " (Laplace: known gap, docs/glmm.md)"),
    ]
    for name, nagq, tol_est, tol_se, remark in cases:
        ref = _json(name)
        data = REF / ref["data"]
        fits: dict = {}

        def fit(ref=ref, data=data, nagq=nagq, fits=fits):
            if "fit" not in fits:
                frame = pd.read_csv(data).astype({"period": str})
                fits["fit"] = glmm(ref["formula"], frame, nagq=nagq)
            return fits["fit"]

        base = {
            "function": "alliance.models.glmm",
            "reference": "lme4 glmer (tests/reference/glmer_reference.R)",
            "dataset": f"{data.name}: {ref['formula']}, nAGQ = {nagq}",
        }
        est, se = ref["fixef"]["estimate"], ref["fixef"]["se"]
        yield (
            Row("binomial GLMM" + remark, quantity="fixed effects", tolerance=tol_est, **base),
            lambda fit=fit, est=est: agreement(fit().params["estimate"], est),
        )
        yield (
            Row("binomial GLMM" + remark, quantity="standard errors", tolerance=tol_se, **base),
            lambda fit=fit, se=se: agreement(fit().params["se"], se),
        )


# ------------------------------------------------------------------ HLM reliable change
def hlm_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance import change

    ref = _json("hlm_eb_slopes.json")

    def slopes() -> pd.DataFrame:
        rc = change.reliable_change(_csv("hlm_eb_slopes.csv"), outcome="y", method="HLM")
        return rc.set_index(rc["client"].astype(str)).loc[ref["client"]]

    expect = [ref["fixed_slope"][0] + dev for dev in ref["deviation"]]
    base = {
        "function": "alliance.change.reliable_change",
        "reference": "lme4 ranef(condVar = TRUE) (tests/reference/hlm_eb_slopes.R)",
        "dataset": "hlm_eb_slopes.csv: y ~ session + (1 + session | client), REML",
    }
    yield (
        Row(
            "reliable change, HLM empirical-Bayes slopes",
            quantity="EB slopes",
            tolerance=2e-3,
            **base,
        ),
        lambda: agreement(slopes()["eb_slope"], expect),
    )
    yield (
        Row(
            "reliable change, HLM empirical-Bayes slopes",
            quantity="posterior SDs",
            tolerance=2e-3,
            **base,
        ),
        lambda: agreement(slopes()["eb_slope_sd"], ref["condsd"]),
    )


# ------------------------------------------------------------------ dyad
def dyad_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    import alliance

    ref = _json("dyad_reference.json")
    versions = ref["versions"]
    clients = pd.read_csv(REF / "data" / "dyad_clients.csv", dtype={"client": str})
    sessions = pd.read_csv(REF / "data" / "dyad_sessions.csv", dtype={"client": str})
    x, y = "wai_client", "wai_therapist"

    def rsa_case(therapist=None, key="rsa_ols"):
        fit = alliance.dyad.rsa(clients, x=x, y=y, outcome="outcome", therapist=therapist)
        r = ref[key]
        surface = pd.DataFrame(r["surface"])
        st = [v[k] for v in r["stationary"].values() for k in ("estimate", "se")]
        ours = [
            *fit.params["estimate"],
            *fit.params["se"],
            *fit.surface["estimate"],
            *fit.surface["se"],
            *fit.stationary[["estimate", "se"]].to_numpy().ravel(),
        ]
        theirs = [*r["coef"], *r["se"], *surface["estimate"], *surface["se"], *st]
        return agreement(ours, theirs)

    def apim_case():
        fit = alliance.dyad.apim(clients, client_rating=x, therapist_rating=y, outcome="outcome")
        r = ref["apim"]
        order = [
            r["terms"].index(t)
            for t in ("(Intercept)", "c_within", "c_between", "t_within", "t_between")
        ]
        ours = [*fit.params["estimate"], *fit.params["se"], *fit.params["df"]]
        theirs = [*(np.asarray(r[c])[order] for c in ("estimate", "se", "df"))]
        return agreement(ours, np.concatenate(theirs))

    def agreement_case():
        fit = alliance.dyad.agreement(sessions, x=x, y=y, random_slope=False)
        p = fit.params.set_index("term")["estimate"]
        r = ref["agreement"]
        ours = [p["within-client r"], p["between-client r"]]
        return agreement(ours, [r["within_r"], r["between_r"]])

    lm = f"R lm + vcov + deriv ({versions['R'].split(' (')[0]})"
    lmer = f"lme4 {versions['lme4']} / lmerTest {versions['lmerTest']}"
    yield (
        Row(
            "response surface analysis (OLS)",
            "alliance.dyad.rsa",
            lm,
            "simulated dyads",
            "b, SEs, a1..a5 and SEs, stationary point and axes (delta method)",
            1e-6,
        ),
        rsa_case,
    )
    yield (
        Row(
            "response surface analysis (therapist random intercept)",
            "alliance.dyad.rsa",
            lmer + " (contest)",
            "simulated dyads",
            "b, SEs, a1..a5 and SEs, stationary point and axes (delta method)",
            1e-5,
        ),
        lambda: rsa_case("therapist", "rsa_lmm"),
    )
    yield (
        Row(
            "one-with-many actor-partner model",
            "alliance.dyad.apim",
            lmer,
            "simulated dyads",
            "estimates, SEs, Satterthwaite df",
            1e-5,
        ),
        apim_case,
    )
    yield (
        Row(
            "client-therapist agreement",
            "alliance.dyad.agreement",
            "R (person-mean centred r as rmcorr; cor.test)",
            "simulated dyads",
            "within- and between-client r",
            1e-10,
        ),
        agreement_case,
    )


# ------------------------------------------------------------------ LMM inference (issue 18)
def lmer_inference_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    from alliance.models import compare, glmm, lmm

    ref = _json("lmer_inference.json")
    versions = ref["versions"]
    script = "tests/reference/lmer_inference.R"

    def num(values):
        return np.array([np.nan if v == "NA" else v for v in np.atleast_1d(values)], float)

    def data_for(case):
        data = pd.read_csv(REF / case["data"])
        if case["name"] == "sleepstudy_unbalanced":
            data = data.drop(index=range(0, len(data), 7))
        return data

    for case in ref["anova"]:

        def table(case=case):
            data = data_for(case)
            if case.get("glmm"):
                data = data.astype({"period": str})
                fits = [glmm(f, data, nagq=case["nagq"]) for f in case["formulas"]]
            else:
                fits = [
                    lmm(f, data, reml=r)
                    for f, r in zip(case["formulas"], case["reml"], strict=True)
                ]
            return compare(*fits, refit=case["refit"]).table

        label = " vs ".join(case["formulas"]) + ("" if case["refit"] else " (refit=False)")
        base = {
            "function": "alliance.models.compare",
            "reference": f"lme4 {versions['lme4']} anova ({script})",
            "dataset": f"{Path(case['data']).name}: {label}",
        }
        yield (
            Row("likelihood-ratio test", quantity="logLik, AIC, BIC", tolerance=1e-6, **base),
            lambda table=table, case=case: max(
                agreement(table()[k], case[r])
                for k, r in (("loglik", "logLik"), ("aic", "AIC"), ("bic", "BIC"))
            ),
        )
        yield (
            Row("likelihood-ratio test", quantity="Chisq", tolerance=1e-6, **base),
            lambda table=table, case=case: agreement(
                table()["chisq"][1:],
                num(case["Chisq"])[1:],
                scale=np.maximum(num(case["Chisq"])[1:], 1.0),
            ),
        )
    for case in ref["confint"]:

        def profile(case=case):
            fit = lmm(case["formula"], data_for(case), reml=case["reml"])
            ci = fit.confint("profile")
            ours = np.concatenate([ci["ci_low"], ci["ci_high"]])
            theirs = np.concatenate([case["profile_low"], case["profile_high"]])
            return agreement(ours, theirs, scale=np.maximum(np.abs(theirs), 1e-3))

        crit = "REML" if case["reml"] else "ML"
        yield (
            Row(
                "profile confidence intervals",
                "alliance.models.LmmResult.confint",
                f'lme4 {versions["lme4"]} confint(method = "profile") ({script})',
                f"{Path(case['data']).name}: {case['formula']} ({crit})",
                "bounds (SDs, correlations, sigma, fixed effects)",
                1e-3,
            ),
            profile,
        )
    for case in ref["kenward_roger"]:

        def kr(case=case):
            fit = lmm(case["formula"], data_for(case), ddf="kenward-roger")
            return max(
                agreement(fit.params["df"], case["df"]), agreement(fit.params["se"], case["se"])
            )

        yield (
            Row(
                "Kenward-Roger df",
                'alliance.models.lmm(ddf="kenward-roger")',
                f"pbkrtest {versions['pbkrtest']} / lmerTest {versions['lmerTest']} ({script})",
                f"{case['name']}: {case['formula']} (REML)",
                "denominator df and adjusted SEs",
                1e-3,
            ),
            kr,
        )
    for case in ref["emmeans"]:

        def emm(case=case, what="estimate"):
            fit = lmm(case["formula"], data_for(case))
            out = fit.marginal_means(case["specs"], ddf=case["lmer_df"], adjust="none")
            keys = ("estimate",) if what == "estimate" else ("se", "df")
            return max(
                max(
                    agreement(out.means[k], case["means"][k]),
                    agreement(out.contrasts[k], case["contrasts"][k]),
                )
                for k in keys
            )

        base = {
            "function": "alliance.models.LmmResult.marginal_means",
            "reference": f"emmeans {versions['emmeans']} ({script})",
            "dataset": f"{Path(case['data']).name}: pairwise ~ {case['specs']}, "
            f"{case['lmer_df']} df",
        }
        yield (
            Row("marginal means and contrasts", quantity="estimates", tolerance=1e-6, **base),
            lambda emm=emm: emm(what="estimate"),
        )
        yield (
            Row("marginal means and contrasts", quantity="SEs and df", tolerance=1e-4, **base),
            lambda emm=emm: emm(what="se"),
        )


# ------------------------------------------------------------------ issue 18: GLMM uses
def glmm_use_cases() -> Iterator[tuple[Row, Callable[[], float]]]:
    """Rupture occurrence, dropout with a therapist intercept, predictions with intervals."""
    import alliance

    ro = _json("glmer_rupture_occurrence.json")

    def rupture(what, ref=ro):
        d = pd.read_csv(REF / ref["data"], dtype={"client": str, "therapist": str})
        hit = d[d["rupture"] == 1]
        events = pd.DataFrame({"client": hit["client"], "session": hit["session"]})
        fit = alliance.models.rupture_occurrence(
            d.drop(columns="rupture"), therapist="therapist", source="events", events=events
        )
        return agreement(fit.params[what], ref["fixef"]["estimate" if what == "estimate" else "se"])

    base = {
        "function": "alliance.models.rupture_occurrence",
        "reference": "lme4 glmer (tests/reference/rupture_occurrence_reference.R)",
        "dataset": "rupture_occurrence.csv (simulation)",
    }
    yield (
        Row("rupture occurrence GLMM", quantity="fixed effects", tolerance=1e-4, **base),
        (lambda: rupture("estimate")),
    )
    yield (
        Row("rupture occurrence GLMM", quantity="standard errors", tolerance=1e-3, **base),
        (lambda: rupture("se")),
    )
    dr = _json("glmer_dropout.json")
    for method in ("logistic", "discrete_time"):

        def dropout(method=method, ref=dr):
            s = pd.read_csv(REF / ref["sessions"], dtype={"client": str, "therapist": str})
            fit = alliance.models.dropout_model(
                s,
                alliance="wai_sr",
                method=method,
                covariates=["prior_negative_therapy"],
                engine="glmm",
            )
            r = ref[method]["fixef"]
            return max(
                agreement(fit.params["estimate"], r["estimate"], scale=np.ones(len(r["se"]))),
                agreement(fit.params["se"], r["se"]) / 10,
            )

        yield (
            Row(
                f"dropout model ({method}, therapist intercept)",
                "alliance.models.dropout_model",
                "lme4 glmer (tests/reference/dropout_glmm_reference.R)",
                "dropout_glmm_sessions.csv (simulation)",
                "estimates (absolute) and SEs (relative / 10)",
                1e-4,
            ),
            dropout,
        )
    lp = _json("lmm_predict.json")

    def lmm_pred(ref=lp):
        frame = pd.read_csv(REF / ref["data"])
        new = pd.DataFrame({"Days": ref["days"]})
        fit = alliance.models.lmm(ref["formula"], frame)
        ci = fit.predict(new, interval="confidence")
        pi = fit.predict(new, interval="prediction")
        c, p = ref["confidence_satterthwaite"], ref["prediction"]
        return max(
            agreement(ci["se"], c["se"]),
            agreement(ci["df"], c["df"]) / 10,
            agreement(pi["se"], p["se"]),
        )

    yield (
        Row(
            "LMM predictions with confidence / prediction intervals",
            "alliance.models.LmmResult.predict",
            "lme4 + emmeans (tests/reference/lmm_predict_reference.R)",
            "sleepstudy",
            "SEs (df / 10)",
            1e-4,
        ),
        lmm_pred,
    )
    gp = _json("glmm_predict.json")

    def glmm_pred(ref=gp):
        d = pd.read_csv(REF / ref["data"], dtype={"herd": str, "period": str})
        fit = alliance.models.glmm(ref["formula"], d)
        new = pd.DataFrame({"period": ref["period"]})
        out = fit.predict(new, type="response", interval="confidence")
        r = ref["response"]
        return max(agreement(out[k], r[k]) for k in ("estimate", "se", "lower", "upper"))

    yield (
        Row(
            "GLMM predictions on the response scale",
            "alliance.models.GlmmResult.predict",
            "lme4 + emmeans (tests/reference/glmm_predict_reference.R)",
            "cbpp",
            "estimates, SEs and interval bounds",
            1e-3,
        ),
        glmm_pred,
    )


CASES = (
    lme4_cases,
    lmer_inference_cases,
    glmer_cases,
    hlm_cases,
    psych_cases,
    metafor_cases,
    lavaan_cases,
    lavaan_mlr_cases,
    sandwich_cases,
    glmm_use_cases,
    dyad_cases,
)

#: Estimators checked against hand-worked published cases or a peer package's test suite.
HAND_WORKED = [
    (
        "reliable change index, clinical cut-offs a/b/c",
        "alliance.change",
        "Jacobson & Truax (1991) formulas, cases worked by hand",
        "tests/test_change.py",
    ),
    (
        "sudden gains and losses",
        "alliance.change.sudden_gains",
        "Tang & DeRubeis (1999); the suddengains R package's adjusted criterion 3 and its test cases",
        "tests/test_change.py",
    ),
    (
        "Fleiss' kappa",
        "alliance.reliability.fleiss_kappa",
        "published 10 x 14 example (kappa = .210); statsmodels",
        "tests/test_reliability.py",
    ),
    (
        "Krippendorff's alpha",
        "alliance.reliability.krippendorff_alpha",
        "Krippendorff (2011) worked example (nominal .743, interval .849)",
        "tests/test_reliability.py",
    ),
    (
        "rupture detection and repair",
        "alliance.ruptures.detect",
        "hand cases; recovery of simulated ruptures",
        "tests/test_ruptures.py",
    ),
]


def compute() -> list[Row]:
    """Every validation row, with its achieved agreement (or the error that stopped it)."""
    rows = []
    for family in CASES:
        try:
            cases = list(family())
        except Exception as exc:  # a reference file that cannot be read: one row says so
            rows.append(
                Row(family.__name__, "", "", "", "", 0.0, error=f"{type(exc).__name__}: {exc}")
            )
            continue
        for row, run in cases:
            try:
                row.achieved = float(run())
            except Exception as exc:
                row.error = f"{type(exc).__name__}: {exc}"
            rows.append(row)
    return rows


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "—"
    return "0" if x == 0 else f"{x:.1e}"


def page(rows: list[Row]) -> str:
    """The validation page in Markdown."""
    n_ok = sum(r.ok for r in rows)
    lines = [
        "# Validation: every estimator against its reference",
        "",
        "Each row compares an estimator of alliance with a reference implementation on the",
        "committed reference data (`tests/reference/`: the R script that made the values sits",
        "beside them). **The agreement column is computed when this page is built**, by running",
        "our estimator on the reference data and comparing with the stored values; the test",
        "suite (`tests/test_docs.py`) fails when any row exceeds its tolerance.",
        "",
        "Agreement is the largest relative difference over the compared values,",
        "`max |ours - reference| / max(|reference|, floor)`, with `floor` one millionth of",
        "the largest reference value of that quantity (values at or near zero are compared on",
        "the quantity's scale).",
        "",
        f"**{n_ok} of {len(rows)} comparisons are within their stated tolerance.**",
        "",
        "| estimator | quantity | tolerance | agreement | | reference | data | function |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "ok" if r.ok else f"**FAILS** {r.error}".strip()
        cells = [r.estimator, r.quantity, _fmt(r.tolerance), _fmt(r.achieved), mark]
        cells += [r.reference, r.dataset, f"`{r.function}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "## Hand-worked and peer-test-suite cases",
        "",
        "Where no R package is the accepted reference, the published formulas are worked by",
        "hand in the tests, or a peer package's own test cases are reproduced exactly.",
        "",
        "| estimator | function | checked against | tests |",
        "|---|---|---|---|",
        *[f"| {a} | `{b}` | {c} | `{d}` |" for a, b, c, d in HAND_WORKED],
        "",
        "## Reference scripts",
        "",
        "The R scripts that wrote the reference values (run them with the R packages named in",
        "each JSON file's `versions` entry to regenerate them; R is never needed to use or test",
        "alliance):",
        "",
        *[f"- `tests/reference/{p.name}`" for p in sorted(REF.glob("*.R"))],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import logging

    logging.disable(logging.WARNING)
    text = page(compute())
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
