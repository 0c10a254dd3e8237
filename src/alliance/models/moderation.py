"""Moderation of the alliance-outcome link by a client-level variable, with simple slopes.

The moderator (by default ``prior_negative_therapy``: clients who had a harmful or
disappointing earlier therapy) changes the alliance effect in one of two models:

``model="early"``
    The early-alliance model (:func:`~alliance.models.early_alliance`) with the alliance x
    moderator interaction; simple slopes at the moderator's values (0/1 for a binary
    moderator, mean and +-1 SD for a numeric one; Aiken & West 1991).
``model="within_between"``
    The session-level effect of the alliance on the next session's outcome, in the same
    unconfounded model as the default of :func:`~alliance.models.within_between`:

    * a categorical moderator (two or more groups, e.g. prior negative therapy yes/no):
      ``method="multigroup"``, the dynamic panel model (ML-SEM) fitted in each group with
      every parameter free per group (lavaan's ``group=``), and Wald tests that the
      cross-lagged paths are equal across groups;
    * a continuous moderator: ``method="mlm"``, the multilevel model with the lagged
      outcome and a random slope of the moderated within-client effect (Heisig & Schaeffer
      2019), simple slopes at chosen moderator values and the Johnson-Neyman region of
      significance (Bauer & Curran 2005; Preacher, Curran & Bauer 2006). The lagged
      outcome makes the estimates subject to the Nickell (1981) bias with short courses:
      the result says so.

The models are looked up in the model registry (:func:`alliance.models.get_model`) and
called through their public functions. :func:`alliance.plots.simple_slopes` draws the
simple slopes of ``model="early"`` and ``method="mlm"``.

References
----------
Aiken, L. S., & West, S. G. (1991). Multiple regression: Testing and interpreting interactions.
Sage.

Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged
panel models with fixed effects. Socius, 3, 1-17.

Bauer, D. J., & Curran, P. J. (2005). Probing interactions in fixed and multilevel regression:
Inferential and graphical techniques. Multivariate Behavioral Research, 40(3), 373-400.

Heisig, J. P., & Schaeffer, M. (2019). Why you should always include a random slope for the
lower-level variable involved in a cross-level interaction. European Sociological Review,
35(2), 258-279.

Nickell, S. (1981). Biases in dynamic models with fixed effects. Econometrica, 49(6), 1417-1426.

Preacher, K. J., Curran, P. J., & Bauer, D. J. (2006). Computational tools for probing
interactions in multiple linear regression, multilevel modeling, and latent curve analysis.
Journal of Educational and Behavioral Statistics, 31(4), 437-448.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from alliance.design import as_window, fill_roles, from_study_roles
from alliance.design import higher_is_better as outcome_higher_is_better
from alliance.models._prep import (
    Exclusions,
    as_long,
    attach_client_columns,
    check_sessions,
    client_table,
    code_moderator,
    direction_argument,
    effect_argument,
    lagged_pairs,
    lmm_params,
    standardize,
)
from alliance.models._result import ModelResult, base_fields
from alliance.models.early import early_table, fit_early
from alliance.models.lmm import lmm
from alliance.models.registry import get_model, register_model
from alliance.models.within_between import CONFOUND_NOTE
from alliance.results import n_by_level

__all__ = ["ModerationResult", "moderation"]

CITATION = "Aiken & West (1991); Preacher, Curran & Bauer (2006)"
MLM_CITATION = (
    "Heisig & Schaeffer (2019), random slope for a cross-level interaction; Bauer & Curran "
    "(2005) and Preacher, Curran & Bauer (2006), simple slopes and Johnson-Neyman regions"
)
MULTIGROUP_CITATION = (
    "multi-group dynamic panel model (Allison, Williams & Moral-Benito 2017; Falkenström et "
    "al. 2017) with Wald tests of equal cross-lagged paths across groups"
)
NO_RANDOM_SLOPE_NOTE = (
    "No random slope of the within-client effect (random_slope=False): with a client-level "
    "moderator of a within-client effect the interaction's standard error is too small and its "
    "test anti-conservative when the effect varies between clients (Heisig & Schaeffer 2019)."
)
SESSION_OPTIONS = (
    "lag",
    "detrend",
    "effect",
    "reverse",  # former form of effect=
    "lagged_outcome",
    "random_slope",
    "session_slope",
)


@dataclass
class ModerationResult(ModelResult):
    """Result of :func:`moderation` (a :class:`~alliance.models.ModelResult`).

    Attributes
    ----------
    simple_slopes : pandas.DataFrame
        The focal effect at each moderator value (``model="early"`` and ``method="mlm"``)
        or in each group (``method="multigroup"``): label, value, estimate, se, df,
        statistic, p, ci_low, ci_high, std_estimate.
    lines : pandas.DataFrame
        Predicted outcome over the focal predictor's range (mean +- 2 SD) at each moderator
        value, other terms at their means, with confidence bands (for
        :func:`alliance.plots.simple_slopes`); empty for ``method="multigroup"``.
    focal : str
        The focal predictor's term (``alliance_early``, ``<alliance>_within``, or the
        cross-lagged path ``<alliance>[t-1] -> <outcome>[t]``).
    moderator : str
        The moderator column.
    outcome_label : str
        The response in words (axis label).
    moderator_coding : dict
        How the moderator was coded: ``at`` (values probed), ``labels``, ``coding``.
    method : str
        ``"early"``, ``"multigroup"`` or ``"mlm"``.
    mixed_model : alliance.models.LmmResult or None
        The mixed model fitted (``method="mlm"``; ``model="early"`` with a therapist column).
    ols : statsmodels regression result or None
        The least-squares fit of ``model="early"`` without a therapist column.
    table : pandas.DataFrame or None
        ``model="early"``: the client-level data used.
    formula : str
        ``method="mlm"``: the mixed model's formula.
    johnson_neyman : pandas.Series or None
        ``method="mlm"``: the Johnson-Neyman region of significance of the focal effect
        over the moderator: ``lower``, ``upper`` (the bounds, NaN when there are none),
        ``region`` (``"outside"``: significant below ``lower`` and above ``upper``;
        ``"inside"``: between them; ``"all"`` or ``"none"``), ``critical`` and ``df`` (the
        t critical value at the interaction's Satterthwaite df), ``level``,
        ``moderator_min``/``moderator_max`` (observed over clients) and
        ``share_significant`` (the share of clients whose value lies in the region).
    wald : pandas.DataFrame or None
        ``method="multigroup"``: Wald tests (hypothesis, chisq, df, p) that the focal
        cross-lagged path, and both cross-lagged paths, are equal across the groups (as
        lavaan's ``lavTestWald``).
    group_fits : dict
        ``method="multigroup"``: the dynamic panel fit of each group (label ->
        :class:`~alliance.models.PanelResult`).
    pairs : pandas.DataFrame or None
        ``method="mlm"``: the session pairs the mixed model was fitted to (client,
        session of the response, y, x_within, x_between, y_now, mod, ...).
    """

    simple_slopes: pd.DataFrame = field(default_factory=pd.DataFrame)
    lines: pd.DataFrame = field(default_factory=pd.DataFrame)
    focal: str = ""
    moderator: str = ""
    outcome_label: str = ""
    moderator_coding: dict = field(default_factory=dict)
    method: str = ""
    mixed_model: Any = None
    ols: Any = None
    table: pd.DataFrame | None = None
    formula: str = ""
    johnson_neyman: pd.Series | None = None
    wald: pd.DataFrame | None = None
    group_fits: dict = field(default_factory=dict)
    pairs: pd.DataFrame | None = None


@register_model(
    name="moderation",
    estimates="change in the early alliance -> outcome effect per unit of a client-level "
    "moderator (by default prior negative therapy)",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist", "prior_negative_therapy"),
    arguments={"prior_negative_therapy": "moderator"},
    focal_term="alliance_early:{prior_negative_therapy}",
)
@from_study_roles
def moderation(
    data,
    moderator: str = "prior_negative_therapy",
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    model: Literal["early", "within_between"] = "early",
    method: Literal["multigroup", "mlm"] | None = None,
    at: list[float] | None = None,
    level: float = 0.95,
    **options,
) -> ModerationResult:
    """The alliance x moderator interaction in the early-alliance or session-level model.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format; for a Study the moderator is taken from ``study.clients``.
    moderator : str, default "prior_negative_therapy"
        A client-level column (one value per client). ``model="early"`` and
        ``method="mlm"``: boolean / two-level (coded 0/1, the first level in sorted order,
        or False, as 0) or numeric (used as given). ``method="multigroup"``: any
        categorical column; each value is a group.
    alliance, outcome : str, optional
        Score columns; found from the codebook or conventional names when left out.
    client, session, therapist : str
        Column names.
        therapist: Left out for a Study, the therapist column of its design
        (codebook ``role``) is used and a note says so; ``False`` fits without one.
    model : {"early", "within_between"}
        ``"early"``: ``end ~ baseline + alliance_early * moderator + (1 | therapist)``
        (:func:`~alliance.models.early_alliance`). ``"within_between"``: the session-level
        effect of the alliance at t on the outcome at t + lag, by ``method``.
    method : {"multigroup", "mlm"}, optional
        ``model="within_between"`` only. Default: ``"multigroup"`` for a categorical
        moderator (boolean, text, or a numeric column with two values), ``"mlm"`` for a
        continuous one.

        * ``"multigroup"``: :func:`~alliance.models.within_between` with its default
          (the dynamic panel model, ML-SEM) fitted in each group on the same sessions,
          every parameter free per group; Wald tests of equal cross-lagged paths
          (``.wald``). ``options`` go to ``within_between`` (``max_sessions``, ``slopes``,
          ``n_starts``, ``min_clients``, ``lag``, ``effect``, ``fit_indices``, ...).
        * ``"mlm"``: ``y[t+lag] ~ (x_within + x_between) * moderator + y[t] + session +
          (1 + session + x_within | client) + (1 | therapist)`` by :func:`~alliance.models.lmm`,
          the lagged outcome ``y[t]`` and the random slope of ``x_within`` included by
          default (``options``: ``lag``, ``detrend``, ``effect``, ``lagged_outcome``,
          ``random_slope``, ``session_slope``, ``covariates``, ``reml``); ``x_within`` is
          the detrended, person-centred alliance as in ``within_between(method="mlm")``.
    at : list of float, optional
        ``method="mlm"``: moderator values of the simple slopes (default: 0 and 1 for a
        0/1 moderator, the mean and +-1 SD over clients for a numeric one).
    level : float, default 0.95
        Confidence level of the simple slopes, the CIs and the Johnson-Neyman region.
    **options
        Passed on to the model: ``early`` (the window, :class:`alliance.design.EarlyWindow`;
        ``k`` is its former name), ``how``, ``adjust_length``, ``covariates`` (early);
        see ``method`` for the session-level options.

    Returns
    -------
    ModerationResult
        ``model="early"`` and ``method="mlm"``: ``params`` with the moderator's main
        effect and the interaction (``<focal>:<moderator>``; its ``std_estimate`` is
        b x SD(focal) x SD(moderator) / SD(outcome)); ``.simple_slopes`` (label, value,
        estimate, se, df, statistic, p, ci_low, ci_high, std_estimate); ``.lines`` for
        :func:`alliance.plots.simple_slopes`; with ``"mlm"`` also ``.johnson_neyman``.
        ``method="multigroup"``: ``params`` with the four lagged paths in each group
        (``<path> [<moderator>=<group>]``) and the group differences of the two
        cross-lagged paths (``<path>:<moderator>`` for two groups, ``<path>:<moderator>=<group>``
        against the first group otherwise; z tests), ``.wald``, ``.group_fits``, and
        ``.simple_slopes`` with the focal path in each group.

    Raises
    ------
    ValueError
        The moderator varies within clients, is constant, has more than two text levels
        (except with ``method="multigroup"``), a group is too small for the dynamic panel
        model, or the model cannot be fitted.

    Notes
    -----
    The multi-group model estimates the average within-client cross-lagged effect of each
    group (the dynamic panel model's estimand); groups are fitted on the same sessions (the
    shorter group's last usable session when they differ, with a note). The multilevel
    model's lagged outcome is biased with client random intercepts and short courses
    (Nickell 1981); the moderation of the alliance effect is affected through the lagged
    outcome's correlation with the alliance. ``benchmarks/sim_moderation.py`` checks the CI
    coverage of the cross-level interaction with a true random slope.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.moderation(study, "prior_negative_therapy", alliance="wai_sr",
    ...                                  outcome="phq9", therapist="therapist")
    >>> fit.params["term"].tolist()[-1]
    'alliance_early:prior_negative_therapy'
    >>> fit.simple_slopes["label"].tolist()
    ['prior_negative_therapy=False', 'prior_negative_therapy=True']

    The session-level effect by group, in the multi-group dynamic panel model:

    >>> sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    >>> study = alliance.Study(sessions=sessions, clients=study.clients)
    >>> fit = alliance.models.moderation(study, alliance="wai", outcome="phq9",
    ...                                  model="within_between", max_sessions=6,
    ...                                  fit_indices=False)
    >>> fit.method, fit.wald["df"].tolist()
    ('multigroup', [1, 2])

    A continuous moderator, with simple slopes and the Johnson-Neyman region:

    >>> fit = alliance.models.moderation(study, "age", alliance="wai", outcome="phq9",
    ...                                  model="within_between")
    >>> fit.method, len(fit.simple_slopes)
    ('mlm', 3)
    >>> fit.johnson_neyman["region"] in {"inside", "outside", "all", "none"}
    True
    """
    if model not in ("early", "within_between"):
        raise ValueError(f"model must be 'early' or 'within_between', not {model!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}.")
    if method not in (None, "multigroup", "mlm"):
        raise ValueError(f"method must be 'multigroup' or 'mlm', not {method!r}.")
    roles = fill_roles(data, alliance=alliance, outcome=outcome)
    alliance, outcome = roles["alliance"], roles["outcome"]
    if model == "early":
        if method is not None or at is not None:
            raise TypeError(
                "method= and at= are options of model='within_between'; the early-alliance "
                "model probes the moderator at its coded values."
            )
        return _early(
            data, moderator, alliance, outcome, client, session, therapist, level, options
        )
    if method is None:
        values = as_long(data, client, moderator)[moderator]
        method = "multigroup" if _categorical(values) else "mlm"
    if method == "multigroup":
        if at is not None:
            raise TypeError("at= is an option of method='mlm' (a continuous moderator).")
        return _multigroup(
            data, moderator, alliance, outcome, client, session, therapist, level, options
        )
    return _mlm(data, moderator, alliance, outcome, client, session, therapist, level, at, options)


def _categorical(values: pd.Series) -> bool:
    """Groups (boolean, text, or two numeric values) rather than a continuous moderator."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return True
    return present.nunique() <= 2


# --------------------------------------------------------------------------- multi-group DPM


def _multigroup(data, moderator, alliance, outcome, client, session, therapist, level, options):
    """The dynamic panel model (within_between's default) in each moderator group."""
    frame = as_long(data, client, session, therapist, alliance, outcome, moderator)
    frame = check_sessions(frame, session, client)
    per_client = client_table(frame, client, [moderator]).set_index(client)[moderator]
    value = frame[client].map(per_client)
    ex = Exclusions(client)
    missing = value.isna().to_numpy()
    ex.add(f"missing moderator {moderator}", missing, frame, moderator)
    frame, value = frame[~missing].reset_index(drop=True), value[~missing].reset_index(drop=True)
    present = pd.unique(value)
    if pd.api.types.is_bool_dtype(value):
        levels = [lev for lev in (False, True) if lev in set(present)]
    else:
        levels = sorted(present.tolist(), key=lambda v: (str(type(v)), v))
    if len(levels) < 2:
        raise ValueError(
            f"moderator {moderator!r} takes a single value in the data used "
            f"({levels[0] if levels else 'none'}); the multi-group model needs two groups."
        )
    labels = [f"{moderator}={lev}" for lev in levels]
    spec = get_model("within_between")
    columns = [c for c in (client, session, therapist, alliance, outcome) if c is not None]

    def fit_group(lev, label, extra):
        part = frame.loc[(value == lev).to_numpy(), columns]
        try:
            fit = spec.function(
                part,
                alliance=alliance,
                outcome=outcome,
                client=client,
                session=session,
                therapist=therapist,
                **{**options, **extra},
            )
        except ValueError as err:
            raise ValueError(
                f"the dynamic panel model could not be fitted in the group {label} "
                f"({part[client].nunique()} clients): {err}"
            ) from err
        if "alliance_to_outcome" not in getattr(fit, "terms", {}):
            raise TypeError(
                "within_between's default is not a panel model with cross-lagged paths; the "
                "multi-group model needs one (use method='mlm')."
            )
        return fit

    fits = {label: fit_group(lev, label, {}) for lev, label in zip(levels, labels, strict=True)}
    notes = []
    waves = {label: list(f.sessions) for label, f in fits.items()}
    if len({w[0] for w in waves.values()}) > 1:
        raise ValueError(
            "the groups start at different sessions "
            f"({', '.join(f'{k}: {w[0]}' for k, w in waves.items())}); the multi-group model "
            "compares the same sessions in every group."
        )
    last = min(w[-1] for w in waves.values())
    if any(w[-1] != last for w in waves.values()):
        notes.append(
            f"the groups reach different last usable sessions "
            f"({', '.join(f'{k}: {w[-1]}' for k, w in waves.items())}); every group is fitted "
            f"on sessions {waves[labels[0]][0]}..{last} (max_sessions={last})"
        )
        cap = {"max_sessions": min(last, options.get("max_sessions") or last)}
        fits = {
            label: (fits[label] if waves[label][-1] == last else fit_group(lev, label, cap))
            for lev, label in zip(levels, labels, strict=True)
        }
    first = fits[labels[0]]
    focal, other = first.terms["alliance_to_outcome"], first.terms["outcome_to_alliance"]
    if first.focal_term == other:
        focal, other = other, focal
    crit = stats.norm.ppf(0.5 + level / 2)

    def z_row(term, est, se, **extra):
        z = est / se if se > 0 else np.nan
        return {
            "term": term,
            "estimate": est,
            "se": se,
            "df": np.nan,
            "statistic": z,
            "p": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
            "ci_low": est - crit * se,
            "ci_high": est + crit * se,
            **extra,
        }

    rows, slopes = [], []
    for lev, label in zip(levels, labels, strict=True):
        p = fits[label].params
        for r in p.itertuples():
            rows.append(z_row(f"{r.term} [{label}]", r.estimate, r.se, std_estimate=r.std_estimate))
        r = p.set_index("term").loc[focal]
        slopes.append(
            {
                "label": label,
                "value": float(lev) if pd.api.types.is_number(lev) else np.nan,
                **{k: v for k, v in z_row(focal, r["estimate"], r["se"]).items() if k != "term"},
                "std_estimate": float(r["std_estimate"]),
            }
        )
    paths = [focal, other]
    est = {lab: fits[lab].params.set_index("term").loc[paths, "estimate"] for lab in labels}
    for term in paths:
        for label in labels[1:]:
            diff = float(est[label][term] - est[labels[0]][term])
            se = math.sqrt(
                float(fits[label].cov_params.loc[term, term])
                + float(fits[labels[0]].cov_params.loc[term, term])
            )
            name = f"{term}:{moderator}" if len(labels) == 2 else f"{term}:{label}"
            rows.append(z_row(name, diff, se))
    wald = pd.DataFrame(
        [
            _wald(fits, labels, [focal], f"equal {focal} across groups"),
            _wald(fits, labels, paths, "equal cross-lagged paths across groups (both directions)"),
        ]
    )
    loglik = float(sum(f.loglik for f in fits.values()))
    npar = int(sum(f.fit_measures["npar"] for f in fits.values()))
    n_clients = int(sum(f.n_clients for f in fits.values()))
    measures = {
        "npar": npar,
        "loglik": loglik,
        "aic": -2 * loglik + 2 * npar,
        "bic": -2 * loglik + math.log(n_clients) * npar,
    }
    if all("chisq" in f.fit_measures for f in fits.values()):
        chisq = float(sum(f.fit_measures["chisq"] for f in fits.values()))
        df = float(sum(f.fit_measures["df"] for f in fits.values()))
        measures.update({"chisq": chisq, "df": df, "pvalue": float(stats.chi2.sf(chisq, df))})
    excluded = [ex.frame()]
    for label, f in fits.items():
        excluded.append(f.excluded.assign(reason=f.excluded["reason"] + f" ({label})"))
        notes.extend(f"{label}: {note}" for note in f.notes)
    notes.append(
        "multi-group model: within_between's default dynamic panel model fitted in each group "
        "with every parameter free per group (lavaan's group= without group.equal); the Wald "
        f"tests in .wald compare the cross-lagged paths. {first.estimand}".strip()
    )
    counts = {
        "clients": n_clients,
        "sessions": int(sum(f.n_by_level.get("sessions", 0) for f in fits.values())),
    }
    if therapist is not None:
        counts["therapists"] = int(frame[therapist].nunique())
    return ModerationResult(
        model=f"moderation by {moderator}: multi-group {first.model}",
        params=pd.DataFrame(rows),
        loglik=loglik,
        nobs=int(sum(f.nobs for f in fits.values())),
        excluded=pd.concat(excluded, ignore_index=True),
        missing_data=first.missing_data,
        citation=f"{first.citation}; {MULTIGROUP_CITATION}",
        notes=notes,
        standardization="std_estimate of each group's paths: lavaan's std.all in that group",
        n_by_level=counts,
        aic=measures["aic"],
        bic=measures["bic"],
        converged=all(bool(f.converged) for f in fits.values()),
        fit_measures=pd.Series(measures, name="fit"),
        simple_slopes=pd.DataFrame(slopes),
        lines=pd.DataFrame(columns=["label", "value", "x", "predicted", "ci_low", "ci_high"]),
        focal=focal,
        moderator=moderator,
        outcome_label=focal.split(" -> ")[-1],
        moderator_coding={
            "at": [s["value"] for s in slopes],
            "labels": labels,
            "coding": "one group per value",
        },
        method="multigroup",
        wald=wald,
        group_fits=fits,
    )


def _wald(fits, labels, terms, hypothesis) -> dict:
    """Wald test that ``terms`` are equal in every group (groups are independent)."""
    theta = np.concatenate(
        [fits[lab].params.set_index("term").loc[terms, "estimate"] for lab in labels]
    )
    blocks = [fits[lab].cov_params.loc[terms, terms].to_numpy() for lab in labels]
    k, g = len(terms), len(labels)
    vcov = np.zeros((k * g, k * g))
    for i, b in enumerate(blocks):
        vcov[i * k : (i + 1) * k, i * k : (i + 1) * k] = b
    contrast = np.zeros((k * (g - 1), k * g))
    for j in range(1, g):
        for t in range(k):
            contrast[(j - 1) * k + t, t] = -1.0
            contrast[(j - 1) * k + t, j * k + t] = 1.0
    d = contrast @ theta
    chisq = float(d @ np.linalg.solve(contrast @ vcov @ contrast.T, d))
    df = k * (g - 1)
    return {
        "hypothesis": hypothesis,
        "chisq": chisq,
        "df": df,
        "p": float(stats.chi2.sf(chisq, df)),
    }


# --------------------------------------------------------------------------- multilevel model


def _mlm(data, moderator, alliance, outcome, client, session, therapist, level, at, options):
    """Lagged-outcome multilevel model with a random slope of the moderated within effect."""
    known = {*SESSION_OPTIONS, "covariates", "reml"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"unexpected options for method='mlm': {unknown} (it takes {sorted(known)})"
        )
    opts = {
        "lag": 1,
        "detrend": True,
        "lagged_outcome": True,
        "random_slope": True,
        "session_slope": True,
        "covariates": None,
        "reml": True,
        **options,
    }
    opts["reverse"] = effect_argument("moderation", opts.pop("effect", None), opts.get("reverse"))
    lag = opts["lag"]
    if not isinstance(lag, int | np.integer) or isinstance(lag, bool) or lag < 1:
        raise ValueError(f"lag must be a whole number of sessions >= 1, not {lag!r}.")
    covariates = list(opts["covariates"] or [])
    if moderator in covariates:
        raise ValueError(f"{moderator!r} is both the moderator and a covariate; name it once.")
    frame = as_long(data, client, session, therapist, alliance, outcome, *covariates, moderator)
    frame = check_sessions(frame, session, client)
    x_col, y_col = (outcome, alliance) if opts["reverse"] else (alliance, outcome)
    for col in dict.fromkeys([x_col, y_col]):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} must be numeric, not {frame[col].dtype}.")
    per_client = client_table(frame, client, [moderator])
    coded, at_default, at_labels, coding = code_moderator(per_client[moderator], moderator)
    if at is not None:
        at_values = [float(v) for v in np.atleast_1d(at)]
        if not at_values or not np.isfinite(at_values).all():
            raise ValueError(f"at= must be finite moderator values, not {at!r}.")
        at_labels = [f"{moderator}={v:g}" for v in at_values]
    else:
        at_values = at_default
    used, ex, cov_names = lagged_pairs(
        frame,
        x_col,
        y_col,
        client,
        session,
        lag=lag,
        detrend=opts["detrend"],
        lagged_outcome=opts["lagged_outcome"],
        therapist=therapist,
        covariates=covariates,
        moderator=moderator,
        moderator_codes=pd.Series(np.asarray(coded), index=per_client[client].to_numpy()),
    )
    fixed = ["x_within", "x_between", "session", *cov_names]
    if opts["lagged_outcome"]:
        fixed.append("y_now")
    fixed += ["mod", "x_within:mod", "x_between:mod"]
    rand = ["1"]
    if opts["session_slope"]:
        rand.append("session")
    if opts["random_slope"]:
        rand.append("x_within")
    formula = f"y ~ {' + '.join(fixed)} + ({' + '.join(rand)} | client)"
    if therapist is not None:
        formula += " + (1 | therapist)"
    try:
        fit = lmm(formula, used, reml=opts["reml"])
    except ValueError as err:
        raise ValueError(
            f"moderation could not fit {formula!r} (y = {y_col} at t + {lag}, x = {x_col}): {err}"
        ) from err

    xn, xb = f"{x_col}_within", f"{x_col}_between"
    names = {
        "x_within": xn,
        "x_between": xb,
        "y_now": f"{y_col}_lag{lag}",
        "session": session,
        "mod": moderator,
        **cov_names,
    }
    y_dev = used["y"] - used.groupby("client")["y"].transform("mean")
    cm = used.groupby("client")[["x_between", "y", "mod"]].mean()
    sd_x, sd_yd, sd_m, sd_y = used["x_within"].std(), y_dev.std(), cm["mod"].std(), used["y"].std()
    std = {
        xn: float(standardize(1.0, sd_x, sd_yd)),
        xb: float(standardize(1.0, cm["x_between"].std(), cm["y"].std())),
        session: float(standardize(1.0, used["session"].std(), sd_y)),
        f"{y_col}_lag{lag}": float(standardize(1.0, used["y_now"].std(), sd_y)),
        moderator: float(standardize(1.0, sd_m, sd_y)),
        f"{xn}:{moderator}": float(sd_x * sd_m / sd_yd) if sd_yd > 0 else np.nan,
        f"{xb}:{moderator}": float(cm["x_between"].std() * sd_m / cm["y"].std()),
    }
    params = lmm_params(fit, names, std)
    terms = fit.params["term"].tolist()
    slopes, lines = _probe(
        terms,
        fit.params["estimate"].to_numpy(),
        fit.cov_params,
        used,
        focal="x_within",
        coding={"at": at_values, "labels": at_labels},
        level=level,
        df_of=fit.contrast,
        std=sd_x / sd_yd,
    )
    jn = johnson_neyman_region(fit, "x_within", "x_within:mod", cm["mod"], level=level)

    pairs = used.groupby("client").size()
    notes = []
    if opts["lagged_outcome"]:
        notes.append(
            f"The lagged outcome {y_col}[t] is a predictor in a model with client random "
            f"intercepts: with short courses ({pairs.median():.0f} session pairs per client "
            "here, median) its coefficient is biased (Nickell 1981 bias, of order 1/T), and so "
            "are the alliance effect and its moderation when the alliance correlates with the "
            "past outcome. The multi-group dynamic panel model (method='multigroup', for a "
            "categorical moderator) has no such bias."
        )
    else:
        notes.append(CONFOUND_NOTE)
    if not opts["random_slope"]:
        notes.append(NO_RANDOM_SLOPE_NOTE)
    if fit.singular:
        notes.append(
            "Singular fit: a random-effect variance is at zero or a correlation at +-1; "
            "consider session_slope=False (keep the random slope of the moderated effect)."
        )
    if not fit.converged:
        notes.append("The mixed-model optimizer did not converge; interpret with care.")
    direction = (
        f"{outcome} -> next {alliance}" if opts["reverse"] else f"{alliance} -> next {outcome}"
    )
    return ModerationResult(
        model=f"moderation by {moderator} (mlm, lagged outcome): {direction}",
        params=params,
        variance_components=fit.variance_components,
        loglik=fit.loglik,
        nobs=fit.nobs,
        excluded=ex.frame(),
        missing_data=(
            "all available session pairs, (RE)ML under missing at random: a pair enters when "
            "the predictor at t, the response at t + lag (and at t) and the moderator are "
            "observed; the rest is counted in .excluded."
        ),
        citation=MLM_CITATION,
        notes=notes,
        standardization=(
            "within effect and its interaction: SD of the detrended/centred predictor (x SD of "
            "the moderator over clients) over SD of the response's deviation from the client "
            "mean; between terms: SDs of client means; others: total SDs."
        ),
        n_by_level=n_by_level(used, clients="client", sessions="client", therapists="therapist"),
        aic=fit.aic,
        bic=fit.bic,
        converged=fit.converged,
        singular=fit.singular,
        simple_slopes=slopes,
        lines=lines.assign(focal=xn),
        focal=xn,
        moderator=moderator,
        outcome_label=f"{y_col} at t + {lag}",
        moderator_coding={"at": at_values, "labels": at_labels, "coding": coding},
        method="mlm",
        mixed_model=fit,
        formula=formula,
        johnson_neyman=jn,
        pairs=used,
    )


def johnson_neyman_region(fit, focal: str, interaction: str, moderator_values, *, level=0.95):
    """The Johnson-Neyman region of significance of a simple slope (Bauer & Curran 2005).

    The simple slope of ``focal`` at moderator value m is b1 + b3 m with variance
    v11 + 2 m v13 + m^2 v33; it differs from 0 at ``level`` where
    (b1 + b3 m)^2 - c^2 (v11 + 2 m v13 + m^2 v33) > 0, ``c`` the t critical value at the
    interaction's (Satterthwaite) df. The bounds are the roots of that quadratic.

    Parameters
    ----------
    fit : alliance.models.LmmResult
        A mixed model with the terms ``focal`` and ``interaction``.
    focal, interaction : str
        Term names in ``fit.params``.
    moderator_values : array-like
        The moderator over the units it varies between (clients), for the observed range
        and the share of units in the region.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.Series
        lower, upper, region, critical, df, level, moderator_min, moderator_max,
        share_significant (see :class:`ModerationResult`).

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.moderation import johnson_neyman_region
    >>> study = alliance.datasets.load_dataset("demo")
    >>> d = study.sessions.merge(study.clients[["client", "age"]], on="client")
    >>> fit = alliance.models.lmm("phq9 ~ session * age + (1 | client)", d)
    >>> jn = johnson_neyman_region(fit, "session", "session:age", study.clients["age"])
    >>> jn["region"] in {"inside", "outside", "all", "none"}
    True
    """
    terms = fit.params["term"].tolist()
    if focal not in terms or interaction not in terms:
        raise KeyError(f"the model has no term {focal!r} or {interaction!r} ({terms}).")
    beta = fit.params.set_index("term")["estimate"]
    v = fit.cov_params
    b1, b3 = float(beta[focal]), float(beta[interaction])
    v11, v13, v33 = (
        float(v.loc[focal, focal]),
        float(v.loc[focal, interaction]),
        float(v.loc[interaction, interaction]),
    )
    df = float(fit.params.set_index("term").loc[interaction, "df"])
    crit = float(
        stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
    )
    a = b3**2 - crit**2 * v33
    b = 2 * (b1 * b3 - crit**2 * v13)
    c = b1**2 - crit**2 * v11
    disc = b**2 - 4 * a * c
    lower = upper = np.nan
    if a == 0:
        region = "all" if c > 0 else "none"
    elif disc <= 0:
        region = "all" if a > 0 else "none"
    else:
        r = np.sort([(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)])
        lower, upper = float(r[0]), float(r[1])
        region = "outside" if a > 0 else "inside"
    m = pd.to_numeric(pd.Series(moderator_values), errors="coerce").dropna().to_numpy(dtype=float)
    slope = b1 + b3 * m
    se = np.sqrt(np.maximum(v11 + 2 * m * v13 + m**2 * v33, 0.0))
    share = float(np.mean(np.abs(slope) > crit * se)) if len(m) else np.nan
    return pd.Series(
        {
            "lower": lower,
            "upper": upper,
            "region": region,
            "critical": crit,
            "df": df,
            "level": level,
            "moderator_min": float(m.min()) if len(m) else np.nan,
            "moderator_max": float(m.max()) if len(m) else np.nan,
            "share_significant": share,
        },
        name="johnson_neyman",
    )


# --------------------------------------------------------------------------- early alliance


def _early(data, moderator, alliance, outcome, client, session, therapist, level, options):
    known = {"early", "k", "how", "adjust_length", "covariates", "reml", "direction"}
    known.add("lower_is_better")  # former form of direction=
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected options for model='early': {unknown}")
    window = as_window(options.get("early", 3), k=options.get("k"))
    how = options.get("how", "mean")
    covariates = list(options.get("covariates") or [])
    if moderator in covariates:
        raise ValueError(f"{moderator!r} is both the moderator and a covariate; name it once.")
    frame = as_long(data, client, session, therapist, alliance, outcome, moderator, *covariates)
    frame = check_sessions(frame, session, client)
    ex = Exclusions(client)
    table = early_table(frame, alliance, outcome, client, session, k=window, how=how, ex=ex)
    table = attach_client_columns(table, frame, client, therapist, [moderator, *covariates], ex)
    coded, at, labels, coding = code_moderator(table[moderator], moderator)
    table["mod"] = coded.to_numpy()
    terms = ["baseline", "alliance_early"]
    if options.get("adjust_length", False):
        terms.append("sessions_elapsed")
    terms.append("mod")
    result = fit_early(
        table,
        terms,
        covariates=covariates,
        client=client,
        therapist=therapist,
        ex=ex,
        reml=options.get("reml", True),
        lower_is_better=not outcome_higher_is_better(
            data,
            outcome,
            direction_argument(
                "moderation", options.get("direction"), options.get("lower_is_better")
            ),
        ),
        model=f"moderation by {moderator} (early alliance {alliance} -> end {outcome})",
        extra_terms=["alliance_early:mod"],
        n_sessions=int(frame[client].isin(table[client]).sum()),
    )
    fit = result.mixed_model if result.mixed_model is not None else result.ols
    internal = result.params["term"].tolist()
    result.params["term"] = [
        ":".join(moderator if p == "mod" else p for p in t.split(":")) for t in internal
    ]
    sd_x, sd_y, sd_m = table["alliance_early"].std(), table["end"].std(), table["mod"].std()
    p = result.params
    p.loc[p["term"] == moderator, "std_estimate"] = (
        p.loc[p["term"] == moderator, "estimate"] * sd_m / sd_y
    )
    inter = p["term"] == f"alliance_early:{moderator}"
    p.loc[inter, "std_estimate"] = p.loc[inter, "estimate"] * sd_x * sd_m / sd_y
    # internal names for probing (covariates were renamed by fit_early)
    safe = {c: f"cov{i}" for i, c in enumerate(covariates)}
    work = table.assign(**{v: table[c] for c, v in safe.items()})
    vcov = _vcov(fit)
    names = [":".join(safe.get(q, q) for q in t.split(":")) for t in internal]
    vcov.index = vcov.columns = names
    slopes, lines = _probe(
        names,
        p["estimate"].to_numpy(),
        vcov,
        work,
        focal="alliance_early",
        coding={"at": at, "labels": labels, "coding": coding},
        level=level,
        df_of=_df_fn(fit),
        std=sd_x / sd_y,
    )
    return ModerationResult(
        **base_fields(result, citation=f"{result.citation}; {CITATION}"),
        simple_slopes=slopes,
        lines=lines.assign(focal="alliance_early"),
        focal="alliance_early",
        moderator=moderator,
        moderator_coding={"at": at, "labels": labels, "coding": coding},
        outcome_label=f"end {outcome}",
        method="early",
        mixed_model=result.mixed_model,
        ols=result.ols,
        table=result.table,
    )


def _vcov(fit) -> pd.DataFrame:
    if hasattr(fit, "cov_params") and isinstance(fit.cov_params, pd.DataFrame):
        return fit.cov_params.copy()
    return fit.cov_params().copy()


def _df_fn(fit):
    """A function weights -> Series(estimate, se, df, ...) for lmm or OLS fits."""
    if hasattr(fit, "contrast"):
        return fit.contrast
    beta = fit.params.to_numpy()
    cov = fit.cov_params().to_numpy()

    def contrast(w):
        est = float(w @ beta)
        se = float(np.sqrt(w @ cov @ w))
        t = est / se
        df = float(fit.df_resid)
        return pd.Series(
            {"estimate": est, "se": se, "df": df, "statistic": t, "p": 2 * stats.t.sf(abs(t), df)}
        )

    return contrast


def _row(terms, values: dict[str, float | np.ndarray], means: dict[str, float]) -> np.ndarray:
    """Design values of each term (products of columns) at the given values / means."""
    cols = []
    for term in terms:
        v = 1.0
        if term != "Intercept":
            for part in term.split(":"):
                v = v * (values[part] if part in values else means.get(part, 0.0))
        cols.append(np.broadcast_to(np.asarray(v, dtype=float), np.shape(values["_x"])))
    return np.column_stack(cols)


def _probe(terms, beta, vcov, used, *, focal, coding, level, df_of, std):
    """Simple slopes of ``focal`` at the moderator values, and prediction lines."""
    crit_rows = []
    means = {
        c: float(used[c].astype(float).mean())
        for c in used.columns
        if c not in ("client", "therapist") and pd.api.types.is_numeric_dtype(used[c])
    }
    focal_sd = float(used[focal].std())
    x = np.linspace(means[focal] - 2 * focal_sd, means[focal] + 2 * focal_sd, 41)
    v = vcov.loc[terms, terms].to_numpy()
    line_parts = []
    for label, m in zip(coding["labels"], coding["at"], strict=True):
        w = np.array(
            [
                1.0 if t == focal else (m if t in (f"{focal}:mod", f"mod:{focal}") else 0.0)
                for t in terms
            ]
        )
        res = df_of(w)
        df = float(res["df"])
        crit = (
            stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
        )
        crit_rows.append(
            {
                "label": label,
                "value": m,
                "estimate": float(res["estimate"]),
                "se": float(res["se"]),
                "df": df,
                "statistic": float(res["statistic"]),
                "p": float(res["p"]),
                "ci_low": float(res["estimate"] - crit * res["se"]),
                "ci_high": float(res["estimate"] + crit * res["se"]),
                "std_estimate": float(standardize(res["estimate"], std, 1.0)),
            }
        )
        design = _row(terms, {"_x": x, focal: x, "mod": m}, means)
        pred = design @ beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, v, design))
        z = stats.norm.ppf(0.5 + level / 2)
        line_parts.append(
            pd.DataFrame(
                {
                    "label": label,
                    "value": m,
                    "x": x,
                    "predicted": pred,
                    "ci_low": pred - z * se,
                    "ci_high": pred + z * se,
                }
            )
        )
    return pd.DataFrame(crit_rows), pd.concat(line_parts, ignore_index=True)
