"""Data preparation shared by the alliance -> outcome models (vectorized, no loop over clients).

* :func:`as_long` accepts a :class:`~alliance.study.Study` or a long DataFrame and merges
  client-level columns from ``study.clients``;
* :func:`check_sessions` refuses non-integer session numbers;
* :func:`lead` joins the value of a column ``lag`` sessions later *by session number*
  (a missed session leaves the pair missing, it never steps to the next attended one);
* :func:`decompose` splits a time-varying variable into a within-client part (person-mean
  centred, optionally after removing each client's linear session trend, Wang & Maxwell
  2015) and a between-client part (the client mean; Curran & Bauer 2011);
* :class:`Exclusions` keeps the exclusion log every model reports;
* :func:`standardize` turns raw slopes into standardized ones at a stated level.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from alliance._checks import format_rows, renamed, require_columns, require_frame
from alliance.instruments import higher_is_better
from alliance.results import exclusion_log

__all__ = [
    "Exclusions",
    "as_long",
    "attach_client_columns",
    "check_sessions",
    "client_table",
    "code_moderator",
    "decompose",
    "fisher_ci",
    "fit_client_model",
    "lead",
    "lmm_params",
    "r_from_t",
    "standardize",
]


def as_long(data, *columns: str | None, client: str = "client") -> pd.DataFrame:
    """A long DataFrame from ``data`` (a Study or a DataFrame).

    For a Study, ``study.sessions`` is used and each requested column that is not in it but is
    in ``study.clients`` is merged in by ``client``. The result is a copy with a fresh
    ``RangeIndex``; only the requested (non-None) columns are kept, in order, without
    duplicates.
    """
    wanted = list(dict.fromkeys(c for c in columns if c is not None))
    if (
        hasattr(data, "sessions")
        and hasattr(data, "clients")
        and not isinstance(data, pd.DataFrame)
    ):
        sessions = require_frame(data.sessions, "study.sessions")
        clients = data.clients
        extra = [c for c in wanted if c not in sessions.columns and c in clients.columns]
        if extra:
            require_columns(clients, table="study.clients", client=client)
            if clients[client].duplicated().any():
                dup = clients.loc[clients[client].duplicated(), client].iloc[0]
                raise ValueError(
                    f"study.clients has client {dup!r} more than once; it must have one row "
                    "per client."
                )
            sessions = sessions.merge(
                clients[[client, *extra]], on=client, how="left", validate="many_to_one"
            )
        frame = sessions
    else:
        frame = require_frame(data)
    roles = {f"{c!r} column": c for c in wanted}
    require_columns(frame, table="data", **roles)
    return frame[wanted].reset_index(drop=True).copy()


def check_sessions(frame: pd.DataFrame, session: str, client: str) -> pd.DataFrame:
    """Refuse non-integer or duplicated session numbers; return the frame sorted."""
    s = pd.to_numeric(frame[session], errors="coerce")
    bad = s.isna() | (s != np.round(s))
    if bad.any():
        raise ValueError(
            f"column {session!r} has {int(bad.sum())} missing or non-integer values "
            f"({format_rows(frame.index[bad])}); sessions must be whole numbers "
            "(1, 2, 3, ...). Drop or fix those rows."
        )
    frame = frame.assign(**{session: s.astype("int64")})
    dup = frame.duplicated([client, session], keep=False)
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} rows repeat a client x session pair ({format_rows(frame.index[dup])})"
            "; the models need one row per client and session. Aggregate or drop duplicates."
        )
    return frame.sort_values([client, session], kind="stable").reset_index(drop=True)


def lead(frame: pd.DataFrame, column: str, client: str, session: str, lag: int = 1) -> pd.Series:
    """The value of ``column`` at session ``session + lag`` of the same client (NaN if absent).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"client": ["a", "a", "a", "b"], "session": [1, 2, 4, 1],
    ...                   "y": [1.0, 2.0, 4.0, 9.0]})
    >>> lead(d, "y", "client", "session").tolist()
    [2.0, nan, nan, nan]
    """
    later = frame[[client, session, column]].rename(columns={column: "_lead"})
    later = later.assign(**{session: later[session] - lag})
    merged = frame[[client, session]].merge(later, on=[client, session], how="left")
    return pd.Series(merged["_lead"].to_numpy(), index=frame.index, name=f"{column}_lead{lag}")


def decompose(
    frame: pd.DataFrame, column: str, client: str, session: str, *, detrend: bool = True
) -> pd.DataFrame:
    """Within- and between-client parts of a time-varying variable.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data.
    column, client, session : str
        Column names.
    detrend : bool
        Remove each client's linear session trend before centring (Wang & Maxwell 2015): the
        within part is the residual of the client's own least-squares line, so that growth does
        not masquerade as a within-client effect. Clients with fewer than three observed values
        (whose line fits exactly, or is undefined) get a within part of 0 -- they inform the
        between part only. Without detrending, the within part is the deviation from the
        client's mean (Curran & Bauer 2011).

    Returns
    -------
    pandas.DataFrame
        ``within``, ``between`` (the client's mean over observed values), ``trend`` (the
        client's slope per session; NaN without detrending), ``n_obs`` (observed values of the
        client). Rows with a missing value get NaN ``within``.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"client": ["a"] * 4, "session": [1, 2, 3, 4],
    ...                   "x": [1.0, 2.0, 4.0, 5.0]})
    >>> decompose(d, "x", "client", "session")["within"].round(2).tolist()
    [0.1, -0.3, 0.3, -0.1]
    >>> decompose(d, "x", "client", "session", detrend=False)["within"].tolist()
    [-2.0, -1.0, 1.0, 2.0]
    """
    x = pd.to_numeric(frame[column], errors="coerce").astype(float)
    ok = x.notna()
    s = frame[session].astype(float).where(ok)
    g = frame[client]
    n = ok.groupby(g).transform("sum").astype(float)
    mean_x = x.groupby(g).transform("mean")
    out = pd.DataFrame(index=frame.index)
    out["between"] = mean_x
    out["n_obs"] = n.astype("int64")
    if detrend:
        mean_s = s.groupby(g).transform("mean")
        ds = s - mean_s
        dx = x - mean_x
        sxx = (ds * ds).groupby(g).transform("sum")
        sxy = (ds * dx).groupby(g).transform("sum")
        slope = (sxy / sxx.where(sxx > 0)).where(n >= 3)
        within = (dx - slope * ds).where(n >= 3, 0.0)
        out["within"] = within.where(ok)
        out["trend"] = slope
    else:
        out["within"] = (x - mean_x).where(ok)
        out["trend"] = np.nan
    return out[["within", "between", "trend", "n_obs"]]


def client_table(frame: pd.DataFrame, client: str, columns: Iterable[str]) -> pd.DataFrame:
    """One row per client with the first non-missing value of each client-level column.

    Raises if a column varies within a client (it is then not a client-level variable).
    """
    columns = list(columns)
    if not columns:
        return pd.DataFrame({client: pd.unique(frame[client])})
    grouped = frame.groupby(client, sort=False)[columns]
    varying = grouped.nunique(dropna=True).gt(1).any()
    if varying.any():
        names = ", ".join(repr(c) for c in varying.index[varying])
        raise ValueError(
            f"{names} varies within clients, so it is not a client-level variable; pass a "
            "column with one value per client (e.g. from study.clients)."
        )
    return grouped.first().reset_index()


class Exclusions:
    """Collects (reason, column, n_rows, n_clients) rows for a result's exclusion log."""

    def __init__(self, client: str):
        self.client = client
        self.rows: list[tuple[str, str | None, int, int]] = []

    def add(self, reason: str, mask: pd.Series | np.ndarray, frame: pd.DataFrame, column=None):
        """Record the rows of ``frame`` flagged by ``mask`` (nothing when none is flagged).

        ``n_clients`` counts the clients who lose every row to this reason, i.e. leave the
        analysis because of it.
        """
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return
        ids = frame[self.client]
        lost = pd.Series(mask, index=frame.index).groupby(ids.to_numpy()).all()
        self.rows.append((reason, column, n, int(lost.sum())))

    def add_counts(self, reason: str, n_rows: int, n_clients: int, column=None):
        if n_rows or n_clients:
            self.rows.append((reason, column, int(n_rows), int(n_clients)))

    def frame(self) -> pd.DataFrame:
        return exclusion_log(self.rows)


