# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The data: who, how many sessions, what is missing
#
# This notebook loads the study, checks it with `alliance.validate` (every problem is
# listed at once; missing scores are counted, never an error), and describes it:
# sizes, attendance, missing data and the average course of alliance and symptoms.
# Run it on your own data with `alliance report --data PATH` (papermill fills the
# parameters below).

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = None  # alliance score column; found from the codebook when None
outcome = None  # outcome score column; found from the codebook when None
instrument = None  # outcome instrument (registry name); found when None
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt

import alliance
from alliance.describe import overview, score_table
from alliance.export import report_table, save_figure

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)  # the package's figure theme, axis labels from the codebook
labels = alliance.tables.codebook_labels(study)
scores = alliance.schema.find_scores(study, alliance=alliance_col, outcome=outcome)
report = alliance.validate(study, allow_therapist_change=True)
print(report.summary())
print(f"alliance score: {scores['alliance']}; outcome score: {scores['outcome']}")

# %% [markdown]
# ## Sizes

# %%
# NBVAL_CHECK_OUTPUT
sizes = overview(study)
report_table(
    sizes,
    "study_sizes",
    export_dir,
    title="Size of the study",
    note="Session rows are client x session records; events are rupture markers.",
)

# %% [markdown]
# ## Missing data
# Share of session rows with a missing value, for the columns that have any.

# %%
missing = report.missing[report.missing["n_missing"] > 0]
report_table(
    missing.assign(column=missing["column"].map(lambda c: labels.get(c, c))),
    "missing_values",
    export_dir,
    title="Missing values by column",
    note=f"Share of the {len(study.sessions)} session rows; columns without missing values "
    "are not listed.",
    labels={"column": "Column", "n_missing": "Rows missing", "share_missing": "Share missing"},
    digits=3,
)

# %% [markdown]
# ## Scores by interview phase
# Cells describing fewer than five clients are suppressed.

# %%
columns = [c for c in (scores["alliance"], scores["outcome"]) if c]
by = "phase" if "phase" in study.sessions.columns else None
by_phase = score_table(study.sessions, columns, by=by)
report_table(
    by_phase.assign(score=by_phase["score"].map(lambda c: labels.get(c, c))),
    "scores_by_phase",
    export_dir,
    title="Scores by interview phase" if by else "Scores",
    note="Means and SDs over session rows; missing: share of rows without the score.",
    labels={"n_clients": "Clients", "n_rows": "Session rows", "sd": "SD", "missing": "Missing"},
    count="n_clients",
)

# %% [markdown]
# ## Attendance and the average course of treatment

# %%
fig, axes = plt.subplots(1, 1 + len(columns), figsize=(7, 2.6))
alliance.plots.sessions_per_client(study.sessions, ax=axes[0])
for ax, col in zip(axes[1:], columns, strict=True):
    alliance.plots.mean_trajectory(study.sessions, col, ax=ax)
fig.tight_layout()
figure_files = save_figure(
    fig,
    "attendance_and_mean_trajectories",
    export_dir,
    caption="Sessions attended per client, and the mean of each score by session "
    "(bands: 95% CIs; sessions with fewer than five clients are not drawn)",
)
