# ---
# jupyter:
#   alliance:
#     requires:
#     - alliance
#     - outcome
#     - alliance_items
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: alliance
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Alliance trajectories, ruptures and repairs
#
# This notebook looks at the session-by-session course of the alliance and at its
# ruptures (sudden falls) and repairs (returns to the earlier level):
#
# - ruptures detected from the alliance scores with the two operational definitions of
#   `alliance.ruptures.detect`: a fall from the previous session by at least the
#   reliable-change size of the scale (`"drop"`, Jacobson & Truax, 1991), and a session
#   more than two SDs below the client's own mean, the low point of the V-shaped
#   rupture-repair sequences of Stiles et al. (2004) (`"dip"`, against the stricter of the
#   client's own and the pooled within-client SD, as Gumz et al., 2012, recommend);
# - repairs: the alliance back at its pre-rupture level within a few sessions;
# - agreement of the detected ruptures with the ruptures the clients reported themselves
#   (`study.events`), and the rupture counts of clients with and without a prior
#   negative therapy experience;
# - the event-locked average around a rupture: the V of Stiles et al. (2004).

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = "wai_sr"  # alliance score column
alliance_instrument = "wai_sr"  # registry name of its items (for their reliability)
outcome = "phq9"  # outcome score column, drawn alongside the alliance
dip_sd = 2.0  # method "dip": SDs below the client's mean (Stiles et al. 2004: 2)
repair_window = 3  # sessions within which the alliance must return (repair)
window = 3  # sessions before and after a rupture in the event-locked plot
match_tolerance = 1  # sessions apart that still count as the same rupture
n_trajectories = 12  # clients drawn in the trajectory plot
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt
import pandas as pd

import alliance
from alliance.export import report_table, save_figure

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)
labels = alliance.tables.codebook_labels(study)
sessions = study.sessions
print(study)

# %% [markdown]
# ## The reliable-change size of the alliance scale
#
# The registry has no published reliable-change size for the WAI-SR, so it is computed
# as Jacobson & Truax (1991) did: `1.96 * sqrt(2) * SD * sqrt(1 - reliability)`, with the
# SD of the clients' first rated alliance scores and Cronbach's alpha of its items in
# these data.

# %%
# NBVAL_CHECK_OUTPUT
first_sd = sessions.sort_values("session").groupby("client")[alliance_col].first().std()
reliability = alliance.reliability.alpha(
    sessions, instrument=alliance_instrument, subscales=False
).loc[0, "alpha"]
print(f"SD of first scores = {first_sd:.3f}; alpha = {reliability:.3f}")

# %% [markdown]
# ## Detected ruptures and their repair

# %%
drops = alliance.ruptures.detect(
    sessions,
    alliance=alliance_col,
    method="drop",
    sd=first_sd,
    reliability=reliability,
    k=repair_window,
)
dips = alliance.ruptures.detect(
    sessions,
    alliance=alliance_col,
    method="dip",
    threshold=dip_sd,
    spread="stricter",
    k=repair_window,
)
print(drops.attrs["rule"])
print(dips.attrs["rule"])

# %% [markdown]
# Per method: ruptures, clients with a rupture, how deep they were, and how many were
# repaired within `repair_window` sessions (unknown: the client's ratings end too soon).

# %%
# NBVAL_CHECK_OUTPUT
detected = pd.concat([drops.assign(rule="drop"), dips.assign(rule="dip")], ignore_index=True)
detected["unknown"] = detected["resolved"].isna()
by_method = detected.groupby("rule", sort=False).agg(
    n_ruptures=("session", "size"),
    n_clients=("client", "nunique"),
    mean_depth=("depth", "mean"),
    n_repaired=("resolved", "sum"),
    n_unknown=("unknown", "sum"),
    mean_sessions_to_repair=("sessions_to_repair", "mean"),
)
report_table(
    by_method.reset_index(),
    "ruptures_by_method",
    export_dir,
    title="Detected ruptures and their repair, by rule",
    note=f"Repaired: back at the pre-rupture level within {repair_window} sessions; unknown: "
    "the ratings end too soon to tell; depth in scale points.",
    count="n_clients",
    labels={
        "rule": "Rule",
        "n_ruptures": "Ruptures",
        "n_clients": "Clients",
        "mean_depth": "Mean depth",
        "n_repaired": "Repaired",
        "n_unknown": "Unknown",
        "mean_sessions_to_repair": "Sessions to repair (mean)",
    },
)

# %% [markdown]
# ## Trajectories
#
# The alliance of the first `n_trajectories` clients, with the sessions where a rupture
# was detected (drop) or reported by the client. Lines are not labelled: client
# identifiers are never shown.

# %%
events = alliance.ruptures.combine(drops, study.events)
fig, ax = plt.subplots(figsize=(8, 4))
alliance.plots.trajectories(
    sessions, alliance=alliance_col, events=events, max_clients=n_trajectories, ax=ax
)
ax.set_title(f"{labels.get(alliance_col, alliance_col)} of {n_trajectories} clients")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "alliance_trajectories",
    export_dir,
    caption=f"The alliance of {n_trajectories} clients, with detected (drop rule) and "
    "self-reported ruptures marked",
)

# %% [markdown]
# ## Detected against self-reported ruptures
#
# A self-reported rupture is recovered when a detected one lies within
# `match_tolerance` sessions of it (sensitivity); a detected rupture is confirmed when a
# self-reported one does (precision). The drop rule catches most reported ruptures but
# flags many more falls, measurement error among them; the 2-SD dip is strict.

