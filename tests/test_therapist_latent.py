"""therapist_contributions' default: end outcome after the window, latent therapist means.

A small version of ``benchmarks/sim_therapist_small.py`` (issue 16): therapists with 1-4
clients, alliance ICC .15, a therapist effect of -3 on the latent therapist alliance and a
client effect of -0.5. Observed caseload means (reliability about .35) pull the therapist
slope towards the client slope; the latent covariate model (Lüdtke et al. 2008) does not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from alliance.models import therapist_contributions

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "sim_therapist_small.py"


@pytest.fixture(scope="module")
def data():
    spec = importlib.util.spec_from_file_location("sim_therapist_small", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.simulate(7, {"n_therapists": 400})


def test_latent_default_removes_the_small_caseload_bias(data):
    fit = therapist_contributions(data, alliance="alliance", outcome="outcome", early=3)
    assert fit.centering == "latent" and fit.converged
    assert "end" in fit.model
    t = fit.params.set_index("term").loc["alliance_therapist"]
    assert t["ci_low"] < -3.0 < t["ci_high"], t
    c = fit.params.set_index("term").loc["alliance_client"]
    assert c["ci_low"] < -0.5 < c["ci_high"], c
    assert set(fit.difference.index) >= {"estimate", "se", "p"}
    obs = therapist_contributions(
        data, alliance="alliance", outcome="outcome", early=3, centering="observed"
    )
    o = obs.params.set_index("term").loc["alliance_therapist"]
    assert o["ci_high"] < -0.5 and o["ci_low"] > -3.0, o  # attenuated towards -0.5


def test_centering_refusals(data):
    with pytest.raises(ValueError, match="outcome_model='end'"):
        therapist_contributions(
            data, alliance="alliance", outcome="outcome", outcome_model="slope", centering="latent"
        )
    with pytest.raises(ValueError, match="centering"):
        therapist_contributions(data, alliance="alliance", outcome="outcome", centering="bayes")
