"""Early alliance -> outcome: the classic alliance-outcome model of the meta-analyses.

The alliance early in treatment (at one session, or the mean of the first k rated sessions)
predicts the end-of-treatment outcome controlling for the baseline outcome, clients nested in
therapists (Horvath & Symonds 1991; Flückiger, Del Re, Wampold & Horvath 2018). The effect is
also given as a correlation r for comparison with the meta-analytic r = .278.

References
----------
Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.

Horvath, A. O., & Symonds, B. D. (1991). Relation between working alliance and outcome in
psychotherapy: A meta-analysis. Journal of Counseling Psychology, 38(2), 139-149.

Rosenthal, R. (1991). Meta-analytic procedures for social research (rev. ed.). Sage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from alliance.design import EarlyWindow, as_window, fill_roles, from_study_roles
from alliance.design import higher_is_better as outcome_higher_is_better
from alliance.models._prep import (
    Exclusions,
    as_long,
    attach_client_columns,
    check_sessions,
    direction_argument,
    fisher_ci,
    fit_client_model,
    r_from_t,
    standardize,
)
from alliance.models._result import ModelResult, engine_fits
from alliance.models.registry import Simulation, register_model
from alliance.results import n_by_level

__all__ = ["EarlyAllianceResult", "early_alliance", "META_R"]

#: Flückiger et al. (2018): alliance-outcome r over 295 studies, with its 95% CI.
META_R = {"r": 0.278, "ci_low": 0.256, "ci_high": 0.299}

CITATION = "Flückiger, Del Re, Wampold & Horvath (2018); Horvath & Symonds (1991)"


@dataclass
class EarlyAllianceResult(ModelResult):
    """Result of :func:`early_alliance` (a :class:`~alliance.models.ModelResult`).

    Attributes
    ----------
    r : pandas.DataFrame
        The alliance effect as a correlation, indexed by kind (``partial r`` from its t value,
        Rosenthal 1991; ``r with residual gain``): r, ci_low, ci_high (Fisher z), r_benefit and
        its CI (signed so that positive means a better alliance goes with a better outcome),
        n_clients, meta_r.
    table : pandas.DataFrame
        The client-level data used (one row per client: baseline, alliance_early, end, ...).
    mixed_model : alliance.models.LmmResult or None
        The mixed model fitted (with a therapist column), else None.
    ols : statsmodels.regression.linear_model.RegressionResultsWrapper or None
        The ordinary least-squares fit (without a therapist column), else None.
    meta_r : dict
        The meta-analytic r of Flückiger et al. (2018) with its CI (:data:`META_R`).
    """

    r: pd.DataFrame = field(default_factory=pd.DataFrame)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    mixed_model: Any = None
    ols: Any = None
    meta_r: dict = field(default_factory=lambda: dict(META_R))


def early_table(
    frame: pd.DataFrame,
    alliance: str,
    outcome: str,
    client: str,
    session: str,
    *,
    k: int | EarlyWindow,
    how: str,
    ex: Exclusions,
    end: str | int = "last_session",
    order: str = "outcome_first",
    prior_change: bool = False,
) -> pd.DataFrame:
    """One row per client: alliance_early, baseline, end, sessions_elapsed (+ client id).

    ``frame`` is sorted by client and session. ``k`` is the early window
    (:class:`alliance.design.EarlyWindow`, or its number of sessions), or with
    ``how="session"`` the session number. The baseline is the client's first outcome
    strictly before the window's first alliance rating (``order="outcome_first"``: an
    outcome of the window's first session counts, as it is completed before that session's
    alliance rating; ``"alliance_first"``: only earlier sessions). ``end``: ``"last_session"``
    the outcome at the client's last session (never carried forward), a session number,
    or ``"last_observed"`` (the last observed outcome after the window: carried forward).
    ``prior_change`` adds ``prior_change``: the outcome at the last assessment before the
    window's last alliance rating minus the baseline. Clients without what the model needs
    are recorded in ``ex`` (every session row of theirs) and left out.
    """
    if order not in ("outcome_first", "alliance_first"):
        raise ValueError(f"order must be 'outcome_first' or 'alliance_first', not {order!r}.")
    if not (end in ("last_session", "last_observed") or _is_int(end)):
        raise ValueError(
            f"end must be 'last_session', 'last_observed' or a session number, not {end!r}."
        )
    g = frame[client]
    a_ok = frame[alliance].notna()
    y_ok = frame[outcome].notna()
    s = frame[session]
    if how == "mean":
        window = k if isinstance(k, EarlyWindow) else EarlyWindow(int(k))
        in_window, enough, why_window = window.mask(frame, alliance, client, session)
    else:
        k = k.sessions if isinstance(k, EarlyWindow) else k
        in_window = a_ok & (s == k)
        enough = in_window.groupby(g).transform("any")
        why_window = f"no {alliance} rating at session {k}"
    window_start = s.where(in_window).groupby(g).transform("min")
    window_end = s.where(in_window).groupby(g).transform("max")
    same = order == "outcome_first"
    before_start = (s < window_start) | (same & (s == window_start))
    first_y = s.where(y_ok & before_start).groupby(g).transform("min")
    early = frame[alliance].where(in_window).groupby(g).transform("mean")
    last_row = s.groupby(g).transform("max")
    if end == "last_session":
        end_session = last_row
        no_end = [
            (
                f"last session within the early window (no {outcome} after it)",
                last_row <= window_end,
                session,
            ),
            (
                f"no {outcome} at the client's last session (end assessment; not carried forward)",
                ~(y_ok & (s == last_row)).groupby(g).transform("any"),
                outcome,
            ),
        ]
    elif end == "last_observed":
        end_session = s.where(y_ok & (s > window_end)).groupby(g).transform("max")
        no_end = [(f"no {outcome} after the early window (end)", end_session.isna(), outcome)]
    else:
        end_session = pd.Series(float(end), index=frame.index)
        no_end = [
            (
                f"early window reaches session {end} (the end assessment)",
                window_end >= end,
                session,
            ),
            (
                f"no {outcome} at session {end} (end assessment)",
                ~(y_ok & (s == end)).groupby(g).transform("any"),
                outcome,
            ),
        ]
    before_last = (s < window_end) | (same & (s == window_end))
    prior_s = s.where(y_ok & before_last & (s > first_y)).groupby(g).transform("max")
    n_sess = g.groupby(g).transform("size")

    checks = [
        ("single-session client", n_sess == 1, session),
        (why_window, ~enough, alliance),
        (
            f"no {outcome} before the early window (baseline; "
            + (
                "same-session outcome counts as before the alliance rating)"
                if same
                else "the outcome of a session is rated after its alliance)"
            ),
            first_y.isna(),
            outcome,
        ),
        *no_end,
    ]
    if prior_change:
        checks.append(
            (
                f"no {outcome} between the baseline and the last early {alliance} rating "
                "(prior change)",
                prior_s.isna(),
                outcome,
            )
        )
    left = pd.Series(True, index=frame.index)
    for reason, mask, col in checks:
        hit = left & mask.fillna(True).astype(bool)
        ex.add(reason, hit.to_numpy(), frame, col)
        left &= ~hit

    keep = frame[left]
    base = keep.loc[keep[session] == first_y[left], [client, outcome, session]].set_index(client)
    fin = keep.loc[keep[session] == end_session[left], [client, outcome, session]]
    fin = fin.set_index(client)
    table = pd.DataFrame(
        {
            "alliance_early": early[left].groupby(keep[client]).first(),
            "baseline": base[outcome],
            "end": fin[outcome],
            "sessions_elapsed": fin[session] - base[session],
        }
    )
    if prior_change:
        at = keep.loc[keep[session] == prior_s[left], [client, outcome]].set_index(client)
        table["prior_change"] = at[outcome] - base[outcome]
    table.index.name = client
    return table.reset_index()


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@register_model(
    name="early_alliance",
    estimates="end-of-treatment outcome per point of early alliance (mean of the first k rated "
    "sessions), controlling for the baseline outcome; random therapist intercept",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="alliance_early",
    # alliance speeds improvement between clients and therapists; the coefficient mixes both
    # and the treatment length, so it has no closed-form truth: power only
    simulate=Simulation(effects=("between_client", "between_therapist")),
)
@from_study_roles
def early_alliance(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    early: int | EarlyWindow = 3,
    how: Literal["mean", "session"] = "mean",
    adjust_length: bool = False,
    adjust_prior_change: bool = False,
    end: str | int = "last_session",
    order: Literal["outcome_first", "alliance_first"] = "outcome_first",
    covariates: list[str] | None = None,
    direction: str | None = None,
    reml: bool = True,
    k: int | None = None,
    lower_is_better: bool | None = None,
) -> EarlyAllianceResult:
    """Early alliance predicting end-of-treatment outcome, controlling for baseline.

    Fits ``end ~ baseline + alliance_early [+ sessions_elapsed + covariates] + (1 | therapist)``
    with one row per client (:func:`alliance.models.lmm`; ordinary least squares when no
    therapist column is given), the design of the alliance-outcome studies pooled by
    Flückiger et al. (2018).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session. For a Study, client-level ``covariates``
        are taken from ``study.clients``.
    alliance, outcome : str, optional
        Score columns; found from the study's codebook (``role``) or conventional names
        when left out (:func:`alliance.resolve_design`).
    client, session : str
        Column names.
    therapist : str, optional
        Therapist column: a therapist random intercept (clients nested in therapists).
        Left out for a Study, the therapist column of its design (codebook ``role``)
        is used and a note says so; ``False`` fits without one.
    early : int or EarlyWindow, default 3
        ``how="mean"``: the early window (:class:`alliance.design.EarlyWindow`; an int is
        the mean of the client's first ``early`` rated alliance sessions, all of them
        needed); ``how="session"``: the alliance at session number ``early``.
    how : {"mean", "session"}
        See ``early``.
    adjust_length : bool, default False
        Add the sessions elapsed between the baseline and the end outcome as a covariate. The
        end outcome of a client who left early comes from an earlier session; without the
        adjustment (the design of the meta-analysed studies) the effect includes the path
        through a shorter treatment, with it the effect is at equal treatment length.
    covariates : list of str, optional
        Client-level columns to control for (e.g. ``prior_negative_therapy``).
    direction : {"lower_is_better", "higher_is_better"}, optional
        Direction of improvement of the outcome; by default the outcome instrument's (from
        the codebook or a registered name such as ``phq9``), else lower is better
        (:func:`alliance.design.higher_is_better`). ``.r`` gives ``r_benefit``, signed so
        that a positive value means a better alliance goes with a better outcome, as the
        meta-analytic r is.
    reml : bool, default True
    k : int, optional
        Former name of ``early`` (deprecated).
    lower_is_better : bool, optional
        Former form of ``direction`` (deprecated: pass ``direction=``).

    Returns
    -------
    EarlyAllianceResult
        ``params`` (terms ``Intercept``, ``baseline``, ``alliance_early``, ...), with
        ``std_estimate`` = b x SD(predictor) / SD(end outcome) over clients.
        ``.r``: the alliance effect as a partial r (from its t value, Rosenthal 1991)
        and the correlation of early alliance with the residual gain (end outcome adjusted for
        baseline), with Fisher-z CIs and the meta-analytic r = .278 (.256-.299) beside them.
        ``.table``: the client-level data used; ``.mixed_model`` or ``.ols``: the fit.

    Notes
    -----
    Missing data: one row per client. The baseline is the first outcome before the window's
    first alliance rating (see ``order``), never one inside the window. The end outcome is
    the end assessment, the outcome at the client's last session (clients who left early
    contribute the score of the session they ended with; ``adjust_length`` adjusts for the
    time elapsed); a missing end assessment is not replaced by an earlier score: the client
    is excluded. Clients with a single session, too few early ratings, no baseline, a last
    session inside the window or no end assessment are excluded and counted in
    ``.excluded``. A model-based end outcome (all of a client's post-window outcomes, MAR)
    is :func:`therapist_contributions`' ``outcome_model="slope"`` design, not this one.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.early_alliance(study, alliance="wai_sr", outcome="phq9",
    ...     therapist="therapist", covariates=["prior_negative_therapy"])
    >>> fit.params["term"].tolist()
    ['Intercept', 'baseline', 'alliance_early', 'prior_negative_therapy']
    >>> bool(fit.r.loc["partial r", "r_benefit"] > 0)
    True
    """
    if how not in ("mean", "session"):
        raise ValueError(f"how must be 'mean' or 'session', not {how!r}.")
    window = as_window(early, k=k)
    if how == "session":
        k = window.sessions
    roles = fill_roles(data, alliance=alliance, outcome=outcome)
    alliance, outcome = roles["alliance"], roles["outcome"]
    lower = not outcome_higher_is_better(
        data, outcome, direction_argument("early_alliance", direction, lower_is_better)
    )
    covariates = list(covariates or [])
    frame = as_long(data, client, session, therapist, alliance, outcome, *covariates)
    frame = check_sessions(frame, session, client)
    for col in (alliance, outcome):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} must be numeric, not {frame[col].dtype}.")
    ex = Exclusions(client)
    table = early_table(
        frame,
        alliance,
        outcome,
        client,
        session,
        k=window,
        how=how,
        ex=ex,
        end=end,
        order=order,
        prior_change=adjust_prior_change,
    )
    table = attach_client_columns(table, frame, client, therapist, covariates, ex)
    terms = ["baseline", "alliance_early"]
    if adjust_length:
        terms.append("sessions_elapsed")
    if adjust_prior_change:
        terms.append("prior_change")
    res = fit_early(
        table,
        terms,
        covariates=covariates,
        client=client,
        therapist=therapist,
        ex=ex,
        reml=reml,
        lower_is_better=lower,
        model=f"early alliance -> outcome ({alliance} {_window(window, how)} -> end {outcome})",
        n_sessions=int(frame[client].isin(table[client]).sum()),
        end=end,
    )
    if order == "outcome_first":
        res.notes.append(
            "Baseline: the first outcome before the window's first alliance rating; an outcome "
            "of that same session counts (order='outcome_first': outcome measures completed "
            "before the session, the alliance after it)."
        )
    if adjust_prior_change:
        res.notes.append(
            "prior_change: outcome change from the baseline to the last assessment before the "
            "last early alliance rating, controlled (symptom change that preceded the alliance)."
        )
    return res


def _end_words(end) -> str:
    if end == "last_observed":
        what = "the last observed outcome after the early window (last observation carried forward)"
    elif end == "last_session":
        what = "the outcome at the client's last session (end assessment, not carried forward)"
    else:
        what = f"the outcome at session {end} (end assessment, not carried forward)"
    return (
        f"client-level model, one row per client: the end outcome is {what}; the baseline "
        "precedes the alliance window; clients without an early alliance, a baseline or the "
        "end outcome are excluded (counted)."
    )


def _window(window: EarlyWindow, how: str) -> str:
    if how == "session":
        return f"at session {window.sessions}"
    unit = "sessions" if window.counts == "rated" else "session numbers"
    return f"mean of first {window.sessions} {unit}"


def fit_early(
    table: pd.DataFrame,
    terms: list[str],
    *,
    covariates: list[str],
    client: str,
    therapist: str | None,
    ex: Exclusions,
    reml: bool,
    lower_is_better: bool,
    model: str,
    extra_terms: list[str] | None = None,
    n_sessions: int | None = None,
    end: str | int = "last_session",
) -> EarlyAllianceResult:
    """Fit the client-level model on ``table`` and assemble the result (shared with moderation)."""
    if len(table) < 3:
        raise ValueError(
            f"only {len(table)} clients have an early alliance, a baseline and an end outcome; "
            "the model needs more (see the exclusion counts: "
            + "; ".join(f"{r}: {n}" for r, _, _, n in ex.rows)
            + ")."
        )
    work = table.copy()
    safe = {c: f"cov{i}" for i, c in enumerate(covariates)}
    for c, key in safe.items():
        col = work[c]
        work[key] = col.astype(float) if pd.api.types.is_bool_dtype(col) else col
    all_terms = [*terms, *safe.values(), *(extra_terms or [])]
    params, vc, loglik, fit = fit_client_model(
        work.rename(columns={therapist: "therapist"}) if therapist else work,
        "end",
        all_terms,
        "therapist" if therapist else None,
        reml=reml,
        what="early-alliance model",
    )
    back = {v: k for k, v in safe.items()}
    params["term"] = params["term"].map(lambda t: ":".join(back.get(p, p) for p in t.split(":")))
    sd_end = work["end"].std()
    std = []
    for term in params["term"]:
        key = safe.get(term, term)
        if key in work and pd.api.types.is_numeric_dtype(work[key]):
            std.append(float(standardize(1.0, work[key].astype(float).std(), sd_end)))
        else:
            std.append(np.nan)
    params["std_estimate"] = params["estimate"] * np.array(std)

    # the alliance effect as r
    row = params.set_index("term").loc["alliance_early"]
    n = len(work)
    r_partial = float(r_from_t(row["statistic"], row["df"]))
    resid_gain = work["end"] - np.polyval(
        np.polyfit(work["baseline"], work["end"], 1), work["baseline"]
    )
    r_gain = float(np.corrcoef(work["alliance_early"], resid_gain)[0, 1])
    sign = -1.0 if lower_is_better else 1.0
    rows = []
    for label, r, k_ctrl in (
        ("partial r", r_partial, len(all_terms) - 1),
        ("r with residual gain", r_gain, 1),
    ):
        lo, hi = fisher_ci(r, n, k=k_ctrl)
        b_lo, b_hi = sorted((sign * lo, sign * hi))
        rows.append((label, r, lo, hi, sign * r, b_lo, b_hi, n))
    r_table = pd.DataFrame(
        rows,
        columns=[
            "kind",
            "r",
            "ci_low",
            "ci_high",
            "r_benefit",
            "benefit_ci_low",
            "benefit_ci_high",
            "n_clients",
        ],
    ).set_index("kind")
    r_table["meta_r"] = META_R["r"]

    notes = []
    if end == "last_observed":
        notes.append(
            "end='last_observed': a client whose end assessment is missing contributes an "
            "earlier score (last observation carried forward), which biases the effect when "
            "missingness depends on the course."
        )
    if getattr(fit, "singular", False):
        notes.append("Singular fit: the therapist variance is estimated at zero.")
    if getattr(fit, "converged", True) is False:
        notes.append("The mixed-model optimizer did not converge; interpret with care.")
    counts = n_by_level(table, clients=client, therapists=therapist)
    if n_sessions is not None:
        counts["sessions"] = int(n_sessions)
    return EarlyAllianceResult(
        model=model,
        params=params,
        variance_components=vc,
        loglik=loglik,
        nobs=n,
        excluded=ex.frame(),
        missing_data=_end_words(end),
        citation=CITATION,
        notes=notes,
        standardization="b x SD(predictor) / SD(end outcome), over the clients used",
        n_by_level=counts,
        r=r_table,
        table=table,
        meta_r=dict(META_R),
        **engine_fits(fit),
    )
