"""Rupture and repair -> outcome, per client and session by session.

``unit="client"``: each client is classed as having had no rupture, only repaired ruptures,
or at least one unrepaired rupture, and the class predicts the end outcome controlling for
baseline (Stiles et al. 2004 found larger gains for clients with rupture-repair sequences;
Eubanks, Muran & Safran 2018 pooled r = .29 for repair and outcome).
``unit="session"``: a rupture at session t predicts the change in outcome from t to t + 1
(Falkenström et al. 2013 for the session-level design), with client and therapist random
intercepts. Ruptures come from the rupture layer (:mod:`alliance.ruptures`): detected from the
alliance series, self-reported, observer-coded, or any events table in its layout.

References
----------
Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis.
Psychotherapy, 55(4), 508-519.

Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance: A relational
treatment guide. Guilford Press.

Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies, R.,
Rees, A., & Barkham, M. (2004). Patterns of alliance development and the rupture-repair
hypothesis: Are productive relationships U-shaped or V-shaped? Journal of Counseling
Psychology, 51(1), 81-92.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from alliance import ruptures as _ruptures
from alliance._checks import renamed, require_columns
from alliance.design import from_study_roles
from alliance.models._prep import (
    Exclusions,
    as_long,
    check_sessions,
    client_table,
    fit_client_model,
    lead,
    lmm_params,
    standardize,
)
from alliance.models._result import ModelResult, engine_fits
from alliance.models.early import early_table
from alliance.models.lmm import lmm
from alliance.models.registry import register_model
from alliance.results import n_by_level

__all__ = ["RuptureOutcomeResult", "rupture_outcome"]

CITATION = "Stiles et al. (2004); Eubanks, Muran & Safran (2018); Safran & Muran (2000)"


@dataclass
class RuptureOutcomeResult(ModelResult):
    """Result of :func:`rupture_outcome` (a :class:`~alliance.models.ModelResult`).

    Attributes
    ----------
    events : pandas.DataFrame
        The rupture events used (client, session, resolved, ...).
    classes : pandas.DataFrame or None
        ``unit="client"``: clients per class (none, repaired, unrepaired, unknown) with
        n_clients and mean_change; None at the session level.
    table : pandas.DataFrame or None
        ``unit="client"``: the client-level data used (baseline, end, class, ...).
    n_rupture_sessions : int or None
        ``unit="session"``: sessions with a rupture among the pairs used.
    mixed_model : alliance.models.LmmResult or None
        The mixed model fitted (session level, or client level with a therapist column).
    ols : statsmodels regression result or None
        The least-squares fit (client level without a therapist column).
    """

    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    classes: pd.DataFrame | None = None
    table: pd.DataFrame | None = None
    n_rupture_sessions: int | None = None
    mixed_model: Any = None
    ols: Any = None


@register_model(
    name="rupture_outcome",
    estimates="difference in end-of-treatment outcome for clients with an unrepaired rupture "
    "(versus none), controlling for baseline",
    citation=CITATION,
    roles=("alliance", "outcome", "client", "session", "therapist"),
    focal_term="rupture_unrepaired",
)
@from_study_roles(optional=("alliance",))
def rupture_outcome(
    data,
    alliance: str | None = None,
    outcome: str | None = None,
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    unit: Literal["client", "session"] | None = None,
    events: pd.DataFrame | None = None,
    detect: dict | None = None,
    adjust_length: bool = True,
    reml: bool = True,
    level: str | None = None,
) -> ModelResult:
    """Ruptures and their repair predicting outcome, per client or session by session.

    Parameters
    ----------
    data : Study or pandas.DataFrame
        Long format, one row per client x session.
    alliance, outcome, client, session, therapist : str
        Column names (``alliance`` is needed only to detect ruptures).
        therapist: Left out for a Study, the therapist column of its design
        (codebook ``role``) is used and a note says so; ``False`` fits without one.
    unit : {"client", "session"}, default "client"
        ``"client"``: ``end ~ baseline + rupture_repaired + rupture_unrepaired
        [+ rupture_unknown] [+ sessions_elapsed] + (1 | therapist)``, one row per client, no
        rupture the reference. A client with any unrepaired rupture is "unrepaired"; with
        repaired ones only, "repaired"; with ruptures of unknown resolution and no unrepaired
        one, "unknown" (kept as its own class).
        ``"session"``: ``outcome[t+1] - outcome[t] ~ rupture[t] + session + (1 | client) +
        (1 | therapist)``, one row per pair of consecutive session numbers.
    events : pandas.DataFrame, optional
        Rupture events (client, session, resolved), e.g. ``study.events`` or the result of
        :func:`alliance.ruptures.detect`. Default: detected from ``alliance`` with
        :func:`alliance.ruptures.detect` and ``detect`` options.
    detect : dict, optional
        Options for :func:`alliance.ruptures.detect` (e.g. ``{"method": "drop",
        "threshold": 8}`` for WAI-SR totals, which have no registry reliable-change size).
    adjust_length : bool, default True
        ``"client"``: add the sessions elapsed between baseline and end. Clients who stay
        longer have more sessions in which to rupture and more time to improve; without the
        adjustment that exposure confounds the comparison.
    reml : bool, default True
    level : str, optional
        Former name of ``unit`` (still accepted with a warning; ``level`` is a confidence
        level elsewhere in the package).

    Returns
    -------
    RuptureOutcomeResult
        ``params``; ``std_estimate`` = b / SD(outcome) for the 0/1 rupture terms (a
        standardized mean difference) and b x SD(x) / SD(outcome) for the others.
        ``.classes`` (client level): clients per class; ``.events``: the events used.

    Notes
    -----
    Missing data: ``"client"``: one row per client (end = last observed outcome); clients
    without a baseline and a later outcome are excluded and counted. ``"session"``: every pair of consecutive
    session numbers with both outcomes observed, REML under missing at random; missed
    sessions and last sessions are counted in ``.excluded``.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.rupture_outcome(study, alliance="wai_sr", outcome="phq9",
    ...     therapist="therapist", detect={"method": "drop", "threshold": 8})
    >>> fit.params["term"].tolist()[2:4]
    ['rupture_repaired', 'rupture_unrepaired']
    >>> fit.classes.index.tolist()
    ['none', 'repaired', 'unrepaired', 'unknown']
    """
    unit = renamed("rupture_outcome", "level", level, "unit", unit, default="client")
    if unit not in ("client", "session"):
        raise ValueError(f"unit must be 'client' or 'session', not {unit!r}.")
    need_alliance = alliance if events is None else None
    frame = as_long(data, client, session, therapist, need_alliance, outcome)
    frame = check_sessions(frame, session, client)
    if not pd.api.types.is_numeric_dtype(frame[outcome]):
        raise ValueError(f"column {outcome!r} must be numeric, not {frame[outcome].dtype}.")
    frame[outcome] = frame[outcome].astype(float)
    if events is None:
        options = {"method": "drop", **(detect or {})}
        try:
            events = _ruptures.detect(
                frame, alliance=alliance, client=client, session=session, **options
            )
        except ValueError as err:
            raise ValueError(
                f"ruptures could not be detected from {alliance!r}: {err}. Pass detect= "
                "options (e.g. detect={'method': 'drop', 'threshold': 8} for WAI-SR totals) "
                "or an events table."
            ) from err
        source = f"detected: {events.attrs.get('rule', options['method'])}"
    else:
        if detect:
            raise ValueError("pass either events= or detect= options, not both.")
        require_columns(events, table="events", client=client, session=session)
        source = "events table given"
    ev = pd.DataFrame(
        {
            "client": events[client].to_numpy(),
            "session": pd.to_numeric(events[session], errors="coerce").to_numpy(),
            "resolved": (
                events["resolved"].astype("boolean").to_numpy()
                if "resolved" in events.columns
                else pd.array([pd.NA] * len(events), dtype="boolean")
            ),
        }
    )
    bad = ev["session"].isna()
    ev = ev[~bad]
    known = set(frame[client])
    unknown = ~ev["client"].isin(known)
    notes = [f"ruptures: {source}; {len(ev)} events."]
    if bad.any() or unknown.any():
        notes.append(
            f"{int(bad.sum())} events without a session number and {int(unknown.sum())} events "
            "of clients not in the data were left out."
        )
    ev = ev[~unknown]
    if unit == "client":
        return _client_level(
            frame, ev, outcome, client, session, therapist, adjust_length, reml, notes
        )
    return _session_level(frame, ev, outcome, client, session, therapist, reml, notes)


def _client_level(frame, ev, outcome, client, session, therapist, adjust_length, reml, notes):
    ex = Exclusions(client)
    per = ev.groupby("client").agg(
        n=("session", "size"),
        unrep=("resolved", lambda r: bool((r == False).any())),  # noqa: E712
        unknown=("resolved", lambda r: bool(r.isna().any())),
    )
    cls = pd.Series("none", index=pd.Index(pd.unique(frame[client]), name=client))
    cls.loc[per.index] = np.where(
        per["unrep"], "unrepaired", np.where(per["unknown"], "unknown", "repaired")
    )
    # baseline = first observed outcome, end = last observed outcome after it
    tmp = frame.assign(_one=1.0)
    table = early_table(tmp, "_one", outcome, client, session, k=1, how="mean", ex=ex)
    if therapist is not None:
        ther = client_table(frame, client, [therapist])
        table = table.merge(ther, on=client, how="left")
        miss = table[therapist].isna()
        if miss.any():
            ex.add_counts(
                "missing therapist",
                int(frame[client].isin(table.loc[miss, client]).sum()),
                int(miss.sum()),
                therapist,
            )
            table = table[~miss]
    table["class"] = table[client].map(cls).to_numpy()
    table["rupture_repaired"] = (table["class"] == "repaired").astype(float)
    table["rupture_unrepaired"] = (table["class"] == "unrepaired").astype(float)
    table["rupture_unknown"] = (table["class"] == "unknown").astype(float)
    counts = table["class"].value_counts().reindex(["none", "repaired", "unrepaired"], fill_value=0)
    if (counts == 0).any():
        empty = ", ".join(counts.index[counts == 0])
        raise ValueError(
            f"no client is in class {empty}; the comparison none / repaired / unrepaired needs "
            "clients in each (check the events, or the detection threshold)."
        )
    terms = ["baseline", "rupture_repaired", "rupture_unrepaired"]
    n_unknown = int(table["rupture_unknown"].sum())
    if n_unknown:
        terms.append("rupture_unknown")
        notes.append(
            f"{n_unknown} clients had ruptures of unknown resolution only (e.g. their ratings end "
            "before the repair window closes): kept as their own class, rupture_unknown."
        )
    if adjust_length:
        terms.append("sessions_elapsed")
    work = table.rename(columns={therapist: "therapist"}) if therapist else table
    params, vc, loglik, fit = fit_client_model(
        work,
        "end",
        terms,
        "therapist" if therapist else None,
        reml=reml,
        what="rupture-outcome model",
    )
    sd_y = table["end"].std()
    std = {
        "baseline": standardize(1.0, table["baseline"].std(), sd_y),
        "rupture_repaired": standardize(1.0, 1.0, sd_y),
        "rupture_unrepaired": standardize(1.0, 1.0, sd_y),
        "rupture_unknown": standardize(1.0, 1.0, sd_y),
        "sessions_elapsed": standardize(1.0, table["sessions_elapsed"].std(), sd_y),
    }
    params["std_estimate"] = params["estimate"] * params["term"].map(std).astype(float)
    classes = table.groupby("class").agg(n_clients=("end", "size"), mean_change=("end", "mean"))
    classes["mean_change"] = (table["end"] - table["baseline"]).groupby(table["class"]).mean()
    if getattr(fit, "singular", False):
        notes.append("Singular fit: the therapist variance is estimated at zero.")
    n_levels = n_by_level(table, clients=client, therapists=therapist)
    n_levels["sessions"] = int(frame[client].isin(table[client]).sum())
    return RuptureOutcomeResult(
        model=f"rupture / repair -> end {outcome} (client level)",
        params=params,
        variance_components=vc,
        loglik=loglik,
        nobs=len(table),
        excluded=ex.frame(),
        missing_data=(
            "client-level model, one row per client (baseline = first observed outcome, end = "
            "last observed outcome); clients without both are excluded (counted)."
        ),
        citation=CITATION,
        notes=notes,
        standardization="0/1 terms: b / SD(end); others b x SD(x) / SD(end)",
        n_by_level=n_levels,
        classes=classes.reindex(
            ["none", "repaired", "unrepaired"] + (["unknown"] if n_unknown else [])
        ),
        table=table,
        events=ev,
        **engine_fits(fit),
    )


def _session_level(frame, ev, outcome, client, session, therapist, reml, notes):
    ex = Exclusions(client)
    flag = (
        frame[[client, session]]
        .merge(
            ev[["client", "session"]]
            .drop_duplicates()
            .rename(columns={"client": client, "session": session})
            .assign(_r=1.0),
            on=[client, session],
            how="left",
        )["_r"]
        .fillna(0.0)
        .to_numpy()
    )
    n_off = len(ev.drop_duplicates(["client", "session"])) - int(flag.sum())
    if n_off:
        notes.append(f"{n_off} events fall on sessions without a row in the data (not used).")
    nxt = lead(frame, outcome, client, session, 1)
    work = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": frame[session].to_numpy(),
            "change": (nxt - frame[outcome]).to_numpy(),
            "rupture": flag,
        }
    )
    if therapist is not None:
        work["therapist"] = frame[therapist].to_numpy()
    last = frame.groupby(client)[session].transform("max").to_numpy()
    n_sess = frame.groupby(client)[session].transform("size").to_numpy()
    left = np.ones(len(work), dtype=bool)
    for reason, mask, col in [
        ("single-session client", n_sess == 1, session),
        (f"missing {outcome} at t", frame[outcome].isna().to_numpy(), outcome),
        (
            "no session t + 1 (last session of the client)",
            work["session"].to_numpy() >= last,
            session,
        ),
        (f"session t + 1 missed or {outcome} missing there", nxt.isna().to_numpy(), outcome),
        (
            "missing therapist",
            work["therapist"].isna().to_numpy() if therapist else np.zeros(len(work), bool),
            therapist,
        ),
    ]:
        hit = left & mask
        ex.add(reason, hit, work, col)
        left &= ~hit
    used = work[left].reset_index(drop=True)
    n_rupt = int(used["rupture"].sum())
    if n_rupt == 0:
        raise ValueError(
            "no rupture falls on a session with an observed next session; the session-level "
            "model has nothing to estimate (check the events or the detection threshold)."
        )
    formula = "change ~ rupture + session + (1 | client)"
    if therapist is not None:
        formula += " + (1 | therapist)"
    try:
        fit = lmm(formula, used, reml=reml)
    except ValueError as err:
        raise ValueError(f"rupture_outcome could not fit {formula!r}: {err}") from err
    sd_y = used["change"].std()
    params = lmm_params(
        fit,
        {"session": session},
        {
            "rupture": float(standardize(1.0, 1.0, sd_y)),
            session: float(standardize(1.0, used["session"].std(), sd_y)),
        },
    )
    if fit.singular:
        notes.append("Singular fit: a random-effect variance is at zero.")
    return RuptureOutcomeResult(
        model=f"rupture at t -> {outcome} change t to t + 1 (session level)",
        params=params,
        variance_components=fit.variance_components,
        loglik=fit.loglik,
        nobs=fit.nobs,
        excluded=ex.frame(),
        missing_data=(
            "all pairs of consecutive session numbers with both outcomes observed, REML under "
            "missing at random; missed and last sessions are counted in .excluded."
        ),
        citation=CITATION,
        notes=notes,
        standardization="rupture: b / SD(change); session: b x SD(session) / SD(change)",
        n_by_level=n_by_level(used, clients="client", sessions="client", therapists="therapist"),
        events=ev,
        n_rupture_sessions=n_rupt,
        **engine_fits(fit),
    )
