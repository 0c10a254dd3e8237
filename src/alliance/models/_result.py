"""The results object shared by the alliance -> outcome models.

Every model returns a :class:`ModelResult`: a tidy ``params`` table (raw and
standardized effects), variance components, fit statistics, the rows left out and
why, the missing-data policy used, and the paper the model follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ModelResult", "PARAM_COLUMNS", "EXCLUDED_COLUMNS", "apa_table", "exclusion_log"]

#: Columns of ``ModelResult.params``, in order (``std_estimate`` may be missing).
PARAM_COLUMNS = [
    "term",
    "estimate",
    "se",
    "df",
    "statistic",
    "p",
    "ci_low",
    "ci_high",
    "std_estimate",
]
#: Columns of ``ModelResult.excluded``.
EXCLUDED_COLUMNS = ["reason", "column", "n_rows", "n_clients"]


def exclusion_log(rows: list[tuple[str, str | None, int, int]] | None = None) -> pd.DataFrame:
    """An exclusion table from (reason, column, n_rows, n_clients) tuples."""
    return pd.DataFrame(rows or [], columns=EXCLUDED_COLUMNS).astype(
        {"n_rows": "int64", "n_clients": "int64"}
    )


@dataclass
class ModelResult:
    """What an alliance model returns.

    Attributes
    ----------
    model : str
        Short name, e.g. ``"early alliance -> outcome"``.
    params : pandas.DataFrame
        term, estimate, se, df, statistic, p, ci_low, ci_high, std_estimate.
    variance_components : pandas.DataFrame
        group, term, variance / covariance, sd / correlation (empty when none).
    loglik : float
        Log-likelihood of the fitted model (NaN when not likelihood-based).
    nobs : int
        Rows (or clients) used.
    excluded : pandas.DataFrame
        reason, column, n_rows, n_clients: everything left out and why.
    missing_data : str
        The missing-data policy used, in words.
    citation : str
        The paper the model follows.
    notes : list of str
        Warnings that belong with the result (e.g. Nickell bias of a lagged outcome).
    extra : dict
        Model-specific tables (simple slopes, indirect effects, ICCs, fits).
    """

    model: str
    params: pd.DataFrame
    variance_components: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: float = float("nan")
    nobs: int = 0
    excluded: pd.DataFrame = field(default_factory=exclusion_log)
    missing_data: str = ""
    citation: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = self.params.copy()
        for col in PARAM_COLUMNS:
            if col not in params.columns:
                params[col] = np.nan
        self.params = params[PARAM_COLUMNS + [c for c in params.columns if c not in PARAM_COLUMNS]]

    def to_frame(self) -> pd.DataFrame:
        """The parameter table with the model's name as its first column."""
        return self.params.assign(model=self.model)[["model", *self.params.columns]]

    def summary(self) -> str:
        """A plain-text summary: estimates, variance components, exclusions, notes."""
        lines = [f"{self.model}", f"  follows: {self.citation}" if self.citation else ""]
        lines.append(f"  observations: {self.nobs}; log-likelihood: {self.loglik:.3f}")
        lines.append(self.params.round(4).to_string(index=False))
        if len(self.variance_components):
            lines += ["", "variance components:", self.variance_components.round(4).to_string()]
        if len(self.excluded):
            lines += ["", "excluded:", self.excluded.to_string(index=False)]
        if self.missing_data:
            lines += ["", f"missing data: {self.missing_data}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(line for line in lines if line is not None)

    def __str__(self) -> str:
        return self.summary()

    def apa_table(self, digits: int = 2) -> pd.DataFrame:
        """The parameters as an APA-style table (see :func:`apa_table`)."""
        return apa_table(self.params, digits=digits)


def _p_text(p: float) -> str:
    if pd.isna(p):
        return ""
    return "< .001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def apa_table(params: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Format a parameter table the APA way: b, SE, 95% CI in brackets, beta, p without 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.models._result import apa_table
    >>> t = pd.DataFrame({"term": ["alliance"], "estimate": [-2.013], "se": [0.41],
    ...                   "ci_low": [-2.82], "ci_high": [-1.21], "p": [0.00002],
    ...                   "std_estimate": [-0.21]})
    >>> apa_table(t).iloc[0].tolist()
    ['alliance', '-2.01', '0.41', '[-2.82, -1.21]', '-0.21', '< .001']
    """
    fmt = f"{{:.{digits}f}}".format
    out = pd.DataFrame({"Term": params["term"]})
    out["b"] = params["estimate"].map(fmt)
    out["SE"] = params["se"].map(fmt)
    out["95% CI"] = [
        f"[{fmt(lo)}, {fmt(hi)}]"
        for lo, hi in zip(params["ci_low"], params["ci_high"], strict=True)
    ]
    std = (
        params["std_estimate"]
        if "std_estimate" in params
        else pd.Series(np.nan, index=params.index)
    )
    out["β"] = std.map(lambda v: "" if pd.isna(v) else fmt(v))
    out["p"] = params["p"].map(_p_text)
    return out.reset_index(drop=True)
