"""Dropout: does early alliance, or a rupture left unrepaired, predict leaving therapy early?

Dropout is an outcome in its own right, and it shapes every completer analysis (Sharf,
Primavera & Diener, 2010, found weaker alliances among clients who dropped out). Two
models, each with standard errors that allow for clients nested in therapists:

``method="logistic"``
    One row per client: dropout (the client's last attended session comes before the
    planned number of sessions) regressed on the mean alliance of the first
    ``early`` sessions and the number of ruptures in that window, by logistic
    regression with cluster-robust (sandwich) standard errors by therapist
    (Liang & Zeger, 1986).
``method="discrete_time"``
    One row per client x attended session (the person-period data of Singer & Willett,
    1993): the hazard of leaving after session ``t`` given the alliance at ``t`` and an
    unrepaired rupture so far, with a baseline hazard in session number, by logistic
    regression with the same cluster-robust standard errors. This uses every session
    and keeps the time order of predictor and event.

References
----------
Liang, K.-Y., & Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
models. Biometrika, 73(1), 13-22.

Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic alliance: A
meta-analysis of adult individual psychotherapy. Psychotherapy: Theory, Research,
Practice, Training, 47(4), 637-645.

Singer, J. D., & Willett, J. B. (1993). It's about time: Using discrete-time survival
analysis to study duration and the timing of events. Journal of Educational Statistics,
18(2), 155-195.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from alliance._checks import require_columns, require_frame
from alliance.design import EarlyWindow, as_window, from_study_roles
from alliance.models._result import ModelResult
from alliance.models.glmm import glmm
from alliance.models.registry import Simulation, per_alliance_point, register_model
from alliance.results import exclusion_log

__all__ = ["DropoutResult", "dropout_model", "person_period"]

METHODS = ("logistic", "discrete_time")
ENGINES = ("glm", "glmm")
#: Default rupture rule: prospective (a flag at session n uses sessions up to n only).
DEFAULT_RUPTURES = {"method": "dip", "spread": "stricter"}
#: Termination reasons understood without a mapping (lower case); True = dropped out.
TERMINATION_VALUES = {
    "dropped_out": True,  # the study vocabulary (alliance.study.TERMINATIONS)
    "dropped out": True,
    "dropout": True,
    "drop-out": True,
    "dropped": True,
    "unilateral": True,
    "completed": False,
    "complete": False,
    "planned": False,
    "planned ending": False,
    "referred": False,
    "transferred": False,
    "moved": False,
    "ongoing": False,
    "other": None,  # no dropout meaning: the client is left out, counted in excluded
}
BASELINES = ("linear", "quadratic", "categorical")
LOGISTIC_CITATION = (
    "logistic regression with cluster-robust standard errors (Liang & Zeger, 1986); "
    "alliance and dropout: Sharf, Primavera & Diener (2010)"
)
DISCRETE_CITATION = (
    "discrete-time survival analysis (Singer & Willett, 1993) with cluster-robust standard "
    "errors (Liang & Zeger, 1986)"
)
GLMM_CITATION = (
    "logistic mixed model with a therapist random intercept (Bates, Maechler, Bolker & "
    "Walker, 2015, lme4 glmer; Laplace approximation)"
)


@dataclass
class DropoutResult(ModelResult):
    """Result of :func:`dropout_model` (a :class:`~alliance.models.ModelResult`).

    ``aic`` and ``bic`` are those of the binomial GLM; ``nobs`` counts clients (logistic) or
    person-periods (discrete time).

    Attributes
    ----------
    data : pandas.DataFrame
        The model frame: one row per client (logistic) or per person-period (discrete time).
    method : str
        ``"logistic"`` or ``"discrete_time"``.
    n_dropout : int
        Dropouts (events) in the model frame.
    n_clients : int
        Clients in the model frame.
    n_clusters : int or None
        Therapists: clusters of the robust standard errors, or levels of the random
        intercept (None without a therapist column).
    glm : statsmodels GLM result or None
        The fitted binomial GLM (with the cluster-robust covariance); None with
        ``engine="glmm"``.
    engine : str
        ``"glm"`` (cluster-robust standard errors) or ``"glmm"`` (therapist random
        intercept).
    mixed_model : alliance.models.GlmmResult or None
        The logistic GLMM with a therapist random intercept (``engine="glmm"``).
    """

    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    method: str = "logistic"
    n_dropout: int = 0
    n_clients: int = 0
    n_clusters: int | None = None
    glm: Any = None
    engine: str = "glm"
    mixed_model: Any = None


def _sessions_table(data) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if hasattr(data, "sessions") and not isinstance(data, pd.DataFrame):
        return data.sessions, getattr(data, "clients", None)
    return require_frame(data), None


def _client_column(
    name: str, sessions: pd.DataFrame, clients: pd.DataFrame | None, client: str, role: str
) -> pd.Series:
    """A client-level column from the clients table or (constant per client) the sessions."""
    if clients is not None and name in clients.columns:
        require_columns(clients, table="clients", client=client)
        return clients.drop_duplicates(client).set_index(client)[name]
    if name in sessions.columns:
        per = sessions.groupby(client, sort=False)[name]
        varying = per.nunique(dropna=False) > 1
        if varying.any():
            raise ValueError(
                f"{role} column {name!r} varies within {int(varying.sum())} clients; it must be "
                "one value per client (put it in the clients table)"
            )
        return per.first()
    tables = "data or clients" if clients is not None else "data (pass clients= for a table)"
    require_columns(sessions, table=tables, **{role: name})
    raise AssertionError  # pragma: no cover - require_columns raised


def _rupture_events(
    ruptures, sessions: pd.DataFrame, alliance: str, client: str, session: str
) -> pd.DataFrame | None:
    if ruptures is False:
        return None
    if ruptures is None or isinstance(ruptures, dict):
        from alliance.ruptures import detect

        options = {**DEFAULT_RUPTURES, **(ruptures or {})}
        events = detect(sessions, alliance=alliance, client=client, session=session, **options)
        return events.rename(columns={"client": client, "session": session})
    events = require_frame(ruptures, "ruptures")
    require_columns(events, table="ruptures", client=client, session=session)
    return events


def _open_ruptures(
    events: pd.DataFrame | None, periods: pd.DataFrame, client: str, session: str
) -> np.ndarray:
    """1 where a rupture has begun by the session and is not (yet) repaired."""
    if events is None or events.empty:
        return np.zeros(len(periods))
    ev = pd.DataFrame(
        {
            client: events[client].to_numpy(),
            "_start": pd.to_numeric(events[session]).astype(float).to_numpy(),
        }
    )
    resolved = (
        events["resolved"].astype("boolean")
        if "resolved" in events.columns
        else pd.Series(pd.NA, index=events.index, dtype="boolean")
    )
    if "repair_session" in events.columns:
        rep = pd.to_numeric(events["repair_session"]).astype(float).to_numpy()
    else:
        rep = np.full(len(events), np.nan)
    # repaired with no known session: closed at once; not repaired or unknown: stays open
    rep = np.where(np.isnan(rep) & resolved.eq(True).fillna(False).to_numpy(), ev["_start"], rep)
    ev["_end"] = np.where(np.isnan(rep), np.inf, rep)
    pp = periods[[client, session]].reset_index(names="_row")
    pairs = pp.merge(ev, on=client)
    t = pairs[session].to_numpy(dtype=float)
    open_ = (pairs["_start"].to_numpy() <= t) & (t < pairs["_end"].to_numpy())
    hit = np.zeros(len(periods))
    hit[pairs["_row"].to_numpy()[open_]] = 1.0
    return hit


def person_period(
    data,
    alliance: str = "alliance",
    client: str = "client",
    session: str = "session",
    *,
    planned_sessions: int | str | None = None,
    dropout: str | None = None,
    clients: pd.DataFrame | None = None,
    termination: str | None = None,
    termination_map: dict | None = None,
) -> pd.DataFrame:
    """Person-period data: one row per client x attended session, with the event flag.

    ``left`` is 1 at a dropout client's last attended session and 0 elsewhere; rows after
    the planned number of sessions carry no risk and are not listed.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.dropout import person_period
    >>> study = alliance.datasets.load_dataset("demo")
    >>> pp = person_period(study.sessions, alliance="wai_sr")
    >>> int(pp.groupby("client")["left"].sum().max())
    1
    """
    sessions, own_clients = _sessions_table(data)
    clients = clients if clients is not None else own_clients
    require_columns(sessions, client=client, session=session, alliance=alliance)
    frame = sessions[sessions[client].notna() & sessions[session].notna()]
    frame = frame.sort_values([client, session], kind="stable")
    last = frame.groupby(client, sort=False)[session].max()
    planned = _planned(planned_sessions, frame, clients, client, session)
    if dropout is not None:
        left_client = _client_column(dropout, frame, clients, client, "dropout").astype("boolean")
    elif termination is not None:
        reason = _client_column(termination, frame, clients, client, "termination")
        left_client = _termination_dropout(reason, termination, termination_map)
    else:
        left_client = pd.Series(
            (last.to_numpy() < planned.reindex(last.index).to_numpy()), index=last.index
        )
    out = frame[[client, session, alliance]].copy()
    out["last_session"] = out[client].map(last).to_numpy()
    out["planned"] = out[client].map(planned).to_numpy()
    is_last = out[session].to_numpy() == out["last_session"].to_numpy()
    out["left"] = (is_last & out[client].map(left_client).fillna(False).to_numpy(bool)).astype(int)
    out = out[out[session] < out["planned"]]
    return out.reset_index(drop=True)


def _termination_dropout(reason: pd.Series, name: str, mapping: dict | None) -> pd.Series:
    """True where the termination reason means dropout (NA reasons stay NA)."""
    table = {str(k).strip().lower(): v for k, v in (mapping or TERMINATION_VALUES).items()}
    text = reason.astype("string").str.strip().str.lower()
    unknown = sorted(set(text.dropna()) - set(table))
    if unknown:
        raise ValueError(
            f"termination column {name!r} has values {unknown} with no dropout meaning; pass "
            "termination_map={value: True (dropped out) or False (planned ending), ...}"
        )
    return text.map(table).astype("boolean")


def _find_termination(sessions, clients) -> str | None:
    for table in (clients, sessions):
        if table is not None:
            for col in table.columns:
                if str(col).lower() in ("termination", "termination_reason", "end_reason"):
                    return col
    return None


def _planned(planned_sessions, frame, clients, client, session) -> pd.Series:
    ids = pd.Index(pd.unique(frame[client]))
    if planned_sessions is None:
        return pd.Series(float(frame[session].max()), index=ids)
    if isinstance(planned_sessions, str):
        col = _client_column(planned_sessions, frame, clients, client, "planned_sessions")
        return pd.to_numeric(col).astype(float).reindex(ids)
    if planned_sessions < 1:
        raise ValueError(f"planned_sessions must be a positive number, not {planned_sessions}")
    return pd.Series(float(planned_sessions), index=ids)


def _glm(
    y: np.ndarray,
    x: pd.DataFrame,
    groups: np.ndarray | None,
) -> sm.genmod.generalized_linear_model.GLMResultsWrapper:
    _glm_checks(y, x)
    model = sm.GLM(y, x, family=sm.families.Binomial())
    if groups is None:
        return model.fit()
    return model.fit(cov_type="cluster", cov_kwds={"groups": groups})


def _glmm_fit(y: np.ndarray, x: pd.DataFrame, groups: np.ndarray):
    """``y ~ x + (1 | therapist)`` by :func:`alliance.models.glmm` (x holds the intercept)."""
    cols = [f"x{i}" for i in range(x.shape[1] - 1)]
    frame = pd.DataFrame(x.drop(columns="Intercept").to_numpy(float), columns=cols)
    frame["y"] = y
    frame["therapist"] = groups
    formula = "y ~ " + (" + ".join(cols) if cols else "1") + " + (1 | therapist)"
    try:
        return glmm(formula, frame, family="binomial")
    except ValueError as err:
        raise ValueError(f"the dropout GLMM could not be fitted: {err}") from err


def _glm_checks(y: np.ndarray, x: pd.DataFrame) -> None:
    rank = np.linalg.matrix_rank(x.to_numpy(dtype=float))
    if rank < x.shape[1]:
        raise ValueError(
            f"the predictors {list(x.columns)} are collinear (rank {rank} of {x.shape[1]}); "
            "drop a covariate or a rupture term that does not vary"
        )
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(
            f"all {len(y)} units have the same dropout value ({int(y[0])}); a dropout model "
            "needs both clients who left and clients who stayed"
        )


def _params(fit, x: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    return _params_from(fit.params.to_numpy(), fit.bse.to_numpy(), x, names)


def _params_from(est, se, x: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    z = est / se
    crit = stats.norm.ppf(0.975)
    sd = x.std(ddof=1).to_numpy()
    out = pd.DataFrame(
        {
            "term": [names.get(c, c) for c in x.columns],
            "estimate": est,
            "se": se,
            "df": np.nan,
            "statistic": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": est - crit * se,
            "ci_high": est + crit * se,
            "std_estimate": np.where(sd > 0, est * sd, np.nan),
        }
    )
    out.loc[out["term"] == "Intercept", "std_estimate"] = np.nan
    out["odds_ratio"] = np.exp(out["estimate"])
    out["or_ci_low"] = np.exp(out["ci_low"])
    out["or_ci_high"] = np.exp(out["ci_high"])
    return out


@register_model(
    name="dropout_model",
    estimates="log-odds of leaving after a session per point of that session's alliance "
    "(discrete-time hazard, ruptures open at the session adjusted)",
    citation=DISCRETE_CITATION,
    roles=("alliance", "client", "session", "therapist"),
    focal_term="{alliance}",
    options={"method": "discrete_time"},
    simulate=Simulation(
        effects=("dropout_alliance",), truth=per_alliance_point("dropout_alliance")
    ),
)
@from_study_roles
def dropout_model(
    data,
    alliance: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = "therapist",
    *,
    clients: pd.DataFrame | None = None,
    planned_sessions: int | str | None = None,
    dropout: str | None = None,
    termination: str | None = None,
    termination_map: dict | None = None,
    early: int | EarlyWindow = 3,
    ruptures=None,
    covariates: list[str] | None = None,
    method: str = "logistic",
    baseline: str = "linear",
    early_sessions: int | None = None,
    engine: str = "glm",
) -> DropoutResult:
    """Early alliance and ruptures predicting dropout, clients nested in therapists.

    Parameters
    ----------
    data : pandas.DataFrame or Study
        Long sessions, one row per attended client x session (a missing alliance score is
        an attended session without a rating). A Study supplies its ``clients`` table.
    alliance, client, session : str
        Column names in ``data``.
    therapist : str or None, default "therapist"
        Cluster for the robust standard errors (in ``data`` or ``clients``); None for
        ordinary ML standard errors.
    clients : pandas.DataFrame, optional
        One row per client, for ``therapist``, ``planned_sessions``, ``dropout`` and
        ``covariates`` columns.
    planned_sessions : int or str, optional
        The planned number of sessions (or a client column with it). A client dropped out
        when their last attended session comes before it. Default: the highest session
        in ``data``.
    dropout : str, optional
        A client column (True = dropped out) that overrides the other rules.
    termination : str, optional
        A client column with the reason treatment ended (e.g. "completed",
        "dropped out", "referred"); dropout is read from it. Default: a column named
        ``termination`` (or ``termination_reason``, ``end_reason``) when the data or the
        clients table has one; otherwise the planned-sessions rule, stated in the notes.
    termination_map : dict, optional
        Meaning of each termination value, ``{value: True (dropout) / False}``; the
        default knows dropped_out / dropped out / dropout / unilateral (True) and
        completed / planned / referred / transferred / moved / ongoing (False); a value
        mapped to None (the default maps ``other``) has no dropout meaning. A client whose
        reason is missing or has no dropout meaning is counted in ``excluded``.
    early : int or EarlyWindow, default 3
        ``"logistic"``: early alliance is the mean of the rated sessions among the client's
        first ``early`` sessions (an :class:`alliance.design.EarlyWindow` gives its number
        of sessions), and ruptures are counted in the same window. Clients
        whose last session falls within the window are left out (the predictor would not
        precede the outcome) and counted in ``excluded``.
    ruptures : DataFrame, dict, None or False
        An events table (client, session, resolved, optional repair_session), e.g.
        ``study.events`` or :func:`alliance.ruptures.detect` output; a dict of options
        for :func:`alliance.ruptures.detect`; None to detect with the prospective
        ``method="dip", spread="stricter"`` rule (2 SD below the mean of the client's
        earlier sessions, the larger of the client's running SD and the sample's
        within-client SD), so a rupture at session n uses sessions up to n only;
        False for no rupture term.
    covariates : list of str, optional
        Numeric or boolean client-level columns (e.g. ``prior_negative_therapy``).
    method : {'logistic', 'discrete_time'}
        Client-level logistic regression, or the discrete-time hazard of leaving after
        each attended session given the alliance at that session and whether a rupture
        is open (begun and not yet repaired).
    baseline : {'linear', 'quadratic', 'categorical'}
        ``"discrete_time"``: the baseline log-hazard in session number.
    early_sessions : int, optional
        Former name of ``early`` (deprecated).
    engine : {'glm', 'glmm'}, default 'glm'
        How clients of one therapist are allowed to be alike: ``"glm"``, a binomial GLM
        with cluster-robust (sandwich) standard errors by ``therapist``; ``"glmm"``, a
        logistic mixed model with a therapist random intercept
        (``dropout ~ predictors + (1 | therapist)``, lme4's ``glmer`` with the Laplace
        approximation, :func:`alliance.models.glmm`): conditional (therapist-specific)
        log odds, the therapist variance in ``variance_components``, and valid with few
        therapists where sandwich SEs are too small. Needs ``therapist``.

    Returns
    -------
    DropoutResult
        ``params``: log-odds estimates with cluster-robust SEs, z tests and 95% CIs,
        ``std_estimate`` (the log-odds per SD of the predictor), and ``odds_ratio`` with
        its CI; ``excluded``: clients or sessions left out and why; ``.data``: the model
        frame (one row per client or per person-period), ``.n_dropout``, ``.n_clusters``.

    Notes
    -----
    Missing-data policy: complete cases. Clients (logistic) or person-periods
    (discrete time) without the alliance score, a covariate or the therapist are left
    out and counted; in the discrete-time model a dropout client whose last session has
    no alliance rating loses their event, and ``excluded`` says how many.

    References
    ----------
    Liang, K.-Y., & Zeger, S. L. (1986). Longitudinal data analysis using generalized
    linear models. Biometrika, 73(1), 13-22.

    Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic
    alliance: A meta-analysis of adult individual psychotherapy. Psychotherapy, 47(4),
    637-645.

    Singer, J. D., & Willett, J. B. (1993). It's about time: Using discrete-time
    survival analysis to study duration and the timing of events. Journal of
    Educational Statistics, 18(2), 155-195.

    Examples
    --------
    >>> import alliance
    >>> from alliance.models.dropout import dropout_model
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = dropout_model(study, alliance="wai_sr", ruptures=study.events)
    >>> fit.params["term"].tolist()
    ['Intercept', 'early wai_sr (mean of sessions 1-3)', 'ruptures in sessions 1-3']
    >>> hazard = dropout_model(study, alliance="wai_sr", ruptures=study.events,
    ...                        method="discrete_time")
    >>> bool(hazard.params.set_index("term").loc["wai_sr", "estimate"] < 0)
    True
    >>> mixed = dropout_model(study, alliance="wai_sr", ruptures=study.events, engine="glmm")
    >>> mixed.variance_components["group"].tolist()
    ['therapist']
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {list(METHODS)}")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not known; choose one of {list(ENGINES)}")
    if engine == "glmm" and therapist is None:
        raise ValueError(
            "engine='glmm' fits a therapist random intercept and needs therapist= (a column "
            "in the data or the clients table); use engine='glm' without one."
        )
    if baseline not in BASELINES:
        raise ValueError(f"baseline={baseline!r} is not known; choose one of {list(BASELINES)}")
    window = as_window(early, early_sessions=early_sessions)
    if not isinstance(early, EarlyWindow):
        # dropout needs the window in calendar terms: the same session numbers for everyone
        window = EarlyWindow(window.sessions, counts="numbers")
    early_sessions = window.sessions
    sessions, own_clients = _sessions_table(data)
    clients = clients if clients is not None else own_clients
    require_columns(sessions, alliance=alliance, client=client, session=session)
    rows: list[tuple[str, str | None, int, int]] = []
    bad_ids = sessions[client].isna() | sessions[session].isna()
    if bad_ids.any():
        rows.append(
            (
                "missing client or session",
                f"{client}, {session}",
                int(bad_ids.sum()),
                int(sessions.loc[bad_ids, client].nunique()),
            )
        )
        sessions = sessions[~bad_ids]
    values = pd.to_numeric(sessions[alliance], errors="coerce")
    if (values.isna() & sessions[alliance].notna()).any():
        raise ValueError(f"column {alliance!r} has values that are not numbers; convert them")
    events = _rupture_events(ruptures, sessions, alliance, client, session)
    if dropout is None and termination is None:
        termination = _find_termination(sessions, clients)
    if dropout is not None:
        rule = f"dropout from the column {dropout!r}"
    elif termination is not None:
        rule = f"dropout from the termination reason in {termination!r}"
        reason = _client_column(termination, sessions, clients, client, "termination")
        flags = _termination_dropout(reason, termination, termination_map)
        no_reason = flags.isna()
        if no_reason.any():
            gone = sessions[client].isin(flags.index[no_reason])
            rows.append(
                (
                    f"no termination reason with a dropout meaning in {termination!r}",
                    termination,
                    int(gone.sum()),
                    int(no_reason.sum()),
                )
            )
            sessions = sessions[~gone]
    else:
        rule = "dropout rule: the last attended session comes before " + (
            f"the planned number of sessions ({planned_sessions!r})"
            if planned_sessions is not None
            else "the highest session number in the data (no termination column and no "
            "planned_sessions=; planned short endings count as dropouts: pass "
            "planned_sessions= or a termination column)"
        )
    pp = person_period(
        sessions,
        alliance,
        client,
        session,
        planned_sessions=planned_sessions,
        dropout=dropout,
        clients=clients,
        termination=termination,
        termination_map=termination_map,
    )
    if pp.empty:
        raise ValueError(
            "no client has a session before the planned number of sessions; check planned_sessions"
        )
    ids = pd.Index(pd.unique(sessions[client]))
    extra_cols: dict[str, pd.Series] = {}
    if therapist is not None:
        extra_cols["_cluster"] = _client_column(therapist, sessions, clients, client, "therapist")
    for cov in covariates or []:
        col = _client_column(cov, sessions, clients, client, "covariates")
        if col.dtype == bool or str(col.dtype) == "boolean":
            col = col.astype("Float64").astype(float)
        num = pd.to_numeric(col, errors="coerce")
        if (num.isna() & col.notna()).any():
            raise ValueError(
                f"covariate {cov!r} is not numeric or boolean; code it as numbers "
                "(e.g. 0/1 dummies) first"
            )
        extra_cols[cov] = num.astype(float)
    client_info = pd.DataFrame(extra_cols, index=ids) if extra_cols else pd.DataFrame(index=ids)
    if method == "logistic":
        frame, x_cols, names, y_col = _logistic_frame(
            pp, sessions, events, alliance, client, session, window, rows
        )
    else:
        frame, x_cols, names, y_col = _hazard_frame(pp, events, alliance, client, session, rows)
        if baseline == "categorical":
            dummies = pd.get_dummies(frame[session].astype(int), prefix="session", dtype=float)
            dummies = dummies.iloc[:, 1:]
            frame = pd.concat([frame, dummies], axis=1)
            x_cols = x_cols + list(dummies.columns)
        else:
            frame["_t"] = frame[session].astype(float)
            x_cols = [*x_cols, "_t"]
            names["_t"] = f"{session} (baseline hazard)"
            if baseline == "quadratic":
                frame["_t2"] = frame["_t"] ** 2
                x_cols.append("_t2")
                names["_t2"] = f"{session}^2 (baseline hazard)"
    frame = frame.join(client_info, on=client)
    unit = "clients" if method == "logistic" else "sessions"
    for col in client_info.columns:
        miss = frame[col].isna()
        if miss.any():
            label = therapist if col == "_cluster" else col
            rows.append(
                (f"missing {label}", label, int(miss.sum()), int(frame.loc[miss, client].nunique()))
            )
            frame = frame[~miss]
    x_cols = x_cols + [c for c in client_info.columns if c != "_cluster"]
    x = sm.add_constant(frame[x_cols].astype(float), has_constant="add").rename(
        columns={"const": "Intercept"}
    )
    y = frame[y_col].to_numpy(dtype=float)
    constant = [c for c in x.columns if c != "Intercept" and x[c].nunique(dropna=False) <= 1]
    x = x.drop(columns=constant)  # e.g. no client had a rupture in the window: no term
    groups = pd.factorize(frame["_cluster"])[0] if therapist is not None else None
    n_clusters = int(len(np.unique(groups))) if groups is not None else None
    mixed = None
    if engine == "glmm":
        _glm_checks(y, x)
        mixed = _glmm_fit(y, x, groups)
        fit = None
        est = mixed.params["estimate"].to_numpy()
        se = mixed.params["se"].to_numpy()
        params = _params_from(est, se, x, names)
        loglik, aic, bic = mixed.loglik, mixed.aic, mixed.bic
        converged = bool(mixed.converged)
    else:
        fit = _glm(y, x, groups)
        params = _params(fit, x, names)
        loglik, aic, bic = float(fit.llf), float(fit.aic), float(fit.bic_llf)
        converged = bool(getattr(fit, "converged", True))
    notes = [
        rule,
        "std_estimate is the change in log-odds per SD of the predictor; odds_ratio is "
        "exp(estimate)",
    ]
    if events is not None and (ruptures is None or isinstance(ruptures, dict)):
        notes.append(
            "ruptures detected prospectively: "
            + events.attrs.get("rule", "")
            + "; only information available before each dropout is used"
        )
    for col in constant:
        notes.append(
            f"{names.get(col, col)} has one value for every {unit[:-1]} (for ruptures: none "
            "in the window), so it cannot be estimated and was left out of the model"
        )
    if groups is None:
        notes.append("standard errors assume independent clients (therapist=None)")
    elif engine == "glmm":
        notes.append(
            f"logistic GLMM with a random intercept for {therapist!r} ({n_clusters} "
            "therapists; Laplace approximation, Wald z tests with the Hessian-based "
            "covariance, as glmer): estimates are conditional on the therapist"
        )
        notes.extend(mixed.notes)
    else:
        notes.append(
            f"cluster-robust standard errors by {therapist!r} ({n_clusters} clusters, "
            "small-sample factor G/(G-1) x (N-1)/(N-K), as sandwich::vcovCL type HC1)"
        )
        if n_clusters < 20:
            notes.append(
                f"only {n_clusters} therapist clusters: cluster-robust SEs can be too small"
            )
    n_event = int(y.sum())
    n_clients_used = int(frame[client].nunique())
    if method == "discrete_time":
        notes.append(
            "the hazard of leaving after an attended session given the alliance at that "
            "session; missed sessions carry no risk row"
        )
    counts = {"clients": n_clients_used}
    if method == "discrete_time":
        counts["sessions"] = len(frame)
    if n_clusters is not None:
        counts["therapists"] = n_clusters
    return DropoutResult(
        model=f"dropout ({'client-level logistic' if method == 'logistic' else 'discrete-time'})",
        params=params,
        loglik=float(loglik),
        nobs=len(frame),
        excluded=exclusion_log(rows),
        missing_data=(
            f"complete cases: {len(frame)} {unit} of {n_clients_used} clients used; every "
            "left-out client or session is counted in excluded"
        ),
        citation=(LOGISTIC_CITATION if method == "logistic" else DISCRETE_CITATION)
        + ("; " + GLMM_CITATION if engine == "glmm" else ""),
        notes=notes,
        n_by_level=counts,
        aic=float(aic),
        bic=float(bic),
        converged=converged,
        singular=None if mixed is None else bool(mixed.singular),
        variance_components=(mixed.variance_components if mixed is not None else pd.DataFrame()),
        data=frame.drop(columns=["_cluster"], errors="ignore").reset_index(drop=True),
        method=method,
        n_dropout=n_event,
        n_clients=n_clients_used,
        n_clusters=n_clusters,
        glm=fit,
        engine=engine,
        mixed_model=mixed,
    )


