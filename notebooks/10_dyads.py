# ---
# jupyter:
#   alliance:
#     requires:
#     - alliance
#     - alliance_therapist
#     - outcome
#     - therapist
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
# # 10. Both sides of the dyad: client and therapist ratings of the alliance
#
# Client and therapist both rate the alliance. This notebook asks how far they agree,
# session by session and between clients (`alliance.dyad.agreement`: the repeated-measures
# correlation, the mean difference and its change over sessions, the share of discrepant
# dyads of Shanock et al., 2010), and whether the two views, and their (dis)agreement,
# predict the client's outcome: a response surface analysis (`alliance.dyad.rsa`;
# Shanock et al., 2010; Humberg, Nestler & Back, 2019) and the one-with-many
# actor-partner style model, since a therapist rates many clients (`alliance.dyad.apim`;
# Kenny, Kashy & Cook, 2006; Marcus, Kashy & Baldwin, 2009). It runs on studies whose
# codebook declares a therapist-rated alliance form (the bundled `dyads` study by
# default); the report skips it, with the reason, for studies without one.

# %% tags=["parameters"]
data = "dyads"  # a study with client- and therapist-rated alliance (bundled: dyads)
seed = 2026
alliance_col = None  # client-rated alliance score; found from the codebook when None
therapist_col = None  # therapist-rated alliance score; found from the codebook when None
outcome = None  # outcome score column; found from the codebook when None
export_dir = None  # set by `alliance report`: where figures and tables are written

# %%
import matplotlib.pyplot as plt

import alliance
from alliance.export import report_table, save_figure

study = alliance.datasets.load_study(data)
alliance.plots.set_theme(study)
labels = alliance.tables.codebook_labels(study)
roles = alliance.design.fill_roles(
    study, alliance=alliance_col, alliance_therapist=therapist_col, outcome=outcome
)
x, y, z = roles["alliance"], roles["alliance_therapist"], roles["outcome"]
print(study)
print(f"client-rated: {x}; therapist-rated: {y}; outcome: {z}")

# %% [markdown]
# ## 1. Agreement
#
# Within-client r: do the two ratings move together from session to session? Between-client
# r: do clients whom the therapist sees as better allied also rate the alliance higher? The
# mean difference (client minus therapist) and its change per session come from a mixed
# model of the difference; a dyad is discrepant when the standardized ratings differ by
# more than half an SD.

# %%
# NBVAL_CHECK_OUTPUT
agree = alliance.dyad.agreement(study, x=x, y=y, therapist="therapist")
report_table(
    agree.params[["term", "estimate", "ci_low", "ci_high", "p"]],
    "dyad_agreement",
    export_dir,
    title="Agreement of the client- and therapist-rated alliance",
    note="Difference: client minus therapist; CI: 95%.",
    labels={"estimate": "Estimate"},
    digits=3,
)

# %% [markdown]
# ## 2. Response surface: both ratings and their (in)congruence
#
# The client-level outcome is the last observed score. `a1`/`a2`: slope and curvature
# along the line of congruence (client = therapist); `a3`/`a4`: along the line of
# incongruence. A negative `a4` with the first principal axis on the line of congruence
# would say that agreement itself goes with a better outcome (a lower score here).

# %%
# NBVAL_CHECK_OUTPUT
sessions = study.sessions.sort_values(["client", "session"])
last = sessions.dropna(subset=[z]).groupby("client")[z].last().rename("end")
clients = sessions.merge(last.reset_index(), on="client")
surface = alliance.dyad.rsa(clients, x=x, y=y, outcome="end", therapist="therapist")
print(f"broad congruence: {surface.broad_congruence}")
report_table(
    surface.surface[["estimate", "se", "p"]].rename_axis("quantity").reset_index(),
    "dyad_response_surface",
    export_dir,
    title="Response surface of the end outcome on both alliance ratings",
    note="a1, a2: slope and curvature along the line of congruence; a3, a4: along the line "
    "of incongruence.",
    labels={"quantity": "Quantity", "estimate": "Estimate"},
    digits=3,
)

# %%
fig, ax = plt.subplots(figsize=(4, 3.4))
alliance.plots.response_surface(surface, ax=ax)
ax.set_title("")
fig.tight_layout()
figure_files = save_figure(
    fig,
    "dyad_response_surface",
    export_dir,
    caption=f"Predicted {labels.get(z, z)} at the end over the client- and therapist-rated "
    "alliance, with the lines of congruence and incongruence",
)

# %% [markdown]
# ## 3. One therapist, many clients
#
# Each rating split into the therapist's mean over their clients and the client's
# deviation from it, with a therapist random intercept. With one client-rated outcome this
# is an actor-partner style model, not a full APIM.

# %%
# NBVAL_CHECK_OUTPUT
apim = alliance.dyad.apim(clients, client_rating=x, therapist_rating=y, outcome="end")
report_table(
    apim.params[["term", "estimate", "se", "ci_low", "ci_high", "p"]],
    "dyad_one_with_many",
    export_dir,
    title="One therapist, many clients: therapist means and client deviations",
    note="Each rating split into the therapist's mean and the client's deviation from it; "
    "random therapist intercept; CI: 95%.",
    labels={"estimate": "b"},
    digits=3,
)
