# ---
# jupyter:
#   alliance:
#     requires:
#     - alliance
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
# # 4. Alliance and outcome: early alliance, and session by session in both directions
#
# This notebook asks whether a better alliance goes with a better outcome, in the two
# designs the field uses:
#
# - **early alliance -> outcome** (`alliance.models.early_alliance`): the alliance of the
#   first sessions predicting the last observed outcome, controlling for the baseline
#   outcome, clients nested in therapists. This is the design of the studies pooled by
#   Horvath & Symonds (1991) and Flückiger, Del Re, Wampold & Horvath (2018); the effect is
#   shown as a partial r next to their meta-analytic r = .278.
# - **session by session** (`alliance.models.within_between`): the alliance in one session
#   predicting the outcome in the next, split into the client's deviation from their own
#   trend (within) and the client's mean (between; Curran & Bauer, 2011; Wang & Maxwell,
#   2015), as in Falkenström, Granström & Holmqvist (2013), and the reverse direction
#   (symptoms -> next-session alliance). Adding the lagged outcome to a multilevel model
#   brings Nickell (1981) bias; the dynamic panel model estimated by ML-SEM (Allison,
#   Williams & Moral-Benito, 2017), recommended for this question by Falkenström, Finkel,
#   Sandell, Rubel & Holmqvist (2017), avoids it and estimates both directions at once.
#
# Tables are in APA style (b, SE, 95% CI, standardized β, p). On the demo data the
# estimates stand next to the values the data were simulated with (`study.truth`).

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = "wai_sr"  # alliance score column
outcome = "phq9"  # outcome score column
instrument = "phq9"  # outcome's registry name (its direction of improvement)
# The alliance is analysed as alliance_col / alliance_items. None: the registry's item
# count when alliance_col is a summed instrument (WAI-SR total / 12 = its 1-5 item mean,
# the scale of the demo's truth); 1 keeps the score as it is.
alliance_items = None
early_window = 3  # early alliance: mean of the first 3 rated sessions (every model's early)
lag = 1  # sessions from predictor to response in the session-level models
run_dpm = True  # fit the dynamic panel model (ML-SEM)
# Sessions the dynamic panel model uses (None: all). On the demo, 8 sessions take about
# 1.5 s and all 16 about 10 s.
dpm_max_sessions = 8
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

import alliance
from alliance import models
from alliance.export import report_table, save_figure

# The models' warnings (e.g. Nickell bias) are in their .notes, printed below; this keeps
# them from being logged a second time to the notebook's stderr.
study = alliance.datasets.load_study(data)
therapist = "therapist" if "therapist" in study.sessions.columns else None
summed = alliance.instruments.list_instruments().query("scoring == 'sum'")
alliance_items = alliance_items or int(summed.set_index("name")["n_items"].get(alliance_col, 1))
study.sessions["alliance"] = study.sessions[alliance_col] / alliance_items
labels = alliance.tables.codebook_labels(study)
alliance_label = labels.get(alliance_col, alliance_col)
outcome_label = labels.get(outcome, outcome)
if alliance_items > 1:
    labels["alliance"] = f"{alliance_label} / {alliance_items} (item mean)"
alliance.plots.set_theme(study, labels={"alliance": labels.get("alliance", alliance_label)})
# readable names of the models' terms in the tables
terms = {
    "baseline": f"Baseline {outcome_label}",
    "alliance_early": f"Early alliance (sessions 1-{early_window})",
    "alliance_within": "Alliance, within client",
    "alliance_between": "Alliance, between clients",
    f"{outcome}_within": f"{outcome_label}, within client",
    f"{outcome}_between": f"{outcome_label}, between clients",
    "session": "Session",
    "sessions_elapsed": "Sessions elapsed",
    f"{outcome}_lag": f"{outcome_label} at t",
}
higher = alliance.instruments.higher_is_better(instrument=instrument or None)
outcome_direction = "higher_is_better" if higher else "lower_is_better"
print(study)
print(
    f"alliance = {alliance_col} / {alliance_items}; outcome = {outcome} "
    f"(direction: {outcome_direction}); therapist level: {therapist is not None}"
)

