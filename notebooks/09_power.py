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
# # 9. Power: how many clients, therapists and sessions?
#
# Before a study, the question is how large it must be to detect a within-client effect
# of the alliance on next-session symptoms (Falkenström et al. 2013), or a lower early
# alliance after a prior negative therapy. `alliance.power.simulate_power` answers by
# Monte Carlo simulation: for each design it simulates studies with
# `alliance.simulate.simulate_study`, fits the model, and counts how often the effect is
# significant. It also reports the bias of the estimate and the coverage of its confidence
# interval, so a design that finds an effect by overestimating it is visible.
#
# The defaults keep this notebook quick (few simulations, a small grid); raise `n_sims` to
# 500 or more for a real plan, and use `save_dir` so a long run can resume. With
# `nested=True` each draw simulates the largest design once and the smaller designs are its
# first therapists, so the points of a curve share their random draws and the curve is
# smoother.

# %% tags=["parameters"]
data = "demo"  # not used for simulation; kept so `alliance report` can run every notebook
seed = 2026
alliance_col = None
outcome = None
instrument = None
therapists = [6, 12, 24]  # numbers of therapists in the grid
clients_per_therapist = 8
n_sessions = 12
within_effect = -1.0  # PHQ-9 points per alliance item-mean point (demo truth: -2.0)
prior_negative_effect = -0.35  # early alliance difference in item-mean points
n_sims = 20
n_jobs = 1  # 1: no process start-up; use all cores (-1) for a real plan
nested = True  # one simulated study per draw, the smaller designs cut from it
export_dir = None

# %%
import matplotlib.pyplot as plt
import pandas as pd

import alliance
from alliance.export import report_table, save_figure
from alliance.power import simulate_power

alliance.plots.set_theme(
    labels={"n_therapists": "Therapists", "clients_per_therapist": "Clients per therapist"}
)
grid = pd.DataFrame(
    {
        "n_therapists": therapists,
        "clients_per_therapist": clients_per_therapist,
        "n_sessions": n_sessions,
    }
)
design_labels = {
    "n_therapists": "Therapists",
    "clients_per_therapist": "Clients per therapist",
    "n_sessions": "Sessions",
}
report_table(grid, "power_designs", export_dir, title="Designs simulated", labels=design_labels)

# %% [markdown]
# ## Within-client effect of the alliance on next-session symptoms
#
# Each simulated study is analysed with `alliance.models.within_between` (alliance
# detrended and person-mean centred, Wang & Maxwell 2015; Curran & Bauer 2011). The bias
# column shows that the observed within effect is attenuated: item-level measurement
# error in the alliance dilutes it, which a latent-variable model would correct.
#
# The model is the registry's `within_between` entry (`alliance.models.list_models()`
# lists every model, its focal term and the effect power plants for it), fitted with
# the columns the simulated study's codebook declares. Its focal term is per point of
# the alliance column as the codebook scores it, the WAI-SR total (12-60): `truth`,
# `mean_estimate` and `bias` are per total point, so the planted effect per item-mean
# point is divided by the 12 items.

# %%
within = simulate_power(
    grid,
    {"within": within_effect},
    "within",
    n_sims=n_sims,
    seed=seed,
    n_jobs=n_jobs,
    nested=nested,
)
columns = [
    "n_therapists",
    "n_sims",
    "n_failed",
    "truth",
    "power",
    "power_ci_low",
    "power_ci_high",
    "mean_estimate",
    "bias",
    "coverage",
]

# %%
# NBVAL_CHECK_OUTPUT
power_labels = {
    **design_labels,
    "n_sims": "Simulations",
    "n_failed": "Failed",
    "truth": "Truth",
    "power": "Power",
    "power_ci_low": "CI low",
    "power_ci_high": "CI high",
    "mean_estimate": "Mean estimate",
    "bias": "Bias",
    "coverage": "Coverage",
}
power_note = (
    f"{n_sims} simulated studies per design ({clients_per_therapist} clients per therapist, "
    f"{n_sessions} sessions); CI: 95% Wilson interval of the Monte Carlo power; coverage: "
    "of the 95% CIs; truth, mean estimate and bias in units of the focal term."
)
report_table(
    within[columns],
    "power_within",
    export_dir,
    title="Power for the within-client alliance effect on next-session symptoms",
    note=power_note,
    labels=power_labels,
    digits=3,
)

# %% [markdown]
# ## Prior negative therapy and early alliance
#
# The registry's `early_alliance_difference` (alias `prior_negative_therapy`): the mean
# of each client's first 3 rated sessions, compared between clients with and without a
# prior negative therapy, with a random therapist intercept. The difference is in WAI-SR
# total points: the planted -0.35 item-mean points are -4.2.

# %%
prior = simulate_power(
    grid,
    {"prior_negative_alliance": prior_negative_effect},
    "prior_negative_therapy",
    n_sims=n_sims,
    seed=seed,
    n_jobs=n_jobs,
    nested=nested,
)

# %%
# NBVAL_CHECK_OUTPUT
report_table(
    prior[columns],
    "power_prior_negative_therapy",
    export_dir,
    title="Power for the early-alliance difference after a prior negative therapy",
    note=power_note,
    labels=power_labels,
    digits=3,
)

# %% [markdown]
# ## Power curves
# Bands are 95% Wilson intervals of the Monte Carlo estimate; the dashed line marks 80%.

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
alliance.plots.power_curve(within, x="n_therapists", ax=axes[0])
axes[0].set_title("Within-client alliance -> next PHQ-9")
alliance.plots.power_curve(prior, x="n_therapists", ax=axes[1])
axes[1].set_title("Prior negative therapy -> early alliance")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "power_curves",
    export_dir,
    caption=f"Power by number of therapists ({n_sims} simulations per design; bands: 95% "
    "Wilson intervals; dashed: 80%)",
)
