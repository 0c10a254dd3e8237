"""Agreement between coders: Cohen's and Fleiss' kappa, Krippendorff's alpha.

:func:`cohen_kappa` follows ``psych::cohen.kappa``; :func:`fleiss_kappa` Fleiss (1971) with
the null-hypothesis SE of Fleiss et al. (1979); :func:`krippendorff_alpha` Krippendorff
(2004), via the ``krippendorff`` package; :func:`agreement` gives all three for a set of
coders.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from alliance._checks import renamed, require_columns, require_frame
from alliance.reliability._common import check_level

__all__ = ["agreement", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha"]


def _coder_block(
    data: pd.DataFrame, raters: Sequence[str] | None, minimum: int = 2
) -> pd.DataFrame:
    frame = require_frame(data)
    if raters is None:
        raters = list(frame.columns)
    raters = list(raters)
    if len(raters) < minimum:
        raise ValueError(f"need at least {minimum} coder columns, got {raters!r}")
    require_columns(frame, **{f"coder {i}": c for i, c in enumerate(raters, start=1)})
    return frame[raters]


def _weight_matrix(weights: str | np.ndarray | None, q: int) -> np.ndarray:
    if weights is None or (isinstance(weights, str) and weights == "none"):
        return np.eye(q)
    if isinstance(weights, str):
        dist = np.abs(np.subtract.outer(np.arange(q), np.arange(q))) / max(q - 1, 1)
        if weights == "quadratic":
            return 1 - dist**2
        if weights == "linear":
            return 1 - dist
        raise ValueError(
            f"weights must be 'quadratic', 'linear', None or a k x k matrix, got {weights!r}"
        )
    w = np.asarray(weights, dtype=float)
    if w.shape != (q, q):
        raise ValueError(f"a weight matrix must be {q} x {q} for {q} categories, got {w.shape}")
    return w


def cohen_kappa(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    weights: str | np.ndarray | None = "quadratic",
    levels: Sequence[object] | None = None,
    level: float | None = None,
    ci: float | None = None,
) -> pd.DataFrame:
    """Cohen's kappa and weighted kappa for two coders, as ``psych::cohen.kappa``.

    Asymptotic variances of Fleiss, Cohen & Everitt (1969); units missing a code are
    left out and counted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per coded unit (e.g. session segment), one column per coder.
    raters : list of str, optional
        The two coder columns; by default the first two columns.
    weights : {"quadratic", "linear", None} or array, default "quadratic"
        Agreement weights for the weighted kappa (psych's default is quadratic:
        ``1 - (i - j)^2 / (q - 1)^2``). Only meaningful for ordered categories.
    levels : list, optional
        The categories in order; by default the sorted codes seen.
    level : float, default 0.95
        Confidence level (formerly ``ci=``, still accepted with a warning).

    Returns
    -------
    pandas.DataFrame
        Rows "unweighted" and "weighted": statistic, estimate, se, ci_low, ci_high,
        n, n_dropped, observed agreement (``p_observed``) and chance (``p_chance``).

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"coder_a": ["none", "withdrawal", "none", "confrontation"],
    ...                       "coder_b": ["none", "withdrawal", "withdrawal", "confrontation"]})
    >>> out = alliance.reliability.cohen_kappa(codes, weights=None)
    >>> round(float(out.loc[0, "estimate"]), 3)
    0.636
    """
    level = check_level("cohen_kappa", level, ci)
    block = _coder_block(data, raters)
    if raters is None:
        block = block.iloc[:, :2]
    if block.shape[1] != 2:
        raise ValueError("cohen_kappa takes two coders; use fleiss_kappa or agreement for more")
    complete = block.notna().all(axis=1)
    block = block[complete]
    if levels is None:
        levels = sorted(pd.unique(block.to_numpy().ravel()).tolist())
    levels = list(levels)
    unknown = set(block.to_numpy().ravel().tolist()) - set(levels)
    if unknown:
        raise ValueError(f"codes {sorted(map(str, unknown))} are not in levels=")
    q = len(levels)
    a = pd.Categorical(block.iloc[:, 0], categories=levels).codes
    b = pd.Categorical(block.iloc[:, 1], categories=levels).codes
    n = len(a)
    if n == 0 or q < 2:
        raise ValueError("cohen_kappa needs coded units with at least 2 categories in use")
    x = np.zeros((q, q))
    np.add.at(x, (a, b), 1.0)
    x /= n
    rs, cs = x.sum(axis=1), x.sum(axis=0)
    po, pc = np.trace(x), rs @ cs
    kappa = (po - pc) / (1 - pc)
    term = (1 - pc) - (rs + cs) * (1 - po)
    off = np.add.outer(cs, rs) ** 2
    var_k = (
        np.sum(np.diag(x) * term**2)
        + (1 - po) ** 2 * (np.sum(x * off) - np.trace(x * off))
        - (po * pc - 2 * pc + po) ** 2
    ) / (n * (1 - pc) ** 4)
    w = _weight_matrix(weights, q)
    wpo, wpc = np.sum(w * x), np.sum(w * np.outer(rs, cs))
    wkappa = (wpo - wpc) / (1 - wpc)
    w_row = w @ cs  # mean weight of row category i over the column margin
    w_col = rs @ w  # mean weight of column category j over the row margin
    var_w = (
        np.sum(x * (w * (1 - wpc) - np.add.outer(w_row, w_col) * (1 - wpo)) ** 2)
        - (wpo * wpc - 2 * wpc + wpo) ** 2
    ) / (n * (1 - wpc) ** 4)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for label, est, var in (("unweighted", kappa, var_k), ("weighted", wkappa, var_w)):
        se = np.sqrt(max(var, 0.0))
        rows.append(
            {
                "statistic": label,
                "estimate": est,
                "se": se,
                "ci_low": max(est - z * se, -1.0),
                "ci_high": min(est + z * se, 1.0),
                "n": n,
                "n_dropped": int((~complete).sum()),
                "p_observed": po if label == "unweighted" else wpo,
                "p_chance": pc if label == "unweighted" else wpc,
            }
        )
    return pd.DataFrame(rows)


def fleiss_kappa(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    level: float | None = None,
    ci: float | None = None,
) -> pd.DataFrame:
    """Fleiss' kappa for three or more coders of nominal categories (Fleiss 1971).

    The standard error is the one under the null hypothesis of chance agreement (Fleiss,
    Nee & Landis 1979), used for the z test; no confidence interval is given because no
    closed-form non-null variance exists. Units missing a code are left out and counted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit, one column per coder.
    raters : list of str, optional
        Coder columns; by default all columns.
    level : float, default 0.95
        Unused for the estimate; kept for a uniform signature.

    Returns
    -------
    pandas.DataFrame
        One row: statistic, estimate, se (under H0), z, p, n, n_raters, n_dropped,
        p_observed, p_chance.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": [0, 1, 2, 0, 0, 1], "b": [0, 1, 2, 0, 1, 1],
    ...                       "c": [0, 1, 1, 0, 0, 1]})
    >>> round(float(alliance.reliability.fleiss_kappa(codes)["estimate"].iloc[0]), 3)
    0.625
    """
    level = check_level("fleiss_kappa", level, ci)
    block = _coder_block(data, raters)
    complete = block.notna().all(axis=1)
    block = block[complete]
    levels = sorted(pd.unique(block.to_numpy().ravel()).tolist())
    n_units, n_raters = block.shape
    if n_units < 2 or len(levels) < 2:
        raise ValueError("fleiss_kappa needs at least 2 complete units and 2 categories in use")
    codes = np.column_stack(
        [pd.Categorical(block[c], categories=levels).codes for c in block.columns]
    )
    counts = np.zeros((n_units, len(levels)))
    np.add.at(counts, (np.repeat(np.arange(n_units), n_raters), codes.ravel()), 1.0)
    p_j = counts.sum(axis=0) / (n_units * n_raters)
    p_i = ((counts**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1))
    po, pe = p_i.mean(), (p_j**2).sum()
    kappa = (po - pe) / (1 - pe)
    pq = p_j * (1 - p_j)
    se0 = (
        np.sqrt(2)
        / (pq.sum() * np.sqrt(n_units * n_raters * (n_raters - 1)))
        * np.sqrt(pq.sum() ** 2 - np.sum(pq * (1 - 2 * p_j)))
    )
    z = kappa / se0
    return pd.DataFrame(
        [
            {
                "statistic": "fleiss",
                "estimate": kappa,
                "se": se0,
                "z": z,
                "p": 2 * stats.norm.sf(abs(z)),
                "n": n_units,
                "n_raters": n_raters,
                "n_dropped": int((~complete).sum()),
                "p_observed": po,
                "p_chance": pe,
            }
        ]
    )


_MEASUREMENT = ("nominal", "ordinal", "interval", "ratio")


def _measurement(measurement: str | None, level: str | None) -> str:
    """``measurement=``, or the same given by its older name ``level=``."""
    if measurement is not None and level is not None and measurement != level:
        raise ValueError(
            f"measurement={measurement!r} and level={level!r} disagree; level= is the older "
            "name of measurement= (level= means a confidence level elsewhere): pass one"
        )
    chosen = measurement if measurement is not None else level
    chosen = "nominal" if chosen is None else chosen
    if chosen not in _MEASUREMENT:
        raise ValueError(f"measurement must be one of {', '.join(_MEASUREMENT)}, got {chosen!r}")
    return chosen


def krippendorff_alpha(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    measurement: str | None = None,
    n_boot: int = 0,
    level: float | None = None,
    seed: int | np.random.Generator | None = None,
    ci: float | None = None,
) -> pd.DataFrame:
    """Krippendorff's alpha for any number of coders, with missing codes allowed.

    Computed with the ``krippendorff`` package; optional percentile bootstrap interval
    over units.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit, one column per coder; missing codes are allowed.
    raters : list of str, optional
        Coder columns; by default all columns.
    measurement : {"nominal", "ordinal", "interval", "ratio"}, default "nominal"
        Level of measurement.
    n_boot : int, default 0
        Bootstrap resamples of units for the interval (0: no interval).
    level : float, default 0.95
        Confidence level of the bootstrap interval (formerly ``ci=``, still accepted with a
        warning). A text such as ``level="ordinal"`` is read as ``measurement=``, its
        former name, with a warning.
    seed : int or numpy.random.Generator, optional
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row: statistic, measurement (its level), estimate, ci_low, ci_high, n (units with at least
        two codes), n_raters.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": ["w", "c", "w", None], "b": ["w", "c", "c", "w"],
    ...                       "c": ["w", "c", "w", "w"]})
    >>> round(float(alliance.reliability.krippendorff_alpha(codes)["estimate"].iloc[0]), 3)
    0.643
    """
    import krippendorff

    if isinstance(level, str):  # the former name of measurement=
        measurement = renamed("krippendorff_alpha", "level", level, "measurement", measurement)
        level = None
    conf = check_level("krippendorff_alpha", level, ci)
    level = _measurement(measurement, None)
    block = _coder_block(data, raters)
    values = block.to_numpy(dtype=object)
    present = pd.notna(values)
    if level == "nominal" or not all(
        pd.api.types.is_numeric_dtype(block[c]) for c in block.columns
    ):
        if level in ("interval", "ratio"):
            raise ValueError(f"measurement={level!r} needs numeric codes")
        cats = sorted(pd.unique(values[present]).tolist(), key=str)
        lookup = {c: i for i, c in enumerate(cats)}
        numeric = np.full(values.shape, np.nan)
        numeric[present] = [lookup[v] for v in values[present]]
    else:
        numeric = block.to_numpy(dtype=float)
    usable = (~np.isnan(numeric)).sum(axis=1) >= 2
    matrix = numeric[usable]
    if len(matrix) < 2:
        raise ValueError("krippendorff_alpha needs at least 2 units coded by at least 2 coders")

    def estimate(m: np.ndarray) -> float:
        return float(krippendorff.alpha(reliability_data=m.T, level_of_measurement=level))

    est = estimate(matrix)
    low = high = np.nan
    if n_boot:
        rng = np.random.default_rng(seed)
        draws = [estimate(matrix[rng.integers(0, len(matrix), len(matrix))]) for _ in range(n_boot)]
        low, high = np.nanquantile(draws, [0.5 - conf / 2, 0.5 + conf / 2])
    return pd.DataFrame(
        [
            {
                "statistic": "krippendorff_alpha",
                "measurement": level,
                "estimate": est,
                "ci_low": low,
                "ci_high": high,
                "n": int(len(matrix)),
                "n_raters": block.shape[1],
            }
        ]
    )


def agreement(
    data: pd.DataFrame,
    raters: Sequence[str] | None = None,
    *,
    measurement: str | None = None,
    weights: str | np.ndarray | None = None,
    level: float | None = None,
    ci: float | None = None,
) -> pd.DataFrame:
    """Agreement between rupture coders: percent agreement, kappas, Krippendorff's alpha.

    With two coders: Cohen's kappa (and the weighted kappa when ``weights`` is given);
    with more: Fleiss' kappa and the mean of pairwise Cohen's kappas (as psych does).
    Krippendorff's alpha for any number of coders at the given level of ``measurement``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per coded unit, one column per coder.
    raters : list of str, optional
        Coder columns; by default all columns.
    measurement : {"nominal", "ordinal", "interval", "ratio"}, default "nominal"
        Level of measurement for Krippendorff's alpha.
    weights : {"quadratic", "linear"} or array, optional
        Add a weighted Cohen's kappa (two coders, ordered codes).
    level : float, default 0.95
        Confidence level (formerly ``ci=``, still accepted with a warning). A text such as
        ``level="ordinal"`` is read as ``measurement=``, its former name, with a warning.

    Returns
    -------
    pandas.DataFrame
        One row per statistic: statistic, estimate, se, ci_low, ci_high, p, n,
        n_raters.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> codes = pd.DataFrame({"a": ["none", "withdrawal", "none", "confrontation", "none"],
    ...                       "b": ["none", "withdrawal", "withdrawal", "confrontation", "none"]})
    >>> alliance.reliability.agreement(codes)["statistic"].tolist()
    ['percent_agreement', 'cohen_kappa', 'krippendorff_alpha']
    """
    if isinstance(level, str):  # the former name of measurement=
        measurement = renamed("agreement", "level", level, "measurement", measurement)
        level = None
    conf = check_level("agreement", level, ci)
    measurement = _measurement(measurement, None)
    block = _coder_block(data, raters)
    k = block.shape[1]
    complete = block.notna().all(axis=1)
    agree = block[complete].nunique(axis=1) == 1
    rows: list[dict[str, object]] = [
        {"statistic": "percent_agreement", "estimate": float(agree.mean()), "n": int(len(agree))}
    ]
    if k == 2:
        ck = cohen_kappa(block, weights=weights, level=conf)
        wanted = ["unweighted"] + (["weighted"] if weights is not None else [])
        for _, r in ck[ck["statistic"].isin(wanted)].iterrows():
            rows.append(
                {
                    "statistic": "cohen_kappa"
                    if r["statistic"] == "unweighted"
                    else "weighted_kappa",
                    **r[["estimate", "se", "ci_low", "ci_high", "n"]].to_dict(),
                }
            )
    else:
        fk = fleiss_kappa(block).iloc[0]
        rows.append({"statistic": "fleiss_kappa", **fk[["estimate", "se", "p", "n"]].to_dict()})
        pairs = [
            cohen_kappa(block[[a, b]], weights=None, level=conf).iloc[0]["estimate"]
            for i, a in enumerate(block.columns)
            for b in block.columns[i + 1 :]
        ]
        rows.append(
            {
                "statistic": "mean_pairwise_cohen_kappa",
                "estimate": float(np.mean(pairs)),
                "n": int(complete.sum()),
            }
        )
    ka = krippendorff_alpha(block, measurement=measurement, level=conf).iloc[0]
    rows.append({"statistic": "krippendorff_alpha", **ka[["estimate", "n"]].to_dict()})
    out = pd.DataFrame(rows)
    for col in ("se", "ci_low", "ci_high", "p"):
        if col not in out:
            out[col] = np.nan
    out["n_raters"] = k
    return out[["statistic", "estimate", "se", "ci_low", "ci_high", "p", "n", "n_raters"]]
