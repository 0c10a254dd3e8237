"""Simulated studies with known truth, for the demo data, tests and power analysis.

The generating model follows the findings the field builds on (see the README):

* alliance (WAI-SR, item mean 1-5) varies between therapists and between clients
  within therapists (Baldwin, Wampold & Imel 2007), grows over sessions, and is lower
  at first for clients with a prior negative therapy experience;
* session-level alliance above a client's own trajectory lowers next-session symptoms
  (PHQ-9), and symptoms above a client's own trajectory lower the next alliance, a
  smaller reverse effect (Falkenström et al. 2013, 2016);
* a therapist's and a client's alliance level speed symptom improvement, the
  therapist's more (Baldwin et al. 2007), so early alliance correlates with outcome
  at about the meta-analytic r = .28 (Flückiger et al. 2018);
* ruptures are dips in alliance, repaired within two sessions or left unrepaired
  (Stiles et al. 2004; Safran & Muran), more frequent after a prior negative therapy;
* reflection raises and confrontation lowers the session's alliance (Kadushin &
  Kadushin 2013), a path for technique -> alliance -> outcome mediation;
* dropout depends on the observed alliance and unrepaired ruptures (missing at
  random given the observed data), and some sessions are missed.

All randomness comes from one ``numpy.random.Generator`` seeded by ``seed``.

:func:`simulate_rom` writes studies of routine-outcome-monitoring size (hundreds of
thousands of clients) to Parquet or CSV in chunks of clients, so memory stays bounded.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.study import RUPTURE_MARKERS, Codebook, Study

__all__ = [
    "Effects",
    "as_effects",
    "simulate_study",
    "simulate_rom",
    "write_simulation",
    "codebook_for",
    "OBSERVER_DEFAULTS",
    "SIMULATION_MARKER",
    "THERAPIST_RATING_DEFAULTS",
]

#: Key of the ``datapackage.json`` that :func:`simulate_rom` and :func:`write_simulation`
#: write: ``{"written_by": ..., "files": [...]}``, the files that simulation wrote. A
#: folder is written into only when none of the files to write exists, or when each
#: one that exists is listed there (a previous simulation of ours, which is replaced).
SIMULATION_MARKER = "alliance_simulation"

WAI_ITEMS = 12
PHQ_ITEMS = 9


@dataclass(frozen=True)
class Effects:
    """The generating values of :func:`simulate_study`.

    Alliance effects are on the WAI-SR item-mean scale (1-5); symptom effects on the
    PHQ-9 total scale (0-27).

    Attributes
    ----------
    alliance_mean : float
        Mean alliance (item mean) at session 1 for a client without prior negative therapy.
    alliance_growth : float
        Average alliance change per session.
    therapist_sd : float
        SD of therapist alliance intercepts.
    client_sd : float
        SD of client alliance intercepts within therapists.
    growth_sd : float
        SD of client alliance growth per session.
    alliance_residual_sd : float
        Session-to-session alliance noise.
    symptom_mean : float
        Mean PHQ-9 at intake.
    symptom_sd : float
        SD of intake PHQ-9 between clients.
    symptom_slope : float
        Average PHQ-9 change per session at average alliance.
    symptom_slope_sd : float
        SD of client PHQ-9 slopes not explained by alliance.
    symptom_residual_sd : float
        Session-to-session PHQ-9 noise.
    within : float
        Within-client effect of alliance at t (deviation from the client's own
        trajectory, item-mean points) on PHQ-9 at t + 1.
    reverse : float
        Within-client effect of PHQ-9 at t (deviation from the client's own
        trajectory) on alliance (item mean) at t + 1.
    between_therapist : float
        Change in PHQ-9 slope per session per item-mean point of therapist alliance.
    between_client : float
        Change in PHQ-9 slope per session per item-mean point of client alliance
        (deviation from the therapist).
    prior_negative_rate : float
        Share of clients with a prior negative therapy experience.
    prior_negative_alliance : float
        Lower alliance intercept for them (item-mean points, negative).
    prior_negative_growth : float
        Their extra alliance growth per session (they catch up).
    rupture_rate : float
        Chance of a rupture at a session from session 3 on.
    rupture_rate_prior_negative : float
        The same for clients with a prior negative therapy experience.
    rupture_depth : float
        Mean depth of a rupture (item-mean points).
    repair_rate : float
        Share of ruptures repaired within two sessions.
    reflection_effect : float
        Alliance change (item mean) per reflection above the mean count.
    confrontation_effect : float
        Alliance change (item mean) per confrontation above the mean count.
    dropout_base : float
        Log-odds of dropping out after a session at average alliance.
    dropout_alliance : float
        Change in the log-odds of dropout per item-mean point of the last alliance.
    missed_rate : float
        Chance that a session (other than the first) is missed.
    item_missing_rate : float
        Chance that one item response is missing.
    residual_correlation : float, default 0
        Correlation of the alliance and symptom innovations of the same session (a client
        who feels better that week rates the alliance higher: the concurrent confound of
        Falkenström et al. 2017). Negative values (higher alliance, lower symptoms) are the
        realistic sign, e.g. -0.5.
    symptom_autoregression : float, default 0
        Within-client autoregression of the symptom deviation: the deviation at t + 1 is this
        times the deviation at t, plus the alliance effect and new noise (symptoms carry
        over from week to week), e.g. 0.5.
    within_sd : float, default 0
        SD of the client-specific within-client alliance effects around ``within`` (clients
        differ in how much a good session helps them; drawn once per client, stored in
        ``truth["within_by_client"]``). The average effect is ``within``.
    """

    alliance_mean: float = 3.55
    alliance_growth: float = 0.035
    therapist_sd: float = 0.18
    client_sd: float = 0.42
    growth_sd: float = 0.02
    alliance_residual_sd: float = 0.22
    symptom_mean: float = 16.0
    symptom_sd: float = 4.0
    symptom_slope: float = -0.55
    symptom_slope_sd: float = 0.30
    symptom_residual_sd: float = 2.2
    within: float = -2.0
    reverse: float = -0.02
    between_therapist: float = -0.50
    between_client: float = -0.15
    prior_negative_rate: float = 0.3
    prior_negative_alliance: float = -0.35
    prior_negative_growth: float = 0.012
    rupture_rate: float = 0.05
    rupture_rate_prior_negative: float = 0.11
    rupture_depth: float = 0.85
    repair_rate: float = 0.65
    reflection_effect: float = 0.04
    confrontation_effect: float = -0.06
    dropout_base: float = -3.4
    dropout_alliance: float = -1.3
    missed_rate: float = 0.06
    item_missing_rate: float = 0.01
    residual_correlation: float = 0.0
    symptom_autoregression: float = 0.0
    within_sd: float = 0.0


def simulate_study(
    n_therapists: int = 30,
    clients_per_therapist: int = 10,
    n_sessions: int = 16,
    *,
    n_sites: int = 3,
    effects: Effects | dict | None = None,
    seed: int | np.random.Generator | None = 2026,
    name: str = "simulated",
    latent: bool = False,
    therapist_ratings: bool | dict = False,
    observer: bool | dict = False,
    clinical_records: bool = False,
) -> Study:
    """Simulate a study of clients nested in therapists nested in sites.

    Parameters
    ----------
    n_therapists : int, default 30
        Number of therapists (spread evenly over the sites).
    clients_per_therapist : int, default 10
        Clients seen by each therapist.
    n_sessions : int, default 16
        Planned sessions per client; dropout and missed sessions make fewer rows.
    n_sites : int, default 3
        Number of sites.
    effects : Effects or dict, optional
        Generating values; a dict overrides single fields of the defaults, e.g.
        ``{"within": 0.0}``.
    seed : int or numpy.random.Generator, default 2026
        Same seed, same study.
    name : str, default "simulated"
        The study's label.
    latent : bool, default False
        Also store the latent session scores (alliance as item mean, symptoms on the PHQ-9
        total scale, before item noise, rounding and missingness, for every planned session
        whether attended or not) in ``truth["latent"]`` (columns client, session, alliance,
        symptoms, attended): models fitted to them have no measurement error.
    therapist_ratings : bool or dict, default False
        Add the therapist's alliance rating each session (WAI-SR-T items
        ``wai_sr_t_1 .. wai_sr_t_12`` and total ``wai_sr_t``, 1-5 like the client's
        WAI-SR): the client's latent alliance plus the therapist's own bias (a
        therapist-level leniency), a dyad-level discrepancy and session noise, with the
        client's session-to-session changes followed by ``coupling``. The dyad's
        discrepancy (therapist bias + dyad discrepancy, item-mean points) changes the
        client's PHQ-9 slope by ``discrepancy_effect`` per session. A dict overrides
        :data:`THERAPIST_RATING_DEFAULTS`. Truth in ``truth["dyad"]``.
    observer : bool or dict, default False
        Add observer codes of the Rupture Resolution Rating System for every attended
        session by two coders (``segments`` and ``coders`` tables): each segment has a
        latent withdrawal and confrontation strength, raised in the segments of a
        simulated rupture; each coder sees it with independent error of the given
        ``latent_reliability`` and codes a marker with significance 1-5 when it passes
        the threshold. The coded scores' reliability is known exactly (computed from
        the generating distribution given the latent strengths) and stored in
        ``truth["observer"]["icc"]``. A dict overrides :data:`OBSERVER_DEFAULTS`.
    clinical_records : bool, default False
        Add ``termination`` (completed, dropped_out, referred, other) and
        ``prior_therapy`` (none / helpful / harmful; harmful exactly when
        ``prior_negative_therapy``) to the clients table, and a ``therapists`` table
        (therapist, site, experience in years).

    The three options draw their random numbers from a generator spawned from ``seed``,
    so they leave every other column unchanged except the PHQ-9 through
    ``discrepancy_effect`` (set it to 0 to keep the PHQ-9 too); all off (the default),
    the study is the one without them.

    Returns
    -------
    Study
        ``sessions`` with WAI-SR and PHQ-9 items and totals, phase and technique
        counts; ``clients`` with ``prior_negative_therapy`` and baseline covariates;
        ``events`` with the ruptures clients reported; ``truth`` with the
        generating values and the table of simulated ruptures.

    Examples
    --------
    >>> from alliance.simulate import simulate_study
    >>> study = simulate_study(n_therapists=4, clients_per_therapist=5, seed=1)
    >>> study.sessions["client"].nunique()
    20
    >>> study.truth["effects"]["within"]
    -2.0
    >>> simulate_study(n_therapists=4, clients_per_therapist=5, seed=1).sessions.equals(
    ...     study.sessions)
    True

    The problems of real session-level data are options (all off by default; the bundled
    demo turns them on): same-session correlation of alliance and symptoms, autocorrelated
    symptoms and client-specific alliance effects.

    >>> hard = simulate_study(n_therapists=4, clients_per_therapist=5, seed=1,
    ...                       effects={"residual_correlation": -0.5,
    ...                                "symptom_autoregression": 0.5, "within_sd": 0.5})
    >>> len(hard.truth["within_by_client"])
    20
    """
    eff = as_effects(effects)
    for arg, value, low in (
        ("n_therapists", n_therapists, 1),
        ("clients_per_therapist", clients_per_therapist, 1),
        ("n_sessions", n_sessions, 2),
        ("n_sites", n_sites, 1),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{arg} must be a whole number of at least {low}, got {value!r}")
    if not -1.0 < eff.residual_correlation < 1.0:
        raise ValueError(
            f"residual_correlation must lie strictly between -1 and 1, got {eff.residual_correlation}"
        )
    if not -1.0 < eff.symptom_autoregression < 1.0:
        raise ValueError(
            "symptom_autoregression must lie strictly between -1 and 1 (a stationary process), "
            f"got {eff.symptom_autoregression}"
        )
    if eff.residual_correlation != 0.0 and eff.alliance_residual_sd <= 0:
        raise ValueError("residual_correlation needs alliance_residual_sd > 0")
    if eff.within_sd < 0:
        raise ValueError(f"within_sd must be at least 0, got {eff.within_sd}")
    if n_sites > n_therapists:
        raise ValueError(
            f"n_sites ({n_sites}) is larger than n_therapists ({n_therapists}); "
            "each site needs at least one therapist"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_clients = n_therapists * clients_per_therapist
    n_sess = n_sessions
    dyad = _options(therapist_ratings, THERAPIST_RATING_DEFAULTS, "therapist_ratings")
    obs = _options(observer, OBSERVER_DEFAULTS, "observer")
    # the options' own generator: spawning does not advance ``rng``, so with the options
    # off nothing below changes
    opt = rng.spawn(1)[0] if (dyad or obs or clinical_records) else None

    # --- people ---------------------------------------------------------------
    therapist_of = np.repeat(np.arange(n_therapists), clients_per_therapist)
    site_of_therapist = np.arange(n_therapists) % n_sites
    u_ther = rng.normal(0.0, eff.therapist_sd, n_therapists)
    v_client = rng.normal(0.0, eff.client_sd, n_clients)
    prior_neg = rng.random(n_clients) < eff.prior_negative_rate
    growth = (
        eff.alliance_growth
        + eff.prior_negative_growth * prior_neg
        + rng.normal(0.0, eff.growth_sd, n_clients)
    )
    alliance_level = (
        eff.alliance_mean
        + u_ther[therapist_of]
        + v_client
        + eff.prior_negative_alliance * prior_neg
    )
    intake = rng.normal(eff.symptom_mean, eff.symptom_sd, n_clients)
    slope = (
        eff.symptom_slope
        + eff.between_therapist * u_ther[therapist_of]
        + eff.between_client * v_client
        + rng.normal(0.0, eff.symptom_slope_sd, n_clients)
    )
    if dyad:
        ther_bias = opt.normal(dyad["therapist_bias_mean"], dyad["therapist_bias_sd"], n_therapists)
        dyad_disc = opt.normal(0.0, dyad["discrepancy_sd"], n_clients)
        discrepancy = ther_bias[therapist_of] + dyad_disc
        slope = slope + dyad["discrepancy_effect"] * discrepancy

    # --- sessions: techniques and phases ------------------------------------------
    t = np.arange(1, n_sess + 1)
    phase_cut = np.column_stack(
        [rng.integers(2, 4, n_clients), rng.integers(4, 7, n_clients)]
    )  # last exploration session, last assessment session
    phase = np.where(
        t[None, :] <= phase_cut[:, :1],
        0,
        np.where(t[None, :] <= phase_cut[:, 1:], 1, 2),
    )
    paraphrasing = rng.poisson(np.array([4.0, 3.0, 2.0])[phase])
    reflection = rng.poisson(np.array([3.0, 2.5, 2.5])[phase])
    confrontation = rng.poisson(np.array([0.2, 0.6, 1.0])[phase])
    technique = eff.reflection_effect * (reflection - 2.6) + eff.confrontation_effect * (
        confrontation - 0.7
    )

    # --- ruptures --------------------------------------------------------------
    rate = np.where(prior_neg, eff.rupture_rate_prior_negative, eff.rupture_rate)[:, None]
    rate = rate * np.exp(0.35 * (confrontation - 0.7))
    starts = (rng.random((n_clients, n_sess)) < rate) & (t[None, :] >= 3) & (t[None, :] < n_sess)
    # no rupture starts while a previous one is still open (within two sessions)
    for s in range(1, n_sess):
        starts[:, s] &= ~starts[:, max(0, s - 2) : s].any(axis=1)
    depth = np.where(starts, rng.gamma(6.0, eff.rupture_depth / 6.0, (n_clients, n_sess)), 0.0)
    repaired = starts & (rng.random((n_clients, n_sess)) < eff.repair_rate)
    dip = np.zeros((n_clients, n_sess))
    for lag, share_rep, share_unrep in ((0, 1.0, 1.0), (1, 0.45, 0.7)):
        shifted = np.zeros_like(depth)
        shifted[:, lag:] = depth[:, : n_sess - lag]
        rep = np.zeros_like(repaired)
        rep[:, lag:] = repaired[:, : n_sess - lag]
        dip += shifted * np.where(rep, share_rep, share_unrep)
    # unrepaired ruptures leave the alliance lower for the rest of treatment
    unrep_depth = np.where(starts & ~repaired, depth, 0.0)
    lasting = np.cumsum(np.concatenate([np.zeros((n_clients, 2)), unrep_depth[:, :-2]], 1), 1)
    dip += 0.5 * lasting

    # --- the dynamic system: session by session, all clients at once ------------
    # (the options below draw no extra random numbers when off: the default study is unchanged)
    within = np.full(n_clients, eff.within)
    if eff.within_sd > 0:
        within = within + rng.normal(0.0, eff.within_sd, n_clients)
    r_ay = eff.residual_correlation
    alliance = np.empty((n_clients, n_sess))
    symptoms = np.empty((n_clients, n_sess))
    a_dev_prev = np.zeros(n_clients)
    y_dev_prev = np.zeros(n_clients)
    a_devs = np.empty((n_clients, n_sess))
    for s in range(n_sess):
        a_trend = alliance_level + growth * s
        y_trend = intake + slope * s
        a_noise = rng.normal(0.0, eff.alliance_residual_sd, n_clients)
        y_noise = rng.normal(0.0, eff.symptom_residual_sd, n_clients)
        if r_ay != 0.0:
            y_noise = eff.symptom_residual_sd * (
                r_ay * a_noise / eff.alliance_residual_sd
                + np.sqrt(1.0 - r_ay**2) * y_noise / eff.symptom_residual_sd
            )
        a_dev = eff.reverse * y_dev_prev + technique[:, s] - dip[:, s] + a_noise
        y_dev = within * a_dev_prev + y_noise
        if eff.symptom_autoregression != 0.0:
            y_dev = y_dev + eff.symptom_autoregression * y_dev_prev
        alliance[:, s] = a_trend + a_dev
        a_devs[:, s] = a_dev
        symptoms[:, s] = y_trend + y_dev
        a_dev_prev, y_dev_prev = a_dev, y_dev

    # --- items ----------------------------------------------------------------
    wai_items = np.clip(
        np.rint(alliance[:, :, None] + rng.normal(0.0, 0.45, (n_clients, n_sess, WAI_ITEMS))),
        1,
        5,
    )
    phq_latent = np.clip(symptoms, 0, 27)[:, :, None] / PHQ_ITEMS
    phq_items = np.clip(
        np.rint(phq_latent + rng.normal(0.0, 0.45, (n_clients, n_sess, PHQ_ITEMS))), 0, 3
    )
    wai_items[rng.random(wai_items.shape) < eff.item_missing_rate] = np.nan
    phq_items[rng.random(phq_items.shape) < eff.item_missing_rate] = np.nan
    wai_total = np.nanmean(wai_items, axis=2) * WAI_ITEMS
    phq_total = np.nanmean(phq_items, axis=2) * PHQ_ITEMS

    # --- dropout (MAR on observed alliance) and missed sessions -------------------
    observed_mean = wai_total / WAI_ITEMS
    logit = (
        eff.dropout_base
        + eff.dropout_alliance * (observed_mean - eff.alliance_mean)
        + 0.8 * (unrep_depth > 0)
    )
    leaves = rng.random((n_clients, n_sess)) < 1.0 / (1.0 + np.exp(-logit))
    leaves[:, :2] = False  # everyone attends sessions 1 and 2
    dropped_after = np.where(leaves.any(1), leaves.argmax(1), n_sess - 1)
    attended = t[None, :] <= (dropped_after[:, None] + 1)
    missed = (rng.random((n_clients, n_sess)) < eff.missed_rate) & (t[None, :] > 1)
    missed[np.arange(n_clients), dropped_after] = False  # the last session attended is seen
    present = attended & ~missed

    # --- tables -----------------------------------------------------------------
    width = len(str(n_clients))
    client_ids = np.array([f"C{i + 1:0{width}d}" for i in range(n_clients)])
    therapist_ids = np.array([f"T{i + 1:02d}" for i in range(n_therapists)])
    site_ids = np.array([f"S{i + 1}" for i in range(n_sites)])
    ci, si = np.nonzero(present)
    start_day = pd.Timestamp("2024-01-08") + pd.to_timedelta(
        rng.integers(0, 365, n_clients), unit="D"
    )
    jitter = rng.integers(-2, 3, (n_clients, n_sess))
    days = 7 * (t[None, :] - 1) + jitter
    days[:, 0] = 0
    sessions = pd.DataFrame(
        {
            "client": client_ids[ci],
            "therapist": therapist_ids[therapist_of[ci]],
            "site": site_ids[site_of_therapist[therapist_of[ci]]],
            "session": t[si].astype("int64"),
            "date": (start_day[ci] + pd.to_timedelta(days[ci, si], unit="D")).strftime("%Y-%m-%d"),
            "phase": np.array(["exploration", "assessment", "treatment"])[phase[ci, si]],
            "paraphrasing": paraphrasing[ci, si],
            "reflection": reflection[ci, si],
            "confrontation": confrontation[ci, si],
        }
    )
    for j in range(WAI_ITEMS):
        sessions[f"wai_sr_{j + 1}"] = pd.array(wai_items[ci, si, j], dtype="Int64")
    for j in range(PHQ_ITEMS):
        sessions[f"phq9_{j + 1}"] = pd.array(phq_items[ci, si, j], dtype="Int64")
    sessions["wai_sr"] = np.round(wai_total[ci, si], 4)
    sessions["phq9"] = np.round(phq_total[ci, si], 4)

    clients = pd.DataFrame(
        {
            "client": client_ids,
            "therapist": therapist_ids[therapist_of],
            "site": site_ids[site_of_therapist[therapist_of]],
            "prior_negative_therapy": prior_neg,
            "age": np.clip(np.rint(rng.normal(38, 12, n_clients)), 18, 80).astype("int64"),
            "gender": rng.choice(["woman", "man", "non-binary"], n_clients, p=[0.62, 0.36, 0.02]),
            "condition": rng.choice(["CBT", "psychodynamic"], n_clients),
        }
    )

    rc, rs = np.nonzero(starts)
    rup_sessions = t[rs]
    rep_flag = repaired[rc, rs]
    truth_ruptures = pd.DataFrame(
        {
            "client": client_ids[rc],
            "session": rup_sessions.astype("int64"),
            "depth": np.round(depth[rc, rs] * WAI_ITEMS, 4),
            "repaired": rep_flag,
            "repair_session": np.where(rep_flag, rup_sessions + 2, np.nan),
            "observed": present[rc, rs],
        }
    )
    # clients report about half of the ruptures that happened in sessions they attended
    seen = truth_ruptures[truth_ruptures["observed"]]
    told = seen[rng.random(len(seen)) < 0.5]
    events = pd.DataFrame(
        {
            "client": told["client"].to_numpy(),
            "session": told["session"].to_numpy().astype("int64"),
            "kind": rng.choice(["withdrawal", "confrontation"], len(told), p=[0.6, 0.4]),
            "resolved": pd.array(told["repaired"].to_numpy(), dtype="boolean"),
            "source": "self-report",
        }
    )

    truth = {
        "seed": seed if isinstance(seed, int | np.integer) else None,
        "design": {
            "n_therapists": n_therapists,
            "clients_per_therapist": clients_per_therapist,
            "n_sessions": n_sessions,
            "n_sites": n_sites,
        },
        "effects": asdict(eff),
        "therapist_effects": dict(
            zip(therapist_ids.tolist(), u_ther.round(6).tolist(), strict=True)
        ),
        "ruptures": truth_ruptures,
        "dropped_after_session": dict(
            zip(client_ids.tolist(), (dropped_after + 1).tolist(), strict=True)
        ),
    }
    if eff.within_sd > 0:
        truth["within_by_client"] = dict(
            zip(client_ids.tolist(), within.round(6).tolist(), strict=True)
        )
    if latent:
        ci_all, si_all = np.indices((n_clients, n_sess)).reshape(2, -1)
        truth["latent"] = pd.DataFrame(
            {
                "client": client_ids[ci_all],
                "therapist": therapist_ids[therapist_of[ci_all]],
                "session": t[si_all].astype("int64"),
                "alliance": alliance[ci_all, si_all],
                "symptoms": symptoms[ci_all, si_all],
                "attended": present[ci_all, si_all],
            }
        )
    therapists = segments = coders = None
    if dyad:
        t_lat, t_items, t_total = _therapist_ratings(
            opt, dyad, alliance - a_devs, a_devs, discrepancy, eff.item_missing_rate
        )
        for j in range(WAI_ITEMS):
            sessions[f"wai_sr_t_{j + 1}"] = pd.array(t_items[ci, si, j], dtype="Int64")
        sessions["wai_sr_t"] = np.round(t_total[ci, si], 4)
        truth["dyad"] = _dyad_truth(
            dyad, alliance, t_lat, present, therapist_ids, ther_bias, client_ids, discrepancy
        )
        truth["dyad"]["outcome_effect_at_last_session"] = round(
            dyad["discrepancy_effect"] * (n_sess - 1), 6
        )
    if obs:
        segments, coders, truth["observer"] = _observer_codes(
            opt, obs, present, starts, repaired, client_ids, t
        )
    if clinical_records:
        clients, therapists = _clinical_records(
            opt,
            clients,
            dropped_after,
            n_sess,
            prior_neg,
            therapist_ids,
            site_ids,
            site_of_therapist,
        )
    return Study(
        sessions=sessions,
        clients=clients,
        events=events,
        therapists=therapists,
        segments=segments,
        coders=coders,
        codebook=codebook_for(
            name,
            therapist_ratings=bool(dyad),
            observer=bool(obs),
            clinical_records=clinical_records,
        ),
        truth=truth,
        name=name,
    )


#: Generating values of ``simulate_study(therapist_ratings=True)``, item-mean points
#: (1-5) unless stated. Therapists rate the alliance lower than clients on average
#: (Tryon, Blackwell & Hammel 2007); the size here is illustrative.
THERAPIST_RATING_DEFAULTS = {
    "therapist_bias_mean": -0.20,  # mean therapist - client difference
    "therapist_bias_sd": 0.15,  # SD of therapists' own bias (leniency)
    "discrepancy_sd": 0.25,  # SD of the dyad-level discrepancy within therapists
    "coupling": 0.6,  # share of the client's session change the therapist follows
    "residual_sd": 0.20,  # therapist's own session noise
    "item_sd": 0.45,  # item noise around the latent rating
    "discrepancy_effect": 0.12,  # PHQ-9 slope change per session per point of discrepancy
}
#: Generating values of ``simulate_study(observer=True)``: the 3RS coding design and the
#: latent segment strengths (standard units; a marker is coded above 1.5).
OBSERVER_DEFAULTS = {
    "n_segments": 10,  # 5-minute segments of a 50-minute session
    "n_coders": 2,
    "latent_reliability": 0.75,  # var(true) / var(seen) of a segment's latent strength
    "base": -1.5,  # mean latent strength of a segment without a rupture
    "boost": 3.5,  # added in the segments of a simulated rupture
    "rupture_segments": 2.5,  # mean number of segments a rupture shows in
    "withdrawal_share": 0.6,  # share of ruptures that are withdrawals
}
_STRATEGIES = (
    "clarifies_misunderstanding",
    "changes_task_or_goal",
    "gives_rationale",
    "invites_discussion_of_relationship",
    "acknowledges_own_contribution",
    "validates_defensive_posture",
    "redirects_focus",
)
#: Cut points of a coder's seen strength: below 1.5 no marker, then significance 1..5.
_CUTS = np.array([1.5, 2.5, 3.5, 4.5, 5.5])


def _options(value: bool | dict, defaults: dict, label: str) -> dict:
    """The option's values: {} when off, the defaults updated by a dict when on."""
    if value is False or value is None:
        return {}
    if value is True:
        return dict(defaults)
    if not isinstance(value, dict):
        raise TypeError(f"{label} must be True, False or a dict of overrides, not {value!r}")
    unknown = set(value) - set(defaults)
    if unknown:
        raise ValueError(
            f"{label} has unknown key(s) {sorted(unknown)}; known: {', '.join(defaults)}"
        )
    return {**defaults, **value}


