"""Reliable change, clinical significance, and sudden gains and losses.

Every function takes long-format data (one row per client x session) with the column
names as keyword arguments, keeps every client in its result (saying why a value is
missing), and works on whole arrays: there is no Python loop over clients.

Methods
-------
- Reliable change index (Jacobson & Truax, 1991): ``RCI = (post - pre) / S_diff`` with
  ``S_diff = sqrt(2) * SE`` and ``SE = sd * sqrt(1 - reliability)``; ``|RCI| > 1.96`` is
  reliable change. Without ``sd`` and ``reliability`` the instrument's published
  reliable-change threshold in points is used.
- Clinical significance (Jacobson & Truax, 1991): cut-offs a, b and c from norms (or a
  from the data's own pre scores) and the categories recovered, improved, unchanged,
  deteriorated.
- Sudden gains and losses (Tang & DeRubeis, 1999) with the critical value of criterion 3
  adjusted for missing sessions as in the R package suddengains (Wiedemann et al., 2020).

References
----------
Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
Psychology, 59(1), 12-19.

Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical sessions in
cognitive-behavioral therapy for depression. Journal of Consulting and Clinical
Psychology, 67(6), 894-904.

Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R package to
identify sudden gains in longitudinal data. PLOS ONE, 15(3), e0230276.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from alliance import instruments as _instruments
from alliance._checks import check_long

__all__ = [
    "benchmark",
    "clinical_cutoffs",
    "clinical_significance",
    "reliable_change",
    "sudden_gains",
    "sudden_losses",
    "within_effect_size",
]


_METHODS = ("JT", "GLN", "HLL", "EN", "NK", "HA", "HLM")

_NAMES = {
    "JT": "Jacobson & Truax",
    "GLN": "Gulliksen-Lord-Novick",
    "HLL": "Hsu-Linn-Lord",
    "EN": "Edwards-Nunnally",
    "NK": "Nunnally-Kotsch",
    "HA": "Hageman & Arrindell",
    "HLM": "Raudenbush & Bryk empirical-Bayes",
}

_CITATIONS = {
    "JT": "Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical "
    "approach to defining meaningful change in psychotherapy research. Journal of "
    "Consulting and Clinical Psychology, 59(1), 12-19.",
    "GLN": "Hsu, L. M. (1989). Reliable changes in psychotherapy: Taking into account "
    "regression toward the mean. Behavioral Assessment, 11, 459-467 (the "
    "Gulliksen-Lord-Novick index).",
    "HLL": "Hsu, L. M. (1995). Regression toward the mean associated with measurement "
    "error and the identification of improvement and deterioration in psychotherapy. "
    "Journal of Consulting and Clinical Psychology, 63(1), 141-144.",
    "EN": "Speer, D. C. (1992). Clinically significant change: Jacobson and Truax (1991) "
    "revisited. Journal of Consulting and Clinical Psychology, 60(3), 402-408.",
    "NK": "Nunnally, J. C., & Kotsch, W. E. (1983). Studies of individual subjects: "
    "Logic and methods of analysis. British Journal of Clinical Psychology, 22, 83-93.",
    "HLM": "Raudenbush, S. W., & Bryk, A. S. (2002). Hierarchical linear models: "
    "Applications and data analysis methods (2nd ed.). Sage.",
    "HA": "Hageman, W. J. J. M., & Arrindell, W. A. (1999). Establishing clinically "
    "significant change: Increment of precision and the distinction between individual "
    "and group level of analysis. Behaviour Research and Therapy, 37(12), 1169-1193.",
}

#: Largest complete client x session grid built before refusing (cells).
_MAX_GRID = 200_000_000


# --------------------------------------------------------------------------- helpers


def _instrument(instrument):
    if instrument is None:
        return None
    return _instruments.get(instrument)


def _higher_is_better(direction, instrument) -> bool:
    """Resolve the direction of improvement: argument, else instrument, else lower."""
    if direction is None and _instrument(instrument) is None:
        return False
    return _instruments.higher_is_better(direction, instrument)


def _factorize(values) -> tuple[np.ndarray, pd.Index]:
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # mixed id types cannot be sorted
        codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), pd.Index(uniques)


@dataclass
class _Grid:
    """Each client's sessions from first to last, absent sessions as NaN, in one array."""

    clients: pd.Index  # client id per code
    code: np.ndarray  # client code per cell
    pos: np.ndarray  # position of the cell within its client
    length: np.ndarray  # number of cells of the cell's client
    session: np.ndarray  # session number per cell
    value: np.ndarray  # score per cell (NaN when absent or missing)
    observed: np.ndarray  # a row existed for this client x session

    def shift(self, array: np.ndarray, k: int, fill=np.nan) -> np.ndarray:
        """``array`` at position ``pos + k`` of the same client (``fill`` outside)."""
        out = np.full(array.shape, fill, dtype=np.result_type(array, np.asarray(fill)))
        target = self.pos + k
        ok = (target >= 0) & (target < self.length)
        idx = np.flatnonzero(ok)
        out[idx] = array[idx + k]
        return out


def _grid(long: pd.DataFrame) -> _Grid:
    codes, clients = _factorize(long["client"].to_numpy())
    sess = long["session"].to_numpy(dtype=np.int64)
    n_clients = len(clients)
    smin = np.full(n_clients, np.iinfo(np.int64).max)
    smax = np.full(n_clients, np.iinfo(np.int64).min)
    np.minimum.at(smin, codes, sess)
    np.maximum.at(smax, codes, sess)
    lengths = smax - smin + 1
    total = int(lengths.sum())
    if total > _MAX_GRID:
        raise ValueError(
            f"the sessions span {total} client x session cells, too many to analyse; "
            "check the session column for stray values (e.g. dates or ids)"
        )
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cell = offsets[codes] + sess - smin[codes]
    value = np.full(total, np.nan)
    value[cell] = long["value"].to_numpy(dtype=float)
    observed = np.zeros(total, dtype=bool)
    observed[cell] = True
    code = np.repeat(np.arange(n_clients), lengths)
    pos = np.arange(total) - offsets[code]
    return _Grid(
        clients=clients,
        code=code,
        pos=pos,
        length=lengths[code],
        session=smin[code] + pos,
        value=value,
        observed=observed,
    )


def _all_clients(data: pd.DataFrame, client: str) -> pd.Index:
    _, uniques = _factorize(data[client].dropna().to_numpy())
    return uniques


# ----------------------------------------------------------------- reliable change


def _pre_post(long: pd.DataFrame, first, last, carry_forward: bool) -> pd.DataFrame:
    """One row per client: pre and post scores with the sessions they come from."""
    clients = _factorize(long["client"].to_numpy())[1]
    obs = long[long["value"].notna()].sort_values(["client", "session"], kind="stable")
    if isinstance(first, str):
        if first != "first":
            raise ValueError(f"first={first!r}: pass 'first' or a session number")
        pre = obs.groupby("client", sort=False).head(1)
    else:
        pre = obs[obs["session"] == int(first)]
    pre = pre.set_index("client")[["session", "value"]].rename(
        columns={"session": "pre_session", "value": "pre"}
    )
    out = pd.DataFrame(index=pd.Index(clients, name="client")).join(pre)
    later = obs.join(out["pre_session"], on="client")
    later = later[later["session"] > later["pre_session"]]
    if isinstance(last, str):
        if last != "last":
            raise ValueError(f"last={last!r}: pass 'last' or a session number")
        post = later.groupby("client", sort=False).tail(1)
        horizon = np.inf
    else:
        post = later[later["session"] == int(last)]
        horizon = int(last)
    post = post.set_index("client")[["session", "value"]].rename(
        columns={"session": "post_session", "value": "post"}
    )
    out = out.join(post)
    out["post_source"] = np.where(out["post"].notna(), "observed", "missing")
    if carry_forward:
        # last observation carried forward: the latest score at or after pre, up to `last`
        pool = obs.join(out["pre_session"], on="client")
        pool = pool[(pool["session"] >= pool["pre_session"]) & (pool["session"] <= horizon)]
        locf = pool.groupby("client", sort=False).tail(1).set_index("client")
        need = out["post"].isna() & out["pre"].notna()
        fill = locf.reindex(out.index[need])
        out.loc[need, "post"] = fill["value"].to_numpy()
        out.loc[need, "post_session"] = fill["session"].to_numpy()
        out.loc[need & out["post"].notna(), "post_source"] = "carried forward"
    for col in ("pre_session", "post_session"):
        out[col] = out[col].astype("Int64")
    return out


