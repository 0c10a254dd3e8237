# ---
# jupyter:
#   alliance:
#     requires: [alliance, outcome, alliance_items, outcome_items]
#   jupytext:
#     formats: ipynb,py:percent
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
# # 2. Measurement: scoring and reliability
#
# This notebook scores the questionnaire items (the alliance scale with its subscales,
# and the outcome scale) with `alliance.score`, counts the scores prorated over missing
# items, and estimates reliability:
#
# - Cronbach's alpha with the Feldt and Duhachek intervals, and McDonald's omega from a
#   Schmid-Leiman solution, as R's `psych::alpha` and `psych::omega` compute them;
# - the generalizability coefficients of Shrout & Lane (2012) for repeated measures: how
#   reliably the scale tells clients apart, and how reliably it tracks a client's change
#   from session to session (`psych::multilevel.reliability`);
# - the intraclass correlations of Shrout & Fleiss (1979), with the early sessions as
#   the "raters" of each client's alliance.
#
# Reverse keys and subscales come from the instrument registry, whose entries for the
# two instruments close the notebook.

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
alliance_col = "wai_sr"  # alliance score column (written by scoring)
alliance_instrument = "wai_sr"  # registry name of the alliance items (wai_sr_1 ..)
outcome = "phq9"  # outcome score column (written by scoring)
instrument = "phq9"  # registry name of the outcome items (phq9_1 ..)
max_missing_items = 2  # items that may be missing and prorated per questionnaire
early_sessions = 4  # sessions used for the repeated-measures coefficients
omega_factors = 3  # group factors of omega (the WAI-SR's goal, task and bond)
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import pandas as pd

import alliance
from alliance.export import report_table

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)
sessions = study.sessions
items = alliance.instruments.get(alliance_instrument).items
print(study)

# %% [markdown]
# ## Scoring and prorating
#
# The registry stores no published prorating rule for the WAI-SR or the PHQ-9, so the
# number of missing items that may be prorated is a parameter (`max_missing_items`). A
# questionnaire with at most that many missing items is scored from the mean of its
# answered items; one with more gets a missing score and is kept and counted.

# %%
scored_alliance = alliance.score(
    sessions, alliance_instrument, prorate=max_missing_items, name=alliance_col
)
scored = alliance.score(scored_alliance, instrument, prorate=max_missing_items, name=outcome)
scoring = pd.DataFrame([scored_alliance.attrs["scoring"], scored.attrs["scoring"]])
report_table(
    scoring[
        ["instrument", "max_missing", "n_rows", "n_scored", "n_prorated", "n_over_limit"]
    ].assign(instrument=lambda t: t["instrument"].map(lambda c: f"{c}".upper().replace("_", "-"))),
    "scoring",
    export_dir,
    title="Scoring and prorating",
    note=f"Questionnaires with at most {max_missing_items} missing item(s) are prorated "
    "(scored from the mean of the answered items); over the limit: left unscored and counted.",
    labels={
        "max_missing": "Items that may be missing",
        "n_rows": "Rows",
        "n_scored": "Scored",
        "n_prorated": "Prorated",
        "n_over_limit": "Over the limit",
    },
)

# %% [markdown]
# Questionnaires by number of missing items (a stricter rule would lose the rows below
# its limit):

# %%
# NBVAL_CHECK_OUTPUT
missing_items = pd.DataFrame(
    {name: scored[f"{name}_n_missing"].value_counts() for name in (alliance_col, outcome)}
)
report_table(
    missing_items.fillna(0).astype(int).rename_axis("Missing items").reset_index(),
    "missing_items",
    export_dir,
    title="Questionnaires by number of missing items",
    note="Counts of session rows.",
    study=study,
)

# %% [markdown]
# Scale and subscale scores (mean, SD and missing share over session rows; cells with
# fewer than five clients are suppressed):

# %%
subscales = alliance.instruments.get(alliance_instrument).subscales
score_columns = [alliance_col, *(f"{alliance_col}_{name}" for name in subscales), outcome]
score_summary = alliance.describe.score_table(scored, score_columns)
labels = alliance.tables.codebook_labels(study)
short = labels.get(alliance_col, alliance_col).replace(" total", "")
labels.update({f"{alliance_col}_{name}": f"{short} {name}" for name in subscales})
report_table(
    score_summary.assign(score=score_summary["score"].map(lambda c: labels.get(c, c))),
    "score_summary",
    export_dir,
    title="Scale and subscale scores",
    note="Means and SDs over session rows; missing: share of rows without the score.",
    labels={"n_clients": "Clients", "n_rows": "Session rows", "sd": "SD"},
    count="n_clients",
)

# %% [markdown]
# ## Internal consistency
#
# Cronbach's alpha pools every session row (rows are not independent, so the intervals
# are too narrow for a repeated-measures design; the Shrout & Lane coefficients below
# take the nesting into account).

# %%
# NBVAL_CHECK_OUTPUT
alphas = pd.concat(
    [
        alliance.reliability.alpha(scored, instrument=alliance_instrument),
        alliance.reliability.alpha(scored, instrument=instrument),
    ],
    ignore_index=True,
)
alphas = alphas[["scale", "n", "n_items", "alpha", "ci_low", "ci_high", "average_r"]]
report_table(
    alphas.assign(scale=alphas["scale"].map(lambda c: labels.get(c, c))),
    "alpha",
    export_dir,
    title="Cronbach's alpha",
    note="n: questionnaires (session rows) with complete items; CI: 95% Feldt interval, "
    "too narrow for repeated measures; average r: mean inter-item correlation.",
    labels={"n_items": "Items", "alpha": "α", "average_r": "Average r"},
    digits=3,
    bounded=["ci_low", "ci_high", "average_r"],
)

