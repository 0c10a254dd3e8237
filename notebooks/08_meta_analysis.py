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
from IPython.display import display

import alliance
from alliance import meta
from alliance.export import report_table, save_figure

alliance.plots.set_theme()
studies = meta.example_studies()
print(f"{len(studies)} synthetic studies, {studies['n'].sum()} clients")
described = studies.describe().T[["count", "mean", "std", "min", "max"]]
text_columns = studies.select_dtypes(exclude="number").drop(columns="study").nunique()
report_table(
    described.rename_axis("column").reset_index(),
    "studies_described",
    export_dir,
    title="The synthetic studies",
    note="Count: studies with a value; n: clients per study; r: the alliance-outcome "
    "correlation. Levels of the other columns: "
    + "; ".join(f"{c}: {k}" for c, k in text_columns.items())
    + ".",
    labels={"std": "SD", "n": "n"},
)

# %% [markdown]
# ## Random-effects model

# %%
pooled = meta.meta_analysis(studies, r="r", n="n", study="study", method=method, test=test)
report_table(
    pooled.apa_table(),
    "pooled_model_apa",
    export_dir,
    title="Random-effects meta-analysis of the alliance-outcome correlation (Fisher's z)",
)

# %%
# NBVAL_CHECK_OUTPUT
summary = pooled.pooled()[
    ["scale", "estimate", "ci_low", "ci_high", "pi_low", "pi_high", "k", "tau2", "I2"]
]
display(
    report_table(
        summary,
        "pooled_correlation",
        export_dir,
        title="Pooled correlation",
        note="CI: 95% confidence interval; PI: 95% prediction interval; k: studies; "
        "τ²: between-study variance (Fisher's z); I²: share of variance from heterogeneity (%).",
        labels={"pi_low": "PI low", "pi_high": "PI high", "tau2": "τ²", "I2": "I²"},
        digits=3,
    )
)
print(
    f"pooled r = {pooled.r:.3f} [{pooled.r_ci_low:.3f}, {pooled.r_ci_high:.3f}]; "
    f"Flückiger et al. (2018): r = {published_r}"
)

# %% [markdown]
# Heterogeneity with Q-profile confidence intervals:

# %%
report_table(
    pooled.heterogeneity,
    "heterogeneity",
    export_dir,
    title="Heterogeneity with Q-profile confidence intervals",
    note="τ², τ: on Fisher's z; I² in percent; CI: 95%.",
    digits=3,
)

# %% [markdown]
# ## Forest plot
#
# Studies sorted by their correlation, with 95% intervals; the diamond is the pooled r,
# the dashed line through it the 95% prediction interval (where the correlation of a new
# study is expected to fall).

# %%
fig, ax = plt.subplots(figsize=(6, 10))
alliance.plots.forest(pooled, ax=ax, order="estimate")
ax.axvline(published_r, color="C3", lw=1, ls="--", label="Flückiger et al. (2018)")
ax.legend(loc="lower left", frameon=False, fontsize="small")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "forest",
    export_dir,
    caption="Forest plot of the studies' correlations with 95% CIs; the diamond is the "
    "pooled r, the line through it the 95% prediction interval",
)

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
display(
    report_table(
        egger,
        "egger_test",
        export_dir,
        title="Egger's regression test for funnel-plot asymmetry",
        note="The standard error as a moderator of the random-effects model (metafor regtest).",
        digits=3,
    )
)
print(
    f"trim-and-fill: {filled.k0} studies filled on the {filled.side}; "
    f"r = {filled.result.r:.3f} [{filled.result.r_ci_low:.3f}, {filled.result.r_ci_high:.3f}]"
)

# %% [markdown]
# Funnel plots on Fisher's z: the observed studies with pseudo 95% limits around the
# pooled estimate (left; filled studies as open circles), and contour-enhanced at
# p = .10, .05 and .01 (right; Peters et al., 2008).

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
alliance.plots.funnel(filled, ax=axes[0])
alliance.plots.funnel(pooled, ax=axes[1], contours=(0.10, 0.05, 0.01))
axes[0].set_title(f"Trim-and-fill: {filled.k0} studies filled")
axes[1].set_title("Contour-enhanced")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "funnel",
    export_dir,
    caption="Funnel plots on Fisher's z: pseudo 95% limits with filled studies as open "
    "circles (left), and contours at p = .10, .05 and .01 (right)",
)

# %% [markdown]
# ## Leave-one-out
#
# The pooled r with each study left out in turn: the range, and the studies whose
# omission moves it most.

# %%
# NBVAL_CHECK_OUTPUT
loo = meta.leave_one_out(pooled)
print(f"pooled r without one study: {loo['r'].min():.3f} to {loo['r'].max():.3f}")
report_table(
    loo.assign(shift=(loo["r"] - pooled.r).abs()).nlargest(3, "shift")[
        ["study", "r", "r_ci_low", "r_ci_high", "tau2", "I2"]
    ],
    "leave_one_out",
    export_dir,
    title="The three studies whose omission moves the pooled r most",
    note="r: pooled without the study; CI: 95%.",
    labels={"r_ci_low": "CI low", "r_ci_high": "CI high", "tau2": "τ²", "I2": "I²"},
    digits=3,
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
display(
    report_table(
        regression.params,
        "meta_regression",
        export_dir,
        title=f"Meta-regression on {moderator} (Fisher's z)",
        note="Coefficients relative to the first level; Knapp-Hartung tests; CI: 95%.",
        labels={"estimate": "b"},
        digits=3,
    )
)
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
excluded_ipd = ipd.excluded_rows["reason"].value_counts()
print(
    f"{ipd.k} groups pooled; rows left out: "
    + ("; ".join(f"{reason}: {n}" for reason, n in excluded_ipd.items()) or "none")
)

# %%
# NBVAL_CHECK_OUTPUT
per_group = ipd.data[[group, "n", "r"]].rename(columns={"n": "n_clients"})
per_group = alliance.privacy.suppress_small_cells(per_group)
display(
    report_table(
        per_group,
        "ipd_by_group",
        export_dir,
        title=f"Early alliance and the last {alliance.terms.term_label(outcome)}: correlation in "
        f"each {group}",
        labels={"n_clients": "Clients"},
        count="n_clients",
        digits=3,
    )
)
print(f"pooled r = {ipd.r:.3f} [{ipd.r_ci_low:.3f}, {ipd.r_ci_high:.3f}], I2 = {ipd.I2:.1f}%")

# %%
fig, ax = plt.subplots(figsize=(7, 2.5))
alliance.plots.forest(ipd, ax=ax)
labels = alliance.tables.codebook_labels(study)
ax.set_xlabel(
    f"Correlation of early {labels.get(alliance_col, alliance_col)} with the last "
    f"{labels.get(outcome, outcome)} (r)"
)
fig.tight_layout()
figure_files = save_figure(
    fig,
    "forest_ipd",
    export_dir,
    caption=f"Two-stage IPD meta-analysis: the correlation in each {group}, with 95% CIs, "
    "and the pooled r",
)
