"""Technique -> alliance -> outcome: 1-1-1 multilevel mediation, within and between kept apart.

A session-level technique count (e.g. reflections or paraphrases, Kadushin & Kadushin 2013)
predicts the session's alliance (path a), which predicts the outcome at the next session
(path b). Predictor and mediator are split into within-client and between-client parts
(Zhang, Zyphur & Preacher 2009), so the within-client indirect effect a_w x b_w and the
between-client one a_b x b_b are estimated separately instead of being conflated (Krull &
MacKinnon 2001; Preacher, Zyphur & Zhang 2010). Confidence intervals for the indirect effects
come from a cluster bootstrap that resamples therapists (clients when there is no therapist
column) with all their sessions (Field & Welsh 2007), and from the Monte Carlo method
(Preacher & Selig 2012).

References
----------
Field, C. A., & Welsh, A. H. (2007). Bootstrapping clustered data. Journal of the Royal
Statistical Society B, 69(3), 369-390.

Krull, J. L., & MacKinnon, D. P. (2001). Multilevel modeling of individual and group level
mediated effects. Multivariate Behavioral Research, 36(2), 249-277.

Preacher, K. J., & Selig, J. P. (2012). Advantages of Monte Carlo confidence intervals for
indirect effects. Communication Methods and Measures, 6(2), 77-98.

Preacher, K. J., Zyphur, M. J., & Zhang, Z. (2010). A general multilevel SEM framework for
assessing multilevel mediation. Psychological Methods, 15(3), 209-233.

Zhang, Z., Zyphur, M. J., & Preacher, K. J. (2009). Testing multilevel mediation using
hierarchical linear models: Problems and solutions. Organizational Research Methods, 12(4),
695-719.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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
    "Zhang, Zyphur & Preacher (2009); Krull & MacKinnon (2001); Preacher & Selig (2012); "
    "Field & Welsh (2007)"
)


@dataclass
class MediationResult(ModelResult):
    """Result of :func:`mediation` (a :class:`~alliance.models.ModelResult`).

    ``loglik`` is the sum of the two paths' REML log-likelihoods; ``nobs`` the rows of path b
    (``path_a.nobs`` those of path a).

    Attributes
    ----------
    path_a, path_b : alliance.models.LmmResult
        The mixed models of path a (technique -> alliance) and path b (alliance -> outcome).
    boot : pandas.DataFrame or None
        The cluster-bootstrap draws of the paths and indirect effects (None when
        ``n_boot=0``).
    n_boot_failed : int
        Bootstrap draws that could not be fitted (left out).
    """

    path_a: LmmResult | None = None
    path_b: LmmResult | None = None
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
    "through the alliance at t (1-1-1 mediation)",
    citation=CITATION,
    roles=("technique", "alliance", "outcome", "client", "session", "therapist"),
    focal_term="indirect_within",
)
def mediation(
    data,
    technique: str = "reflection",
    alliance: str = "alliance",
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    therapist: str | None = None,
    *,
    lag: int = 1,
    detrend: bool = True,
    n_boot: int = 500,
    n_mc: int = 20000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> MediationResult:
    """Session-level (1-1-1) mediation: technique at t -> alliance at t -> outcome at t + lag.

    Path a: ``alliance[t] ~ tech_within + tech_between + session + (1 | client) +
    (1 | therapist)``. Path b: ``outcome[t+lag] ~ alliance_within + alliance_between +
    tech_within + tech_between + session + (1 + session | client) + (1 | therapist)``. Within
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
    lag : int, default 1
        Sessions from mediator to outcome, by session number.
    detrend : bool, default True
        Detrend technique and alliance before centring.
    n_boot : int, default 500
        Cluster-bootstrap draws (therapists resampled, or clients without a therapist column);
        0 skips the bootstrap (Monte Carlo intervals only).
    n_mc : int, default 20000
        Monte Carlo draws for the Monte Carlo intervals.
    level : float, default 0.95
    seed : int or numpy.random.Generator, optional
        Same seed, same intervals.

    Returns
    -------
    MediationResult
        ``params`` rows ``a_within``, ``a_between``, ``b_within``, ``b_between``,
        ``direct_within``, ``direct_between``, ``indirect_within``, ``indirect_between``. For
        the indirect effects ``se`` and ``ci_low``/``ci_high`` are from the cluster bootstrap
        (percentile) when ``n_boot > 0``, otherwise Monte Carlo; ``mc_ci_low``/``mc_ci_high``
        always give the Monte Carlo interval. ``std_estimate``: a and b standardized by the
        SDs at their level (within: SDs of the within parts; between: SDs of client means), the
        indirect effects as the product of the standardized a and b. ``.indirect``: the two
        indirect-effect rows; ``.path_a``, ``.path_b`` (the mixed models), ``.boot`` (the
        draws), ``.n_boot_failed``.

    Notes
    -----
    Missing data: path a uses every session with technique and alliance observed, path b every
    complete (t, t + lag) pair, both by REML under missing at random; the rows each path leaves
    out are counted in ``.excluded`` (reasons prefixed ``a:``/``b:``). With three or more
    therapists the bootstrap resamples therapists; fewer than ~20 clusters give unstable
    intervals.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> sessions = study.sessions.assign(wai=study.sessions["wai_sr"] / 12)
    >>> fit = alliance.models.mediation(sessions, "reflection", alliance="wai", outcome="phq9",
    ...                                 therapist="therapist", n_boot=5, seed=1)
    >>> fit.params["term"].tolist()[-2:]
    ['indirect_within', 'indirect_between']
    >>> bool(fit.params.set_index("term").loc["a_within", "estimate"] > 0)
    True
    """
    if not isinstance(lag, int | np.integer) or isinstance(lag, bool) or lag < 1:
        raise ValueError(f"lag must be a whole number of sessions >= 1, not {lag!r}.")
    if not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise ValueError(f"n_boot must be a whole number >= 0, not {n_boot!r}.")
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
    work = pd.DataFrame(
        {
            "client": frame[client].to_numpy(),
            "session": frame[session].to_numpy(),
            "m": frame[alliance].to_numpy(),
            "x_w": xd["within"].to_numpy(),
            "x_b": xd["between"].to_numpy(),
            "m_w": md["within"].to_numpy(),
            "m_b": md["between"].to_numpy(),
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
    for reason, mask, col in [
        (
            f"b: no session t + {lag} (last session of the client)",
            work["session"] + lag > last,
            session,
        ),
        (f"b: session t + {lag} missed or {outcome} missing there", work["y"].isna(), outcome),
    ]:
        hit = ok_b & np.asarray(mask, dtype=bool)
        ex.add(reason, hit, work, col)
        ok_b &= ~hit
    data_a = work[ok_a].reset_index(drop=True)
    data_b = work[ok_b].reset_index(drop=True)
    ther = "" if therapist is None else " + (1 | therapist)"
    f_a = "m ~ x_w + x_b + session + (1 | client)" + ther
    f_b = "y ~ m_w + m_b + x_w + x_b + session + (1 + session | client)" + ther
    try:
        fit_a = lmm(f_a, data_a)
        fit_b = lmm(f_b, data_b)
    except ValueError as err:
        raise ValueError(f"the mediation model cannot be fitted: {err}") from err

    est = _paths(fit_a, fit_b)
    se_a = fit_a.params.set_index("term")["se"]
    se_b = fit_b.params.set_index("term")["se"]

    # Monte Carlo intervals (a and b from separate models: independent normal draws)
    alpha = (1 - level) / 2
    mc = {}
    for part, (a, b) in {"within": ("x_w", "m_w"), "between": ("x_b", "m_b")}.items():
        draws = rng.normal(est[f"a_{part}"], se_a[a], n_mc) * rng.normal(
            est[f"b_{part}"], se_b[b], n_mc
        )
        mc[part] = (float(draws.std(ddof=1)), *np.quantile(draws, [alpha, 1 - alpha]))

    boot, n_failed = _cluster_bootstrap(
        work[ok_a], ok_b[ok_a], f_a, f_b, fit_a, fit_b, n_boot, rng, by_therapist=therapist
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
    rows = []
    sources = {
        "a_within": (fit_a, "x_w"),
        "a_between": (fit_a, "x_b"),
        "b_within": (fit_b, "m_w"),
        "b_between": (fit_b, "m_b"),
        "direct_within": (fit_b, "x_w"),
        "direct_between": (fit_b, "x_b"),
    }
    for name, (fit, term) in sources.items():
        r = fit.params.set_index("term").loc[term]
        rows.append({"term": name, **r.to_dict(), "std_estimate": r["estimate"] * float(std[name])})
    for part in ("within", "between"):
        value = est[f"indirect_{part}"]
        mc_sd, mc_lo, mc_hi = mc[part]
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
    vc = pd.concat(
        [
            fit_a.variance_components.assign(path="a"),
            fit_b.variance_components.assign(path="b"),
        ],
        ignore_index=True,
    )
    notes = [
        f"paths: a = {technique} -> {alliance} (same session); b = {alliance} -> {outcome} at "
        f"t + {lag}; indirect = a x b at each level.",
        "indirect-effect CIs: "
        + (
            f"cluster bootstrap, {n_boot} draws resampling "
            f"{'therapists' if therapist else 'clients'} (percentile)"
            if boot is not None
            else "Monte Carlo (no bootstrap)"
        )
        + f"; Monte Carlo intervals in mc_ci_low / mc_ci_high ({n_mc} draws).",
    ]
    notes.append(
        "Monte Carlo intervals draw a and b independently: a and b come from two separately "
        "fitted models, whose estimates are taken as uncorrelated (as for the single-level "
        "product of coefficients); the covariance of client-specific random a and b paths "
        "(Kenny, Korchmaros & Bolger 2003) is not modelled, since both paths are fixed."
    )
    notes.append(
        f"path b adjusts for {technique} (within and between) but not for {outcome} at the "
        f"session of the mediator: a same-session correlation of {alliance} and {outcome} "
        "with autocorrelated symptoms confounds b (issue 16)."
    )
    if n_failed:
        notes.append(f"{n_failed} bootstrap draws could not be fitted and were left out.")
    for f, label in ((fit_a, "a"), (fit_b, "b")):
        if f.singular:
            notes.append(f"path {label}: singular fit (a random-effect variance at zero).")
    return MediationResult(
        model=f"mediation: {technique} -> {alliance} -> next {outcome} (1-1-1, within/between)",
        params=params,
        variance_components=vc,
        loglik=float(fit_a.loglik + fit_b.loglik),
        nobs=fit_b.nobs,
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
        converged=bool(fit_a.converged and fit_b.converged),
        singular=bool(fit_a.singular or fit_b.singular),
        path_a=fit_a,
        path_b=fit_b,
        boot=boot,
        n_boot_failed=n_failed,
    )


def _paths(fit_a, fit_b) -> dict[str, float]:
    a = fit_a.params.set_index("term")["estimate"]
    b = fit_b.params.set_index("term")["estimate"]
    out = {
        "a_within": float(a["x_w"]),
        "a_between": float(a["x_b"]),
        "b_within": float(b["m_w"]),
        "b_between": float(b["m_b"]),
    }
    out["indirect_within"] = out["a_within"] * out["b_within"]
    out["indirect_between"] = out["a_between"] * out["b_between"]
    return out


def _cluster_bootstrap(rows, in_b, f_a, f_b, fit_a, fit_b, n_boot, rng, *, by_therapist):
    """Resample clusters (therapists, else clients) with replacement; refit both paths."""
    if n_boot == 0:
        return None, 0
    key = "therapist" if by_therapist is not None else "client"
    rows = rows.reset_index(drop=True)
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
            a = lmm(f_a, sample, start=fit_a.theta)
            b = lmm(f_b, sample[in_b[idx]], start=fit_b.theta)
        except (ValueError, np.linalg.LinAlgError):
            failed += 1
            continue
        out.append(_paths(a, b))
    return pd.DataFrame(out), failed
