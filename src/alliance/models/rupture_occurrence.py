"""Rupture occurrence: does a rupture begin in this session, and who ruptures more?

A session-level logistic mixed model (lme4's ``glmer``, fitted by :func:`alliance.models.glmm`)
of the onset of a rupture in each session, with client and therapist random intercepts:

``rupture ~ prior_negative_therapy + phase + techniques + session + (1 | client) + (1 | therapist)``

Clients with a harmful or disappointing earlier therapy come in wary and are expected to
rupture more (Safran & Muran 2000); the interview phase and the techniques used in the session
(confrontation above all) are session-level predictors (Kadushin & Kadushin 2013). Each
predictor enters when its column is found by :func:`alliance.resolve_design` (or is passed).
Ruptures come from the rupture layer: detected prospectively from the alliance series
(:func:`alliance.ruptures.detect`), any events table (self-report, ...) or the observer-coded
3RS segments (:mod:`alliance.observer`).

References
----------
Eubanks, C. F., Muran, J. C., & Safran, J. D. (2015). Rupture Resolution Rating System (3RS):
Manual. Mount Sinai-Beth Israel Medical Center.

Kadushin, A., & Kadushin, G. (2013). The social work interview (5th ed.). Columbia
University Press.

Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance: A relational
treatment guide. Guilford Press.

Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1-48.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from alliance import observer as _observer
from alliance import ruptures as _ruptures
from alliance._checks import require_columns
from alliance.design import resolve_design
from alliance.models._prep import Exclusions, as_long, check_sessions, code_moderator
from alliance.models._result import ModelResult
from alliance.models.glmm import glmm
from alliance.models.registry import register_model
from alliance.results import n_by_level

__all__ = ["DEFAULT_DETECT", "RuptureOccurrenceResult", "rupture_occurrence"]

CITATION = (
    "Safran & Muran (2000); Eubanks, Muran & Safran (2015); Bates, Maechler, Bolker & Walker (2015)"
)
#: Default rupture rule for ``source="detected"``: prospective (a flag at session n uses the
#: sessions up to n only), the same rule as :func:`alliance.models.dropout_model`.
DEFAULT_DETECT = {"method": "dip", "spread": "stricter"}
SOURCES = ("detected", "events", "observer")
AUTO = "auto"
#: Phase levels in interview order (Kadushin & Kadushin 2013); the first present is the
#: reference level.
PHASE_ORDER = ("exploration", "assessment", "treatment")


@dataclass
class RuptureOccurrenceResult(ModelResult):
    """Result of :func:`rupture_occurrence` (a :class:`~alliance.models.ModelResult`).

    ``params`` holds log-odds estimates with Wald z tests (glmer's Hessian-based covariance)
    and, as extra columns, ``odds_ratio``, ``or_ci_low`` and ``or_ci_high``.

    Attributes
    ----------
    events : pandas.DataFrame
        The rupture events used (client, session, ...).
    table : pandas.DataFrame
        The session-level data the model was fitted to (client, therapist, session,
        rupture and the predictors as entered).
    source : str
        ``"detected"``, ``"events"`` or ``"observer"``.
    n_ruptures : int
        Sessions with a rupture onset among the sessions used.
    icc : pandas.Series
        Latent-scale intraclass correlations per grouping factor, variance / (sum of the
        random-intercept variances + pi^2 / 3) (Snijders & Bosker 2012).
    predictors : dict
        Role -> column used (``prior_negative_therapy``, ``phase``, ``techniques``).
    mixed_model : alliance.models.GlmmResult
        The fitted GLMM.
    """

    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    source: str = "detected"
    n_ruptures: int = 0
    icc: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    predictors: dict = field(default_factory=dict)
    mixed_model: Any = None


def _pick(value, role: str, design) -> str | None:
    """The column for an optional role: given, found by the design ("auto") or none."""
    if value is None or value is False:
        return None
    if value == AUTO:
        return design.columns.get(role) if design is not None else None
    return value


def _events_for(source, data, frame, alliance, client, session, events, detect, segments):
    if source == "detected":
        if events is not None or segments is not None:
            raise ValueError(
                "source='detected' detects ruptures; pass events= or segments= with "
                "source='events' or source='observer'."
            )
        options = {**DEFAULT_DETECT, **(detect or {})}
        try:
            ev = _ruptures.detect(
                frame, alliance=alliance, client=client, session=session, **options
            )
        except ValueError as err:
            raise ValueError(
                f"ruptures could not be detected from {alliance!r}: {err}. Pass detect= options "
                "or use source='events' with an events table."
            ) from err
        return ev, f"detected: {ev.attrs.get('rule', options['method'])}", options
    if detect:
        raise ValueError(f"detect= options apply to source='detected', not {source!r}.")
    if source == "events":
        if events is None:
            events = getattr(data, "events", None)
        if events is None or len(events) == 0 and not isinstance(events, pd.DataFrame):
            raise ValueError(
                "source='events' needs an events table: pass events= (client, session) or a "
                "Study with an events table."
            )
        require_columns(events, table="events", client=client, session=session)
        return events, "events table given", None
    # observer
    if segments is None:
        segments = getattr(data, "segments", None)
    if segments is None or len(segments) == 0:
        raise ValueError(
            "source='observer' needs 3RS segment codes: pass segments= (one row per coder x "
            "segment x marker) or a Study with a segments table."
        )
    agg = _observer.aggregate_segments(segments)
    ev = _observer.as_events(agg)
    coded = agg[["client", "session"]].rename(columns={"client": client, "session": session})
    if client != "client" or session != "session":
        ev = ev.rename(columns={"client": client, "session": session})
    what = "observer-coded 3RS segments (aggregate_segments, majority rule)"
    return ev, what, {"coded": coded}


@register_model(
    name="rupture_occurrence",
    estimates="log odds ratio of a rupture beginning in a session for clients with a prior "
    "negative therapy experience (versus without)",
    citation=CITATION,
    roles=("alliance", "client", "session", "therapist", "prior_negative_therapy", "phase"),
    focal_term="{prior_negative_therapy}",
)
def rupture_occurrence(
    data,
    alliance: str | None = "alliance",
    client: str = "client",
    session: str = "session",
    therapist: str | None = AUTO,
    prior_negative_therapy: str | None = AUTO,
    phase: str | None = AUTO,
    techniques: str | list[str] | None = AUTO,
    *,
    source: Literal["detected", "events", "observer"] = "detected",
    events: pd.DataFrame | None = None,
    detect: dict | None = None,
    segments: pd.DataFrame | None = None,
    trend: bool = True,
    nagq: int = 1,
) -> RuptureOccurrenceResult:
    """Session-level logistic GLMM of rupture onset with client and therapist intercepts.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session (client-level columns such as
        ``prior_negative_therapy`` are taken from ``study.clients``).
    alliance, client, session : str
        Column names (``alliance`` is needed only for ``source="detected"``).
    therapist, prior_negative_therapy, phase : str or None
        Columns; ``"auto"`` (default) takes the column :func:`alliance.resolve_design` finds
        for the role, if any; None leaves the term out. ``prior_negative_therapy`` is coded
        0/1 (true / the second of two sorted levels = 1); ``phase`` enters as dummy variables
        with the first present level of exploration, assessment, treatment (else the first
        sorted level) as reference.
    techniques : str, list of str or None
        Session-level technique counts (``"auto"``: the design's technique columns).
    source : {"detected", "events", "observer"}
        ``"detected"``: :func:`alliance.ruptures.detect` on ``alliance`` with the prospective
        :data:`DEFAULT_DETECT` rule updated by ``detect``; ``"events"``: ``events`` (default
        ``study.events``); ``"observer"``: 3RS ``segments`` (default ``study.segments``) by
        :func:`alliance.observer.aggregate_segments` and :func:`alliance.observer.as_events`.
    events, detect, segments
        See ``source``.
    trend : bool, default True
        Add the session number (a linear trend in the log odds of a rupture).
    nagq : int, default 1
        Laplace (1) or adaptive Gauss-Hermite quadrature points (only without a therapist
        term: a single scalar random effect).

    Returns
    -------
    RuptureOccurrenceResult
        ``params`` (log odds, z tests; ``odds_ratio``, ``or_ci_low``, ``or_ci_high``),
        ``variance_components``, ``icc``, ``table``, ``events``, ``mixed_model``.

    Notes
    -----
    The outcome is 1 in the session where a rupture begins (an event's session), else 0; two
    events in one session count once. Sessions that cannot show a rupture are excluded and
    counted: for detected ruptures, sessions without an alliance rating and a client's first
    rated sessions (the rule needs earlier ones: ``min_prior`` for ``"dip"``, one for
    ``"drop"``). Rows with a missing predictor or therapist are excluded and counted.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.rupture_occurrence(study, alliance="wai_sr")
    >>> fit.params["term"].tolist()[:2]
    ['(Intercept)', 'prior_negative_therapy']
    >>> bool((fit.params["odds_ratio"] > 0).all())
    True
    >>> fit.variance_components["group"].tolist()
    ['client', 'therapist']
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, not {source!r}.")
    needs_design = AUTO in (therapist, prior_negative_therapy, phase, techniques)
    design = resolve_design(data, client=client, session=session) if needs_design else None
    therapist = _pick(therapist, "therapist", design)
    prior = _pick(prior_negative_therapy, "prior_negative_therapy", design)
    phase = _pick(phase, "phase", design)
    if techniques == AUTO:
        techniques = list(design.techniques) if design is not None else []
    elif techniques is None:
        techniques = []
    elif isinstance(techniques, str):
        techniques = [techniques]
    techniques = list(techniques)
    need_alliance = alliance if source == "detected" else None
    frame = as_long(
        data, client, session, therapist, need_alliance, prior, phase, *techniques, client=client
    )
    frame = check_sessions(frame, session, client)
    ev, what, options = _events_for(
        source, data, frame, alliance, client, session, events, detect, segments
    )
    ses = pd.to_numeric(ev[session], errors="coerce")
    ev = ev.assign(**{session: ses})
    notes = [f"ruptures: {what}; {len(ev)} events."]
    bad = ses.isna().to_numpy()
    unknown = ~ev[client].isin(set(frame[client])).to_numpy()
    if bad.any() or unknown.any():
        notes.append(
            f"{int(bad.sum())} events without a session number and {int(unknown.sum())} events "
            "of clients not in the data were left out."
        )
    ev = ev[~bad & ~unknown].reset_index(drop=True)
    onset = ev[[client, session]].drop_duplicates().assign(_rupture=1.0)
    work = frame.merge(onset, on=[client, session], how="left")
    work["_rupture"] = work["_rupture"].fillna(0.0)
    n_off = len(onset) - int(work["_rupture"].sum())
    if n_off:
        notes.append(f"{n_off} event sessions have no row in the data (not used).")

    ex = Exclusions(client)
    left = np.ones(len(work), dtype=bool)
    checks: list[tuple[str, np.ndarray, str | None]] = []
    if source == "detected":
        rated = work[alliance].notna().to_numpy()
        order = work[alliance].notna().groupby(work[client]).cumsum().to_numpy() - 1
        need = options.get("min_prior", 2) if options["method"] == "dip" else 1
        checks += [
            (f"no {alliance} rating (a rupture cannot be detected)", ~rated, alliance),
            (
                f"among the client's first {need} rated sessions (not at risk: the rule needs "
                "earlier ratings)",
                rated & (order < need),
                alliance,
            ),
        ]
    if source == "observer":
        coded = options["coded"].drop_duplicates().assign(_coded=True)
        coded[session] = pd.to_numeric(coded[session], errors="coerce")
        is_coded = work[[client, session]].merge(coded, on=[client, session], how="left")
        checks.append(
            (
                "session not coded by observers (no 3RS segments)",
                is_coded["_coded"].isna().to_numpy(),
                session,
            )
        )
    for col in [therapist, prior, phase, *techniques]:
        if col is not None:
            checks.append((f"missing {col}", work[col].isna().to_numpy(), col))
    for reason, mask, col in checks:
        hit = left & mask
        ex.add(reason, hit, work, col)
        left &= ~hit
    used = work[left].reset_index(drop=True)
    n_rupt = int(used["_rupture"].sum())
    if n_rupt == 0 or n_rupt == len(used):
        raise ValueError(
            f"{n_rupt} of {len(used)} sessions used have a rupture; the model needs sessions with "
            "and without one (check the events, the source or the detection rule)."
        )

    # the model frame with safe names; terms are renamed back to the user's columns
    model = pd.DataFrame({"rupture": used["_rupture"].to_numpy(), "client": used[client]})
    names: dict[str, str] = {}
    terms: list[str] = []
    coding: dict[str, str] = {}
    if prior is not None:
        coded, _at, _labels, how = code_moderator(used[prior], prior)
        model["x_prior"] = coded.to_numpy()
        names["x_prior"] = prior
        terms.append("x_prior")
        coding[prior] = how
    if phase is not None:
        present = [str(v) for v in pd.unique(used[phase].astype(str))]
        ordered = [p for p in PHASE_ORDER if p in present]
        levels = ordered + sorted(p for p in present if p not in ordered)
        if len(levels) < 2:
            notes.append(f"{phase!r} takes a single value in the sessions used; left out.")
        else:
            coding[phase] = f"reference {levels[0]!r}"
            for i, lev in enumerate(levels[1:]):
                nm = f"x_phase{i}"
                model[nm] = (used[phase].astype(str) == lev).astype(float).to_numpy()
                names[nm] = f"{phase}[{lev}]"
                terms.append(nm)
    for i, col in enumerate(techniques):
        if not pd.api.types.is_numeric_dtype(used[col]):
            raise ValueError(
                f"technique column {col!r} must hold numeric counts, not {used[col].dtype}."
            )
        nm = f"x_tech{i}"
        model[nm] = used[col].astype(float).to_numpy()
        names[nm] = col
        terms.append(nm)
    if trend:
        model["x_session"] = used[session].astype(float).to_numpy()
        names["x_session"] = session
        terms.append("x_session")
    rhs = " + ".join(terms) if terms else "1"
    random = " + (1 | client)"
    if therapist is not None:
        model["therapist"] = used[therapist].to_numpy()
        random += " + (1 | therapist)"
    formula = f"rupture ~ {rhs}{random}"
    try:
        fit = glmm(formula, model, family="binomial", nagq=nagq)
    except ValueError as err:
        raise ValueError(f"rupture_occurrence could not fit {formula!r}: {err}") from err
    params = fit.params.copy()
    params["term"] = params["term"].map(lambda t: names.get(t, t))
    params["odds_ratio"] = np.exp(params["estimate"])
    params["or_ci_low"] = np.exp(params["ci_low"])
    params["or_ci_high"] = np.exp(params["ci_high"])
    vc = fit.variance_components.copy()
    intercepts = vc[(vc["term"] == "(Intercept)") & (vc["term2"] == "")]
    total = float(intercepts["variance"].sum()) + math.pi**2 / 3
    icc = pd.Series(
        (intercepts["variance"] / total).to_numpy(),
        index=intercepts["group"].to_numpy(),
        name="icc_latent",
    )
    if not fit.converged:
        notes.append("The optimizer did not report convergence; check the estimates.")
    notes.extend(fit.notes)
    for col, how in coding.items():
        notes.append(f"{col}: {how}.")
    table = used[[c for c in [client, therapist, session] if c is not None]].copy()
    table["rupture"] = model["rupture"].to_numpy()
    for nm in terms:
        if nm != "x_session":
            table[names[nm]] = model[nm].to_numpy()
    return RuptureOccurrenceResult(
        model="rupture onset this session (session-level logistic GLMM)",
        params=params,
        variance_components=vc,
        loglik=fit.loglik,
        nobs=fit.nobs,
        excluded=ex.frame(),
        missing_data=(
            "every session at risk with the predictors observed (missing-at-random given "
            "them); sessions excluded are counted in .excluded."
        ),
        citation=CITATION,
        notes=notes,
        standardization="none (log odds; odds ratios in odds_ratio)",
        n_by_level=n_by_level(used, clients=client, sessions=client, therapists=therapist),
        aic=fit.aic,
        bic=fit.bic,
        converged=fit.converged,
        singular=fit.singular,
        events=ev,
        table=table,
        source=source,
        n_ruptures=n_rupt,
        icc=icc,
        predictors={"prior_negative_therapy": prior, "phase": phase, "techniques": techniques},
        mixed_model=fit,
    )