# %% [markdown]
# ## 1. Early alliance -> outcome
#
# `end ~ baseline + alliance_early + (1 | therapist)`, one row per client: the mean
# alliance of the first `early_window` rated sessions predicting the last observed outcome
# after that window. Clients who drop out contribute their last observed outcome, so
# the effect includes the path through a shorter treatment, as in the meta-analysed
# studies. The second model adds the sessions elapsed (the effect at equal treatment
# length).

# %%
early = models.early_alliance(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    early=early_window,
    direction=outcome_direction,
)
early_length = models.early_alliance(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    early=early_window,
    adjust_length=True,
    direction=outcome_direction,
)
print(early.citation)
print(*early.notes, sep="\n")

# %%
report_table(
    alliance.tables.ApaTable.stack(
        [early.apa_table().rename(terms), early_length.apa_table().rename(terms)],
        ["Model 1: early alliance", "Model 2: adjusted for treatment length"],
    ),
    "early_alliance_apa",
    export_dir,
    title=f"Early alliance and {outcome_label} at the end of treatment",
    note=early.apa_table().note.replace("N = ", "Model 1: N = ", 1),
)

# %% [markdown]
# The effect as a correlation: the partial r from the t value (r = t / sqrt(t² + df);
# Rosenthal, 1991) and the correlation of early alliance with the residual gain, signed
# so that positive means better alliance, better outcome (`r_benefit`), with Fisher-z
# 95% CIs, beside the meta-analytic r = .278 [.256, .299] of Flückiger et al. (2018).
# The residual gain is the end outcome net of the baseline only, so that r is the same
# with and without the length adjustment; for the adjusted model read the partial r.

# %%
# NBVAL_CHECK_OUTPUT
early_r = pd.concat(
    [early.r, early_length.r],
    keys=["early alliance", "adjusted for length"],
    names=["model", "kind"],
)[["r_benefit", "benefit_ci_low", "benefit_ci_high", "n_clients", "meta_r"]]
report_table(
    early_r.reset_index(),
    "early_alliance_r",
    export_dir,
    title="The early alliance effect as a correlation",
    note="r benefit: positive means better alliance, better outcome; CI: Fisher-z 95% "
    "interval; meta-analytic r: Flückiger et al. (2018).",
    labels={
        "model": "Model",
        "kind": "Correlation",
        "r_benefit": "r (benefit)",
        "benefit_ci_low": "CI low",
        "benefit_ci_high": "CI high",
        "n_clients": "Clients",
        "meta_r": "Meta-analytic r",
    },
    count="n_clients",
    digits=3,
    bounded=["r_benefit", "benefit_ci_low", "benefit_ci_high", "meta_r"],
)

# %% [markdown]
# Early alliance and the end-of-treatment outcome, one point per client (no
# identifiers), with the least-squares line.

# %%
fig, ax = plt.subplots(figsize=(3.5, 3))
sns.regplot(
    data=early.table,
    x="alliance_early",
    y="end",
    scatter_kws={"s": 12, "alpha": 0.5},
    line_kws={"color": "C1"},
    ax=ax,
)
ax.set_xlabel(f"Early alliance, sessions 1-{early_window}\n({labels.get('alliance')})")
ax.set_ylabel(f"{labels.get(outcome, outcome)} at the end")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "early_alliance_outcome",
    export_dir,
    caption=f"Early alliance and {outcome_label} at the last session, one point per client "
    f"(n = {early.nobs}), with the least-squares line and its 95% band",
)

# %% [markdown]
# ## 2. Session by session: within and between clients
#
# `y[t+lag] ~ x_within[t] + x_between + session + (1 + session | client) +
# (1 | therapist)`. Forward (alliance -> next-session outcome) and reverse
# (outcome -> next-session alliance, `effect="outcome->alliance"`). The within effect is the one that
# speaks to the alliance as an active ingredient: a client whose alliance is better than
# usual for them has fewer symptoms at the next session. The between effect compares
# clients and is confounded with everything else that differs between them.