def attach_client_columns(
    table: pd.DataFrame,
    frame: pd.DataFrame,
    client: str,
    therapist: str | None,
    columns: Iterable[str],
    ex: Exclusions,
) -> pd.DataFrame:
    """Merge therapist and client-level columns; exclude clients missing any of them."""
    cols = [c for c in dict.fromkeys([therapist, *columns]) if c is not None]
    if not cols:
        return table
    per_client = client_table(frame, client, cols)
    table = table.merge(per_client, on=client, how="left")
    for c in cols:
        miss = table[c].isna()
        if miss.any():
            n_rows = int(frame[client].isin(table.loc[miss, client]).sum())
            ex.add_counts(f"missing {c}", n_rows, int(miss.sum()), c)
            table = table[~miss]
    return table.reset_index(drop=True)


def standardize(estimate: float | np.ndarray, sd_x, sd_y):
    """``estimate * sd_x / sd_y`` (NaN when an SD is missing or zero)."""
    sd_x = np.asarray(sd_x, dtype=float)
    sd_y = np.asarray(sd_y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(estimate, dtype=float) * sd_x / np.where(sd_y > 0, sd_y, np.nan)
    return out


def lmm_params(fit, names: dict[str, str], std: dict[str, float] | None = None) -> pd.DataFrame:
    """An lmm parameter table with terms renamed and standardized estimates added."""
    params = fit.params.copy()
    params["term"] = params["term"].map(lambda t: _rename_term(t, names))
    std = std or {}
    params["std_estimate"] = [
        std.get(t, np.nan) * e if t in std else np.nan
        for t, e in zip(params["term"], params["estimate"], strict=True)
    ]
    return params


def _rename_term(term: str, names: dict[str, str]) -> str:
    parts = term.split(":")
    return ":".join(names.get(p, p) for p in parts)


def fit_client_model(
    table: pd.DataFrame,
    response: str,
    terms: list[str],
    therapist: str | None,
    *,
    reml: bool = True,
    what: str = "model",
):
    """Fit ``response ~ terms (+ (1 | therapist))`` on a one-row-per-client table.

    With a therapist column the model is a random-intercept :func:`lmm`; without one it is
    ordinary least squares (statsmodels) with t-based inference. Returns ``(params,
    variance_components, loglik, fit)`` with params in the lmm layout.
    """
    formula = f"{response} ~ {' + '.join(terms) if terms else '1'}"
    if therapist is not None:
        from alliance.models.lmm import lmm

        full = f"{formula} + (1 | {therapist})"
        try:
            fit = lmm(full, table, reml=reml)
        except ValueError as err:
            raise ValueError(f"the {what} {full!r} cannot be fitted: {err}") from err
        return fit.params.copy(), fit.variance_components, fit.loglik, fit
    import statsmodels.formula.api as smf

    if len(table) <= len(terms) + 1:
        raise ValueError(
            f"the {what} {formula!r} cannot be fitted: {len(table)} clients for "
            f"{len(terms) + 1} coefficients; more clients are needed."
        )
    try:
        fit = smf.ols(formula, table).fit()
    except Exception as err:  # patsy errors have several types
        raise ValueError(f"the {what} {formula!r} cannot be fitted: {err}") from err
    if fit.df_resid < 1 or np.linalg.matrix_rank(fit.model.exog) < fit.model.exog.shape[1]:
        raise ValueError(
            f"the {what} {formula!r} cannot be fitted: its design is rank deficient (a term is "
            "constant or duplicates another); remove that term."
        )
    ci = fit.conf_int()
    params = pd.DataFrame(
        {
            "term": list(fit.params.index),
            "estimate": fit.params.to_numpy(),
            "se": fit.bse.to_numpy(),
            "df": float(fit.df_resid),
            "statistic": fit.tvalues.to_numpy(),
            "p": fit.pvalues.to_numpy(),
            "ci_low": ci[0].to_numpy(),
            "ci_high": ci[1].to_numpy(),
        }
    )
    vc = pd.DataFrame(
        {
            "group": ["Residual"],
            "term": [""],
            "term2": [""],
            "vcov": [fit.scale],
            "sdcor": [np.sqrt(fit.scale)],
        }
    )
    return params, vc, float(fit.llf), fit


def r_from_t(t, df):
    """Effect size r from a t statistic: ``t / sqrt(t^2 + df)`` (Rosenthal 1991)."""
    t = np.asarray(t, dtype=float)
    df = np.asarray(df, dtype=float)
    return t / np.sqrt(t * t + np.where(np.isfinite(df), df, np.nan))


def fisher_ci(r: float, n: int, level: float = 0.95, k: int = 0) -> tuple[float, float]:
    """Confidence interval of a (partial) correlation by Fisher's z, ``k`` controlled variables."""
    from scipy import stats

    if not np.isfinite(r) or n - 3 - k < 1:
        return (np.nan, np.nan)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) / np.sqrt(n - 3 - k)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def code_moderator(values: pd.Series, name: str) -> tuple[pd.Series, list[float], list[str], str]:
    """Numeric coding of a moderator and the values at which simple slopes are computed.

    Returns ``(coded, at, labels, coding)``: booleans and two-level variables are coded 0/1
    (simple slopes at both); other numeric moderators are left as they are (simple slopes at
    the mean and +-1 SD over clients, Aiken & West 1991). More than two text levels are refused.
    """
    s = values
    present = s.dropna()
    if pd.api.types.is_bool_dtype(s) or (
        not pd.api.types.is_numeric_dtype(s) and present.nunique() <= 2
    ):
        levels = sorted(present.unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(levels) < 2:
            raise ValueError(
                f"moderator {name!r} takes a single value ({levels[0] if levels else 'none'}) in "
                "the data used; a moderator needs at least two."
            )
        if pd.api.types.is_bool_dtype(s) or set(levels) == {False, True}:
            levels = [False, True]
        coded = s.map({levels[0]: 0.0, levels[1]: 1.0}).astype(float)
        return (
            coded,
            [0.0, 1.0],
            [f"{name}={levels[0]}", f"{name}={levels[1]}"],
            (f"{levels[0]!r} = 0, {levels[1]!r} = 1"),
        )
    if not pd.api.types.is_numeric_dtype(s):
        raise ValueError(
            f"moderator {name!r} has {present.nunique()} text levels; pass a numeric or two-level "
            "moderator (make dummy variables for more levels)."
        )
    coded = s.astype(float)
    uniq = np.unique(present.to_numpy(dtype=float))
    if len(uniq) < 2:
        raise ValueError(f"moderator {name!r} is constant in the data used; it cannot moderate.")
    if len(uniq) == 2 and set(uniq) == {0.0, 1.0}:
        return coded, [0.0, 1.0], [f"{name}=0", f"{name}=1"], "0/1 as given"
    m, sd = float(present.mean()), float(present.std())
    return (
        coded,
        [m - sd, m, m + sd],
        [f"{name} mean - 1 SD", f"{name} mean", f"{name} mean + 1 SD"],
        "as given (numeric)",
    )


def direction_argument(function: str, direction: str | None, lower_is_better) -> str | None:
    """``direction=``, or the deprecated ``lower_is_better=`` turned into it (with a warning)."""
    if lower_is_better is None:
        return direction
    old = "lower_is_better" if lower_is_better else "higher_is_better"
    if direction is not None and higher_is_better(direction) == (not lower_is_better):
        direction = old  # the same direction in other words
    return renamed(function, "lower_is_better", old, "direction", direction)


#: The two directions of a session-level effect, as ``effect=`` names them.
EFFECTS = ("alliance->outcome", "outcome->alliance")


def effect_argument(function: str, effect: str | None, reverse) -> bool:
    """Whether the outcome predicts the alliance: ``effect=`` (or the deprecated ``reverse=``).

    Examples
    --------
    >>> from alliance.models._prep import effect_argument
    >>> effect_argument("f", None, None), effect_argument("f", "outcome->alliance", None)
    (False, True)
    """
    if effect is not None:
        key = str(effect).replace(" ", "").lower()
        if key not in EFFECTS:
            raise ValueError(
                f"{function}: effect={effect!r} is not understood; pass "
                "effect='alliance->outcome' (the alliance at t predicting the outcome at "
                "t + lag, the default) or effect='outcome->alliance' (the reverse direction)"
            )
        effect = key
    if reverse is not None:
        old = EFFECTS[1] if reverse else EFFECTS[0]
        effect = renamed(function, "reverse", old, "effect", effect)
    return effect == EFFECTS[1]


def lagged_pairs(
    frame: pd.DataFrame,
    x_col: str,
    y_col: str,
    client: str,
    session: str,
    *,
    lag: int,
    detrend: bool,
    lagged_outcome: bool,
    therapist: str | None = None,
    covariates: Iterable[str] = (),
    moderator: str | None = None,
    moderator_codes: pd.Series | None = None,
) -> tuple[pd.DataFrame, Exclusions, dict[str, str]]:
    """The (t, t + lag) pairs of the session-level models, with every row left out counted.

    One row per client x session t: ``client``, ``session`` (t + lag), ``y`` (the response
    at t + lag), ``x_within``/``x_between`` (the predictor at t split within and between
    clients, detrended first when asked), ``y_now`` (the response at t), ``therapist``,
    ``mod`` (``moderator_codes``: one code per client, indexed by client) and ``cov<i>``.
    Each row left out is counted under its first reason. Shared by
    ``within_between(method="mlm")`` and the session-level ``moderation``.

    Returns
    -------
    (pandas.DataFrame, Exclusions, dict)
        The pairs used, the exclusions, and ``cov<i>`` -> covariate name.
    """
    parts = decompose(frame, x_col, client, session, detrend=detrend)
    work = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": frame[session].to_numpy() + lag,
            "y": pd.to_numeric(lead(frame, y_col, client, session, lag)).astype(float).to_numpy(),
            "x_within": parts["within"].to_numpy(),
            "x_between": parts["between"].to_numpy(),
            "y_now": pd.to_numeric(frame[y_col]).astype(float).to_numpy(),
        }
    )
    if therapist is not None:
        work["therapist"] = frame[therapist].to_numpy()
    if moderator_codes is not None:
        work["mod"] = frame[client].map(moderator_codes).to_numpy()
    cov_names = {}
    for i, c in enumerate(covariates):
        work[f"cov{i}"] = frame[c].to_numpy()
        cov_names[f"cov{i}"] = c
    ex = Exclusions("client")
    n_sess = frame.groupby(client)[session].transform("size").to_numpy()
    last = frame.groupby(client)[session].transform("max").to_numpy()
    present_later = (
        frame[[client, session]]
        .merge(
            frame[[client, session]].assign(**{session: frame[session] - lag, "_p": True}),
            on=[client, session],
            how="left",
        )["_p"]
        .notna()
        .to_numpy()
    )
    rules = [
        ("single-session client", n_sess == 1, client),
        (f"missing {x_col} at t", work["x_within"].isna().to_numpy(), x_col),
        (
            f"no session t + {lag} (last session of the client)",
            frame[session].to_numpy() + lag > last,
            session,
        ),
        (f"session t + {lag} missed", ~present_later, session),
        (f"missing {y_col} at t + {lag}", work["y"].isna().to_numpy(), y_col),
    ]
    if lagged_outcome:
        rules.append((f"missing {y_col} at t (lagged response)", work["y_now"].isna(), y_col))
    if therapist is not None:
        rules.append(("missing therapist", work["therapist"].isna().to_numpy(), therapist))
    if moderator_codes is not None:
        rules.append((f"missing moderator {moderator}", work["mod"].isna().to_numpy(), moderator))
    for key, c in cov_names.items():
        rules.append((f"missing covariate {c}", work[key].isna().to_numpy(), c))
    left = np.ones(len(work), dtype=bool)
    for reason, mask, col in rules:
        hit = left & np.asarray(mask, dtype=bool)
        ex.add(reason, hit, work, col)
        left &= ~hit
    used = work[left].reset_index(drop=True)
    if used.empty or used["client"].nunique() < 2:
        raise ValueError(
            f"no model can be fitted: {len(used)} complete (t, t + {lag}) pairs from "
            f"{used['client'].nunique()} clients. The model needs clients with two rated "
            f"sessions {lag} apart; check the session numbers and missing values "
            "(see the exclusion counts above) or use a smaller lag."
        )
    return used, ex, cov_names
