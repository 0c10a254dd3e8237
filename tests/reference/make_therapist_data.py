"""Write the client-level tables for the latent therapist-mean reference (lavaan two-level).

Run from the repository root: python tests/reference/make_therapist_data.py
Then: Rscript tests/reference/lavaan_therapist_latent.R

* ``therapist_demo.csv``: the demo study, one row per client: baseline (PHQ-9 at the first
  session), alliance (mean WAI-SR item score over the first 3 rated sessions), end (PHQ-9 at
  the client's last session, after the window); 30 therapists x 10 clients. The committed
  file is frozen from the demo before its regeneration for issues 16 and 19 (seed 2026
  without residual correlation, autoregression or varying effects). Written from the new
  demo, lavaan's two-level solution is improper (a negative between-therapist variance, no
  expected-information SEs, therapist-level SEs above 100) and alliance's fit reaches a
  higher log-likelihood (-1906.806 vs lavaan's -1906.888), so it cannot serve as a
  reference: ``main()`` writes it only with ``--demo``.
* ``therapist_small.csv``: simulated (seed 16), 80 therapists with 1 to 4 clients each, the
  small caseloads of the latent-mean problem (therapist ICC of alliance .15).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import alliance

HERE = Path(__file__).parent


def small(seed: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(80):
        u_a, u_y, u_b = rng.normal(0, np.sqrt(0.2)), rng.normal(0, 2.0), rng.normal(0, 2.0)
        for c in range(int(rng.integers(1, 5))):
            a = u_a + rng.normal(0, np.sqrt(0.85))
            base = 15 + u_b + rng.normal(0, 4)
            end = 10 + 0.5 * (base - 15) - 3.0 * u_a - 0.5 * (a - u_a) + u_y + rng.normal(0, 3)
            rows.append((f"T{t:02d}", f"T{t:02d}C{c}", round(base, 4), round(a, 4), round(end, 4)))
    return pd.DataFrame(rows, columns=["therapist", "client", "baseline", "alliance", "end"])


def demo_table() -> pd.DataFrame:
    """The demo's client-level table (see the module docstring: the committed one is frozen)."""
    study = alliance.datasets.load_dataset("demo")
    s = study.sessions.sort_values(["client", "session"])
    g = s.groupby("client")
    table = pd.DataFrame(
        {
            "therapist": g["therapist"].first(),
            "baseline": g["phq9"].first(),
            "alliance": g["wai_sr"].apply(lambda x: x.head(3).mean() / 12),
            "end": g["phq9"].last(),
            "last": g["session"].max(),
        }
    ).reset_index()
    table = table[table["last"] > 3].drop(columns="last")
    return table[["client", "therapist", "baseline", "alliance", "end"]]


def main(argv: list[str] | None = None) -> None:
    if "--demo" in (sys.argv[1:] if argv is None else argv):
        demo_table().to_csv(HERE / "data" / "therapist_demo.csv", index=False)
    small()[["client", "therapist", "baseline", "alliance", "end"]].to_csv(
        HERE / "data" / "therapist_small.csv", index=False
    )


if __name__ == "__main__":
    main()
