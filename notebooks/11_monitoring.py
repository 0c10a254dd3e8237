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
# # 11. Monitoring in practice: expected response and not-on-track signals
#
# Routine outcome monitoring compares each client, session by session, with clients who
# started where they started (Finch, Lambert & Schaalje, 2001; Lambert et al., 2005).
# `alliance.monitoring.expected_response` fits the expected treatment response,
# `y ~ intake * log(session) + (1 + log(session) | client)`, and its tolerance band;
# `alliance.monitoring.signals` marks a session **not on track** when the score is worse
# than the band's one-tailed 90% limit. Here the study is its own reference sample,
# cross-validated by client (a client's band never comes from curves fitted to that
# client). `alliance.monitoring.evaluate` then asks how well the signals foresee a
# treatment that ends reliably worse than it began (Jacobson & Truax, 1991).

# %% tags=["parameters"]
data = "demo"  # a bundled dataset's name, or a path to a sessions file or study folder
seed = 2026
outcome = "phq9"  # outcome score column
instrument = "phq9"  # its registry name (direction of improvement)
# PHQ-9 test-retest reliability, r = .84 (Kroenke, Spitzer & Williams, 2001), for the
# reliable-change criterion of deterioration.
reliability = 0.84
percentile = 0.90  # the band: 10th to 90th percentile of the predictive distribution
folds = 3  # cross-validation folds (clients never in their own reference)
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt
import pandas as pd

import alliance
from alliance import monitoring
from alliance.export import report_table, save_figure

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)
labels = alliance.tables.codebook_labels(study)
sessions = study.sessions
print(study)

# %% [markdown]
# ## Signals session by session
#
# Share of rated sessions after intake that raise a not-on-track signal, and of clients
# with at least one.

# %%
# NBVAL_CHECK_OUTPUT
flags = monitoring.signals(
    sessions,
    outcome=outcome,
    instrument=instrument,
    percentile=percentile,
    folds=folds,
    seed=seed,
)
n_clients = flags["client"].nunique()
n_signalled = flags.loc[flags["not_on_track"], "client"].nunique()
share = flags["not_on_track"].mean()
rates = pd.DataFrame(
    {"n_clients": [n_clients], "n_clients_signalled": [n_signalled], "share_sessions": [share]}
)
report_table(
    rates,
    "monitoring_signal_rates",
    export_dir,
    title="Not-on-track signals",
    note=f"Expected response from cross-validated ({folds}-fold) curves by intake severity; "
    f"a session is signalled above the {percentile:.0%} point of the predictive distribution.",
    labels={
        "n_clients": "Clients",
        "n_clients_signalled": "Clients with a signal",
        "share_sessions": "Share of rated sessions signalled",
    },
    count="n_clients",
    digits=3,
)

# %% [markdown]
# ## Do the signals foresee deterioration?
#
# A client deteriorated reliably when the last score is worse than the first by more than
# the reliable-change size (SD of the intake scores, the reliability above). A signal
# counts only when it came before the session at which the deterioration is known.

# %%
# NBVAL_CHECK_OUTPUT
events = monitoring.deterioration(
    sessions, outcome=outcome, instrument=instrument, sd="pre", reliability=reliability
)
evaluation = monitoring.evaluate(flags, events)
report_table(
    evaluation.params[["term", "estimate", "ci_low", "ci_high"]],
    "monitoring_evaluation",
    export_dir,
    title="Do the signals foresee reliable deterioration?",
    note="A signal counts only when it came before the deterioration was known; CI: 95%.",
    labels={"estimate": "Estimate"},
    digits=3,
)

# %% [markdown]
# One course with its band: the first client (in the data's order) with a signal; the
# client is not named.

# %%
shown = flags.loc[flags["not_on_track"], "client"].iloc[0]
fig, ax = plt.subplots(figsize=(5, 3))
alliance.plots.monitoring_course(flags, shown, ax=ax, ylabel=labels.get(outcome, outcome))
fig.tight_layout()
figure_files = save_figure(
    fig,
    "monitoring_course",
    export_dir,
    caption="One client's course with its expected response and tolerance band; "
    "not-on-track sessions and alliance alerts are marked",
)
