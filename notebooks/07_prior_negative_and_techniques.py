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
# # 7. Prior negative therapy, techniques, ruptures and dropout
#
# Four questions about for whom and through what the alliance matters:
#
# - **moderation**: does a prior negative therapy experience change the alliance ->
#   outcome link? The interaction of the alliance with the client-level moderator, in
#   the early-alliance model and in the session-level within/between model, probed with
#   simple slopes (Aiken & West, 1991; Preacher, Curran & Bauer, 2006);
# - **mediation**: does a technique (reflection) work through the alliance? Session-level
#   1-1-1 multilevel mediation (Krull & MacKinnon, 2001) with the within- and
#   between-client parts kept apart (Zhang, Zyphur & Preacher, 2009), a cluster
#   bootstrap over therapists (Field & Welsh, 2007) and Monte Carlo intervals (Preacher &
#   Selig, 2012);
# - **ruptures and repair**: do clients whose ruptures were repaired fare better than
#   clients with an unrepaired rupture (Stiles et al., 2004; Eubanks, Muran & Safran,
#   2018), and does a rupture session go with a worse next session?
# - **dropout**: does a poor early alliance or an open rupture predict leaving early
#   (Sharf, Primavera & Diener, 2010)?

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
moderator = "prior_negative_therapy"  # client-level moderator (in the clients table)
technique = "reflection"  # session-level technique count, the mediation's predictor
n_boot = 0  # cluster-bootstrap draws for the indirect effects (0: Monte Carlo intervals)
early_window = 3  # early alliance: mean of the first 3 rated sessions (every model's early)
# Ruptures: the study's rupture events when it has any; otherwise detected as a fall of at
# least this many points of alliance_col from the previous rated session.
rupture_drop = 8
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import alliance
from alliance import models
from alliance.export import report_table, save_figure

# The models' warnings are in their .notes, printed below; this keeps them from being
# logged a second time to the notebook's stderr.
study = alliance.datasets.load_study(data)
therapist = "therapist" if "therapist" in study.sessions.columns else None
summed = alliance.instruments.list_instruments().query("scoring == 'sum'")
alliance_items = alliance_items or int(summed.set_index("name")["n_items"].get(alliance_col, 1))
study.sessions["alliance"] = study.sessions[alliance_col] / alliance_items
labels = alliance.tables.codebook_labels(study)
outcome_label = labels.get(outcome, outcome)
moderator_label = moderator.replace("_", " ").capitalize()
alliance.plots.set_theme(
    study,
    labels={
        "alliance": "Alliance (item mean)" if alliance_items > 1 else "Alliance",
        "alliance_early": "Early alliance (item mean)",
        "alliance_within": "Alliance, within client",
    },
)
model_names = {
    "early alliance": "Early alliance -> end outcome",
    "within/between": "Session-level alliance -> next session",
}
print(study)
print(
    f"alliance = {alliance_col} / {alliance_items}; outcome = {outcome}; "
    f"moderator = {moderator}; technique = {technique}"
)

# %% [markdown] tags=["needs:prior_negative_therapy"]
# ## 1. Moderation by prior negative therapy
#
# Clients with a prior negative therapy experience start with a lower alliance. Does
# the alliance matter more, or less, for them? The moderator is coded 0/1 and interacts
# with the early alliance (`model="early"`) and with both the within- and between-client
# parts of the session-level alliance (`model="within_between"`).

# %% tags=["needs:prior_negative_therapy"]
group_sizes = (
    study.clients[moderator].value_counts().rename_axis(moderator).reset_index(name="n_clients")
)
report_table(
    group_sizes,
    "moderator_groups",
    export_dir,
    title=f"Clients by {moderator_label.lower()}",
    labels={moderator: moderator_label, "n_clients": "Clients"},
    count="n_clients",
)

# %% tags=["needs:prior_negative_therapy"]
moderated_early = models.moderation(
    study,
    moderator,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    model="early",
    early=early_window,
)
moderated_session = models.moderation(
    study,
    moderator,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    model="within_between",
    method="mlm",  # lagged outcome and a random slope (the multi-group panel model is slower)
)
print(moderated_session.citation)
print(*moderated_early.notes, *moderated_session.notes, sep="\n")

# %% tags=["needs:prior_negative_therapy"]
report_table(
    alliance.tables.ApaTable.stack(
        [moderated_early.apa_table(), moderated_session.apa_table()],
        list(model_names.values()),
    ),
    "moderation_apa",
    export_dir,
    title=f"Moderation of the alliance effect by {moderator_label.lower()}",
    note="Early model: " + moderated_early.apa_table().note,
)

# %% [markdown] tags=["needs:prior_negative_therapy"]
# Simple slopes: the alliance effect in each group, with Satterthwaite tests.

