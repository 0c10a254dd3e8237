"""early_alliance: baseline strictly before the window, prior change, the end assessment
without carrying forward, and the one window rule (EarlyWindow.mask) in every model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.models import early_alliance


def _course(client, sessions, phq, wai, therapist="T1"):
    return pd.DataFrame(
        {
            "client": client,
            "therapist": therapist,
            "session": sessions,
            "phq9": phq,
            "wai": wai,
        }
    )


@pytest.fixture(scope="module")
def clients():
    rng = np.random.default_rng(4)
    rows = []
    for i in range(40):
        a = rng.normal(4, 0.6)
        base = rng.normal(15, 3)
        n = 8
        phq = base - (a - 4) * np.arange(n) * 0.5 + rng.normal(0, 1, n)
        wai = a + rng.normal(0, 0.3, n)
        rows.append(_course(f"c{i:02d}", np.arange(1, n + 1), phq, wai))
    return pd.concat(rows, ignore_index=True)


def test_baseline_never_inside_the_window(clients):
    # c00 has no outcome at session 1: its first outcome (session 2) lies inside the window
    d = clients.copy()
    d.loc[(d["client"] == "c00") & (d["session"] == 1), "phq9"] = np.nan
    fit = early_alliance(d, alliance="wai", outcome="phq9", early=3)
    assert "c00" not in set(fit.table["client"])
    reasons = fit.excluded.set_index("reason")["n_clients"]
    hit = [r for r in reasons.index if r.startswith("no phq9 before the early window")]
    assert len(hit) == 1 and reasons[hit[0]] == 1
    # baseline is the session-1 score for everyone else
    first = d[d["session"] == 1].set_index("client")["phq9"]
    t = fit.table.set_index("client")
    assert np.allclose(t["baseline"], first.loc[t.index])
    # alliance_first: a same-session outcome is after the alliance rating, so nobody has one
    with pytest.raises(ValueError, match="only 0 clients"):
        early_alliance(d, alliance="wai", outcome="phq9", early=3, order="alliance_first")
    # an intake outcome at session 0 (no alliance) is a baseline under both orders
    intake = d[d["session"] == 1].assign(session=0, wai=np.nan)
    intake["phq9"] = 20.0 + np.arange(40) % 7
    both = pd.concat([d, intake], ignore_index=True)
    fit2 = early_alliance(both, alliance="wai", outcome="phq9", early=3, order="alliance_first")
    t2 = fit2.table.set_index("client")
    assert fit2.nobs == 40
    assert np.allclose(t2["baseline"], intake.set_index("client")["phq9"].loc[t2.index])


def test_end_assessment_is_not_carried_forward(clients):
    d = clients.copy()
    # c01 misses the end assessment (PHQ-9 at its last session)
    d.loc[(d["client"] == "c01") & (d["session"] == 8), "phq9"] = np.nan
    fit = early_alliance(d, alliance="wai", outcome="phq9")
    assert "c01" not in set(fit.table["client"])
    reasons = fit.excluded.set_index("reason")["n_clients"]
    assert (
        reasons["no phq9 at the client's last session (end assessment; not carried forward)"] == 1
    )
    assert fit.nobs + reasons.sum() == 40
    assert "not carried forward" in fit.missing_data
    locf = early_alliance(d, alliance="wai", outcome="phq9", end="last_observed")
    t = locf.table.set_index("client")
    assert (
        t.loc["c01", "end"] == d.loc[(d["client"] == "c01") & (d["session"] == 7), "phq9"].iloc[0]
    )
    assert any("carried forward" in n for n in locf.notes)
    # a fixed end session
    at6 = early_alliance(d, alliance="wai", outcome="phq9", end=6)
    six = d[d["session"] == 6].set_index("client")["phq9"]
    t6 = at6.table.set_index("client")
    assert at6.nobs == 40 and np.allclose(t6["end"], six.loc[t6.index])
    with pytest.raises(ValueError, match="end must be"):
        early_alliance(d, alliance="wai", outcome="phq9", end="final")


def test_prior_change_adjustment(clients):
    fit = early_alliance(clients, alliance="wai", outcome="phq9", adjust_prior_change=True)
    assert "prior_change" in set(fit.params["term"])
    t = fit.table.set_index("client")
    s3 = clients[clients["session"] == 3].set_index("client")["phq9"]
    s1 = clients[clients["session"] == 1].set_index("client")["phq9"]
    assert np.allclose(t["prior_change"], (s3 - s1).loc[t.index])
    # alliance_first: the session-3 outcome is after the third rating, so session 2 is used
    intake = clients[clients["session"] == 1].assign(session=0, wai=np.nan)
    both = pd.concat([clients, intake], ignore_index=True)
    af = early_alliance(
        both, alliance="wai", outcome="phq9", adjust_prior_change=True, order="alliance_first"
    )
    s2 = clients[clients["session"] == 2].set_index("client")["phq9"]
    ta = af.table.set_index("client")
    assert np.allclose(ta["prior_change"], (s2 - s1).loc[ta.index])


def test_prior_change_needs_an_assessment_between(clients):
    # early=1: the window is session 1, no outcome between baseline and the rating
    with pytest.raises(ValueError, match="only 0 clients"):
        early_alliance(clients, alliance="wai", outcome="phq9", early=1, adjust_prior_change=True)