# %%
forward = models.within_between(
    study, alliance="alliance", outcome=outcome, therapist=therapist, lag=lag, method="mlm"
)
reverse = models.within_between(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    lag=lag,
    effect="outcome->alliance",
    method="mlm",
)
print(forward.citation)
print(forward.formula)

# %%
report_table(
    alliance.tables.ApaTable.stack(
        [forward.apa_table(digits=3).rename(terms), reverse.apa_table(digits=3).rename(terms)],
        [
            f"Alliance -> {outcome_label} {lag} session(s) later",
            f"{outcome_label} -> alliance {lag} session(s) later",
        ],
    ),
    "within_between_apa",
    export_dir,
    title="Session-by-session effects within and between clients (multilevel model)",
    note="Forward model: " + forward.apa_table().note,
)

# %% [markdown]
# Standardized effects (β) are how these compare with each other: the within effect is
# scaled by the SD of the within part and of the response's deviation from the client
# mean, the between effect by the SDs of the client means.

# %%
# NBVAL_CHECK_OUTPUT
key_terms = ["alliance_within", "alliance_between", f"{outcome}_within", f"{outcome}_between"]
session_effects = pd.concat(
    [forward.params.assign(direction="forward"), reverse.params.assign(direction="reverse")]
).query("term in @key_terms")[
    ["direction", "term", "estimate", "ci_low", "ci_high", "p", "std_estimate"]
]
report_table(
    session_effects.assign(term=session_effects["term"].map(lambda t: terms.get(t, t))),
    "session_effects_standardized",
    export_dir,
    title="Within- and between-client effects, unstandardized and standardized",
    note="b per point of the predictor; β: standardized (within: by the SDs of the "
    "within parts; between: by the SDs of the client means); CI: 95%.",
    labels={"estimate": "b", "std_estimate": "β"},
    digits=3,
)

# %% [markdown]
# ## 3. The lagged outcome and Nickell bias
#
# Controlling for the outcome at t (`lagged_outcome=True`) looks like the natural way to
# ask whether the alliance predicts *change*. With client random intercepts that lagged
# outcome is correlated with the client's own intercept, and when clients have few
# sessions all coefficients are biased (Nickell, 1981; Falkenström et al., 2017). The
# result carries the warning in its notes:

# %%
lagged = models.within_between(
    study,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    lag=lag,
    lagged_outcome=True,
    method="mlm",
)
print(*lagged.notes, sep="\n")
report_table(
    lagged.apa_table(digits=3).rename(terms),
    "lagged_outcome_apa",
    export_dir,
    title=f"Controlling for {outcome_label} at t (subject to Nickell bias)",
)

# %% [markdown]
# ## 4. The dynamic panel model (ML-SEM)
#
# Each series depends on its own and the other series' previous session; a client's
# stable level of each series is a latent fixed effect correlated with the first
# sessions, so the cross-lagged paths are within-client effects without Nickell bias,
# and both directions are estimated in one model (Allison et al., 2017; Falkenström et
# al., 2017). Missing sessions are handled by full-information maximum likelihood. The
# nesting in therapists is not modelled (a note says so). By default the model uses the
# first `dpm_max_sessions` sessions to keep this notebook fast; set
# `dpm_max_sessions = None` for all sessions, or `run_dpm = False` to skip it.

# %%
dpm = (
    models.within_between(
        study,
        alliance="alliance",
        outcome=outcome,
        lag=lag,
        method="dpm",
        max_sessions=dpm_max_sessions,
    )
    if run_dpm
    else None
)
if dpm is not None:
    print(dpm.citation)
    print(*dpm.notes, sep="\n")
    print(f"clients: {dpm.n_clients}; sessions used: {dpm.sessions}")

# %%
if dpm is not None:
    display(
        report_table(
            dpm.apa_table(digits=3),
            "dynamic_panel_apa",
            export_dir,
            title="Dynamic panel model (ML-SEM): cross-lagged effects",
        )
    )

# %% [markdown]
# ## 5. The within-client effects side by side
#
# The session-level within effects from the three models, in both directions, with 95%
# CIs.

