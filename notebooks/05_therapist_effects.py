# ---
# jupyter:
#   alliance:
#     requires:
#     - alliance
#     - outcome
#     - therapist
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
# # 5. Therapist effects: whose alliance is it?
#
# Clients are nested in therapists, and the alliance is built by both. Baldwin, Wampold &
# Imel (2007) split each client's alliance into the mean of the therapist's clients
# (the therapist's contribution) and the client's deviation from it (the client's
# contribution), and found that only the therapist part predicted outcome. This notebook
#
# - measures how much of the alliance and of the outcome lies between therapists
#   (intraclass correlations from null models with therapist and client intercepts);
# - fits `alliance.models.therapist_contributions`: the therapist and client parts of the
#   early alliance predicting the outcome's slope over sessions (a growth model on every
#   session) and, as in Baldwin et al. (2007), the end-of-treatment outcome;
# - draws therapist-mean alliance against the therapists' mean outcome slope.
#
# Therapist identifiers are never shown; therapists are points without labels.

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = "wai_sr"  # alliance score column
outcome = "phq9"  # outcome score column
instrument = "phq9"  # outcome's registry name
# The alliance is analysed as alliance_col / alliance_items. None: the registry's item
# count when alliance_col is a summed instrument (WAI-SR total / 12 = its 1-5 item mean,
# the scale of the demo's truth); 1 keeps the score as it is.
alliance_items = None
early_window = 3  # a client's alliance: mean of the first 3 rated sessions (None: all)
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

import alliance
from alliance import models
from alliance.export import report_table, save_figure

# The models' warnings are in their .notes, printed below; this keeps them from being
# logged a second time to the notebook's stderr.
study = alliance.datasets.load_study(data)
if "therapist" not in study.sessions.columns:
    raise ValueError("this notebook needs a 'therapist' column in the sessions table")
summed = alliance.instruments.list_instruments().query("scoring == 'sum'")
alliance_items = alliance_items or int(summed.set_index("name")["n_items"].get(alliance_col, 1))
study.sessions["alliance"] = study.sessions[alliance_col] / alliance_items
labels = alliance.tables.codebook_labels(study)
outcome_label = labels.get(outcome, outcome)
alliance.plots.set_theme(study)
terms = {
    "session": "Session",
    "baseline": f"Baseline {outcome_label}",
    "alliance_therapist": "Alliance, therapist mean",
    "alliance_client": "Alliance, client deviation",
    "session:alliance_therapist": "Session x alliance, therapist mean",
    "session:alliance_client": "Session x alliance, client deviation",
}
clients_per_therapist = study.sessions.groupby("therapist")["client"].nunique()
print(study)
print(f"alliance = {alliance_col} / {alliance_items}; outcome = {outcome}")
print(
    f"{clients_per_therapist.size} therapists; clients per therapist: "
    f"median {clients_per_therapist.median():.0f}, "
    f"range {clients_per_therapist.min()}-{clients_per_therapist.max()}"
)

# %% [markdown]
# ## 1. How much lies between therapists?
#
# Intraclass correlations from null models `y ~ 1 + (1 | therapist) + (1 | client)` on all
# sessions: the share of the variance of session scores between therapists and between
# clients of the same therapist (the rest is session-to-session variation).

# %%
slope_model = models.therapist_contributions(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist="therapist",
    early=early_window,
    outcome_model="slope",
)
end_model = models.therapist_contributions(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist="therapist",
    early=early_window,
    outcome_model="end",
    centering="observed",
)
print(slope_model.citation)
print(*slope_model.notes, *end_model.notes, sep="\n")

# %%
# NBVAL_CHECK_OUTPUT
icc = slope_model.icc.assign(sd=lambda t: np.sqrt(t["variance"]))
report_table(
    icc.assign(variable=icc["variable"].map(lambda v: labels.get(v, v))),
    "therapist_iccs",
    export_dir,
    title="Variance of session scores between therapists and between clients",
    note="ICC: share of the variance at the level; from null models with random "
    "therapist and client intercepts on all sessions.",
    labels={"icc": "ICC", "sd": "SD"},
    digits=3,
)

# %% [markdown]
# ## 2. Therapist and client contributions to outcome
#
# **Growth model** (`outcome_model="slope"`): `outcome ~ session * (alliance_therapist +
# alliance_client) + (1 + session | client) + (1 | therapist)` on every observed session.
# The `session:` terms are the change in the outcome's slope per session for one
# alliance point more at the therapist level (a therapist whose clients report a better
# alliance) and at the client level (a client reporting a better alliance than the
# therapist's other clients).

# %%
report_table(
    slope_model.apa_table(digits=3).rename(terms),
    "therapist_contributions_slope_apa",
    export_dir,
    title=f"Therapist and client contributions to the {outcome_label} slope (growth model)",
)

# %% [markdown]
# **End-of-treatment model** (`outcome_model="end"`, the design of Baldwin et al. 2007):
# `end ~ baseline + alliance_therapist + alliance_client + (1 | therapist)`, one row per
# client, the last observed outcome after the early window.

# %%
report_table(
    end_model.apa_table().rename(terms),
    "therapist_contributions_end_apa",
    export_dir,
    title=f"Therapist and client contributions to {outcome_label} at the end of treatment",
)

# %% [markdown]
# Is the therapist effect larger than the client effect? Baldwin et al. (2007) found it
# was. The difference (therapist minus client) with its Satterthwaite t test, per model:

