"""Model terms get one readable name everywhere (tables, legends): `alliance.terms`."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import alliance
from alliance.export import report_table
from alliance.tables import ApaTable, codebook_labels
from alliance.terms import term_label, use_labels


@pytest.fixture(autouse=True)
def _no_default_labels():
    use_labels()
    yield
    use_labels()


LABELS = {"phq9": "PHQ-9 total", "wai_sr": "WAI-SR total"}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("phq9_lag1", "PHQ-9 total, previous session"),
        ("phq9_lag", "PHQ-9 total, previous session"),
        ("wai_sr_within", "WAI-SR total, within client"),
        ("wai_sr_between", "WAI-SR total, between clients"),
        ("alliance_early", "Early alliance"),
        ("wai_sr_early", "Early WAI-SR total"),
        ("alliance_early:prior_negative_therapy", "Early alliance × Prior negative therapy"),
        ("prior_negative_therapy[T.True]", "Prior negative therapy"),
        ("rater[T.therapist]", "Rater: therapist"),
        ("prior_negative_therapy=False", "Prior negative therapy: no"),
        ("condition=CBT", "Condition: CBT"),
        ("rupture_repaired", "Rupture repaired"),
        ("sessions_elapsed", "Sessions elapsed"),
        ("ab_within", "Indirect effect (a × b), within client"),
        ("cov_ab_within", "Cov(a, b), within client"),
        ("Intercept", "Intercept"),
        ("wai_sr_3", "wai_sr_3"),  # an item keeps its name
        ("σ² client (Intercept)", "σ² client (Intercept)"),
        ("r client: Intercept, wai_sr_within", "r client: Intercept, WAI-SR total, within client"),
        ("Early alliance (sessions 1-3)", "Early alliance (sessions 1-3)"),  # already readable
    ],
)
def test_term_label(term, expected):
    assert term_label(term, LABELS) == expected


def test_own_names_win_and_defaults_are_the_fallback():
    assert term_label("alliance_early", {"alliance_early": "EA"}) == "EA"
    use_labels({"phq9": "PHQ-9"})
    assert term_label("phq9_between") == "PHQ-9, between clients"
    assert term_label("phq9_between", {"phq9": "Depression"}) == "Depression, between clients"
    assert term_label(None) == "" and term_label(3) == "3"


def test_questionnaires_without_a_codebook_label_use_their_short_name():
    assert term_label("phq9_lag1") == "PHQ-9, previous session"
    assert term_label("wai_sr_t_between") == "WAI-SR-T, between clients"
    assert term_label("gad7") == "GAD-7" and term_label("not_registered") == "Not registered"


def test_set_theme_sets_the_labels_terms_fall_back_on():
    study = alliance.datasets.load_dataset("demo")
    alliance.plots.set_theme(study)
    assert term_label("phq9_lag1") == "PHQ-9 total, previous session"


def test_no_raw_term_names_in_the_demo_model_tables():
    study = alliance.datasets.load_dataset("demo")
    labels = codebook_labels(study)
    fits = [
        alliance.models.moderation(
            study, "prior_negative_therapy", alliance="wai_sr", outcome="phq9", model="early"
        ),
        alliance.models.rupture_outcome(
            study, alliance="wai_sr", outcome="phq9", events=study.events
        ),
    ]
    for fit in fits:
        raw = fit.apa_table().to_frame()["Term"].tolist()
        shown = report_table(fit.apa_table(), "t", None, title="x", study=study)
        cells = shown.to_frame()["Term"].tolist()
        assert len(cells) == len(raw)
        leftover = [c for c in cells if re.search(r"[a-z]_[a-z]|:[a-z]|\[T\.|=", c)]
        assert not leftover, leftover
        assert cells != raw  # something was relabelled
    assert labels  # the codebook has labels to use


def test_report_table_relabels_term_columns_of_a_frame_and_keeps_other_cells():
    frame = pd.DataFrame({"term": ["phq9_lag1"], "site": ["s_1"], "estimate": [0.5]})
    shown = report_table(frame, "t", None, title="x", labels=LABELS)
    assert shown.to_frame().iloc[0].tolist()[:2] == ["PHQ-9 total, previous session", "s_1"]


def test_apa_table_label_terms_only_touches_a_term_column():
    t = ApaTable(pd.DataFrame({"Site": ["s_1"], "n": ["3"]}))
    assert t.label_terms().to_frame().equals(t.to_frame())
