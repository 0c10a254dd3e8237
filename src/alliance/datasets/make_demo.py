"""Regenerate the bundled ``demo`` dataset (``make data``).

The demo is ``simulate_study(n_therapists=30, clients_per_therapist=10, n_sessions=16,
n_sites=3, seed=2026)``, written as CSV files with its codebook and truth. A test checks
that the shipped files equal a fresh simulation, so the two never drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from alliance.io import write_table
from alliance.simulate import simulate_study

DEMO_DESIGN = {"n_therapists": 30, "clients_per_therapist": 10, "n_sessions": 16, "n_sites": 3}
DEMO_SEED = 2026


def make_demo(folder: Path | None = None) -> Path:
    """Simulate the demo study and write it into ``folder`` (the package's demo folder)."""
    folder = folder or Path(__file__).parent / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    study = simulate_study(**DEMO_DESIGN, seed=DEMO_SEED, name="demo")
    book = study.codebook.to_dict()
    book["title"] = "alliance demo study (synthetic)"
    book["description"] = (
        "Synthetic study made by alliance.simulate.simulate_study(n_therapists=30, "
        "clients_per_therapist=10, n_sessions=16, n_sites=3, seed=2026). 300 clients of 30 "
        "therapists in 3 sites; WAI-SR and PHQ-9 at item level every attended session; "
        "ruptures and repairs; prior negative therapy; phases and technique counts; dropout "
        "that depends on the observed alliance. truth.json holds the generating values and "
        "truth_ruptures.csv the simulated ruptures. No real person is described."
    )
    study.codebook.package.update(book)
    write_table(study.sessions, folder / "sessions.csv.gz")
    write_table(study.clients, folder / "clients.csv")
    write_table(study.events, folder / "events.csv")
    study.codebook.write(folder / "datapackage.json")
    truth = {k: v for k, v in study.truth.items() if k != "ruptures"}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    study.truth["ruptures"].to_csv(folder / "truth_ruptures.csv", index=False)
    return folder


if __name__ == "__main__":
    make_demo()
