"""The results contract: every results class, fitted on the bundled data, honours it.

Each analysis is fitted once (small, fast options) on the demo study or, for the
meta-analyses, on the bundled example studies; every result must be an
``alliance.results.Result`` with the shared ``params`` and ``excluded`` schemas, ``nobs``,
``n``, a citation and working ``summary``, ``to_frame``, ``apa_table`` and ``plot``.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance
from alliance import ipd, meta, models
from alliance.results import (
    EXCLUDED_COLUMNS,
    PARAM_COLUMNS,
    Result,
    exclusion_log,
    tidy_params,
)
from alliance.tables import ApaTable


@pytest.fixture(scope="module")
def demo():
    return alliance.datasets.load_dataset("demo")


def _sessions(study):
    return study.sessions.assign(wai=study.sessions["wai_sr"] / 12)


def _lmm(s):
    return models.lmm("phq9 ~ session + (1 | client)", s.sessions)


def _glmm(s):
    d = s.sessions.assign(low=(s.sessions["wai_sr"] < s.sessions["wai_sr"].median()).astype(int))
    return models.glmm("low ~ session + (1 | client)", d)


def _early_ols(s):
    return models.early_alliance(s, alliance="wai_sr", outcome="phq9", therapist=False)


def _early_mixed(s):
    return models.early_alliance(s, alliance="wai_sr", outcome="phq9", therapist="therapist")


def _within_between(s):
    return models.within_between(
        _sessions(s), alliance="wai", outcome="phq9", therapist="therapist", method="mlm"
    )


def _dpm(s):
    return models.dynamic_panel(s.sessions, alliance="wai_sr", outcome="phq9", max_sessions=5)


def _riclpm(s):
    return models.riclpm(s.sessions, alliance="wai_sr", outcome="phq9", max_sessions=5)


def _therapist(s):
    return models.therapist_contributions(
        _sessions(s), alliance="wai", outcome="phq9", outcome_model="end"
    )


def _rupture(s):
    return models.rupture_outcome(
        s, alliance="wai_sr", outcome="phq9", detect={"method": "drop", "threshold": 8}
    )


def _rupture_occurrence(s):
    return models.rupture_occurrence(s, alliance="wai_sr", phase=None, techniques=None)


def _moderation(s):
    return models.moderation(s, "prior_negative_therapy", alliance="wai_sr", outcome="phq9")


def _mediation(s):
    return models.mediation(
        _sessions(s), "reflection", alliance="wai", outcome="phq9", n_boot=0, n_mc=500, seed=1
    )


def _dropout(s):
    return models.dropout_model(s, alliance="wai_sr", ruptures=False)


def _meta(s):
    return meta.meta_analysis(meta.example_studies())


def _meta_regression(s):
    return meta.meta_regression(meta.example_studies(), mods="~ rater")


def _multilevel(s):
    studies = meta.example_studies()
    long = pd.concat([studies.assign(effect=1), studies.assign(effect=2)])
    return meta.multilevel_meta_analysis(long, study="study", effect="effect")


def _trim_fill(s):
    return meta.trim_and_fill(meta.meta_analysis(meta.example_studies()))


def _ipd(s):
    return ipd.two_stage_ipd(s.sessions, alliance="wai_sr", outcome="phq9", group="site")


def _dyads():
    return alliance.dyad.simulate_dyads(n_therapists=8, clients_per_therapist=5, seed=1)


def _agreement(s):
    return alliance.dyad.agreement(_dyads(), x="wai_client", y="wai_therapist")


def _rsa(s):
    return alliance.dyad.rsa(_dyads(), x="wai_client", y="wai_therapist", outcome="outcome")


def _apim(s):
    return alliance.dyad.apim(
        _dyads(), client_rating="wai_client", therapist_rating="wai_therapist", outcome="outcome"
    )


def _compare(s):
    small = s.sessions[s.sessions["client"].isin(s.clients["client"].iloc[:60])]
    m0 = models.lmm("phq9 ~ session + (1 | client)", small, reml=False)
    m1 = models.lmm("phq9 ~ session + wai_sr + (1 | client)", small, reml=False)
    return models.compare(m0, m1)


def _marginal(s):
    small = s.sessions[s.sessions["client"].isin(s.clients["client"].iloc[:60])]
    return models.lmm("phq9 ~ phase + (1 | client)", small).marginal_means("phase")


def _gstudy(s):
    from alliance.reliability import g_study

    seg = alliance.datasets.load_dataset("dyads").segments
    seg = seg[seg["client"].isin(seg["client"].unique()[:12])]
    per_session = (
        seg.assign(score=seg["marker"].notna())
        .groupby(["client", "session", "coder"], as_index=False)["score"]
        .sum()
    )
    return g_study(
        per_session, score="score", object="session", facets=["coder"], nested={"session": "client"}
    )


def _monitoring(s):
    from alliance import monitoring

    sig = monitoring.signals(s.sessions, outcome="phq9", folds=3)
    events = monitoring.deterioration(s.sessions, outcome="phq9", sd="pre", reliability=0.84)
    return monitoring.evaluate(sig, events)


FITS = {
    "lmm": (_lmm, "LmmResult"),
    "glmm": (_glmm, "GlmmResult"),
    "early_alliance (ols)": (_early_ols, "EarlyAllianceResult"),
    "early_alliance (mixed)": (_early_mixed, "EarlyAllianceResult"),
    "within_between": (_within_between, "WithinBetweenResult"),
    "dynamic_panel": (_dpm, "PanelResult"),
    "riclpm": (_riclpm, "PanelResult"),
    "therapist_contributions": (_therapist, "TherapistResult"),
    "rupture_outcome": (_rupture, "RuptureOutcomeResult"),
    "rupture_occurrence": (_rupture_occurrence, "RuptureOccurrenceResult"),
    "moderation": (_moderation, "ModerationResult"),
    "mediation": (_mediation, "MediationResult"),
    "dropout_model": (_dropout, "DropoutResult"),
    "meta_analysis": (_meta, "MetaResult"),
    "meta_regression": (_meta_regression, "MetaResult"),
    "multilevel_meta_analysis": (_multilevel, "MultilevelMetaResult"),
    "trim_and_fill": (_trim_fill, "TrimFillResult"),
    "two_stage_ipd": (_ipd, "MetaResult"),
    "dyad.agreement": (_agreement, "AgreementResult"),
    "dyad.rsa": (_rsa, "RsaResult"),
    "dyad.apim": (_apim, "ApimResult"),
    "monitoring.evaluate": (_monitoring, "EvaluationResult"),
    "models.compare": (_compare, "ComparisonResult"),
    "marginal_means": (_marginal, "MarginalMeans"),
    "reliability.g_study": (_gstudy, "GStudyResult"),
}

#: Typed attributes each class documents, with their type.
TYPED = {
    "EarlyAllianceResult": {"r": pd.DataFrame, "table": pd.DataFrame, "meta_r": dict},
    "WithinBetweenResult": {
        "mixed_model": models.LmmResult,
        "formula": str,
        "icc": pd.DataFrame,
    },
    "PanelResult": {
        "focal_term": str,
        "terms": dict,
        "parameter_table": pd.DataFrame,
        "standardized_by_wave": pd.DataFrame,
        "sessions": list,
        "fit_measures": pd.Series,
    },
    "TherapistResult": {
        "icc": pd.DataFrame,
        "difference": pd.Series,
        "clients": pd.DataFrame,
        "mixed_model": (models.LmmResult, type(None)),  # None with latent therapist means
        "centering": str,
    },
    "RuptureOutcomeResult": {"events": pd.DataFrame, "classes": pd.DataFrame},
    "RuptureOccurrenceResult": {
        "events": pd.DataFrame,
        "table": pd.DataFrame,
        "icc": pd.Series,
        "mixed_model": models.GlmmResult,
    },
    "ModerationResult": {
        "simple_slopes": pd.DataFrame,
        "lines": pd.DataFrame,
        "focal": str,
        "moderator_coding": dict,
    },
    "MediationResult": {
        "indirect": pd.DataFrame,
        "path_a": models.LmmResult,
        "path_b": models.LmmResult,
        "stacked": models.LmmResult,
    },
    "DropoutResult": {"data": pd.DataFrame, "n_dropout": int, "method": str},
    "MetaResult": {"fit_measures": pd.Series, "excluded_rows": pd.DataFrame},
    "MultilevelMetaResult": {"sigma2": pd.Series, "variance_components": pd.DataFrame},
    "TrimFillResult": {"filled": pd.DataFrame, "result": meta.MetaResult},
    "AgreementResult": {
        "dyads": pd.DataFrame,
        "difference_model": models.LmmResult,
        "scale": pd.DataFrame,
    },
    "RsaResult": {
        "surface": pd.DataFrame,
        "stationary": pd.DataFrame,
        "congruence": pd.DataFrame,
        "broad_congruence": bool,
        "centre": float,
    },
    "ApimResult": {"variance_components": pd.DataFrame, "mixed_model": models.LmmResult},
    "EvaluationResult": {"by_client": pd.DataFrame, "counts": pd.Series, "signal": str},
    "ComparisonResult": {"table": pd.DataFrame, "refitted": bool, "fits": list},
    "MarginalMeans": {"means": pd.DataFrame, "contrasts": pd.DataFrame, "grid": pd.DataFrame},
}


@pytest.fixture(scope="module")
def fitted(demo):
    cache: dict[str, Result] = {}

    def get(name):
        if name not in cache:
            cache[name] = FITS[name][0](demo)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(FITS))
def test_result_honours_the_contract(name, fitted):
    res = fitted(name)
    assert isinstance(res, Result)
    assert type(res).__name__ == FITS[name][1]
    assert not hasattr(res, "extra"), "typed attributes replace the extra dict"

    # params: the shared columns first, in order, one row per term
    assert list(res.params.columns[: len(PARAM_COLUMNS)]) == PARAM_COLUMNS
    assert len(res.params) > 0 and res.params["term"].notna().all()
    assert np.isfinite(res.params["estimate"].to_numpy(float)).all()
    # excluded: one schema
    assert list(res.excluded.columns) == EXCLUDED_COLUMNS
    assert res.excluded["n_rows"].dtype == "int64"
    assert (res.excluded["n_rows"] > 0).all()
    # N: observations and by level
    assert isinstance(res.nobs, int | np.integer) and res.nobs > 0
    assert isinstance(res.n, pd.Series) and len(res.n) >= 1
    assert res.n.dtype == "int64" and (res.n > 0).all()
    assert isinstance(res.citation, str) and len(res.citation) > 10
    assert isinstance(res.notes, list) and all(isinstance(n, str) for n in res.notes)
    assert isinstance(res.model, str) and res.model
    for attr in ("loglik", "aic", "bic"):
        assert isinstance(float(getattr(res, attr)), float)
    assert res.converged in (True, False, None)
    assert res.singular in (True, False, None)
    vc = res.variance_components
    assert vc is None or isinstance(vc, pd.DataFrame)
    fm = res.fit_measures
    assert fm is None or isinstance(fm, pd.Series)

    # methods
    text = res.summary()
    assert isinstance(text, str) and len(text.splitlines()) > 2
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0
    table = res.apa_table()
    assert isinstance(table, ApaTable)
    body = table.to_frame()
    assert list(body.columns) == ["Term", "b", "SE", "95% CI", "β", "p"]
    k = len(res.params)
    assert body["Term"].head(k).tolist() == res.params["term"].astype(str).tolist()
    random = body.iloc[k:]  # random-effect variances and correlations follow the fixed effects
    if len(random):
        assert random["Term"].str.match(r"^(σ²|r) ").all()
        assert table.sections == ((0, "Fixed effects"), (k, "Random effects"))
    if vc is not None and len(vc) and "vcov" in vc.columns:
        assert len(random) >= 1
    assert table.title and f"N = {res.nobs}" in table.note
    if not np.isnan(res.aic):
        assert f"AIC = {res.aic:.2f}" in table.note
    html = table._repr_html_()
    # header, section headings, rows, note
    assert html.startswith("<table") and html.count("<tr>") == len(body) + len(table.sections) + 2
    assert "<th" in html and "Note." in html
    latex = table.to_latex()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    fig, ax = plt.subplots()
    try:
        assert res.plot(ax=ax) is ax
        assert len(ax.get_yticklabels()) >= 1
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", list(FITS))
def test_typed_attributes(name, fitted):
    res = fitted(name)
    for attr, kind in TYPED.get(type(res).__name__, {}).items():
        value = getattr(res, attr)
        assert isinstance(value, kind), f"{type(res).__name__}.{attr} is {type(value).__name__}"


def test_every_results_class_is_covered():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    known = {c.__name__ for c in subclasses(Result) if c.__module__.startswith("alliance.")}
    covered = {cls for _, cls in FITS.values()}
    # ModelResult is the shared base of the model subclasses, never returned itself
    assert known - {"ModelResult"} <= covered, f"not checked: {sorted(known - covered)}"


def test_model_specific_numbers_are_where_the_docs_say(fitted):
    moderation = fitted("moderation")
    assert moderation.simple_slopes["label"].tolist() == [
        "prior_negative_therapy=False",
        "prior_negative_therapy=True",
    ]
    mediation = fitted("mediation")
    assert mediation.indirect["term"].tolist() == ["indirect_within", "indirect_between"]
    assert mediation.boot is None and mediation.n_boot_failed == 0
    early = fitted("early_alliance (mixed)")
    assert early.mixed_model is not None and early.ols is None
    assert early.aic == pytest.approx(early.mixed_model.aic)
    ols = fitted("early_alliance (ols)")
    assert ols.mixed_model is None and ols.ols is not None
    assert ols.n["clients"] == ols.nobs == len(ols.table)
    dpm = fitted("dynamic_panel")
    assert dpm.fit_measures["npar"] > 0 and dpm.aic == pytest.approx(dpm.fit_measures["aic"])
    assert dpm.n["clients"] == dpm.n_clients
    tf = fitted("trim_and_fill")
    assert tf.nobs == tf.n["effects"] + tf.k0


def test_lmm_exclusions_use_the_shared_schema(demo):
    d = demo.sessions.copy()
    d.loc[d.index[:5], "phq9"] = np.nan
    fit = models.lmm("phq9 ~ session + (1 | client)", d)
    row = fit.excluded.set_index("column").loc["phq9"]
    assert row["reason"] == "missing phq9" and row["n_rows"] == 5
    assert pd.isna(row["n_clients"])  # the engine does not know which column is the client
    assert fit.n["rows"] == fit.nobs == len(d) - 5


def test_defaults_of_attributes_that_do_not_apply():
    class Toy(Result):
        def __init__(self):
            self.params = tidy_params(pd.DataFrame({"term": ["x"], "estimate": [1.0]}))
            self.excluded = exclusion_log()
            self.nobs = 3

    toy = Toy()
    assert toy.variance_components is None and toy.fit_measures is None
    assert np.isnan(toy.loglik) and np.isnan(toy.aic) and toy.converged is None
    assert toy.notes == [] and toy.n.empty
    assert toy.apa_table().to_frame()["SE"].tolist() == [""]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        toy.nothing  # noqa: B018


def test_apa_table_renders_escaped_and_numbered():
    body = pd.DataFrame({"Term": ["a<b & c"], "p": ["< .001"], "β": ["0.20"]})
    table = ApaTable(body, title="Early alliance_x", number=2, note="N = 10 clients; 5% left.")
    html = table.to_html()
    assert "a&lt;b &amp; c" in html and "&lt; .001" in html
    assert re.search(r"<strong[^>]*>Table 2</strong>", html) and "<em>Early alliance_x</em>" in html
    assert "<th" in html and ">0<" not in html  # no index column
    latex = table.to_latex()
    assert r"\caption{Table 2: Early alliance\_x}" in latex
    assert r"a\textless{}b \& c" in latex and r"$\beta$" in latex and r"5\% left." in latex
    assert str(table).splitlines()[:2] == ["Table 2", "Early alliance_x"]
    with pytest.raises(TypeError, match="DataFrame"):
        ApaTable([["a"]])


def test_save_table_accepts_an_apa_table(tmp_path, fitted):
    table = fitted("early_alliance (ols)").apa_table()
    path = alliance.export.save_table(table, "early_apa", tmp_path)
    saved = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(saved, table.to_frame())


def test_apa_table_names_the_confidence_level():
    res = meta.meta_analysis(meta.example_studies(), level=0.9)
    body = res.apa_table().to_frame()
    assert "90% CI" in body.columns
    low, high = res.params.loc[0, ["ci_low", "ci_high"]]
    assert body.loc[0, "90% CI"] == f"[{low:.2f}, {high:.2f}]"
