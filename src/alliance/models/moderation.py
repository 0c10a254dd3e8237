"""Moderation of the alliance-outcome link by a client-level variable, with simple slopes.

The moderator (by default ``prior_negative_therapy``: clients who had a harmful or
disappointing earlier therapy) interacts with the alliance in the early-alliance model
(:func:`~alliance.models.early_alliance`) or in the session-level within/between model
(:func:`~alliance.models.within_between`). Simple slopes of the alliance are given at the
moderator's values (0/1 for a binary moderator, mean and +-1 SD for a numeric one; Aiken & West
1991) with Satterthwaite-df tests, and :func:`alliance.plots.simple_slopes` draws them.

References
----------
Aiken, L. S., & West, S. G. (1991). Multiple regression: Testing and interpreting interactions.
Sage.

Preacher, K. J., Curran, P. J., & Bauer, D. J. (2006). Computational tools for probing
interactions in multiple linear regression, multilevel modeling, and latent curve analysis.
Journal of Educational and Behavioral Statistics, 31(4), 437-448.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from alliance.design import as_window, fill_roles
from alliance.models._prep import (
    Exclusions,
    as_long,
    attach_client_columns,
    check_sessions,
    code_moderator,
    standardize,
)
from alliance.models._result import ModelResult, base_fields
from alliance.models.early import early_table, fit_early
from alliance.models.registry import register_model
from alliance.models.within_between import fit_mlm

__all__ = ["ModerationResult", "moderation"]

CITATION = "Aiken & West (1991); Preacher, Curran & Bauer (2006)"


@dataclass
class ModerationResult(ModelResult):
    """Result of :func:`moderation` (a :class:`~alliance.models.ModelResult`).

    Attributes
    ----------
    simple_slopes : pandas.DataFrame
        The focal effect at each moderator value: label, value, estimate, se, df, statistic,
        p, ci_low, ci_high, std_estimate.
    lines : pandas.DataFrame
        Predicted outcome over the focal predictor's range (mean +- 2 SD) at each moderator
        value, other terms at their means, with confidence bands (for
        :func:`alliance.plots.simple_slopes`).
    focal : str
        The focal predictor's term (``alliance_early`` or ``<alliance>_within``).
    moderator : str
        The moderator column.
    outcome_label : str
        The response in words (axis label).
    moderator_coding : dict
        How the moderator was coded: ``at`` (values probed), ``labels``, ``coding``.
    mixed_model : alliance.models.LmmResult or None
        The mixed model fitted (always for ``model="within_between"``; for ``"early"`` with
        a therapist column).
    ols : statsmodels regression result or None
        The least-squares fit of ``model="early"`` without a therapist column.
    table : pandas.DataFrame or None
        ``model="early"``: the client-level data used.
    formula : str
        ``model="within_between"``: the mixed model's formula.
    """

    simple_slopes: pd.DataFrame = field(default_factory=pd.DataFrame)
    lines: pd.DataFrame = field(default_factory=pd.DataFrame)
    focal: str = ""
    moderator: str = ""
    outcome_label: str = ""
    moderator_coding: dict = field(default_factory=dict)
    mixed_model: Any = None
    ols: Any = None
    table: pd.DataFrame | None = None
    formula: str = ""


@register_model(
    name="moderation",
    estimates="change in the early alliance -> outcome effect per unit of a client-level "
    "moderator (by default prior negative therapy)",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist", "prior_negative_therapy"),
    arguments={"prior_negative_therapy": "moderator"},
    focal_term="alliance_early:{prior_negative_therapy}",
)
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
    level: float = 0.95,
    **options,
) -> ModerationResult:
    """The alliance x moderator interaction in the early-alliance or within/between model.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format; for a Study the moderator is taken from ``study.clients``.
    moderator : str, default "prior_negative_therapy"
        A client-level column (one value per client): boolean / two-level (coded 0/1, the
        first level in sorted order, or False, as 0) or numeric (used as given).
    alliance, outcome : str, optional
        Score columns; found from the codebook or conventional names when left out.
    client, session, therapist : str
        Column names.
    model : {"early", "within_between"}
        ``"early"``: ``end ~ baseline + alliance_early * moderator + (1 | therapist)``
        (:func:`~alliance.models.early_alliance`); ``"within_between"``:
        ``y[t+1] ~ (x_within + x_between) * moderator + session + (1 + session | client) +
        (1 | therapist)`` (:func:`~alliance.models.within_between`; ``reverse=True`` makes the
        outcome the focal predictor).
    level : float, default 0.95
        Confidence level of the simple slopes.
    **options
        Passed on to the model: ``early`` (the window, :class:`alliance.design.EarlyWindow`;
        ``k`` is its former name), ``how``, ``adjust_length``, ``covariates`` (early);
        ``lag``, ``detrend``, ``reverse``, ``random_slope``, ``session_slope``, ``covariates``
        (within_between).

    Returns
    -------
    ModerationResult
        ``params`` with the moderator's main effect and the interaction (``<focal>:<moderator>``;
        its ``std_estimate`` is b x SD(focal) x SD(moderator) / SD(outcome)).
        ``.simple_slopes``: the focal effect at each moderator value (label, value,
        estimate, se, df, statistic, p, ci_low, ci_high, std_estimate).
        ``.lines``: predicted outcome over the focal predictor's range (mean +- 2 SD) at
        each moderator value, other terms at their means, with confidence bands, for
        :func:`alliance.plots.simple_slopes`.

    Raises
    ------
    ValueError
        The moderator varies within clients, is constant, has more than two text levels, or
        the model cannot be fitted.

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
    """
    if model not in ("early", "within_between"):
        raise ValueError(f"model must be 'early' or 'within_between', not {model!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}.")
    roles = fill_roles(data, alliance=alliance, outcome=outcome)
    alliance, outcome = roles["alliance"], roles["outcome"]
    if model == "early":
        return _early(
            data, moderator, alliance, outcome, client, session, therapist, level, options
        )
    known = {"lag", "detrend", "reverse", "random_slope", "session_slope", "covariates", "reml"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected options for model='within_between': {unknown}")
    opts = {
        "lag": 1,
        "detrend": True,
        "reverse": False,
        "random_slope": False,
        "session_slope": True,
        "covariates": None,
        "reml": True,
        **options,
    }
    result, used, fit = fit_mlm(
        data,
        alliance,
        outcome,
        client,
        session,
        therapist,
        lagged_outcome=False,
        moderator=moderator,
        **opts,
    )
    coding = result.moderator_coding
    x_col = outcome if opts["reverse"] else alliance
    focal = f"{x_col}_within"
    y_dev = used["y"] - used.groupby("client")["y"].transform("mean")
    sd_x, sd_y = used["x_within"].std(), y_dev.std()
    sd_m = used.drop_duplicates("client")["mod"].std()
    params = result.params.copy()
    inter = params["term"] == f"{focal}:{moderator}"
    params.loc[inter, "std_estimate"] = params.loc[inter, "estimate"] * sd_x * sd_m / sd_y
    cm = used.groupby("client")[["x_between", "y"]].mean()
    inter_b = params["term"] == f"{x_col}_between:{moderator}"
    params.loc[inter_b, "std_estimate"] = (
        params.loc[inter_b, "estimate"] * cm["x_between"].std() * sd_m / cm["y"].std()
    )
    slopes, lines = _probe(
        fit.params["term"].tolist(),
        fit.params["estimate"].to_numpy(),
        fit.cov_params,
        used,
        focal="x_within",
        coding=coding,
        level=level,
        df_of=fit.contrast,
        std=sd_x / sd_y,
    )
    return ModerationResult(
        **base_fields(
            result,
            model=f"moderation by {moderator} ({result.model})",
            params=params,
            citation=f"{result.citation}; {CITATION}",
            notes=list(result.notes),
        ),
        simple_slopes=slopes,
        lines=lines.assign(focal=focal),
        focal=focal,
        moderator=moderator,
        outcome_label=f"{alliance if opts['reverse'] else outcome} at t + {opts['lag']}",
        moderator_coding=coding,
        mixed_model=result.mixed_model,
        formula=result.formula,
    )


def _early(data, moderator, alliance, outcome, client, session, therapist, level, options):
    known = {"early", "k", "how", "adjust_length", "covariates", "reml", "lower_is_better"}
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
        lower_is_better=options.get("lower_is_better", True),
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
