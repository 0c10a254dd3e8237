"""Regenerate the bundled ``dyads`` dataset (``python -m alliance.datasets.make_dyads``).

``dyads`` is a small synthetic study of both sides of the relationship:
``simulate_study(n_therapists=20, clients_per_therapist=6, n_sessions=10, n_sites=2,
therapist_ratings=True, observer=True, clinical_records=True, seed=1919)``. Besides the
client's WAI-SR and PHQ-9 it has the therapist's WAI-SR-T every session, observer codes
of the Rupture Resolution Rating System by two coders for every attended session
(``segments``, ``coders``), a ``therapists`` table, termination reasons and a
three-level prior therapy. The ``demo`` has the same options on a larger design (and the
problems of real session-level data); ``dyads`` stays as the small dyadic example. A test
checks that the shipped files equal a fresh simulation.
"""

from __future__ import annotations

import json
from pathlib import Path

from alliance.io import write_table
from alliance.simulate import simulate_study

DYADS_DESIGN = {"n_therapists": 20, "clients_per_therapist": 6, "n_sessions": 10, "n_sites": 2}
DYADS_OPTIONS = {"therapist_ratings": True, "observer": True, "clinical_records": True}
DYADS_SEED = 1919


def make_dyads(folder: Path | None = None) -> Path:
    """Simulate the dyads study and write it into ``folder`` (the package's dyads folder)."""
    folder = folder or Path(__file__).parent / "dyads"
    folder.mkdir(parents=True, exist_ok=True)
    study = simulate_study(**DYADS_DESIGN, **DYADS_OPTIONS, seed=DYADS_SEED, name="dyads")
    study.codebook.package.update(
        {
            "title": "alliance dyads study (synthetic)",
            "description": (
                "Synthetic study made by alliance.simulate.simulate_study(n_therapists=20, "
                "clients_per_therapist=6, n_sessions=10, n_sites=2, therapist_ratings=True, "
                "observer=True, clinical_records=True, seed=1919). 120 clients of 20 "
                "therapists in 2 sites. Client-rated WAI-SR (rater client) and "
                "therapist-rated WAI-SR-T (rater therapist) items every attended session, "
                "both 1-5; PHQ-9; Rupture Resolution Rating System codes of every attended "
                "session by two observers (segments, coders); therapists table; termination "
                "reasons; prior therapy none / helpful / harmful. truth.json holds the "
                "generating values (truth['dyad'], truth['observer'] with the coders' exact "
                "reliability) and truth_ruptures.csv the simulated ruptures. No real person "
                "is described."
            ),
        }
    )
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
    make_dyads()
