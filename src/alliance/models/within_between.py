"""Session-level within- and between-client alliance -> outcome models.

Alliance at session t predicting the outcome at session t + lag (or, with
``effect="outcome->alliance"``, the outcome at t predicting the alliance at t + lag), the
within-client effect kept apart from the
between-client one (Curran & Bauer 2011), the predictor detrended first (Wang & Maxwell 2015), as
in Falkenström et al. (2013, 2016). ``method="dpm"`` hands over to the dynamic panel model
estimated by ML-SEM (Allison, Williams & Moral-Benito 2017) in :mod:`alliance.models.sem`.

References
----------
Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged
panel models with fixed effects. Socius, 3, 1-17.

Curran, P. J., & Bauer, D. J. (2011). The disaggregation of within-person and between-person
effects in longitudinal models of change. Annual Review of Psychology, 62, 583-619.

Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts symptomatic
improvement session by session. Journal of Counseling Psychology, 60(3), 317-328.

Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic models of
individual change in psychotherapy process research. Journal of Consulting and Clinical
Psychology, 85(6), 537-549.

Nickell, S. (1981). Biases in dynamic models with fixed effects. Econometrica, 49(6), 1417-1426.

Wang, L. P., & Maxwell, S. E. (2015). On disaggregating between-person and within-person effects
with longitudinal data using multilevel models. Psychological Methods, 20(1), 63-83.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from alliance.design import from_study_roles
from alliance.models._prep import (
    EFFECTS,
    as_long,
    check_sessions,
    client_table,
    code_moderator,
    effect_argument,
    lagged_pairs,
    lmm_params,
    standardize,
)
from alliance.models._result import ModelResult
from alliance.models.lmm import LmmResult, lmm
from alliance.models.registry import (
    Simulation,
    per_alliance_point,
    register_model,
    statsmodels_lagged_engine,
)
from alliance.results import n_by_level

__all__ = ["WithinBetweenResult", "within_between", "NICKELL_NOTE", "CONFOUND_NOTE"]

log = logging.getLogger(__name__)

CITATION = "Curran & Bauer (2011); Wang & Maxwell (2015); Falkenström, Granström & Holmqvist (2013)"
MISSING_MLM = (
    "all available session pairs, maximum likelihood (REML) under missing at random: a pair "
    "(predictor at t, response at t + lag) enters when both are observed; clients with gaps or "
    "dropout keep every complete pair, and single-session clients leave (counted in .excluded)."
)
CONFOUND_NOTE = (
    "Concurrent confound: the response at t + lag is regressed on the predictor at t without "
    "the response at t. Alliance and symptoms rated in the same session share that week's "
    "state, and symptoms are autocorrelated, so the within effect mixes the lagged effect "
    "with the same-session association (a false effect when there is none; Falkenström et "
    "al. 2017). The default method='dpm' (dynamic panel model) avoids it."
)
NICKELL_NOTE = (
    "The lagged response is a predictor in a model with client random intercepts: its "
    "coefficient and the others are biased when clients have few sessions (Nickell 1981 bias; "
    "Falkenström et al. 2017). Use method='dpm' (ML-SEM dynamic panel model) for an unbiased "
    "estimate."
)


@dataclass
class WithinBetweenResult(ModelResult):
    """Result of :func:`within_between` with ``method="mlm"`` (a ``ModelResult``).

    Attributes
    ----------
    mixed_model : alliance.models.LmmResult
        The multilevel model fitted by :func:`alliance.models.lmm` (internal term names).
    formula : str
        Its formula (``y ~ x_within + x_between + session + (1 + session | client) ...``).
    icc : pandas.DataFrame
        Per-level intraclass correlations of the fitted model (``LmmResult.icc``).
    moderator_coding : dict or None
        How a moderator was coded (at, labels, coding) when one was given.
    """

    mixed_model: LmmResult | None = None
    formula: str = ""
    icc: pd.DataFrame = field(default_factory=pd.DataFrame)
    moderator_coding: Any = None


@register_model(
    name="within_between_reverse",
    estimates="within-client effect of the outcome at t on the alliance at t + 1 "
    "(multilevel model, method='mlm')",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="{outcome}_within",
    options={"method": "mlm", "effect": "outcome->alliance"},
    aliases=("reverse",),
    simulate=Simulation(
        effects=("reverse",),
        truth=per_alliance_point("reverse", alliance_is_response=True),
        options={"session_slope": False},
        engines={"statsmodels": statsmodels_lagged_engine(reverse=True)},
    ),
)
@register_model(
    name="within_between",
    estimates="within-client effect of the alliance at t (detrended, person-mean centred) on "
    "the outcome at t + 1 (multilevel model, method='mlm'; the default method='dpm' is the "
    "dynamic_panel entry)",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="{alliance}_within",
    options={"method": "mlm"},
    aliases=("within",),
    simulate=Simulation(
        effects=("within",),
        truth=per_alliance_point("within"),
        options={"session_slope": False},
        engines={"statsmodels": statsmodels_lagged_engine()},
    ),
)
@from_study_roles
def within_between(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    lag: int = 1,
    detrend: bool = True,
    effect: str | None = None,
    method: Literal["dpm", "mlm"] = "dpm",
    random_slope: bool | None = None,
    session_slope: bool | None = None,
    lagged_outcome: bool | None = None,
    covariates: list[str] | None = None,
    reml: bool | None = None,
    reverse: bool | None = None,
    **dpm_options,
) -> ModelResult:
    """Within- and between-client effects of alliance on next-session outcome (or the reverse).

    The default, ``method="dpm"``, is the dynamic panel model estimated by ML-SEM (Allison,
    Williams & Moral-Benito 2017; :func:`alliance.models.sem.dynamic_panel`), fitted from
    3 starting points (``n_starts=3``) with the best kept and every start in ``.starts``.
    It answers "does a better alliance than usual for this client predict lower symptoms
    next session?" without the two confounds of the multilevel model: alliance and
    symptoms rated in the same session share that week's state, and symptoms carry over
    from week to week (Falkenström et al. 2017). The cross-lagged path is an average
    within-client effect: when clients differ in their effect it estimates the mean.

    A default fit whose optimizer did not converge is refitted without the client-specific
    trends (``slopes=False``) and the note says so; if that fit is improper too, or
    ``slopes=`` was given, the result has ``converged=False`` and a note. A converged
    Heywood case (a variance not positive or a latent covariance matrix not positive
    semi-definite, common with few sessions) is kept with a note naming it: no p-value of
    an improper solution passes silently.

    ``method="mlm"`` (an option, kept for comparison with published multilevel analyses)
    fits, with :func:`alliance.models.lmm`,

    ``y[t+lag] ~ x_within[t] + x_between + session + (1 + session | client) + (1 | therapist)``

    where ``x`` is the alliance (``effect="alliance->outcome"``; ``y`` the outcome) or the
    outcome (``effect="outcome->alliance"``; ``y`` the alliance). ``x_within`` is the client's deviation from their own
    linear session trend (``detrend=True``, Wang & Maxwell 2015) or from their own mean
    (``detrend=False``); ``x_between`` is the client's mean (person-mean centring, Curran & Bauer
    2011). The within coefficient is the session-level effect of Falkenström et al. (2013).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session. A Study's ``clients`` columns named in
        ``covariates`` are merged in.
    alliance, outcome, client, session : str
        Column names. Sessions must be whole numbers.
    therapist : str, optional
        Therapist column (clients nested in therapists). Left out for a Study, the
        therapist column of its design (codebook ``role``) is used and a note says so;
        ``False`` fits without one. With ``method="dpm"`` the model stays single-level:
        the therapists are the clusters of cluster-robust (MLR) standard errors, used when there are at least 15 therapists (``se="auto"`` of
        :func:`~alliance.models.sem.dynamic_panel`; with fewer the standard errors are ML
        and a note says the nesting is not modelled). With ``method="mlm"`` it adds a
        therapist random intercept.
    lag : int, default 1
        Sessions between predictor and response, counted by session number: the response of a
        predictor at session 4 is the one at session 5; if session 5 was missed the pair is
        missing (counted in ``.excluded``), it never steps to session 6.
    detrend : bool, default True
        Remove each client's linear session trend from the predictor before centring.
    effect : {"alliance->outcome", "outcome->alliance"}, default "alliance->outcome"
        The direction: the alliance at t predicting the outcome at t + lag, or the outcome at
        t predicting the alliance at t + lag (symptoms -> next alliance). ``reverse=True``
        is its former form (deprecated).
    method : {"dpm", "mlm"}, default "dpm"
        The dynamic panel model by ML-SEM (``alliance.models.sem.dynamic_panel`` with
        ``dpm_options``, e.g. ``max_sessions=``, ``slopes=``, ``n_starts=``) or the
        multilevel model.
    random_slope : bool, default False
        ``method="mlm"`` only: let the within-client effect vary between clients.
    session_slope : bool, default True
        ``method="mlm"`` only: random client slope of session.
    lagged_outcome : bool, default False
        ``method="mlm"`` only: add the response at t as a predictor. Biased (Nickell
        1981); the result says so in ``.notes``.
    covariates : list of str, optional
        ``method="mlm"`` only: more fixed effects (session- or client-level columns).
    reml : bool, default True
        ``method="mlm"`` only: REML (default) or ML.
    **dpm_options
        Passed to ``dynamic_panel`` when ``method="dpm"``; refused with ``"mlm"``.

    Returns
    -------
    ModelResult
        ``params`` with terms ``Intercept``, ``<x>_within``, ``<x>_between``, ``session``, ...
        and ``std_estimate``: the within effect standardized by the within-client SDs of
        predictor (``x_within``) and response (deviation from the client mean), the between
        effect by the SDs of the client means, the others by the total SDs. With
        ``method="mlm"`` a :class:`WithinBetweenResult` (``.mixed_model``, ``.formula``,
        ``.icc``); with ``method="dpm"`` a :class:`~alliance.models.sem.PanelResult`.

    Raises
    ------
    ValueError
        Unknown method or lag, no client with two sessions ``lag`` apart, or a model the
        mixed-model engine cannot fit (its reason is given).

    Notes
    -----
    Missing data: every complete (t, t + lag) pair is used, estimated by (RE)ML under missing at
    random; missed sessions, dropout, missing values and single-session clients are counted in
    ``.excluded``, each row under its first reason.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    >>> fit = alliance.models.within_between(sessions, alliance="wai", outcome="phq9",
    ...                                      max_sessions=8)
    >>> fit.params["term"].iloc[0]
    'wai[t-1] -> phq9[t]'
    >>> bool(fit.params["estimate"].iloc[0] < 0)
    True
    >>> int(fit.starts["kept"].sum())
    1

    The multilevel model, with the confound stated in its notes:

    >>> fit = alliance.models.within_between(sessions, alliance="wai", outcome="phq9",
    ...                                      therapist="therapist", method="mlm")
    >>> round(float(fit.params.set_index("term").loc["wai_within", "estimate"]), 1)
    -1.7
    >>> any("Concurrent confound" in note for note in fit.notes)
    True
    >>> fit.excluded["reason"].tolist()[:2]
    ['no session t + 1 (last session of the client)', 'session t + 1 missed']
    """
    if method not in ("mlm", "dpm"):
        raise ValueError(f"method must be 'mlm' or 'dpm', not {method!r}.")
    reverse = effect_argument("within_between", effect, reverse)
    if not isinstance(lag, int | np.integer) or isinstance(lag, bool) or lag < 1:
        raise ValueError(f"lag must be a whole number of sessions >= 1, not {lag!r}.")
    mlm_only = {
        "random_slope": random_slope,
        "session_slope": session_slope,
        "lagged_outcome": lagged_outcome,
        "covariates": covariates,
        "reml": reml,
    }
    if method == "dpm":
        given = sorted(k for k, v in mlm_only.items() if v is not None)
        if given:
            raise TypeError(
                f"{given} are options of method='mlm'; the default dynamic panel model does "
                "not take them. Pass method='mlm' to fit the multilevel model (its notes state "
                "its confound) or drop them."
            )
        if not detrend:
            raise TypeError("detrend=False is an option of method='mlm'.")
        slopes_given = "slopes" in dpm_options
        dpm_options = {"n_starts": 3, "slopes": True, **dpm_options}
        try:
            fit = _dpm(
                data, alliance, outcome, client, session, therapist, lag, reverse, dpm_options
            )
        except ValueError as err:
            if slopes_given or "consecutive sessions" not in str(err):
                raise
            raise ValueError(
                f"{err}. The default dynamic panel model has client-specific trends "
                f"(slopes=True), which need {lag + 3} sessions; with fewer, pass slopes=False "
                "(its estimate is confounded when clients' rates of change differ with their "
                "alliance)"
            ) from err
        return _proper_or_simpler(
            fit,
            lambda: _dpm(
                data,
                alliance,
                outcome,
                client,
                session,
                therapist,
                lag,
                reverse,
                {**dpm_options, "slopes": False},
            ),
            may_simplify=dpm_options["slopes"] and not slopes_given,
        )
    random_slope = bool(random_slope)
    session_slope = True if session_slope is None else bool(session_slope)
    lagged_outcome = bool(lagged_outcome)
    reml = True if reml is None else bool(reml)
    if dpm_options:
        raise TypeError(
            f"unexpected arguments {sorted(dpm_options)} for method='mlm' (they are options of "
            "method='dpm')."
        )
    return fit_mlm(
        data,
        alliance,
        outcome,
        client,
        session,
        therapist,
        lag=lag,
        detrend=detrend,
        reverse=reverse,
        random_slope=random_slope,
        session_slope=session_slope,
        lagged_outcome=lagged_outcome,
        covariates=covariates,
        reml=reml,
    )[0]


def fit_mlm(
    data,
    alliance,
    outcome,
    client,
    session,
    therapist,
    *,
    lag,
    detrend,
    reverse,
    random_slope,
    session_slope,
    lagged_outcome,
    covariates,
    reml,
    moderator: str | None = None,
):
    """Fit the multilevel model; returns (result, the pairs used, the lmm fit).

    The engine of ``within_between(method="mlm")``, public for
    :func:`alliance.models.moderation.moderation`; the caller gets a new result it may
    build on (copy before changing it).

    With ``moderator`` (a client-level column), ``mod``, ``x_within:mod`` and ``x_between:mod``
    enter the fixed part (used by :func:`alliance.models.moderation.moderation`).
    """
    covariates = list(covariates or [])
    if moderator is not None and moderator in covariates:
        raise ValueError(f"{moderator!r} is both the moderator and a covariate; name it once.")
    frame = as_long(data, client, session, therapist, alliance, outcome, *covariates, moderator)
    frame = check_sessions(frame, session, client)
    x_col, y_col = (outcome, alliance) if reverse else (alliance, outcome)
    for col in dict.fromkeys([x_col, y_col]):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} must be numeric, not {frame[col].dtype}.")
    frame[x_col] = frame[x_col].astype(float)
    frame[y_col] = frame[y_col].astype(float)

    coding = None
    codes = None
    if moderator is not None:
        per_client = client_table(frame, client, [moderator])
        coded, at, labels, coding = code_moderator(per_client[moderator], moderator)
        codes = pd.Series(np.asarray(coded), index=per_client[client].to_numpy())
        coding = {"at": at, "labels": labels, "coding": coding}
    used, ex, cov_names = lagged_pairs(
        frame,
        x_col,
        y_col,
        client,
        session,
        lag=lag,
        detrend=detrend,
        lagged_outcome=lagged_outcome,
        therapist=therapist,
        covariates=covariates,
        moderator=moderator,
        moderator_codes=codes,
    )

    xn = f"{x_col}_within"
    xb = f"{x_col}_between"
    fixed = ["x_within", "x_between", "session", *cov_names]
    if lagged_outcome:
        fixed.append("y_now")
    if moderator is not None:
        fixed += ["mod", "x_within:mod", "x_between:mod"]
    rand_client = ["1"]
    if session_slope:
        rand_client.append("session")
    if random_slope:
        rand_client.append("x_within")
    formula = f"y ~ {' + '.join(fixed)} + ({' + '.join(rand_client)} | client)"
    if therapist is not None:
        formula += " + (1 | therapist)"
    try:
        fit = lmm(formula, used, reml=reml)
    except ValueError as err:
        raise ValueError(
            f"within_between could not fit {formula!r} (y = {y_col} at t + {lag}, x = {x_col}): "
            f"{err}"
        ) from err

    names = {
        "x_within": xn,
        "x_between": xb,
        "y_now": f"{y_col}_lag{lag}",
        "session": session,
        "mod": moderator or "mod",
        **cov_names,
    }
    y_dev = used["y"] - used.groupby("client")["y"].transform("mean")
    cm = used.groupby("client")[["x_between", "y"]].mean()
    sd_y = used["y"].std()
    std = {
        xn: float(standardize(1.0, used["x_within"].std(), y_dev.std())),
        xb: float(standardize(1.0, cm["x_between"].std(), cm["y"].std())),
        session: float(standardize(1.0, used["session"].std(), sd_y)),
        f"{y_col}_lag{lag}": float(standardize(1.0, used["y_now"].std(), sd_y)),
    }
    if moderator is not None:
        std[moderator] = float(standardize(1.0, used["mod"].std(), sd_y))
    for key, c in cov_names.items():
        if pd.api.types.is_numeric_dtype(used[key]):
            std[c] = float(standardize(1.0, used[key].astype(float).std(), sd_y))
    params = lmm_params(fit, names, std)

    notes = []
    if lagged_outcome:
        notes.append(NICKELL_NOTE)
        log.info("within_between: %s", NICKELL_NOTE)
    else:
        notes.append(CONFOUND_NOTE)
    if fit.singular:
        notes.append(
            "Singular fit: a random-effect variance is at zero or a correlation at +-1; "
            "consider session_slope=False or random_slope=False."
        )
    if not fit.converged:
        notes.append("The mixed-model optimizer did not converge; interpret with care.")
    direction = f"{outcome} -> next {alliance}" if reverse else f"{alliance} -> next {outcome}"
    counts = n_by_level(used, clients="client", sessions="client", therapists="therapist")
    result = WithinBetweenResult(
        model=f"within/between (mlm): {direction}",
        params=params,
        variance_components=fit.variance_components,
        loglik=fit.loglik,
        nobs=fit.nobs,
        excluded=ex.frame(),
        missing_data=MISSING_MLM,
        citation=CITATION,
        notes=notes,
        standardization=(
            "within effect: SD of the detrended/centred predictor over SD of the response's "
            "deviation from the client mean; between effect: SDs of client means; others: "
            "total SDs."
        ),
        n_by_level=counts,
        aic=fit.aic,
        bic=fit.bic,
        converged=fit.converged,
        singular=fit.singular,
        mixed_model=fit,
        formula=formula,
        icc=fit.icc,
        moderator_coding=coding,
    )
    return result, used, fit


def _proper_or_simpler(fit, refit_without_slopes, *, may_simplify: bool):
    """The default's rule for non-converged and improper dynamic-panel solutions.

    * The optimizer did not converge (singular information or a large gradient): with the
      default client-specific trends (``slopes`` not given by the caller) the model is
      refitted without them (the trend variances fixed at zero) and that fit is kept, with
      a note, when it is proper (:func:`alliance.models.sem.improper_solution`); otherwise
      ``converged`` stays False and a note says the p-values are not interpretable.
    * Converged, but a Heywood case (a variance not positive or a latent covariance matrix
      not positive semi-definite): the fit is kept and a note names the problem. With few
      sessions such solutions are common sampling fluctuations when a true trend variance
      is near zero; dropping the trends in them brings back the trend confound
      (``benchmarks/results/sim_null_within.md``: bias +0.21 and 77 of 97 fits refitted
      when every Heywood case was refitted without trends).
    """
    from alliance.models import sem

    improper_solution = getattr(sem, "improper_solution", None)
    if improper_solution is None:  # pragma: no cover - a stand-in sem module (tests)
        return fit
    reasons = improper_solution(fit)
    if not reasons:
        return fit
    why = "; ".join(reasons)
    if fit.converged:
        fit.notes.insert(
            0,
            f"Heywood case ({why}): the optimizer converged, the estimate is kept; its "
            "standard errors rest on an improper solution near a boundary, so read p-values "
            "near .05 with care (slopes=False or max_sessions= give proper alternatives).",
        )
        return fit
    if may_simplify:
        simple = refit_without_slopes()
        simple_reasons = improper_solution(simple)
        if not simple_reasons:
            simple.notes.insert(
                0,
                f"The model with client-specific trends (slopes=True) did not converge ({why}); "
                "refitted without them (slopes=False, trend variances fixed at zero), which "
                "is proper. Without trends the estimate is confounded when clients' rates of "
                "change differ with their alliance.",
            )
            simple.model = f"{simple.model}, trends dropped (no convergence with trends)"
            log.info("within_between: no convergence with slopes (%s); refitted without", why)
            return simple
        why = f"{why}; without trends (slopes=False): {'; '.join(simple_reasons)}"
    fit.converged = False
    fit.notes.insert(
        0,
        f"Improper solution ({why}): converged is False and the standard errors and "
        "p-values are not interpretable. Try max_sessions= (fewer sessions), slopes=False, "
        "or more clients.",
    )
    log.warning("within_between: improper dynamic panel solution (%s)", why)
    return fit


def _dpm(data, alliance, outcome, client, session, therapist, lag, reverse, options):
    """Validate and hand over to the ML-SEM dynamic panel model."""
    frame = as_long(data, client, session, therapist, alliance, outcome)
    check_sessions(frame, session, client)
    if therapist is not None:
        options = {**options, "therapist": therapist}
    try:
        from alliance.models import sem
    except ImportError as err:  # pragma: no cover - depends on the sem module being installed
        raise ImportError(
            "method='dpm' needs alliance.models.sem (the ML-SEM dynamic panel model), which is "
            f"not available: {err}. Use method='mlm' meanwhile."
        ) from err
    dynamic_panel = getattr(sem, "dynamic_panel", None)
    if dynamic_panel is None:  # pragma: no cover
        raise ImportError("alliance.models.sem has no dynamic_panel(); use method='mlm'.")
    try:
        return dynamic_panel(
            frame,
            alliance=alliance,
            outcome=outcome,
            client=client,
            session=session,
            effect=EFFECTS[1] if reverse else EFFECTS[0],
            lag=lag,
            **options,
        )
    except TypeError as err:
        if "therapist" in str(err) and therapist is not None:
            raise TypeError(
                "the dynamic panel model does not take a therapist level; call "
                "within_between(..., method='dpm') without therapist="
            ) from err
        raise