# %%
# NBVAL_CHECK_OUTPUT
difference = pd.DataFrame({"growth (slope)": slope_model.difference, "end": end_model.difference}).T
difference.index.name = "model"
report_table(
    difference.reset_index(),
    "therapist_minus_client",
    export_dir,
    title="Therapist minus client effect",
    note="Satterthwaite t test of the difference of the two coefficients; CI: 95%.",
    labels={"estimate": "Difference", "statistic": "t"},
    digits=3,
)

# %% [markdown]
# ## 3. Therapist-mean alliance and the therapists' outcome slopes
#
# Each point is a therapist: the mean early alliance of their clients against the mean
# of their clients' least-squares outcome slopes over sessions (descriptive; clients
# need two rated sessions). The line is the growth model's fixed-effect slope for a
# client at the therapist's mean. Right: clients, their deviation from the therapist
# mean against their own slope.

# %%
scored = study.sessions.dropna(subset=[outcome])
by_client = scored.groupby("client")
session_dev = scored["session"] - by_client["session"].transform("mean")
outcome_dev = scored[outcome] - by_client[outcome].transform("mean")
client_slopes = (
    (session_dev * outcome_dev).groupby(scored["client"]).sum()
    / (session_dev**2).groupby(scored["client"]).sum().replace(0, np.nan)
).rename("outcome_slope")
client_table = slope_model.clients.join(client_slopes, on="client")
therapist_table = client_table.groupby("therapist").agg(
    alliance_therapist=("alliance_therapist", "first"),
    outcome_slope=("outcome_slope", "mean"),
    n_clients=("client", "nunique"),
)
b = slope_model.params.set_index("term")["estimate"]
therapist_summary = pd.DataFrame(
    {
        "statistic": ["Therapists", "Mean", "SD", "Minimum", "Median", "Maximum"],
        **{
            column: pd.Series(
                [
                    int(therapist_table[column].count()),
                    *therapist_table[column].agg(["mean", "std", "min", "median", "max"]),
                ],
                dtype=object,
            )
            for column in therapist_table.columns
        },
    }
)
report_table(
    therapist_summary,
    "therapist_table_summary",
    export_dir,
    title="Therapists: mean early alliance, mean outcome slope, clients",
    labels={
        "statistic": "Statistic",
        "alliance_therapist": "Mean early alliance",
        "outcome_slope": f"{outcome_label} slope (mean)",
        "n_clients": "Clients",
    },
    digits=3,
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
sns.scatterplot(
    data=therapist_table,
    x="alliance_therapist",
    y="outcome_slope",
    size="n_clients",
    sizes=(20, 80),
    legend=False,
    ax=axes[0],
)
grid = np.linspace(*axes[0].get_xlim(), 50)
axes[0].plot(
    grid,
    b["session"] + b["session:alliance_therapist"] * grid,
    color="C1",
    label="growth model, fixed effects",
)
axes[0].legend(frameon=False, fontsize="small")
axes[0].set_xlabel("Therapist mean of early alliance")
axes[0].set_ylabel(f"Mean {outcome_label} change per session")
axes[0].set_title(f"Therapists (n = {len(therapist_table)})")
sns.scatterplot(
    data=client_table, x="alliance_client", y="outcome_slope", s=10, alpha=0.5, ax=axes[1]
)
grid = np.linspace(*axes[1].get_xlim(), 50)
at_mean = (
    b["session"] + b["session:alliance_therapist"] * therapist_table["alliance_therapist"].mean()
)
axes[1].plot(grid, at_mean + b["session:alliance_client"] * grid, color="C1")
axes[1].set_xlabel("Client deviation from the therapist mean")
axes[1].set_ylabel(f"{outcome_label} change per session")
axes[1].set_title(f"Clients (n = {client_table['outcome_slope'].notna().sum()})")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "therapist_alliance_outcome_slopes",
    export_dir,
    caption=f"Early alliance and the {outcome_label} slope: therapists (left; point size: "
    "clients) and clients (right), with the growth model's fixed-effect lines",
)

# %% [markdown]
# ## 4. Estimates and the simulated truth (demo data only)
#
# The demo's alliance varies between therapists (SD 0.18 item-mean points) and between
# clients (SD 0.42), and each item-mean point of therapist-mean alliance changes the
# PHQ-9 slope by -0.5 points per session, of the client's own alliance by -0.15. The
# estimated therapist effect is attenuated: a therapist's mean of client alliance also
# contains client variance and measurement error, and the PHQ-9 floor compresses slopes
# late in treatment (see `docs/models.md`).

# %%
# NBVAL_CHECK_OUTPUT
if study.truth:
    effects = study.truth["effects"]
    units = alliance.instruments.get("wai_sr").n_items / alliance_items
    alliance_sd = icc.query("variable == 'alliance'").set_index("level")["sd"]
    truth_table = pd.DataFrame(
        {
            "quantity": [
                "SD of alliance between therapists",
                "SD of alliance between clients",
                "session:alliance_therapist",
                "session:alliance_client",
            ],
            "estimate": [
                alliance_sd["therapist"],
                alliance_sd["client"],
                b["session:alliance_therapist"],
                b["session:alliance_client"],
            ],
            "truth": [
                effects["therapist_sd"] * units,
                effects["client_sd"] * units,
                effects["between_therapist"] / units,
                effects["between_client"] / units,
            ],
        }
    )
    display(
        report_table(
            truth_table.assign(quantity=truth_table["quantity"].map(lambda t: terms.get(t, t))),
            "therapist_truth",
            export_dir,
            title="Estimates and the simulated truth",
            note="Truth: the values the demo data were simulated with, in the same units.",
            digits=3,
        )
    )
