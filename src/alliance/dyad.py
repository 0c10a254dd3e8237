"""Both sides of the dyad: client- and therapist-rated alliance.

Three analyses of the same relationship rated by its two members (or by a client and an
observer):

* :func:`agreement` -- how far the two ratings agree: the within-client (session-level,
  person-mean centred) and between-client correlations, the mean difference and its change
  over sessions, and the share of discrepant dyads (Shanock et al. 2010);
* :func:`rsa` -- polynomial regression with response surface analysis of an outcome on both
  ratings (Edwards & Parry 1993; Shanock et al. 2010; Humberg, Nestler & Back 2019), the
  surface parameters a1..a5, the stationary point and principal axes, and the congruence
  conditions;
* :func:`apim` -- the one-with-many actor-partner style model: a client's outcome on the
  client's and the therapist's ratings, each split into its therapist mean and the
  within-therapist deviation, with a therapist random intercept (Kenny, Kashy & Cook 2006;
  Marcus, Kashy & Baldwin 2009).

:func:`simulate_dyads` makes a small study with known truth for the examples and tests.
Both ratings must be on one scale: :func:`agreement` and :func:`rsa` refuse ratings on
different ranges or forms unless ``rescale=True`` (then both become POMP scores, 0-100).

References
----------
Bakdash, J. Z., & Marusich, L. R. (2017). Repeated measures correlation. Frontiers in
Psychology, 8, 456.

Cohen, P., Cohen, J., Aiken, L. S., & West, S. G. (1999). The problem of units and the
circumstance for POMP. Multivariate Behavioral Research, 34(3), 315-346.

Edwards, J. R., & Parry, M. E. (1993). On the use of polynomial regression equations as an
alternative to difference scores in organizational research. Academy of Management Journal,
36(6), 1577-1613.

Humberg, S., Nestler, S., & Back, M. D. (2019). Response surface analysis in personality and
social psychology: Checklist and clarifications for the case of congruence hypotheses. Social
Psychological and Personality Science, 10(3), 409-419.

Kenny, D. A., Kashy, D. A., & Cook, W. L. (2006). Dyadic data analysis. New York: Guilford.

Marcus, D. K., Kashy, D. A., & Baldwin, S. A. (2009). Studying psychotherapy using the
one-with-many design: The therapeutic alliance as an exemplar. Journal of Counseling
Psychology, 56(4), 537-548.

Schönbrodt, F. D., Humberg, S., & Nestler, S. (2018). Testing similarity effects with dyadic
response surface analysis. European Journal of Personality, 32(6), 627-641.

Shanock, L. R., Baran, B. E., Gentry, W. A., Pattison, S. C., & Heggestad, E. D. (2010).
Polynomial regression with response surface analysis: A powerful approach for examining
moderation and overcoming limitations of difference scores. Journal of Business and
Psychology, 25(4), 543-554.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alliance import instruments
from alliance._checks import require_columns, require_frame
from alliance.models.lmm import LmmResult, lmm
from alliance.results import Result, exclusion_log, tidy_params
from alliance.study import Codebook, Study

__all__ = [
    "AgreementResult",
    "ApimResult",
    "RsaResult",
    "agreement",
    "apim",
    "rsa",
    "simulate_dyads",
]

AGREEMENT_CITATION = (
    "Bakdash & Marusich (2017) (within-client correlation); Shanock, Baran, Gentry, Pattison "
    "& Heggestad (2010) (discrepant dyads)"
)
RSA_CITATION = (
    "Edwards & Parry (1993); Shanock et al. (2010); Humberg, Nestler & Back (2019); "
    "Schönbrodt, Humberg & Nestler (2018)"
)
APIM_CITATION = "Kenny, Kashy & Cook (2006); Marcus, Kashy & Baldwin (2009) (one-with-many design)"
APIM_NOTE = (
    "One-with-many actor-partner style model: one outcome per client, so this is not a full "
    "APIM (which needs an outcome of each dyad member); the client's rating is the actor "
    "effect and the therapist's rating of that client the partner effect."
)
#: Rows of ``RsaResult.surface``: the surface parameters as contrasts of b1..b5.
SURFACE_WEIGHTS = {
    "a1": (1, 1, 0, 0, 0),  # slope along the line of congruence (y = x) at the centre
    "a2": (0, 0, 1, 1, 1),  # curvature along the line of congruence
    "a3": (1, -1, 0, 0, 0),  # slope along the line of incongruence (y = -x) at the centre
    "a4": (0, 0, 1, -1, 1),  # curvature along the line of incongruence
    "a5": (0, 0, 1, 0, -1),  # b3 - b5: asymmetry of the curvature
}
_SURFACE_MEANING = {
    "a1": "slope along the line of congruence (x = y)",
    "a2": "curvature along the line of congruence",
    "a3": "slope along the line of incongruence (x = -y)",
    "a4": "curvature along the line of incongruence",
    "a5": "b3 - b5 (x^2 vs y^2 asymmetry)",
}


# --------------------------------------------------------------------------- results


@dataclass
class _DyadFields:
    """Fields shared by the dyadic results (a mixin; each result is also a ``Result``)."""

    model: str
    params: pd.DataFrame
    nobs: int
    n_by_level: dict[str, int] = field(default_factory=dict)
    excluded: pd.DataFrame = field(default_factory=exclusion_log)
    citation: str = ""
    notes: list[str] = field(default_factory=list)
    x: str = ""
    y: str = ""
    scale: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        self.params = tidy_params(self.params)

    def _n_by_level(self) -> dict[str, int]:
        return dict(self.n_by_level)


@dataclass
class AgreementResult(_DyadFields, Result):
    """Result of :func:`agreement` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        One row per statistic: ``within-client r``, ``between-client r``, ``mean
        difference (x - y)``, ``difference change per session``, ``share discrepant``,
        ``share x higher``, ``share y higher`` (term, estimate, se, df, statistic, p, ci_low,
        ci_high; the shares with Wilson intervals and no test).
    dyads : pandas.DataFrame
        One row per client: n_sessions, x_mean, y_mean, z_x, z_y, difference (x_mean -
        y_mean), category (``"agreement"``, ``"x higher"``, ``"y higher"``).
    difference_model : alliance.models.LmmResult
        The mixed model of the session-level difference ``x - y`` on session.
    scale : pandas.DataFrame
        Per rating: column, rater, instrument, minimum, maximum, source of the range.
    """

    dyads: pd.DataFrame = field(default_factory=pd.DataFrame)
    difference_model: LmmResult | None = None


@dataclass
class RsaResult(_DyadFields, Result):
    """Result of :func:`rsa` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        The polynomial coefficients b0..b5: terms ``Intercept``, ``x``, ``y``, ``x^2``,
        ``x*y``, ``y^2`` (x and y centred at ``centre``).
    surface : pandas.DataFrame
        Indexed by term ``a1`` .. ``a5``, the ``params`` columns plus ``meaning``: linear
        combinations ``c'b`` with exact SEs ``sqrt(c'Vc)`` and t tests on the model's df.
    stationary : pandas.DataFrame
        Indexed by ``X0``, ``Y0`` (the stationary point), ``p10``, ``p11`` (intercept and
        slope of the first principal axis), ``p20``, ``p21`` (the second): delta-method SEs,
        z tests and Wald intervals (NaN when the surface has no unique stationary point).
    congruence : pandas.DataFrame
        The congruence conditions of Humberg, Nestler & Back (2019): condition, term, null,
        estimate, ci_low, ci_high, p, met.
    broad_congruence, strict_congruence : bool
        All of the broad (strict) conditions met.
    centre : float
        The pooled grand mean of x and y that both were centred at.
    coefficients, cov_params
        b0..b5 as a Series and their covariance matrix (used for the surface and its plot).
    mixed_model : alliance.models.LmmResult or None
        With ``therapist=`` or ``unit="session"``, the mixed model the estimates come from.
    data : pandas.DataFrame
        The client-level table fitted: client, therapist, x, y, outcome (uncentred); with
        ``unit="session"`` the session-level table with the within and between terms.
    unit : str
        ``"client"`` or ``"session"``.
    surface_between : pandas.DataFrame or None
        With ``unit="session"``: a1..a5 of the between-client surface (``.surface`` is
        the within-client one, ``.coefficients`` its b0..b5, ``.params`` all eleven
        coefficients).
    """

    surface: pd.DataFrame = field(default_factory=pd.DataFrame)
    stationary: pd.DataFrame = field(default_factory=pd.DataFrame)
    congruence: pd.DataFrame = field(default_factory=pd.DataFrame)
    broad_congruence: bool = False
    strict_congruence: bool = False
    centre: float = math.nan
    coefficients: pd.Series = field(default_factory=pd.Series)
    cov_params: pd.DataFrame = field(default_factory=pd.DataFrame)
    mixed_model: LmmResult | None = None
    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    outcome: str = ""
    unit: str = "client"
    surface_between: pd.DataFrame | None = None

    def predict(self, x, y) -> np.ndarray:
        """The fitted surface at ratings ``x``, ``y`` (on the scale of the data, uncentred)."""
        xc = np.asarray(x, dtype=float) - self.centre
        yc = np.asarray(y, dtype=float) - self.centre
        b = self.coefficients.to_numpy(float)
        return b[0] + b[1] * xc + b[2] * yc + b[3] * xc**2 + b[4] * xc * yc + b[5] * yc**2


@dataclass
class ApimResult(_DyadFields, Result):
    """Result of :func:`apim` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        ``Intercept``, ``<client rating> within therapist`` (actor), ``<client rating>
        therapist mean``, ``<therapist rating> within therapist`` (partner), ``<therapist
        rating> therapist mean``.
    variance_components : pandas.DataFrame
        Therapist and residual variance (lme4's ``VarCorr`` layout).
    mixed_model : alliance.models.LmmResult
        The fitted model (internal names ``c_within, c_between, t_within, t_between``).
    data : pandas.DataFrame
        The client-level table fitted, with the decomposed ratings.
    """

    variance_components: pd.DataFrame = field(default_factory=pd.DataFrame)
    mixed_model: LmmResult | None = None
    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: float = math.nan
    aic: float = math.nan
    bic: float = math.nan
    converged: bool | None = None
    singular: bool | None = None


# --------------------------------------------------------------------------- inputs


def _split(data) -> tuple[pd.DataFrame, pd.DataFrame | None, Codebook | None]:
    """sessions, clients and codebook of a Study; the frame itself otherwise."""
    if isinstance(data, Study):
        return data.sessions, data.clients, data.codebook
    return require_frame(data), None, None


def _where(column: str, sessions: pd.DataFrame, clients: pd.DataFrame | None) -> str:
    if column in sessions.columns:
        return "sessions"
    if clients is not None and column in clients.columns:
        return "clients"
    return ""


def _declared(book: Codebook, table: str, column: str) -> dict[str, Any]:
    """The codebook facts of a rating: rater, instrument, range."""
    fld = book.field(table, column)
    if fld is None or not fld.get("rater"):
        raise ValueError(
            f"the codebook does not declare who rated {column!r} (no 'rater' for it in the "
            f"{table} table). Add it to the field, e.g. study.codebook.field({table!r}, "
            f"{column!r})['rater'] = 'therapist' (client, therapist or observer), or pass "
            "the table itself (study.sessions) to use the observed values."
        )
    cons = fld.get("constraints", {}) or {}
    return {
        "rater": fld.get("rater"),
        "instrument": fld.get("instrument"),
        "minimum": cons.get("minimum"),
        "maximum": cons.get("maximum"),
    }


def _form(name: str | None):
    if not name:
        return None
    try:
        return instruments.get(name)
    except KeyError:
        return None


def _scale_table(
    frame: pd.DataFrame,
    x: str,
    y: str,
    book: Codebook | None,
    tables: dict[str, str],
    ranges: dict[str, tuple[float, float]] | None,
) -> pd.DataFrame:
    rows = []
    for col in (x, y):
        info: dict[str, Any] = {"rater": None, "instrument": None}
        lo = hi = None
        source = ""
        if book is not None:
            info = _declared(book, tables[col], col)
            lo, hi = info.pop("minimum"), info.pop("maximum")
            source = "codebook" if lo is not None and hi is not None else ""
            form = _form(info["instrument"])
            if not source and form is not None:
                lo, hi = form.score_range
                source = f"registry ({form.name})"
        if ranges and col in ranges:
            lo, hi = ranges[col]
            source = "ranges="
        if lo is None or hi is None:
            values = frame[col].dropna()
            lo, hi = float(values.min()), float(values.max())
            source = "observed"
        rows.append(
            {
                "column": col,
                "rater": info["rater"],
                "instrument": info["instrument"],
                "minimum": float(lo),
                "maximum": float(hi),
                "source": source,
            }
        )
    return pd.DataFrame(rows)


def _common_scale(
    frame: pd.DataFrame,
    x: str,
    y: str,
    book: Codebook | None,
    tables: dict[str, str],
    *,
    rescale: bool,
    ranges: dict[str, tuple[float, float]] | None,
    require_distinct_raters: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """x and y on one scale: checked, or POMP-rescaled on request; the scale table; notes."""
    scale = _scale_table(frame, x, y, book, tables, ranges)
    notes: list[str] = []
    raters = scale["rater"].tolist()
    if require_distinct_raters and book is not None and raters[0] == raters[1]:
        raise ValueError(
            f"{x!r} and {y!r} are both rated by the {raters[0]} (codebook 'rater'); the "
            "dyadic analyses compare two raters of one relationship (client and therapist, "
            "or client and observer). Check the codebook's 'rater' of each column."
        )
    sx, sy = scale.iloc[0], scale.iloc[1]
    problems = []
    fx, fy = _form(sx["instrument"]), _form(sy["instrument"])
    if fx is not None and fy is not None:
        facts = ("n_items", "item_min", "item_max", "scoring", "multiplier")
        differ = [f for f in facts if getattr(fx, f) != getattr(fy, f)]
        if differ:
            problems.append(
                f"different forms ({fx.name} and {fy.name} differ in {', '.join(differ)})"
            )
    if sx["source"] == "observed" and sy["source"] == "observed":
        span = max(sx["maximum"] - sx["minimum"], sy["maximum"] - sy["minimum"])
        gap = max(abs(sx["minimum"] - sy["minimum"]), abs(sx["maximum"] - sy["maximum"]))
        if gap > 0.5 * span:
            problems.append(
                f"observed ranges {sx['minimum']:g}-{sx['maximum']:g} and "
                f"{sy['minimum']:g}-{sy['maximum']:g} are too far apart to be one scale (a "
                "bound differs by more than half the larger observed span)"
            )
    elif (sx["minimum"], sx["maximum"]) != (sy["minimum"], sy["maximum"]):
        problems.append(
            f"different ranges ({x}: {sx['minimum']:g}-{sx['maximum']:g} from "
            f"{sx['source']}; {y}: {sy['minimum']:g}-{sy['maximum']:g} from {sy['source']})"
        )
    out = frame.copy()
    if problems and not rescale:
        raise ValueError(
            f"{x!r} and {y!r} are not on a common scale: {'; '.join(problems)}. Differences "
            "and surfaces need one scale with one centring. Pass rescale=True to put both on "
            "POMP scores (0-100 of each one's range; Cohen et al. 1999), or declare the "
            "ranges (ranges={column: (min, max)} or the codebook's constraints)."
        )
    if rescale:
        for row in scale.itertuples():
            span = row.maximum - row.minimum
            if not span > 0:
                raise ValueError(
                    f"the range of {row.column!r} is {row.minimum:g}-{row.maximum:g}; POMP "
                    "needs a minimum below the maximum"
                )
            out[row.column] = 100.0 * (out[row.column] - row.minimum) / span
        notes.append(
            "Ratings rescaled to POMP scores (percent of maximum possible, 0-100; Cohen et "
            "al. 1999) from the ranges in .scale"
            + (
                "; a range from the observed values depends on the sample"
                if (scale["source"] == "observed").any()
                else ""
            )
            + "."
        )
    return out, scale, notes


def _check_variation(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    for col in columns:
        values = frame[col].dropna()
        if values.nunique() < 2:
            raise ValueError(
                f"{col!r} is constant ({values.iloc[0]:g} in every {what}); a rating or "
                "outcome that does not vary cannot be correlated or modelled. Check that the "
                "right column is named"
                if len(values)
                else f"{col!r} has no values (every row is missing)"
            )


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        values = pd.to_numeric(out[col], errors="coerce")
        junk = values.isna() & out[col].notna()
        if junk.any():
            raise ValueError(
                f"column {col!r} has {int(junk.sum())} non-numeric values; ratings must be "
                "numbers or missing (NaN)"
            )
        out[col] = values.astype(float)
    return out


def _complete(
    frame: pd.DataFrame, columns: list[str], client: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows with every column present, and the exclusion log of the others (first reason)."""
    rows = []
    keep = pd.Series(True, index=frame.index)
    for col in columns:
        miss = keep & frame[col].isna()
        if miss.any():
            left = frame.loc[keep & ~miss, client]
            lost = frame.loc[miss, client].drop_duplicates()
            rows.append((f"missing {col}", col, int(miss.sum()), int((~lost.isin(left)).sum())))
            keep &= ~miss
    return frame.loc[keep], exclusion_log(rows)


def _client_table(
    data,
    ratings: list[str],
    outcome: str | None,
    client: str,
    therapist: str | None,
) -> tuple[pd.DataFrame, dict[str, str], Codebook | None, pd.DataFrame, list[str]]:
    """One row per client: the ratings (client means over sessions) and the outcome."""
    sessions, clients, book = _split(data)
    wanted = [*ratings] + ([outcome] if outcome else [])
    tables = {}
    missing = []
    for col in [*wanted, client] + ([therapist] if therapist else []):
        where = _where(col, sessions, clients)
        if not where:
            missing.append(col)
        tables[col] = where
    if missing:
        roles = {f"column {i}": c for i, c in enumerate(missing, 1)}
        require_columns(
            sessions, table="the sessions table" if clients is not None else "data", **roles
        )
    notes: list[str] = []
    sess_cols = [c for c in wanted if tables[c] == "sessions"]
    base = sessions[
        [
            client,
            *([therapist] if therapist and tables[therapist] == "sessions" else []),
            *sess_cols,
        ]
    ]
    base = _numeric(base, sess_cols)
    base, excluded = _complete(base, sess_cols, client)
    if therapist:
        tcount = base.groupby(client)[therapist].nunique() if therapist in base else None
        if tcount is not None and (tcount > 1).any():
            raise ValueError(
                f"{int((tcount > 1).sum())} clients have more than one {therapist!r}; the "
                "dyadic models need each client nested in one therapist (split such clients "
                "into one id per therapist)"
            )
    group = base.groupby(client, sort=True)
    table = group[[c for c in sess_cols if c != outcome]].mean()
    table["n_sessions"] = group.size()
    if therapist and therapist in base:
        table[therapist] = group[therapist].first()
    if outcome and tables[outcome] == "sessions":
        spread = group[outcome].agg(lambda v: v.max() - v.min())
        if (spread > 0).any():
            raise ValueError(
                f"the outcome {outcome!r} varies within clients ({int((spread > 0).sum())} "
                "clients); this is a client-level model: pass one outcome per client, e.g. "
                "the last session's score as a column of study.clients or a table with one "
                "row per client"
            )
        table[outcome] = group[outcome].first()
    if (table["n_sessions"] > 1).any() and len(sess_cols):
        notes.append(
            "Ratings are client means over sessions (n_sessions in .data); sessions with a "
            "missing rating are left out (.excluded)."
        )
    table = table.reset_index()
    client_cols = [c for c in [*wanted, therapist] if c and tables.get(c) == "clients"]
    if client_cols:
        extra = clients[[client, *client_cols]].drop_duplicates(client)
        extra = _numeric(extra, [c for c in client_cols if c != therapist])
        table = table.merge(extra, on=client, how="left") if len(table) else extra
        if "n_sessions" not in table:
            table["n_sessions"] = 1
    table, more = _complete(table, [c for c in wanted if c], client)
    if therapist:
        table, more_t = _complete(table, [therapist], client)
        more = pd.concat([more, more_t]) if len(more_t) else more
    excluded = pd.concat([excluded, more], ignore_index=True) if len(more) else excluded
    return table.reset_index(drop=True), tables, book, excluded, notes


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _r_row(term: str, r: float, df: int, level: float) -> dict[str, float]:
    """A correlation with its t test on ``df`` and a Fisher-z interval (se 1/sqrt(df - 1))."""
    t = r * math.sqrt(df / (1 - r * r)) if abs(r) < 1 else math.copysign(math.inf, r)
    p = float(2 * stats.t.sf(abs(t), df))
    z = stats.norm.ppf(0.5 + level / 2)
    if df > 1:
        lo, hi = np.tanh(np.arctanh(r) + np.array([-z, z]) / math.sqrt(df - 1))
    else:
        lo = hi = math.nan
    return {
        "term": term,
        "estimate": r,
        "se": math.sqrt((1 - r * r) / df),
        "df": df,
        "statistic": t,
        "p": p,
        "ci_low": float(lo),
        "ci_high": float(hi),
    }


# --------------------------------------------------------------------------- agreement


def agreement(
    data,
    x: str,
    y: str,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    rescale: bool = False,
    ranges: dict[str, tuple[float, float]] | None = None,
    discrepancy: float = 0.5,
    standardize: Literal["separate", "pooled"] = "separate",
    random_slope: bool = True,
    level: float = 0.95,
) -> AgreementResult:
    """Agreement of two ratings of one alliance (client vs therapist, session by session).

    * **Within-client r**: the correlation of the person-mean centred ratings over sessions
      (the repeated-measures correlation of Bakdash & Marusich 2017): do the two raters see
      the same ups and downs? t test on ``N - k - 1`` df (N sessions, k clients), Fisher-z
      interval with SE ``1 / sqrt(df - 1)``.
    * **Between-client r**: the Pearson correlation of the client means (k - 2 df).
    * **Mean difference** ``x - y`` and its **change per session**: the fixed intercept and
      slope of ``x - y ~ session + (1 + session | client)`` (``+ (1 | therapist)`` with
      ``therapist=``) fitted by :func:`alliance.models.lmm` (REML, Satterthwaite df);
      session is centred at its mean over rows, so the intercept is the mean difference at
      the average session.
    * **Share of discrepant dyads** (Shanock et al. 2010): both client means standardized
      (``standardize="separate"``: each by its own mean and SD across clients, as Shanock
      et al.; ``"pooled"``: both by the pooled mean and SD, which keeps the mean
      difference), a dyad discrepant when the standardized scores differ by more than
      ``discrepancy`` (0.5 SD).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session. With a Study, the codebook must declare
        the ``rater`` of ``x`` and ``y`` and their range (``constraints``) or a registered
        ``instrument``.
    x, y : str
        The two ratings (by convention x the client's, y the therapist's).
    client, session, therapist : str
        Column names; ``therapist`` adds a therapist random intercept to the difference
        model.
    rescale : bool, default False
        Put ratings on different ranges or forms on POMP scores (0-100) instead of refusing
        them.
    ranges : dict, optional
        ``{column: (min, max)}``: the possible range of a rating (overrides the codebook).
    discrepancy : float, default 0.5
        SD units beyond which a dyad is discrepant.
    standardize : {"separate", "pooled"}
        How the client means are standardized for the discrepant share.
    random_slope : bool, default True
        Random client slope of session in the difference model.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    AgreementResult
        ``.params`` (one row per statistic), ``.dyads``, ``.difference_model``, ``.scale``.

    Raises
    ------
    KeyError
        A column is missing (with close matches).
    ValueError
        Undeclared rater (Study), ratings not on a common scale, constant ratings, fewer
        than 4 clients or no client with two sessions.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.dyad.simulate_dyads(seed=1)
    >>> fit = alliance.dyad.agreement(study, x="wai_client", y="wai_therapist")
    >>> fit.params["term"].tolist()[:3]
    ['within-client r', 'between-client r', 'mean difference (x - y)']
    >>> r = fit.params.set_index("term")["estimate"]
    >>> bool(abs(r["within-client r"] - study.truth["within_r"]) < 0.1)
    True
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    if standardize not in ("separate", "pooled"):
        raise ValueError(f"standardize must be 'separate' or 'pooled', not {standardize!r}")
    sessions, _, book = _split(data)
    require_columns(
        sessions,
        table="the sessions table",
        x=x,
        y=y,
        client=client,
        session=session,
        therapist=therapist,
    )
    cols = [client, session] + ([therapist] if therapist else [])
    frame = _numeric(sessions[[*cols, x, y]], [x, y, session])
    tables = {x: "sessions", y: "sessions"}
    _check_variation(frame, [x, y], "session")
    frame, scale, notes = _common_scale(frame, x, y, book, tables, rescale=rescale, ranges=ranges)
    frame, excluded = _complete(frame, [session, x, y], client)
    k = frame[client].nunique()
    if k < 4:
        raise ValueError(f"agreement needs at least 4 clients with both ratings, got {k}")
    g = frame.groupby(client, sort=True)
    means = g[[x, y]].transform("mean")
    cx, cy = frame[x] - means[x], frame[y] - means[y]
    sxx, syy, sxy = float(cx @ cx), float(cy @ cy), float(cx @ cy)
    if sxx == 0 or syy == 0:
        which = x if sxx == 0 else y
        raise ValueError(
            f"{which!r} does not vary within any client (the same rating in every session of "
            "each client); the within-client correlation needs clients with changing ratings"
        )
    n = len(frame)
    rows = [_r_row("within-client r", sxy / math.sqrt(sxx * syy), n - k - 1, level)]
    dyads = g[[x, y]].mean().rename(columns={x: "x_mean", y: "y_mean"})
    dyads.insert(0, "n_sessions", g.size())
    rows.append(
        _r_row(
            "between-client r",
            float(np.corrcoef(dyads["x_mean"], dyads["y_mean"])[0, 1]),
            k - 2,
            level,
        )
    )

    # mean difference and its change: mixed model
    d = frame.assign(_d=frame[x] - frame[y], _s=frame[session] - frame[session].mean())
    d = d.rename(columns={"_d": "difference", "_s": "session_c"})
    rand = "(1 + session_c | client_)" if random_slope else "(1 | client_)"
    d["client_"] = d[client]
    formula = f"difference ~ session_c + {rand}"
    if therapist:
        d["therapist_"] = d[therapist]
        formula += " + (1 | therapist_)"
    fit = lmm(formula, d, level=level)
    fp = fit.params.set_index("term")
    for term, label in (
        ("Intercept", "mean difference (x - y)"),
        ("session_c", "difference change per session"),
    ):
        row = fp.loc[term]
        rows.append(
            {
                "term": label,
                **{
                    c: float(row[c])
                    for c in ("estimate", "se", "df", "statistic", "p", "ci_low", "ci_high")
                },
            }
        )
    if fit.singular:
        notes.append(
            "The difference model is singular (a variance at zero or a correlation at +-1); "
            "random_slope=False fits a random intercept only."
        )

    # discrepant dyads
    if standardize == "separate":
        for v, zc in (("x_mean", "z_x"), ("y_mean", "z_y")):
            dyads[zc] = (dyads[v] - dyads[v].mean()) / dyads[v].std(ddof=1)
    else:
        both = pd.concat([dyads["x_mean"], dyads["y_mean"]])
        m, s = both.mean(), both.std(ddof=1)
        dyads["z_x"], dyads["z_y"] = (dyads["x_mean"] - m) / s, (dyads["y_mean"] - m) / s
    dyads["difference"] = dyads["x_mean"] - dyads["y_mean"]
    zd = dyads["z_x"] - dyads["z_y"]
    dyads["category"] = np.where(
        zd > discrepancy, "x higher", np.where(zd < -discrepancy, "y higher", "agreement")
    )
    for label, hit in (
        ("share discrepant", dyads["category"] != "agreement"),
        ("share x higher", dyads["category"] == "x higher"),
        ("share y higher", dyads["category"] == "y higher"),
    ):
        kk = int(hit.sum())
        p = kk / k
        lo, hi = _wilson(kk, k, level)
        rows.append(
            {
                "term": label,
                "estimate": p,
                "se": math.sqrt(p * (1 - p) / k),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    ns = {"clients": k, "sessions": n}
    if therapist:
        ns["therapists"] = int(frame[therapist].nunique())
    return AgreementResult(
        model=f"agreement of {x} and {y}",
        params=pd.DataFrame(rows),
        nobs=n,
        n_by_level=ns,
        excluded=excluded,
        citation=AGREEMENT_CITATION,
        notes=notes,
        x=x,
        y=y,
        scale=scale,
        dyads=dyads.reset_index(),
        difference_model=fit,
    )


# --------------------------------------------------------------------------- RSA


def _principal(b: np.ndarray) -> np.ndarray:
    """X0, Y0, p10, p11, p20, p21 of b = (b0..b5); works on complex b (complex step)."""
    _, b1, b2, b3, b4, b5 = b
    den = 4 * b3 * b5 - b4**2
    x0 = (b2 * b4 - 2 * b1 * b5) / den
    y0 = (b1 * b4 - 2 * b2 * b3) / den
    root = np.sqrt((b3 - b5) ** 2 + b4**2)
    p11 = (b5 - b3 + root) / b4
    p21 = (b5 - b3 - root) / b4
    return np.array([x0, y0, y0 - p11 * x0, p11, y0 - p21 * x0, p21])


_PRINCIPAL_TERMS = ["X0", "Y0", "p10", "p11", "p20", "p21"]


def _delta(b: np.ndarray, v: np.ndarray, level: float) -> pd.DataFrame:
    """Stationary point and principal axes with delta-method SEs (complex-step Jacobian)."""
    value = _principal(b.astype(float))
    h = 1e-20
    jac = np.empty((6, 6))
    for j in range(6):
        step = b.astype(complex)
        step[j] += 1j * h
        jac[:, j] = _principal(step).imag / h
    se = np.sqrt(np.einsum("ij,jk,ik->i", jac, v, jac))
    z = stats.norm.ppf(0.5 + level / 2)
    nulls = np.array([0, 0, 0, 0, 0, 0], dtype=float)
    stat = (value - nulls) / se
    out = pd.DataFrame(
        {
            "term": _PRINCIPAL_TERMS,
            "estimate": value,
            "se": se,
            "df": np.inf,
            "statistic": stat,
            "p": 2 * stats.norm.sf(np.abs(stat)),
            "ci_low": value - z * se,
            "ci_high": value + z * se,
        }
    )
    return tidy_params(out).set_index("term")


def _contrast_row(combo, term: str, c, level: float) -> dict[str, float]:
    est, se, df = combo(np.asarray(c, float))
    t = est / se
    tq = stats.t.ppf(0.5 + level / 2, df)
    return {
        "term": term,
        "estimate": est,
        "se": se,
        "df": df,
        "statistic": t,
        "p": float(2 * stats.t.sf(abs(t), df)),
        "ci_low": est - tq * se,
        "ci_high": est + tq * se,
    }


def _surface_table(combo, level: float, pad=None) -> pd.DataFrame:
    """a1..a5 as contrasts ``combo(c)`` of b0..b5 (``pad`` places them in a longer b)."""
    rows = []
    for a, w in SURFACE_WEIGHTS.items():
        c = np.asarray((0, *w), float)
        rows.append(_contrast_row(combo, a, c if pad is None else pad(c), level))
    surface = pd.DataFrame(rows)
    surface["meaning"] = surface["term"].map(_SURFACE_MEANING)
    return tidy_params(surface).set_index("term")


def _surface_tables(combo, b: np.ndarray, v: np.ndarray, level: float, pad=None):
    """Surface, stationary point, congruence conditions and notes of b0..b5 (cov v)."""
    notes = []
    surface = _surface_table(combo, level, pad)
    stationary = _delta(b, v, level)
    if not np.isfinite(stationary["estimate"]).all():
        notes.append(
            "The surface has no unique stationary point or principal axis (4 b3 b5 = b4^2 "
            "or b4 = 0): those rows are NaN."
        )
    alpha = 1 - level
    cong = []

    def includes(frame, term, null, label):
        r = frame.loc[term]
        met = bool(r["ci_low"] <= null <= r["ci_high"])
        cong.append(
            {
                "condition": label,
                "term": term,
                "null": null,
                "estimate": r["estimate"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p": r["p"] if null == 0 else math.nan,
                "met": met,
            }
        )

    includes(stationary, "p10", 0.0, "first principal axis through the origin (p10 = 0)")
    includes(stationary, "p11", 1.0, "first principal axis parallel to x = y (p11 = 1)")
    a4 = surface.loc["a4"]
    cong.append(
        {
            "condition": "concave along the line of incongruence (a4 < 0)",
            "term": "a4",
            "null": 0.0,
            "estimate": a4["estimate"],
            "ci_low": a4["ci_low"],
            "ci_high": a4["ci_high"],
            "p": a4["p"],
            "met": bool(a4["estimate"] < 0 and a4["p"] < alpha),
        }
    )
    includes(surface, "a3", 0.0, "no linear effect of the discrepancy's direction (a3 = 0)")
    includes(surface, "a1", 0.0, "strict: no slope along the line of congruence (a1 = 0)")
    includes(surface, "a2", 0.0, "strict: no curvature along the line of congruence (a2 = 0)")
    congruence = pd.DataFrame(cong)
    if stationary["se"].isna().any():
        congruence.loc[congruence["term"].isin(["p10", "p11"]), "met"] = False
    broad = bool(congruence["met"].iloc[:3].all())
    strict = broad and bool(congruence["met"].iloc[4:].all())
    return surface, stationary, congruence, broad, strict, notes


def rsa(
    data,
    x: str,
    y: str,
    outcome: str,
    client: str = "client",
    therapist: str | None = None,
    *,
    unit: Literal["client", "session"] = "client",
    rescale: bool = False,
    ranges: dict[str, tuple[float, float]] | None = None,
    level: float = 0.95,
) -> RsaResult:
    """Polynomial regression with response surface analysis of an outcome on two ratings.

    Fits, at the client level,

    ``z = b0 + b1 x + b2 y + b3 x^2 + b4 xy + b5 y^2``

    with x and y **centred at one value, the pooled grand mean of both** (the mean of all x
    and y values together), so that the line of congruence x = y keeps its meaning after
    centring (Humberg, Nestler & Back 2019). Session-level ratings are averaged per client
    first; the outcome must be one value per client. The surface parameters are linear
    combinations ``c'b`` (``alliance.dyad.SURFACE_WEIGHTS``):

    * a1 = b1 + b2 and a2 = b3 + b4 + b5: slope and curvature along the line of congruence
      (x = y);
    * a3 = b1 - b2 and a4 = b3 - b4 + b5: slope and curvature along the line of
      incongruence (x = -y);
    * a5 = b3 - b5,

    each with its exact SE ``sqrt(c'Vc)`` from the coefficient covariance V and a t test on
    the model's df (residual df ``n - 6`` of the OLS fit; Satterthwaite df with
    ``therapist=``). The stationary point (X0, Y0) and the first and second principal axes
    (``Y = p10 + p11 X``, ``Y = p20 + p21 X``; Edwards & Parry 1993) are nonlinear: their SEs
    come from the delta method (Jacobian by complex-step differentiation), with z tests and
    Wald intervals, as the RSA package reports them from lavaan.

    **Session-level data** (``unit="session"``): a multilevel polynomial model of a
    session-level outcome with the polynomial split within and between clients. Each
    client's centre ``m_i`` is the mean of ``(x + y) / 2`` over the client's sessions (one
    centre for both ratings, so that x = y keeps its meaning within the client); the
    **within** terms are ``xw = x - m_i``, ``yw = y - m_i``, ``xw^2``, ``xw*yw``,
    ``yw^2``; the **between** terms are ``xb = mean_i(x) - C``, ``yb = mean_i(y) - C``
    (``C`` the mean of the ``m_i``), ``xb^2``, ``xb*yb``, ``yb^2``; and

    ``z ~ within terms + between terms + (1 | client) [+ (1 | therapist)]``

    is fitted by :func:`alliance.models.lmm` (REML, Satterthwaite df). ``.surface`` is
    the within-client surface (a session whose two ratings differ more than usual for
    this client), ``.surface_between`` the between-client one (clients whose mean ratings
    differ), each a1..a5 from its own five coefficients; the stationary point and the
    congruence conditions are those of the within surface. The within terms are not
    orthogonal to the between ones (a client whose mean ratings differ has a nonzero mean
    ``xw - yw``), which is why both parts are in one model. The outcome is taken as given
    for each session: to predict the next session, pass the lead of the outcome as its
    own column.

    **Congruence conditions** (Humberg, Nestler & Back 2019, Table 1; Schönbrodt, Humberg &
    Nestler 2018). The broad congruence hypothesis ("the more similar, the better") is
    taken as supported when (1) the first principal axis lies on the line of congruence:
    the interval of p10 includes 0 **and** that of p11 includes 1, and (2) the surface is
    concave along the line of incongruence: a4 < 0 with p < ``1 - level`` (two-sided). The
    strict hypothesis adds (3) no mean-level effect along the line of congruence: the
    intervals of a1 and a2 include 0. a3 = 0 (no linear effect of the direction of the
    discrepancy), implied by (1), is reported too. "Includes the null" is the absence of a
    significant deviation, not evidence of equality (as Humberg et al. note).

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Client-level (one row per client) or session-level (ratings averaged per client)
        data. With a Study, ``outcome`` may be a column of ``study.clients``; the codebook
        must declare the ``rater`` of x and y.
    x, y : str
        The two ratings (x the client's, y the therapist's by convention).
    outcome : str
        The client's outcome (one value per client).
    client : str
        Client column.
    therapist : str, optional
        Therapist column. The surface is then estimated by a mixed model with a therapist
        random intercept (with ``unit="session"``: besides the client's) (:func:`alliance.models.lmm`, REML) and every test uses
        Satterthwaite df. We chose the random intercept over cluster-robust SEs because
        alliance studies have few therapists (often 10-40), where CR sandwich estimators
        are biased and need their own small-sample df, while the random intercept uses the
        nesting the design has and is checked against lme4/lmerTest.
    unit : {"client", "session"}, default "client"
        Client-level RSA (ratings averaged per client), or the multilevel polynomial
        model of session-level data described above.
    rescale : bool, default False
        POMP-rescale ratings on different ranges or forms instead of refusing them.
    ranges : dict, optional
        ``{column: (min, max)}`` possible ranges (override the codebook).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    RsaResult
        ``.params`` (b0..b5), ``.surface`` (a1..a5), ``.stationary``, ``.congruence``,
        ``.broad_congruence``, ``.strict_congruence``, ``.centre``; the surface is drawn
        by :func:`alliance.plots.response_surface` (``.plot()`` is the coefficient plot).

    Raises
    ------
    KeyError
        A column is missing.
    ValueError
        Undeclared rater, ratings not on a common scale, constant ratings, an outcome that
        varies within clients, fewer than 10 clients, or x and y collinear.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.dyad.simulate_dyads(seed=1, discrepancy=-1.0)
    >>> fit = alliance.dyad.rsa(study, x="wai_client", y="wai_therapist", outcome="outcome")
    >>> fit.surface.index.tolist()
    ['a1', 'a2', 'a3', 'a4', 'a5']
    >>> bool(fit.surface.loc["a4", "ci_high"] < 0)
    True
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    if unit not in ("client", "session"):
        raise ValueError(f"unit must be 'client' or 'session', got {unit!r}")
    if unit == "session":
        return _rsa_sessions(data, x, y, outcome, client, therapist, rescale, ranges, level)
    table, tables, book, excluded, notes = _client_table(data, [x, y], outcome, client, therapist)
    _check_variation(table, [x, y, outcome], "client")
    table, scale, more = _common_scale(table, x, y, book, tables, rescale=rescale, ranges=ranges)
    notes += more
    n = len(table)
    if n < 10:
        raise ValueError(f"response surface analysis needs at least 10 clients, got {n}")
    centre = float(np.concatenate([table[x].to_numpy(), table[y].to_numpy()]).mean())
    xc, yc = table[x].to_numpy() - centre, table[y].to_numpy() - centre
    design = pd.DataFrame(
        {
            "z": table[outcome].to_numpy(float),
            "x": xc,
            "y": yc,
            "x2": xc**2,
            "xy": xc * yc,
            "y2": yc**2,
        }
    )
    terms = ["Intercept", "x", "y", "x^2", "x*y", "y^2"]
    X = np.column_stack([np.ones(n), design[["x", "y", "x2", "xy", "y2"]].to_numpy()])
    if np.linalg.matrix_rank(X) < 6:
        raise ValueError(
            f"the polynomial of {x!r} and {y!r} is rank deficient (x and y collinear, or too "
            "few distinct values); response surface analysis needs two distinct ratings"
        )
    notes.append(f"x and y centred at their pooled grand mean, {centre:.4g}.")
    mixed = None
    if therapist is None:
        xtx_inv = np.linalg.inv(X.T @ X)
        b = xtx_inv @ X.T @ design["z"].to_numpy()
        resid = design["z"].to_numpy() - X @ b
        dfr = n - 6
        v = xtx_inv * float(resid @ resid) / dfr

        def combo(c):
            est, se = float(c @ b), math.sqrt(float(c @ v @ c))
            return est, se, float(dfr)
    else:
        design["therapist_"] = table[therapist].to_numpy()
        mixed = lmm("z ~ x + y + x2 + xy + y2 + (1 | therapist_)", design, level=level)
        b = mixed.params["estimate"].to_numpy(float)
        v = mixed.cov_params.to_numpy(float)

        def combo(c):
            r = mixed.contrast(c)
            return float(r["estimate"]), float(r["se"]), float(r["df"])

        if mixed.singular:
            notes.append(
                "The therapist variance is estimated at zero (singular fit): the surface "
                "equals the OLS one with Satterthwaite df."
            )

    eye = np.eye(6)
    params = pd.DataFrame([_contrast_row(combo, t, eye[i], level) for i, t in enumerate(terms)])
    surface, stationary, congruence, broad, strict, more = _surface_tables(combo, b, v, level)
    notes += more
    ns = {"clients": n}
    if therapist:
        ns["therapists"] = int(table[therapist].nunique())
    data_out = table[
        [client, *([therapist] if therapist else []), x, y, outcome, "n_sessions"]
    ].copy()
    return RsaResult(
        model=f"response surface analysis of {outcome} on {x} and {y}"
        + (" (therapist random intercept)" if therapist else " (OLS)"),
        params=params,
        nobs=n,
        n_by_level=ns,
        excluded=excluded,
        citation=RSA_CITATION,
        notes=notes,
        x=x,
        y=y,
        scale=scale,
        surface=surface,
        stationary=stationary,
        congruence=congruence,
        broad_congruence=broad,
        strict_congruence=strict,
        centre=centre,
        coefficients=pd.Series(b, index=terms),
        cov_params=pd.DataFrame(v, index=terms, columns=terms),
        mixed_model=mixed,
        data=data_out,
        outcome=outcome,
    )


_ML_TERMS = ["xw", "yw", "xw2", "xwyw", "yw2", "xb", "yb", "xb2", "xbyb", "yb2"]
_ML_LABELS = {
    "xw": "x within",
    "yw": "y within",
    "xw2": "x^2 within",
    "xwyw": "x*y within",
    "yw2": "y^2 within",
    "xb": "x between",
    "yb": "y between",
    "xb2": "x^2 between",
    "xbyb": "x*y between",
    "yb2": "y^2 between",
}


def _rsa_sessions(data, x, y, outcome, client, therapist, rescale, ranges, level) -> RsaResult:
    """The multilevel polynomial RSA of :func:`rsa` with ``unit="session"``."""
    sessions, clients, book = _split(data)
    roles = {"x": x, "y": y, "outcome": outcome, "client": client}
    if therapist:
        roles["therapist"] = therapist
    if clients is not None and outcome not in sessions.columns and outcome in clients.columns:
        raise ValueError(
            f"the outcome {outcome!r} is a client-level column; unit='session' needs a "
            "session-level outcome (use unit='client' for one outcome per client)"
        )
    require_columns(
        sessions, table="the sessions table" if clients is not None else "data", **roles
    )
    frame = _numeric(
        sessions[[client, *([therapist] if therapist else []), x, y, outcome]], [x, y, outcome]
    )
    frame, excluded = _complete(frame, [x, y, outcome], client)
    if therapist:
        frame, more = _complete(frame, [therapist], client)
        excluded = pd.concat([excluded, more], ignore_index=True) if len(more) else excluded
        tcount = frame.groupby(client)[therapist].nunique()
        if (tcount > 1).any():
            raise ValueError(
                f"{int((tcount > 1).sum())} clients have more than one {therapist!r}; the "
                "dyadic models need each client nested in one therapist (split such clients "
                "into one id per therapist)"
            )
    _check_variation(frame, [x, y, outcome], "session")
    tables = {x: "sessions", y: "sessions"}
    frame, scale, notes = _common_scale(frame, x, y, book, tables, rescale=rescale, ranges=ranges)
    n_clients = frame[client].nunique()
    if n_clients < 10:
        raise ValueError(f"response surface analysis needs at least 10 clients, got {n_clients}")
    g = frame.groupby(client, sort=False)
    m_i = ((frame[x] + frame[y]) / 2).groupby(frame[client]).transform("mean")
    xbar, ybar = g[x].transform("mean"), g[y].transform("mean")
    centre = float(((frame[x] + frame[y]) / 2).groupby(frame[client]).mean().mean())
    design = pd.DataFrame(
        {
            "z": frame[outcome].to_numpy(float),
            "client_": frame[client].to_numpy(),
            "xw": (frame[x] - m_i).to_numpy(),
            "yw": (frame[y] - m_i).to_numpy(),
            "xb": (xbar - centre).to_numpy(),
            "yb": (ybar - centre).to_numpy(),
        }
    )
    design["xw2"], design["xwyw"], design["yw2"] = (
        design["xw"] ** 2,
        design["xw"] * design["yw"],
        design["yw"] ** 2,
    )
    design["xb2"], design["xbyb"], design["yb2"] = (
        design["xb"] ** 2,
        design["xb"] * design["yb"],
        design["yb"] ** 2,
    )
    X = np.column_stack([np.ones(len(design)), design[_ML_TERMS].to_numpy()])
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(
            f"the within/between polynomial of {x!r} and {y!r} is rank deficient: the "
            "ratings must vary within clients (several sessions per client with different "
            "ratings) and between them; otherwise use unit='client'"
        )
    random = "(1 | client_)"
    if therapist:
        design["therapist_"] = frame[therapist].to_numpy()
        random += " + (1 | therapist_)"
    mixed = lmm(f"z ~ {' + '.join(_ML_TERMS)} + {random}", design, level=level)
    b_all = mixed.params["estimate"].to_numpy(float)
    v_all = mixed.cov_params.to_numpy(float)

    def combo(c):
        r = mixed.contrast(c)
        return float(r["estimate"]), float(r["se"]), float(r["df"])

    def pad_within(c):
        out = np.zeros(11)
        out[:6] = c
        return out

    def pad_between(c):
        out = np.zeros(11)
        out[0] = c[0]
        out[6:] = c[1:]
        return out

    labels = ["Intercept", *[_ML_LABELS[t] for t in _ML_TERMS]]
    eye = np.eye(11)
    params = pd.DataFrame([_contrast_row(combo, t, eye[i], level) for i, t in enumerate(labels)])
    b6, v6 = b_all[:6], v_all[:6, :6]
    surface, stationary, congruence, broad, strict, more = _surface_tables(
        combo, b6, v6, level, pad_within
    )
    between = _surface_table(combo, level, pad_between)
    notes += more + list(mixed.notes)
    notes.append(
        "Session-level RSA: x and y centred at each client's mean of both ratings (within "
        f"terms) and client means at the mean of those centres, {centre:.4g} (between "
        "terms); .surface is the within-client surface, .surface_between the between one."
    )
    ns = {"sessions": len(design), "clients": int(n_clients)}
    if therapist:
        ns["therapists"] = int(frame[therapist].nunique())
    data_out = frame.reset_index(drop=True).join(design[_ML_TERMS])
    terms = ["Intercept", "x", "y", "x^2", "x*y", "y^2"]
    return RsaResult(
        model=f"multilevel response surface analysis of {outcome} on {x} and {y} "
        "(within and between clients)",
        params=params,
        nobs=len(design),
        n_by_level=ns,
        excluded=excluded,
        citation=RSA_CITATION,
        notes=notes,
        x=x,
        y=y,
        scale=scale,
        surface=surface,
        stationary=stationary,
        congruence=congruence,
        broad_congruence=broad,
        strict_congruence=strict,
        centre=centre,
        coefficients=pd.Series(b6, index=terms),
        cov_params=pd.DataFrame(v_all, index=labels, columns=labels),
        mixed_model=mixed,
        data=data_out,
        outcome=outcome,
        unit="session",
        surface_between=between,
    )


# --------------------------------------------------------------------------- APIM


def _chol2(t: np.ndarray) -> np.ndarray:
    """A 2 x 2 covariance from (log l11, l21, log l22) of its Cholesky factor."""
    low = np.array([[math.exp(t[0]), 0.0], [t[1], math.exp(t[2])]])
    return low @ low.T


def _two_outcome_reml(y: np.ndarray, X: np.ndarray, groups: np.ndarray):
    """REML fit of two stacked outcomes: therapist 2 x 2 intercepts, client 2 x 2 residual.

    ``y`` is (clients, 2), ``X`` (clients, 2, p), ``groups`` the therapist code of each
    client. ``V_j = J_n (x) G + I_n (x) S``, so ``V_j^-1 = P (x) (n G + S)^-1 + (I - P) (x)
    S^-1`` with ``P = J_n / n``, and ``log|V_j| = log|n G + S| + (n - 1) log|S|``.
    """
    n_g = int(groups.max()) + 1
    p = X.shape[2]
    counts = np.bincount(groups, minlength=n_g).astype(float)
    sx = np.zeros((n_g, 2, p))
    np.add.at(sx, groups, X)
    sy = np.zeros((n_g, 2))
    np.add.at(sy, groups, y)
    big_n = 2 * len(y)

    def parts(theta):
        G, S = _chol2(theta[:3]), _chol2(theta[3:])
        s_inv = np.linalg.inv(S)
        m = np.linalg.inv(counts[:, None, None] * G[None] + S[None])  # (n_g, 2, 2)
        d = m - s_inv[None]
        logdet = float(np.sum(np.linalg.slogdet(counts[:, None, None] * G[None] + S[None])[1]))
        logdet += float(np.sum(counts - 1) * np.linalg.slogdet(S)[1])
        xtvx = np.einsum("iap,ab,ibq->pq", X, s_inv, X) + np.einsum(
            "jap,jab,jbq->pq", sx, d / counts[:, None, None], sx
        )
        xtvy = np.einsum("iap,ab,ib->p", X, s_inv, y) + np.einsum(
            "jap,jab,jb->p", sx, d / counts[:, None, None], sy
        )
        beta = np.linalg.solve(xtvx, xtvy)
        r = y - np.einsum("iap,p->ia", X, beta)
        sr = np.zeros((n_g, 2))
        np.add.at(sr, groups, r)
        quad = float(np.einsum("ia,ab,ib->", r, s_inv, r)) + float(
            np.einsum("ja,jab,jb->", sr, d / counts[:, None, None], sr)
        )
        return logdet, xtvx, beta, quad, G, S

    def deviance(theta):
        try:
            logdet, xtvx, _, quad, _, _ = parts(theta)
        except np.linalg.LinAlgError:
            return 1e300
        return logdet + np.linalg.slogdet(xtvx)[1] + quad + (big_n - p) * math.log(2 * math.pi)

    # start: OLS residual covariance split half therapist, half client
    beta0 = np.linalg.lstsq(X.reshape(-1, p), y.reshape(-1), rcond=None)[0]
    res0 = y - np.einsum("iap,p->ia", X, beta0)
    c0 = np.cov(res0.T) + 1e-6 * np.eye(2)
    l0 = np.linalg.cholesky(c0 / 2)
    t0 = np.array([math.log(l0[0, 0]), l0[1, 0], math.log(l0[1, 1])])
    best = None
    for start in (np.concatenate([t0, t0]), np.concatenate([t0 - 1.0, t0 + 0.2])):
        fit = optimize.minimize(deviance, start, method="BFGS", options={"gtol": 1e-9})
        if best is None or fit.fun < best.fun:
            best = fit
    logdet, xtvx, beta, quad, G, S = parts(best.x)
    return {
        "beta": beta,
        "cov": np.linalg.inv(xtvx),
        "G": G,
        "S": S,
        "loglik": -0.5 * float(best.fun),
        "converged": bool(best.success or np.max(np.abs(best.jac)) < 1e-3),
    }


def apim(
    data,
    client_rating: str,
    therapist_rating: str,
    outcome: str,
    client: str = "client",
    therapist: str = "therapist",
    *,
    therapist_outcome: str | None = None,
    level: float = 0.95,
) -> ApimResult:
    """One-with-many actor-partner style model of a client outcome on both ratings.

    In the one-with-many design each therapist rates many clients (Kenny, Kashy & Cook
    2006, ch. 10; Marcus, Kashy & Baldwin 2009). Each client-level rating (client means
    over sessions) is split into the therapist's mean over their clients (centred at the
    mean over clients) and the client's deviation from it, and

    ``outcome ~ c_within + c_between + t_within + t_between + (1 | therapist)``

    is fitted by :func:`alliance.models.lmm` (REML, Satterthwaite df). ``c_within`` is the
    actor effect (the client's own rating, relative to the therapist's other clients),
    ``t_within`` the partner effect (the therapist's rating of this client relative to the
    therapist's other clients), the ``between`` terms the therapist-level effects.

    With one outcome per client this is **not a full APIM**: an APIM needs an outcome of
    each dyad member (the therapist-rated outcome too, estimated as two equations); it is
    an actor-partner style model of the client's outcome only.

    **Two outcomes** (``therapist_outcome=``, e.g. the therapist's rating of the client's
    improvement): the full one-with-many APIM. The client- and the therapist-rated
    outcome are stacked, each with its own intercept and four slopes (actor and partner
    effects within therapists, and the therapist-mean effects), a 2 x 2 covariance of
    therapist random intercepts (one per outcome) and a 2 x 2 covariance of the two
    outcomes' client-level residuals (outcome-specific variances and their correlation),
    fitted by REML (Kenny, Kashy & Cook 2006, ch. 10 and 14). This is nlme's
    ``lme(..., random = ~ 0 + is_c + is_t | therapist, correlation = corCompSymm(form = ~
    1 | therapist/client), weights = varIdent(form = ~ 1 | role))``, against which the
    estimates, SEs, variance components and REML log-likelihood are checked
    (``tests/reference/dyad_multilevel_reference.R``). The t tests use containment df:
    therapist-mean terms on the number of therapists minus 3 (the intercept and two
    therapist-level slopes per outcome), within-therapist terms on clients minus
    therapists minus 2. nlme gives every term the residual df (216 in the reference),
    which overstates the evidence for therapist-level effects with few therapists.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Client- or session-level data (ratings averaged per client); the outcome one value
        per client. A Study's codebook must declare the rater of both ratings.
    client_rating, therapist_rating : str
        The client's and the therapist's rating of the alliance.
    outcome : str
        The client's outcome (client-rated, in the two-outcome form).
    client, therapist : str
        Column names.
    therapist_outcome : str, optional
        The therapist-rated outcome of the same client: fits the two-outcome APIM.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    ApimResult
        ``.params``, ``.variance_components``, ``.mixed_model``, ``.data``. In the
        two-outcome form the terms are prefixed ``<outcome>: `` and
        ``<therapist_outcome>: ``, ``.variance_components`` holds both 2 x 2 covariances
        (therapist and residual, lme4's layout) and ``.mixed_model`` is None.

    Raises
    ------
    KeyError
        A column is missing.
    ValueError
        Undeclared rater, constant ratings, fewer than 3 therapists, or a client with two
        therapists.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.dyad.simulate_dyads(seed=1, client_effect=0.5, therapist_effect=0.2)
    >>> fit = alliance.dyad.apim(study, client_rating="wai_client",
    ...                          therapist_rating="wai_therapist", outcome="outcome")
    >>> fit.params["term"].tolist()[1]
    'wai_client within therapist'
    >>> bool(fit.params["estimate"].iloc[1] > 0)
    True
    """
    table, tables, book, excluded, notes = _client_table(
        data, [client_rating, therapist_rating], outcome, client, therapist
    )
    if therapist_outcome is not None:
        second, _, _, excl2, _ = _client_table(
            data, [client_rating, therapist_rating], therapist_outcome, client, therapist
        )
        lost = ~table[client].isin(second[client])
        table = table[~lost].merge(second[[client, therapist_outcome]], on=client)
        if lost.any():
            extra = exclusion_log(
                [
                    (
                        f"missing {therapist_outcome}",
                        therapist_outcome,
                        int(lost.sum()),
                        int(lost.sum()),
                    )
                ]
            )
            excluded = pd.concat([excluded, extra], ignore_index=True)
        del excl2
    if book is not None:
        raters = [_declared(book, tables[c], c)["rater"] for c in (client_rating, therapist_rating)]
        if raters[0] == raters[1]:
            raise ValueError(
                f"{client_rating!r} and {therapist_rating!r} are both rated by the "
                f"{raters[0]} (codebook 'rater'); apim needs the client's and the "
                "therapist's rating"
            )
    _check_variation(table, [client_rating, therapist_rating, outcome], "client")
    n_t = table[therapist].nunique()
    if n_t < 3:
        raise ValueError(f"apim needs at least 3 therapists, got {n_t}")
    frame = pd.DataFrame(
        {"z": table[outcome].to_numpy(float), "therapist_": table[therapist].to_numpy()}
    )
    names = {}
    for short, col in (("c", client_rating), ("t", therapist_rating)):
        values = table[col].astype(float)
        tmean = values.groupby(table[therapist]).transform("mean")
        frame[f"{short}_within"] = (values - tmean).to_numpy()
        frame[f"{short}_between"] = (tmean - values.mean()).to_numpy()
        names[f"{short}_within"] = f"{col} within therapist"
        names[f"{short}_between"] = f"{col} therapist mean"
    if therapist_outcome is not None:
        _check_variation(table, [therapist_outcome], "client")
        return _apim_two(
            table,
            frame,
            names,
            excluded,
            notes,
            level,
            client,
            therapist,
            client_rating,
            therapist_rating,
            outcome,
            therapist_outcome,
        )
    fit = lmm(
        "z ~ c_within + c_between + t_within + t_between + (1 | therapist_)", frame, level=level
    )
    params = fit.params.assign(term=fit.params["term"].replace(names))
    vc = fit.variance_components.assign(
        group=fit.variance_components["group"].replace({"therapist_": therapist})
    )
    notes = [APIM_NOTE, *notes, *fit.notes]
    data_out = pd.concat(
        [
            table[[client, therapist, client_rating, therapist_rating, outcome]].reset_index(
                drop=True
            ),
            frame[list(names)],
        ],
        axis=1,
    )
    return ApimResult(
        model=f"one-with-many actor-partner model of {outcome}",
        params=params,
        nobs=len(table),
        n_by_level={"clients": len(table), "therapists": int(n_t)},
        excluded=excluded,
        citation=APIM_CITATION,
        notes=notes,
        x=client_rating,
        y=therapist_rating,
        variance_components=vc,
        mixed_model=fit,
        data=data_out,
        loglik=float(fit.loglik),
        aic=float(fit.aic),
        bic=float(fit.bic),
        converged=fit.converged,
        singular=fit.singular,
    )


def _apim_two(
    table,
    frame,
    names,
    excluded,
    notes,
    level,
    client,
    therapist,
    client_rating,
    therapist_rating,
    outcome,
    therapist_outcome,
) -> ApimResult:
    """The two-outcome one-with-many APIM of :func:`apim`."""
    preds = ["c_within", "c_between", "t_within", "t_between"]
    n = len(table)
    z = frame[preds].to_numpy(float)
    X = np.zeros((n, 2, 10))
    X[:, 0, 0] = 1.0
    X[:, 1, 1] = 1.0
    X[:, 0, 2:6] = z
    X[:, 1, 6:10] = z
    y = np.column_stack([table[outcome].to_numpy(float), table[therapist_outcome].to_numpy(float)])
    groups = pd.factorize(table[therapist])[0]
    n_t = int(groups.max()) + 1
    fit = _two_outcome_reml(y, X, groups)
    se = np.sqrt(np.diag(fit["cov"]))
    df_between, df_within = max(n_t - 3, 1), max(n - n_t - 2, 1)
    rows = []
    labels = ["Intercept", *[names[p] for p in preds]]
    for k, out_name in enumerate((outcome, therapist_outcome)):
        idx = [k, *range(2 + 4 * k, 6 + 4 * k)]
        for lab, i in zip(labels, idx, strict=True):
            df = (
                df_between
                if ("between" in lab or "mean" in lab or lab == "Intercept")
                else df_within
            )
            est, s_ = float(fit["beta"][i]), float(se[i])
            t = est / s_
            tq = stats.t.ppf(0.5 + level / 2, df)
            rows.append(
                {
                    "term": f"{out_name}: {lab}",
                    "estimate": est,
                    "se": s_,
                    "df": float(df),
                    "statistic": t,
                    "p": float(2 * stats.t.sf(abs(t), df)),
                    "ci_low": est - tq * s_,
                    "ci_high": est + tq * s_,
                }
            )
    params = pd.DataFrame(rows)
    G, S = fit["G"], fit["S"]
    vc = pd.DataFrame(
        {
            "group": [therapist, therapist, therapist, client, client, client],
            "term": [outcome, therapist_outcome, outcome, outcome, therapist_outcome, outcome],
            "term2": ["", "", therapist_outcome, "", "", therapist_outcome],
            "vcov": [G[0, 0], G[1, 1], G[0, 1], S[0, 0], S[1, 1], S[0, 1]],
            "sdcor": [
                math.sqrt(G[0, 0]),
                math.sqrt(G[1, 1]),
                G[0, 1] / math.sqrt(G[0, 0] * G[1, 1]),
                math.sqrt(S[0, 0]),
                math.sqrt(S[1, 1]),
                S[0, 1] / math.sqrt(S[0, 0] * S[1, 1]),
            ],
        }
    )
    notes = [
        "Two-outcome one-with-many APIM: actor effects are each member's own rating on their "
        "own outcome (the client's rating on the client-rated outcome, the therapist's on the "
        "therapist-rated one), partner effects the other member's rating; the client-level "
        "rows of .variance_components are the residual covariance of the two outcomes.",
        f"t tests with containment df: {df_between} for intercepts and therapist means "
        f"(therapists - 3), {df_within} for within-therapist terms (clients - therapists - 2).",
        *notes,
    ]
    if not fit["converged"]:
        notes.append("The REML optimizer did not converge: treat the estimates with caution.")
    data_out = pd.concat(
        [
            table[
                [client, therapist, client_rating, therapist_rating, outcome, therapist_outcome]
            ].reset_index(drop=True),
            frame[list(names)],
        ],
        axis=1,
    )
    k_par = 10 + 6
    return ApimResult(
        model=f"two-outcome one-with-many APIM of {outcome} and {therapist_outcome}",
        params=params,
        nobs=2 * n,
        n_by_level={"clients": n, "therapists": n_t},
        excluded=excluded,
        citation=APIM_CITATION,
        notes=notes,
        x=client_rating,
        y=therapist_rating,
        variance_components=vc,
        mixed_model=None,
        data=data_out,
        loglik=fit["loglik"],
        aic=-2 * fit["loglik"] + 2 * k_par,
        bic=-2 * fit["loglik"] + k_par * math.log(2 * n),
        converged=fit["converged"],
        singular=bool(np.linalg.eigvalsh(G).min() < 1e-8 * max(np.trace(G), 1e-300)),
    )


# --------------------------------------------------------------------------- simulation


def simulate_dyads(
    n_therapists: int = 20,
    clients_per_therapist: int = 8,
    n_sessions: int = 6,
    *,
    within_r: float = 0.4,
    between_r: float = 0.5,
    mean_client: float = 44.0,
    mean_therapist: float = 41.0,
    between_sd: float = 4.0,
    within_sd: float = 2.5,
    therapist_sd: float = 1.5,
    difference_slope: float = 0.3,
    client_effect: float = 0.0,
    therapist_effect: float = 0.0,
    discrepancy: float = 0.0,
    outcome_therapist_sd: float = 1.0,
    outcome_sd: float = 3.0,
    seed: int | None = None,
) -> Study:
    """A small study of client- and therapist-rated alliance with known truth.

    Each therapist sees ``clients_per_therapist`` clients for ``n_sessions`` sessions. Both
    rate the alliance on the WAI-SR sum scale (12-60; the values are continuous and not
    clipped). A client's two ratings are a therapist part (``therapist_sd``, shared by both
    ratings), a client part (SD ``between_sd`` each, correlation ``between_r``) and, each
    session, a within-client part (SD ``within_sd`` each, correlation ``within_r``); the
    therapist's rating rises by ``difference_slope`` per session relative to the client's
    (so the difference x - y falls). The client-level outcome (higher is better) is

    ``outcome = 20 + client_effect xc + therapist_effect yc + discrepancy (xc - yc)^2 / 10
    + therapist part + residual``

    with xc, yc the client means over sessions centred at ``(mean_client +
    mean_therapist) / 2``.

    Parameters
    ----------
    n_therapists, clients_per_therapist, n_sessions : int
        The design.
    within_r, between_r : float
        Correlations of the within-client and the client-level parts.
    mean_client, mean_therapist, between_sd, within_sd, therapist_sd : float
        Means and SDs of the ratings.
    difference_slope : float
        Change per session of the therapist's rating relative to the client's.
    client_effect, therapist_effect, discrepancy : float
        The outcome's polynomial: b1, b2 and b3 = b5 = discrepancy / 10, b4 = -2 b3.
    outcome_therapist_sd, outcome_sd : float
        Therapist and residual SD of the outcome.
    seed : int, optional
        Seed of the numpy Generator.

    Returns
    -------
    Study
        ``sessions`` (client, therapist, session, wai_client, wai_therapist), ``clients``
        (client, therapist, outcome), a codebook declaring raters and ranges, and
        ``truth``: within_r (the within-client correlation of the centred ratings,
        including the trend), between_r (of client means over ``n_sessions`` sessions),
        mean_difference, difference_slope and the RSA coefficients ``b1`` .. ``b5`` and
        ``a1`` .. ``a5``.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.dyad.simulate_dyads(seed=1)
    >>> study.sessions.columns.tolist()
    ['client', 'therapist', 'session', 'wai_client', 'wai_therapist']
    >>> round(study.truth["between_r"], 3)
    0.553
    """
    rng = np.random.default_rng(seed)
    k = n_therapists * clients_per_therapist
    therapists = np.array([f"T{i + 1:02d}" for i in range(n_therapists)])
    t_of = np.repeat(np.arange(n_therapists), clients_per_therapist)
    u = rng.normal(0, therapist_sd, n_therapists)[t_of]
    cov_b = between_sd**2 * np.array([[1, between_r], [between_r, 1]])
    client_part = rng.multivariate_normal([0, 0], cov_b, size=k)
    cov_w = within_sd**2 * np.array([[1, within_r], [within_r, 1]])
    w = rng.multivariate_normal([0, 0], cov_w, size=(k, n_sessions))
    s = np.arange(1, n_sessions + 1, dtype=float)
    trend = difference_slope * (s - s.mean())
    xs = mean_client + u[:, None] + client_part[:, [0]] + w[..., 0]
    ys = mean_therapist + u[:, None] + client_part[:, [1]] + w[..., 1] + trend[None, :]
    clients = np.array([f"C{i + 1:03d}" for i in range(k)])
    sessions = pd.DataFrame(
        {
            "client": np.repeat(clients, n_sessions),
            "therapist": np.repeat(therapists[t_of], n_sessions),
            "session": np.tile(np.arange(1, n_sessions + 1), k),
            "wai_client": xs.ravel(),
            "wai_therapist": ys.ravel(),
        }
    )
    centre = (mean_client + mean_therapist) / 2
    xc, yc = xs.mean(axis=1) - centre, ys.mean(axis=1) - centre
    b3 = discrepancy / 10
    z = (
        20
        + client_effect * xc
        + therapist_effect * yc
        + b3 * (xc - yc) ** 2
        + rng.normal(0, outcome_therapist_sd, n_therapists)[t_of]
        + rng.normal(0, outcome_sd, k)
    )
    client_table = pd.DataFrame({"client": clients, "therapist": therapists[t_of], "outcome": z})
    var_s = float(((s - s.mean()) ** 2).mean())
    wv = within_sd**2 * (n_sessions - 1) / n_sessions  # expected within-client variance
    within_true = (
        within_r * wv / math.sqrt(wv * (wv + difference_slope**2 * var_s))
        if n_sessions > 1
        else math.nan
    )
    vb = therapist_sd**2 + between_sd**2 + within_sd**2 / n_sessions
    cb = therapist_sd**2 + between_r * between_sd**2 + within_r * within_sd**2 / n_sessions
    b = {"b1": client_effect, "b2": therapist_effect, "b3": b3, "b4": -2 * b3, "b5": b3}
    truth = {
        "within_r": within_true,
        "between_r": cb / vb,
        "mean_difference": mean_client - mean_therapist,
        "difference_slope": -difference_slope,
        **b,
        "a1": b["b1"] + b["b2"],
        "a2": b["b3"] + b["b4"] + b["b5"],
        "a3": b["b1"] - b["b2"],
        "a4": b["b3"] - b["b4"] + b["b5"],
        "a5": b["b3"] - b["b5"],
        "seed": seed,
    }

    def fld(name, kind, description, **extra):
        return {"name": name, "type": kind, "description": description, **extra}

    rating = {"constraints": {"minimum": 12, "maximum": 60}}
    book = Codebook(
        {
            "name": "simulated-dyads",
            "resources": [
                {
                    "name": "sessions",
                    "schema": {
                        "fields": [
                            fld("client", "string", "Client identifier."),
                            fld("therapist", "string", "Therapist identifier."),
                            fld("session", "integer", "Session number, from 1."),
                            fld(
                                "wai_client",
                                "number",
                                "WAI-SR total rated by the client.",
                                instrument="wai_sr",
                                rater="client",
                                **rating,
                            ),
                            fld(
                                "wai_therapist",
                                "number",
                                "Working alliance total rated by the therapist (parallel "
                                "form, same 12-60 range).",
                                rater="therapist",
                                **rating,
                            ),
                        ]
                    },
                },
                {
                    "name": "clients",
                    "schema": {
                        "fields": [
                            fld("client", "string", "Client identifier."),
                            fld("therapist", "string", "Therapist identifier."),
                            fld(
                                "outcome",
                                "number",
                                "End-of-treatment outcome (simulated; higher is better).",
                            ),
                        ]
                    },
                },
            ],
        }
    )
    return Study(
        sessions=sessions, clients=client_table, codebook=book, truth=truth, name="simulated dyads"
    )
