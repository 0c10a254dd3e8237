"""The results object shared by the alliance -> outcome models.

Every model returns a :class:`ModelResult` (an :class:`alliance.results.Result`): a tidy
``params`` table (raw and standardized effects), variance components, fit statistics, the
rows left out and why, the missing-data policy used, and the paper the model follows. Each
model has its own small subclass with typed attributes (simple slopes, indirect effects,
ICCs, the underlying mixed-model fit), defined beside the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from alliance.results import EXCLUDED_COLUMNS, PARAM_COLUMNS, Result, exclusion_log, tidy_params

__all__ = ["ModelResult", "base_fields", "engine_fits"]


@dataclass
class ModelResult(Result):
    """What an alliance model returns (the fields every model has).

    Attributes
    ----------
    model : str
        Short name, e.g. ``"early alliance -> outcome"``.
    params : pandas.DataFrame
        term, estimate, se, df, statistic, p, ci_low, ci_high, std_estimate.
    variance_components : pandas.DataFrame
        group, term, variance / covariance, sd / correlation (empty when none).
    loglik, aic, bic : float
        Log-likelihood and information criteria of the fitted model (NaN when not
        likelihood-based or not comparable).
    nobs : int
        Rows (or clients) used.
    n_by_level : dict of str to int
        N by level (clients, sessions, therapists) of the data used; ``.n`` as a Series.
    excluded : pandas.DataFrame
        reason, column, n_rows, n_clients: everything left out and why.
    missing_data : str
        The missing-data policy used, in words.
    citation : str
        The paper the model follows.
    notes : list of str
        Warnings that belong with the result (e.g. Nickell bias of a lagged outcome).
    standardization : str
        How ``std_estimate`` was computed, in words.
    converged, singular : bool or None
        Optimizer status and boundary fit of the model (None when not applicable).
    fit_measures : pandas.Series or None
        Model fit statistics where defined (the panel SEMs).
    """

    model: str
    params: pd.DataFrame
    variance_components: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: float = math.nan
    nobs: int = 0
    excluded: pd.DataFrame = field(default_factory=exclusion_log)
    missing_data: str = ""
    citation: str = ""
    notes: list[str] = field(default_factory=list)
    standardization: str = ""
    n_by_level: dict[str, int] = field(default_factory=dict)
    aic: float = math.nan
    bic: float = math.nan
    converged: bool | None = None
    singular: bool | None = None
    fit_measures: pd.Series | None = None

    def __post_init__(self) -> None:
        params = tidy_params(self.params)
        if "std_estimate" not in params.columns:
            params["std_estimate"] = math.nan
        rest = [c for c in params.columns if c not in PARAM_COLUMNS]
        rest = ["std_estimate", *[c for c in rest if c != "std_estimate"]]
        self.params = params[PARAM_COLUMNS + rest]
        missing = [c for c in EXCLUDED_COLUMNS if c not in self.excluded.columns]
        if missing:
            raise ValueError(
                f"excluded must have the columns {EXCLUDED_COLUMNS}; missing {missing}"
            )
        rows = self.excluded[EXCLUDED_COLUMNS].itertuples(index=False, name=None)
        self.excluded = exclusion_log([(r, c, n, None if pd.isna(k) else k) for r, c, n, k in rows])

    def _n_by_level(self) -> dict[str, int]:
        return dict(self.n_by_level)

    @staticmethod
    def _status_of(fit) -> dict:
        """aic, bic, converged, singular of an engine fit (an lmm or a statsmodels OLS)."""
        return {
            "aic": float(getattr(fit, "aic", math.nan)),
            "bic": float(getattr(fit, "bic", math.nan)),
            "converged": getattr(fit, "converged", None),
            "singular": getattr(fit, "singular", None),
        }


def base_fields(result: ModelResult, **changes) -> dict[str, Any]:
    """The :class:`ModelResult` fields of ``result`` (to build a subclass from it)."""
    out = {f.name: getattr(result, f.name) for f in fields(ModelResult)}
    out.update(changes)
    return out


def engine_fits(fit) -> dict[str, Any]:
    """``mixed_model`` (an :class:`~alliance.models.lmm.LmmResult`) or ``ols`` (a statsmodels
    OLS result) from a client-level fit, plus its aic, bic, converged and singular."""
    from alliance.models.lmm import LmmResult

    mixed = isinstance(fit, LmmResult)
    return {
        "mixed_model": fit if mixed else None,
        "ols": None if mixed else fit,
        **ModelResult._status_of(fit),
    }