# %%
# NBVAL_CHECK_OUTPUT
agreement = pd.concat(
    [
        alliance.ruptures.compare(drops, study.events, tolerance=match_tolerance),
        alliance.ruptures.compare(dips, study.events, tolerance=match_tolerance),
    ],
    keys=["drop", "dip"],
    names=["rule", None],
).droplevel(1)
report_table(
    agreement.reset_index(),
    "rupture_agreement",
    export_dir,
    title="Detected against self-reported ruptures",
    note=f"A match lies within {match_tolerance} session(s); sensitivity: share of "
    "self-reported ruptures recovered; precision: share of detected ones confirmed.",
    digits=3,
)

# %% [markdown]
# Were the self-reported ruptures repaired? The clients' own judgement (`resolved`)
# against the scores (`repaired`: the alliance back at its pre-rupture level within
# `repair_window` sessions; unknown when the ratings end too soon).

# %%
judged = alliance.ruptures.repairs(study.events, sessions, alliance=alliance_col, k=repair_window)
crossed = pd.crosstab(
    judged["resolved"].astype("string").fillna("unknown").rename("Resolved (client)"),
    judged["repaired"].astype("string").fillna("unknown").rename("repaired (scores)"),
    margins=True,
    margins_name="total",
)
crossed.columns = [f"Repaired (scores): {c}" for c in crossed.columns]
report_table(
    crossed.reset_index(),
    "rupture_repair_judged",
    export_dir,
    title="Self-reported ruptures: the client's judgement and the scores",
    note=f"Counts of self-reported ruptures; repaired: the alliance back at its pre-rupture "
    f"level within {repair_window} sessions; unknown: the ratings end too soon.",
)

# %% [markdown]
# Ruptures per client by source (drop rule and self-report), from `summarize`:

# %%
per_client = alliance.ruptures.summarize(events, data=study.clients, by_source=True)
per_source = (
    per_client.groupby("source")[
        ["n_ruptures", "n_repaired", "n_unrepaired", "n_unknown", "proportion_repaired"]
    ]
    .agg(["mean", "sum"])
    .drop(columns=[("proportion_repaired", "sum")])
)
per_source.columns = [
    f"{name.removeprefix('n_').replace('_', ' ').capitalize()} ({stat})"
    for name, stat in per_source.columns
]
report_table(
    per_source.reset_index(),
    "ruptures_per_client",
    export_dir,
    title="Ruptures per client, by source",
    note="Mean: per client; sum: over clients.",
)

# %% [markdown] tags=["needs:prior_negative_therapy"]
# ## Prior negative therapy and ruptures
#
# Clients who had a negative experience in an earlier therapy trust less at first and
# rupture more. Rupture counts per client by group and source; groups of fewer than five
# clients are suppressed.

# %% tags=["needs:prior_negative_therapy"]
# NBVAL_CHECK_OUTPUT
by_prior = (
    per_client.assign(any_rupture=per_client["n_ruptures"] > 0)
    .merge(study.clients[["client", "prior_negative_therapy"]], on="client")
    .groupby(["source", "prior_negative_therapy"])
    .agg(
        n_clients=("client", "nunique"),
        mean_ruptures=("n_ruptures", "mean"),
        share_with_rupture=("any_rupture", "mean"),
        proportion_repaired=("proportion_repaired", "mean"),
    )
    .reset_index()
)
by_prior = alliance.privacy.suppress_small_cells(by_prior)
report_table(
    by_prior,
    "ruptures_by_prior_negative_therapy",
    export_dir,
    title="Ruptures by prior negative therapy",
    count="n_clients",
    labels={
        "source": "Source",
        "prior_negative_therapy": "Prior negative therapy",
        "n_clients": "Clients",
        "mean_ruptures": "Ruptures (mean)",
        "share_with_rupture": "Share with a rupture",
        "proportion_repaired": "Proportion repaired",
    },
)

# %% [markdown]
# ## The V around a rupture
#
# Mean alliance (left axis) and outcome (right axis) in the sessions around each
# rupture, with 95% intervals. Around self-reported ruptures the alliance falls in the
# rupture session and climbs back over the next sessions: the V-shaped rupture-repair
# sequence of Stiles et al. (2004). Around ruptures found by the drop rule, the session
# before is also raised, because the rule selects falls from a high point (part of it is
# measurement error that regresses to the mean).

# %%
locked_reported = alliance.ruptures.event_locked(
    sessions, study.events, alliance=alliance_col, outcome=outcome, window=window
)
locked_detected = alliance.ruptures.event_locked(
    sessions, drops, alliance=alliance_col, outcome=outcome, window=window
)
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
alliance.plots.event_locked(locked_reported, ax=axes[0])
alliance.plots.event_locked(locked_detected, ax=axes[1])
axes[0].set_title(f"self-reported ruptures (n = {locked_reported['n_events'].iloc[0]})")
axes[1].set_title(f"detected ruptures, drop rule (n = {locked_detected['n_events'].iloc[0]})")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "event_locked_v",
    export_dir,
    caption="Mean alliance and outcome in the sessions around a rupture (bands: 95% CIs): "
    "self-reported (left) and detected by the drop rule (right)",
)

# %%
# NBVAL_CHECK_OUTPUT
v_shape = pd.concat(
    [locked_reported.assign(events="self-report"), locked_detected.assign(events="drop")]
).pivot_table(index=["events", "variable"], columns="offset", values="mean", sort=False)
v_shape.columns = [f"Session {int(c):+d}" if c else "Rupture session" for c in v_shape.columns]
v_shape = v_shape.reset_index()
v_shape["variable"] = v_shape["variable"].map(lambda c: labels.get(c, c))
report_table(
    v_shape,
    "event_locked_means",
    export_dir,
    title="Mean scores around a rupture",
    note="Sessions relative to the rupture session.",
    labels={"events": "Ruptures", "variable": "Score"},
)