def _therapist_ratings(opt, dyad, trend, a_devs, discrepancy, missing_rate):
    """Therapist WAI-SR-T latent item means, items and totals (clients x sessions)."""
    n_clients, n_sess = trend.shape
    latent = (
        trend
        + discrepancy[:, None]
        + dyad["coupling"] * a_devs
        + opt.normal(0.0, dyad["residual_sd"], (n_clients, n_sess))
    )
    items = np.clip(
        np.rint(latent[:, :, None] + opt.normal(0.0, dyad["item_sd"], (*latent.shape, WAI_ITEMS))),
        1,
        5,
    )
    items[opt.random(items.shape) < missing_rate] = np.nan
    return latent, items, np.nanmean(items, axis=2) * WAI_ITEMS


def _item_moments(latent: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of a 1-5 item ``clip(rint(latent + N(0, sd^2)))`` given ``latent``."""
    from scipy.stats import norm

    k = np.arange(1, 6, dtype=float)
    upper = np.append(k[:-1] + 0.5, np.inf)
    lower = np.insert(k[1:] - 0.5, 0, -np.inf)
    x = latent[..., None]
    p = norm.cdf((upper - x) / sd) - norm.cdf((lower - x) / sd)
    m = p @ k
    return m, p @ k**2 - m**2


def _observed_correlations(a_lat, b_lat, present, sd_a, sd_b) -> tuple[float, float]:
    """Within- and between-client correlations the observed WAI item means estimate.

    Each scale score is the mean of 12 items ``clip(rint(latent + noise))``: its expected
    value given the latent rating is ``m(latent)`` and its error variance ``v(latent) /
    12`` (errors independent across sessions and raters). The within-client correlation
    is the pooled correlation of person-mean centred scores (as ``alliance.dyad.agreement``
    computes it), the between-client one that of the client means; both are the values
    those statistics converge to for these latent ratings (missing items ignored).
    """
    ma, va = _item_moments(a_lat, sd_a)
    mb, vb = _item_moments(b_lat, sd_b)
    va, vb = va / WAI_ITEMS, vb / WAI_ITEMS
    n = present.sum(axis=1)
    keep = n >= 1
    ma, mb, va, vb, pr, n = ma[keep], mb[keep], va[keep], vb[keep], present[keep], n[keep]
    w = pr.astype(float)

    def centred(m, v):
        mean = (m * w).sum(1) / n
        dev = np.where(pr, m - mean[:, None], 0.0)
        tot_v = (v * w).sum(1)
        err = np.where(pr, v * (1 - 2 / n[:, None]) + (tot_v / n**2)[:, None], 0.0)
        return mean, dev, tot_v / n**2, err

    a_mean, a_dev, a_err_mean, a_err = centred(ma, va)
    b_mean, b_dev, b_err_mean, b_err = centred(mb, vb)
    within = (a_dev * b_dev).sum() / np.sqrt(
        ((a_dev**2).sum() + a_err.sum()) * ((b_dev**2).sum() + b_err.sum())
    )
    cov = np.cov(a_mean, b_mean)
    between = cov[0, 1] / np.sqrt((cov[0, 0] + a_err_mean.mean()) * (cov[1, 1] + b_err_mean.mean()))
    return float(within), float(between)


def _dyad_truth(dyad, alliance, t_lat, present, therapist_ids, ther_bias, client_ids, disc):
    """Generating values and the latent client-therapist correlations of attended sessions."""
    a = np.where(present, alliance, np.nan)
    b = np.where(present, t_lat, np.nan)
    a_mean, b_mean = np.nanmean(a, axis=1), np.nanmean(b, axis=1)
    ok = present.ravel()
    a_within = (a - a_mean[:, None]).ravel()[ok]
    b_within = (b - b_mean[:, None]).ravel()[ok]
    within_obs, between_obs = _observed_correlations(
        alliance, t_lat, present, 0.45, float(dyad["item_sd"])
    )
    return {
        **{k: float(v) for k, v in dyad.items()},
        "between_correlation_latent": round(float(np.corrcoef(a_mean, b_mean)[0, 1]), 6),
        "within_correlation_latent": round(float(np.corrcoef(a_within, b_within)[0, 1]), 6),
        "between_correlation_observed": round(between_obs, 6),
        "within_correlation_observed": round(within_obs, 6),
        "mean_difference_latent": round(float(np.nanmean(b - a)), 6),
        "therapist_bias": dict(
            zip(therapist_ids.tolist(), ther_bias.round(6).tolist(), strict=True)
        ),
        "discrepancy_by_client": dict(
            zip(client_ids.tolist(), disc.round(6).tolist(), strict=True)
        ),
        "notes": "Latent values are item means before item noise, rounding and missing items; "
        "the *_observed correlations are what the correlations of the observed WAI item means "
        "estimate (attenuated by the items' noise and rounding, computed exactly from the "
        "latent ratings; missing items ignored); "
        "discrepancy_by_client is therapist bias + dyad discrepancy (therapist - client, "
        "item-mean points); discrepancy_effect changes the PHQ-9 slope per session per point.",
    }


def _score_probabilities(latent: np.ndarray, sd_e: float) -> np.ndarray:
    """P(coded score = 0..5 | latent strength) for a coder with error SD ``sd_e``."""
    from scipy.stats import norm

    below = norm.cdf((_CUTS[None, :] - latent.reshape(-1, 1)) / sd_e)
    cdf = np.concatenate([below, np.ones((below.shape[0], 1))], axis=1)
    return np.diff(np.concatenate([np.zeros((cdf.shape[0], 1)), cdf], axis=1), axis=1)


def _icc_truth(probs: np.ndarray) -> float:
    """Reliability of a score with these category probabilities per unit (0..K scores)."""
    k = np.arange(probs.shape[1])
    m = probs @ k
    v = probs @ k**2 - m**2
    between = float(np.var(m, ddof=1))
    return between / (between + float(v.mean()))


def _observer_codes(opt, obs, present, starts, repaired, client_ids, t):
    """3RS segments and coders tables for every attended session, and their true reliability."""
    n_seg, n_coders = int(obs["n_segments"]), int(obs["n_coders"])
    if n_seg < 1 or n_coders < 2:
        raise ValueError("observer needs n_segments >= 1 and n_coders >= 2")
    rel = float(obs["latent_reliability"])
    if not 0 < rel < 1:
        raise ValueError(f"observer latent_reliability must lie in (0, 1), got {rel}")
    sd_e = float(np.sqrt((1 - rel) / rel))
    ci, si = np.nonzero(present)
    n_units = len(ci)
    kind_w = opt.random(starts.shape) < obs["withdrawal_share"]
    latent = {
        kind: obs["base"] + opt.normal(0.0, 1.0, (n_units, n_seg))
        for kind in ("withdrawal", "confrontation")
    }
    ruptured = starts[ci, si]
    width = 1 + opt.poisson(max(obs["rupture_segments"] - 1, 0.0), n_units)
    first = opt.integers(0, n_seg, n_units)
    seg_index = np.arange(n_seg)[None, :]
    hit = ruptured[:, None] & (seg_index >= first[:, None]) & (seg_index < (first + width)[:, None])
    is_w = kind_w[ci, si]
    latent["withdrawal"] = latent["withdrawal"] + obs["boost"] * (hit & is_w[:, None])
    latent["confrontation"] = latent["confrontation"] + obs["boost"] * (hit & ~is_w[:, None])
    coder_ids = np.array([f"O{j + 1}" for j in range(n_coders)])
    parts = []
    scores = {}
    for kind, subtypes in (
        ("withdrawal", RUPTURE_MARKERS["withdrawal"]),
        ("confrontation", RUPTURE_MARKERS["confrontation"]),
    ):
        seen = latent[kind][:, :, None] + opt.normal(0.0, sd_e, (n_units, n_seg, n_coders))
        score = np.searchsorted(_CUTS, seen, side="right")  # 0 = no marker, 1..5
        scores[kind] = score
        u, g, c = np.nonzero(score > 0)
        sig = score[u, g, c]
        fixed = repaired[ci[u], si[u]]
        resolution = np.clip(np.rint(opt.normal(np.where(fixed, 3.8, 2.2), 0.8)), 1, 5)
        parts.append(
            pd.DataFrame(
                {
                    "_u": u,
                    "segment": g + 1,
                    "coder": coder_ids[c],
                    "marker": opt.choice(np.array(subtypes), len(u)),
                    "significance": sig.astype("int64"),
                    "strategy": opt.choice(np.array(_STRATEGIES), len(u)),
                    "resolution": resolution.astype("int64"),
                }
            )
        )
    none = (scores["withdrawal"] == 0) & (scores["confrontation"] == 0)
    u, g, c = np.nonzero(none)
    parts.append(pd.DataFrame({"_u": u, "segment": g + 1, "coder": coder_ids[c]}))
    seg = pd.concat(parts, ignore_index=True)
    seg["client"] = client_ids[ci[seg["_u"]]]
    seg["session"] = t[si[seg["_u"]]].astype("int64")
    seg = seg.sort_values(["_u", "coder", "segment", "marker"], kind="stable", na_position="first")
    seg = seg[
        [
            "client",
            "session",
            "segment",
            "coder",
            "marker",
            "significance",
            "strategy",
            "resolution",
        ]
    ].reset_index(drop=True)
    for col in ("significance", "resolution"):
        seg[col] = pd.array(seg[col], dtype="Int64")
    coders = pd.DataFrame(
        {
            "coder": np.tile(coder_ids, n_units),
            "client": np.repeat(client_ids[ci], n_coders),
            "session": np.repeat(t[si], n_coders).astype("int64"),
        }
    )
    # exact reliability of the coded scores given the latent strengths
    probs = {k: _score_probabilities(latent[k], sd_e) for k in latent}
    cdf_w, cdf_c = (np.cumsum(probs[k], axis=1) for k in ("withdrawal", "confrontation"))
    p_max = np.diff(np.concatenate([np.zeros((len(cdf_w), 1)), cdf_w * cdf_c], axis=1), axis=1)
    icc = {"segment": {}, "session": {}}
    present_p = {}
    for kind, p in (*probs.items(), ("rupture", p_max)):
        icc["segment"][kind] = round(_icc_truth(p), 6)
        present_p[kind] = (1.0 - p[:, 0]).reshape(n_units, n_seg)
    for kind, p in present_p.items():
        m = p.sum(axis=1)
        v = (p * (1 - p)).sum(axis=1)
        between = float(np.var(m, ddof=1))
        icc["session"][kind] = round(between / (between + float(v.mean())), 6)
    truth = {
        **{k: float(v) for k, v in obs.items()},
        "coder_error_sd": round(sd_e, 6),
        "icc": icc,
        "notes": "icc is the reliability of the coded scores (segment: significance, 0 when "
        "no marker; session: number of segments with a marker) given the simulated latent "
        "strengths, computed exactly from the coders' error distribution; coders have no "
        "bias, so ICC1 and ICC2 estimate it.",
    }
    return seg, coders, truth


def _clinical_records(
    opt, clients, dropped_after, n_sess, prior_neg, therapist_ids, site_ids, site_of_therapist
):
    """Termination reasons, three-level prior therapy, and the therapists table."""
    n = len(clients)
    completed = dropped_after >= n_sess - 1
    other = opt.choice(["dropped_out", "referred", "other"], n, p=[0.8, 0.15, 0.05])
    clients = clients.copy()
    earlier = np.where(opt.random(n) < 0.6, "none", "helpful")
    clients.insert(
        list(clients.columns).index("prior_negative_therapy") + 1,
        "prior_therapy",
        np.where(prior_neg, "harmful", earlier),
    )
    clients["termination"] = np.where(completed, "completed", other)
    therapists = pd.DataFrame(
        {
            "therapist": therapist_ids,
            "site": site_ids[site_of_therapist],
            "experience": np.round(opt.gamma(2.0, 4.0, len(therapist_ids)), 1),
        }
    )
    return clients, therapists


def simulate_rom(
    n_clients: int,
    path: str | Path,
    *,
    n_sessions: int = 20,
    clients_per_therapist: int = 25,
    n_sites: int = 20,
    effects: Effects | dict | None = None,
    seed: int = 2026,
    chunk_clients: int = 20_000,
    fmt: str = "parquet",
    progress: bool = False,
) -> Path:
    """Write a routine-outcome-monitoring-scale simulated study, chunk by chunk.

    The clients are simulated in chunks of ``chunk_clients`` with :func:`simulate_study`
    (so each chunk follows the same generating model), and each chunk is appended to
    the files before the next is made: memory depends on the chunk size, not on
    ``n_clients`` (about 0.6 GB at the default 20,000 clients x 20 sessions).

    Parameters
    ----------
    n_clients : int
        Number of clients in all.
    path : str or pathlib.Path
        Folder to write ``sessions.<fmt>``, ``clients.<fmt>``, ``events.<fmt>`` and
        ``datapackage.json`` into (made if absent). A file of those names that a
        previous simulation did not write is never replaced: the call raises
        ``ValueError`` naming it and writes nothing (see :data:`SIMULATION_MARKER`).
    n_sessions : int, default 20
        Planned sessions per client (dropout and missed sessions make fewer rows;
        about 13.5 rows per client at 20 planned sessions with the default effects).
    clients_per_therapist : int, default 25
        Caseload of each therapist. When ``n_clients`` is not a multiple of it, the
        last therapist has fewer clients.
    n_sites : int, default 20
        Sites per chunk; site ``S1`` of every chunk is the same site, so a site's
        therapists come from every chunk.
    effects : Effects or dict, optional
        Generating values, as in :func:`simulate_study`.
    seed : int, default 2026
        Each chunk gets a child seed from ``numpy.random.SeedSequence(seed).spawn``.
        The files are reproducible for the same ``seed``, ``n_clients``,
        ``clients_per_therapist``, ``n_sessions``, ``n_sites`` and ``chunk_clients``;
        another chunk size draws other (equally distributed) data.
    chunk_clients : int, default 20000
        Clients simulated at once (rounded down to a whole number of caseloads).
    fmt : {"parquet", "csv"}, default "parquet"
        File format.
    progress : bool, default False
        Show a progress bar (chunks written).

    Returns
    -------
    pathlib.Path
        The folder, readable with :func:`alliance.read_study` (or streamed with
        :func:`alliance.io.scan_sessions`). Identifiers are unique over the whole
        study: clients ``C0000001 ..``, therapists ``T000001 ..``; each client's rows
        are contiguous and in session order.

    Examples
    --------
    >>> import tempfile, alliance
    >>> from alliance.simulate import simulate_rom
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = simulate_rom(120, tmp, n_sessions=6, clients_per_therapist=10,
    ...                           n_sites=2, chunk_clients=50, seed=1)
    ...     study = alliance.read_study(folder)
    >>> study.n_clients, study.clients["therapist"].nunique()
    (120, 12)
    >>> study.clients["client"].iloc[[0, -1]].tolist()
    ['C000001', 'C000120']
    """
    from tqdm import tqdm

    for arg, value, low in (
        ("n_clients", n_clients, 1),
        ("clients_per_therapist", clients_per_therapist, 1),
        ("n_sessions", n_sessions, 2),
        ("n_sites", n_sites, 1),
        ("chunk_clients", chunk_clients, 1),
    ):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{arg} must be a whole number of at least {low}, got {value!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(
            f"fmt must be 'parquet' or 'csv' for a chunked simulation, got {fmt!r}; "
            "convert afterwards with alliance.io.write_table if you need another format"
        )
    if isinstance(seed, np.random.Generator) or not isinstance(seed, int | np.integer):
        raise ValueError(
            f"seed must be a whole number (the chunks' seeds derive from it), got {seed!r}"
        )
    folder = Path(path)
    names = [f"{t}.{fmt}" for t in _TABLES]
    stale = _claim_folder(folder, names)
    folder.mkdir(parents=True, exist_ok=True)
    per_chunk = max(1, chunk_clients // clients_per_therapist) * clients_per_therapist
    starts = np.arange(0, n_clients, per_chunk)
    children = np.random.SeedSequence(int(seed)).spawn(len(starts))
    n_therapists = -(-n_clients // clients_per_therapist)
    client_width = max(6, len(str(n_clients)))
    therapist_width = max(6, len(str(n_therapists)))
    writers = {t: _ChunkWriter(folder / f"{t}.{fmt}", fmt) for t in _TABLES}
    done = False
    try:
        bar = tqdm(
            zip(starts, children, strict=True),
            total=len(starts),
            desc="simulating",
            unit="chunk",
            disable=not progress,
        )
        for first, child in bar:
            size = int(min(per_chunk, n_clients - first))
            chunk_therapists = -(-size // clients_per_therapist)
            study = simulate_study(
                chunk_therapists,
                clients_per_therapist,
                n_sessions,
                n_sites=min(n_sites, chunk_therapists),
                effects=effects,
                seed=np.random.default_rng(child),
            )
            tables = _relabel(
                study,
                client_offset=int(first),
                therapist_offset=int(first) // clients_per_therapist,
                keep=size,
                client_width=client_width,
                therapist_width=therapist_width,
            )
            for table, frame in tables.items():
                writers[table].write(frame)
        for writer in writers.values():
            writer.close()
        done = True
    finally:
        if not done:
            for writer in writers.values():
                writer.discard()
    description = (
        f"Synthetic routine-outcome-monitoring data: {n_clients} clients, "
        f"{n_sessions} planned sessions, from alliance.simulate.simulate_rom(seed={seed}, "
        f"chunk_clients={chunk_clients}); no real person is described."
    )
    _finish(
        folder,
        codebook_for("simulated_rom", description),
        {
            folder / n: writers[t].partial
            for t, n in zip(_TABLES, names, strict=True)
            if writers[t].started
        },
        stale,
        "alliance.simulate.simulate_rom",
    )
    return folder


def write_simulation(study: Study, path: str | Path, *, fmt: str = "csv") -> Path:
    """Write a simulated study, and its simulated ruptures, into a folder safely.

    Writes ``sessions.<fmt>``, ``clients.<fmt>``, ``events.<fmt>`` (when there are
    events), ``truth_ruptures.csv`` (when the study has ``truth["ruptures"]``) and
    ``datapackage.json``. Each file is written under a temporary name and moved into
    place at the end, so a failed call leaves the folder as it was.

    Parameters
    ----------
    study : Study
        A study from :func:`simulate_study`.
    path : str or pathlib.Path
        The folder (made if absent). It may already hold other files, which are left
        alone; but a file of a name to write is replaced only when a previous
        simulation wrote it (its ``datapackage.json`` lists it under
        :data:`SIMULATION_MARKER`). Files that previous simulation wrote and this one
        does not (another ``fmt``, no events) are removed, nothing else.
    fmt : str, default "csv"
        File suffix without the dot: csv, tsv, xlsx, parquet, sav or dta.

    Returns
    -------
    pathlib.Path
        The folder, readable with :func:`alliance.read_study`.

    Raises
    ------
    ValueError
        When the folder holds a file of a name to write that no simulation of ours
        wrote (nothing is written), or ``path`` is a file.

    Examples
    --------
    >>> import tempfile, alliance
    >>> from alliance.simulate import simulate_study, write_simulation
    >>> study = simulate_study(4, 5, 6, n_sites=2, seed=1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = write_simulation(study, tmp)
    ...     again = write_simulation(study, tmp)  # replaces its own files
    ...     sorted(p.name for p in folder.iterdir())
    ['clients.csv', 'datapackage.json', 'events.csv', 'sessions.csv', 'truth_ruptures.csv']
    """
    from alliance.io import write_table

    if not isinstance(study, Study):
        raise TypeError(f"study must be an alliance.Study, got {type(study).__name__}")
    if fmt not in ("csv", "tsv", "xlsx", "parquet", "sav", "dta"):
        raise ValueError(
            f"fmt must be one of csv, tsv, xlsx, parquet, sav, dta (no dot), got {fmt!r}"
        )
    folder = Path(path)
    tables = {t: getattr(study, t) for t in (*_TABLES, *_OPTIONAL_TABLES)}
    for t in ("events", *_OPTIONAL_TABLES):
        if tables[t] is None or tables[t].empty:
            tables.pop(t)
    frames = {f"{t}.{fmt}": frame for t, frame in tables.items()}
    ruptures = (study.truth or {}).get("ruptures")
    if isinstance(ruptures, pd.DataFrame):
        frames["truth_ruptures.csv"] = ruptures
    stale = _claim_folder(folder, list(frames))
    folder.mkdir(parents=True, exist_ok=True)
    moves: dict[Path, Path] = {}
    try:
        for name, frame in frames.items():
            partial = _partial_name(folder / name)
            moves[folder / name] = partial
            write_table(frame, partial)
    except BaseException:
        for partial in moves.values():
            partial.unlink(missing_ok=True)
        raise
    _finish(folder, study.codebook, moves, stale, "alliance.simulate.write_simulation")
    return folder


_TABLES = ("sessions", "clients", "events")
_OPTIONAL_TABLES = ("therapists", "segments", "coders")
# what a simulation may write; a previous manifest is trusted for these names only
_OURS = re.compile(
    r"(sessions|clients|events|therapists|segments|coders)\.(csv|tsv|xlsx|parquet|sav|dta)|truth_ruptures\.csv"
    r"|datapackage\.json"
)
_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.partial(?P<suffix>\.[a-z]+)")


def _partial_name(target: Path) -> Path:
    """The hidden temporary name a file is written under before it is moved into place."""
    return target.with_name(f".{target.name}.{os.getpid()}.partial{target.suffix}")


def _previous_files(folder: Path) -> set[str]:
    """The files a previous simulation wrote into ``folder``, from its codebook's marker."""
    book = folder / "datapackage.json"
    try:
        package = json.loads(book.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    marker = package.get(SIMULATION_MARKER) if isinstance(package, dict) else None
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, list):
        return set()
    return {f for f in files if isinstance(f, str) and _OURS.fullmatch(f)}


def _claim_folder(folder: Path, names: list[str]) -> list[Path]:
    """Refuse a folder where a file to write exists that no simulation of ours wrote.

    Returns the files the previous simulation wrote that this one will not rewrite
    (removed once the new files are in place). Also removes the temporary files a
    killed earlier run left (``.<name>.<pid>.partial.<suffix>`` of a process that is gone).
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{folder} is a file, not a folder; give a new folder (or one that holds "
            "a previous simulation) to write the simulated study into"
        )
    if not folder.exists():
        return []
    targets = [*names, "datapackage.json"]
    previous = _previous_files(folder)
    clash = [n for n in targets if os.path.lexists(folder / n) and n not in previous]
    if clash:
        listed = ", ".join(clash)
        raise ValueError(
            f"{folder} already holds {listed}, which no simulation of alliance wrote "
            f"(its datapackage.json does not list them under {SIMULATION_MARKER!r}); "
            "nothing was written or removed. Give a new or empty folder (e.g. --out "
            f"{folder.name}_sim), or move those files away first"
        )
    for stray in folder.glob(".*.partial.*"):
        m = _PARTIAL.fullmatch(stray.name)
        if m and _OURS.fullmatch(m["name"]) and not _alive(int(m["pid"])):
            stray.unlink(missing_ok=True)
    return [folder / n for n in sorted(previous - set(targets)) if os.path.lexists(folder / n)]


def _alive(pid: int) -> bool:
    """Whether a process of that id runs (a conservative True when it cannot be told)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _finish(
    folder: Path,
    codebook: Codebook,
    moves: dict[Path, Path],
    stale: list[Path],
    writer: str,
) -> None:
    """Write the marked codebook first, then move the new files into place.

    The codebook goes first so that a run killed between the moves leaves a folder
    the next run recognises as its own and repairs.
    """
    package = codebook.to_dict()
    package[SIMULATION_MARKER] = {
        "written_by": writer,
        "files": sorted([*(t.name for t in moves), "datapackage.json"]),
    }
    book = folder / "datapackage.json"
    partial = _partial_name(book)
    try:
        Codebook(package).write(partial)
        os.replace(partial, book)
        for target, part in moves.items():
            os.replace(part, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        for part in moves.values():
            part.unlink(missing_ok=True)
        raise
    for old in stale:
        old.unlink(missing_ok=True)


class _ChunkWriter:
    """Append DataFrames to one Parquet or CSV file with the first chunk's schema.

    The rows go to a hidden temporary file (:attr:`partial`), moved into place by the
    caller once every chunk is written; :meth:`discard` removes it after a failure.
    """

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.partial = _partial_name(path)
        self.writer = None
        self.schema = None
        self.started = False
        self.partial.unlink(missing_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "csv":
            frame.to_csv(self.partial, mode="a", header=not self.started, index=False)
            self.started = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
            # an empty first chunk (e.g. no events) has no types: text columns are strings
            fields = [
                pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema
            ]
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.partial, self.schema)
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self.writer.write_table(table)
        self.started = True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def discard(self) -> None:
        try:
            self.close()
        finally:
            self.partial.unlink(missing_ok=True)


def _labels(prefix: str, first: int, n: int, width: int) -> np.ndarray:
    """Identifiers ``<prefix><number>`` for numbers first + 1 .. first + n, zero-padded."""
    numbers = np.arange(first + 1, first + n + 1).astype(str)
    return np.char.add(prefix, np.char.zfill(numbers, width)).astype(object)


def _relabel(
    study: Study,
    *,
    client_offset: int,
    therapist_offset: int,
    keep: int,
    client_width: int,
    therapist_width: int,
) -> dict[str, pd.DataFrame]:
    """Give a chunk's clients and therapists study-wide identifiers; keep ``keep`` clients.

    :func:`simulate_study` numbers clients and therapists in order (``C001 ..``,
    ``T01 ..``), so the position of a local identifier among the sorted local ones is
    its number within the chunk.
    """
    local_clients = pd.Index(np.sort(study.clients["client"].to_numpy().astype(str)))
    local_therapists = pd.Index(np.sort(study.clients["therapist"].unique().astype(str)))
    new_clients = _labels("C", client_offset, len(local_clients), client_width)
    new_therapists = _labels("T", therapist_offset, len(local_therapists), therapist_width)
    kept = local_clients[:keep]
    out = {}
    for table in ("sessions", "clients", "events"):
        frame = getattr(study, table)
        if keep < len(local_clients):
            frame = frame[frame["client"].isin(kept)]
        frame = frame.copy()
        frame["client"] = new_clients[local_clients.get_indexer(frame["client"])]
        if "therapist" in frame.columns:
            codes = local_therapists.get_indexer(frame["therapist"])
            frame["therapist"] = new_therapists[codes]
        out[table] = frame.reset_index(drop=True)
    return out


def as_effects(effects: Effects | dict | None = None) -> Effects:
    """Generating values from an :class:`Effects`, a dict of overrides or None (defaults).

    Parameters
    ----------
    effects : Effects, dict or None
        A dict overrides single fields of the defaults, e.g. ``{"within": 0.0}``.

    Returns
    -------
    Effects

    Raises
    ------
    KeyError
        A name that is not a field of :class:`Effects`, with the closest one.

    Examples
    --------
    >>> from alliance.simulate import as_effects
    >>> as_effects({"within": -1.0}).within
    -1.0
    >>> as_effects({"withn": -1.0})
    Traceback (most recent call last):
    ...
    KeyError: "unknown effect names: 'withn' (did you mean 'within'?); see alliance.simulate.Effects"
    """
    if effects is None:
        return Effects()
    if isinstance(effects, Effects):
        return effects
    known = set(Effects.__dataclass_fields__)
    unknown = set(effects) - known
    if unknown:
        from alliance._checks import close_matches

        tips = [
            f"{u!r}"
            + (
                f" (did you mean {close_matches(u, known)[0]!r}?)"
                if close_matches(u, known)
                else ""
            )
            for u in sorted(unknown)
        ]
        raise KeyError(f"unknown effect names: {', '.join(tips)}; see alliance.simulate.Effects")
    return Effects(**{**asdict(Effects()), **effects})


def codebook_for(
    name: str = "simulated",
    description: str | None = None,
    *,
    therapist_ratings: bool = False,
    observer: bool = False,
    clinical_records: bool = False,
) -> Codebook:
    """The codebook of a simulated study (the layout :func:`simulate_study` writes).

    The three options add the fields and tables of the same options of
    :func:`simulate_study`.

    Examples
    --------
    >>> from alliance.simulate import codebook_for
    >>> codebook_for().fields("clients")["name"].tolist()[:4]
    ['client', 'therapist', 'site', 'prior_negative_therapy']
    """

    def f(name, type_, description, **extra):
        out = {"name": name, "type": type_, "description": description}
        cons = {k: extra.pop(k) for k in ("minimum", "maximum", "enum") if k in extra}
        if cons:
            out["constraints"] = cons
        out.update(extra)
        return out

    ids = [
        f("client", "string", "Client identifier (pseudonymous)."),
        f("therapist", "string", "Therapist identifier."),
        f("site", "string", "Site identifier."),
    ]
    session_fields = [
        *ids,
        f("session", "integer", "Session number, from 1; a gap is a missed session.", minimum=1),
        f("date", "date", "Session date (simulated)."),
        f(
            "phase",
            "string",
            "Interview phase (Kadushin & Kadushin 2013).",
            enum=["exploration", "assessment", "treatment"],
        ),
        f(
            "paraphrasing",
            "integer",
            "Paraphrasing interventions in the session (count).",
            minimum=0,
        ),
        f("reflection", "integer", "Reflections of feeling in the session (count).", minimum=0),
        f("confrontation", "integer", "Confrontations in the session (count).", minimum=0),
    ]
    session_fields += [
        f(
            f"wai_sr_{j}",
            "integer",
            f"WAI-SR item {j} (client-rated, 1-5).",
            minimum=1,
            maximum=5,
            instrument="wai_sr",
            rater="client",
        )
        for j in range(1, WAI_ITEMS + 1)
    ]
    session_fields += [
        f(
            f"phq9_{j}",
            "integer",
            f"PHQ-9 item {j} (client-rated, 0-3).",
            minimum=0,
            maximum=3,
            instrument="phq9",
            rater="client",
        )
        for j in range(1, PHQ_ITEMS + 1)
    ]
    session_fields += [
        f(
            "wai_sr",
            "number",
            "WAI-SR total: sum of the 12 items, prorated over answered items.",
            minimum=12,
            maximum=60,
            instrument="wai_sr",
            rater="client",
        ),
        f(
            "phq9",
            "number",
            "PHQ-9 total: sum of the 9 items, prorated over answered items.",
            minimum=0,
            maximum=27,
            instrument="phq9",
            rater="client",
        ),
    ]
    if therapist_ratings:
        session_fields += [
            f(
                f"wai_sr_t_{j}",
                "integer",
                f"WAI-SR-T item {j} (therapist-rated, 1-5).",
                minimum=1,
                maximum=5,
                instrument="wai_sr_t",
                rater="therapist",
            )
            for j in range(1, WAI_ITEMS + 1)
        ]
        session_fields.append(
            f(
                "wai_sr_t",
                "number",
                "WAI-SR-T total (therapist-rated): sum of the 12 items, prorated over "
                "answered items.",
                minimum=12,
                maximum=60,
                instrument="wai_sr_t",
                rater="therapist",
            )
        )
    client_fields = [
        *ids,
        f(
            "prior_negative_therapy",
            "boolean",
            "Client reports a harmful or disappointing earlier therapy.",
        ),
    ]
    if clinical_records:
        client_fields.append(
            f(
                "prior_therapy",
                "string",
                "Earlier therapy: none, helpful or harmful (harmful = prior negative therapy).",
                enum=["none", "helpful", "harmful"],
            )
        )
    client_fields += [
        f("age", "integer", "Age in years at intake.", minimum=18),
        f("gender", "string", "Self-described gender."),
        f("condition", "string", "Treatment condition."),
    ]
    if clinical_records:
        client_fields.append(
            f(
                "termination",
                "string",
                "How treatment ended.",
                enum=["completed", "dropped_out", "referred", "other"],
            )
        )
    event_fields = [
        f("client", "string", "Client identifier."),
        f("session", "integer", "Session of the rupture marker.", minimum=1),
        f(
            "kind",
            "string",
            "Rupture marker kind (Safran & Muran).",
            enum=["withdrawal", "confrontation", "unspecified"],
        ),
        f("resolved", "boolean", "Whether the rupture was resolved; missing when unknown."),
        f("source", "string", "Who reported it.", enum=["self-report", "observer", "detected"]),
    ]
    return Codebook(
        {
            "name": name,
            "title": "Simulated therapy study",
            "description": description
            or "Synthetic data from alliance.simulate.simulate_study; no real person is described.",
            "licenses": [{"name": "CC0-1.0", "title": "Public domain dedication"}],
            "resources": [
                {
                    "name": "sessions",
                    "schema": {"fields": session_fields, "primaryKey": ["client", "session"]},
                },
                {"name": "clients", "schema": {"fields": client_fields, "primaryKey": ["client"]}},
                {"name": "events", "schema": {"fields": event_fields}},
                *_optional_resources(f, observer=observer, clinical_records=clinical_records),
            ],
        }
    )


def _optional_resources(f, *, observer: bool, clinical_records: bool) -> list[dict]:
    """Codebook resources of the therapists, segments and coders tables."""
    out = []
    if clinical_records:
        fields = [
            f("therapist", "string", "Therapist identifier."),
            f("site", "string", "Site identifier."),
            f("experience", "number", "Years of clinical experience.", minimum=0),
        ]
        out.append(
            {"name": "therapists", "schema": {"fields": fields, "primaryKey": ["therapist"]}}
        )
    if observer:
        markers = [n for kind, subs in RUPTURE_MARKERS.items() for n in (kind, *subs)]
        seg = [
            f("client", "string", "Client identifier."),
            f("session", "integer", "Session coded (a row of the sessions table).", minimum=1),
            f(
                "segment",
                "integer",
                "Segment of the session (5-minute segments), from 1.",
                minimum=1,
            ),
            f("coder", "string", "Observer who coded the segment.", rater="observer"),
            f(
                "marker",
                "string",
                "3RS rupture marker (Eubanks, Muran & Safran 2015); empty when the segment "
                "was coded and no marker seen.",
                enum=markers,
                rater="observer",
            ),
            f(
                "significance",
                "integer",
                "3RS rupture significance, 1 (low) to 5 (high).",
                minimum=1,
                maximum=5,
                rater="observer",
            ),
            f(
                "strategy",
                "string",
                "Resolution strategy the therapist used (free text).",
                rater="observer",
            ),
            f(
                "resolution",
                "integer",
                "3RS resolution rating, 1 (not resolved) to 5 (fully resolved).",
                minimum=1,
                maximum=5,
                rater="observer",
            ),
        ]
        coders = [
            f("coder", "string", "Observer identifier."),
            f("client", "string", "Client identifier."),
            f("session", "integer", "Session the coder rated.", minimum=1),
        ]
        out.append({"name": "segments", "schema": {"fields": seg}})
        out.append({"name": "coders", "schema": {"fields": coders}})
    return out
