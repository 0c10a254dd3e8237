"""Technique -> alliance -> outcome: 1-1-1 multilevel mediation, within and between kept apart.

A session-level technique count (e.g. reflections or paraphrases, Kadushin & Kadushin 2013)
predicts the session's alliance (path a), which predicts the outcome at the next session
(path b). Predictor and mediator are split into within-client and between-client parts
(Zhang, Zyphur & Preacher 2009), so the within-client and between-client indirect effects are
estimated separately instead of being conflated (Krull & MacKinnon 2001; Preacher, Zyphur &
Zhang 2010). Both paths are fitted in one stacked mixed model (Bauer, Preacher & Gil 2006)
with client-specific a and b paths that covary and a residual variance per equation, so that
the within-client indirect effect is the average of the clients' products, ``a b + cov(a_j,
b_j)`` (Kenny, Korchmaros & Bolger 2003). Path b adjusts for the outcome at the mediator's
session (within-client part), which removes the same-session confound and leaves a Nickell
(1981) bias that the notes quantify. Confidence intervals for the indirect effects come from
the Monte Carlo method (Preacher & Selig 2012) and, optionally, a cluster bootstrap that
resamples therapists (clients when there is no therapist column) with all their sessions
(Field & Welsh 2007).

References
----------
Bauer, D. J., Preacher, K. J., & Gil, K. M. (2006). Conceptualizing and testing random
indirect effects and moderated mediation in multilevel models: New procedures and
recommendations. Psychological Methods, 11(2), 142-163.

Field, C. A., & Welsh, A. H. (2007). Bootstrapping clustered data. Journal of the Royal
Statistical Society B, 69(3), 369-390.

Kenny, D. A., Korchmaros, J. D., & Bolger, N. (2003). Lower level mediation in multilevel
models. Psychological Methods, 8(2), 115-128.

Krull, J. L., & MacKinnon, D. P. (2001). Multilevel modeling of individual and group level
mediated effects. Multivariate Behavioral Research, 36(2), 249-277.

Nickell, S. (1981). Biases in dynamic models with fixed effects. Econometrica, 49(6),
1417-1426.

Preacher, K. J., & Selig, J. P. (2012). Advantages of Monte Carlo confidence intervals for
indirect effects. Communication Methods and Measures, 6(2), 77-98.

Preacher, K. J., Zyphur, M. J., & Zhang, Z. (2010). A general multilevel SEM framework for
assessing multilevel mediation. Psychological Methods, 15(3), 209-233.

Zhang, Z., Zyphur, M. J., & Preacher, K. J. (2009). Testing multilevel mediation using
hierarchical linear models: Problems and solutions. Organizational Research Methods, 12(4),
695-719.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from alliance.design import from_study_roles
from alliance.models._lmm_varident import random_covariance_vcov
from alliance.models._prep import (
    Exclusions,
    as_long,
    check_sessions,
    decompose,
    lead,
    standardize,
)
from alliance.models._result import ModelResult
from alliance.models.lmm import LmmResult, lmm
from alliance.models.registry import register_model
from alliance.results import n_by_level

__all__ = ["MediationResult", "mediation"]

CITATION = (
    "Bauer, Preacher & Gil (2006); Kenny, Korchmaros & Bolger (2003); Zhang, Zyphur & "
    "Preacher (2009); Krull & MacKinnon (2001); Preacher & Selig (2012); Field & Welsh (2007)"
)


@dataclass
class MediationResult(ModelResult):
    """Result of :func:`mediation` (a :class:`~alliance.models.ModelResult`).

    ``loglik`` is the stacked model's REML log-likelihood; ``nobs`` the rows of path b.

    Attributes
    ----------
    stacked : alliance.models.LmmResult
        The stacked mixed model of both paths (Bauer, Preacher & Gil 2006): terms ``a_*`` of
        the alliance equation, ``b_*`` of the outcome equation, ``residual_ratios`` by
        equation (``dv``).
    path_a, path_b : alliance.models.LmmResult
        Both the stacked model, which holds both paths (kept for code written for separate
        models of the paths).
    boot : pandas.DataFrame or None
        The cluster-bootstrap draws of the paths and indirect effects (None when
        ``n_boot=0``).
    n_boot_failed : int
        Bootstrap draws that could not be fitted or failed the gradient test (left out).
    """

    path_a: LmmResult | None = None
    path_b: LmmResult | None = None
    stacked: LmmResult | None = None
    boot: pd.DataFrame | None = None
    n_boot_failed: int = 0

    @property
    def indirect(self) -> pd.DataFrame:
        """The indirect effects (within and between), the ``indirect_*`` rows of ``params``."""
        rows = self.params["term"].astype(str).str.startswith("indirect_")
        return self.params[rows].reset_index(drop=True)


@register_model(
    name="mediation",
    estimates="within-client indirect effect of a technique at t on the outcome at t + 1 "
    "through the alliance at t (1-1-1 mediation, random a and b paths)",
    citation=CITATION,
    roles=("technique", "alliance", "outcome", "client", "session", "therapist"),
    focal_term="indirect_within",
)
@from_study_roles
def mediation(
    data,
    technique: str = "reflection",
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    lag: int = 1,
    detrend: bool = True,
    random_paths: bool = True,
    adjust_outcome: bool = True,
    n_boot: int = 0,
    n_mc: int = 20000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> MediationResult:
    """Session-level (1-1-1) mediation: technique at t -> alliance at t -> outcome at t + lag.

    Both paths are fitted in one stacked mixed model (Bauer, Preacher & Gil 2006): each
    session contributes an alliance row (path a) and, when the outcome at t + lag is observed,
    an outcome row (path b), with an indicator of the row's equation, equation-specific fixed
    effects, correlated client random effects of both equations and an own residual variance
    per equation (:func:`alliance.models.lmm` with ``residual_groups=``, nlme's ``varIdent``).

    Path a: ``alliance[t] ~ tech_within + tech_between + session``. Path b:
    ``outcome[t+lag] ~ alliance_within + alliance_between + tech_within + tech_between +
    outcome_within[t] + session``, ``outcome_within[t]`` the outcome at the mediator's session
    centred on the client's mean (or trend); its client mean is not a predictor (it contains
    the outcomes being predicted, and would take the place of the client intercept). Client random effects: the intercepts of
    both equations, the within a path and the within b path, all correlated (a 4 x 4
    covariance); with a therapist column, therapist intercepts of both equations. Within
    parts are deviations from the client's own linear session trend (``detrend=True``, Wang &
    Maxwell 2015) or mean; between parts are client means (Zhang, Zyphur & Preacher 2009).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session.
    technique : str, default "reflection"
        Session-level technique count (the predictor).
    alliance, outcome, client, session, therapist : str
        Column names (alliance is the mediator).
        therapist: Left out for a Study, the therapist column of its design
        (codebook ``role``) is used and a note says so; ``False`` fits without one.
    lag : int, default 1
        Sessions from mediator to outcome, by session number.
    detrend : bool, default True
        Detrend technique, alliance and the outcome at t before centring.
    random_paths : bool, default True
        Client-specific a and b paths: the within indirect effect is then the average of
        the clients' products, ``a b + cov(a_j, b_j)`` (Kenny, Korchmaros & Bolger 2003).
        ``False`` fixes both paths (random intercepts only) and the indirect effect is
        ``a b``, which is biased when the paths covary.
    adjust_outcome : bool, default True
        Path b adjusts for the outcome at the mediator's session t (its within-client
        part). Without it, a same-session correlation of alliance and outcome with an
        autocorrelated outcome confounds b (issue 16); ``False`` reproduces that model.
    n_boot : int, default 0
        Cluster-bootstrap draws (therapists resampled, or clients without a therapist
        column), each refitting the stacked model; 0: Monte Carlo intervals only.
    n_mc : int, default 20000
        Monte Carlo draws for the Monte Carlo intervals.
    level : float, default 0.95
    seed : int or numpy.random.Generator, optional
        Same seed, same intervals.

    Returns
    -------
    MediationResult
        ``params`` rows ``a_within``, ``a_between``, ``b_within``, ``b_between``,
        ``direct_within``, ``direct_between``, ``ab_within`` (the product of the fixed
        paths), ``cov_ab_within`` (the covariance of the clients' a and b paths; 0 with
        ``random_paths=False``), ``indirect_within`` (``ab_within + cov_ab_within``),
        ``indirect_between``. For the indirect effects ``se`` and ``ci_low``/``ci_high``
        are Monte Carlo (Preacher & Selig 2012), or from the cluster bootstrap (percentile)
        when ``n_boot > 0``; ``mc_ci_low``/``mc_ci_high`` always give the Monte Carlo
        interval. ``std_estimate``: a and b standardized by the SDs at their level, the
        indirect effects (without the covariance) as the product of the standardized a and
        b. ``.indirect``: the two indirect-effect rows; ``.stacked`` the stacked model (also
        ``.path_a`` and ``.path_b``); ``.boot``, ``.n_boot_failed``.

    Notes
    -----
    The Monte Carlo draws take the fixed a and b paths jointly normal with the stacked
    model's covariance of the fixed effects (the two equations share random effects, so the
    estimates correlate) and ``cov(a_j, b_j)`` normal with its asymptotic variance (the
    delta method on the inverse Hessian of the REML deviance, the residual SD ratio
    included), independent of the fixed effects (asymptotically so under (RE)ML). Adjusting
    for the outcome at t in a model with client effects leaves a Nickell (1981) bias of about
    ``-(1 + rho)/(T - 1)`` in the outcome's own within-client coefficient ``rho`` with ``T``
    sessions per client; it reaches b only through the within-client correlation of the
    alliance with the outcome at t (stated in ``.notes`` for the clients' numbers of
    sessions). Missing data: every session with technique and alliance observed enters path
    a, every complete (t, t + lag) pair path b, by REML under missing at random; the rows
    each path leaves out are counted in ``.excluded`` (reasons prefixed ``a:``/``b:``).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    >>> fit = alliance.models.mediation(sessions, "reflection", alliance="wai", outcome="phq9",
    ...                                 therapist="therapist", n_mc=2000, seed=1)
    >>> fit.params["term"].tolist()[-4:]
    ['ab_within', 'cov_ab_within', 'indirect_within', 'indirect_between']
    >>> bool(fit.params.set_index("term").loc["a_within", "estimate"] > 0)
    True
    >>> fit.stacked.residual_ratios.index.tolist()
    ['alliance', 'outcome']
    """
    if not isinstance(lag, int | np.integer) or isinstance(lag, bool) or lag < 1:
        raise ValueError(f"lag must be a whole number of sessions >= 1, not {lag!r}.")
    if not isinstance(n_boot, int | np.integer) or isinstance(n_boot, bool) or n_boot < 0:
        raise ValueError(f"n_boot must be a whole number >= 0, not {n_boot!r}.")
    if not isinstance(n_mc, int | np.integer) or isinstance(n_mc, bool) or n_mc < 100:
        raise ValueError(f"n_mc must be a whole number >= 100, not {n_mc!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    frame = as_long(data, client, session, therapist, technique, alliance, outcome)
    frame = check_sessions(frame, session, client)
    for col in (technique, alliance, outcome):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} must be numeric, not {frame[col].dtype}.")
        frame[col] = frame[col].astype(float)
    xd = decompose(frame, technique, client, session, detrend=detrend)
    md = decompose(frame, alliance, client, session, detrend=detrend)
    yd = decompose(frame, outcome, client, session, detrend=detrend)
    work = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": frame[session].to_numpy(),
            "m": frame[alliance].to_numpy(),
            "x_w": xd["within"].to_numpy(),
            "x_b": xd["between"].to_numpy(),
            "m_w": md["within"].to_numpy(),
            "m_b": md["between"].to_numpy(),
            "y_w": yd["within"].to_numpy(),
            "y_now": frame[outcome].to_numpy(),
            "y": lead(frame, outcome, client, session, lag).to_numpy(),
        }
    )
    work["therapist"] = frame[therapist].to_numpy() if therapist is not None else "all"

    ex = Exclusions("client")
    miss_t = work["therapist"].isna().to_numpy()
    ex.add("missing therapist", miss_t, work, therapist)
    ok_a = ~miss_t
    for reason, mask, col in [
        (f"a: missing {technique}", work["x_w"].isna().to_numpy(), technique),
        (f"a: missing {alliance}", work["m"].isna().to_numpy(), alliance),
    ]:
        hit = ok_a & mask
        ex.add(reason, hit, work, col)
        ok_a &= ~hit
    last = frame.groupby(client)[session].transform("max").to_numpy()
    ok_b = ok_a.copy()
    rules = [
        (
            f"b: no session t + {lag} (last session of the client)",
            work["session"] + lag > last,
            session,
        ),
        (f"b: session t + {lag} missed or {outcome} missing there", work["y"].isna(), outcome),
    ]
    if adjust_outcome:
        rules.append(
            (f"b: {outcome} missing at t (the mediator's session)", work["y_now"].isna(), outcome)
        )
    for reason, mask, col in rules:
        hit = ok_b & np.asarray(mask, dtype=bool)
        ex.add(reason, hit, work, col)
        ok_b &= ~hit
    if ok_b.sum() < 10 or work.loc[ok_b, "client"].nunique() < 3:
        raise ValueError(
            f"the mediation model cannot be fitted: {int(ok_b.sum())} complete (t, t + {lag}) "
            f"pairs from {work.loc[ok_b, 'client'].nunique()} clients; it needs clients with "
            f"sessions {lag} apart with {technique}, {alliance} and {outcome} observed (see "
            "the exclusion counts in the error's data, or use a smaller lag)."
        )
    data_a = work[ok_a].reset_index(drop=True)
    data_b = work[ok_b].reset_index(drop=True)
    stacked = _stack(data_a, data_b, adjust_outcome)
    formula = _stacked_formula(therapist is not None, random_paths, adjust_outcome)
    try:
        fit = lmm(formula, stacked, residual_groups="dv")
    except ValueError as err:
        raise ValueError(f"the mediation model cannot be fitted: {err}") from err

    est = _paths(fit, random_paths)
    alpha = (1 - level) / 2
    mc = _monte_carlo(fit, est, random_paths, n_mc, rng, alpha)
    boot, n_failed = _cluster_bootstrap(
        stacked, formula, fit, n_boot, rng, random_paths, by_therapist=therapist
    )

    # standardization at each level
    sd = {
        "x_w": data_a["x_w"].std(),
        "m_w_a": (data_a["m"] - data_a.groupby("client")["m"].transform("mean")).std(),
        "x_b": data_a.groupby("client")["x_b"].first().std(),
        "m_b_a": data_a.groupby("client")["m"].mean().std(),
        "m_w": data_b["m_w"].std(),
        "y_w": (data_b["y"] - data_b.groupby("client")["y"].transform("mean")).std(),
        "m_b": data_b.groupby("client")["m_b"].first().std(),
        "y_b": data_b.groupby("client")["y"].mean().std(),
        "x_w_b": data_b["x_w"].std(),
        "x_b_b": data_b.groupby("client")["x_b"].first().std(),
    }
    std = {
        "a_within": standardize(1.0, sd["x_w"], sd["m_w_a"]),
        "a_between": standardize(1.0, sd["x_b"], sd["m_b_a"]),
        "b_within": standardize(1.0, sd["m_w"], sd["y_w"]),
        "b_between": standardize(1.0, sd["m_b"], sd["y_b"]),
        "direct_within": standardize(1.0, sd["x_w_b"], sd["y_w"]),
        "direct_between": standardize(1.0, sd["x_b_b"], sd["y_b"]),
    }
    table = fit.params.set_index("term")
    rows = []
    for name, term in _TERMS.items():
        r = table.loc[term]
        rows.append({"term": name, **r.to_dict(), "std_estimate": r["estimate"] * float(std[name])})
    z = float(stats.norm.ppf(1 - alpha))
    for name in ("ab_within", "cov_ab_within"):
        value, se = est[name], mc[name][0]
        rows.append(
            {
                "term": name,
                "estimate": value,
                "se": se,
                "df": np.nan,
                "statistic": value / se if se > 0 else np.nan,
                "p": 2 * stats.norm.sf(abs(value / se)) if se > 0 else np.nan,
                "ci_low": mc[name][1] if name == "ab_within" else value - z * se,
                "ci_high": mc[name][2] if name == "ab_within" else value + z * se,
                "std_estimate": np.nan,
            }
        )
    for part in ("within", "between"):
        value = est[f"indirect_{part}"]
        mc_sd, mc_lo, mc_hi = mc[f"indirect_{part}"]
        if boot is not None and np.isfinite(boot[f"indirect_{part}"]).sum() > 1:
            draws = boot[f"indirect_{part}"].dropna()
            se, lo, hi = float(draws.std(ddof=1)), *np.quantile(draws, [alpha, 1 - alpha])
        else:
            se, lo, hi = mc_sd, mc_lo, mc_hi
        rows.append(
            {
                "term": f"indirect_{part}",
                "estimate": value,
                "se": se,
                "df": np.nan,
                "statistic": value / se if se > 0 else np.nan,
                "p": np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "std_estimate": float(std[f"a_{part}"] * est[f"a_{part}"])
                * float(std[f"b_{part}"] * est[f"b_{part}"]),
                "mc_ci_low": mc_lo,
                "mc_ci_high": mc_hi,
            }
        )
    params = pd.DataFrame(rows)
    notes = [
        f"paths: a = {technique} -> {alliance} (same session); b = {alliance} -> {outcome} at "
        f"t + {lag}; both in one stacked mixed model (Bauer, Preacher & Gil 2006) with a "
        f"residual SD per equation ({outcome}/{alliance} ratio "
        f"{float(fit.residual_ratios.iloc[1]):.3g}).",
        (
            "indirect_within = a x b + cov(a_j, b_j), the average of the clients' products "
            "(Kenny, Korchmaros & Bolger 2003); indirect_between = a x b of the client means."
            if random_paths
            else "fixed a and b paths (random_paths=False): indirect = a x b, biased when the "
            "clients' a and b paths covary (Kenny, Korchmaros & Bolger 2003)."
        ),
        "indirect-effect CIs: "
        + (
            f"cluster bootstrap, {n_boot} draws resampling "
            f"{'therapists' if therapist else 'clients'} (percentile)"
            if boot is not None
            else "Monte Carlo"
        )
        + f"; Monte Carlo intervals in mc_ci_low / mc_ci_high ({n_mc} draws): a and b drawn "
        "jointly from the stacked model's covariance of the fixed effects, cov(a_j, b_j) from "
        "its asymptotic variance, independent of them.",
    ]
    pairs = data_b.groupby("client").size()
    if adjust_outcome:
        t_med = float(pairs.median())
        rho = float(table.loc["b_yw", "estimate"])
        bias = -(1 + rho) / (t_med - 1) if t_med > 1 else np.nan
        notes.append(
            f"path b adjusts for {outcome} at the mediator's session (its within-client "
            f"part). Residual Nickell (1981) bias: with a median of {t_med:g} pairs per "
            f"client (range {int(pairs.min())}-{int(pairs.max())}) the within-client "
            f"coefficient of {outcome} at t ({rho:.3f}) is biased by about -(1 + rho)/(T - 1) "
            f"= {bias:.3f}"
            + (" or more with detrending" if detrend else "")
            + f"; b inherits a part of it through the within-client correlation of {alliance} "
            f"and {outcome} at t."
        )
    else:
        notes.append(
            f"path b does not adjust for {outcome} at the mediator's session "
            "(adjust_outcome=False): a same-session correlation of "
            f"{alliance} and {outcome} with autocorrelated symptoms confounds b (issue 16)."
        )
    if n_failed:
        notes.append(
            f"{n_failed} bootstrap draws could not be fitted or did not converge and were left out."
        )
    if fit.singular:
        notes.append(
            "singular fit: a random-effect variance at zero or a correlation at +-1; "
            "cov(a_j, b_j) and its SE are then at a boundary (consider random_paths=False)."
        )
    return MediationResult(
        model=f"mediation: {technique} -> {alliance} -> next {outcome} (1-1-1, stacked)",
        params=params,
        variance_components=fit.variance_components,
        loglik=float(fit.loglik),
        nobs=int(len(data_b)),
        excluded=ex.frame(),
        missing_data=(
            "all available sessions, REML under missing at random: path a every session with "
            "technique and alliance observed, path b every complete (t, t + lag) pair; "
            "the rows each path leaves out are counted in .excluded."
        ),
        citation=CITATION,
        notes=notes,
        standardization=(
            "within paths by the SDs of the within parts (predictor) and of deviations from "
            "the client mean (response); between paths by SDs of client means; indirect = "
            "product of standardized a and b"
        ),
        n_by_level=n_by_level(
            data_b,
            clients="client",
            sessions="client",
            therapists="therapist" if therapist is not None else None,
        ),
        converged=bool(fit.converged),
        singular=bool(fit.singular),
        path_a=fit,
        path_b=fit,
        stacked=fit,
        boot=boot,
        n_boot_failed=n_failed,
    )


# result term -> stacked-model term
_TERMS = {
    "a_within": "a_xw",
    "a_between": "a_xb",
    "b_within": "b_mw",
    "b_between": "b_mb",
    "direct_within": "b_xw",
    "direct_between": "b_xb",
}


def _stack(data_a: pd.DataFrame, data_b: pd.DataFrame, adjust_outcome: bool) -> pd.DataFrame:
    """One row per equation and session: the alliance rows, then the outcome rows."""
    na, nb = len(data_a), len(data_b)
    s_m = np.r_[np.ones(na), np.zeros(nb)]
    s_y = 1.0 - s_m

    def col(name):
        return np.r_[data_a[name].to_numpy(float), data_b[name].to_numpy(float)]

    out = pd.DataFrame(
        {
            "z": np.r_[data_a["m"].to_numpy(float), data_b["y"].to_numpy(float)],
            "dv": np.r_[np.repeat("alliance", na), np.repeat("outcome", nb)],
            "client": np.r_[data_a["client"].to_numpy(), data_b["client"].to_numpy()],
            "therapist": np.r_[data_a["therapist"].to_numpy(), data_b["therapist"].to_numpy()],
            "s_m": s_m,
            "s_y": s_y,
        }
    )
    session = col("session")
    out["a_xw"] = s_m * col("x_w")
    out["a_xb"] = s_m * col("x_b")
    out["a_session"] = s_m * session
    out["b_mw"] = s_y * col("m_w")
    out["b_mb"] = s_y * col("m_b")
    out["b_xw"] = s_y * col("x_w")
    out["b_xb"] = s_y * col("x_b")
    if adjust_outcome:
        out["b_yw"] = s_y * col("y_w")
    out["b_session"] = s_y * session
    return out


def _stacked_formula(by_therapist: bool, random_paths: bool, adjust_outcome: bool) -> str:
    fixed = "s_m + a_xw + a_xb + a_session + s_y + b_mw + b_mb + b_xw + b_xb"
    if adjust_outcome:
        fixed += " + b_yw"
    fixed += " + b_session"
    # equation intercepts uncorrelated: with the client means among the fixed effects, the
    # covariance of the two intercepts and the between b path carry the same information (a
    # ridge in the likelihood); the a and b paths correlated (Kenny, Korchmaros & Bolger 2003)
    formula = f"z ~ 0 + {fixed} + (0 + s_m | client) + (0 + s_y | client)"
    if random_paths:
        formula += " + (0 + a_xw + b_mw | client)"
    if by_therapist:
        formula += " + (0 + s_m | therapist) + (0 + s_y | therapist)"
    return formula


def _paths(fit, random_paths: bool) -> dict[str, float]:
    b = fit.params.set_index("term")["estimate"]
    out = {
        "a_within": float(b["a_xw"]),
        "a_between": float(b["a_xb"]),
        "b_within": float(b["b_mw"]),
        "b_between": float(b["b_mb"]),
    }
    cov = float(fit.covariances["client"].loc["a_xw", "b_mw"]) if random_paths else 0.0
    out["ab_within"] = out["a_within"] * out["b_within"]
    out["cov_ab_within"] = cov
    out["indirect_within"] = out["ab_within"] + cov
    out["indirect_between"] = out["a_between"] * out["b_between"]
    return out


def _monte_carlo(fit, est, random_paths, n_mc, rng, alpha) -> dict[str, tuple[float, ...]]:
    """MC draws: fixed paths jointly normal; cov(a_j, b_j) normal with its asymptotic SE."""
    terms = ["a_xw", "b_mw", "a_xb", "b_mb"]
    beta = fit.params.set_index("term").loc[terms, "estimate"].to_numpy()
    vcov = fit.cov_params.loc[terms, terms].to_numpy()
    draws = rng.multivariate_normal(beta, vcov, n_mc, method="eigh")
    if random_paths:
        _, var = random_covariance_vcov(fit, [("client", "a_xw", "b_mw")])
        cov_se = float(np.sqrt(max(var[0, 0], 0.0)))
    else:
        cov_se = 0.0
    cov_draws = est["cov_ab_within"] + cov_se * rng.standard_normal(n_mc)
    ab = draws[:, 0] * draws[:, 1]
    series = {
        "ab_within": ab,
        "indirect_within": ab + cov_draws,
        "indirect_between": draws[:, 2] * draws[:, 3],
    }
    out = {
        k: (float(v.std(ddof=1)), *np.quantile(v, [alpha, 1 - alpha])) for k, v in series.items()
    }
    out["cov_ab_within"] = (cov_se, np.nan, np.nan)
    return out


@contextmanager
def _quiet(logger: logging.Logger):
    """Silence a logger's warnings (bootstrap refits report non-convergence in the result)."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _cluster_bootstrap(stacked, formula, fit, n_boot, rng, random_paths, *, by_therapist):
    """Resample clusters (therapists, else clients) with replacement; refit the stacked model."""
    if n_boot == 0:
        return None, 0
    key = "therapist" if by_therapist is not None else "client"
    rows = stacked.reset_index(drop=True)
    codes, uniq = pd.factorize(rows[key])
    client_codes = pd.factorize(rows["client"])[0]
    order = np.argsort(codes, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(uniq)))]
    n_cl = len(uniq)
    n_clients = client_codes.max() + 1
    out = []
    failed = 0
    for _ in range(n_boot):
        pick = rng.integers(0, n_cl, n_cl)
        idx = np.concatenate([order[bounds[c] : bounds[c + 1]] for c in pick])
        copy_no = np.repeat(np.arange(n_cl), bounds[pick + 1] - bounds[pick])
        sample = rows.iloc[idx].copy()
        sample["client"] = client_codes[idx] + n_clients * copy_no
        sample["therapist"] = copy_no if key == "therapist" else 0
        try:
            with _quiet(logging.getLogger(lmm.__module__)):
                refit = lmm(formula, sample, residual_groups="dv", start=fit.theta)
        except (ValueError, np.linalg.LinAlgError):
            failed += 1
            continue
        # a singular draw (a path variance at 0, a correlation at +-1) can have a Hessian
        # that is not positive semi-definite along the boundary; it is kept when the gradient
        # test passes, and draws that fail it are counted with the failures
        if not (refit.converged or refit.convergence["max_scaled_gradient"] < 2e-3):
            failed += 1
            continue
        out.append(_paths(refit, random_paths))
    return pd.DataFrame(out), failed
