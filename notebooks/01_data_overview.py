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
from alliance.export import save_figure, save_table

plt.rcParams.update({"figure.dpi": 96, "svg.hashsalt": "alliance"})
study = alliance.datasets.load_study(data)
scores = alliance.schema.find_scores(study, alliance=alliance_col, outcome=outcome)
report = alliance.validate(study, allow_therapist_change=True)
print(report.summary())
print(f"alliance score: {scores['alliance']}; outcome score: {scores['outcome']}")

# %% [markdown]
# ## Sizes

# %%
# NBVAL_CHECK_OUTPUT
sizes = overview(study)
save_table(sizes, "study_sizes", export_dir)
print(sizes.round(1).to_string(index=False))

# %% [markdown]
# ## Missing data
# Share of session rows with a missing value, for the columns that have any.

# %%
missing = report.missing[report.missing["n_missing"] > 0]
save_table(missing, "missing_values", export_dir)
missing.head(10).round(3)

# %% [markdown]
# ## Scores by interview phase
# Cells describing fewer than five clients are suppressed.

# %%
columns = [c for c in (scores["alliance"], scores["outcome"]) if c]
by = "phase" if "phase" in study.sessions.columns else None
by_phase = score_table(study.sessions, columns, by=by).round(2)
save_table(by_phase, "scores_by_phase", export_dir)
by_phase

# %% [markdown]
# ## Attendance and the average course of treatment

# %%
fig, axes = plt.subplots(1, 1 + len(columns), figsize=(4 * (1 + len(columns)), 3.2))
alliance.plots.sessions_per_client(study.sessions, ax=axes[0])
for ax, col in zip(axes[1:], columns, strict=True):
    alliance.plots.mean_trajectory(study.sessions, col, ax=ax)
fig.tight_layout()
figure_files = save_figure(fig, "attendance_and_mean_trajectories", export_dir)
