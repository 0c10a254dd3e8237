"""What a report page shows: APA tables from notebooks, the figure theme, codebook labels."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance
from alliance.export import report_table, saved
from alliance.tables import ApaTable, codebook_labels


@pytest.fixture(scope="module")
def demo():
    return alliance.datasets.load_dataset("demo")


def test_codebook_labels_with_and_without_ranges(demo):
    plain, ranged = codebook_labels(demo), codebook_labels(demo, ranges=True)
    assert plain["wai_sr"] == "WAI-SR total" and ranged["wai_sr"] == "WAI-SR total (12-60)"
    assert ranged["phq9"] == "PHQ-9 total (0-27)"
    assert "session" not in plain  # a description without a short lead gives no label
    assert codebook_labels(None) == {}


def test_report_table_numbers_suppresses_and_records(tmp_path, demo):
    frame = pd.DataFrame(
        {"phase": ["a", "b"], "n_clients": [40, 3], "wai_sr": [42.8354, 44.0], "p": [0.03, 0.2]}
    )
    first = report_table(frame, "first", tmp_path, title="First", study=demo)
    second = report_table(
        frame, "second", tmp_path, title="Second", note="N = 43.", count="n_clients"
    )
    assert (first.number, second.number) == (1, 2)
    body = first.to_frame()
    assert body.columns.tolist() == ["Phase", "N clients", "WAI-SR total", "p"]
    assert body["WAI-SR total"].tolist() == ["42.84", "44.00"]  # one number of decimals
    assert body["p"].tolist() == [".030", ".200"]
    shown = second.to_frame()
    assert shown.iloc[1].tolist()[1:] == ["<5", "", ""]  # suppressed before it is shown
    assert "fewer than 5 clients" in second.note and second.note.startswith("N = 43.")
    entries = saved(tmp_path)
    assert [e["name"] for e in entries] == ["first", "second"] and entries[1]["apa"]
    assert entries[1]["title"] == "Second" and entries[1]["note"] == second.note
    csv = pd.read_csv(tmp_path / "tables" / "second.csv", dtype=str, keep_default_na=False)
    assert csv.to_numpy().tolist() == shown.to_numpy().tolist()  # the CSV is the page's table
    html = second.to_html()
    assert '<strong class="apa-number">Table 2</strong>' in html and "<th" in html


def test_report_table_of_an_apa_table_keeps_its_sections(tmp_path, demo):
    fit = alliance.models.lmm("phq9 ~ session + (1 | client)", demo.sessions)
    table = report_table(fit.apa_table(), "model", None, title="Course of the PHQ-9")
    assert table.title == "Course of the PHQ-9" and table.note == fit.apa_table().note
    assert table.sections == fit.apa_table().sections and table.number is not None


def test_stack_and_rename():
    a = ApaTable(
        pd.DataFrame({"Term": ["x", "σ² residual"], "b": ["1.00", "2.00"]}),
        sections=((0, "Fixed effects"), (1, "Random effects")),
    )
    b = ApaTable(pd.DataFrame({"Term": ["x"], "b": ["3.00"], "p": ["< .001"]}))
    both = ApaTable.stack([a.rename({"x": "Alliance"}), b], ["Model 1", "Model 2"], title="T")
    assert both.to_frame().columns.tolist() == ["Term", "b", "p"]
    assert both.to_frame()["Term"].tolist() == ["Alliance", "σ² residual", "x"]
    assert both.to_frame()["p"].tolist() == ["", "", "< .001"]
    assert both.sections == (
        (0, "Model 1"),
        (0, "Fixed effects"),
        (1, "Random effects"),
        (2, "Model 2"),
    )
    with pytest.raises(ValueError, match="2 tables but 1 labels"):
        ApaTable.stack([a, b], ["only one"])


def test_decimals_per_column_and_bounded_columns():
    frame = pd.DataFrame({"mean": [0.0, 0.391], "count": [3.0, 4.0], "ci_low": [0.94, -0.5]})
    body = ApaTable.from_frame(frame, bounded=["ci_low"]).to_frame()
    assert body["Mean"].tolist() == ["0.00", "0.39"]
    assert body["Count"].tolist() == ["3", "4"]
    assert body["CI low"].tolist() == [".94", "-.50"]


def test_theme_palette_and_codebook_axis_labels(demo):
    import seaborn as sns

    labels = alliance.plots.set_theme(demo, labels={"alliance": "WAI-SR item mean (1-5)"})
    try:
        assert labels["wai_sr"] == "WAI-SR total (12-60)"
        cycle = [c["color"] for c in plt.rcParams["axes.prop_cycle"]]
        assert cycle[:3] == list(sns.color_palette("colorblind"))[:3]
        fig, axes = plt.subplots(1, 2, figsize=(alliance.plots.COLUMN_WIDTH, 2.5))
        ax = alliance.plots.mean_trajectory(demo.sessions, "wai_sr", ax=axes[0])
        assert ax is axes[0] and ax.get_ylabel() == "WAI-SR total (12-60), mean"
        assert ax.get_xlabel() == "Session"
        assert alliance.plots.label("alliance") == "WAI-SR item mean (1-5)"
        assert plt.rcParams["axes.labelsize"] >= 8 and plt.rcParams["xtick.labelsize"] >= 8
        plt.close(fig)
    finally:
        import matplotlib as mpl

        mpl.rcdefaults()
        alliance.plots.set_theme()  # no study: no codebook labels left behind
        mpl.rcdefaults()
    assert alliance.plots.theme.labels() == {}
    assert alliance.plots.label("wai_sr") == "WAI-SR"  # the registry's short name, no range


def test_funnel_legend_patches_are_visible():
    studies = alliance.meta.example_studies()
    pooled = alliance.meta.meta_analysis(studies, r="r", n="n", study="study")
    ax = alliance.plots.funnel(pooled, contours=(0.10, 0.05, 0.01))
    handles = ax.get_legend().legend_handles
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["p < .01", "p < .05", "p < .10", "p ≥ .10"]
    for patch in handles:  # each patch has a dark edge, the white one included
        assert np.mean(patch.get_edgecolor()[:3]) < 0.5 and patch.get_linewidth() > 0
    plt.close(ax.figure)


def test_saved_index_is_json_in_order(tmp_path):
    report_table(pd.DataFrame({"a": [1]}), "one", tmp_path, title="One")
    report_table(pd.DataFrame({"a": [2]}), "two", tmp_path, title="Two")
    entries = json.loads((tmp_path / "tables" / "index.json").read_text())
    assert [e["seq"] for e in entries] == [1, 2]
