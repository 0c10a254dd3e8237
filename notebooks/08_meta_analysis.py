# ---
# jupyter:
#   alliance:
#     requires:
#     - alliance
#     - outcome
#     - site
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
# # 8. Meta-analysis of the alliance-outcome correlation
#
# This notebook pools study-level alliance-outcome correlations as R's metafor does
# (Viechtbauer, 2010): a random-effects model on Fisher's z with the REML estimator of
# tau^2 and the Knapp-Hartung adjustment, forest and funnel plots, Egger's regression
# test and Duval & Tweedie's trim-and-fill for small-study effects, leave-one-out
# sensitivity, and a meta-regression on a moderator. The pooled correlation is set
# beside the meta-analysis of Flückiger et al. (2018): r = .278 over 295 studies.
#
# The study table is the package's **synthetic** example (`alliance.datasets.example_studies`,
# 60 invented studies calibrated to that published summary), not real studies. The
# last section runs a two-stage individual-participant meta-analysis on the session-level
# study: one correlation per site, then pooled.

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = "wai_sr"  # alliance score column (two-stage IPD)
outcome = "phq9"  # outcome score column (two-stage IPD)
group = "site"  # the studies of the two-stage IPD meta-analysis
early_window = 3  # sessions averaged for early alliance (two_stage_ipd's early)
method = "REML"  # estimator of tau^2
test = "knha"  # Knapp-Hartung adjustment ("z" for normal-theory tests)
moderator = "rater"  # moderator of the meta-regression (a column of the study table)
published_r = 0.278  # Flückiger et al. (2018)
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt

import alliance
from alliance import meta
from alliance.export import save_figure, save_table

plt.rcParams.update({"figure.dpi": 96, "svg.hashsalt": "alliance"})
studies = meta.example_studies()
print(f"{len(studies)} synthetic studies, {studies['n'].sum()} clients")
studies.describe(include="all").T[["count", "unique", "top", "mean", "min", "max"]]

# %% [markdown]
# ## Random-effects model

# %%
pooled = meta.meta_analysis(studies, r="r", n="n", study="study", method=method, test=test)
print(pooled.summary())

# %%
# NBVAL_CHECK_OUTPUT
summary = pooled.pooled()[
    ["scale", "estimate", "ci_low", "ci_high", "pi_low", "pi_high", "k", "tau2", "I2"]
]
save_table(summary, "pooled_correlation", export_dir)
print(summary.round(3).to_string(index=False))
print(
    f"pooled r = {pooled.r:.3f} [{pooled.r_ci_low:.3f}, {pooled.r_ci_high:.3f}]; "
    f"Flückiger et al. (2018): r = {published_r}"
)

# %% [markdown]
# Heterogeneity with Q-profile confidence intervals:

# %%
pooled.heterogeneity.round(3)

# %% [markdown]
# ## Forest plot
#
# Studies sorted by their correlation, with 95% intervals; the diamond is the pooled r,
# the dashed line through it the 95% prediction interval (where the correlation of a new
# study is expected to fall).

# %%
fig, ax = plt.subplots(figsize=(7, 12))
alliance.plots.forest(pooled, ax=ax, order="estimate")
ax.axvline(published_r, color="C3", lw=1, ls="--", label="Flückiger et al. (2018)")
ax.legend(loc="lower left", frameon=False, fontsize="small")
fig.tight_layout()
figure_files = save_figure(fig, "forest", export_dir)

# %% [markdown]
# ## Small-study effects
#
# Egger's regression test (`metafor::regtest`: the standard error as a moderator of the
# random-effects model) and trim-and-fill (Duval & Tweedie, 2000). Trim-and-fill is a
# sensitivity analysis, not a correction: it assumes the asymmetry comes from
# suppressed studies.

# %%
# NBVAL_CHECK_OUTPUT
egger = meta.egger_test(pooled)
filled = meta.trim_and_fill(pooled)
print(egger.round(3).to_string(index=False))
print(
    f"trim-and-fill: {filled.k0} studies filled on the {filled.side}; "
    f"r = {filled.result.r:.3f} [{filled.result.r_ci_low:.3f}, {filled.result.r_ci_high:.3f}]"
)

# %% [markdown]
# Funnel plots on Fisher's z: the observed studies with pseudo 95% limits around the
# pooled estimate (left; filled studies as open circles), and contour-enhanced at
# p = .10, .05 and .01 (right; Peters et al., 2008).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
alliance.plots.funnel(filled, ax=axes[0])
alliance.plots.funnel(pooled, ax=axes[1], contours=(0.10, 0.05, 0.01))
axes[0].set_title(f"trim-and-fill: {filled.k0} studies filled")
axes[1].set_title("contour-enhanced")
fig.tight_layout()
figure_files = save_figure(fig, "funnel", export_dir)

# %% [markdown]
# ## Leave-one-out
#
# The pooled r with each study left out in turn: the range, and the studies whose
# omission moves it most.

# %%
# NBVAL_CHECK_OUTPUT
loo = meta.leave_one_out(pooled)
print(f"pooled r without one study: {loo['r'].min():.3f} to {loo['r'].max():.3f}")
print(
    loo.assign(shift=(loo["r"] - pooled.r).abs())
    .nlargest(3, "shift")[["study", "r", "r_ci_low", "r_ci_high", "tau2", "I2"]]
    .round(3)
    .to_string(index=False)
)

# %% [markdown]
# ## Meta-regression
#
# Does the correlation depend on who rated the alliance? Mixed-effects meta-regression
# with the Knapp-Hartung F test of the moderator; coefficients are on Fisher's z,
# relative to the first level.

# %%
# NBVAL_CHECK_OUTPUT
regression = meta.meta_regression(studies, mods=moderator, method=method, test=test)
print(regression.params.round(3).to_string(index=False))
print(
    f"QM({regression.QM_df[0]}, {regression.QM_df[1]}) = {regression.QM:.3f}, "
    f"p = {regression.QM_p:.3f}; residual tau2 = {regression.tau2:.4f}; R2 = {regression.R2:.1f}%"
)

# %% [markdown]
# ## Two-stage individual-participant meta-analysis
#
# On the session-level study: in each `group`, the correlation across clients between
# early alliance (mean of the first `early_window` sessions) and the last outcome
# score; then those correlations pooled like studies. With a symptom measure (higher =
# worse) a good alliance goes with a low last score, so the correlation is negative; its
# size is comparable with the published r.

# %%
study = alliance.datasets.load_study(data)
ipd = alliance.ipd.two_stage_ipd(
    study.sessions,
    alliance=alliance_col,
    outcome=outcome,
    group=group,
    early=early_window,
    method=method,
    test=test,
)
print(ipd.summary())
print(ipd.excluded_rows["reason"].value_counts().to_string())

# %%
# NBVAL_CHECK_OUTPUT
per_group = ipd.data[[group, "n", "r"]].rename(columns={"n": "n_clients"})
per_group = alliance.privacy.suppress_small_cells(per_group)
save_table(per_group, "ipd_by_group", export_dir, count="n_clients")
print(per_group.round(3).to_string(index=False))
print(f"pooled r = {ipd.r:.3f} [{ipd.r_ci_low:.3f}, {ipd.r_ci_high:.3f}], I2 = {ipd.I2:.1f}%")

# %%
fig, ax = plt.subplots(figsize=(7, 2.5))
alliance.plots.forest(ipd, ax=ax)
ax.set_xlabel(f"correlation of early {alliance_col} with the last {outcome} (r)")
fig.tight_layout()
figure_files = save_figure(fig, "forest_ipd", export_dir)