def _rci_parameters(instrument, sd, reliability, threshold, pre_scores):
    """Return (s_diff, rule, description) for the reliable change test."""
    ins = _instrument(instrument)
    if threshold is not None:
        return None, float(threshold), f"threshold of {threshold:g} points"
    if sd is not None or reliability is not None:
        if reliability is None and ins is not None and ins.reliability is not None:
            reliability = ins.reliability
        if reliability is None:
            raise ValueError(
                "reliability is needed with sd= (Jacobson & Truax); pass reliability= "
                "(e.g. Cronbach's alpha or the test-retest r of the instrument)"
            )
        if sd is None:
            raise ValueError(
                "sd is needed with reliability= (Jacobson & Truax); pass sd= as a number "
                "(the SD of a normative or pre-treatment sample) or sd='pre' for the SD "
                "of this sample's pre scores"
            )
        if isinstance(sd, str):
            if sd != "pre":
                raise ValueError(f"sd={sd!r}: pass a number or 'pre'")
            sd = float(np.nanstd(pre_scores, ddof=1))
        if not 0 <= float(reliability) < 1:
            raise ValueError(f"reliability={reliability} must be in [0, 1)")
        s_diff = np.sqrt(2.0) * float(sd) * np.sqrt(1.0 - float(reliability))
        return s_diff, None, f"Jacobson & Truax RCI (sd={sd:g}, reliability={reliability:g})"
    if ins is not None and ins.reliable_change is not None:
        t = float(ins.reliable_change)
        return None, t, f"{ins.name} reliable-change threshold of {t:g} points"
    named = f"instrument {ins.name!r} has no published reliable-change threshold; " if ins else ""
    raise ValueError(
        f"{named}reliable change needs a yardstick: pass sd= and reliability= "
        "(Jacobson & Truax 1991), threshold= (points), or an instrument= whose "
        "reliable_change is known"
    )


