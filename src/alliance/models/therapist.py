"""Therapist and client contributions to the alliance-outcome correlation.

Baldwin, Wampold & Imel (2007) split each client's alliance into the therapist's mean alliance
(over the therapist's clients) and the client's deviation from it, and entered both as
predictors of outcome: therapists whose clients report better alliances have better outcomes,
while a client's standing within the caseload predicts little. The therapist ICCs of alliance
and outcome show how much of each lies between therapists.

References
----------
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
correlation: Exploring the relative importance of therapist and patient variability in the
alliance. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
(2008). The multilevel latent covariate model: A new, more reliable approach to group-level
effects in contextual studies. Psychological Methods, 13(3), 203-229.

Nakagawa, S., Johnson, P. C. D., & Schielzeth, H. (2017). The coefficient of determination R2
and intra-class correlation coefficient from generalized linear mixed-effects models revisited
and expanded. Journal of the Royal Society Interface, 14, 20170213.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from alliance.design import EarlyWindow, as_window, fill_roles
from alliance.models._latent_means import fit_latent_means
from alliance.models._prep import (
    Exclusions,
    as_long,
    check_sessions,
    fit_client_model,
    lmm_params,
    standardize,
)
from alliance.models._result import ModelResult
from alliance.models.early import early_table
from alliance.models.lmm import LmmResult, lmm
from alliance.models.registry import Simulation, per_alliance_point, register_model
from alliance.results import n_by_level

__all__ = ["TherapistResult", "therapist_contributions"]

CITATION = "Baldwin, Wampold & Imel (2007)"
LATENT_CITATION = "Lüdtke, Marsh, Robitzsch, Trautwein, Asparouhov & Muthén (2008)"


@dataclass
class TherapistResult(ModelResult):
    """Result of :func:`therapist_contributions` (a :class:`~alliance.models.ModelResult`).

    Attributes
    ----------
    icc : pandas.DataFrame
        Therapist and client ICCs of alliance and outcome from null models
        ``y ~ 1 + (1 | therapist) + (1 | client)`` on all sessions: variable, level,
        variance, icc.
    difference : pandas.Series
        Therapist minus client effect with its Satterthwaite test (estimate, se, df,
        statistic, p).
    clients : pandas.DataFrame
        One row per client used: client, therapist, alliance_therapist, alliance_client.
    mixed_model : alliance.models.LmmResult or None
        The mixed model fitted (None with latent centring).
    centering : str
        ``"latent"`` (Lüdtke et al. 2008) or ``"observed"`` therapist means.
    latent_fit : object or None
        With latent centring, the two-level fit: ``mu``, ``gamma`` (slopes of end and
        alliance on the baseline), ``sigma_b`` and ``sigma_w`` (therapist and client
        covariance matrices of end and alliance), ``loglik``.
    """

    icc: pd.DataFrame = field(default_factory=pd.DataFrame)
    difference: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    clients: pd.DataFrame = field(default_factory=pd.DataFrame)
    mixed_model: LmmResult | None = None
    centering: str = "observed"
    latent_fit: object | None = None


@register_model(
    name="therapist_contributions",
    estimates="change in the outcome's slope per session per point of the therapist's mean "
    "early alliance (the client's deviation is a separate term)",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="session:alliance_therapist",
    options={"outcome_model": "slope", "centering": "observed"},
    simulate=Simulation(
        effects=("between_therapist",), truth=per_alliance_point("between_therapist")
    ),
)
def therapist_contributions(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str = "therapist",
    *,
    early: int | EarlyWindow | None = 3,
    outcome_model: Literal["slope", "end"] = "end",
    centering: Literal["latent", "observed"] | None = None,
    reml: bool = True,
    k: int | None = None,
) -> ModelResult:
    """Therapist-mean alliance and the client's deviation from it as separate predictors.

    Each client's alliance (its mean over the early window ``early``, or over all rated
    sessions when ``early`` is None) is split into the therapist's mean over their clients
    (``alliance_therapist``) and the client's deviation from it (``alliance_client``), as in
    Baldwin, Wampold & Imel (2007). Two outcome models:

    ``outcome_model="end"`` (default), Baldwin et al.'s design: the outcome at the client's
        last session, which lies after the alliance window (never carried forward), given
        the baseline (the first outcome before the window), one row per client. The
        outcome is measured after the alliance, so the model does not regress the alliance
        on symptom change it may reflect.
    ``outcome_model="slope"``, a growth model on every session,
        ``outcome ~ session * (alliance_therapist + alliance_client) +
        (1 + session | client) + (1 | therapist)``: the ``session:`` terms are the change
        in the outcome's slope per session per alliance point, at the therapist and at the client level. It includes
        the sessions before and during the alliance window (an outcome change that precedes
        the alliance rating counts), so it is not the default.

    The therapist's alliance (``centering``):

    ``"latent"`` (the default with ``outcome_model="end"``): the latent covariate model of
        Lüdtke et al. (2008). End outcome and alliance are split into latent therapist means
        and client deviations (a two-level saturated model, ML, baseline a client-level
        covariate of both), and the therapist effect is
        ``Sigma_B[end, alliance] / Sigma_B[alliance, alliance]``, the client effect the
        same of ``Sigma_W``; delta-method standard errors from the observed information,
        z tests. The observed caseload mean is an unreliable measure of the therapist's
        alliance when caseloads are small (reliability ``n ICC / (1 + (n - 1) ICC)``), and
        the observed-mean slope is biased towards the client slope; the latent model is
        not (``benchmarks/results/therapist_small.md``). Checked against lavaan and nlme
        (``tests/test_latent_means.py``).
    ``"observed"``: the observed caseload means, as Baldwin et al. (2007) fitted them:
        ``end ~ baseline + alliance_therapist + alliance_client + (1 | therapist)`` (REML);
        the only choice for ``outcome_model="slope"``.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session.
    alliance, outcome : str, optional
        Score columns; found from the codebook or conventional names when left out.
    client, session, therapist : str
        Column names; the therapist column is required.
    early : int, EarlyWindow or None, default 3
        The window that defines a client's alliance (:class:`alliance.design.EarlyWindow`;
        an int: the first ``early`` rated sessions, all needed); None for all sessions.
    outcome_model : {"end", "slope"}, default "end"
    centering : {"latent", "observed"}, optional
        Latent (Lüdtke et al. 2008) or observed therapist means; default ``"latent"`` with
        ``outcome_model="end"``, ``"observed"`` with ``"slope"`` (the only one it takes).
    reml : bool, default True
        Observed centring only (the latent model is fitted by ML).
    k : int, optional
        Former name of ``early`` (deprecated).

    Returns
    -------
    TherapistResult
        ``params`` with the therapist and client alliance terms, ``std_estimate`` =
        b x SD(predictor over clients) / SD(outcome) (for the ``session:`` terms the SD of the
        outcome's session-to-session slope is not estimable, so they are standardized by the
        outcome's total SD per session: b x SD(predictor) / SD(outcome)).
        ``.icc``: therapist and client ICCs of alliance and outcome from null models
        ``y ~ 1 + (1 | therapist) + (1 | client)`` on all sessions.
        ``.difference``: therapist minus client effect, with its test (Baldwin et al.
        report the therapist effect larger).

    Notes
    -----
    Missing data: ``"slope"`` uses every observed outcome of the clients with an alliance
    score (REML under missing at random); ``"end"`` one row per client. Clients without the
    ``k`` alliance ratings, and (``"end"``) without a baseline or later outcome, are excluded
    and counted. A therapist with one client has a client deviation of 0.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    >>> fit = alliance.models.therapist_contributions(sessions, alliance="wai", outcome="phq9")
    >>> fit.params["term"].tolist()
    ['baseline', 'alliance_therapist', 'alliance_client']
    >>> fit.centering
    'latent'
    >>> growth = alliance.models.therapist_contributions(
    ...     sessions, alliance="wai", outcome="phq9", outcome_model="slope")
    >>> growth.params["term"].tolist()[-2:]
    ['session:alliance_therapist', 'session:alliance_client']
    >>> fit.icc.columns.tolist()
    ['variable', 'level', 'variance', 'icc']
    """
    if outcome_model not in ("slope", "end"):
        raise ValueError(f"outcome_model must be 'end' or 'slope', not {outcome_model!r}.")
    if centering is None:
        centering = "latent" if outcome_model == "end" else "observed"
    if centering not in ("latent", "observed"):
        raise ValueError(f"centering must be 'latent' or 'observed', not {centering!r}.")
    if centering == "latent" and outcome_model == "slope":
        raise ValueError(
            "centering='latent' needs outcome_model='end' (the latent covariate model is a "
            "client-level model); pass centering='observed' for the growth model."
        )
    window = as_window(early, k=k)
    roles = fill_roles(data, alliance=alliance, outcome=outcome)
    alliance, outcome = roles["alliance"], roles["outcome"]
    if therapist is None:
        raise ValueError(
            "therapist contributions need a therapist column; pass therapist='<column>'."
        )
    frame = as_long(data, client, session, therapist, alliance, outcome)
    frame = check_sessions(frame, session, client)
    for col in (alliance, outcome):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} must be numeric, not {frame[col].dtype}.")
    frame[alliance] = frame[alliance].astype(float)
    frame[outcome] = frame[outcome].astype(float)
    nest = frame.groupby(client)[therapist].nunique()
    if (nest > 1).any():
        raise ValueError(
            f"{int((nest > 1).sum())} clients (e.g. {nest.index[nest > 1][0]!r}) are seen by "
            "more than one therapist; this model needs each client nested in one therapist."
        )
    ex = Exclusions(client)
    miss_t = frame[therapist].isna()
    ex.add("missing therapist", miss_t.to_numpy(), frame, therapist)
    frame = frame[~miss_t].reset_index(drop=True)
    icc = _iccs(frame, alliance, outcome, client, therapist)

    # client alliance: mean of the first k rated sessions (or all)
    a_ok = frame[alliance].notna()
    g = frame[client]
    if window is None:
        in_window = a_ok
        enough = a_ok.groupby(g).transform("any")
        why = f"no {alliance} rating"
    else:
        in_window, enough, why = window.mask(frame, alliance, client, session)
    client_a = frame[alliance].where(in_window).groupby(g).transform("mean")
    per_client = pd.DataFrame(
        {"client": g, "therapist": frame[therapist], "a": client_a}
    ).drop_duplicates("client")
    per_client = per_client[per_client["client"].isin(g[enough])]
    per_client["alliance_therapist"] = per_client.groupby("therapist")["a"].transform("mean")
    per_client["alliance_client"] = per_client["a"] - per_client["alliance_therapist"]
    n_ther = per_client.groupby("therapist")["client"].transform("size")
    single = int((n_ther == 1).sum())

    if outcome_model == "slope":
        ex.add(why, (~enough).to_numpy(), frame, alliance)
        kept = frame[enough.to_numpy()]
        miss_y = kept[outcome].isna()
        ex.add(f"missing {outcome}", miss_y.to_numpy(), kept, outcome)
        kept = kept[~miss_y]
        work = pd.DataFrame(
            {
                "client": kept[client].to_numpy(),
                "therapist": kept[therapist].to_numpy(),
                "session": kept[session].to_numpy(),
                "y": kept[outcome].to_numpy(),
            }
        ).merge(per_client[["client", "alliance_therapist", "alliance_client"]], on="client")
        formula = (
            "y ~ session * (alliance_therapist + alliance_client) + (1 + session | client)"
            " + (1 | therapist)"
        )
        try:
            fit = lmm(formula, work, reml=reml)
        except ValueError as err:
            raise ValueError(f"therapist_contributions could not fit {formula!r}: {err}") from err
        sd_t = per_client["alliance_therapist"].std()
        sd_c = per_client["alliance_client"].std()
        sd_y = work["y"].std()
        std = {
            "alliance_therapist": standardize(1.0, sd_t, sd_y),
            "alliance_client": standardize(1.0, sd_c, sd_y),
            "session:alliance_therapist": standardize(1.0, sd_t, sd_y),
            "session:alliance_client": standardize(1.0, sd_c, sd_y),
            session: standardize(1.0, work["session"].std(), sd_y),
        }
        params = lmm_params(fit, {"session": session}, {k_: float(v) for k_, v in std.items()})
        vc, loglik, nobs = fit.variance_components, fit.loglik, fit.nobs
        counts = n_by_level(work, clients="client", sessions="client", therapists="therapist")
        t_term, c_term = "session:alliance_therapist", "session:alliance_client"
        missing = (
            "every observed outcome of the clients with an alliance score, REML under missing "
            "at random (dropouts and missed sessions keep their observed sessions)."
        )
    else:
        table = (
            early_table(frame, alliance, outcome, client, session, k=window, how="mean", ex=ex)
            if window is not None
            else _all_sessions_table(frame, alliance, outcome, client, session, ex)
        )
        table = table.merge(
            per_client[["client", "therapist", "alliance_therapist", "alliance_client"]],
            left_on=client,
            right_on="client",
            how="inner",
            suffixes=("", "_"),
        )
        if centering == "latent":
            return _latent_result(table, outcome, ex, icc, per_client, frame, client, single)
        params, vc, loglik, fit = fit_client_model(
            table,
            "end",
            ["baseline", "alliance_therapist", "alliance_client"],
            "therapist",
            reml=reml,
            what="therapist-contribution model",
        )
        sd_y = table["end"].std()
        std = {
            "baseline": standardize(1.0, table["baseline"].std(), sd_y),
            "alliance_therapist": standardize(1.0, table["alliance_therapist"].std(), sd_y),
            "alliance_client": standardize(1.0, table["alliance_client"].std(), sd_y),
        }
        params["std_estimate"] = params["estimate"] * params["term"].map(std).astype(float)
        nobs = len(table)
        counts = n_by_level(table, clients="client", therapists="therapist")
        counts["sessions"] = int(frame[client].isin(table["client"]).sum())
        t_term, c_term = "alliance_therapist", "alliance_client"
        missing = (
            "client-level model, one row per client (end = last observed outcome after the "
            "alliance window); clients without it are excluded (counted)."
        )

    w = np.zeros(len(params))
    terms = params["term"].tolist()
    w[terms.index(t_term)] = 1.0
    w[terms.index(c_term)] = -1.0
    if hasattr(fit, "contrast"):
        diff = fit.contrast(w)
    else:  # pragma: no cover - a therapist column always gives an lmm
        diff = pd.Series(dtype=float)
    notes = []
    if single:
        notes.append(
            f"{single} therapists have a single client: their client deviation is 0 and they "
            "inform the therapist effect only."
        )
    if getattr(fit, "singular", False):
        notes.append("Singular fit: a random-effect variance is at zero or a correlation at +-1.")
    return TherapistResult(
        model=f"therapist vs client alliance -> {outcome} ({outcome_model})",
        params=params,
        variance_components=vc,
        loglik=loglik,
        nobs=nobs,
        excluded=ex.frame(),
        missing_data=missing,
        citation=CITATION,
        notes=notes,
        standardization="b x SD(predictor over clients) / SD(outcome)",
        n_by_level=counts,
        aic=fit.aic,
        bic=fit.bic,
        converged=fit.converged,
        singular=fit.singular,
        icc=icc,
        difference=diff.rename(f"{t_term} - {c_term}"),
        clients=per_client.reset_index(drop=True),
        mixed_model=fit,
        centering="observed",
    )


def _latent_result(table, outcome, ex, icc, per_client, frame, client, single):
    """The latent covariate model (Lüdtke et al. 2008) of end outcome and alliance."""
    table = table.dropna(subset=["end", "baseline"])
    a = (table["alliance_therapist"] + table["alliance_client"]).to_numpy(dtype=float)
    y = np.column_stack([table["end"].to_numpy(dtype=float), a])
    try:
        lf = fit_latent_means(y, table["therapist"].to_numpy(), table[["baseline"]].to_numpy())
    except ValueError as err:
        raise ValueError(
            f"the latent therapist-mean model cannot be fitted: {err} Pass "
            "centering='observed' for observed therapist means."
        ) from err

    def paths(mu, gamma, sw, sb):
        b_t = sb[0, 1] / sb[1, 1]
        b_c = sw[0, 1] / sw[1, 1]
        return np.array([gamma[0, 0], b_t, b_c, b_t - b_c])

    est, cov = lf.delta(paths)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    se = np.where(np.isfinite(se) & (se > 0), se, np.nan)
    z = est / se
    p = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(0.975)
    sd_y = table["end"].std()
    std = [
        table["baseline"].std() / sd_y,
        np.sqrt(max(lf.sigma_b[1, 1], 0.0)) / sd_y,
        np.sqrt(max(lf.sigma_w[1, 1], 0.0)) / sd_y,
    ]
    terms = ["baseline", "alliance_therapist", "alliance_client"]
    params = pd.DataFrame(
        {
            "term": terms,
            "estimate": est[:3],
            "se": se[:3],
            "df": np.inf,
            "statistic": z[:3],
            "p": p[:3],
            "ci_low": est[:3] - q * se[:3],
            "ci_high": est[:3] + q * se[:3],
            "std_estimate": est[:3] * np.asarray(std),
        }
    )
    diff = pd.Series(
        {"estimate": est[3], "se": se[3], "df": np.inf, "statistic": z[3], "p": p[3]},
        name="alliance_therapist - alliance_client",
    )
    names = [outcome, "alliance"]
    vc_rows = []
    for group, m in (("therapist", lf.sigma_b), ("client (residual)", lf.sigma_w)):
        for i in range(2):
            for j in range(i, 2):
                vc_rows.append(
                    {
                        "group": group,
                        "term": names[i],
                        "term2": None if i == j else names[j],
                        "vcov": m[i, j],
                        "sdcor": np.sqrt(max(m[i, i], 0.0))
                        if i == j
                        else m[i, j] / np.sqrt(m[i, i] * m[j, j])
                        if m[i, i] > 0 and m[j, j] > 0
                        else np.nan,
                    }
                )
    n_par = len(lf.theta)
    notes = [
        "Therapist means are latent (Lüdtke et al. 2008): the therapist effect is the slope "
        "of the therapists' latent mean end outcome on their latent mean alliance, both "
        "adjusted for the baseline; observed caseload means (centering='observed') are "
        "unreliable with small caseloads and bias the therapist effect towards the client "
        "effect."
    ]
    converged = bool(lf.converged)
    eig = np.linalg.eigvalsh(lf.sigma_b)
    if eig.min() < -1e-8 * max(1.0, abs(eig).max()) or lf.sigma_b[1, 1] <= 0:
        converged = False
        notes.append(
            "Improper solution: the therapist covariance matrix of end outcome and alliance "
            f"is not positive semi-definite (therapist variances {lf.sigma_b[0, 0]:.3g} and "
            f"{lf.sigma_b[1, 1]:.3g}), so the standard errors and p-values are not "
            "interpretable; converged is set to False. Use centering='observed' or more "
            "therapists."
        )
    elif lf.singular:
        notes.append(
            "Singular fit: the therapist covariance matrix of end outcome and alliance is at "
            "the boundary (a therapist variance near zero or a correlation near +-1)."
        )
    if single:
        notes.append(
            f"{single} therapists have a single client: they inform the therapist means and "
            "the latent model uses them (no client deviation of 0 is imputed)."
        )
    counts = n_by_level(table, clients="client", therapists="therapist")
    counts["sessions"] = int(frame[client].isin(table["client"]).sum())
    return TherapistResult(
        model=f"therapist vs client alliance -> {outcome} (end, latent therapist means)",
        params=params,
        variance_components=pd.DataFrame(vc_rows),
        loglik=float(lf.loglik),
        nobs=len(table),
        excluded=ex.frame(),
        missing_data=(
            "client-level model, one row per client (end = the outcome at the client's last "
            "session, after the alliance window, not carried forward); clients without it or "
            "without a baseline are excluded (counted). ML, complete rows."
        ),
        citation=f"{CITATION}; {LATENT_CITATION}",
        notes=notes,
        standardization=(
            "b x SD(predictor) / SD(end): the therapist effect by the latent therapist SD of "
            "the alliance, the client effect by the within-therapist SD"
        ),
        n_by_level=counts,
        aic=float(-2 * lf.loglik + 2 * n_par),
        bic=float(-2 * lf.loglik + np.log(len(table)) * n_par),
        converged=converged,
        singular=bool(lf.singular),
        icc=icc,
        difference=diff,
        clients=per_client.reset_index(drop=True),
        mixed_model=None,
        centering="latent",
        latent_fit=lf,
    )


def _all_sessions_table(frame, alliance, outcome, client, session, ex) -> pd.DataFrame:
    """Baseline = first outcome, end = last outcome (k=None for the end model)."""
    y_ok = frame[outcome].notna()
    obs = frame[y_ok]
    n_obs = y_ok.groupby(frame[client]).transform("sum")
    bad = n_obs < 2
    ex.add(f"fewer than two {outcome} scores", bad.to_numpy(), frame, outcome)
    obs = obs[~bad[y_ok]]
    g = obs.groupby(client)
    return pd.DataFrame({"baseline": g[outcome].first(), "end": g[outcome].last()}).reset_index()


def _iccs(frame, alliance, outcome, client, therapist) -> pd.DataFrame:
    """Therapist and client ICCs of alliance and outcome from null models on all sessions."""
    rows = []
    for var in dict.fromkeys([alliance, outcome]):
        work = pd.DataFrame(
            {
                "y": frame[var].to_numpy(),
                "client": frame[client].to_numpy(),
                "therapist": frame[therapist].to_numpy(),
            }
        ).dropna()
        try:
            fit = lmm("y ~ 1 + (1 | therapist) + (1 | client)", work)
        except ValueError:
            continue
        icc = fit.icc.assign(variable=var)
        rows.append(icc.rename(columns={"group": "level"}))
    if not rows:
        return pd.DataFrame(columns=["variable", "level", "variance", "icc"])
    return pd.concat(rows, ignore_index=True)[["variable", "level", "variance", "icc"]]
