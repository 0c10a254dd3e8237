"""Regenerate the bundled ``demo`` dataset (``make data``).

The demo is ``simulate_study(n_therapists=30, clients_per_therapist=10, n_sessions=16,
n_sites=3, effects=DEMO_EFFECTS, therapist_ratings=True, observer=True,
clinical_records=True, seed=2026)``, written as CSV files with its codebook and truth. It
has the problems of real session-level data (same-session correlation of alliance and
symptom innovations, autocorrelated symptoms, client-varying alliance effects) and both
sides of the dyad (therapist-rated WAI-SR-T, observer 3RS codes by two coders, a
therapists table, termination reasons, prior therapy none / helpful / harmful). A test
checks that the shipped files equal a fresh simulation, so the two never drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from alliance.io import write_table
from alliance.simulate import simulate_study

DEMO_DESIGN = {"n_therapists": 30, "clients_per_therapist": 10, "n_sessions": 16, "n_sites": 3}
DEMO_EFFECTS = {"residual_correlation": -0.5, "symptom_autoregression": 0.5, "within_sd": 0.5}
DEMO_OPTIONS = {"therapist_ratings": True, "observer": True, "clinical_records": True}
DEMO_SEED = 2026


def simulate_demo(*, latent: bool = False):
    """Simulate the demo study (the shipped files are this study written out).

    ``latent=True`` also stores the latent session scores in ``truth["latent"]`` (see
    :func:`alliance.simulate.simulate_study`); the study is otherwise the same.
    """
    return simulate_study(
        **DEMO_DESIGN,
        effects=DEMO_EFFECTS,
        **DEMO_OPTIONS,
        seed=DEMO_SEED,
        name="demo",
        latent=latent,
    )


def make_demo(folder: Path | None = None) -> Path:
    """Simulate the demo study and write it into ``folder`` (the package's demo folder)."""
    folder = folder or Path(__file__).parent / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    study = simulate_demo()
    book = study.codebook.to_dict()
    book["title"] = "alliance demo study (synthetic)"
    book["description"] = (
        "Synthetic study made by alliance.simulate.simulate_study(n_therapists=30, "
        "clients_per_therapist=10, n_sessions=16, n_sites=3, effects={'residual_correlation': "
        "-0.5, 'symptom_autoregression': 0.5, 'within_sd': 0.5}, therapist_ratings=True, "
        "observer=True, clinical_records=True, seed=2026). 300 clients of 30 therapists in "
        "3 sites; client-rated WAI-SR (rater client) and therapist-rated WAI-SR-T (rater "
        "therapist) items every attended session, both 1-5; PHQ-9 at item level; alliance "
        "and symptom innovations of a session correlated -0.5, symptom deviations "
        "autoregressive (0.5), within-client alliance effects varying between clients "
        "(SD 0.5); a client-therapist discrepancy that changes the PHQ-9 slope; ruptures "
        "and repairs; Rupture Resolution Rating System codes of every attended session by "
        "two observers (segments, coders); therapists table; termination reasons; prior "
        "therapy none / helpful / harmful; phases and technique counts; dropout that "
        "depends on the observed alliance. truth.json holds the generating values "
        "(truth['effects'], truth['within_by_client'], truth['dyad'], truth['observer'] "
        "with the coders' exact reliability) and truth_ruptures.csv the simulated "
        "ruptures. No real person is described."
    )
    study.codebook.package.update(book)
    write_table(study.sessions, folder / "sessions.csv.gz")
    write_table(study.clients, folder / "clients.csv")
    write_table(study.events, folder / "events.csv")
    write_table(study.therapists, folder / "therapists.csv")
    write_table(study.segments, folder / "segments.csv.gz")
    write_table(study.coders, folder / "coders.csv")
    study.codebook.write(folder / "datapackage.json")
    truth = {k: v for k, v in study.truth.items() if k != "ruptures"}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    study.truth["ruptures"].to_csv(folder / "truth_ruptures.csv", index=False)
    return folder


if __name__ == "__main__":
    make_demo()
