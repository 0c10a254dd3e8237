"""Write the small simulated dyads the R reference for ``alliance.dyad`` reads.

Run from the repository root: python tests/reference/make_dyad_data.py
Then: Rscript tests/reference/dyad_reference.R

``dyad_sessions.csv``: 12 therapists x 5 clients x 4 sessions of client- and therapist-rated
alliance (``alliance.dyad.simulate_dyads(seed=19)``); ``dyad_clients.csv``: one row per client
with the client means of both ratings and the outcome (a discrepancy effect on the outcome).
"""

from __future__ import annotations

from pathlib import Path

from alliance.dyad import simulate_dyads

HERE = Path(__file__).parent


def main() -> None:
    study = simulate_dyads(
        n_therapists=12,
        clients_per_therapist=5,
        n_sessions=4,
        client_effect=0.3,
        therapist_effect=0.1,
        discrepancy=-0.8,
        seed=19,
    )
    sessions = study.sessions.round(6)
    sessions.to_csv(HERE / "data" / "dyad_sessions.csv", index=False)
    means = sessions.groupby("client", sort=True)[["wai_client", "wai_therapist"]].mean()
    clients = study.clients.merge(means.reset_index(), on="client")
    clients["outcome"] = clients["outcome"].round(6)
    clients.to_csv(HERE / "data" / "dyad_clients.csv", index=False)


if __name__ == "__main__":
    main()
