"""Early alliance by client group: is the alliance lower at first after a prior negative therapy?

The early alliance (the mean of the client's first ``k`` rated sessions, the window of
:func:`alliance.models.early_alliance` with ``how="mean"``) is compared between two groups
of clients, clients nested in therapists (a therapist random intercept; Raudenbush & Bryk
2002). The default group is ``prior_negative_therapy``: clients who report a harmful or
disappointing earlier therapy.

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). Hierarchical linear models: Applications and data
analysis methods (2nd ed.). Sage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance.design import EarlyWindow, as_window, fill_roles, from_study_roles
from alliance.models._prep import (
    Exclusions,
    as_long,
    check_sessions,
    client_table,
    code_moderator,
    fit_client_model,
)
from alliance.models._result import ModelResult
from alliance.models.registry import Simulation, per_alliance_point, register_model

__all__ = ["early_alliance_difference"]

CITATION = "Raudenbush & Bryk (2002)"


@register_model(
    name="early_alliance_difference",
    estimates="difference in early alliance (mean of the first k rated sessions) between two "
    "client groups, by default after a prior negative therapy; random therapist intercept",
    citation=CITATION,
    roles=("alliance", "client", "session", "therapist", "prior_negative_therapy"),
    arguments={"prior_negative_therapy": "group"},
    focal_term="{prior_negative_therapy}",
    aliases=("prior_negative_therapy",),
    simulate=Simulation(
        effects=("prior_negative_alliance", "prior_negative_growth", "rupture_rate_prior_negative"),
        truth=per_alliance_point("prior_negative_alliance", alliance_is_response=True),
        # the other two paths also lower or raise the early mean a little; with them set
        # to the rates of the other clients the difference is exactly the planted one
        null={"prior_negative_growth": 0.0, "rupture_rate_prior_negative": 0.05},
    ),
)
@from_study_roles
def early_alliance_difference(
    data,
    group: str = "prior_negative_therapy",
    alliance: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    early: int | EarlyWindow = 3,
    reml: bool = True,
    k: int | None = None,
) -> ModelResult:
    """Difference in early alliance between two groups of clients.

    Fits ``alliance_early ~ group + (1 | therapist)`` with one row per client
    (:func:`alliance.models.lmm`; ordinary least squares when no therapist column is given).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session; for a Study the group is taken from
        ``study.clients``.
    group : str, default "prior_negative_therapy"
        A client-level column with two values (boolean, or two levels coded 0/1 in sorted
        order) or a numeric one (used as given).
    alliance, client, session : str
        Column names.
    therapist : str, optional
        Therapist column: a therapist random intercept.
        Left out for a Study, the therapist column of its design (codebook ``role``)
        is used and a note says so; ``False`` fits without one.
    early : int or EarlyWindow, default 3
        The early window (:class:`alliance.design.EarlyWindow`; an int: the mean of the
        client's first ``early`` rated alliance sessions, so a missed or unrated session
        does not end the window); clients with fewer ratings are left out and counted.
    reml : bool, default True
    k : int, optional
        Former name of ``early`` (deprecated).

    Returns
    -------
    ModelResult
        ``params`` with terms ``Intercept`` and ``<group>`` (the difference, in points of
        the alliance column), ``std_estimate`` = b x SD(group) / SD(early alliance).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.early_alliance_difference(study, alliance="wai_sr",
    ...                                                 therapist="therapist")
    >>> fit.params["term"].tolist()
    ['Intercept', 'prior_negative_therapy']
    >>> bool(fit.params.set_index("term").loc["prior_negative_therapy", "estimate"] < 0)
    True
    """
    window = as_window(early, k=k)
    alliance = fill_roles(data, alliance=alliance)["alliance"]
    frame = as_long(data, client, session, therapist, alliance, group)
    frame = check_sessions(frame, session, client)
    if not pd.api.types.is_numeric_dtype(frame[alliance]):
        raise ValueError(f"column {alliance!r} must be numeric, not {frame[alliance].dtype}.")
    ex = Exclusions(client)
    frame = frame.sort_values([client, session], kind="stable").reset_index(drop=True)
    in_window, enough, why = window.mask(frame, alliance, client, session)
    ex.add(why, (~enough).to_numpy(), frame, alliance)
    kept = frame[enough]
    early = kept[alliance].where(in_window[enough]).groupby(kept[client], sort=False).mean()
    cols = [c for c in (therapist, group) if c is not None]
    table = client_table(kept, client, cols).merge(
        early.rename("alliance_early").reset_index(), on=client
    )
    for col in cols:
        miss = table[col].isna()
        if miss.any():
            rows = int(kept[client].isin(table.loc[miss, client]).sum())
            ex.add_counts(f"missing {col}", rows, int(miss.sum()), col)
            table = table[~miss]
    coded, _, _, coding = code_moderator(table[group], group)
    work = table.assign(group_coded=coded.to_numpy())
    if therapist is not None:
        work = work.rename(columns={therapist: "therapist_id"})
    params, vc, loglik, fit = fit_client_model(
        work,
        "alliance_early",
        ["group_coded"],
        "therapist_id" if therapist is not None else None,
        reml=reml,
        what="early-alliance difference model",
    )
    params["term"] = params["term"].replace({"group_coded": group})
    sd_early = work["alliance_early"].std()
    params["std_estimate"] = np.where(
        params["term"] == group, params["estimate"] * work["group_coded"].std() / sd_early, np.nan
    )
    notes = [f"{group} coded {coding}."]
    if getattr(fit, "singular", False):
        notes.append("Singular fit: the therapist variance is estimated at zero.")
    if getattr(fit, "converged", True) is False:
        notes.append("The mixed-model optimizer did not converge; interpret with care.")
    return ModelResult(
        model=f"early {alliance} ({window.describe()[16:]}) by {group}",
        params=params,
        variance_components=vc,
        loglik=loglik,
        nobs=len(work),
        excluded=ex.frame(),
        missing_data=(
            f"one row per client: {window.describe()}; clients with "
            f"fewer ratings or without {', '.join(cols)} are excluded (counted)."
        ),
        citation=CITATION,
        notes=notes,
    )