# %%
within_rows = pd.concat(
    [
        forward.params.query("term == 'alliance_within'").assign(model="multilevel"),
        lagged.params.query("term == 'alliance_within'").assign(model="multilevel + lagged y"),
        dpm.params.iloc[[0]].assign(model="dynamic panel (ML-SEM)") if dpm else None,
        reverse.params.query(f"term == '{outcome}_within'").assign(model="multilevel"),
        dpm.params.iloc[[1]].assign(model="dynamic panel (ML-SEM)") if dpm else None,
    ]
)
within_rows["direction"] = (
    within_rows["term"].str.startswith("alliance").map({True: "forward", False: "reverse"})
)
within_table = within_rows[
    ["direction", "model", "estimate", "ci_low", "ci_high", "p", "std_estimate"]
].reset_index(drop=True)
report_table(
    within_table,
    "within_effects_by_model",
    export_dir,
    title="The within-client effects by model",
    note="Forward: alliance -> next-session outcome; reverse: outcome -> next-session "
    "alliance; CI: 95%; β: standardized.",
    labels={"estimate": "b", "std_estimate": "β"},
    digits=3,
)

# %% [markdown] tags=["needs:truth"]
# ## 6. Estimates and the simulated truth (demo data only)
#
# The demo was simulated with a within-client effect of -2.0 PHQ-9 points per WAI-SR
# item-mean point of the detrended alliance on next-session symptoms and -0.02 item-mean
# points per PHQ-9 point in the reverse direction, with the problems of real data: the
# alliance and symptom innovations of a session correlated -0.5, symptoms autoregressive
# (0.5) and clients' own effects varying (SD 0.5; -2.0 is their average). The estimates
# are attenuated: the simulation scores both scales as rounded, clipped item responses,
# and the within-client reliability of the observed alliance is about .7, so -2.0 is
# observed near -1.65 by the dynamic panel model; the multilevel model with the lagged
# outcome is Nickell-biased (near -0.95). On the latent scores the dynamic panel model
# recovers -2.0 (`tests/test_demo_recovery.py`; `docs/models_sem.md`).

# %% tags=["needs:truth"]
# NBVAL_CHECK_OUTPUT
if study.truth:
    effects = study.truth["effects"]
    units = alliance.instruments.get("wai_sr").n_items / alliance_items
    truth = {"forward": effects["within"] / units, "reverse": effects["reverse"] * units}
    truth_table = within_table.assign(truth=within_table["direction"].map(truth))[
        ["direction", "model", "estimate", "ci_low", "ci_high", "truth"]
    ]
    display(
        report_table(
            truth_table,
            "within_effects_truth",
            export_dir,
            title="Estimates and the simulated truth",
            note="Truth: the effect the demo data were simulated with, in the same units.",
            labels={"estimate": "b"},
            digits=3,
        )
    )

# %% [markdown]
# The within-client effects by model, with 95% CIs (dashed: the simulated truth, on the
# demo data).

# %%
truth = truth if study.truth else {}
fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.6))
for ax, (direction, part) in zip(axes, within_table.groupby("direction"), strict=True):
    ax.errorbar(
        part["estimate"],
        range(len(part)),
        xerr=[part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]],
        fmt="o",
        capsize=3,
    )
    ax.set_yticks(range(len(part)), part["model"])
    ax.set_ylim(len(part) - 0.5, -0.5)
    ax.axvline(0, color="grey", lw=0.8)
    if direction in truth:
        ax.axvline(truth[direction], color="C3", ls="--", lw=1, label="simulated truth")
        ax.legend(frameon=False, fontsize="small", loc="lower left")
axes[0].set_title(f"Alliance -> next-session {outcome_label}")
axes[1].set_title(f"{outcome_label} -> next-session alliance")
for ax in axes:
    ax.set_xlabel("b (95% CI)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))  # tick labels that do not collide
fig.tight_layout()
figure_files = save_figure(
    fig,
    "within_effects_by_model",
    export_dir,
    caption="The within-client effects by model, with 95% CIs (dashed: the simulated truth)",
)
