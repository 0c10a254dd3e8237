# ---
# jupyter:
#   alliance:
#     requires:
#     - outcome
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
# # 6. Change: reliable change, clinical significance and sudden gains
#
# This notebook classifies each client's change from the first to the last outcome
# score:
#
# - reliable change (Jacobson & Truax, 1991): a change larger than the scale's
#   measurement error allows, `|post - pre| / S_diff > 1.96` with
#   `S_diff = sqrt(2) * SD * sqrt(1 - reliability)`;
# - clinically significant change (Jacobson & Truax, 1991): reliable improvement that
#   also crosses from the clinical to the functional side of a cut-off;
# - sudden gains and sudden losses between consecutive sessions (Tang & DeRubeis, 1999),
#   with the critical value of the third criterion adjusted for missing sessions as in
#   the R package suddengains (Wiedemann et al., 2020).
#
# The same reliable-change analysis then runs on real trial data: the Beat the Blues
# trial (Proudfoot et al., 2004), BDI-II at baseline and 2, 4, 6 and 8 months.
# Tables count clients per category; counts under five are suppressed.

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
outcome = "phq9"  # outcome score column
instrument = "phq9"  # its registry name (direction of improvement, cut-off)
# PHQ-9 test-retest reliability, r = .84 (Kroenke, Spitzer & Williams, 2001); the
# registry stores no reliability for the PHQ-9, so it is given here.
reliability = 0.84
rci_sd = "pre"  # SD of this sample's pre scores, as Jacobson & Truax (1991) used
sudden_gain_points = 5  # criterion 1 in points (about the reliable-change size here)
second_data = "btheb"  # real trial data for the second example
second_outcome = "bdi_ii"
second_instrument = "bdi_ii"
# BDI-II coefficient alpha in psychiatric outpatients, .92 (Beck, Steer, Ball &
# Ranieri, 1996); the registry stores no reliability for the BDI-II.
second_reliability = 0.92
# BDI-II: 0-13 is the "minimal" band (Beck, Steer & Brown, 1996; the registry's bands),
# so 14 separates the clinical from the functional range here.
second_cutoff = 14
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt
import pandas as pd

import alliance
from alliance.export import report_table, save_figure

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)
labels = alliance.tables.codebook_labels(study)
outcome_label = labels.get(outcome, outcome)
sessions = study.sessions
print(study)

# %% [markdown]
# ## Reliable change
#
# Pre is each client's first observed score, post the last; clients with a single score
# are kept as "no post score".

# %%
change = alliance.change.reliable_change(
    sessions, outcome=outcome, instrument=instrument, sd=rci_sd, reliability=reliability
)
print(change.attrs["method"])
print(f"direction: {change.attrs['direction']}")

# %% [markdown]
# ## Clinical significance
#
# With no norms of a functional population in the registry, the cut-off is the
# instrument's published one (PHQ-9: 10, Kroenke et al., 2001). Recovered: reliable
# improvement from at or above the cut-off to below it; improved: reliable improvement
# otherwise.

# %%
clinical = alliance.change.clinical_significance(
    sessions, outcome=outcome, instrument=instrument, sd=rci_sd, reliability=reliability
)
print(clinical["cutoff_rule"].iloc[0], clinical["cutoff"].iloc[0])

# %%
# NBVAL_CHECK_OUTPUT
categories = (
    clinical["category"].value_counts().rename("n_clients").rename_axis("category").reset_index()
)
categories["share"] = categories["n_clients"] / categories["n_clients"].sum()
categories = alliance.privacy.suppress_small_cells(categories)
report_table(
    categories,
    "clinical_significance",
    export_dir,
    title=f"Reliable and clinically significant change in {outcome_label}",
    note=f"{clinical['cutoff_rule'].iloc[0]}; cut-off {clinical['cutoff'].iloc[0]:g}. "
    "Share: of all clients.",
    labels={"n_clients": "Clients"},
    count="n_clients",
    digits=3,
)

