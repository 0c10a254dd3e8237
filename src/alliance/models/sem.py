"""Structural equation models of alliance and symptoms over sessions, fitted by FIML.

Two panel models separate the within-client, session-to-session interplay of alliance
and symptoms from stable differences between clients:

:func:`dynamic_panel`
    The dynamic panel model (DPM) estimated by maximum-likelihood SEM (Allison, Williams &
    Moral-Benito, 2017), as Falkenström, Finkel, Sandell, Rubel & Holmqvist (2017)
    recommend for the session-level alliance -> next-session symptoms question: each
    series depends on its own and the other series' previous session, and a client's
    stable level of each series is a latent "fixed effect" that may correlate freely with
    the first observed sessions. Unlike a multilevel model with the lagged outcome as
    predictor, this has no Nickell (1981) bias.
:func:`riclpm`
    The random-intercept cross-lagged panel model (RI-CLPM; Hamaker, Kuiper & Grasman,
    2015): each observed score is a stable client mean plus a within-client deviation, and
    the cross-lagged and autoregressive paths link the deviations.

Both are fitted with the structural equation engine of ``alliance.models._sem_core``
(full-information maximum likelihood over all observed sessions, standard errors from
the observed information), which agrees with lavaan's ``missing = "fiml"`` estimates and
standard errors on the committed references in ``tests/reference`` (see
``docs/models_sem.md``). With ``se="robust"`` (the default when ``therapist=`` names at
least 15 therapists) the standard errors are robust (MLR), clustered by therapist, and the
chi-square is Yuan-Bentler scaled, equal to lavaan's ``estimator = "MLR"`` with
``cluster =`` on the committed references.

References
----------
Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for
cross-lagged panel models with fixed effects. Socius, 3, 1-17.

Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
models of individual change in psychotherapy process research. Journal of Consulting and
Clinical Psychology, 85(6), 537-549.

Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
cross-lagged panel model. Psychological Methods, 20(1), 102-116.

Nickell, S. (1981). Biases in dynamic models with fixed effects. Econometrica, 49(6),
1417-1426.

Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and
covariance structure analysis with nonnormal missing data. Sociological Methodology, 30,
165-200.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from alliance._checks import format_rows, require_columns
from alliance.design import from_study_roles
from alliance.models._prep import effect_argument
from alliance.models._result import ModelResult
from alliance.models._sem_core import (
    FimlFit,
    ParTable,
    RobustFit,
    fit_fiml,
    maximize,
    robust_vcov,
    scaled_test,
    unrestricted_fit,
)
from alliance.models._sem_core import fit_indices as compute_fit_indices
from alliance.models.registry import Simulation, per_alliance_point, register_model
from alliance.results import exclusion_log

__all__ = ["dynamic_panel", "riclpm", "PanelResult", "improper_solution"]

DPM_CITATION = (
    "Allison, Williams & Moral-Benito (2017), Socius 3; as recommended for session-level "
    "alliance and symptoms by Falkenström, Finkel, Sandell, Rubel & Holmqvist (2017), JCCP 85(6)"
)
DPM_ESTIMAND = (
    "the cross-lagged paths are average within-client effects: with client-specific effects "
    "the model estimates (approximately) their mean (the paths are fixed, not random)"
)
RICLPM_CITATION = "Hamaker, Kuiper & Grasman (2015), Psychological Methods 20(1), 102-116"
FIML_POLICY = (
    "full-information maximum likelihood (FIML) over every observed session of the included "
    "clients (missing sessions and missing scores are assumed missing at random given the "
    "observed scores); {patterns} missing-data patterns"
)


MIN_CLUSTERS = 15  # se='auto' clusters from here (benchmarks/results/sim_mlr_cluster.md)
FEW_CLUSTERS = 30  # below this a note says the clustered SEs may be somewhat small
MLR_CITATION = (
    "robust (MLR) standard errors and Yuan-Bentler scaled chi-square as lavaan's "
    'estimator = "MLR" (Yuan & Bentler, 2000; clustered: Asparouhov & Muthén, 2005)'
)


# --------------------------------------------------------------------------- result


@dataclass
class PanelResult(ModelResult):
    """A panel SEM's result (a :class:`ModelResult`), fitted by full-information ML.

    ``fit_measures`` holds npar, loglik, aic, bic, n_patterns and max_gradient, and (unless
    ``fit_indices=False``) lavaan's ``fitMeasures`` under ``missing = "ml"``: chisq, df,
    pvalue (against the unrestricted FIML model), baseline.chisq, baseline.df,
    baseline.pvalue (independence model), cfi, tli, rmsea, rmsea.ci.lower,
    rmsea.ci.upper (90%), rmsea.pvalue (close fit), srmr (Bentler's, with means, against the
    unrestricted FIML moments) and unrestricted.logl; equal to lavaan 0.6-14 to 1e-5 on
    ``tests/reference/lavaan_fit_measures.json``. With robust standard errors (``se=``)
    also lavaan's chisq.scaled, df.scaled, pvalue.scaled and chisq.scaling.factor (the
    Yuan-Bentler correction, Mplus variant, with the two traces), equal to lavaan to 1e-4
    on ``tests/reference/lavaan_mlr_cluster.json``. ``converged`` is the optimizer's status.

    Attributes
    ----------
    focal_term : str
        The term the model is about (the first row of ``params``), e.g.
        ``"alliance[t-1] -> outcome[t]"``.
    terms : dict of str to str
        The term of each role: alliance_to_outcome, outcome_to_alliance,
        outcome_autoregressive, alliance_autoregressive.
    parameter_table : pandas.DataFrame
        Every free parameter of the SEM (lavaan's ``parameterEstimates`` layout).
    standardized_by_wave : pandas.DataFrame
        Each session's standardized lagged paths.
    sessions : list of int
        The sessions (waves) in the model.
    n_clients : int
        Clients in the model.
    starts : pandas.DataFrame
        One row per starting point (start, start_values, loglik, converged, the four
        lagged paths, kept): the fit with the highest log-likelihood is the one reported.
    estimand : str
        What the lagged paths estimate, in words.
    se_type : str
        How the standard errors were computed: ``"ML"`` (observed information),
        ``"MLR"`` (sandwich, clients independent) or ``"MLR, clustered by <therapist>"``.
    n_clusters : int
        Clusters (therapists) of cluster-robust standard errors; 0 otherwise.
    cov_params : pandas.DataFrame
        Sampling covariance of the four lagged paths in ``params`` (the robust one when
        ``se_type`` says so), indexed by their terms (for Wald tests of several paths).
    """

    focal_term: str = ""
    terms: dict[str, str] = field(default_factory=dict)
    parameter_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    standardized_by_wave: pd.DataFrame = field(default_factory=pd.DataFrame)
    sessions: list[int] = field(default_factory=list)
    n_clients: int = 0
    starts: pd.DataFrame = field(default_factory=pd.DataFrame)
    estimand: str = ""
    se_type: str = "ML"
    n_clusters: int = 0
    cov_params: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------- data


@dataclass
class _Panel:
    y: np.ndarray  # clients x waves, outcome
    x: np.ndarray  # clients x waves, alliance
    waves: list[int]
    clients: pd.Index
    excluded: pd.DataFrame
    n_single: int


def _long_table(data) -> pd.DataFrame:
    if hasattr(data, "sessions") and not isinstance(data, pd.DataFrame):
        return data.sessions
    return data


def _prepare(
    data,
    alliance: str,
    outcome: str,
    client: str,
    session: str,
    *,
    lag: int,
    max_sessions: int | None,
    min_clients: int,
    n_waves_needed: int,
) -> _Panel:
    """Long data -> a clients x sessions panel; every row left out is counted."""
    data = _long_table(data)
    require_columns(data, alliance=alliance, outcome=outcome, client=client, session=session)
    if alliance == outcome:
        raise ValueError(
            f"alliance and outcome both name column {alliance!r}; the panel models need two "
            "different series (e.g. alliance='wai_sr', outcome='phq9')"
        )
    if not isinstance(lag, int | np.integer) or lag < 1:
        raise ValueError(f"lag must be a whole number of sessions >= 1, not {lag!r}")
    if min_clients < 2:
        raise ValueError(f"min_clients must be at least 2, not {min_clients}")
    frame = data[[client, session, alliance, outcome]].copy()
    frame.index = pd.RangeIndex(len(frame))
    rows: list[tuple[str, str | None, int, int]] = []

    def drop(mask: pd.Series, reason: str, column: str | None) -> None:
        nonlocal frame
        if mask.any():
            rows.append((reason, column, int(mask.sum()), int(frame.loc[mask, client].nunique())))
            frame = frame.loc[~mask]

    drop(frame[client].isna(), "missing client identifier", client)
    for col in (alliance, outcome, session):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            raise ValueError(
                f"column {col!r} has {int(bad.sum())} values that are not numbers "
                f"({format_rows(frame.index[bad])}); convert them or set them to missing"
            )
        frame[col] = values.astype(float)
    drop(frame[session].isna(), "missing session number", session)
    s = frame[session].to_numpy()
    frac = s != np.round(s)
    if frac.any():
        raise ValueError(
            f"column {session!r} has {int(frac.sum())} non-integer values "
            f"({format_rows(frame.index[frac])}); sessions must be whole numbers"
        )
    dup = frame.duplicated([client, session], keep=False)
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} rows repeat a client x session pair ({format_rows(frame.index[dup])}); "
            "keep one row per client and session (run alliance.validate to list them)"
        )
    drop(
        frame[alliance].isna() & frame[outcome].isna(),
        "no alliance or outcome score at the session",
        f"{alliance}, {outcome}",
    )
    if frame.empty:
        raise ValueError("no session has an alliance or outcome score; nothing to fit")
    frame[session] = frame[session].astype(np.int64)
    first = int(frame[session].min())
    if max_sessions is not None:
        if max_sessions < first + lag:
            raise ValueError(
                f"max_sessions={max_sessions} leaves fewer than {lag + 1} sessions "
                f"(the first session is {first}); raise max_sessions"
            )
        drop(
            frame[session] > max_sessions,
            f"session after max_sessions={max_sessions}",
            session,
        )
    # the highest session such that every session up to it has min_clients clients with both
    # scores; later sessions would have (nearly) unidentified wave-specific parameters
    both = frame[frame[alliance].notna() & frame[outcome].notna()]
    counts = (
        both.groupby(session)[client]
        .nunique()
        .reindex(range(first, int(frame[session].max()) + 1), fill_value=0)
    )
    thin = counts < min_clients
    last = int(counts.index[thin.to_numpy().argmax()] - 1) if thin.any() else int(counts.index[-1])
    if last < first + n_waves_needed - 1:
        raise ValueError(
            f"only sessions {first}..{last} have at least {min_clients} clients with both "
            f"{alliance!r} and {outcome!r} scores; the model needs {n_waves_needed} consecutive "
            f"sessions (lag={lag}). Use more clients, a smaller lag, or lower min_clients"
        )
    drop(
        frame[session] > last,
        f"session after {last}: a later session has fewer than {min_clients} clients with both "
        "scores (min_clients)",
        session,
    )
    waves = list(range(first, last + 1))
    ids = pd.Index(pd.unique(frame[client]), name=client)
    code = ids.get_indexer(frame[client])
    w = frame[session].to_numpy() - first
    y = np.full((len(ids), len(waves)), np.nan)
    x = np.full((len(ids), len(waves)), np.nan)
    y[code, w] = frame[outcome].to_numpy()
    x[code, w] = frame[alliance].to_numpy()
    n_rated = (~np.isnan(y) | ~np.isnan(x)).sum(axis=1)
    return _Panel(
        y=y,
        x=x,
        waves=waves,
        clients=ids,
        excluded=exclusion_log(rows),
        n_single=int((n_rated == 1).sum()),
    )


def _var(a: np.ndarray) -> float:
    v = np.nanvar(a)
    return float(v) if np.isfinite(v) and v > 0 else 1.0


# --------------------------------------------------------------------------- models


def dpm_table(
    n_waves: int,
    *,
    lag: int = 1,
    slopes: bool = False,
    equal_residuals: bool = False,
    starts: dict[str, float] | None = None,
) -> ParTable:
    """The parameter table of the bivariate dynamic panel model (ML-SEM).

    Observed variables are ``y1..yT`` (outcome) and ``x1..xT`` (alliance). For waves
    ``t > lag``::

        y_t = a_t + rho_y y_{t-lag} + beta_yx x_{t-lag} + eta_y (+ (t - 1) zeta_y) + e_t
        x_t = c_t + rho_x x_{t-lag} + beta_xy y_{t-lag} + eta_x (+ (t - 1) zeta_x) + u_t

    with wave-specific intercepts, residual variances and a contemporaneous residual
    covariance; the fixed effects ``eta`` (and slopes ``zeta``) covary freely with each
    other and with the first ``lag`` waves, which are predetermined (Allison et al., 2017).
    """
    st = {"var_y": 1.0, "var_x": 1.0, "mean_y": 0.0, "mean_x": 0.0, **(starts or {})}
    obs = [f"y{t}" for t in range(1, n_waves + 1)] + [f"x{t}" for t in range(1, n_waves + 1)]
    tab = ParTable(observed=obs)
    later = range(lag + 1, n_waves + 1)
    exo = [f"{v}{t}" for t in range(1, lag + 1) for v in ("y", "x")]
    latents = ["eta_y", "eta_x"] + (["slope_y", "slope_x"] if slopes else [])
    for v in ("y", "x"):
        for t in later:
            tab.add(f"eta_{v}", "=~", f"{v}{t}", free=False, value=1.0)
        if slopes:
            for t in later:
                tab.add(f"slope_{v}", "=~", f"{v}{t}", free=False, value=float(t - 1))
    for t in later:
        tab.add(f"y{t}", "~", f"y{t - lag}", label="rho_y", value=st.get("rho_y", 0.0))
        tab.add(f"y{t}", "~", f"x{t - lag}", label="beta_yx", value=st.get("beta_yx", 0.0))
        tab.add(f"x{t}", "~", f"x{t - lag}", label="rho_x", value=st.get("rho_x", 0.0))
        tab.add(f"x{t}", "~", f"y{t - lag}", label="beta_xy", value=st.get("beta_xy", 0.0))
    # covariances among the fixed effects and the predetermined waves
    block = latents + exo
    for i, a in enumerate(block):
        for b in block[i:]:
            if a == b:
                if a.startswith("slope"):
                    value = 0.01 * st[f"var_{a[-1]}"]
                elif a.startswith("eta"):
                    value = 0.5 * st[f"var_{a[-1]}"]
                else:
                    value = st[f"var_{a[0]}"]
                tab.add(a, "~~", b, value=value)
            else:
                tab.add(a, "~~", b, value=0.0)
    for t in later:
        for v in ("y", "x"):
            label = f"res_{v}" if equal_residuals else ""
            tab.add(f"{v}{t}", "~~", f"{v}{t}", label=label, value=0.5 * st[f"var_{v}"])
        tab.add(f"y{t}", "~~", f"x{t}", label="res_yx" if equal_residuals else "", value=0.0)
    for t in range(1, n_waves + 1):
        for v in ("y", "x"):
            tab.add(f"{v}{t}", "~1", "", value=st[f"mean_{v}"])
    for lat in latents:
        tab.add(lat, "~1", "", free=False, value=0.0)
    return tab


def riclpm_table(
    n_waves: int,
    *,
    lag: int = 1,
    equal_lags: bool = True,
    starts: dict[str, float] | None = None,
) -> ParTable:
    """The parameter table of the RI-CLPM (Hamaker, Kuiper & Grasman, 2015).

    ``y_t = mu_t + RI_y + wy_t`` and ``x_t = nu_t + RI_x + wx_t``; for ``t > lag``
    ``wy_t = alpha_y wy_{t-lag} + beta_yx wx_{t-lag} + e_t`` and
    ``wx_t = alpha_x wx_{t-lag} + beta_xy wy_{t-lag} + u_t``, with wave-specific
    residual (co)variances, the random intercepts correlated with each other but not with
    the first within-client deviations, and wave-specific means.
    """
    st = {"var_y": 1.0, "var_x": 1.0, "mean_y": 0.0, "mean_x": 0.0, **(starts or {})}
    obs = [f"y{t}" for t in range(1, n_waves + 1)] + [f"x{t}" for t in range(1, n_waves + 1)]
    tab = ParTable(observed=obs)
    for v in ("y", "x"):
        for t in range(1, n_waves + 1):
            tab.add(f"ri_{v}", "=~", f"{v}{t}", free=False, value=1.0)
    for v in ("y", "x"):
        for t in range(1, n_waves + 1):
            tab.add(f"w{v}{t}", "=~", f"{v}{t}", free=False, value=1.0)
    for t in range(lag + 1, n_waves + 1):
        suffix = "" if equal_lags else f"_{t}"
        tab.add(f"wy{t}", "~", f"wy{t - lag}", label=f"alpha_y{suffix}")
        tab.add(f"wy{t}", "~", f"wx{t - lag}", label=f"beta_yx{suffix}")
        tab.add(f"wx{t}", "~", f"wx{t - lag}", label=f"alpha_x{suffix}")
        tab.add(f"wx{t}", "~", f"wy{t - lag}", label=f"beta_xy{suffix}")
    tab.add("ri_y", "~~", "ri_y", value=0.5 * st["var_y"])
    tab.add("ri_x", "~~", "ri_x", value=0.5 * st["var_x"])
    tab.add("ri_y", "~~", "ri_x", value=0.0)
    for t in range(1, n_waves + 1):
        tab.add(f"wy{t}", "~~", f"wy{t}", value=0.5 * st["var_y"])
        tab.add(f"wx{t}", "~~", f"wx{t}", value=0.5 * st["var_x"])
        tab.add(f"wy{t}", "~~", f"wx{t}", value=0.0)
    # the first lag waves' deviations covary among themselves
    for t in range(1, lag + 1):
        for u in range(t + 1, lag + 1):
            for a, b in (("wy", "wy"), ("wx", "wx"), ("wy", "wx"), ("wx", "wy")):
                tab.add(f"{a}{t}", "~~", f"{b}{u}", value=0.0)
    for v in ("y", "x"):
        for t in range(1, n_waves + 1):
            tab.add(f"{v}{t}", "~~", f"{v}{t}", free=False, value=0.0)
    for t in range(1, n_waves + 1):
        for v in ("y", "x"):
            tab.add(f"{v}{t}", "~1", "", value=st[f"mean_{v}"])
    for lat in ["ri_y", "ri_x"] + [f"w{v}{t}" for v in ("y", "x") for t in range(1, n_waves + 1)]:
        tab.add(lat, "~1", "", free=False, value=0.0)
    return tab


# --------------------------------------------------------------------------- results


def _path_rows(
    fit: FimlFit,
    labels: dict[str, tuple[str, str]],
    order: list[str],
) -> pd.DataFrame:
    """One row per labelled (equality-constrained) path: estimate, SE, z, p, CI, std."""
    tab = fit.table
    z975 = stats.norm.ppf(0.975)
    out = []
    for label in order:
        term, kind = labels[label]
        rows = tab[tab["label"] == label]
        est = float(rows["est"].iloc[0])
        se = float(rows["se"].iloc[0])
        zval = est / se if se > 0 else np.nan
        out.append(
            {
                "term": term,
                "estimate": est,
                "se": se,
                "df": np.nan,
                "statistic": zval,
                "p": 2.0 * stats.norm.sf(abs(zval)) if np.isfinite(zval) else np.nan,
                "ci_low": est - z975 * se,
                "ci_high": est + z975 * se,
                "std_estimate": float(rows["std_all"].mean()),
                "path": kind,
                "label": label,
            }
        )
    return pd.DataFrame(out)


def _standardized_by_wave(fit: FimlFit, labels: dict[str, tuple[str, str]]) -> pd.DataFrame:
    tab = fit.table[fit.table["label"].isin(list(labels))]
    return pd.DataFrame(
        {
            "term": tab["label"].map(lambda k: labels[k][0]).to_numpy(),
            "lhs": tab["lhs"].to_numpy(),
            "rhs": tab["rhs"].to_numpy(),
            "std_estimate": tab["std_all"].to_numpy(),
        }
    )


def _named(table: pd.DataFrame, names: dict[str, str], waves: list[int]) -> pd.DataFrame:
    """The full parameter table with readable variable names (y3 -> phq9[s3])."""
    first = waves[0]

    def rename(v: str) -> str:
        for short, long in names.items():
            if v.startswith(short) and v[len(short) :].isdigit():
                return f"{long}[s{int(v[len(short) :]) + first - 1}]"
        return v

    out = table.copy()
    out["lhs_name"] = out["lhs"].map(rename)
    out["rhs_name"] = out["rhs"].map(lambda v: rename(v) if v else v)
    return out


def _starts(panel: _Panel) -> dict[str, float]:
    return {
        "var_y": _var(panel.y),
        "var_x": _var(panel.x),
        "mean_y": float(np.nanmean(panel.y)),
        "mean_x": float(np.nanmean(panel.x)),
    }


def _fit_panel(panel: _Panel, table: ParTable, *, check_only: bool = False):
    wide = np.hstack([panel.y, panel.x])
    n_par = len({(r[3] or f"row{k}") for k, r in enumerate(table.rows) if r[4]})
    n_clients, n_vars = len(panel.clients), wide.shape[1]
    if n_clients <= n_vars:
        raise ValueError(
            f"{n_clients} clients are too few for a panel of {len(panel.waves)} sessions "
            f"({n_vars} observed variables, {n_par} parameters): the model needs more clients "
            "than observed variables. Pass max_sessions= to use fewer sessions"
        )
    if check_only:
        return None
    return fit_fiml(table, wide), n_par


def _multi_start(
    panel: _Panel, tables: list[ParTable], start_sets: list[dict[str, float]]
) -> tuple[FimlFit, int, list[dict]]:
    """Fit from each start; only the best is polished and gets standard errors.

    One start: :func:`fit_fiml` as is. Several: the first start runs L-BFGS
    (:func:`~alliance.models._sem_core.maximize`) and is polished by :func:`fit_fiml`
    (Newton steps on the observed information, then the Hessian for the SEs). The other
    starts run L-BFGS only, in coordinates whitened by that fit's observed information,
    which brings them to a maximum in a few dozen iterations, to a tight tolerance (so
    their log-likelihoods tell the same maximum from a different one). When one of them
    reaches a higher log-likelihood it is polished and kept instead. The Hessian, the
    costly part, is computed once unless another start wins (issue 16).
    """
    if len(tables) == 1:
        fit, _ = _fit_panel(panel, tables[0])
        est = {r.label: r.est for r in fit.table.itertuples() if r.label}
        results = [(fit.loglik, fit.converged, est)]
        best = 0
    else:
        _fit_panel(panel, tables[0], check_only=True)
        wide = np.hstack([panel.y, panel.x])
        first = maximize(tables[0], wide)
        fit = fit_fiml(tables[0], wide, theta0=first[0], lbfgs_tol=None)
        information = None
        if fit.converged and np.all(np.isfinite(fit.vcov)):
            try:
                information = np.linalg.inv(fit.vcov)
            except np.linalg.LinAlgError:  # pragma: no cover - vcov came from an inverse
                information = None
        first_est = {r.label: r.est for r in fit.table.itertuples() if r.label}
        results = [(fit.loglik, fit.converged, first_est)]
        thetas = [fit.theta]
        for t in tables[1:]:
            theta, ll, ok, est = maximize(t, wide, information=information)
            thetas.append(theta)
            results.append((ll if np.isfinite(ll) else -np.inf, ok, est))
        best = int(np.argmax([r[0] for r in results]))
        if best > 0 and results[best][0] > fit.loglik + 1e-6:
            fit = fit_fiml(tables[best], wide, theta0=thetas[best], lbfgs_tol=None)
            est = {r.label: r.est for r in fit.table.itertuples() if r.label}
            results[best] = (fit.loglik, fit.converged, est)
        else:
            best = 0
    tried = []
    for k, (extra, (ll, ok, est)) in enumerate(zip(start_sets, results, strict=True)):
        tried.append(
            {
                "start": k + 1,
                "start_values": ", ".join(f"{a}={b:.3g}" for a, b in extra.items())
                or "lagged paths 0",
                "loglik": ll,
                "converged": ok,
                **{lab: est.get(lab, np.nan) for lab in ("beta_yx", "beta_xy", "rho_y", "rho_x")},
            }
        )
    return fit, best, tried


def _common_notes(fit: FimlFit, panel: _Panel, therapist: str | None) -> list[str]:
    notes = []
    if not fit.converged:
        notes.append(f"the model did not converge cleanly: {fit.message}")
    if panel.n_single:
        notes.append(
            f"{panel.n_single} clients rated only one session; they are kept and inform the "
            "session means and variances under FIML"
        )
    if therapist is not None:
        notes.append(
            f"clients are nested in {therapist!r}, which this single-level SEM does not model; "
            "standard errors assume independent clients"
        )
    return notes


LATENTS = ("eta_y", "eta_x", "slope_y", "slope_x", "ri_y", "ri_x")


def improper_solution(result: PanelResult, tol: float = 1e-8) -> list[str]:
    """Why a panel SEM's solution is improper (an empty list when it is proper).

    A solution is improper when the optimizer did not converge, when a variance
    (latent or residual) is not positive, or when the covariance matrix of the latent
    fixed effects (and slopes) is not positive semi-definite (a Heywood case, e.g. a
    correlation beyond +-1; lavaan warns "covariance matrix of latent variables is not
    positive definite"). Standard errors and p-values of an improper solution are not
    interpretable.

    Parameters
    ----------
    result : PanelResult
        A fit of :func:`dynamic_panel` or :func:`riclpm`.
    tol : float, default 1e-8
        Eigenvalues below ``-tol`` times the largest count as negative.

    Returns
    -------
    list of str
        One reason per problem found.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.sem import dynamic_panel, improper_solution
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = dynamic_panel(study.sessions, alliance="wai_sr", outcome="phq9",
    ...                     max_sessions=8, fit_indices=False)
    >>> isinstance(improper_solution(fit), list)
    True
    """
    reasons = []
    if not result.converged:
        reasons.append("the optimizer did not converge")
    tab = result.parameter_table
    cov = tab[tab["op"] == "~~"]
    var = cov[(cov["lhs"] == cov["rhs"]) & cov["free"].astype(bool)]
    bad = var[~(var["est"] > 0)]
    if len(bad):
        names = ", ".join(
            f"{a} ({b:.3g})" for a, b in zip(bad["lhs_name"], bad["est"], strict=True)
        )
        reasons.append(f"variances not positive: {names}")
    lat = [v for v in LATENTS if v in set(var["lhs"])]
    if len(lat) > 1:
        m = pd.DataFrame(0.0, index=lat, columns=lat)
        block = cov[cov["lhs"].isin(lat) & cov["rhs"].isin(lat)]
        for a, b, e in zip(block["lhs"], block["rhs"], block["est"], strict=True):
            m.loc[a, b] = m.loc[b, a] = e
        eig = np.linalg.eigvalsh(m.to_numpy())
        if eig.min() < -tol * max(1.0, abs(eig).max()):
            reasons.append(
                "the covariance matrix of the client fixed effects"
                + (" and slopes" if any(v.startswith("slope") for v in lat) else "")
                + f" is not positive semi-definite (smallest eigenvalue {eig.min():.3g})"
            )
    return reasons


# --------------------------------------------------------------------------- robust SEs

SE_CHOICES = ("auto", "ml", "robust")


def _cluster_labels(data, client: str, therapist: str, panel: _Panel) -> np.ndarray:
    """Each panel client's therapist (the clusters); clients must be nested in therapists."""
    frame = _long_table(data)
    require_columns(frame, therapist=therapist)
    pairs = frame.loc[frame[client].isin(panel.clients), [client, therapist]].dropna()
    per_client = pairs.drop_duplicates().groupby(client)[therapist]
    several = per_client.nunique()
    several = several[several > 1]
    if len(several):
        raise ValueError(
            f"{len(several)} clients have more than one {therapist!r} (e.g. "
            f"{', '.join(map(str, several.index[:3]))}); cluster-robust standard errors need "
            "each client nested in one therapist. Fix the therapist column or pass se='ml'"
        )
    labels = per_client.first().reindex(panel.clients)
    if labels.isna().any():
        missing = labels.index[labels.isna()]
        raise ValueError(
            f"{len(missing)} clients have no {therapist!r} value (e.g. "
            f"{', '.join(map(str, missing[:3]))}); fill it in, or pass se='ml' for standard "
            "errors that assume independent clients"
        )
    return labels.to_numpy()


def _se_plan(
    data, client: str, therapist: str | None, panel: _Panel, se: str
) -> tuple[str, np.ndarray | None, list[str]]:
    """The standard errors to report: ("ml" or "robust", cluster labels or None, notes).

    ``se="auto"`` clusters by therapist (MLR) when ``therapist`` names a column with at
    least ``MIN_CLUSTERS`` therapists; with fewer the cluster sandwich is unreliable and the
    ML standard errors are kept, with a note (``benchmarks/sim_mlr_cluster.py``).
    """
    if se not in SE_CHOICES:
        raise ValueError(f"se must be one of {', '.join(map(repr, SE_CHOICES))}, not {se!r}")
    if se == "ml":
        return "ml", None, []
    if therapist is None:
        if se == "robust":
            return "robust", None, []
        return "ml", None, []
    labels = _cluster_labels(data, client, therapist, panel)
    k = len(pd.unique(labels))
    if k < 2:
        raise ValueError(
            f"all clients have the same {therapist!r}: there is nothing to cluster by; "
            "pass se='ml' (or therapist=None)"
        )
    if se == "auto" and k < MIN_CLUSTERS:
        return (
            "ml",
            None,
            [
                f"only {k} therapists (fewer than {MIN_CLUSTERS}): cluster-robust standard "
                "errors would be unreliable (too small with few clusters), so the ML standard "
                "errors are reported, which are too small if the lagged effects differ between "
                "therapists; pass se='robust' to cluster by therapist anyway"
            ],
        )
    notes = []
    if k < FEW_CLUSTERS:
        notes.append(
            f"cluster-robust standard errors with only {k} therapists may be somewhat too "
            f"small (few-cluster bias; {FEW_CLUSTERS} or more are advisable): in "
            "benchmarks/results/sim_mlr_cluster.md they reject a true null about 7-8% of the "
            "time at alpha = .05 with 15-30 therapists, the ML standard errors 18-20% when the "
            "lagged effect differs between therapists"
        )
    return "robust", labels, notes


def _apply_robust(fit: FimlFit, robust: RobustFit) -> FimlFit:
    """The fit with the robust covariance, SEs, z and p (the ML SEs kept as ``se_ml``)."""
    table = fit.table.copy()
    par = table["par"].to_numpy()
    table["se_ml"] = table["se"]
    table["se"] = np.where(par >= 0, robust.se[np.maximum(par, 0)], np.nan)
    table["z"] = table["est"] / table["se"]
    table["p"] = 2.0 * stats.norm.sf(np.abs(table["z"]))
    return dataclasses.replace(fit, table=table, vcov=robust.vcov)


def _robust_notes(robust: RobustFit, therapist: str | None, n_par: int) -> list[str]:
    if robust.clustered:
        how = (
            f"clustered by {therapist!r} ({robust.n_clusters} therapists: the clients' scores "
            "are summed within therapists, times k / (k - 1))"
        )
    else:
        how = "with clients as the independent units (no therapist column)"
    notes = [
        "standard errors are robust (MLR, as lavaan's estimator = 'MLR'): the sandwich of the "
        f"observed information and the clients' FIML scores, {how}; the estimates are the ML "
        "estimates; fit_measures add the Yuan-Bentler scaled chi-square (chisq.scaled, "
        "chisq.scaling.factor) and the ML standard errors are in parameter_table['se_ml']"
    ]
    if robust.meat_rank < n_par:
        notes.append(
            f"the robust covariance matrix has rank {robust.meat_rank} < {n_par} parameters "
            "(fewer clusters than parameters): each standard error is defined, but joint "
            "Wald tests of more than a few parameters are not"
        )
    return notes


def _robust_fit(plan, therapist, panel, fit):
    """Apply a :func:`_se_plan`: (fit, RobustFit or None, cluster labels, notes)."""
    kind, labels, notes = plan
    notes = list(notes)
    if kind == "ml":
        return fit, None, None, notes
    robust = robust_vcov(fit, np.hstack([panel.y, panel.x]), labels)
    notes += _robust_notes(robust, therapist, fit.n_par)
    return _apply_robust(fit, robust), robust, labels, notes


# --------------------------------------------------------------------------- public


@register_model(
    name="dynamic_panel",
    estimates="cross-lagged within-client effect of the alliance at t - 1 on the outcome at t, "
    "without the Nickell bias (dynamic panel model, ML-SEM)",
    citation=DPM_CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="{alliance}[t-1] -> {outcome}[t]",
    simulate=Simulation(effects=("within",), truth=per_alliance_point("within")),
)
@from_study_roles
def dynamic_panel(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    *,
    effect: str | None = None,
    lag: int = 1,
    max_sessions: int | None = None,
    min_clients: int = 10,
    slopes: bool = False,
    equal_residuals: bool = False,
    therapist: str | None = None,
    n_starts: int = 1,
    fit_indices: bool = True,
    se: str = "auto",
    reverse: bool | None = None,
) -> PanelResult:
    """Dynamic panel model of alliance and symptoms by ML-SEM (Allison et al., 2017).

    Each session's outcome depends on the outcome and the alliance ``lag`` sessions
    earlier, and each session's alliance on the alliance and the outcome ``lag`` sessions
    earlier (coefficients equal over sessions). A client's stable level of each series
    is a latent fixed effect that correlates freely with the other's and with the first
    ``lag`` sessions, which are treated as predetermined, so the lagged effects are
    within-client effects without the Nickell bias of a multilevel model with a lagged
    outcome (Falkenström, Finkel, Sandell, Rubel & Holmqvist, 2017). Intercepts, residual
    variances and the residual covariance of alliance and outcome are free at each
    session.

    Parameters
    ----------
    data : pandas.DataFrame or Study
        Long format, one row per client x session (a Study's ``sessions``).
    alliance, outcome, client, session : str
        Column names. The sessions are the waves of the panel: a missed session is a
        missing wave, not a shorter lag.
    effect : {"alliance->outcome", "outcome->alliance"}, default "alliance->outcome"
        Which cross-lagged path the result leads with; both are always estimated.
        ``reverse=True`` is the former form of ``effect="outcome->alliance"`` (deprecated).
    lag : int, default 1
        Sessions between cause and effect.
    max_sessions : int, optional
        Use sessions up to this number only (later rows are counted in ``excluded``).
    min_clients : int, default 10
        Sessions are used up to the last one before a session with fewer than this many
        clients with both scores (later rows are counted in ``excluded``).
    slopes : bool, default False
        Add client-specific linear trends (latent slopes with loadings ``session - 1``)
        to both series, correlated with the fixed effects and the first sessions. Use it
        when clients improve at different rates; the fixed effects alone absorb stable
        differences in level, not in rate of change.
    equal_residuals : bool, default False
        Constrain the residual (co)variances to be equal over sessions.
    therapist : str, optional
        Therapist column (clients nested in therapists). The model stays single-level; the
        therapists are the clusters of the cluster-robust standard errors (``se=``).
    n_starts : int, default 1
        Fit from this many starting points (1: all lagged paths at 0; then autoregressive
        paths at 0.5, then at 0.5 with cross-lagged paths at -0.1 and 0.1 times the
        ratio of the SDs) and keep the fit with the highest log-likelihood. The
        likelihood can have several maxima (``docs/models_sem.md``); every start's
        log-likelihood and paths are in ``.starts`` and a note says when they
        disagree. The first start is fitted fully; the others by L-BFGS whitened by its
        observed information (fast, converged tightly), and one that reaches a higher
        maximum is polished and kept instead. :func:`~alliance.models.within_between`
        uses 3.
    fit_indices : bool, default True
        Add the chi-square test and the fit indices (CFI, TLI, RMSEA with its 90% CI,
        SRMR) to ``.fit_measures``, as lavaan's ``fitMeasures`` computes them. They need
        a FIML fit of the unrestricted model (all means and covariances free), which
        costs about as much as the model fit itself; pass False in simulations.
    se : {"auto", "ml", "robust"}, default "auto"
        Standard errors. ``"ml"``: the observed information (lavaan's ML with
        ``missing = "ml"``). ``"robust"``: MLR, lavaan's ``estimator = "MLR"`` (a sandwich of
        the observed information and the clients' FIML scores), clustered by ``therapist``
        when it is given (lavaan's ``cluster =``), with the Yuan-Bentler scaled chi-square
        (``chisq.scaled``, ``chisq.scaling.factor``) in ``.fit_measures``. ``"auto"``:
        ``"robust"`` clustered by therapist when ``therapist`` is given and there are at
        least 15 therapists (the sandwich is unreliable with fewer clusters); otherwise
        ``"ml"``. The notes and ``.se_type`` say which was used (``docs/models_sem.md``).

    Returns
    -------
    PanelResult
        ``params``: the two cross-lagged and two autoregressive paths (raw estimates,
        z tests, 95% Wald CIs, and ``std_estimate`` = lavaan's ``std.all`` averaged over
        sessions), the focal path first, with columns ``path`` and ``label``;
        ``variance_components``: fixed-effect (co)variances; ``.focal_term``, ``.terms``
        (role -> term), ``.parameter_table`` (every parameter, with lavaan-style names),
        ``.standardized_by_wave``, ``.fit_measures`` (npar, loglik, AIC, BIC, patterns,
        chi-square and fit indices) and
        ``.sessions`` (the waves used).

    Raises
    ------
    KeyError
        A named column is missing.
    ValueError
        Sessions that are not whole numbers, repeated client x session rows, too few
        sessions or clients for the model.

    Notes
    -----
    Missing sessions and scores are handled by FIML under missing at random; clients
    who attended one session are kept. The fixed effects absorb stable between-client
    differences (the "between" part), so the lagged paths are within-client effects;
    they are on the raw scales of the columns (divide a WAI-SR total by 12 for item-mean
    units).

    References
    ----------
    Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for
    cross-lagged panel models with fixed effects. Socius, 3, 1-17.

    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017).
    Dynamic models of individual change in psychotherapy process research. Journal of
    Consulting and Clinical Psychology, 85(6), 537-549.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.sem import dynamic_panel
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = dynamic_panel(study.sessions, alliance="wai_sr", outcome="phq9",
    ...                     max_sessions=8)
    >>> fit.params["term"].tolist()[:2]
    ['wai_sr[t-1] -> phq9[t]', 'phq9[t-1] -> wai_sr[t]']
    >>> bool(fit.params["estimate"].iloc[0] < 0)
    True
    """
    reverse = effect_argument("dynamic_panel", effect, reverse)
    panel = _prepare(
        data,
        alliance,
        outcome,
        client,
        session,
        lag=lag,
        max_sessions=max_sessions,
        min_clients=min_clients,
        n_waves_needed=lag + 2 + (1 if slopes else 0),
    )
    plan = _se_plan(data, client, therapist, panel, se)
    if not isinstance(n_starts, int | np.integer) or isinstance(n_starts, bool) or n_starts < 1:
        raise ValueError(f"n_starts must be a whole number >= 1, not {n_starts!r}")
    base = _starts(panel)
    ratio = math.sqrt(base["var_y"] / base["var_x"])
    start_sets = [
        {},
        {"rho_y": 0.5, "rho_x": 0.5},
        {"rho_y": 0.5, "rho_x": 0.5, "beta_yx": -0.1 * ratio, "beta_xy": 0.1 / ratio},
    ]
    while len(start_sets) < n_starts:
        k = len(start_sets)
        start_sets.append({"rho_y": 0.2 * k % 0.9, "rho_x": 0.3 * k % 0.9})
    tables = [
        dpm_table(
            len(panel.waves),
            lag=lag,
            slopes=slopes,
            equal_residuals=equal_residuals,
            starts={**base, **extra_starts},
        )
        for extra_starts in start_sets[:n_starts]
    ]
    fit, best, tried = _multi_start(panel, tables, start_sets[:n_starts])
    fit, robust, clusters, se_notes = _robust_fit(plan, therapist, panel, fit)
    starts_table = pd.DataFrame(tried)
    starts_table["kept"] = starts_table.index == best
    lg = f"t-{lag}"
    labels = {
        "beta_yx": (f"{alliance}[{lg}] -> {outcome}[t]", "cross-lagged"),
        "beta_xy": (f"{outcome}[{lg}] -> {alliance}[t]", "cross-lagged"),
        "rho_y": (f"{outcome}[{lg}] -> {outcome}[t]", "autoregressive"),
        "rho_x": (f"{alliance}[{lg}] -> {alliance}[t]", "autoregressive"),
    }
    order = (
        ["beta_xy", "beta_yx", "rho_x", "rho_y"]
        if reverse
        else ["beta_yx", "beta_xy", "rho_y", "rho_x"]
    )
    params = _path_rows(fit, labels, order)
    vc = _latent_components(fit, outcome, alliance, slopes=slopes)
    full = _named(fit.table, {"y": outcome, "x": alliance}, panel.waves)
    notes = _common_notes(fit, panel, None if robust is not None else therapist) + se_notes
    variances = vc.loc[vc["term2"].isna(), "vcov"]
    if (variances <= 0).any():
        notes.append(
            "a fixed-effect (or slope) variance is not positive (a Heywood case): the fit may "
            "be a poor local maximum or the model too rich for these sessions; compare fits "
            "with max_sessions= or slopes="
        )
    if not slopes:
        notes.append(
            "the fixed effects absorb stable differences in level between clients, not "
            "client-specific trends; with clients who change at different rates use slopes=True"
        )
    if n_starts > 1:
        spread = float(starts_table["loglik"].max() - starts_table["loglik"].min())
        if spread > 1e-3:
            notes.append(
                f"the {n_starts} starting points reached different maxima (log-likelihoods "
                f"{', '.join(f'{v:.2f}' for v in starts_table['loglik'])}); the best "
                f"(start {best + 1}) is kept; all are in .starts"
            )
    result = _panel_result(
        "dynamic panel model (ML-SEM)",
        DPM_CITATION,
        fit,
        panel,
        params,
        vc,
        notes,
        labels,
        autoregressive=("rho_y", "rho_x"),
        parameter_table=full,
        indices=fit_indices,
        robust=robust,
        clusters=clusters,
        therapist=therapist,
    )
    result.starts = starts_table
    result.estimand = DPM_ESTIMAND
    return result


@register_model(
    name="riclpm",
    estimates="cross-lagged effect of the alliance deviation at t - 1 on the outcome deviation "
    "at t, within clients (random-intercept cross-lagged panel model)",
    citation=RICLPM_CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="within {alliance}[t-1] -> {outcome}[t]",
    simulate=Simulation(effects=("within",), truth=per_alliance_point("within")),
)
@from_study_roles
def riclpm(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    *,
    effect: str | None = None,
    lag: int = 1,
    max_sessions: int | None = None,
    min_clients: int = 10,
    therapist: str | None = None,
    fit_indices: bool = True,
    se: str = "auto",
    reverse: bool | None = None,
) -> PanelResult:
    """Random-intercept cross-lagged panel model (Hamaker, Kuiper & Grasman, 2015).

    Each session's score is the session mean, plus the client's random intercept (their
    stable level over treatment), plus a within-client deviation. The deviations follow
    a cross-lagged panel model: the outcome deviation at ``t`` depends on the outcome and
    alliance deviations ``lag`` sessions earlier, and the alliance deviation on both as
    well (paths equal over sessions; residual variances and covariances free per
    session). The random intercepts are correlated with each other (the between-client
    association) and not with the first deviations, as in Hamaker et al. (2015).

    Parameters
    ----------
    data : pandas.DataFrame or Study
        Long format, one row per client x session.
    alliance, outcome, client, session : str
        Column names; sessions are the waves.
    effect : {"alliance->outcome", "outcome->alliance"}, default "alliance->outcome"
        Which cross-lagged path the result leads with (``reverse=True``, deprecated, is
        ``effect="outcome->alliance"``).
    lag : int, default 1
        Sessions between cause and effect.
    max_sessions, min_clients : int
        As in :func:`dynamic_panel`.
    therapist : str, optional
        Therapist column: the clusters of the cluster-robust standard errors (``se=``).
    fit_indices : bool, default True
        As in :func:`dynamic_panel`: chi-square, CFI, TLI, RMSEA (90% CI), SRMR.
    se : {"auto", "ml", "robust"}, default "auto"
        As in :func:`dynamic_panel`: cluster-robust (MLR) standard errors by therapist
        when ``therapist`` is given and has at least 15 therapists.

    Returns
    -------
    PanelResult
        ``params``: within-client cross-lagged and autoregressive paths with
        ``std_estimate`` (lavaan's ``std.all`` averaged over sessions);
        ``variance_components``: random-intercept variances and their correlation (the
        between-client association); the typed attributes as in :func:`dynamic_panel`.

    Notes
    -----
    The RI-CLPM and the DPM differ in where the stable part enters: in the RI-CLPM it is
    added to the observed scores (a trait around which the deviations fluctuate), in the
    DPM it enters each session's equation (an accumulating cause). With stationary
    processes both give within-client lagged effects; see ``docs/models_sem.md``.

    References
    ----------
    Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
    cross-lagged panel model. Psychological Methods, 20(1), 102-116.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.sem import riclpm
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = riclpm(study.sessions, alliance="wai_sr", outcome="phq9", max_sessions=6)
    >>> fit.params["term"].iloc[0]
    'within wai_sr[t-1] -> phq9[t]'
    >>> fit.variance_components["group"].iloc[0]
    'client (random intercept)'
    """
    reverse = effect_argument("riclpm", effect, reverse)
    panel = _prepare(
        data,
        alliance,
        outcome,
        client,
        session,
        lag=lag,
        max_sessions=max_sessions,
        min_clients=min_clients,
        n_waves_needed=lag + 2,
    )
    plan = _se_plan(data, client, therapist, panel, se)
    table = riclpm_table(len(panel.waves), lag=lag, starts=_starts(panel))
    fit, _ = _fit_panel(panel, table)
    fit, robust, clusters, se_notes = _robust_fit(plan, therapist, panel, fit)
    lg = f"t-{lag}"
    labels = {
        "beta_yx": (f"within {alliance}[{lg}] -> {outcome}[t]", "cross-lagged"),
        "beta_xy": (f"within {outcome}[{lg}] -> {alliance}[t]", "cross-lagged"),
        "alpha_y": (f"within {outcome}[{lg}] -> {outcome}[t]", "autoregressive"),
        "alpha_x": (f"within {alliance}[{lg}] -> {alliance}[t]", "autoregressive"),
    }
    order = (
        ["beta_xy", "beta_yx", "alpha_x", "alpha_y"]
        if reverse
        else ["beta_yx", "beta_xy", "alpha_y", "alpha_x"]
    )
    params = _path_rows(fit, labels, order)
    tab = fit.table
    get = {
        (r.lhs, r.rhs): (r.est, r.se)
        for r in tab[tab["op"] == "~~"].itertuples()
        if r.lhs.startswith("ri_")
    }
    vy, vx, cyx = get[("ri_y", "ri_y")][0], get[("ri_x", "ri_x")][0], get[("ri_y", "ri_x")][0]
    vc = pd.DataFrame(
        {
            "group": ["client (random intercept)"] * 3,
            "term": [outcome, alliance, outcome],
            "term2": [None, None, alliance],
            "vcov": [vy, vx, cyx],
            "sdcor": [
                math.sqrt(max(vy, 0.0)),
                math.sqrt(max(vx, 0.0)),
                cyx / math.sqrt(vy * vx) if vy > 0 and vx > 0 else np.nan,
            ],
            "se": [get[k][1] for k in (("ri_y", "ri_y"), ("ri_x", "ri_x"), ("ri_y", "ri_x"))],
        }
    )
    notes = _common_notes(fit, panel, None if robust is not None else therapist) + se_notes
    if vy <= 0 or vx <= 0:
        notes.append("a random-intercept variance is not positive (a Heywood case)")
    return _panel_result(
        "random-intercept cross-lagged panel model (RI-CLPM)",
        RICLPM_CITATION,
        fit,
        panel,
        params,
        vc,
        notes,
        labels,
        autoregressive=("alpha_y", "alpha_x"),
        parameter_table=_named(
            fit.table, {"wy": outcome, "wx": alliance, "y": outcome, "x": alliance}, panel.waves
        ),
        indices=fit_indices,
        robust=robust,
        clusters=clusters,
        therapist=therapist,
    )


def _panel_result(
    model,
    citation,
    fit,
    panel,
    params,
    vc,
    notes,
    labels,
    *,
    autoregressive,
    parameter_table,
    indices: bool = True,
    robust: RobustFit | None = None,
    clusters: np.ndarray | None = None,
    therapist: str | None = None,
) -> PanelResult:
    """The result of a panel model fitted by FIML (dynamic panel model or RI-CLPM)."""
    measures = _fit_stats(fit)
    if indices:
        wide = np.hstack([panel.y, panel.x])
        h1 = unrestricted_fit(fit, wide)
        extra = compute_fit_indices(fit, wide, h1=h1)
        if robust is not None:
            extra.update(
                scaled_test(
                    fit, wide, robust, extra["chisq"], int(extra["df"]), (h1[1], h1[2]), clusters
                )
            )
        if extra.pop("unrestricted.max_gradient") > 1e-6:
            notes.append(
                "the unrestricted model behind the chi-square did not converge cleanly; "
                "the fit indices may be off"
            )
        measures.update(extra)
    if robust is not None:
        citation = f"{citation}; {MLR_CITATION}"
    return PanelResult(
        se_type=(
            "ML"
            if robust is None
            else (f"MLR, clustered by {therapist}" if robust.clustered else "MLR")
        ),
        n_clusters=robust.n_clusters if robust is not None and robust.clustered else 0,
        model=model,
        params=params,
        variance_components=vc,
        loglik=fit.loglik,
        nobs=int(fit.n),
        excluded=panel.excluded,
        missing_data=FIML_POLICY.format(patterns=fit.n_patterns),
        citation=citation,
        notes=notes,
        n_by_level={
            "clients": len(panel.clients),
            "sessions": int((np.isfinite(panel.y) | np.isfinite(panel.x)).sum()),
        },
        aic=float(fit.aic),
        bic=float(fit.bic),
        converged=bool(fit.converged),
        fit_measures=pd.Series(measures, name="fit"),
        focal_term=params["term"].iloc[0],
        terms={
            "alliance_to_outcome": labels["beta_yx"][0],
            "outcome_to_alliance": labels["beta_xy"][0],
            "outcome_autoregressive": labels[autoregressive[0]][0],
            "alliance_autoregressive": labels[autoregressive[1]][0],
        },
        parameter_table=parameter_table,
        standardized_by_wave=_standardized_by_wave(fit, labels),
        sessions=list(panel.waves),
        n_clients=len(panel.clients),
        cov_params=_path_cov(fit, params),
    )


def _path_cov(fit: FimlFit, params: pd.DataFrame) -> pd.DataFrame:
    """The sampling covariance of the labelled paths in ``params`` (rows and columns: terms)."""
    tab = fit.table
    idx = [int(tab.loc[tab["label"] == lab, "par"].iloc[0]) for lab in params["label"]]
    cov = np.asarray(fit.vcov)[np.ix_(idx, idx)]
    terms = params["term"].tolist()
    return pd.DataFrame(cov, index=terms, columns=terms)


def _latent_components(fit: FimlFit, outcome: str, alliance: str, *, slopes: bool) -> pd.DataFrame:
    tab = fit.table
    names = {
        "eta_y": outcome,
        "eta_x": alliance,
        "slope_y": f"{outcome} slope",
        "slope_x": f"{alliance} slope",
    }
    lat = tab[(tab["op"] == "~~") & tab["lhs"].isin(list(names)) & tab["rhs"].isin(list(names))]
    var = {r.lhs: r.est for r in lat.itertuples() if r.lhs == r.rhs}
    rows = []
    for r in lat.itertuples():
        same = r.lhs == r.rhs
        sdcor = (
            math.sqrt(max(r.est, 0.0))
            if same
            else (
                r.est / math.sqrt(var[r.lhs] * var[r.rhs])
                if var[r.lhs] > 0 and var[r.rhs] > 0
                else np.nan
            )
        )
        rows.append(
            {
                "group": "client (fixed effect)",
                "term": names[r.lhs],
                "term2": None if same else names[r.rhs],
                "vcov": r.est,
                "sdcor": sdcor,
                "se": r.se,
            }
        )
    return pd.DataFrame(rows, columns=["group", "term", "term2", "vcov", "sdcor", "se"])


def _fit_stats(fit: FimlFit) -> dict[str, float]:
    return {
        "npar": fit.n_par,
        "loglik": fit.loglik,
        "aic": fit.aic,
        "bic": fit.bic,
        "n_patterns": fit.n_patterns,
        "max_gradient": fit.gradient_max,
    }
