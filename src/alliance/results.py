"""The results contract: the base class every analysis returns.

Every analysis of the toolkit (the mixed models, the alliance -> outcome models, the panel
SEMs, dropout, meta-analysis, trim-and-fill) returns a subclass of :class:`Result`, in the
spirit of statsmodels' results classes. What every result has:

``params``
    One row per estimated term with at least the columns :data:`PARAM_COLUMNS`
    (``term, estimate, se, df, statistic, p, ci_low, ci_high``) in that order; NaN where a
    column does not apply (e.g. ``df`` of a z test is inf, of a Wald test of a GLM NaN).
    Other columns (``std_estimate``, ...) may follow.
``excluded``
    The exclusion log, one schema everywhere (:data:`EXCLUDED_COLUMNS`: ``reason, column,
    n_rows, n_clients``): every row left out and why. ``n_clients`` counts the clients who
    leave the analysis because of the reason (``<NA>`` where the analysis has no clients,
    e.g. a meta-analysis of published studies without their sample sizes).
``nobs`` and ``n``
    The number of observations the estimates rest on, and N by level (a Series: clients,
    sessions, therapists, studies, ... where known).
``citation`` and ``notes``
    The paper the method follows; warnings that belong with the numbers.
``variance_components``, ``loglik``, ``aic``, ``bic``, ``converged``, ``singular``, ``fit_measures``
    Where they apply (None or NaN otherwise).

and the methods :meth:`Result.summary`, :meth:`Result.to_frame`, :meth:`Result.apa_table`
(an :class:`~alliance.tables.ApaTable`) and :meth:`Result.plot` (a coefficient plot).
Model-specific results are typed attributes of each subclass, documented there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.tables import ApaTable, format_p

__all__ = [
    "EXCLUDED_COLUMNS",
    "PARAM_COLUMNS",
    "Result",
    "apa_table",
    "exclusion_log",
    "level_name",
    "n_by_level",
    "tidy_params",
]

#: Columns every ``Result.params`` starts with, in order.
PARAM_COLUMNS = ["term", "estimate", "se", "df", "statistic", "p", "ci_low", "ci_high"]
#: Columns of every ``Result.excluded``.
EXCLUDED_COLUMNS = ["reason", "column", "n_rows", "n_clients"]

_LEVEL_NAMES = {"client": "clients", "therapist": "therapists", "site": "sites", "study": "studies"}


def exclusion_log(
    rows: list[tuple[str, str | None, int, int | None]] | None = None,
) -> pd.DataFrame:
    """An exclusion table from ``(reason, column, n_rows, n_clients)`` tuples.

    ``n_rows`` is an integer; ``n_clients`` a nullable integer (``None`` becomes ``<NA>``:
    not known, e.g. for rows of an analysis without clients).

    Examples
    --------
    >>> from alliance.results import exclusion_log
    >>> exclusion_log([("missing phq9", "phq9", 4, 1)]).columns.tolist()
    ['reason', 'column', 'n_rows', 'n_clients']
    """
    out = pd.DataFrame(rows or [], columns=EXCLUDED_COLUMNS)
    out["reason"] = out["reason"].astype(object)
    out["column"] = out["column"].astype(object)
    out["n_rows"] = out["n_rows"].astype("int64")
    out["n_clients"] = pd.array(
        [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
            for v in out["n_clients"]
        ],
        dtype="Int64",
    )
    return out


def tidy_params(params: pd.DataFrame) -> pd.DataFrame:
    """``params`` with the :data:`PARAM_COLUMNS` first, in order (NaN where missing).

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.results import tidy_params
    >>> tidy_params(pd.DataFrame({"term": ["x"], "estimate": [1.0], "z": [2.0]})).columns.tolist()
    ['term', 'estimate', 'se', 'df', 'statistic', 'p', 'ci_low', 'ci_high', 'z']
    """
    out = params.copy()
    for col in PARAM_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    rest = [c for c in out.columns if c not in PARAM_COLUMNS]
    return out[PARAM_COLUMNS + rest].reset_index(drop=True)


def _p_text(p: float) -> str:
    return "" if pd.isna(p) else format_p(float(p))


def _num(fmt, value) -> str:
    return "" if pd.isna(value) else fmt(value)


def apa_table(params: pd.DataFrame, digits: int = 2, *, level: float = 0.95) -> pd.DataFrame:
    """Format a parameter table the APA way: b, SE, 95% CI in brackets, beta, p without 0.

    Returns the body (a DataFrame of strings); :meth:`Result.apa_table` wraps it in an
    :class:`~alliance.tables.ApaTable` with a title and a note. ``level`` names the CI
    column (``ci_low``/``ci_high`` are taken as they are).

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.results import apa_table
    >>> t = pd.DataFrame({"term": ["alliance"], "estimate": [-2.013], "se": [0.41],
    ...                   "ci_low": [-2.82], "ci_high": [-1.21], "p": [0.00002],
    ...                   "std_estimate": [-0.21]})
    >>> apa_table(t).iloc[0].tolist()
    ['alliance', '-2.01', '0.41', '[-2.82, -1.21]', '-0.21', '< .001']
    """
    fmt = f"{{:.{digits}f}}".format
    out = pd.DataFrame({"Term": params["term"].astype(str)})
    out["b"] = params["estimate"].map(lambda v: _num(fmt, v))
    out["SE"] = params["se"].map(lambda v: _num(fmt, v))
    out[f"{100 * level:g}% CI"] = [
        "" if pd.isna(lo) or pd.isna(hi) else f"[{fmt(lo)}, {fmt(hi)}]"
        for lo, hi in zip(params["ci_low"], params["ci_high"], strict=True)
    ]
    std = (
        params["std_estimate"]
        if "std_estimate" in params
        else pd.Series(np.nan, index=params.index)
    )
    out["β"] = std.map(lambda v: _num(fmt, v))
    out["p"] = params["p"].map(_p_text)
    return out.reset_index(drop=True)


class Result:
    """Base class of every result the toolkit returns.

    Subclasses set the contract's attributes (as dataclass fields, properties or in
    ``__init__``); the defaults here are what an attribute that does not apply holds.

    Attributes
    ----------
    model : str
        A short name of the analysis, e.g. ``"early alliance -> outcome"``.
    params : pandas.DataFrame
        ``term, estimate, se, df, statistic, p, ci_low, ci_high`` in that order, then any
        other columns (``std_estimate``, ...).
    excluded : pandas.DataFrame
        ``reason, column, n_rows, n_clients``: everything left out and why.
    nobs : int
        Observations the estimates rest on (rows, clients or effects; see the subclass).
    n : pandas.Series
        N by level (clients, sessions, therapists, studies, effects, ... where known).
    citation : str
        The paper the method follows.
    notes : list of str
        Warnings that belong with the result.
    variance_components : pandas.DataFrame or None
        Random-effect (co)variances where the model has them.
    loglik, aic, bic : float
        Likelihood and information criteria (NaN when the method is not likelihood-based).
    converged, singular : bool or None
        Optimizer status and boundary fit (None when not applicable).
    fit_measures : pandas.Series or None
        Model fit statistics (e.g. number of parameters, chi-square, RMSEA) where defined.

    Examples
    --------
    >>> import alliance
    >>> from alliance.results import PARAM_COLUMNS, Result
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.early_alliance(study, alliance="wai_sr", outcome="phq9")
    >>> isinstance(fit, Result), fit.params.columns[:8].tolist() == PARAM_COLUMNS
    (True, True)
    >>> type(fit.apa_table()).__name__
    'ApaTable'
    """

    # Defaults of the optional contract attributes, served by ``__getattr__`` only when a
    # subclass does not set them (class attributes here would become dataclass defaults).
    _DEFAULTS: dict[str, Any] = {
        "model": "",
        "citation": "",
        "notes": (),
        "variance_components": None,
        "loglik": math.nan,
        "aic": math.nan,
        "bic": math.nan,
        "converged": None,
        "singular": None,
        "fit_measures": None,
    }

    def __getattr__(self, name: str):
        defaults = type(self)._DEFAULTS
        if name in defaults:
            value = defaults[name]
            return list(value) if isinstance(value, tuple) else value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _n_by_level(self) -> dict[str, int]:
        """N by level; subclasses say what they know."""
        return {}

    @property
    def n(self) -> pd.Series:
        """N by level (clients, sessions, therapists, ...), as integers."""
        counts = {k: int(v) for k, v in self._n_by_level().items() if v is not None}
        return pd.Series(counts, name="n", dtype="int64")

    # ---- the shared methods
    def _title(self) -> str:
        return self.model or type(self).__name__

    def to_frame(self) -> pd.DataFrame:
        """The parameter table with the analysis' name as its first column."""
        params = self.params
        return params.assign(model=self._title())[["model", *params.columns]]

    def summary(self) -> str:
        """A plain-text summary: estimates, variance components, fit, exclusions, notes."""
        lines = [self._title()]
        if self.citation:
            lines.append(f"  follows: {self.citation}")
        counts = ", ".join(f"{k} {v}" for k, v in self.n.items())
        line = f"  observations: {self.nobs}" + (f" ({counts})" if counts else "")
        if not pd.isna(self.loglik):
            line += f"; log-likelihood: {self.loglik:.3f}"
        lines.append(line)
        lines += ["", self.params.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        vc = self.variance_components
        if vc is not None and len(vc):
            lines += ["", "variance components:"]
            lines.append(vc.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if self.fit_measures is not None and len(self.fit_measures):
            lines += [
                "",
                "fit: " + ", ".join(f"{k} {_short(v)}" for k, v in self.fit_measures.items()),
            ]
        if len(self.excluded):
            lines += ["", "excluded:", self.excluded.to_string(index=False)]
        missing = getattr(self, "missing_data", "")
        if missing:
            lines += ["", f"missing data: {missing}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _apa_params(self) -> pd.DataFrame:
        """The rows :meth:`apa_table` and :meth:`plot` show (all of ``params`` by default)."""
        return self.params

    def _apa_note(self) -> str:
        parts = []
        counts = ", ".join(f"{k} = {v}" for k, v in self.n.items())
        parts.append(f"N = {self.nobs}" + (f" ({counts})" if counts else "") + ".")
        if len(self.excluded):
            rows = int(self.excluded["n_rows"].sum())
            parts.append(
                f"Excluded: {rows} rows ("
                + "; ".join(f"{r.reason}: {r.n_rows}" for r in self.excluded.itertuples())
                + ")."
            )
        params = self._apa_params()
        fit = []
        if not pd.isna(self.loglik):
            fit.append(f"log-likelihood = {self.loglik:.2f}")
        if not pd.isna(self.aic):
            fit.append(f"AIC = {self.aic:.2f}")
        if not pd.isna(self.bic):
            fit.append(f"BIC = {self.bic:.2f}")
        if fit:
            parts.append("Fit: " + ", ".join(fit) + ".")
        abbr = ["b = unstandardized estimate", "SE = standard error", "CI = confidence interval"]
        if "std_estimate" in params and params["std_estimate"].notna().any():
            abbr.append("β = standardized estimate")
        if self._random_rows():
            abbr.append("random effects: variances (σ²) and correlations (r) in the b column")
        parts.append("; ".join(abbr) + ".")
        return " ".join(parts)

    def _random_rows(self, digits: int = 2) -> list[tuple[str, str]]:
        """``(label, value)`` of each random-effect variance and correlation."""
        vc = self.variance_components
        if vc is None or not len(vc) or not {"group", "vcov"} <= set(vc.columns):
            return []
        rows = []
        for rec in vc.to_dict("records"):
            group = str(rec["group"])
            term = rec.get("term")
            term2 = rec.get("term2")
            has2 = _given(term2)
            has1 = _given(term)
            if has2:
                r = rec.get("sdcor")
                if r is None or pd.isna(r):
                    continue
                text = f"{r:.{digits}f}".replace("0.", ".", 1)
                rows.append((f"r {group}: {term}, {term2}", text))
            elif not pd.isna(rec["vcov"]):
                label = "σ² residual" if group == "Residual" else f"σ² {group}"
                if has1 and group != "Residual":
                    label += f" ({term})"
                rows.append((label, f"{rec['vcov']:.{digits}f}"))
        return rows

    def apa_table(self, digits: int = 2, *, title: str | None = None, number: int | None = None):
        """The estimates as an APA table (b, SE, 95% CI, β, p) with a note (N, exclusions).

        Parameters
        ----------
        digits : int
            Decimals of estimates, SEs and CIs (p values: three, ``< .001``).
        title : str, optional
            The table's title; default the analysis' name.
        number : int, optional
            The table's number (the report numbers tables when None).

        Returns
        -------
        alliance.tables.ApaTable
            Renders in Jupyter; ``.to_frame()``, ``.to_html()``, ``.to_latex()``,
            ``.to_docx(path)``. Models with random effects list the fixed effects, then
            (under *Random effects*) each variance (σ²) and correlation (r) in the b
            column; the note gives N by level, exclusions and log-likelihood/AIC/BIC.

        Examples
        --------
        >>> import alliance
        >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
        ...                           alliance.datasets.load_dataset("demo").sessions)
        >>> table = fit.apa_table(number=1)
        >>> table.to_frame()["Term"].tolist()[-2:]
        ['σ² client (Intercept)', 'σ² residual']
        >>> "AIC" in table.note and table.label
        'Table 1'
        """
        level = getattr(self, "level", 0.95)
        level = level if isinstance(level, float) and 0 < level < 1 else 0.95
        body = apa_table(self._apa_params(), digits=digits, level=level)
        sections: list[tuple[int, str]] = []
        random = self._random_rows(digits)
        if random:
            sections = [(0, "Fixed effects"), (len(body), "Random effects")]
            extra = pd.DataFrame("", index=range(len(random)), columns=body.columns)
            extra["Term"] = [label for label, _ in random]
            extra["b"] = [value for _, value in random]
            body = pd.concat([body, extra], ignore_index=True)
        return ApaTable(
            body=body,
            title=self._title() if title is None else title,
            number=number,
            note=self._apa_note(),
            sections=tuple(sections),
        )

    def plot(self, ax=None, *, intercept: bool = False, standardized: bool = False):
        """Coefficient plot: each term's estimate with its confidence interval.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw (a new figure when None).
        intercept : bool
            Include the intercept (always shown when it is the only term, e.g. a pooled
            estimate).
        standardized : bool
            Plot ``std_estimate`` (no intervals) instead of the raw estimates.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        params = self._apa_params()
        low = params["term"].astype(str).str.lower()
        is_intercept = low.isin(["intercept", "(intercept)"]).to_numpy()
        if not intercept and not is_intercept.all():
            params = params[~is_intercept]
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 0.45 * max(len(params), 2) + 1.0))
        ypos = np.arange(len(params))[::-1]
        if standardized:
            if "std_estimate" not in params:
                raise ValueError(
                    f"{type(self).__name__} has no standardized estimates; use "
                    "plot(standardized=False)"
                )
            ax.plot(params["std_estimate"].to_numpy(float), ypos, "o", color="C0")
        else:
            est = params["estimate"].to_numpy(float)
            lo = params["ci_low"].to_numpy(float)
            hi = params["ci_high"].to_numpy(float)
            err = np.vstack([est - lo, hi - est])
            # clipped at 0: an interval bound equal to the estimate can fall a rounding
            # error inside it (a Wilson interval at a proportion of 1), which errorbar refuses
            err = np.clip(np.where(np.isfinite(err), err, 0.0), 0.0, None)
            ax.errorbar(est, ypos, xerr=err, fmt="o", capsize=3)
        ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(ypos, params["term"].astype(str).tolist())
        ax.set_xlabel("standardized estimate" if standardized else "estimate (95% CI)")
        ax.set_title(self._title())
        return ax


def _given(value: Any) -> bool:
    """A label that is there (not None, NaN or empty)."""
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and bool(str(value).strip())
    )


def _short(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def n_by_level(frame: pd.DataFrame, **columns: str | None) -> dict[str, int]:
    """Distinct values of each named column of ``frame`` (``clients=..., therapists=...``).

    ``sessions`` counts rows (client x session). Columns that are None or absent are skipped.
    """
    out: dict[str, int] = {}
    for level, col in columns.items():
        if col is None or col not in frame.columns:
            continue
        out[level] = int(len(frame)) if level == "sessions" else int(frame[col].nunique())
    return out


def level_name(group: str) -> str:
    """The plural level name of a grouping column (``client`` -> ``clients``)."""
    return _LEVEL_NAMES.get(group, group)