# %% [markdown]
# ### The reliable-change methods compared
#
# The same cut-off with each method of `clinical_significance(method=...)`: Jacobson &
# Truax (JT), Gulliksen-Lord-Novick (GLN), Hsu-Linn-Lord (HLL), Edwards-Nunnally (EN),
# Nunnally-Kotsch (NK, here with the same reliability at post), Hageman & Arrindell
# (HA) and the multilevel empirical-Bayes slope over every session (HLM). Counts of
# clients per category; percentages are over the clients with a pre and a post score
# (counts under five suppressed). "Harmed" is reliable deterioration into the clinical
# range.

# %%
# NBVAL_CHECK_OUTPUT
by_method = []
for rc_method in ["JT", "GLN", "HLL", "EN", "NK", "HA", "HLM"]:
    result = alliance.change.clinical_significance(
        sessions,
        outcome=outcome,
        instrument=instrument,
        sd=rci_sd if rc_method == "JT" else None,
        reliability=reliability,
        reliability_post=reliability,
        method=rc_method,
    )
    by_method.append(
        result.attrs["summary"].rename(columns={"n": "n_clients"}).assign(method=rc_method)
    )
method_long = pd.concat(by_method, ignore_index=True)
method_long = alliance.privacy.suppress_small_cells(method_long)
method_table = method_long.pivot(index="category", columns="method", values="n_clients")
method_table = method_table.reindex(index=list(alliance.change.CATEGORIES))
method_table = method_table[["JT", "GLN", "HLL", "EN", "NK", "HA", "HLM"]].reset_index()
report_table(
    method_table,
    "clinical_significance_by_method",
    export_dir,
    title="Clients per category, by reliable-change method",
    note=f"{result.attrs['summary_note']} Counts under five are suppressed.",
    labels={"category": "Category"},
)

# %%
fig, ax = plt.subplots(figsize=(3.5, 3.5))
alliance.plots.jacobson_truax(clinical, ax=ax)
ax.set_xlabel(f"{outcome_label}, first session")
ax.set_ylabel(f"{outcome_label}, last session")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "jacobson_truax_plot",
    export_dir,
    caption=f"First against last {outcome_label} of each client (Jacobson & Truax plot): "
    "no-change line, band of no reliable change, cut-off, categories",
)
# %% [markdown]
# Reliable change and clinical significance, cross-tabulated (counts of clients), and
# the mean change in each category:

# %%
crossed = pd.crosstab(
    change["category"].rename("Reliable change"),
    clinical["category"],
    margins=True,
    margins_name="total",
)
crossed.columns = [f"Clinical: {c}" for c in crossed.columns]
report_table(
    crossed.reset_index(),
    "reliable_by_clinical",
    export_dir,
    title="Reliable change and clinical significance",
    note="Counts of clients.",
)

# %%
report_table(
    clinical.groupby("category")[["pre", "post", "change", "rci"]].mean().reset_index(),
    "change_by_category",
    export_dir,
    title=f"Mean {outcome_label} by clinical-significance category",
    note="Pre: first score; post: last score; RCI: reliable change index.",
    labels={"pre": "Pre", "post": "Post", "change": "Change", "rci": "RCI"},
)

# %% [markdown]
# ## Sudden gains and losses
#
# A gain between sessions N and N+1 is at least `sudden_gain_points` points, at least 25%
# of the score at N, and large against the spread of the three sessions before and after
# it. The registry has no reliable-change size for the PHQ-9 to take as criterion 1, so
# the parameter is set near the reliable-change size of these data (1.96 x S_diff, about
# 4.9 points with the SD and reliability above).

# %%
gains = alliance.change.sudden_gains(
    sessions, outcome=outcome, instrument=instrument, cutoff=sudden_gain_points
)
losses = alliance.change.sudden_losses(
    sessions, outcome=outcome, instrument=instrument, cutoff=sudden_gain_points
)
print(
    f"{gains.attrs['n_intervals_assessed']} session-to-session intervals of "
    f"{gains.attrs['n_clients']} clients could be assessed"
)

