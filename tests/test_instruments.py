"""The instrument registry: built-in facts, lookups, and user instruments from dict/YAML/JSON."""

from __future__ import annotations

import json

import pytest

from alliance import instruments
from alliance.instruments import Instrument

REQUIRED = {
    "wai_sr": ("alliance", 12, 1, 5),
    "wai_s": ("alliance", 12, 1, 7),
    "srs": ("alliance", 4, 0, 10),
    "haq_ii": ("alliance", 19, 1, 6),
    "phq9": ("outcome", 9, 0, 3),
    "gad7": ("outcome", 7, 0, 3),
    "bdi_ii": ("outcome", 21, 0, 3),
    "ors": ("outcome", 4, 0, 10),
    "oq45": ("outcome", 45, 0, 4),
    "core_om": ("outcome", 34, 0, 4),
    "core10": ("outcome", 10, 0, 4),
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_built_in_instruments(name):
    ins = instruments.get(name)
    construct, k, low, high = REQUIRED[name]
    assert (ins.construct, ins.n_items, ins.item_min, ins.item_max) == (construct, k, low, high)
    assert ins.citation
    assert ins.higher_is_better == (construct == "alliance" or name == "ors")
    for members in ins.subscales.values():
        assert all(1 <= i <= k for i in members)


def test_published_facts():
    wai = instruments.get("wai_sr")
    assert wai.reverse_items == ()
    assert sorted(sum(wai.subscales.values(), ())) == list(range(1, 13))
    assert wai.score_range == (12, 60)
    oq = instruments.get("oq45")
    assert oq.reverse_items == (1, 12, 13, 20, 21, 24, 31, 37, 43)
    assert (oq.cutoff, oq.reliable_change, oq.score_range) == (64, 14, (0, 180))
    core = instruments.get("core_om")
    assert (core.scoring, core.multiplier, core.max_missing, core.cutoff) == ("mean", 10, 3, 10)
    assert core.score_range == (0, 40)
    assert sorted(sum(core.subscales.values(), ())) == list(range(1, 35))
    c10 = instruments.get("core10")
    assert (c10.cutoff, c10.reliable_change, c10.max_missing) == (11, 6, 1)
    ors = instruments.get("ors")
    assert (ors.cutoff, ors.reliable_change) == (25, 5)
    assert instruments.get("srs").cutoff == 36
    assert instruments.get("bdi_ii").bands == {
        "minimal": 0,
        "mild": 14,
        "moderate": 20,
        "severe": 29,
    }
    assert instruments.get("gad7").bands["severe"] == 15
    # values deliberately not stored
    assert instruments.get("phq9").reliable_change is None
    assert instruments.get("gad7").reliable_change is None
    assert instruments.get("wai_s").reverse_items is None
    assert instruments.get("haq_ii").reverse_items is None


def test_attributes_other_modules_read():
    ins = instruments.get("phq9")
    for attr in (
        "higher_is_better",
        "reliable_change",
        "reliability",
        "cutoff",
        "clinical_mean",
        "clinical_sd",
        "functional_mean",
        "functional_sd",
        "score_range",
        "items",
        "max_missing",
    ):
        assert hasattr(ins, attr)
    assert ins.items[0] == "phq9_1" and len(ins.items) == 9


@pytest.mark.parametrize("alias", ["PHQ-9", "phq 9", "Phq_9", "phq9"])
def test_get_aliases(alias):
    assert instruments.get(alias).name == "phq9"


def test_get_aliases_with_underscores():
    assert instruments.get("WAI-SR").name == "wai_sr"
    assert instruments.get("CORE-OM").name == "core_om"
    assert instruments.get("OQ-45").name == "oq45"


def test_get_unknown_names_close_match():
    with pytest.raises(KeyError, match="phq9"):
        instruments.get("phq8")


def test_list_instruments_table():
    table = instruments.list_instruments()
    assert set(REQUIRED) <= set(table["name"])
    assert table["name"].is_unique
    row = table.set_index("name").loc["oq45"]
    assert row["reverse_items"].startswith("1, 12")
    assert row["score_max"] == 180
    assert table.set_index("name").loc["wai_s", "reverse_items"] is None


def test_instrument_validation_lists_every_problem():
    with pytest.raises(ValueError) as err:
        Instrument(
            "Bad Name",
            "x",
            "mood",
            "client",
            3,
            5,
            1,
            reverse_items=(0,),
            scoring="median",
            max_missing=3,
        )
    msg = str(err.value)
    for part in (
        "name must be",
        "construct must be",
        "item_min (5)",
        "reverse_items",
        "scoring must be",
        "max_missing",
    ):
        assert part in msg


SPEC = {
    "name": "clinic_alliance",
    "title": "Clinic alliance check",
    "construct": "alliance",
    "rater": "therapist",
    "n_items": 4,
    "item_min": 1,
    "item_max": 7,
    "reverse_items": [3],
    "subscales": {"bond": [1, 2], "task": [3, 4]},
    "higher_is_better": True,
    "max_missing": 1,
    "cutoff": 12,
    "citation": "In-house form",
}


def test_load_from_dict_registers():
    ins = instruments.load(SPEC, replace=True)
    assert instruments.get("clinic_alliance") is ins
    assert ins.subscales == {"bond": (1, 2), "task": (3, 4)}
    assert ins.reverse_items == (3,)
    assert ins.cutoff == 12.0
    assert ins.to_dict()["subscales"] == SPEC["subscales"]


def test_load_refuses_duplicate_unless_replace():
    instruments.load(SPEC, replace=True)
    with pytest.raises(ValueError, match="replace=True"):
        instruments.load(SPEC)


def test_load_yaml_and_json(tmp_path):
    import yaml  # pyyaml is a dependency of the package: never skipped

    ypath = tmp_path / "form.yaml"
    ypath.write_text(yaml.safe_dump({**SPEC, "name": "yaml_form"}))
    jpath = tmp_path / "form.json"
    jpath.write_text(json.dumps({**SPEC, "name": "json_form"}))
    a = instruments.load(ypath, register=False)
    b = instruments.load(str(jpath), register=False)
    assert (a.name, b.name) == ("yaml_form", "json_form")
    assert a.subscales == b.subscales
    assert "yaml_form" not in instruments.REGISTRY


def test_load_round_trips_built_in():
    ins = instruments.get("core_om")
    again = instruments.load(json.loads(json.dumps(ins.to_dict())), register=False)
    assert again == ins


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'reverse_items'"):
        instruments.load({**SPEC, "reverse_item": [1]}, register=False)
    with pytest.raises(ValueError, match="missing required field.*n_items"):
        instruments.load({k: v for k, v in SPEC.items() if k != "n_items"}, register=False)
    with pytest.raises(ValueError, match=r"subscale 'task' must be item numbers 1..4, got 9"):
        instruments.load({**SPEC, "subscales": {"task": [3, 9]}}, register=False)
    bad = tmp_path / "form.txt"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=".json, .yaml or .yml"):
        instruments.load(bad)
    with pytest.raises(FileNotFoundError):
        instruments.load(tmp_path / "nope.yaml")