# %% [markdown]
# Corrected item-total correlations (`r_drop`) and alpha without each item:

# %%
report_table(
    alliance.reliability.alpha(
        scored, instrument=alliance_instrument, subscales=False, by_item=True
    ),
    "alpha_by_item",
    export_dir,
    title="Item-total correlations and alpha without each item",
    note="r drop: corrected item-total correlation.",
    digits=3,
)

# %% [markdown]
# McDonald's omega from a Schmid-Leiman solution with `omega_factors` group factors (the
# WAI-SR's goal, task and bond). The WAI-SR has no reverse-keyed items, so items are not
# re-keyed from the sign of their general-factor loading (`flip=False`). Omega total is
# the reliability of the total score; omega hierarchical is the share of total-score
# variance due to a general factor over and above the group factors. In the demo data
# every item is the session's alliance plus independent noise (one factor; there is no
# goal/task/bond structure to find), so the common variance lands on one "group" factor and omega
# hierarchical is near zero; the one-factor model gives omega = alpha for these items.

# %%
omega = alliance.reliability.omega(scored, items, n_factors=omega_factors, flip=False)
omega_one = alliance.reliability.omega(scored, items, n_factors=1, flip=False)
omega_columns = ["n_factors", "omega_h", "omega_total", "alpha", "n"]
report_table(
    pd.concat([omega[omega_columns], omega_one[omega_columns]], ignore_index=True),
    "omega",
    export_dir,
    title="McDonald's omega (Schmid-Leiman)",
    note="ωh: omega hierarchical; ωt: omega total; n: complete questionnaires.",
    labels={"n_factors": "Group factors", "omega_h": "ωh", "omega_total": "ωt", "alpha": "α"},
    digits=3,
)

# %%
report_table(
    omega.tables["loadings"].rename_axis("item").reset_index(),
    "omega_loadings",
    export_dir,
    title=f"Schmid-Leiman loadings ({omega_factors} group factors)",
    note="g: general factor; F1..: group factors; h2: communality; u2: uniqueness.",
)

# %% [markdown]
# ## Reliability of between-client differences and of change (Shrout & Lane, 2012)
#
# The balanced-ANOVA estimates need every client to have all of the first
# `early_sessions` sessions with complete items; the others are left out and counted.
# RkF: between-client differences on the average of the sessions; R1R: at a single
# session (random sessions); Rc: within-client change from session to session.

# %%
early = scored[scored["session"] <= early_sessions]
multilevel = alliance.reliability.multilevel_reliability(
    early, instrument=alliance_instrument, drop_incomplete=True
)
report_table(
    multilevel[["kind", "quantity", "estimate", "share", "description"]],
    "multilevel_components",
    export_dir,
    title=f"Variance components and reliabilities over sessions 1-{early_sessions}",
    note="Shrout & Lane (2012); clients without complete items at every session are left out.",
    digits=3,
)

# %%
# NBVAL_CHECK_OUTPUT
report_table(
    multilevel.loc[
        multilevel["kind"] == "reliability",
        ["quantity", "estimate", "n_clients", "n_sessions", "clients_dropped"],
    ],
    "multilevel_reliability",
    export_dir,
    title="Reliability of between-client differences and of change",
    note="RkF: average of the sessions; R1R: a single session; Rc: change between sessions.",
    labels={"n_clients": "Clients", "n_sessions": "Sessions", "clients_dropped": "Left out"},
    digits=3,
)

# %% [markdown]
# ## Intraclass correlations across the early sessions
#
# Each client is a target and each of the first `early_sessions` sessions a "rater" of
# that client's alliance: ICC1 and ICC3 say how stable the between-client differences are
# from one session to the next, ICC1k and ICC3k how reliable their average is. Clients
# without a score at every one of those sessions are left out (`n_dropped`).

# %%
icc = alliance.reliability.icc(early, target="client", rater="session", rating=alliance_col)
report_table(
    icc[["type", "icc", "ci_low", "ci_high", "f", "p", "n_targets", "n_raters", "n_dropped"]],
    "icc_sessions",
    export_dir,
    title=f"Intraclass correlations of the alliance over sessions 1-{early_sessions}",
    note="Clients are targets and sessions raters; CI: 95%; left out: clients without a "
    "score at every one of those sessions.",
    labels={"n_targets": "Clients", "n_raters": "Sessions", "n_dropped": "Left out", "f": "F"},
    digits=3,
    bounded=["ci_low", "ci_high"],
)

# %% [markdown]
# ## The two instruments in the registry

# %%
registry = alliance.instruments.list_instruments()
registry = registry[registry["name"].isin([alliance_instrument, instrument])]
facts = ["title", "rater", "n_items", "item_min", "item_max", "score_min", "score_max"]
facts += ["higher_is_better", "cutoff"]
registry_table = registry.set_index("name")[facts].T.astype(str).replace("nan", "")
registry_table.columns = [labels.get(c, c).replace(" total", "") for c in registry_table.columns]
fact_names = {
    "title": "Title",
    "rater": "Rater",
    "n_items": "Items",
    "item_min": "Item minimum",
    "item_max": "Item maximum",
    "score_min": "Score minimum",
    "score_max": "Score maximum",
    "higher_is_better": "Higher is better",
    "cutoff": "Cut-off",
}
report_table(
    registry_table.rename(index=fact_names).rename_axis("Fact").reset_index(),
    "instruments",
    export_dir,
    title="The two instruments in the registry",
    note="Cut-off: clinical cut-off on the scored scale (empty where none is stored).",
)