# %%
# NBVAL_CHECK_OUTPUT
sudden = pd.DataFrame(
    {
        "n_events": [len(gains), len(losses)],
        "n_clients": [gains["client"].nunique(), losses["client"].nunique()],
        "mean_magnitude": [gains["magnitude"].mean(), losses["magnitude"].mean()],
        "share_reversed": [gains["reversed"].mean(), losses["reversed"].mean()],
        "median_session": [gains["pregain_session"].median(), losses["pregain_session"].median()],
    },
    index=pd.Index(["sudden gain", "sudden loss"], name="kind"),
).reset_index()
sudden = alliance.privacy.suppress_small_cells(sudden)
report_table(
    sudden,
    "sudden_gains_losses",
    export_dir,
    title="Sudden gains and losses",
    note=f"A gain is at least {sudden_gain_points} points and 25% of the pre-gain score, and "
    "large against the three sessions before and after it (Tang & DeRubeis, 1999).",
    labels={
        "kind": "Kind",
        "n_events": "Events",
        "n_clients": "Clients",
        "mean_magnitude": "Magnitude (mean)",
        "share_reversed": "Share reversed",
        "median_session": "Pre-gain session (median)",
    },
    count="n_clients",
)

# %% [markdown]
# Clients with a sudden gain, by their clinical-significance category (a sudden gain
# is followed by more recovery in Tang & DeRubeis, 1999):

# %%
with_gain = clinical.assign(sudden_gain=clinical["client"].isin(gains["client"]))
by_gain = (
    with_gain.groupby(["sudden_gain", "category"])
    .size()
    .rename("n_clients")
    .reset_index()
    .pipe(alliance.privacy.suppress_small_cells)
)
report_table(
    by_gain,
    "category_by_sudden_gain",
    export_dir,
    title="Clinical-significance category by sudden gain",
    labels={"sudden_gain": "Sudden gain", "n_clients": "Clients"},
    count="n_clients",
)

# %% [markdown]
# The PHQ-9 around each sudden gain (mean of the clients' scores by session relative to
# the gain; session 0 is the pre-gain session N):

# %%
around_gain = alliance.ruptures.event_locked(
    sessions, gains.rename(columns={"pregain_session": "session"}), alliance=outcome, window=3
)
fig, ax = plt.subplots(figsize=(3.5, 2.8))
alliance.plots.event_locked(around_gain, ax=ax)
ax.set_xlabel("Sessions from the pre-gain session")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "outcome_around_sudden_gains",
    export_dir,
    caption=f"Mean {outcome_label} around {len(gains)} sudden gains (band: 95% CI; "
    "0: the pre-gain session)",
)

# %% [markdown] tags=["needs:bundled"]
# ## Real data: Beat the Blues (BDI-II)
#
# 100 clients, computerised CBT or treatment as usual, BDI-II at baseline and at 2, 4, 6
# and 8 months (Proudfoot et al., 2004, as distributed in R's HSAUR package). The
# registry holds neither a reliability nor a reliable-change size for the BDI-II, so the
# parameters give the reliability (alpha = .92, Beck et al., 1996) and the SD is that of
# the baseline scores (`sd="pre"`). The cut-off is 14, the top of the "minimal" band
# (0-13) of the BDI-II manual. Post is the last observed score.

# %% tags=["needs:bundled"]
trial = alliance.datasets.load_study(second_data)
trial_change = alliance.change.clinical_significance(
    trial.sessions,
    outcome=second_outcome,
    instrument=second_instrument,
    sd="pre",
    reliability=second_reliability,
    cutoff=second_cutoff,
)
print(trial)
print(trial_change.attrs["method"])

# %% tags=["needs:bundled"]
# NBVAL_CHECK_OUTPUT
trial_categories = (
    trial_change.merge(trial.clients[["client", "condition"]], on="client")
    .groupby(["condition", "category"])
    .size()
    .rename("n_clients")
    .reset_index()
    .pipe(alliance.privacy.suppress_small_cells)
)
report_table(
    trial_categories,
    "btheb_clinical_significance",
    export_dir,
    title="Beat the Blues: clinical significance by condition (BDI-II)",
    note=f"{trial_change.attrs['method']}; cut-off {second_cutoff}.",
    labels={"condition": "Condition", "category": "Category", "n_clients": "Clients"},
    count="n_clients",
)