def reliable_change(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    instrument=None,
    sd: float | str | None = None,
    reliability: float | None = None,
    threshold: float | None = None,
    first: int | str = "first",
    last: int | str = "last",
    carry_forward: bool = False,
    direction: str | None = None,
    z: float | None = None,
    method: str = "JT",
    reliability_post: float | None = None,
    hlm_max_clients: int = 2000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Reliable change per client (Jacobson & Truax, 1991, and five alternatives).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session.
    outcome, client, session : str
        Column names of the score, the client id and the session number.
    instrument : str or Instrument, optional
        Supplies the direction of improvement and, when ``sd``/``reliability`` are not
        given, the published reliable-change threshold in points.
    sd : float or 'pre', optional
        Standard deviation for the standard error of measurement; ``'pre'`` uses the SD of
        this sample's pre scores, as Jacobson & Truax did.
    reliability : float, optional
        Reliability of the scale (e.g. alpha or test-retest r).
    threshold : float, optional
        A reliable-change threshold in points, used instead of ``sd``/``reliability``.
    first, last : int or str
        Sessions giving the pre and post scores: ``'first'`` and ``'last'`` take each
        client's first and last observed score; a number takes that session's score.
    carry_forward : bool
        Fill a missing post score by the client's last observation carried forward
        (LOCF, possibly the pre score itself); ``post_source`` then says
        ``'carried forward'``.
    direction : {'lower_is_better', 'higher_is_better'}, optional
        Which way is improvement; default the instrument's, else lower is better.
    z : float, optional
        Critical value of the RCI: default 1.96 (two-sided .05), and 1.645 for
        ``method='HA'`` (one-sided .05, as Hageman & Arrindell, 1999).
    method : {'JT', 'GLN', 'HLL', 'EN', 'NK', 'HA'}
        Reliable-change method (formulas in Notes). All but ``'JT'`` need
        ``reliability=`` and take the mean and SD of the pre scores (and the post
        scores for HLL and HA) from the clients with both scores; ``sd=`` a number
        replaces the SD of the pre scores.
    reliability_post : float, optional
        Reliability at post, needed for ``method='NK'``.
    hlm_max_clients, seed
        ``method='HLM'`` (Raudenbush & Bryk, 2002) uses every assessment: the
        variance components of ``score ~ session + (1 + session | client)`` are fitted
        by :func:`alliance.models.lmm` on the clients with 3 or more scores (a random
        subsample of ``hlm_max_clients`` of them, drawn with ``seed``, when there are
        more), then each client's empirical-Bayes slope (fixed slope + conditional mode)
        and its posterior SD follow in closed form; ``rci = slope / SD`` (columns
        ``eb_slope``, ``eb_slope_sd``). Clients with fewer than 3 scores get the category
        'fewer than 3 scores'. The R package clinicalsignificance divides the slope's
        deviation from the fixed slope instead; we test the client's own slope.

    Returns
    -------
    pandas.DataFrame
        One row per client (every client of ``data``): client, pre_session, pre,
        post_session, post, post_source ('observed', 'carried forward', 'missing'),
        change (post - pre), rci, reliable_improvement, reliable_deterioration and
        category ('reliable improvement', 'no reliable change', 'reliable
        deterioration', 'no post score', 'no pre score'). ``attrs['method']`` says
        which yardstick was used.

    Notes
    -----
    With ``sd`` and ``reliability``: ``SE = sd * sqrt(1 - reliability)``,
    ``S_diff = sqrt(2) * SE``, ``RCI = change / S_diff`` and change is reliable when
    ``|RCI| > z``. With a threshold ``T`` in points, change is reliable when
    ``|change| >= T``, and ``rci`` is reported as ``change / (T / z)`` so that both
    yardsticks read on the same scale.

    The other methods (``M1``, ``S1``: mean and SD of pre; ``M2``, ``S2``: of post;
    ``r``: reliability; improvement is ``rci`` beyond ``z`` in the better direction):

    - GLN (Gulliksen, Lord & Novick): ``(x2 - M1 - r (x1 - M1)) / (S1 sqrt(1 - r^2))``.
    - HLL (Hsu, 1989, 1995; Hsu-Linn-Lord): ``(x2 - M2 - r (x1 - M1)) / (S1 sqrt(1 - r^2))``.
    - EN (Edwards-Nunnally as reformulated by Speer, 1992): the estimated true pre
      score ``t1 = r (x1 - M1) + M1``; ``rci = (x2 - t1) / (S1 sqrt(1 - r))``.
    - NK (Nunnally & Kotsch, 1983): ``(x2 - t1) / sqrt(r^2 S1^2 (1 - r) + S1^2 (1 - r2))``
      with ``r2`` the post-test reliability.
    - HA (Hageman & Arrindell, 1999): ``SE = S1 sqrt(1 - r)``, ``r_xx1 = (S1^2 - SE^2) / S1^2``,
      ``r_xx2 = (S2^2 - SE^2) / S2^2``, ``r12`` the pre-post correlation,
      ``r_dd = (S1^2 r_xx1 + S2^2 r_xx2 - 2 S1 S2 r12) / (S1^2 + S2^2 - 2 S1 S2 r12)``,
      ``RC_indiv = ((x2 - x1) r_dd + (M2 - M1)(1 - r_dd)) / (sqrt(r_dd) sqrt(2 SE^2))``,
      critical value 1.645.

    These are the formulas of the R package clinicalsignificance (Claus, Wager &
    Bonnet, 2024), read from its documentation and re-written here.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> rc = alliance.change.reliable_change(
    ...     study.sessions, outcome="phq9", instrument="phq9", sd="pre", reliability=0.84)
    >>> rc.columns[:6].tolist()
    ['client', 'pre_session', 'pre', 'post_session', 'post', 'post_source']
    >>> len(rc) == study.sessions["client"].nunique()
    True
    """
    key = str(method).upper()
    if key not in _METHODS:
        raise ValueError(
            f"method={method!r} is not a reliable-change method; pass one of "
            f"{', '.join(repr(m) for m in _METHODS)}"
        )
    higher = _higher_is_better(direction, instrument)
    long = check_long(data, client, session, outcome)
    out = _pre_post(long, first, last, carry_forward)
    change = out["post"] - out["pre"]
    if key == "HLM":
        z = 1.96 if z is None else z
        slope, sd_eb, n_scores, described = _hlm_slopes(long, out.index, hlm_max_clients, seed)
        rci = pd.Series(slope / sd_eb, index=out.index)
        reliable = rci.abs() > z
        res = _finish_rc(out, change, rci, reliable, higher, described, key, z, (0.0, 1.0, np.nan))
        few = n_scores < 3
        res["eb_slope"] = slope
        res["eb_slope_sd"] = sd_eb
        res.loc[few, ["reliable_improvement", "reliable_deterioration"]] = pd.NA
        res.loc[few & res["pre"].notna(), "category"] = "fewer than 3 scores"
        res.attrs.pop("band", None)
        return res
    if key != "JT":
        if z is None:
            z = 1.645 if key == "HA" else 1.96
        rci, described, band, extra = _rci_alternative(
            key, out, sd, reliability, reliability_post, instrument
        )
        reliable = rci.abs() > z
        res = _finish_rc(out, change, rci, reliable, higher, described, key, z, band)
        if extra is not None:
            res.attrs["ha"] = extra
        return res
    if z is None:
        z = 1.96
    s_diff, points, described = _rci_parameters(
        instrument, sd, reliability, threshold, out["pre"].to_numpy(dtype=float)
    )
    if points is not None:
        if points <= 0:
            raise ValueError(f"the reliable-change threshold must be positive, not {points}")
        rci = change / (points / z)
        reliable = change.abs() >= points
        band = (0.0, 1.0, points / z)
    else:
        rci = change / s_diff
        reliable = rci.abs() > z
        band = (0.0, 1.0, s_diff)
    return _finish_rc(out, change, rci, reliable, higher, described, "JT", z, band)


def _finish_rc(out, change, rci, reliable, higher, described, key, z, band) -> pd.DataFrame:
    """Categories and attrs of :func:`reliable_change` for any method."""
    if key == "JT":
        better = change > 0 if higher else change < 0
        worse = ~better & (change != 0)
    else:  # the adjusted index decides the direction
        better = rci > 0 if higher else rci < 0
        worse = rci < 0 if higher else rci > 0
    known = change.notna()
    improvement = (reliable & better).astype("boolean").where(known, pd.NA)
    deterioration = (reliable & worse).astype("boolean").where(known, pd.NA)
    category = np.select(
        [
            out["pre"].isna(),
            out["post"].isna(),
            improvement.fillna(False),
            deterioration.fillna(False),
        ],
        ["no pre score", "no post score", "reliable improvement", "reliable deterioration"],
        default="no reliable change",
    )
    out = out.assign(
        change=change,
        rci=rci,
        reliable_improvement=improvement,
        reliable_deterioration=deterioration,
        category=category,
    ).reset_index()
    out.attrs["method"] = described
    out.attrs["rci_method"] = key
    out.attrs["critical_value"] = float(z)
    # the no-reliable-change region in the pre-post plane: post within
    # intercept + slope * pre +/- half_width (|rci| <= z)
    out.attrs["band"] = {
        "intercept": float(band[0]),
        "slope": float(band[1]),
        "half_width": float(z * band[2]),
    }
    out.attrs["citation"] = _CITATIONS[key]
    out.attrs["direction"] = "higher_is_better" if higher else "lower_is_better"
    return out


def _rci_alternative(key, out, sd, reliability, reliability_post, instrument):
    """RCI of the GLN, HLL, EN, NK and HA methods (see :func:`reliable_change`)."""
    ins = _instrument(instrument)
    if reliability is None and ins is not None and ins.reliability is not None:
        reliability = ins.reliability
    if reliability is None:
        raise ValueError(
            f"method={key!r} needs reliability= (e.g. Cronbach's alpha or the "
            "test-retest r of the instrument)"
        )
    r = float(reliability)
    if not 0 < r < 1:
        raise ValueError(f"reliability={reliability} must be between 0 and 1 (exclusive)")
    both = out["pre"].notna() & out["post"].notna()
    pre, post = out["pre"].to_numpy(dtype=float), out["post"].to_numpy(dtype=float)
    x1, x2 = pre[both.to_numpy()], post[both.to_numpy()]
    if len(x1) < 3:
        raise ValueError(
            f"method={key!r} needs at least 3 clients with both a pre and a post score, "
            f"not {len(x1)}; use method='JT' with sd= a normative SD"
        )
    m1, m2 = float(x1.mean()), float(x2.mean())
    s1 = float(x1.std(ddof=1)) if sd is None or isinstance(sd, str) else float(sd)
    s2 = float(x2.std(ddof=1))
    if isinstance(sd, str) and sd != "pre":
        raise ValueError(f"sd={sd!r}: pass a number or 'pre'")
    detail = f"M_pre={m1:.4g}, SD_pre={s1:.4g}, reliability={r:g}"
    extra = None
    if key == "GLN":
        rci = (post - m1 - r * (pre - m1)) / (s1 * np.sqrt(1 - r**2))
        band = (m1 * (1 - r), r, s1 * np.sqrt(1 - r**2))
    elif key == "HLL":
        rci = (post - m2 - r * (pre - m1)) / (s1 * np.sqrt(1 - r**2))
        band = (m2 - r * m1, r, s1 * np.sqrt(1 - r**2))
        detail += f", M_post={m2:.4g}"
    elif key == "EN":
        rci = (post - (r * (pre - m1) + m1)) / (s1 * np.sqrt(1 - r))
        band = (m1 * (1 - r), r, s1 * np.sqrt(1 - r))
    elif key == "NK":
        if reliability_post is None:
            raise ValueError("method='NK' needs reliability_post= (the reliability at post-test)")
        r2 = float(reliability_post)
        if not 0 < r2 < 1:
            raise ValueError(f"reliability_post={reliability_post} must be in (0, 1)")
        denom = np.sqrt(r**2 * s1**2 * (1 - r) + s1**2 * (1 - r2))
        rci = (post - (r * (pre - m1) + m1)) / denom
        band = (m1 * (1 - r), r, denom)
        detail += f", reliability_post={r2:g}"
    else:  # HA
        se = s1 * np.sqrt(1 - r)
        rxx1 = (s1**2 - se**2) / s1**2
        rxx2 = (s2**2 - se**2) / s2**2
        r12 = float(np.corrcoef(x1, x2)[0, 1])
        r_dd = (s1**2 * rxx1 + s2**2 * rxx2 - 2 * s1 * s2 * r12) / (
            s1**2 + s2**2 - 2 * s1 * s2 * r12
        )
        if not r_dd > 0:
            raise ValueError(
                f"the reliability of the difference scores is {r_dd:.3g} (not positive), "
                "so the Hageman-Arrindell index is undefined; use another method"
            )
        rci = ((post - pre) * r_dd + (m2 - m1) * (1 - r_dd)) / (np.sqrt(r_dd) * np.sqrt(2 * se**2))
        band = (-(m2 - m1) * (1 - r_dd) / r_dd, 1.0, np.sqrt(2 * se**2) / np.sqrt(r_dd))
        detail += f", M_post={m2:.4g}, SD_post={s2:.4g}, r_pre_post={r12:.4g}, r_dd={r_dd:.4g}"
        diff = x2 - x1
        extra = {
            "se": float(se),
            "reliability": r,
            "r_dd": float(r_dd),
            "r_pre_post": r12,
            "m_pre": m1,
            "sd_pre": s1,
            "m_post": m2,
            "sd_post": s2,
            "m_change": float(diff.mean()),
            "sd_change": float(diff.std(ddof=1)),
        }
    described = f"{_NAMES[key]} RCI ({detail}; {int(both.sum())} clients with pre and post)"
    return pd.Series(rci, index=out.index), described, band, extra


# ------------------------------------------------------------ clinical significance


def clinical_cutoffs(
    clinical_mean: float,
    clinical_sd: float,
    functional_mean: float | None = None,
    functional_sd: float | None = None,
    *,
    direction: str | None = None,
    method: str = "JT",
    reliability: float | None = None,
    higher_is_better: bool | None = None,
) -> pd.DataFrame:
    """Cut-offs a, b and c of Jacobson & Truax (1991) or Hageman & Arrindell (1999).

    Parameters
    ----------
    clinical_mean, clinical_sd : float
        Mean and SD of the dysfunctional (clinical) population.
    functional_mean, functional_sd : float, optional
        Mean and SD of the functional population; b and c are NaN without them.
    direction : {"lower_is_better", "higher_is_better"}, optional
        Direction of improvement on the scale, named as everywhere in the package
        (default ``"lower_is_better"``, symptom scales).
    method : {'JT', 'HA'}
        ``'JT'``: cut-offs on observed scores. ``'HA'``: Hageman & Arrindell's
        true-score cut-offs, each SD multiplied by the square root of the reliability
        of its population (see Notes); needs ``reliability``.
    reliability : float, optional
        Reliability of the instrument in the clinical population (``method='HA'``).
    higher_is_better : bool, optional
        Former name of ``direction`` (deprecated: pass ``direction=``).

    Returns
    -------
    pandas.DataFrame
        Rows a, b, c with columns cutoff, value, rule; with ``method='HA'`` also
        ``attrs['se']`` (the standard error of measurement) and ``attrs['reliability']``
        (per population).

    Notes
    -----
    Hageman & Arrindell (1999): ``SE = SD_clin sqrt(1 - r)``, the reliability of a
    population with SD ``S`` is ``r_S = (S^2 - SE^2) / S^2`` (so ``r_clin = r``), and
    ``a = M_clin -/+ 2 SD_clin sqrt(r_clin)``, ``b = M_func +/- 2 SD_func sqrt(r_func)``,
    ``c = (SD_clin sqrt(r_clin) M_func + SD_func sqrt(r_func) M_clin) /
    (SD_clin sqrt(r_clin) + SD_func sqrt(r_func))``. (The R package
    clinicalsignificance uses the clinical SD in b, for JT and HA alike.)

    Examples
    --------
    >>> from alliance.change import clinical_cutoffs
    >>> # a = 30 - 2 * 8 = 14; b = 8 + 2 * 5 = 18; c = (5 * 30 + 8 * 8) / (5 + 8) = 16.46
    >>> clinical_cutoffs(30, 8, 8, 5)["value"].round(2).tolist()
    [14.0, 18.0, 16.46]
    >>> # HA, r = .8: SE^2 = 64 * .2 = 12.8, r_func = (25 - 12.8) / 25 = .488;
    >>> # true SDs 8 sqrt(.8) = 7.1554 and 5 sqrt(.488) = 3.4929; a = 30 - 2 * 7.1554,
    >>> # b = 8 + 2 * 3.4929, c = (7.1554 * 8 + 3.4929 * 30) / (7.1554 + 3.4929)
    >>> clinical_cutoffs(30, 8, 8, 5, method="HA", reliability=0.8)["value"].round(2).tolist()
    [15.69, 14.99, 15.22]
    """
    key = str(method).upper()
    if key not in ("JT", "HA"):
        raise ValueError(f"method={method!r}: pass 'JT' or 'HA' (Hageman & Arrindell)")
    if higher_is_better is not None:
        warnings.warn(
            "clinical_cutoffs(higher_is_better=...) is deprecated; pass "
            "direction='higher_is_better' or direction='lower_is_better'",
            DeprecationWarning,
            stacklevel=2,
        )
        if direction is None:
            direction = "higher_is_better" if higher_is_better else "lower_is_better"
    higher_is_better = _higher_is_better(direction, None)
    sign = 1.0 if higher_is_better else -1.0
    has_functional = functional_mean is not None and functional_sd is not None
    side = "+" if higher_is_better else "-"
    other = "-" if higher_is_better else "+"
    if key == "HA":
        if reliability is None or not 0 < float(reliability) < 1:
            raise ValueError(
                "method='HA' needs reliability= between 0 and 1 (the instrument's "
                "reliability in the clinical population)"
            )
        se2 = clinical_sd**2 * (1 - float(reliability))
        r_clin = float(reliability)
        w_clin = clinical_sd * np.sqrt(r_clin)  # SD of the clinical true scores
        a = clinical_mean + sign * 2 * w_clin
        r_func = np.nan
        if has_functional:
            r_func = (functional_sd**2 - se2) / functional_sd**2
            if not r_func > 0:
                raise ValueError(
                    f"functional_sd={functional_sd:g} is not larger than the standard error "
                    f"of measurement ({np.sqrt(se2):.3g}), so the functional population's "
                    "reliability is not positive; check the norms or use method='JT'"
                )
            w_func = functional_sd * np.sqrt(r_func)
            b = functional_mean - sign * 2 * w_func
            c = (w_clin * functional_mean + w_func * clinical_mean) / (w_clin + w_func)
        else:
            b = c = np.nan
        table = pd.DataFrame(
            {
                "cutoff": ["a", "b", "c"],
                "value": [a, b, c],
                "rule": [
                    f"true-score: clinical mean {side} 2 clinical SD sqrt(r_clin)",
                    f"true-score: functional mean {other} 2 functional SD sqrt(r_func)",
                    "true-score: (SD_clin sqrt(r_clin) M_func + SD_func sqrt(r_func) M_clin)"
                    " / (SD_clin sqrt(r_clin) + SD_func sqrt(r_func))",
                ],
            }
        )
        table.attrs["se"] = float(np.sqrt(se2))
        table.attrs["reliability"] = {"clinical": r_clin, "functional": float(r_func)}
        table.attrs["citation"] = _CITATIONS["HA"]
        return table
    a = clinical_mean + sign * 2 * clinical_sd
    if has_functional:
        b = functional_mean - sign * 2 * functional_sd
        c = (functional_sd * clinical_mean + clinical_sd * functional_mean) / (
            functional_sd + clinical_sd
        )
    else:
        b = c = np.nan
    return pd.DataFrame(
        {
            "cutoff": ["a", "b", "c"],
            "value": [a, b, c],
            "rule": [
                f"clinical mean {side} 2 clinical SD",
                f"functional mean {other} 2 functional SD",
                "(SD_func * M_clin + SD_clin * M_func) / (SD_func + SD_clin)",
            ],
        }
    )


def clinical_significance(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    instrument=None,
    cutoff: str | float | None = None,
    clinical_mean: float | None = None,
    clinical_sd: float | None = None,
    functional_mean: float | None = None,
    functional_sd: float | None = None,
    sd: float | str | None = None,
    reliability: float | None = None,
    threshold: float | None = None,
    first: int | str = "first",
    last: int | str = "last",
    carry_forward: bool = False,
    direction: str | None = None,
    z: float | None = None,
    method: str = "JT",
    reliability_post: float | None = None,
    approach: str = "combined",
    pct_improvement: float | None = None,
    pct_deterioration: float | None = None,
    mid_improvement: float | None = None,
    mid_deterioration: float | None = None,
    with_cutoff: bool = False,
) -> pd.DataFrame:
    """Clinically significant change per client (Jacobson & Truax, 1991).

    Parameters
    ----------
    data, outcome, client, session
        As in :func:`reliable_change`.
    instrument : str or Instrument, optional
        Supplies direction, norms, published cut-off and reliable-change threshold.
    cutoff : {'a', 'b', 'c'} or float, optional
        Which cut-off decides the functional range. Default: ``'c'`` when functional
        norms are known, else the instrument's published cut-off, else ``'a'``.
    clinical_mean, clinical_sd : float, optional
        Norms of the dysfunctional population; default the instrument's, else the mean
        and SD of this sample's pre scores.
    functional_mean, functional_sd : float, optional
        Norms of the functional population; default the instrument's (needed for b, c).
    sd, reliability, threshold, first, last, carry_forward, direction, z, method, reliability_post
        As in :func:`reliable_change`.
    approach : {'combined', 'distribution', 'statistical', 'percentage', 'anchor'}
        ``'combined'`` (default): reliable change by ``method`` and the cut-off
        (recovered, improved, unchanged, deteriorated, harmed). ``'distribution'``:
        reliable change only (improved, unchanged, deteriorated). ``'statistical'``:
        the cut-off only (recovered: from the dysfunctional to the functional side;
        harmed: the other way; unchanged otherwise). ``'percentage'``: change as a
        proportion of the pre score, improved when at least ``pct_improvement`` in
        the better direction, deteriorated when at least ``pct_deterioration`` (default
        ``pct_improvement``) in the worse one. ``'anchor'``: improved when the change
        is at least ``mid_improvement`` points (a minimal important difference) in
        the better direction, deteriorated at ``mid_deterioration`` (default
        ``mid_improvement``) points the other way.
    pct_improvement, pct_deterioration : float, optional
        Thresholds of the percentage approach as proportions (0.5 = 50%).
    mid_improvement, mid_deterioration : float, optional
        Minimal important differences (points) of the anchor approach.
    with_cutoff : bool
        With ``approach='percentage'`` or ``'anchor'``: combine the change criterion
        with the cut-off as in the combined approach (recovered, harmed).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`reliable_change`, then cutoff (value), cutoff_rule,
        pre_dysfunctional, post_functional and category: 'recovered' (reliable
        improvement from the dysfunctional to the functional side of the cut-off),
        'improved' (reliable improvement otherwise), 'unchanged', 'deteriorated'
        (reliable deterioration), 'harmed' (reliable deterioration from the
        functional to the dysfunctional side of the cut-off), or 'no post score' /
        'no pre score'. ``attrs['cutoffs']`` holds a, b and c; ``attrs['summary']``
        counts the categories with percentages over the clients with both scores
        only (``attrs['summary_note']`` says how many were left out);
        ``attrs['approach']``, ``attrs['rci_method']`` and ``attrs['citation']``
        name what was done. ``attrs['group_summary']`` is None except for
        ``method='HA'`` (see Notes).

    Notes
    -----
    With ``method='HA'`` the cut-off follows Hageman & Arrindell (1999) as well:
    a, b and c are true-score cut-offs (:func:`clinical_cutoffs` with
    ``method='HA'``; a number given as ``cutoff`` is taken as a true-score cut-off),
    and a post score counts as functional only when its estimated true score lies
    reliably beyond the cut-off: ``CS_indiv = (M_post + (x_post - M_post) r_post -
    cutoff) / (sqrt(r_post) SE)`` beyond the critical value (column ``cs_indiv``;
    ``post_functional`` is then this test), with ``SE = SD_clin sqrt(1 - r)`` and
    ``r_post = (S_post^2 - SE^2) / S_post^2``. 'harmed' needs a functional pre
    score and ``CS_indiv`` reliably on the dysfunctional side. ``attrs['group_summary']``
    gives the group-level proportions of Hageman & Arrindell: changed,
    ``Phi(-M_D / (S_D sqrt(r_dd)))`` (``D`` = post - pre, towards improvement), and
    functional, ``Phi((cutoff - M_post) / (S_post sqrt(r_post)))`` (towards the
    functional side), with percent and z. On the claus_2020 HAM-D data these
    reproduce the R package clinicalsignificance's documented results (cut-off
    c_true 20.21; 23 / 9 / 7 / 1 / 0; changed 90.31%, functional 75.55%). That
    package counts as harmed every reliably deteriorated client with a functional
    pre score, without the post-score test; its critical value is 1.65 (ours 1.645).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> cs = alliance.change.clinical_significance(
    ...     study.sessions, outcome="phq9", instrument="phq9", cutoff=10,
    ...     sd="pre", reliability=0.84)
    >>> set(cs["category"]) <= {"recovered", "improved", "unchanged", "deteriorated",
    ...                         "harmed", "no post score", "no pre score"}
    True
    >>> cs.attrs["summary"]["category"].tolist()
    ['recovered', 'improved', 'unchanged', 'deteriorated', 'harmed']

    Another method and the percentage approach:

    >>> en = alliance.change.clinical_significance(
    ...     study.sessions, outcome="phq9", instrument="phq9", cutoff=10,
    ...     reliability=0.84, method="EN")
    >>> en.attrs["rci_method"]
    'EN'
    >>> pct = alliance.change.clinical_significance(
    ...     study.sessions, outcome="phq9", instrument="phq9", cutoff=10,
    ...     approach="percentage", pct_improvement=0.5, threshold=5)
    >>> pct.attrs["approach"]
    'percentage'
    """
    ins = _instrument(instrument)
    higher = _higher_is_better(direction, instrument)
    rc = reliable_change(
        data,
        outcome=outcome,
        client=client,
        session=session,
        instrument=instrument,
        sd=sd,
        reliability=reliability,
        threshold=threshold,
        first=first,
        last=last,
        carry_forward=carry_forward,
        direction="higher_is_better" if higher else "lower_is_better",
        z=z,
        method=method,
        reliability_post=reliability_post,
    )
    approach = str(approach).lower()
    if approach not in _APPROACHES:
        raise ValueError(
            f"approach={approach!r}: pass one of {', '.join(repr(a) for a in _APPROACHES)}"
        )
    improved, worse = _change_criterion(
        rc,
        approach,
        higher,
        pct_improvement,
        pct_deterioration,
        mid_improvement,
        mid_deterioration,
    )

    def pick(value, attr):
        if value is not None:
            return float(value)
        got = getattr(ins, attr, None) if ins is not None else None
        return None if got is None else float(got)

    c_mean, c_sd = pick(clinical_mean, "clinical_mean"), pick(clinical_sd, "clinical_sd")
    f_mean, f_sd = pick(functional_mean, "functional_mean"), pick(functional_sd, "functional_sd")
    norms_from = "given or instrument norms"
    if c_mean is None or c_sd is None:
        pre = rc["pre"].dropna()
        if len(pre) < 2:
            raise ValueError(
                "clinical norms are unknown and fewer than 2 pre scores are available; "
                "pass clinical_mean= and clinical_sd="
            )
        c_mean = float(pre.mean()) if c_mean is None else c_mean
        c_sd = float(pre.std(ddof=1)) if c_sd is None else c_sd
        norms_from = "clinical norms from this sample's pre scores"
    ha = rc.attrs.get("ha") if rc.attrs.get("rci_method") == "HA" else None
    if ha is not None:
        table = clinical_cutoffs(
            c_mean,
            c_sd,
            f_mean,
            f_sd,
            direction="higher_is_better" if higher else "lower_is_better",
            method="HA",
            reliability=ha["reliability"],
        )
    else:
        table = clinical_cutoffs(
            c_mean,
            c_sd,
            f_mean,
            f_sd,
            direction="higher_is_better" if higher else "lower_is_better",
        )
    values = dict(zip(table["cutoff"], table["value"], strict=True))
    rule = "cut-off given"
    if cutoff is None:
        if f_mean is not None and f_sd is not None:
            cutoff = "c"
        elif ins is not None and ins.cutoff is not None:
            cutoff = float(ins.cutoff)
            rule = f"published cut-off of {ins.name}"
        else:
            cutoff = "a"
    if isinstance(cutoff, str):
        key = cutoff.lower()
        if key not in values:
            raise ValueError(f"cutoff={cutoff!r}: pass 'a', 'b', 'c' or a number")
        if np.isnan(values[key]):
            raise ValueError(
                f"cut-off {key} needs the functional population's norms; pass "
                "functional_mean= and functional_sd=, or use cutoff='a' or a number"
            )
        value = float(values[key])
        if ha is not None:
            rule = f"Hageman & Arrindell true-score cut-off {key} ({norms_from})"
        else:
            rule = f"Jacobson & Truax cut-off {key} ({norms_from})"
    else:
        value = float(cutoff)
    if higher:
        pre_dys = rc["pre"] < value
        post_fun = rc["post"] >= value
    else:
        pre_dys = rc["pre"] >= value
        post_fun = rc["post"] < value
    pre_dys = pre_dys.astype("boolean").where(rc["pre"].notna(), pd.NA)
    post_fun = post_fun.astype("boolean").where(rc["post"].notna(), pd.NA)
    crossed = pre_dys.fillna(False) & post_fun.fillna(False)
    fell = (~pre_dys.fillna(True)) & (~post_fun.fillna(True))
    if ha is not None:
        # Hageman & Arrindell: the post score's estimated true score must lie reliably
        # beyond the true-score cut-off (|CS_indiv| > z) to count as crossed
        se = table.attrs["se"]
        m2, s2 = ha["m_post"], ha["sd_post"]
        r_post = (s2**2 - se**2) / s2**2
        if not r_post > 0:
            raise ValueError(
                f"the SD of the post scores ({s2:.3g}) is not larger than the standard "
                f"error of measurement ({se:.3g}), so the Hageman-Arrindell post-test "
                "reliability is not positive; use another method"
            )
        cs_indiv = (m2 + (rc["post"] - m2) * r_post - value) / (np.sqrt(r_post) * se)
        beyond = cs_indiv if higher else -cs_indiv
        z_ha = rc.attrs["critical_value"]
        post_fun = (beyond > z_ha).astype("boolean").where(rc["post"].notna(), pd.NA)
        crossed = pre_dys.fillna(False) & post_fun.fillna(False)
        fell = (~pre_dys.fillna(True)) & (beyond < -z_ha).fillna(False)
    missing = [rc["category"].eq("no pre score"), rc["category"].eq("no post score")]
    if approach == "distribution":
        conditions = [*missing, improved, worse]
        labels = ["improved", "deteriorated"]
    elif approach == "statistical":
        conditions = [*missing, crossed, fell]
        labels = ["recovered", "harmed"]
    elif approach in ("percentage", "anchor") and not with_cutoff:
        conditions = [*missing, improved, worse]
        labels = ["improved", "deteriorated"]
    else:
        conditions = [*missing, improved & crossed, improved, worse & fell, worse]
        labels = ["recovered", "improved", "harmed", "deteriorated"]
    category = np.select(
        conditions, ["no pre score", "no post score", *labels], default="unchanged"
    )
    out = rc.assign(
        cutoff=value,
        cutoff_rule=rule,
        pre_dysfunctional=pre_dys,
        post_functional=post_fun,
        category=category,
    )
    out.attrs = dict(rc.attrs)
    out.attrs["cutoffs"] = dict(zip(table["cutoff"], table["value"].astype(float), strict=True))
    out.attrs["group_summary"] = None
    if ha is not None:
        out["cs_indiv"] = cs_indiv
        out.attrs["cutoff_method"] = "HA (true-score cut-offs)"
        out.attrs["group_summary"] = _ha_group_summary(ha, value, r_post, higher)
    out.attrs["approach"] = approach + (" + cut-off" if with_cutoff else "")
    summary, note = _category_summary(out["category"], {"unchanged", *labels})
    out.attrs["summary"] = summary
    out.attrs["summary_note"] = note
    return out


_APPROACHES = ("combined", "distribution", "statistical", "percentage", "anchor")

#: Category order of every approach.
CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated", "harmed")


def _ha_group_summary(ha: dict, cutoff: float, r_post: float, higher: bool) -> pd.DataFrame:
    """Hageman & Arrindell's (1999) group-level proportions changed and functional.

    Under normal true scores: changed ``P(true change beyond 0)`` with
    ``z = (0 - M_D) / (S_D sqrt(r_dd))``, functional ``P(true post score on the
    functional side of the cut-off)`` with ``z = (cutoff - M_post) / (S_post sqrt(r_post))``.
    """
    z_changed = (0.0 - ha["m_change"]) / (ha["sd_change"] * np.sqrt(ha["r_dd"]))
    z_functional = (cutoff - ha["m_post"]) / (ha["sd_post"] * np.sqrt(r_post))
    cdf = stats.norm.cdf
    p_changed = 1 - cdf(z_changed) if higher else cdf(z_changed)
    p_functional = 1 - cdf(z_functional) if higher else cdf(z_functional)
    table = pd.DataFrame(
        {
            "category": ["changed", "functional"],
            "proportion": [float(p_changed), float(p_functional)],
            "z": [float(z_changed), float(z_functional)],
            "rule": [
                "true change in the better direction: z = -M_D / (S_D sqrt(r_dd))",
                "true post score on the functional side of the true-score cut-off: "
                "z = (cutoff - M_post) / (S_post sqrt(r_post))",
            ],
        }
    )
    table["percent"] = 100 * table["proportion"]
    table.attrs["citation"] = _CITATIONS["HA"]
    table.attrs["r_post"] = float(r_post)
    return table


def _change_criterion(rc, approach, higher, pct_imp, pct_det, mid_imp, mid_det):
    """Improved / worsened per client under the chosen change criterion."""
    sign = 1.0 if higher else -1.0
    if approach == "percentage":
        if pct_imp is None:
            raise ValueError(
                "approach='percentage' needs pct_improvement= (a proportion, e.g. 0.5 "
                "for a 50% reduction of a symptom score)"
            )
        pct_det = pct_imp if pct_det is None else pct_det
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = sign * rc["change"] / rc["pre"].abs()
        return (pct >= pct_imp).fillna(False).astype(bool), (pct <= -pct_det).fillna(False).astype(
            bool
        )
    if approach == "anchor":
        if mid_imp is None:
            raise ValueError(
                "approach='anchor' needs mid_improvement= (the minimal important "
                "difference in points of the scale)"
            )
        mid_det = mid_imp if mid_det is None else mid_det
        d = sign * rc["change"]
        return (d >= mid_imp).fillna(False).astype(bool), (d <= -mid_det).fillna(False).astype(bool)
    return (
        rc["reliable_improvement"].fillna(False).astype(bool),
        rc["reliable_deterioration"].fillna(False).astype(bool),
    )


def _category_summary(category: pd.Series, labels) -> tuple[pd.DataFrame, str]:
    """Counts per category, percentages over clients with both scores."""
    counts = category.value_counts()
    present = [c for c in CATEGORIES if c in labels]
    n = int(sum(counts.get(c, 0) for c in CATEGORIES))
    rows = [(c, int(counts.get(c, 0))) for c in present]
    table = pd.DataFrame(rows, columns=["category", "n"])
    table["percent"] = 100 * table["n"] / n if n else np.nan
    left = int(counts.get("no post score", 0) + counts.get("no pre score", 0))
    note = (
        f"percentages are over the {n} clients with a pre and a post score; "
        f"{left} clients without them are left out (categories 'no post score' / "
        "'no pre score')"
    )
    return table, note


# ------------------------------------------------------------ sudden gains / losses

_GAIN_COLUMNS = [
    "client",
    "pregain_session",
    "postgain_session",
    "pregain_score",
    "postgain_score",
    "magnitude",
    "pct_change",
    "pre_mean",
    "post_mean",
    "n_pre",
    "n_post",
    "pooled_sd",
    "critical_value",
    "reversed",
    "reversal_session",
]


def _window_stats(columns: list[np.ndarray]):
    block = np.column_stack(columns)
    n = np.sum(~np.isnan(block), axis=1)
    total = np.nansum(block, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        sq = np.nansum((block - mean[:, None]) ** 2, axis=1)
        var = sq / (n - 1)
    var[n < 2] = np.nan
    mean[n == 0] = np.nan
    return mean, var, n


def _sudden(
    data,
    outcome,
    client,
    session,
    *,
    cutoff,
    pct,
    crit3,
    crit3_adjust,
    alpha,
    critical_value,
    direction,
    instrument,
    select,
    kind,
) -> pd.DataFrame:
    higher = _higher_is_better(direction, instrument)
    if cutoff is None:
        ins = _instrument(instrument)
        if ins is None or ins.reliable_change is None:
            raise ValueError(
                "criterion 1 needs an absolute size: pass cutoff= in points of the scale "
                "(Tang & DeRubeis used 7 BDI points; a reliable-change size is common), or "
                "cutoff=0 to apply criteria 2 and 3 only"
            )
        cutoff = float(ins.reliable_change)
    if select not in ("all", "first", "largest"):
        raise ValueError(f"select={select!r}: pass 'all', 'first' or 'largest'")
    long = check_long(data, client, session, outcome)
    g = _grid(long)
    # improvement sign: +1 when a rise is an improvement
    sign = 1.0 if higher else -1.0
    if kind == "loss":
        sign = -sign
    v = g.value
    nxt = g.shift(v, 1)
    magnitude = sign * (nxt - v)  # >0 in the direction looked for
    with np.errstate(invalid="ignore"):
        ok = magnitude >= cutoff
        if pct:
            ok &= magnitude >= pct * np.abs(v)
        # criterion 3: mean(N-2..N) vs mean(N+1..N+3), NaN where absent
        pre_mean, pre_var, n_pre = _window_stats([g.shift(v, -2), g.shift(v, -1), v])
        post_mean, post_var, n_post = _window_stats([nxt, g.shift(v, 2), g.shift(v, 3)])
        df = n_pre + n_post - 2
        pooled = np.sqrt(((n_pre - 1) * pre_var + (n_post - 1) * post_var) / df)
        if critical_value is not None:
            cv = np.full(v.shape, float(critical_value))
        elif crit3_adjust:
            cv = np.abs(stats.t.ppf(alpha / 2, np.maximum(df, 1)))
        else:
            cv = np.full(v.shape, abs(stats.t.ppf(alpha / 2, 4)))
        enough = (n_pre >= 2) & (n_post >= 2)
        if crit3:
            ok &= enough & (sign * (post_mean - pre_mean) > cv * pooled)
    ok &= ~np.isnan(magnitude)
    idx = np.flatnonzero(ok)
    cv = np.where(enough, cv, np.nan)
    result = pd.DataFrame(
        {
            "client": g.clients.take(g.code[idx]),
            "pregain_session": g.session[idx],
            "postgain_session": g.session[idx] + 1,
            "pregain_score": v[idx],
            "postgain_score": nxt[idx],
            "magnitude": magnitude[idx],
            "pct_change": magnitude[idx] / np.abs(v[idx]),
            "pre_mean": pre_mean[idx],
            "post_mean": post_mean[idx],
            "n_pre": n_pre[idx],
            "n_post": n_post[idx],
            "pooled_sd": pooled[idx],
            "critical_value": cv[idx],
        }
    )
    # reversal: a later session (N+2 onwards) back at least half-way to the pre-gain score
    if len(idx):
        back = nxt[idx] - sign * magnitude[idx] / 2  # midpoint between pre and post scores
        gain_id = np.repeat(np.arange(len(idx)), g.length[idx] - g.pos[idx] - 2)
        start = idx + 2
        steps = np.arange(len(gain_id)) - np.repeat(
            np.concatenate([[0], np.cumsum(g.length[idx] - g.pos[idx] - 2)[:-1]]),
            g.length[idx] - g.pos[idx] - 2,
        )
        cells = start[gain_id] + steps
        with np.errstate(invalid="ignore"):
            hit = sign * (v[cells] - back[gain_id]) <= 0
        first_cell = np.full(len(idx), -1)
        hit_ids = gain_id[hit]
        hit_cells = cells[hit]
        # cells are increasing within each gain, so the first hit per gain is the minimum
        order = np.lexsort((hit_cells, hit_ids))
        uniq, where = np.unique(hit_ids[order], return_index=True)
        first_cell[uniq] = hit_cells[order][where]
        reversed_ = first_cell >= 0
        result["reversed"] = reversed_
        result["reversal_session"] = np.where(
            reversed_, g.session[np.maximum(first_cell, 0)], np.nan
        )
    else:
        result["reversed"] = pd.Series(dtype=bool)
        result["reversal_session"] = pd.Series(dtype=float)
    if select == "first":
        result = result.groupby("client", sort=False, group_keys=False).head(1)
    elif select == "largest":
        order = result.sort_values(
            ["client", "magnitude", "pregain_session"],
            ascending=[True, False, True],
            kind="stable",
        )
        result = order.groupby("client", sort=False).head(1)
    result = result.sort_values(["client", "pregain_session"], kind="stable")
    result = result.reset_index(drop=True)[_GAIN_COLUMNS]
    assessable = (~np.isnan(magnitude)) & (enough if crit3 else True)
    per_client = np.bincount(g.code, weights=assessable, minlength=len(g.clients))
    result.attrs.update(
        {
            "kind": kind,
            "direction": "higher_is_better" if higher else "lower_is_better",
            "n_clients": int(len(g.clients)),
            "n_intervals_assessed": int(assessable.sum()),
            "clients_without_assessable_interval": g.clients[per_client == 0].tolist(),
        }
    )
    return result


def sudden_gains(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    cutoff: float | None = None,
    pct: float | None = 0.25,
    crit3: bool = True,
    crit3_adjust: bool = True,
    alpha: float = 0.05,
    critical_value: float | None = None,
    direction: str | None = None,
    instrument=None,
    select: str = "all",
) -> pd.DataFrame:
    """Sudden gains between consecutive sessions (Tang & DeRubeis, 1999).

    A gain between sessions N and N+1 meets three criteria:

    1. its size is at least ``cutoff`` points;
    2. its size is at least ``pct`` of the pre-gain score (session N);
    3. ``mean(N-2, N-1, N)`` and ``mean(N+1, N+2, N+3)`` differ, in the direction of
       improvement, by more than ``critical_value * pooled SD`` of the two sets, the
       pooled SD being ``sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1+n2-2))``.

    Windows step by session number: an absent session counts as missing. Criterion 3
    needs at least 2 values on each side; its critical value is the two-sided t value of
    ``alpha`` with ``n1 + n2 - 2`` df (2.776 with all 6 values, 3.182 with 5, 4.303 with
    4), as in the R package suddengains with ``sg_crit3_adjust = TRUE``.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per client x session.
    outcome, client, session : str
        Column names.
    cutoff : float, optional
        Criterion 1 in points; default the instrument's reliable-change threshold.
        ``0`` keeps any change in the direction looked for (criteria 2 and 3 only).
    pct : float or None
        Criterion 2 as a proportion of the pre-gain score; ``None`` or 0 to skip it.
    crit3 : bool
        Apply criterion 3.
    crit3_adjust : bool
        Adjust the critical value for missing values; ``False`` uses 2.776 throughout.
    alpha : float
        Two-sided alpha of the t critical value.
    critical_value : float, optional
        A fixed critical value, overriding ``crit3_adjust`` and ``alpha``.
    direction : {'lower_is_better', 'higher_is_better'}, optional
        Which way is improvement; default the instrument's, else lower is better (as on
        symptom scales).
    instrument : str or Instrument, optional
        Supplies direction and the default ``cutoff``.
    select : {'all', 'first', 'largest'}
        Every gain (default), or each client's first or largest (ties: the earliest).

    Returns
    -------
    pandas.DataFrame
        One row per gain: client, pregain_session (N), postgain_session (N+1),
        pregain_score, postgain_score, magnitude (positive, in points), pct_change,
        pre_mean, post_mean, n_pre, n_post, pooled_sd, critical_value, reversed,
        reversal_session. A gain is reversed when a later session (N+2 onwards) is back
        at least half-way to the pre-gain score (50% or more of the gain lost).
        ``attrs`` counts the clients and intervals assessed and lists clients with no
        assessable interval.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.change import sudden_gains
    >>> bdi = pd.DataFrame({"client": 1, "session": range(1, 9),
    ...                     "bdi": [30, 29, 31, 20, 19, 18, 20, 17]})
    >>> sudden_gains(bdi, outcome="bdi", cutoff=7)[
    ...     ["pregain_session", "magnitude", "critical_value", "reversed"]]
       pregain_session  magnitude  critical_value  reversed
    0                3       11.0           2.776     False

    On the demo study:

    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> gains = sudden_gains(study.sessions, outcome="phq9", instrument="phq9", cutoff=5)
    >>> bool((gains["magnitude"] >= 5).all())
    True
    """
    return _sudden(
        data,
        outcome,
        client,
        session,
        cutoff=cutoff,
        pct=pct,
        crit3=crit3,
        crit3_adjust=crit3_adjust,
        alpha=alpha,
        critical_value=critical_value,
        direction=direction,
        instrument=instrument,
        select=select,
        kind="gain",
    )


def sudden_losses(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    cutoff: float | None = None,
    pct: float | None = 0.25,
    crit3: bool = True,
    crit3_adjust: bool = True,
    alpha: float = 0.05,
    critical_value: float | None = None,
    direction: str | None = None,
    instrument=None,
    select: str = "all",
) -> pd.DataFrame:
    """Sudden losses: the criteria of :func:`sudden_gains` in the direction of worsening.

    ``cutoff`` is a positive number of points; ``magnitude`` is positive and
    ``reversed`` means that a later session is back at least half-way to the pre-loss
    score. Column names are those of :func:`sudden_gains` (``pregain_session`` is the
    session before the loss).

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.change import sudden_losses
    >>> bdi = pd.DataFrame({"client": 1, "session": range(1, 8),
    ...                     "bdi": [10, 11, 10, 22, 23, 21, 12]})
    >>> sudden_losses(bdi, outcome="bdi", cutoff=7)[["pregain_session", "reversed"]]
       pregain_session  reversed
    0                3      True
    """
    return _sudden(
        data,
        outcome,
        client,
        session,
        cutoff=cutoff,
        pct=pct,
        crit3=crit3,
        crit3_adjust=crit3_adjust,
        alpha=alpha,
        critical_value=critical_value,
        direction=direction,
        instrument=instrument,
        select=select,
        kind="loss",
    )


# ------------------------------------------------------- within-group effect size


def within_effect_size(
    data: pd.DataFrame,
    outcome: str = "outcome",
    client: str = "client",
    session: str = "session",
    *,
    first: int | str = "first",
    last: int | str = "last",
    direction: str | None = None,
    instrument=None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Pre-post (within-group) standardized mean change: d_av, d_z, d_rm and Hedges' g.

    Parameters
    ----------
    data, outcome, client, session, first, last
        As in :func:`reliable_change`; only clients with both scores count.
    direction, instrument
        Which way is improvement; effect sizes are signed so that a positive value is
        improvement.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per definition (``d_av``, ``d_z``, ``d_rm``) with estimate, se,
        ci_low, ci_high, g (Hedges' small-sample correction ``J = 1 - 3 / (4 (n - 1) - 1)``
        applied), g_se, g_ci_low, g_ci_high, n, r (the pre-post correlation),
        mean_change. ``attrs['excluded']`` counts clients without both scores.

    Notes
    -----
    With ``M`` the mean improvement, ``S1``, ``S2`` the SDs of pre and post, ``S_D``
    the SD of the differences and ``r`` the pre-post correlation:
    ``d_av = M / ((S1 + S2) / 2)``, ``d_z = M / S_D``,
    ``d_rm = d_z * sqrt(2 (1 - r))`` (Lakens, 2013). Standard errors: for d_z
    ``sqrt(1/n + d_z^2 / (2 n))``; for d_rm and d_av the standardized-mean-change
    variance ``(1/n + d^2 / (2 n)) * 2 (1 - r)`` (Borenstein, Hedges, Higgins &
    Rothstein, 2009, eq. 4.28), a large-sample approximation. Intervals are
    ``estimate +/- z * se``.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> es = alliance.change.within_effect_size(study.sessions, outcome="phq9",
    ...                                         instrument="phq9")
    >>> es["definition"].tolist()
    ['d_av', 'd_z', 'd_rm']
    """
    higher = _higher_is_better(direction, instrument)
    long = check_long(data, client, session, outcome)
    pp = _pre_post(long, first, last, carry_forward=False)
    both = pp["pre"].notna() & pp["post"].notna()
    x1 = pp.loc[both, "pre"].to_numpy(float)
    x2 = pp.loc[both, "post"].to_numpy(float)
    n = len(x1)
    if n < 3:
        raise ValueError(
            f"a pre-post effect size needs at least 3 clients with both scores, not {n}"
        )
    sign = 1.0 if higher else -1.0
    diff = sign * (x2 - x1)
    m = float(diff.mean())
    s1, s2, sd_d = (float(np.std(v, ddof=1)) for v in (x1, x2, diff))
    r = float(np.corrcoef(x1, x2)[0, 1])
    d_av = m / ((s1 + s2) / 2)
    d_z = m / sd_d
    d_rm = d_z * np.sqrt(2 * (1 - r))
    se_z = np.sqrt(1 / n + d_z**2 / (2 * n))

    def se_smc(d):
        return float(np.sqrt((1 / n + d**2 / (2 * n)) * 2 * (1 - r)))

    j = 1 - 3 / (4 * (n - 1) - 1)
    q = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for name, d, se in (
        ("d_av", d_av, se_smc(d_av)),
        ("d_z", d_z, se_z),
        ("d_rm", d_rm, se_smc(d_rm)),
    ):
        rows.append(
            {
                "definition": name,
                "estimate": d,
                "se": se,
                "ci_low": d - q * se,
                "ci_high": d + q * se,
                "g": j * d,
                "g_se": j * se,
                "g_ci_low": j * (d - q * se),
                "g_ci_high": j * (d + q * se),
                "n": n,
                "r": r,
                "mean_change": m,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["excluded"] = int((~both).sum())
    out.attrs["citation"] = (
        "Lakens, D. (2013). Calculating and reporting effect sizes to facilitate "
        "cumulative science. Frontiers in Psychology, 4, 863."
    )
    return out


def benchmark(
    effect: pd.DataFrame,
    benchmarks: dict[str, float],
    *,
    definition: str = "d_av",
    use_g: bool = True,
) -> pd.DataFrame:
    """Compare a clinic's pre-post effect size with trial benchmarks the user supplies.

    Parameters
    ----------
    effect : pandas.DataFrame
        The result of :func:`within_effect_size`.
    benchmarks : dict of str to float
        Benchmark effect sizes by label, e.g. the efficacy and natural-history
        benchmarks of Minami et al. (2008) for the instrument and sample at hand.
        No benchmark numbers are built in: copy them from the source you cite, on the
        same definition of d as ``definition``.
    definition : {'d_av', 'd_z', 'd_rm'}
        Which pre-post d to compare.
    use_g : bool
        Compare Hedges' g (default) rather than d.

    Returns
    -------
    pandas.DataFrame
        One row per benchmark: benchmark, benchmark_value, estimate, ci_low, ci_high,
        difference (estimate - benchmark), ratio, verdict ('above', 'below', or
        'not distinguishable' when the benchmark lies inside the interval).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> es = alliance.change.within_effect_size(study.sessions, outcome="phq9",
    ...                                         instrument="phq9")
    >>> alliance.change.benchmark(es, {"my trial benchmark": 0.0})["verdict"].tolist()
    ['above']
    """
    if not isinstance(benchmarks, dict) or not benchmarks:
        raise ValueError(
            "benchmarks= must be a non-empty dict of label -> effect size, e.g. "
            "{'efficacy benchmark': 1.2}; the numbers come from the source you cite "
            "(no benchmarks are built in)"
        )
    rows = effect[effect["definition"] == definition]
    if rows.empty:
        raise ValueError(f"definition={definition!r}: pass 'd_av', 'd_z' or 'd_rm'")
    row = rows.iloc[0]
    est, lo, hi = (
        (row["g"], row["g_ci_low"], row["g_ci_high"])
        if use_g
        else (row["estimate"], row["ci_low"], row["ci_high"])
    )
    out = []
    for label, value in benchmarks.items():
        value = float(value)
        verdict = "above" if lo > value else "below" if hi < value else "not distinguishable"
        out.append(
            {
                "benchmark": label,
                "benchmark_value": value,
                "estimate": est,
                "ci_low": lo,
                "ci_high": hi,
                "difference": est - value,
                "ratio": est / value if value else np.nan,
                "verdict": verdict,
            }
        )
    table = pd.DataFrame(out)
    table.attrs["compared"] = ("g" if use_g else "d") + f" ({definition})"
    return table


def _hlm_slopes(long: pd.DataFrame, clients: pd.Index, max_clients: int, seed):
    """Empirical-Bayes slopes of ``value ~ session + (1 + session | client)``.

    Returns (eb_slope, posterior_sd, n_scores, description) aligned with ``clients``.
    The variance components come from :func:`alliance.models.lmm` fitted (REML) on all
    clients with 3 or more scores, or on a random subsample of ``max_clients`` of them;
    the posterior of every client's slope then follows in closed form:
    ``Cov = (Z'Z / s2 + T^-1)^-1``, ``b = Cov Z'(y - X g) / s2``, slope ``g1 + b1``, SD
    ``sqrt(Cov[1, 1])`` (conditional on the fixed effects, as lme4's ``condVar``).
    """
    from alliance.models.lmm import lmm

    obs = long[long["value"].notna()]
    codes = pd.Index(clients).get_indexer(obs["client"])
    n = np.bincount(codes, minlength=len(clients))
    ok = n[codes] >= 3
    fit_rows = obs[ok]
    eligible = np.flatnonzero(n >= 3)
    if len(eligible) < 3:
        raise ValueError("method='HLM' needs at least 3 clients with 3 or more scores")
    if len(eligible) > max_clients:
        rng = np.random.default_rng(seed)
        pick = clients[rng.choice(eligible, size=max_clients, replace=False)]
        fit_rows = fit_rows[fit_rows["client"].isin(pick)]
        sub = f"variance components from a random subsample of {max_clients} clients"
    else:
        sub = f"variance components from all {len(eligible)} clients with 3+ scores"
    frame = pd.DataFrame(
        {
            "y": fit_rows["value"].to_numpy(float),
            "t": fit_rows["session"].to_numpy(float),
            "client": fit_rows["client"].astype(str).to_numpy(),
        }
    )
    res = lmm("y ~ t + (1 + t | client)", frame)
    g = res.params.set_index("term")["estimate"]
    g0, g1 = float(g.iloc[0]), float(g["t"])
    tau = np.asarray(res.covariances["client"], dtype=float)
    s2 = float(res.sigma) ** 2
    ti = np.linalg.inv(tau)
    t = obs["session"].to_numpy(float)
    r = obs["value"].to_numpy(float) - g0 - g1 * t
    k = len(clients)
    s_t = np.bincount(codes, weights=t, minlength=k)
    s_tt = np.bincount(codes, weights=t * t, minlength=k)
    s_r = np.bincount(codes, weights=r, minlength=k)
    s_tr = np.bincount(codes, weights=t * r, minlength=k)
    a = n / s2 + ti[0, 0]
    b = s_t / s2 + ti[0, 1]
    d = s_tt / s2 + ti[1, 1]
    det = a * d - b * b
    c11 = a / det  # posterior variance of the slope deviation
    b1 = (-b * s_r + a * s_tr) / det / s2
    slope = g1 + b1
    sd = np.sqrt(c11)
    slope[n < 3] = np.nan
    sd[n < 3] = np.nan
    desc = (
        f"multilevel empirical-Bayes slope (lmm REML y ~ session + (1 + session | client); "
        f"fixed slope {g1:.4g}, {sub})"
    )
    return slope, sd, n, desc