# %% tags=["needs:prior_negative_therapy"]
# NBVAL_CHECK_OUTPUT
simple_slopes = pd.concat(
    [moderated_early.simple_slopes, moderated_session.simple_slopes],
    keys=["early alliance", "within/between"],
    names=["model", None],
).droplevel(1)[["label", "estimate", "ci_low", "ci_high", "p", "std_estimate"]]
report_table(
    simple_slopes.reset_index().assign(model=lambda t: t["model"].map(model_names)),
    "simple_slopes",
    export_dir,
    title=f"The alliance effect in each group ({moderator_label.lower()})",
    note="Simple slopes with Satterthwaite tests; CI: 95%; β: standardized.",
    labels={"label": "Group", "estimate": "b", "std_estimate": "β"},
    digits=3,
)

# %% tags=["needs:prior_negative_therapy"]
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6))
alliance.plots.simple_slopes(moderated_early, ax=axes[0], legend="below")
alliance.plots.simple_slopes(moderated_session, ax=axes[1], legend="below")
axes[0].set_title("Early alliance -> end outcome")
axes[1].set_title("Within-client alliance -> next session")
fig.tight_layout()  # the legends under the axis labels are part of the layout
figure_files = save_figure(
    fig,
    "simple_slopes_prior_negative_therapy",
    export_dir,
    caption=f"Predicted {outcome_label} by alliance in each group ({moderator_label.lower()}): "
    "early alliance (left) and the within-client alliance (right), with 95% bands",
)

# %% [markdown] tags=["needs:reflection"]
# ## 2. Technique -> alliance -> outcome (mediation)
#
# Path a: more reflections than usual in a session -> a better alliance in that session;
# path b: a better alliance than usual -> fewer symptoms at the next session; the
# indirect effect is a x b, within clients and between clients. The indirect effects'
# intervals come from Monte Carlo draws of the stacked model's estimates (Preacher &
# Selig, 2012), the package's default. Setting the parameter `n_boot` to 1000 or more
# adds a cluster bootstrap that resamples therapists with all their clients (percentile;
# about 0.7 s a draw on the demo data, so it is left out of the quick report).
# Between-client indirect effects rest on few clusters and are unstable.

# %% tags=["needs:reflection"]
mediated = models.mediation(
    study,
    technique,
    alliance="alliance",
    outcome=outcome,
    therapist=therapist,
    n_boot=n_boot,
    seed=seed,
)
print(mediated.citation)
print(*mediated.notes, sep="\n")
if n_boot:
    print(f"failed bootstrap draws: {mediated.n_boot_failed} of {n_boot}")

# %% tags=["needs:reflection"]
# NBVAL_CHECK_OUTPUT
columns = ["term", "estimate", "ci_low", "ci_high", "mc_ci_low", "mc_ci_high", "p"]
if not n_boot:  # the CI of the indirect effects is the Monte Carlo one already
    columns = [c for c in columns if not c.startswith("mc_")]
mediation_table = mediated.params[[*columns, "std_estimate"]]
interval_note = (
    f"CI: 95% cluster-bootstrap percentile interval ({n_boot} draws, therapists "
    "resampled); MC CI: Monte Carlo interval"
    if n_boot
    else "CI: 95%; Wald for the paths, Monte Carlo (20,000 draws) for the indirect effects"
)
report_table(
    mediation_table,
    "mediation",
    export_dir,
    title=f"{technique.capitalize()} -> alliance -> {outcome_label} (mediation)",
    note=f"{interval_note}; β: standardized.",
    labels={
        "estimate": "b",
        "mc_ci_low": "MC CI low",
        "mc_ci_high": "MC CI high",
        "std_estimate": "β",
    },
    digits=3,
)

# %% [markdown]
# ## 3. Ruptures, repair and outcome
#
# **Client level**: each client is in one class (no rupture; all ruptures repaired; any
# unrepaired; resolution unknown) and the classes are compared on the end outcome,
# controlling for the baseline and the sessions elapsed (clients who stay longer have
# more sessions in which to rupture and more time to improve). **Session level**: the
# change in the outcome from a session to the next after a rupture session.

# %%
has_events = study.events is not None and len(study.events) > 0
rupture_source = (
    {"events": study.events}
    if has_events
    else {"detect": {"method": "drop", "threshold": rupture_drop}}
)
ruptures_client = models.rupture_outcome(
    study, alliance=alliance_col, outcome=outcome, therapist=therapist, **rupture_source
)
ruptures_session = models.rupture_outcome(
    study,
    alliance=alliance_col,
    outcome=outcome,
    therapist=therapist,
    unit="session",
    **rupture_source,
)
print(*ruptures_client.notes, sep="\n")
classes = alliance.privacy.suppress_small_cells(ruptures_client.classes.reset_index())
report_table(
    classes,
    "rupture_classes",
    export_dir,
    title="Clients by rupture class",
    labels={"n_clients": "Clients"},
    count="n_clients",
)

