"""The model registry: every analysis listed, its focal term real, and a user's model run by power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from typer.testing import CliRunner

import alliance
from alliance import models
from alliance.cli import app
from alliance.models import (
    ModelResult,
    Simulation,
    focal_row,
    get_model,
    list_models,
    register_model,
    study_roles,
    unregister_model,
)
from alliance.power import simulate_power
from alliance.study import Study

BUILT_IN = {
    "dropout_model",
    "dynamic_panel",
    "early_alliance",
    "early_alliance_difference",
    "mediation",
    "moderation",
    "riclpm",
    "rupture_occurrence",
    "rupture_outcome",
    "therapist_contributions",
    "within_between",
    "within_between_reverse",
}
COLUMNS = [
    "name",
    "function",
    "estimates",
    "citation",
    "roles",
    "focal_term",
    "simulate",
    "effects",
    "aliases",
]


@pytest.fixture(scope="module")
def demo():
    return alliance.datasets.load_dataset("demo")


def test_every_registered_model_is_listed_with_its_columns():
    table = list_models()
    assert list(table.columns) == COLUMNS
    assert set(table["name"]) == BUILT_IN
    for row in table.itertuples():
        assert row.estimates and row.citation and row.roles and row.focal_term, row.name
        module, _, name = row.function.rpartition(".")
        assert module == "alliance.models" and getattr(models, name) is get_model(row.name).function
    able = set(table.loc[table["simulate"], "name"])
    assert able == set(list_models(simulate=True)["name"])
    assert {"within_between", "early_alliance_difference", "dropout_model"} <= able
    assert "moderation" not in able  # the simulation plants no moderated effect
    assert (table.loc[table["simulate"], "effects"] != "").all()


# per-model options that keep a demo fit short (or give it what it needs)
_QUICK = {
    "mediation": {"n_boot": 2, "n_mc": 1000, "seed": 1},
    "rupture_outcome": "events",
    "dynamic_panel": {"max_sessions": 6},
    "riclpm": {"max_sessions": 6},
}


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_the_focal_term_of_every_model_is_in_its_output_on_the_demo(name, demo):
    spec = get_model(name)
    options = _QUICK.get(name, {})
    if options == "events":
        options = {"events": demo.events}
    roles = study_roles(demo)
    fit = spec.fit(demo, roles, **options)
    assert spec.focal(roles) in set(fit.params["term"]), (spec.focal(roles), fit.params["term"])
    row = focal_row(fit.params, spec.focal(roles))
    assert np.isfinite(row["estimate"]) and row["se"] > 0


def test_roles_come_from_the_codebook_then_conventional_names(demo):
    roles = study_roles(demo)
    assert roles["alliance"] == "wai_sr" and roles["outcome"] == "phq9"  # totals, not items
    frame = pd.DataFrame({"Client": ["a"], "SESSION": [1], "Alliance": [3.0], "outcome": [1.0]})
    assert study_roles(frame) == {
        "client": "Client",
        "session": "SESSION",
        "alliance": "Alliance",
        "outcome": "outcome",
    }
    package = demo.codebook.to_dict()
    for res in package["resources"]:
        for fld in res["schema"]["fields"]:
            if fld["name"] == "phq9_1":
                fld["role"] = "outcome"  # a declared role wins over the instrument
    study = Study(demo.sessions, demo.clients, codebook=alliance.Codebook(package))
    assert study_roles(study)["outcome"] == "phq9_1"


def test_lookup_errors_name_the_close_match():
    assert get_model("within") is get_model("within_between")
    assert get_model("reverse").options["effect"] == "outcome->alliance"
    with pytest.raises(KeyError, match="Did you mean 'early_alliance'"):
        get_model("early_aliance")
    with pytest.raises(KeyError, match="needs the 'outcome' column"):
        get_model("reverse").focal({"alliance": "wai_sr"})


def test_bad_registrations_are_refused():
    kw = {"estimates": "x", "citation": "x", "roles": ("alliance",), "focal_term": "{alliance}"}
    with pytest.raises(ValueError, match="already registered"):
        register_model(name="early_alliance", **kw)(lambda data: None)
    with pytest.raises(ValueError, match="unknown role"):
        register_model(name="toy_x", **{**kw, "roles": ("alliances",)})
    with pytest.raises(ValueError, match="not in roles"):
        register_model(name="toy_x", **{**kw, "focal_term": "{outcome}"})
    with pytest.raises(ValueError, match="unknown Effects field"):
        Simulation(effects=("withn",))
    assert "toy_x" not in set(list_models()["name"])


# --- a model registered by a user -------------------------------------------------------


def toy_slope(data, alliance="alliance", outcome="outcome", client="client"):
    """OLS slope of the outcome on the alliance, one row per observation."""
    frame = data.sessions if isinstance(data, Study) else data
    fit = smf.ols(f"{outcome} ~ {alliance}", frame).fit()
    ci = fit.conf_int()
    params = pd.DataFrame(
        {
            "term": list(fit.params.index),
            "estimate": fit.params.to_numpy(),
            "se": fit.bse.to_numpy(),
            "df": float(fit.df_resid),
            "statistic": fit.tvalues.to_numpy(),
            "p": fit.pvalues.to_numpy(),
            "ci_low": ci[0].to_numpy(),
            "ci_high": ci[1].to_numpy(),
        }
    )
    return ModelResult(model="toy slope", params=params, nobs=int(fit.nobs), citation="none")


def toy_draw(design, effects, rng):
    """One session per client; the outcome falls by ``effects.within`` per alliance point."""
    n = int(design["n_therapists"]) * int(design["clients_per_therapist"])
    x = rng.normal(3.5, 0.6, n)
    sessions = pd.DataFrame(
        {
            "client": [f"c{i}" for i in range(n)],
            "session": 1,
            "alliance": x,
            "outcome": 10 + effects.within * x + rng.normal(0, 1.0, n),
        }
    )
    return Study(sessions)


@pytest.fixture
def toy():
    register_model(
        name="toy_slope",
        estimates="outcome per alliance point (toy)",
        citation="none",
        roles=("alliance", "outcome", "client"),
        focal_term="{alliance}",
        simulate=Simulation(
            effects=("within",), truth=lambda eff, study, roles: eff.within, draw=toy_draw
        ),
    )(toy_slope)
    try:
        yield get_model("toy_slope")
    finally:
        unregister_model("toy_slope")
    assert "toy_slope" not in set(list_models()["name"])


def test_a_model_registered_in_the_test_is_listed_and_run_by_power(toy):
    listed = list_models().set_index("name")
    assert listed.loc["toy_slope", "function"].endswith("toy_slope")
    assert (
        bool(listed.loc["toy_slope", "simulate"]) and listed.loc["toy_slope", "effects"] == "within"
    )
    grid = pd.DataFrame(
        {"n_therapists": [2, 10], "clients_per_therapist": [5, 10], "n_sessions": 2}
    )
    table = simulate_power(
        grid, {"within": -1.0}, "toy_slope", n_sims=40, seed=1, n_jobs=1, backend="sequential"
    )
    assert table["model"].tolist() == ["toy_slope", "toy_slope"]
    assert table["n_failed"].tolist() == [0, 0]
    assert (table["truth"] == -1.0).all() and (table["planted"] == -1.0).all()
    assert table["power"].iloc[1] > table["power"].iloc[0] and table["power"].iloc[1] > 0.9
    assert abs(table["bias"].iloc[1]) < 0.1 and table["coverage"].iloc[1] > 0.8


def test_cli_power_lists_and_runs_the_registry(toy, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(app, ["power", "--list"])
    assert listing.exit_code == 0, listing.output
    for name in list_models(simulate=True)["name"]:
        assert name in listing.output
    assert "toy_slope" in listing.output and "moderation" not in listing.output
    assert "--list" in runner.invoke(app, ["power", "--help"]).output
    out = tmp_path / "toy.csv"
    run = runner.invoke(
        app,
        [
            "power",
            "--therapists",
            "4",
            "--clients-per-therapist",
            "5",
            "--sessions",
            "2",
            "--model",
            "toy_slope",
            "--sims",
            "3",
            "--jobs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert run.exit_code == 0, run.output
    assert pd.read_csv(out)["model"].tolist() == ["toy_slope"]
    refused = runner.invoke(app, ["power", "--model", "moderation", "--sims", "1"])
    assert refused.exit_code == 2 and "no simulation hook" in refused.output
