"""Make the small, seeded datasets that the lme4 references in this folder are computed on.

Run from the repository root::

    python tests/reference/make_lmm_data.py

then ``Rscript tests/reference/lme4_reference.R`` to refresh the JSON references.
The data are synthetic (no real clients): sessions nested in clients nested in therapists
nested in sites, unbalanced, with missing sessions, single-session clients and a few
missing values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent / "data"


def nested_sessions(
    *,
    n_sites: int,
    therapists_per_site: int,
    clients_per_therapist: tuple[int, int],
    max_sessions: int,
    sd_client: tuple[float, float],
    corr_client: float,
    sd_therapist: float,
    sd_site: float,
    sd_therapist_slope: float = 0.0,
    sigma: float = 2.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Long table of sessions with a known multilevel structure."""
    rng = np.random.default_rng(seed)
    rows = []
    client_no = 0
    for s in range(n_sites):
        site_eff = rng.normal(0, sd_site)
        for t in range(therapists_per_site):
            th = f"t{s:02d}{t:02d}"
            th_eff = rng.normal(0, sd_therapist)
            th_slope = rng.normal(0, sd_therapist_slope)
            n_clients = rng.integers(clients_per_therapist[0], clients_per_therapist[1] + 1)
            for _ in range(n_clients):
                client_no += 1
                cov = np.array(
                    [
                        [sd_client[0] ** 2, corr_client * sd_client[0] * sd_client[1]],
                        [corr_client * sd_client[0] * sd_client[1], sd_client[1] ** 2],
                    ]
                )
                b0, b1 = rng.multivariate_normal([0, 0], cov)
                prior = rng.random() < 0.35
                trait = rng.normal(0, 1)
                # 10% single-session clients, others 2..max_sessions, some sessions missed
                n_sess = 1 if rng.random() < 0.1 else int(rng.integers(2, max_sessions + 1))
                sessions = np.arange(n_sess)
                keep = rng.random(n_sess) > 0.15
                keep[0] = True
                for j in sessions[keep]:
                    alliance = 4.5 + 0.4 * trait - 0.3 * prior + 0.05 * j + rng.normal(0, 0.6)
                    y = (
                        15
                        + site_eff
                        + th_eff
                        + b0
                        + (-0.5 + b1 + th_slope) * j
                        - 1.2 * (alliance - 4.5)
                        + 1.5 * prior
                        + rng.normal(0, sigma)
                    )
                    rows.append(
                        {
                            "site": f"s{s}",
                            "therapist": th,
                            "client": f"c{client_no:04d}",
                            "session": int(j),
                            "alliance": round(alliance, 4),
                            "prior": "yes" if prior else "no",
                            "phq9": round(y, 4),
                        }
                    )
    frame = pd.DataFrame(rows)
    # person-mean centring: the within and between parts of alliance
    mean = frame.groupby("client")["alliance"].transform("mean")
    frame["alliance_within"] = (frame["alliance"] - mean).round(6)
    frame["alliance_between"] = (mean - frame["alliance"].mean()).round(6)
    return frame


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    main_data = nested_sessions(
        n_sites=5,
        therapists_per_site=6,
        clients_per_therapist=(3, 10),
        max_sessions=12,
        sd_client=(3.0, 0.35),
        corr_client=-0.4,
        sd_therapist=1.5,
        sd_site=1.5,
        sd_therapist_slope=0.15,
        seed=20240501,
    )
    # a few missing values, so that the exclusion of rows is exercised
    rng = np.random.default_rng(7)
    miss = rng.choice(len(main_data), size=6, replace=False)
    main_data.loc[miss[:4], "phq9"] = np.nan
    main_data.loc[miss[4:], "alliance_within"] = np.nan
    main_data.to_csv(HERE / "lmm_main.csv", index=False)

    # no therapist variance in truth: the therapist level fits on the boundary
    boundary = nested_sessions(
        n_sites=1,
        therapists_per_site=12,
        clients_per_therapist=(4, 8),
        max_sessions=8,
        sd_client=(2.0, 0.3),
        corr_client=0.2,
        sd_therapist=0.0,
        sd_site=0.0,
        seed=100,
    )
    boundary.to_csv(HERE / "lmm_boundary.csv", index=False)

    # with this seed the client slope variance is estimated at zero as well: the 2 x 2 client
    # covariance matrix is singular (rank 1)
    boundary_slope = nested_sessions(
        n_sites=1,
        therapists_per_site=12,
        clients_per_therapist=(4, 8),
        max_sessions=8,
        sd_client=(2.0, 0.3),
        corr_client=0.2,
        sd_therapist=0.0,
        sd_site=0.0,
        seed=120,
    )
    boundary_slope.to_csv(HERE / "lmm_boundary_slope.csv", index=False)


if __name__ == "__main__":
    main()
