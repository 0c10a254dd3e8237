"""Routine outcome monitoring: expected treatment response, not-on-track signals, alerts.

Three steps, as in the feedback systems of Lambert and colleagues:

1. :func:`expected_response` fits *expected treatment response* curves by intake severity
   to a reference sample (Finch, Lambert & Schaalje, 2001): the two-level growth model
   ``y_ti = b0 + b1 intake_i + (b2 + b3 intake_i) log(t) + u0i + u1i log(t) + e_ti``
   (``y ~ intake * log_session + (1 + log_session | client)``, fitted by
   :func:`alliance.models.lmm`), where ``t`` counts the client's sessions from the intake
   (``t = 1``) and ``intake`` is the intake score (centred at the reference mean). The
   returned :class:`ExpectedResponse` gives, for any intake score and session, the expected
   score and the tolerance band: the ``1 - percentile`` and ``percentile`` quantiles of the
   *predictive distribution* of a new client's score, normal with mean ``x'b`` and variance
   ``z' G z + sigma^2 + x' V x`` (``z = (1, log t)``, ``G`` the random-effect covariance,
   ``V`` the covariance of the fixed effects). The default ``percentile=0.90`` gives the 10th
   and 90th percentiles; the not-on-track boundary is the one on the worse side, i.e. a
   one-tailed 90% limit: a client whose score lies beyond it is doing worse than 90% of
   reference clients with the same intake at that session. This is how we read the
   "red" signal boundary of Finch et al. (2001) and Lambert et al. (2005) (scores beyond a
   one-tailed 90% tolerance limit of the expected recovery curve); the papers' exact
   tolerance computation for the OQ-45 is proprietary in parts, so replicate a published
   rate by choosing ``percentile``.
2. :func:`signals` puts each client x session against the band (``not_on_track``) and,
   with ``alliance=``, raises alliance alerts: a score below the instrument's clinical
   cut-off (SRS: 36; Duncan et al., 2003) and a drop from the previous rated session by at
   least the reliable-change size, by the prospective rule of
   :func:`alliance.ruptures.detect` (``method="drop"``: a flag at session n uses sessions up
   to n only). With ``reference=None`` the study is its own reference, cross-validated by
   client: clients are split into ``folds`` groups, and each group's bands come from curves
   fitted to the other groups, so no client is ever in their own reference.
3. :func:`evaluate` scores a signal against later events: reliable deterioration by
   :func:`alliance.change.reliable_change` (:func:`deterioration`) or dropout
   (:func:`dropout`): sensitivity, specificity, predictive values and lead time.

References
----------
Duncan, B. L., Miller, S. D., Sparks, J. A., Claud, D. A., Reynolds, L. R., Brown, J., &
Johnson, L. D. (2003). The Session Rating Scale. Journal of Brief Therapy, 3(1), 3-12.

Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control: The
statistical generation of expected recovery curves for integration into an early warning
system. Clinical Psychology & Psychotherapy, 8(4), 231-242.

Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
Psychology, 59(1), 12-19.

Lambert, M. J., Harmon, C., Slade, K., Whipple, J. L., & Hawkins, E. J. (2005). Providing
feedback to psychotherapists on their patients' progress: Clinical results and practice
suggestions. Journal of Clinical Psychology, 61(2), 165-174.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from alliance import instruments as _instruments
from alliance._checks import check_long, format_rows, require_columns
from alliance.results import Result, exclusion_log

__all__ = [
    "Band",
    "EvaluationResult",
    "ExpectedResponse",
    "deterioration",
    "dropout",
    "evaluate",
    "expected_response",
    "signals",
]

_CITATION = (
    "Finch, Lambert & Schaalje (2001), Clinical Psychology & Psychotherapy 8(4), 231-242; "
    "Lambert, Harmon, Slade, Whipple & Hawkins (2005), Journal of Clinical Psychology "
    "61(2), 165-174"
)
_TERMS = ["(Intercept)", "intake", "log_session", "intake:log_session"]


class Band(NamedTuple):
    """Expected score and tolerance band (arrays of the broadcast shape of the inputs)."""

    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _direction(instrument, outcome: str, what: str = "outcome"):
    """The registry instrument of ``outcome`` (argument, else the column's name)."""
    name = outcome if instrument is None else instrument
    try:
        return _instruments.get(name)
    except KeyError:
        if instrument is not None:
            raise
        raise ValueError(
            f"the {what} column {outcome!r} is not a registered instrument, so the direction "
            f"of improvement is unknown; pass instrument='phq9' (or the registry name of "
            "your scale, see alliance.instruments.list_instruments()), or an "
            "alliance.instruments.Instrument with higher_is_better set"
        ) from None


@dataclass(eq=False)
class ExpectedResponse:
    """Expected treatment response curves with a tolerance band, ready to apply.

    Made by :func:`expected_response` from a reference sample, or directly from published
    coefficients (``fit`` is then None). The curve for a client with intake score ``x``
    at session ``t`` (counted from the intake, ``t = 1``) is
    ``b0 + b1 (x - centre) + (b2 + b3 (x - centre)) log(t)``; the band is the
    ``1 - percentile`` and ``percentile`` quantiles of the normal predictive distribution
    with variance ``z' G z + sigma^2 + x' V x``, ``z = (1, log t)``.

    Attributes
    ----------
    coef : numpy.ndarray
        ``b0, b1, b2, b3``: intercept, intake (centred), log session, their interaction.
    re_cov : numpy.ndarray
        2 x 2 covariance of the client random intercept and log-session slope (``G``).
    sigma : float
        Residual SD.
    centre : float
        Intake score at which ``intake`` is centred (the reference sample's mean intake).
    percentile : float
        Quantile of the predictive distribution that bounds the band (0.5 < p < 1).
    higher_is_better : bool
        Direction of the outcome: the not-on-track side is below ``lower`` when True,
        above ``upper`` when False.
    outcome, instrument : str
        The outcome column the curves were fitted to and its registry name.
    intake_column : str or None
        None: the intake is each client's first rated score (that session is ``t = 1``
        and is not itself modelled); a column name: the intake score came from that
        column and every rated session was modelled.
    cov_fixed : numpy.ndarray
        4 x 4 covariance of ``coef`` (zeros when unknown).
    fit : alliance.models.LmmResult or None
        The fitted growth model.
    n_clients, nobs : int
        Reference clients and modelled rows.
    excluded : pandas.DataFrame
        What the reference fit left out (clients with only an intake score, ...).

    Examples
    --------
    >>> from alliance.monitoring import ExpectedResponse
    >>> curve = ExpectedResponse(coef=[16.0, 0.8, -3.0, -0.1], re_cov=[[4, 1], [1, 2]],
    ...                          sigma=2.5, centre=16.0, higher_is_better=False)
    >>> band = curve.predict(20, 5)
    >>> round(float(band.expected), 3), round(float(band.upper), 3)
    (13.728, 19.262)
    """

    coef: np.ndarray
    re_cov: np.ndarray
    sigma: float
    centre: float
    percentile: float = 0.90
    higher_is_better: bool = False
    outcome: str = "outcome"
    instrument: str = ""
    intake_column: str | None = None
    cov_fixed: np.ndarray | None = None
    fit: object = field(default=None, repr=False)
    n_clients: int = 0
    nobs: int = 0
    excluded: pd.DataFrame = field(default_factory=exclusion_log, repr=False)

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=float).reshape(-1)
        self.re_cov = np.asarray(self.re_cov, dtype=float)
        if self.coef.shape != (4,):
            raise ValueError(f"coef must hold 4 numbers ({', '.join(_TERMS)}), got {self.coef}")
        if self.re_cov.shape != (2, 2) or not np.allclose(self.re_cov, self.re_cov.T):
            raise ValueError("re_cov must be a symmetric 2 x 2 covariance matrix")
        if np.linalg.eigvalsh(self.re_cov).min() < -1e-10:
            raise ValueError("re_cov must be positive semi-definite (a covariance matrix)")
        if not (np.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"sigma must be a residual SD >= 0, got {self.sigma}")
        if not 0.5 < float(self.percentile) < 1:
            raise ValueError(
                f"percentile={self.percentile} must lie between 0.5 and 1 (e.g. 0.90 for "
                "the 10th/90th percentile band)"
            )
        if self.cov_fixed is None:
            self.cov_fixed = np.zeros((4, 4))
        self.cov_fixed = np.asarray(self.cov_fixed, dtype=float)
        if self.cov_fixed.shape != (4, 4):
            raise ValueError("cov_fixed must be the 4 x 4 covariance of coef")

    @property
    def params(self) -> pd.DataFrame:
        """The fixed effects (term, estimate, se)."""
        return pd.DataFrame(
            {"term": _TERMS, "estimate": self.coef, "se": np.sqrt(np.diag(self.cov_fixed))}
        )

    def predict(self, intake, session) -> Band:
        """Expected score and band for intake score(s) and session(s) since intake.

        Parameters
        ----------
        intake : float or array-like
            Intake score(s) on the outcome's scale.
        session : float or array-like
            Session(s) counted from the intake (intake = 1); broadcast against ``intake``.

        Returns
        -------
        Band
            ``expected, lower, upper`` arrays (NaN where ``session < 1`` or an input is NaN).

        Examples
        --------
        >>> from alliance.monitoring import ExpectedResponse
        >>> curve = ExpectedResponse(coef=[16, 0.8, -3, -0.1], re_cov=[[4, 1], [1, 2]],
        ...                          sigma=2.5, centre=16)
        >>> band = curve.predict([12, 20], 8)
        >>> bool((band.lower < band.expected).all() and (band.expected < band.upper).all())
        True
        """
        x = np.asarray(intake, dtype=float) - self.centre
        t = np.asarray(session, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            ls = np.where(t >= 1, np.log(np.where(t >= 1, t, 1.0)), np.nan)
        b0, b1, b2, b3 = self.coef
        expected = b0 + b1 * x + (b2 + b3 * x) * ls
        g = self.re_cov
        var = g[0, 0] + 2 * g[0, 1] * ls + g[1, 1] * ls**2 + self.sigma**2
        if self.cov_fixed.any():
            v = self.cov_fixed
            cols = (np.ones_like(expected), x + 0 * ls, ls + 0 * x, x * ls)
            for i in range(4):
                for j in range(4):
                    if v[i, j] != 0:
                        var = var + v[i, j] * cols[i] * cols[j]
        half = stats.norm.ppf(self.percentile) * np.sqrt(var)
        return Band(expected, expected - half, expected + half)

    def __repr__(self) -> str:
        return (
            f"<ExpectedResponse {self.outcome!r}: {self.n_clients} reference clients, "
            f"{int(round(100 * (1 - self.percentile)))}th/"
            f"{int(round(100 * self.percentile))}th percentile band>"
        )


# --------------------------------------------------------------------------- helpers


def _intake_frame(data, outcome, client, session, intake):
    """Rows client, session, value, t, intake; t counted from the first rated session."""
    long = check_long(data, client, session, outcome)
    long["_row"] = np.arange(len(long))
    long = long.sort_values(["client", "session"], kind="stable").reset_index(drop=True)
    rated = long["value"].notna()
    first_session = (
        long["session"].where(rated).groupby(long["client"], sort=False).transform("min")
    )
    long["t"] = (long["session"] - first_session + 1).to_numpy(dtype=float)
    if intake is None:
        long["intake"] = (
            long["value"].where(rated).groupby(long["client"], sort=False).transform("first")
        )
        long["modelled"] = rated & (long["t"] >= 2)
    else:
        require_columns(data, intake=intake)
        raw = pd.to_numeric(data[intake], errors="coerce").to_numpy(dtype=float)
        values = pd.Series(raw[long["_row"].to_numpy()])
        by_client = values.groupby(long["client"].to_numpy(), sort=False)
        spread = by_client.transform("max") - by_client.transform("min")
        if (spread > 0).any():
            n = int(long.loc[spread.to_numpy() > 0, "client"].nunique())
            raise ValueError(
                f"column {intake!r} (the intake score) differs between the sessions of {n} "
                "clients; it must be one value per client (their score at intake)"
            )
        long["intake"] = values.groupby(long["client"], sort=False).transform("first").to_numpy()
        long["modelled"] = rated & (long["t"] >= 1)
    return long


def _fit_curves(long, outcome, ins, percentile, intake):
    from alliance.models.lmm import lmm

    model = long[long["modelled"] & long["intake"].notna()]
    n_all = int(long["client"].nunique())
    n_clients = int(model["client"].nunique())
    if n_clients < 10:
        raise ValueError(
            f"the reference sample has {n_clients} clients with a score after intake; "
            "expected-response curves need at least 10 (more than 100 for stable bands)"
        )
    centre = float(model.groupby("client", sort=False)["intake"].first().mean())
    frame = pd.DataFrame(
        {
            "y": model["value"].to_numpy(),
            "intake": model["intake"].to_numpy() - centre,
            "log_session": np.log(model["t"].to_numpy()),
            "client": model["client"].to_numpy(),
        }
    )
    fit = lmm("y ~ intake * log_session + (1 + log_session | client)", frame, ddf="wald")
    names = ["Intercept", *_TERMS[1:]]  # the engine's names of the four fixed effects
    est = fit.params.set_index("term")["estimate"]
    coef = est.reindex(names).to_numpy(dtype=float)
    cov = fit.cov_params.reindex(index=names, columns=names).to_numpy(dtype=float)
    re_cov = fit.covariances["client"].to_numpy(dtype=float)
    dropped = n_all - n_clients
    rows = []
    if dropped:
        what = "no rated session after intake" if intake is None else "no intake score"
        left = ~long["client"].isin(model["client"].unique())
        rows.append((f"{what} (not in the reference fit)", outcome, int(left.sum()), dropped))
    return ExpectedResponse(
        coef=coef,
        re_cov=re_cov,
        sigma=float(fit.sigma),
        centre=centre,
        percentile=percentile,
        higher_is_better=bool(ins.higher_is_better),
        outcome=outcome,
        instrument=ins.name,
        intake_column=intake,
        cov_fixed=cov,
        fit=fit,
        n_clients=n_clients,
        nobs=len(frame),
        excluded=exclusion_log(rows),
    )


def expected_response(
    reference: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    intake: str | None = None,
    *,
    instrument=None,
    percentile: float = 0.90,
) -> ExpectedResponse:
    """Expected treatment response curves by intake severity (Finch, Lambert & Schaalje, 2001).

    Fits ``y ~ intake * log_session + (1 + log_session | client)`` (lme4 syntax, REML, by
    :func:`alliance.models.lmm`) to the reference sample, with ``log_session = log(t)``,
    ``t`` the session counted from the client's intake (``t = 1``), and ``intake`` the
    intake score centred at the reference mean. The band is the ``1 - percentile`` and
    ``percentile`` quantiles of a new client's predictive distribution (module notes).

    Parameters
    ----------
    reference : pandas.DataFrame
        The reference sample, long format (one row per client x session).
    outcome, client, session : str
        Column names.
    intake : str, optional
        A column holding each client's intake score (one value per client). Default: the
        client's first rated ``outcome`` score is the intake; that session is ``t = 1``
        and is not itself modelled (it would be predicted perfectly).
    instrument : str or Instrument, optional
        The outcome's registry entry, for the direction of improvement; default the
        ``outcome`` column's name (e.g. ``"phq9"``).
    percentile : float, default 0.90
        Band from the 10th to the 90th percentile; the not-on-track limit is the
        one-tailed ``percentile`` limit on the worse side.

    Returns
    -------
    ExpectedResponse
        ``.predict(intake, session)`` -> ``Band(expected, lower, upper)``; the growth
        model in ``.fit``; reference clients left out in ``.excluded``.

    Raises
    ------
    ValueError
        Fewer than 10 reference clients with a score after intake, an outcome the registry
        does not know (pass ``instrument=``), an intake column that varies within a client.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> curve = alliance.monitoring.expected_response(study.sessions, outcome="phq9")
    >>> band = curve.predict(intake=[10, 20], session=8)
    >>> bool(band.expected[1] > band.expected[0])
    True
    >>> curve.params["term"].tolist()
    ['(Intercept)', 'intake', 'log_session', 'intake:log_session']
    """
    require_columns(reference, table="reference", client=client, session=session, outcome=outcome)
    ins = _direction(instrument, outcome)
    if not 0.5 < float(percentile) < 1:
        raise ValueError(
            f"percentile={percentile} must lie between 0.5 and 1 (e.g. 0.90 for the "
            "10th/90th percentile band)"
        )
    long = _intake_frame(reference, outcome, client, session, intake)
    return _fit_curves(long, outcome, ins, float(percentile), intake)


def _alliance_alerts(data, long, alliance, client, session, instrument, cutoff, drop, out):
    """Cut-off and drop alerts on the rows of ``out`` (sorted like ``long``)."""
    ins = _direction(instrument, alliance, what="alliance")
    require_columns(data, alliance=alliance)
    raw = data[alliance]
    values = pd.to_numeric(raw, errors="coerce")
    junk = values.isna() & raw.notna()
    if junk.any():
        rows = np.flatnonzero(junk.to_numpy())
        raise ValueError(
            f"column {alliance!r} has {len(rows)} non-numeric values ({format_rows(rows)}); "
            "scores must be numbers or missing (NaN)"
        )
    score = values.to_numpy(dtype=float)[long["_row"].to_numpy()]
    out["alliance"] = score
    rules = {}
    low = np.zeros(len(out), dtype=bool)
    if cutoff is not False:
        if cutoff is None:
            if ins.cutoff is None:
                raise ValueError(
                    f"instrument {ins.name!r} has no clinical cut-off in the registry; pass "
                    "alliance_cutoff=<points> (e.g. 36 for the SRS), or alliance_cutoff=False "
                    "to raise no cut-off alerts"
                )
            cutoff = ins.cutoff
        with np.errstate(invalid="ignore"):
            low = score < cutoff if ins.higher_is_better else score >= cutoff
        low = low & ~np.isnan(score)
        rules["alliance_low"] = (
            f"{alliance} {'below' if ins.higher_is_better else 'at or above'} {cutoff:g}"
        )
    out["alliance_low"] = low
    dropped = np.zeros(len(out), dtype=bool)
    if drop is not False:
        from alliance.ruptures import detect

        options = dict(drop) if isinstance(drop, dict) else {}
        if drop is not None and not isinstance(drop, dict):
            options["threshold"] = float(drop)
        if not options and ins.reliable_change is None:
            raise ValueError(
                f"instrument {ins.name!r} has no published reliable-change size; pass "
                "alliance_drop=<points>, or alliance_drop={'sd': ..., 'reliability': ...} "
                "(size 1.96 * sqrt(2) * sd * sqrt(1 - reliability); Jacobson & Truax 1991), "
                "or alliance_drop=False to raise no drop alerts"
            )
        # integer client codes: the same rule, without hashing text ids twice
        codes = pd.factorize(out["client"])[0].astype(np.int64)
        frame = pd.DataFrame({"client": codes, "session": out["session"].to_numpy(), "a": score})
        events = detect(frame, alliance="a", method="drop", instrument=ins, **options)
        base = int(out["session"].min())
        width = int(out["session"].max()) - base + 1
        row_key = codes * width + (out["session"].to_numpy(dtype=np.int64) - base)
        hit_key = events["client"].to_numpy(dtype=np.int64) * width + (
            events["session"].to_numpy(dtype=np.int64) - base
        )
        dropped = np.isin(row_key, hit_key)
        rules["alliance_drop"] = events.attrs.get("rule", "drop")
    out["alliance_drop"] = dropped
    out["alliance_alert"] = low | dropped
    return rules


def signals(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    reference: ExpectedResponse | pd.DataFrame | None = None,
    alliance: str | None = None,
    *,
    intake: str | None = None,
    instrument=None,
    alliance_instrument=None,
    alliance_cutoff: float | bool | None = None,
    alliance_drop: float | dict | bool | None = None,
    percentile: float = 0.90,
    folds: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Not-on-track signals and alliance alerts, one row per client x session.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session.
    outcome, client, session : str
        Column names.
    reference : ExpectedResponse or pandas.DataFrame, optional
        Fitted curves (from :func:`expected_response`, or published coefficients), or a
        reference sample to fit them to (same column names as ``data``). Default: the
        study itself, cross-validated by client (``folds`` groups; each group's bands come
        from curves fitted to the other groups).
    alliance : str, optional
        An alliance column; adds the alliance alerts.
    intake : str, optional
        Column with each client's intake score (see :func:`expected_response`).
    instrument, alliance_instrument : str or Instrument, optional
        Registry entries of the outcome (direction of improvement) and of the alliance
        scale (cut-off, reliable-change size); default the columns' names.
    alliance_cutoff : float or False, optional
        Alert when the alliance is below this score (for a scale where higher is better);
        default the instrument's clinical cut-off (SRS: 36). False: no cut-off alert.
    alliance_drop : float, dict or False, optional
        Alert when the alliance falls from the previous rated session by at least this many
        points (:func:`alliance.ruptures.detect`, ``method="drop"``, prospective); a dict
        is passed to ``detect`` (``sd=``, ``reliability=``, ``z=``); default the
        instrument's published reliable-change size. False: no drop alert.
    percentile : float, default 0.90
        Band quantile, when the curves are fitted here.
    folds : int, default 5
        Cross-validation folds when ``reference`` is None.
    seed : int, default 0
        Assignment of clients to folds.

    Returns
    -------
    pandas.DataFrame
        One row per client x session of ``data`` (sorted by client and session): client,
        session, t (session since intake, intake = 1), outcome (the score), intake,
        expected, lower, upper, not_on_track (bool: the score is worse than the band's
        limit on the worse side; False at the intake, where no score was rated, and for
        clients without an intake score) and, with ``alliance=``, alliance,
        alliance_low, alliance_drop, alliance_alert, and any_signal (not on track or an
        alliance alert). With ``reference=None``, ``fold`` says which curves a client got.
        ``attrs`` records the rules.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sig = alliance.monitoring.signals(study.sessions, outcome="phq9", folds=3)
    >>> len(sig) == len(study.sessions), sig["not_on_track"].dtype.name
    (True, 'bool')
    >>> bool(0.02 < sig.loc[sig["t"] >= 2, "not_on_track"].mean() < 0.2)
    True
    """
    require_columns(data, client=client, session=session, outcome=outcome)
    ins = _direction(instrument, outcome)
    long = _intake_frame(data, outcome, client, session, intake)
    out = long[["client", "session", "t", "value", "intake"]].rename(columns={"value": "outcome"})
    out = out.reset_index(drop=True)
    attrs = {}
    if reference is None:
        if not isinstance(folds, int | np.integer) or isinstance(folds, bool) or folds < 2:
            raise ValueError(f"folds={folds!r} must be a whole number of at least 2")
        codes, uniques = pd.factorize(long["client"])
        if len(uniques) < 2 * folds:
            raise ValueError(
                f"{len(uniques)} clients are too few for {folds}-fold cross-validation; pass "
                "fewer folds or a reference= sample"
            )
        rng = np.random.default_rng(seed)
        client_fold = rng.permutation(np.arange(len(uniques)) % folds)
        fold = client_fold[codes]
        expected = np.full(len(long), np.nan)
        lower = expected.copy()
        upper = expected.copy()
        curves = []
        for k in range(folds):
            train = long[fold != k]
            curve = _fit_curves(train, outcome, ins, float(percentile), intake)
            curves.append(curve)
            rows = fold == k
            band = curve.predict(long["intake"].to_numpy()[rows], long["t"].to_numpy()[rows])
            expected[rows], lower[rows], upper[rows] = band
        out["fold"] = fold
        attrs["reference"] = f"the study itself, {folds}-fold cross-validated by client"
        curve = curves[0]
    else:
        if isinstance(reference, pd.DataFrame):
            curve = expected_response(
                reference, outcome, client, session, intake, instrument=ins, percentile=percentile
            )
            attrs["reference"] = f"a reference sample of {curve.n_clients} clients"
        elif isinstance(reference, ExpectedResponse):
            curve = reference
            attrs["reference"] = "fitted curves supplied by the user"
            if (curve.intake_column is None) != (intake is None):
                raise ValueError(
                    "the reference curves and this call define the intake differently: "
                    f"curves fitted with intake={curve.intake_column!r}, called with "
                    f"intake={intake!r}; pass the same intake= to both"
                )
            if bool(curve.higher_is_better) != bool(ins.higher_is_better):
                raise ValueError(
                    f"the reference curves are for a scale where higher is "
                    f"{'better' if curve.higher_is_better else 'worse'}, but {ins.name!r} "
                    "is the other way round; fit the curves to the same instrument"
                )
        else:
            raise TypeError(
                "reference must be None (the study itself), an ExpectedResponse from "
                f"alliance.monitoring.expected_response, or a DataFrame, not "
                f"{type(reference).__name__}"
            )
        expected, lower, upper = curve.predict(long["intake"].to_numpy(), long["t"].to_numpy())
    banded = long["t"].to_numpy() >= (1 if intake is not None else 2)
    expected = np.where(banded, expected, np.nan)
    lower = np.where(banded, lower, np.nan)
    upper = np.where(banded, upper, np.nan)
    out["expected"], out["lower"], out["upper"] = expected, lower, upper
    y = out["outcome"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        off = y < lower if ins.higher_is_better else y > upper
    out["not_on_track"] = off & ~np.isnan(y) & ~np.isnan(expected)
    attrs["not_on_track"] = (
        f"{outcome} {'below the' if ins.higher_is_better else 'above the'} "
        f"{round(100 * (1 - curve.percentile)) if ins.higher_is_better else round(100 * curve.percentile)}"
        "th percentile of the expected response for the client's intake and session"
    )
    if alliance is not None:
        rules = _alliance_alerts(
            data,
            long,
            alliance,
            client,
            session,
            alliance_instrument,
            alliance_cutoff,
            alliance_drop,
            out,
        )
        attrs.update(rules)
        out["any_signal"] = out["not_on_track"] | out["alliance_alert"]
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------- events


def deterioration(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    instrument=None,
    sd: float | str | None = None,
    reliability: float | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Reliable deterioration from the first to the last rated session, per client.

    Uses :func:`alliance.change.reliable_change` (Jacobson & Truax, 1991) with the same
    yardstick arguments; the event is known at the client's last rated session.

    Returns
    -------
    pandas.DataFrame
        One row per client: client, event (True: reliable deterioration; <NA>: no post
        score), session (the last rated session, when the event is known).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> ev = alliance.monitoring.deterioration(study.sessions, outcome="phq9",
    ...                                         instrument="phq9", sd="pre", reliability=0.84)
    >>> ev.columns.tolist()
    ['client', 'event', 'session']
    """
    from alliance.change import reliable_change

    rc = reliable_change(
        data,
        outcome,
        client,
        session,
        instrument=_direction(instrument, outcome),
        sd=sd,
        reliability=reliability,
        threshold=threshold,
    )
    event = rc["reliable_deterioration"].astype("boolean")
    event[rc["post"].isna()] = pd.NA
    return pd.DataFrame(
        {
            "client": rc["client"].to_numpy(),
            "event": event.array,
            "session": pd.array(rc["post_session"], dtype="Float64").astype("Int64"),
        }
    )


def dropout(
    data: pd.DataFrame,
    clients: pd.DataFrame,
    client: str = "client",
    session: str = "session",
    *,
    reason: str = "termination",
    dropped: tuple[str, ...] = ("dropped out", "dropout"),
) -> pd.DataFrame:
    """Dropout per client, from a termination reason; known after the last attended session.

    Parameters
    ----------
    data : pandas.DataFrame
        Sessions (long format): the last attended session per client.
    clients : pandas.DataFrame
        One row per client with the termination reason in column ``reason``.
    dropped : tuple of str
        Values of ``reason`` (case-insensitive) that mean the client dropped out.

    Returns
    -------
    pandas.DataFrame
        One row per client of ``clients``: client, event (<NA> where the reason is
        missing), session (last attended session + 1: the first session not attended).

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.monitoring import dropout
    >>> s = pd.DataFrame({"client": ["a", "a", "b"], "session": [1, 2, 1]})
    >>> c = pd.DataFrame({"client": ["a", "b"], "termination": ["completed", "dropped out"]})
    >>> dropout(s, c)["event"].tolist()
    [False, True]
    """
    require_columns(data, client=client, session=session)
    require_columns(clients, table="clients", client=client, reason=reason)
    last = data.groupby(client, sort=False)[session].max()
    why = clients[reason]
    event = pd.array(why.astype(str).str.lower().isin([d.lower() for d in dropped]), "boolean")
    event[why.isna().to_numpy()] = pd.NA
    return pd.DataFrame(
        {
            "client": clients[client].to_numpy(),
            "event": event,
            "session": pd.array(clients[client].map(last).to_numpy() + 1, dtype="Float64").astype(
                "Int64"
            ),
        }
    )


@dataclass
class EvaluationResult(Result):
    """Result of :func:`evaluate` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        Terms sensitivity, specificity, ppv, npv (estimate with Wilson 95% CI) and
        lead_time (mean sessions from the first signal to the event among detected events,
        with a t interval); ``n`` the denominator of each.
    by_client : pandas.DataFrame
        client, event, event_session, flagged, first_signal, lead_time.
    counts : pandas.Series
        true_positive, false_negative, false_positive, true_negative.
    signal : str
        The signal column evaluated.
    excluded : pandas.DataFrame
        Clients left out (event unknown; no signal rows).
    """

    params: pd.DataFrame
    by_client: pd.DataFrame
    counts: pd.Series
    signal: str
    excluded: pd.DataFrame
    nobs: int
    level: float = 0.95
    notes: list[str] = field(default_factory=list)
    citation = _CITATION

    @property
    def model(self) -> str:
        return f"monitoring signal {self.signal!r} against later events"

    def _n_by_level(self) -> dict[str, int]:
        return {"clients": self.nobs, "events": int(self.by_client["event"].sum())}

    @property
    def sensitivity(self) -> float:
        return float(self.params.set_index("term").loc["sensitivity", "estimate"])

    @property
    def specificity(self) -> float:
        return float(self.params.set_index("term").loc["specificity", "estimate"])


def _wilson(k: int, n: int, level: float) -> tuple[float, float, float]:
    if n == 0:
        return math.nan, math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return p, centre - half, centre + half


def evaluate(
    signals: pd.DataFrame,
    events: pd.DataFrame,
    *,
    signal: str = "not_on_track",
    client: str = "client",
    session: str = "session",
    level: float = 0.95,
) -> EvaluationResult:
    """Sensitivity, specificity and lead time of a monitoring signal against later events.

    A client counts as flagged when ``signal`` is True at any session *before* the session
    at which their event is known (``events.session``: the last rated session for
    :func:`deterioration`, the first missed session for :func:`dropout`); clients without
    the event are judged over the same window (sessions before their ``events.session``),
    so a signal at the session that itself reveals the outcome never counts. Lead time:
    event session minus the first signal's session, among detected events.

    Parameters
    ----------
    signals : pandas.DataFrame
        From :func:`signals` (client, session and the signal column).
    events : pandas.DataFrame
        One row per client: client, event (bool or <NA>), session.
    signal : str, default "not_on_track"
        Boolean column to evaluate (``"alliance_alert"``, ``"any_signal"``, ...).
    level : float
        Confidence level.

    Returns
    -------
    EvaluationResult

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sig = alliance.monitoring.signals(study.sessions, outcome="phq9", folds=3)
    >>> ev = alliance.monitoring.deterioration(study.sessions, outcome="phq9",
    ...                                         sd="pre", reliability=0.84)
    >>> res = alliance.monitoring.evaluate(sig, ev)
    >>> res.params["term"].tolist()
    ['sensitivity', 'specificity', 'ppv', 'npv', 'lead_time']
    """
    require_columns(signals, table="signals", client=client, session=session, signal=signal)
    require_columns(events, table="events", client=client, event="event", session="session")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}")
    flags = signals[signal]
    if flags.dtype != bool and str(flags.dtype) != "boolean":
        raise ValueError(
            f"column {signal!r} must be boolean (True where the signal is raised), not "
            f"{flags.dtype}"
        )
    if events[client].duplicated().any():
        raise ValueError(
            "events must have one row per client; "
            f"{int(events[client].duplicated().sum())} client ids repeat"
        )
    ev = pd.DataFrame(
        {
            "client": events[client].to_numpy(),
            "event": pd.array(events["event"], dtype="boolean"),
            "event_session": pd.to_numeric(events["session"], errors="coerce").to_numpy(
                dtype=float
            ),
        }
    )
    seen = pd.Index(signals[client].unique())
    unknown = ev["event"].isna().to_numpy() | np.isnan(ev["event_session"].to_numpy())
    absent = ~ev["client"].isin(seen).to_numpy() & ~unknown
    rows = []  # n_rows: rows of events (one per client), or of signals for the last reason
    if unknown.any():
        n = int(unknown.sum())
        rows.append(("event or its session unknown (events table)", "event", n, n))
    if absent.any():
        n = int(absent.sum())
        rows.append(("no rows in signals (events table)", client, n, n))
    extra = ~signals[client].isin(ev["client"]).to_numpy()
    if extra.any():
        n = int(pd.Series(signals[client].to_numpy()[extra]).nunique())
        rows.append(("in signals but not in events (signals table)", client, int(extra.sum()), n))
    ev = ev[~unknown & ~absent].reset_index(drop=True)
    if ev.empty:
        raise ValueError(
            "no client has both a known event (True/False with its session) and signal rows; "
            "check that events and signals use the same client ids"
        )
    sig = pd.DataFrame(
        {
            "client": signals[client].to_numpy(),
            "session": pd.to_numeric(signals[session]).to_numpy(dtype=float),
            "flag": flags.fillna(False).to_numpy(dtype=bool),
        }
    )
    sig = sig[sig["flag"]].merge(ev[["client", "event_session"]], on="client")
    sig = sig[sig["session"] < sig["event_session"]]
    first = sig.groupby("client", sort=False)["session"].min()
    ev["flagged"] = ev["client"].map(first).notna().to_numpy()
    ev["first_signal"] = ev["client"].map(first).to_numpy(dtype=float)
    ev["lead_time"] = np.where(ev["flagged"], ev["event_session"] - ev["first_signal"], np.nan)
    event = ev["event"].to_numpy(dtype=bool)
    flagged = ev["flagged"].to_numpy()
    tp, fn = int((event & flagged).sum()), int((event & ~flagged).sum())
    fp, tn = int((~event & flagged).sum()), int((~event & ~flagged).sum())
    table = []
    for term, k, n in (
        ("sensitivity", tp, tp + fn),
        ("specificity", tn, tn + fp),
        ("ppv", tp, tp + fp),
        ("npv", tn, tn + fn),
    ):
        p, lo, hi = _wilson(k, n, level)
        se = math.sqrt(p * (1 - p) / n) if n else math.nan
        table.append({"term": term, "estimate": p, "se": se, "ci_low": lo, "ci_high": hi, "n": n})
    lead = ev.loc[event & flagged, "lead_time"].to_numpy(dtype=float)
    if len(lead) >= 2:
        se = float(np.std(lead, ddof=1) / np.sqrt(len(lead)))
        q = stats.t.ppf(0.5 + level / 2, len(lead) - 1)
        m = float(lead.mean())
        table.append(
            {
                "term": "lead_time",
                "estimate": m,
                "se": se,
                "df": len(lead) - 1,
                "ci_low": m - q * se,
                "ci_high": m + q * se,
                "n": len(lead),
            }
        )
    else:
        m = float(lead.mean()) if len(lead) else math.nan
        table.append({"term": "lead_time", "estimate": m, "n": len(lead)})
    from alliance.results import tidy_params

    params = tidy_params(pd.DataFrame(table))
    notes = []
    if tp + fn < 10:
        notes.append(f"only {tp + fn} events: sensitivity and lead time rest on very few clients")
    return EvaluationResult(
        params=params,
        by_client=ev,
        counts=pd.Series(
            {"true_positive": tp, "false_negative": fn, "false_positive": fp, "true_negative": tn}
        ),
        signal=signal,
        excluded=exclusion_log(rows),
        nobs=len(ev),
        level=level,
        notes=notes,
    )