def _logistic_frame(pp, sessions, events, alliance, client, session, window, rows):
    k = window.sessions
    ordered = sessions.sort_values([client, session], kind="stable")
    scores = ordered.assign(**{alliance: pd.to_numeric(ordered[alliance], errors="coerce")})
    in_window, enough, short = window.mask(scores, alliance, client, session)
    first = sessions.groupby(client, sort=False)[session].min()
    inside = scores.loc[in_window]
    early = inside.groupby(client, sort=False)[alliance].mean()
    early = early[enough.groupby(scores[client], sort=False).first().reindex(early.index)]
    if window.counts == "numbers":
        window_end = first + k - 1
    else:
        window_end = inside.groupby(client, sort=False)[session].max()
    per_client = pp.groupby(client, sort=False).agg(
        left=("left", "max"), last_session=("last_session", "first")
    )
    # clients with no risk row (finished all planned sessions) are completers
    everyone = pd.Index(pd.unique(sessions[client]), name=client)
    last_all = sessions.groupby(client, sort=False)[session].max()
    per_client = per_client.reindex(everyone)
    per_client["left"] = per_client["left"].fillna(0).astype(int)
    per_client["last_session"] = last_all.reindex(everyone).to_numpy()
    per_client["first_session"] = first.reindex(everyone).to_numpy()
    per_client["early_alliance"] = early.reindex(everyone).to_numpy()
    per_client["window_end"] = window_end.reindex(everyone).to_numpy()
    lo, hi = int(first.min()), int(first.min()) + k - 1
    where = f"sessions {lo}-{hi}" if window.counts == "numbers" else f"first {k} rated sessions"
    within = per_client["last_session"] <= per_client["window_end"]
    if within.any():
        rows.append(
            (
                f"last session within the early window ({where}): dropout "
                "would not follow the predictor",
                session,
                int(sessions[client].isin(per_client.index[within]).sum()),
                int(within.sum()),
            )
        )
    per_client = per_client[~within]
    unrated = per_client["early_alliance"].isna()
    if unrated.any():
        rows.append(
            (
                f"no rated session among the first {k}" if window.needed == 1 else short,
                alliance,
                int(sessions[client].isin(per_client.index[unrated]).sum()),
                int(unrated.sum()),
            )
        )
    per_client = per_client[~unrated]
    names = {"early_alliance": f"early {alliance} (mean of {where})"}
    x_cols = ["early_alliance"]
    if events is not None:
        ev = events[[client, session]].copy()
        ev["_end"] = ev[client].map(per_client["window_end"])
        ev = ev[pd.to_numeric(ev[session]).astype(float) <= ev["_end"]]
        counts = ev.groupby(client).size()
        per_client["ruptures"] = counts.reindex(per_client.index).fillna(0).to_numpy(float)
        names["ruptures"] = f"ruptures in {where}"
        x_cols.append("ruptures")
    frame = per_client.drop(columns=["window_end"]).reset_index()
    return frame, x_cols, names, "left"


def _hazard_frame(pp, events, alliance, client, session, rows):
    frame = pp.copy()
    frame[alliance] = pd.to_numeric(frame[alliance], errors="coerce").astype(float)
    names = {alliance: alliance}
    x_cols = [alliance]
    if events is not None:
        frame["open_rupture"] = _open_ruptures(events, frame, client, session)
        names["open_rupture"] = "unrepaired rupture so far"
        x_cols.append("open_rupture")
    miss = frame[alliance].isna()
    if miss.any():
        lost = int(frame.loc[miss, "left"].sum())
        rows.append(
            (
                f"session without an alliance rating ({lost} of them a dropout client's last "
                "session, whose event is lost)",
                alliance,
                int(miss.sum()),
                int(frame.loc[miss, client].nunique()),
            )
        )
    frame = frame[~miss]
    return frame, x_cols, names, "left"
