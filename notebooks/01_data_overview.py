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
# Run it on your own data with papermill or `alliance report --data PATH`.

# %% tags=["parameters"]
data = "demo"
alliance_col = "wai_sr"
outcome = "phq9"
seed = 2026

# %%
import matplotlib.pyplot as plt

import alliance
from alliance.describe import overview, score_table

plt.rcParams.update({"figure.dpi": 96, "svg.hashsalt": "alliance"})
study = alliance.datasets.load_study(data)
report = alliance.validate(study, allow_therapist_change=True)
print(report.summary())

# %% [markdown]
# ## Sizes

# %%
# NBVAL_CHECK_OUTPUT
print(overview(study).round(1).to_string(index=False))

# %% [markdown]
# ## Missing data
# Share of session rows with a missing value, for the columns that have any.

# %%
missing = report.missing[report.missing["n_missing"] > 0]
missing.head(10).round(3)

# %% [markdown]
# ## Scores by interview phase
# Cells describing fewer than five clients are suppressed.

# %%
scores = [c for c in (alliance_col, outcome) if c in study.sessions.columns]
by = "phase" if "phase" in study.sessions.columns else None
score_table(study.sessions, scores, by=by).round(2)

# %% [markdown]
# ## Attendance and the average course of treatment

# %%
fig, axes = plt.subplots(1, 1 + len(scores), figsize=(4 * (1 + len(scores)), 3.2))
alliance.plots.sessions_per_client(study.sessions, ax=axes[0])
for ax, col in zip(axes[1:], scores, strict=True):
    alliance.plots.mean_trajectory(study.sessions, col, ax=ax)
fig.tight_layout()