# %%
report_table(
    alliance.tables.ApaTable.stack(
        [ruptures_client.apa_table(), ruptures_session.apa_table()],
        [
            f"Client level: {outcome_label} at the end",
            f"Session level: change in {outcome_label} to the next session",
        ],
    ),
    "rupture_outcome_apa",
    export_dir,
    title=f"Ruptures, repair and {outcome_label}",
    note="Client level: " + ruptures_client.apa_table().note,
)

# %% [markdown]
# ## 4. Dropout
#
# `alliance.models.dropout.dropout_model`: a client dropped out when their last attended
# session comes before the planned number (by default the highest session number in the
# data). Logistic regression of dropout on the early alliance and the ruptures in the
# early window (with the moderator as a covariate), and a discrete-time hazard model of
# leaving after each attended session given the alliance at that session and an open
# (unrepaired) rupture (Singer & Willett, 1993); standard errors are cluster-robust by
# therapist. Estimates are log-odds; `odds_ratio` is exp(estimate).

# %%
dropout_module = getattr(models, "dropout", None)
dropout_ruptures = study.events if has_events else {"method": "drop", "threshold": rupture_drop}
# the moderator is a covariate where the study has it
adjust_for = [moderator] if moderator in study.clients.columns else []
dropout_early = (
    dropout_module.dropout_model(
        study,
        alliance="alliance",
        therapist=therapist,
        early=early_window,
        ruptures=dropout_ruptures,
        covariates=adjust_for,
    )
    if dropout_module
    else None
)
dropout_hazard = (
    dropout_module.dropout_model(
        study,
        alliance="alliance",
        therapist=therapist,
        ruptures=dropout_ruptures,
        method="discrete_time",
    )
    if dropout_module
    else None
)
print(
    f"dropouts: {dropout_early.n_dropout} of {dropout_early.n_clients} clients"
    if dropout_module
    else "alliance.models.dropout is not available in this installation; dropout is skipped."
)

# %%
if dropout_module:
    dropout_table = pd.concat(
        [dropout_early.params, dropout_hazard.params],
        keys=["logistic (client)", "discrete-time hazard"],
        names=["model", None],
    ).droplevel(1)[["term", "estimate", "ci_low", "ci_high", "p", "odds_ratio"]]
    display(
        report_table(
            dropout_table.reset_index(),
            "dropout",
            export_dir,
            title="Dropout: early alliance, ruptures and the hazard of leaving",
            note=f"{dropout_early.n_dropout} of {dropout_early.n_clients} clients dropped out. "
            "Estimates are log-odds; CI: 95%, cluster-robust by therapist; OR: odds ratio.",
            labels={"estimate": "b", "odds_ratio": "OR"},
            digits=3,
        )
    )

# %% [markdown] tags=["needs:truth"]
# ## 5. Estimates and the simulated truth (demo data only)
#
# The demo has no alliance x prior-negative-therapy interaction (its true value is 0);
# reflections raise the alliance by 0.04 item-mean points each (path a), the
# within-client alliance effect is -2.0 (path b), so the within indirect effect is
# -0.08, attenuated in the estimate by the measurement error of the alliance (see
# `docs/models.md`). A rupture lowers the alliance by 0.85 item-mean points on average,
# which implies +1.7 PHQ-9 points at the next session through the within effect; the
# self-reported ruptures are a subset, with their own timing. The log-odds of dropping
# out change by -1.3 per item-mean point of the last alliance.

# %% tags=["needs:truth"]
# NBVAL_CHECK_OUTPUT
if study.truth:
    effects = study.truth["effects"]
    units = alliance.instruments.get("wai_sr").n_items / alliance_items
    moderation_b = moderated_session.params.set_index("term")["estimate"]
    mediation_b = mediated.params.set_index("term")["estimate"]
    rupture_b = ruptures_session.params.set_index("term")["estimate"]
    truth_table = pd.DataFrame(
        [
            (
                "moderation",
                f"alliance_within:{moderator}",
                moderation_b[f"alliance_within:{moderator}"],
                0.0,
            ),
            (
                "mediation",
                "a_within",
                mediation_b["a_within"],
                effects["reflection_effect"] * units,
            ),
            ("mediation", "b_within", mediation_b["b_within"], effects["within"] / units),
            (
                "mediation",
                "indirect_within",
                mediation_b["indirect_within"],
                effects["reflection_effect"] * effects["within"],
            ),
            (
                "rupture, session level",
                "rupture",
                rupture_b["rupture"],
                -effects["within"] * effects["rupture_depth"],
            ),
        ],
        columns=["model", "term", "estimate", "truth"],
    )
    if dropout_module:
        truth_table.loc[len(truth_table)] = [
            "dropout hazard",
            "alliance",
            dropout_hazard.params.set_index("term").loc["alliance", "estimate"],
            effects["dropout_alliance"] / units,
        ]
    display(
        report_table(
            truth_table,
            "prior_negative_truth",
            export_dir,
            title="Estimates and the simulated truth",
            note="Truth: the values the demo data were simulated with, in the same units.",
            digits=3,
        )
    )
