"""Linear mixed models for nested session data: sessions in clients in therapists in sites.

:func:`lmm` fits ``outcome ~ fixed + (1 + session | client) + (1 | therapist)`` style models
with lme4's formula syntax and lme4's profiled (RE)ML criterion, exploiting the nesting so
that one evaluation of the criterion costs O(number of clients). See ``docs/lmm.md`` for the
method and benchmarks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError
from scipy import linalg, optimize, stats
from threadpoolctl import ThreadpoolController

from alliance._checks import format_rows, require_columns, require_frame
from alliance.models import _lmm_core as core
from alliance.models._lmm_boot import bootstrap, simulate_responses
from alliance.models._lmm_core import LevelSpec, ProfiledDeviance, build_structure
from alliance.models._lmm_crossed import CrossedDeviance, build_crossed
from alliance.models._lmm_emm import MarginalMeans, marginal_means
from alliance.models._lmm_formula import RandomTerm, parse_formula
from alliance.models._lmm_kr import kenward_roger
from alliance.models._lmm_profile import Profiler, lower_factor
from alliance.models._lmm_varident import fit_ratios, row_scale, start_log_ratios
from alliance.results import Result, exclusion_log, level_name

__all__ = ["lmm", "LmmResult"]

log = logging.getLogger(__name__)

_CONTROLLER: ThreadpoolController | None = None


_BOOT_COLUMN = "_alliance_boot_y"


def _one_blas_thread():
    """Context manager pinning BLAS/OpenMP to one thread (the controller is built once)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


SINGULAR_TOL = 1e-4  # lme4's isSingular() tolerance on the diagonal of Lambda
GRADIENT_TOL = 2e-3  # lme4's check.conv.grad tolerance on the scaled gradient


# --------------------------------------------------------------------------- design


@dataclass
class _Level:
    name: str
    terms: list[str]  # column names of Z for this level
    blocks: list[list[int]]  # indices of columns that share a correlated block
    specs: list[Any]  # formulaic model specs, one per random term
    spec_columns: list[list[str]]
    keys: tuple[str, ...]
    z: np.ndarray
    codes: np.ndarray
    labels: pd.Index  # group label of each code

    @property
    def q(self) -> int:
        return self.z.shape[1]

    def template(self) -> np.ndarray:
        tmpl = -np.ones((self.q, self.q), dtype=int)
        idx = 0
        for block in self.blocks:
            for jc, c in enumerate(block):
                for r in block[jc:]:
                    tmpl[r, c] = idx
                    idx += 1
        return tmpl


def _group_codes(frame: pd.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, pd.Index]:
    if len(keys) == 1:
        codes, uniques = pd.factorize(frame[keys[0]], sort=True)
        return codes.astype(np.int64), pd.Index(uniques, name=keys[0])
    parts = [pd.factorize(frame[k], sort=True) for k in keys]
    combined = np.zeros(len(frame), dtype=np.int64)
    for c, u in parts:
        combined = combined * len(u) + c
    codes, uniq = pd.factorize(combined, sort=True)
    arrays = []
    rest = uniq.copy()
    for _c, u in reversed(parts):
        arrays.append(np.asarray(u)[rest % len(u)])
        rest = rest // len(u)
    labels = pd.MultiIndex.from_arrays(arrays[::-1], names=list(keys))
    return codes.astype(np.int64), labels


@dataclass
class _SimpleSpec:
    """Design of a random term made only of ``1``/``0`` and numeric columns (no formulaic)."""

    intercept: bool
    columns: list[str]

    @property
    def required_variables(self) -> set[str]:
        return set(self.columns)

    @property
    def names(self) -> list[str]:
        return (["Intercept"] if self.intercept else []) + self.columns

    def get_model_matrix(self, data: pd.DataFrame) -> pd.DataFrame:
        out = {"Intercept": np.ones(len(data))} if self.intercept else {}
        for c in self.columns:
            out[c] = data[c].to_numpy(dtype=float)
        return pd.DataFrame(out, index=data.index)

    @classmethod
    def parse(cls, expr: str, frame: pd.DataFrame) -> _SimpleSpec | None:
        parts = [t.strip() for t in expr.split("+")]
        intercept = "0" not in parts and "-1" not in expr.replace(" ", "")
        cols = [t for t in parts if t not in ("0", "1")]
        if not all(
            c in frame.columns
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
            for c in cols
        ) or len(set(cols)) != len(cols):
            return None
        return cls(intercept, cols)


def _float_matrix(frame: pd.DataFrame) -> np.ndarray:
    """A frame as a float matrix, column by column (much faster than ``to_numpy`` when the
    columns have mixed dtypes, as model matrices of factors and integers do)."""
    out = np.empty((len(frame), frame.shape[1]), order="F")
    for j in range(frame.shape[1]):
        out[:, j] = frame.iloc[:, j].to_numpy(dtype=float)
    return out


def _materialize(expr: str, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    try:
        return model_matrix(expr, frame)
    except FormulaicError as exc:
        raise ValueError(f"could not build the {what} from {expr!r}: {exc}") from exc


def _order_levels(levels: list[_Level]) -> tuple[list[_Level], bool]:
    """Order levels by number of groups (most first) and tell whether they are nested.

    Nested designs (every group of a level inside one group of the next) take the block
    engine of ``_lmm_core``; any other combination (crossed, partially crossed) the blocked
    sparse engine of ``_lmm_crossed``.
    """
    levels = sorted(levels, key=lambda lv: -len(lv.labels))
    for inner, outer in zip(levels[:-1], levels[1:], strict=True):
        first = np.empty(len(inner.labels), dtype=np.int64)
        first[inner.codes[::-1]] = np.arange(len(inner.codes) - 1, -1, -1)
        parent = outer.codes[first]
        if not np.array_equal(parent[inner.codes], outer.codes):
            return levels, False
    return levels, True


def _check_identifiable(levels: list[_Level], n: int) -> None:
    """lme4's per-term checks (``check.nobs.vs.nlev``, ``check.nobs.vs.nRE``), as errors."""
    for lv in levels:
        g = len(lv.labels)
        if g < 2:
            raise ValueError(
                f"grouping factor {lv.name!r} has a single group; a variance between groups "
                "needs at least two (drop the term)."
            )
        if g >= n:
            raise ValueError(
                f"grouping factor {lv.name!r} has {g} groups for {n} observations: every "
                f"{lv.name} has one observation, so the {lv.name} variance and the residual "
                "variance cannot be told apart (lme4 refuses this model too). Drop the "
                f"(... | {lv.name}) term, or use data with repeated observations per {lv.name}."
            )
        if g * lv.q >= n:
            raise ValueError(
                f"the term (... | {lv.name}) has {g * lv.q} random effects ({g} groups x "
                f"{lv.q} columns) for {n} observations: the random-effect variances and the "
                "residual variance cannot be told apart (lme4 refuses this model too). Drop "
                "random slopes of this term or use more observations per group."
            )


def _centre_slopes(levels: list[_Level]) -> tuple[list[_Level], list[np.ndarray]]:
    """Centre the slope columns of every correlated block that contains an intercept.

    Returns the levels with ``z_c = z A`` and the matrices ``A`` (``b = A b_c``).
    """
    out, shifts = [], []
    for lv in levels:
        a = np.eye(lv.q)
        ones = [i for i in range(lv.q) if np.all(lv.z[:, i] == 1.0)]
        for block in lv.blocks:
            i0 = next((i for i in block if i in ones), None)
            if i0 is None or len(block) < 2:
                continue
            for j in block:
                if j != i0:
                    a[i0, j] = -float(lv.z[:, j].mean())
        if np.array_equal(a, np.eye(lv.q)):
            out.append(lv)
        else:
            out.append(replace(lv, z=lv.z @ a))
        shifts.append(a)
    return out, shifts


def _check_rank(xtx: np.ndarray, names: list[str]) -> None:
    """Refuse a rank-deficient fixed part (pivoted QR of the scaled cross-product matrix)."""
    p = xtx.shape[0]
    if p == 0:
        return
    scale = np.sqrt(np.diag(xtx))
    scale[scale == 0] = 1.0
    gram = xtx / np.outer(scale, scale)
    _, r, piv = linalg.qr(gram, pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > diag.max() * 1e-10).sum())
    if rank < p:
        dropped = [names[i] for i in piv[rank:]]
        raise ValueError(
            f"the fixed-effect design is rank deficient: {', '.join(map(repr, dropped))} "
            "is a linear combination of the other columns (or constant). Remove it from the "
            "formula, e.g. a client-level variable that duplicates another."
        )


# --------------------------------------------------------------------------- results


@dataclass(repr=False)
class LmmResult(Result):
    """Results of :func:`lmm` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    params : pandas.DataFrame
        One row per fixed effect: term, estimate, se, df, statistic, p, ci_low, ci_high.
        ``df`` and ``p`` by Satterthwaite's method (lmerTest's default) unless the model was
        fitted with ``ddf="kenward-roger"`` (Kenward-Roger df, and ``se`` from the adjusted
        covariance) or ``ddf="wald"`` (then ``df`` is inf and ``statistic`` a z value).
    variance_components : pandas.DataFrame
        group, term, term2, vcov, sdcor -- as ``as.data.frame(VarCorr(fit))`` in lme4: a
        variance (``term2`` empty; ``sdcor`` the SD) or a covariance (``sdcor`` the correlation).
        The last row is the residual.
    random_effects : dict of str to pandas.DataFrame
        Conditional modes of the random effects, one frame per grouping level, indexed by group.
    loglik, aic, bic : float
        Log-likelihood (REML criterion for REML fits, as lme4's ``logLik``) and information
        criteria counting fixed effects, covariance parameters and the residual variance.
    nobs : int
        Rows used in the fit.
    ngroups : dict of str to int
    converged : bool
        The deviance's gradient at the optimum passes lme4's check: for every free parameter,
        the smaller of the gradient and the gradient scaled by the Hessian (the remaining Newton
        step) is below ``2e-3``. ``convergence`` holds the numbers and the optimizer's message.
    singular : bool
        A random-effect covariance matrix is (near) singular: a variance at zero or a
        correlation at +-1 (a diagonal entry of the relative covariance factor below ``1e-4``).
        Simplify the random part or keep the result knowing a component is at its boundary.
    excluded : pandas.DataFrame
        reason, column, n_rows, n_clients: rows dropped because a variable the model uses is
        missing, counted by column (a row missing two variables counts under both;
        ``n_clients`` is ``<NA>``: the engine does not know which column is the client).
        ``n_excluded`` is the row total, ``excluded_index`` the index labels of the dropped
        rows.
    cov_params : pandas.DataFrame
        Covariance matrix of the fixed effects (Kenward-Roger's adjusted one for
        ``ddf="kenward-roger"``; lme4's ``vcov`` otherwise).
    covariances : dict of str to pandas.DataFrame
        Covariance matrix of the random effects at each level.
    theta, sigma
        Relative covariance factors (levels innermost first; within a level the lower triangle
        of each term's factor, column by column, as lme4) and the residual SD.
    vcov_varpar : numpy.ndarray
        Asymptotic covariance of ``(theta, sigma)`` (twice the inverse Hessian of the deviance),
        used for Satterthwaite's df; see :meth:`contrast`.
    residual_ratios : pandas.Series or None
        With ``residual_groups=``: the residual SD of each group over that of the first
        (nlme's ``coef(varIdent, unconstrained = FALSE, allCoef = TRUE)``); ``sigma`` and the
        ``Residual`` row of ``variance_components`` are the first group's. None otherwise.
    r2, icc
        Nakagawa-Schielzeth R^2 and per-level ICCs (properties).
    n : pandas.Series
        Rows and groups per grouping level (``clients``, ``therapists``, ...).
    notes : list of str
        Warnings (non-convergence, singular fit).

    Examples
    --------
    >>> import alliance
    >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
    ...                           alliance.datasets.load_dataset("demo").sessions)
    >>> fit.variance_components["group"].tolist()
    ['client', 'Residual']
    >>> bool(fit.r2["conditional"] > fit.r2["marginal"])
    True
    """

    formula: str
    reml: bool
    ddf: str
    params: pd.DataFrame
    variance_components: pd.DataFrame
    random_effects: dict[str, pd.DataFrame]
    loglik: float
    nobs: int
    ngroups: dict[str, int]
    converged: bool
    singular: bool
    excluded: pd.DataFrame
    n_excluded: int
    excluded_index: pd.Index
    theta: np.ndarray
    sigma: float
    convergence: dict[str, Any]
    cov_params: pd.DataFrame
    vcov_varpar: np.ndarray
    level: float
    _fit: dict[str, Any] = field(repr=False)
    notes: list[str] = field(default_factory=list)
    residual_ratios: pd.Series | None = None

    citation = (
        "Bates, Maechler, Bolker & Walker (2015), Journal of Statistical Software 67(1); "
        "Kuznetsova, Brockhoff & Christensen (2017), Journal of Statistical Software 82(13)"
    )

    @property
    def model(self) -> str:
        """``"linear mixed model (REML): <formula>"``."""
        return f"linear mixed model ({self.method}): {self.formula}"

    def _n_by_level(self) -> dict[str, int]:
        return {"rows": self.nobs, **{level_name(k): v for k, v in self.ngroups.items()}}

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}={v}" for k, v in self.ngroups.items())
        flags = ("" if self.converged else ", NOT converged") + (
            ", singular" if self.singular else ""
        )
        return (
            f"<LmmResult {self.method}: {self.formula!r}; nobs={self.nobs}, {groups}, "
            f"loglik={self.loglik:.4f}{flags}>"
        )

    # ---- information criteria
    @property
    def n_params(self) -> int:
        """Number of estimated parameters: fixed effects, theta, sigma (and the residual SD
        ratios with ``residual_groups=``)."""
        ratios = 0 if self.residual_ratios is None else len(self.residual_ratios) - 1
        return len(self.params) + len(self.theta) + 1 + ratios

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.nobs) * self.n_params

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"

    # ---- fitted values, prediction
    @property
    def fitted(self) -> pd.Series:
        """Fitted values (fixed part plus conditional modes), on the rows used in the fit."""
        f = self._fit
        return pd.Series(self._linear(f["x"], f["z"], f["codes"]), index=f["index"], name="fitted")

    @property
    def residuals(self) -> pd.Series:
        f = self._fit
        return pd.Series(f["y"] - self.fitted.to_numpy(), index=f["index"], name="residual")

    def _linear(self, x, zs, codes) -> np.ndarray:
        out = x @ self.params["estimate"].to_numpy()
        for z, c, b in zip(zs, codes, self._fit["b"], strict=True):
            if z is None:
                continue
            known = c >= 0
            eff = np.zeros_like(z)
            eff[known] = b[c[known]]
            out = out + (z * eff).sum(axis=1)
        return out

    def predict(
        self,
        data: pd.DataFrame | None = None,
        *,
        random: bool | None = None,
        interval: Literal["confidence", "prediction"] | None = None,
        level: float | None = None,
        ddf: Literal["satterthwaite", "kenward-roger"] | None = None,
    ) -> pd.Series | pd.DataFrame:
        """Predicted outcome, optionally with confidence or prediction intervals.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            New rows with the model's variables; default the rows used in the fit.
        random : bool, optional
            Add the conditional modes of the groups seen in the fit (groups not seen in the
            fit get zero, i.e. the population prediction); ``False``: fixed part only.
            Default True without ``interval``; intervals are for the population-level
            prediction (``random=False``, the default with ``interval``).
        interval : {"confidence", "prediction"}, optional
            ``"confidence"``: for the mean at these values, ``x' beta`` with
            ``se^2 = x' V x`` (``V`` = :attr:`cov_params`) and Satterthwaite df (the fit's
            Kenward-Roger df and adjusted ``V`` for a ``ddf="kenward-roger"`` fit), the
            t interval, as ``emmeans`` predictions. ``"prediction"``: for a new observation
            of a new group, ``se^2 = x' V x + sum over levels of z' Sigma z + sigma^2``
            (the lme4 FAQ's formula with the residual added), with the normal quantile.
        level : float, optional
            Confidence level; default the fit's.
        ddf : {"satterthwaite", "kenward-roger"}, optional
            df of the confidence interval (default as :meth:`contrast`).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Without ``interval`` a Series of predictions indexed like ``data``; with it a
            DataFrame with estimate, se, df, lower, upper.

        Examples
        --------
        >>> import alliance
        >>> import pandas as pd
        >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
        ...                           alliance.datasets.load_dataset("demo").sessions)
        >>> new = pd.DataFrame({"session": [1, 8, 16]})
        >>> ci = fit.predict(new, interval="confidence")
        >>> ci.columns.tolist()
        ['estimate', 'se', 'df', 'lower', 'upper']
        >>> pi = fit.predict(new, interval="prediction")
        >>> bool((pi["se"] > ci["se"]).all())
        True
        """
        f = self._fit
        if interval not in (None, "confidence", "prediction"):
            raise ValueError(
                f"interval must be 'confidence', 'prediction' or None, not {interval!r}."
            )
        if random is None:
            random = interval is None
        if interval is not None and random:
            raise ValueError(
                "intervals are for the population-level prediction: pass random=False (the "
                "default with interval=); the conditional modes' own uncertainty is not "
                "part of them."
            )
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
        if data is None:
            x, zs, codes, index = f["x"], f["z"], f["codes"], f["index"]
        else:
            data = require_frame(data)
            need = set(f["fixed_spec"].required_variables)
            if random or interval == "prediction":
                for lv in f["levels"]:
                    if random:
                        need |= set(lv.keys)
                    for spec in lv.specs:
                        need |= set(spec.required_variables)
            require_columns(data, table="data", **{f"variable {c!r}": c for c in sorted(need)})
            x = _float_matrix(f["fixed_spec"].get_model_matrix(data))
            index = data.index
            zs, codes = [], []
            for lv in f["levels"]:
                if not (random or interval == "prediction"):
                    zs.append(None)
                    codes.append(None)
                    continue
                parts = [_float_matrix(spec.get_model_matrix(data)) for spec in lv.specs]
                zs.append(np.column_stack(parts))
                if not random:
                    codes.append(None)
                    continue
                if len(lv.keys) == 1:
                    key = pd.Index(data[lv.keys[0]])
                else:
                    key = pd.MultiIndex.from_frame(data[list(lv.keys)])
                codes.append(lv.labels.get_indexer(key))
        if x.shape[0] != len(index):
            raise ValueError(
                f"{len(index) - x.shape[0]} rows of data have a missing value in a model "
                "variable; drop or fill them before predicting."
            )
        if not random:
            out = x @ self.params["estimate"].to_numpy()
        else:
            out = self._linear(x, zs, codes)
        if interval is None:
            return pd.Series(out, index=index, name="predicted")
        if ddf is None:
            ddf = "kenward-roger" if self.ddf == "kenward-roger" else "satterthwaite"
        if ddf not in ("satterthwaite", "kenward-roger"):
            raise ValueError(f"ddf must be 'satterthwaite' or 'kenward-roger', not {ddf!r}.")
        se = np.empty(len(out))
        df = np.empty(len(out))
        for i, w in enumerate(x):  # one contrast per row (the df depend on w)
            _est, se[i], df[i] = self._linear_test(w, ddf)
        if interval == "confidence":
            crit = stats.t.ppf(0.5 + level / 2, df)
        else:
            if self.residual_ratios is not None:
                raise ValueError(
                    "prediction intervals of a fit with residual_groups= need the group of "
                    "each new row's residual variance; not available yet."
                )
            var = se**2 + self.sigma**2
            for z, cov in zip(zs, f["covs"], strict=True):
                var = var + np.einsum("ij,jk,ik->i", z, cov, z)
            se = np.sqrt(var)
            df = np.full(len(out), np.inf)
            crit = stats.norm.ppf(0.5 + level / 2)
        return pd.DataFrame(
            {
                "estimate": out,
                "se": se,
                "df": df,
                "lower": out - crit * se,
                "upper": out + crit * se,
            },
            index=index,
        )

    def refit(self, *, reml: bool | None = None, response=None) -> LmmResult:
        """The same model fitted again to the same rows, by REML or ML, or to a new response.

        Parameters
        ----------
        reml : bool, optional
            ``False`` for maximum likelihood (what :func:`alliance.models.compare` needs to
            compare models that differ in their fixed effects); default this fit's.
        response : array-like, optional
            A new outcome, one value per row used in the fit (e.g. one simulated by
            :meth:`simulate`), as lme4's ``refit(fit, newresp)``.

        Returns
        -------
        LmmResult
            ``self`` when the criterion is already the one asked for and no response is given.

        Raises
        ------
        ValueError
            The data frame the model was fitted to has been changed since (the fit keeps a
            reference to it, not a copy), or ``response`` has the wrong length.

        Examples
        --------
        >>> import alliance
        >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
        ...                           alliance.datasets.load_dataset("demo").sessions)
        >>> fit.refit(reml=False).method
        'ML'
        >>> y = fit.simulate(1, seed=1)[0]
        >>> fit.refit(response=y).nobs == fit.nobs
        True
        """
        reml = self.reml if reml is None else bool(reml)
        f = self._fit
        if response is not None:
            y = np.asarray(response, dtype=float)
            if y.shape != (self.nobs,):
                raise ValueError(
                    f"response must have one value per row used in the fit ({self.nobs}), "
                    f"not shape {y.shape}."
                )
            if not np.all(np.isfinite(y)):
                raise ValueError("response has missing or infinite values.")
            data = f["data"].loc[f["index"]].copy()
            data[_BOOT_COLUMN] = y
            rhs = self.formula.split("~", 1)[1]
            return lmm(f"{_BOOT_COLUMN} ~{rhs}", data, reml=reml, **f["options"])
        if reml == self.reml:
            return self
        out = lmm(self.formula, f["data"], reml=reml, **f["options"])
        if not (out.rows.equals(self.rows) and np.array_equal(out.outcome, self.outcome)):
            raise ValueError(
                "the data frame this model was fitted to has changed since (the fit keeps a "
                "reference to it, not a copy); fit the model again with reml=... instead."
            )
        return out

    def simulate(self, nsim: int = 1, *, seed=None) -> np.ndarray:
        """Responses simulated from the fitted model on its own rows (lme4's ``simulate``).

        ``y* = X beta + sum over levels of Z b* + sigma e``, with ``b*`` drawn from the fitted
        random-effect covariances (new groups effects, ``use.u = FALSE``) and ``e`` standard
        normal.

        Parameters
        ----------
        nsim : int
            Number of responses.
        seed : int or numpy.random.Generator, optional
            Same seed, same responses.

        Returns
        -------
        numpy.ndarray
            ``(nsim, nobs)``.

        Examples
        --------
        >>> import alliance
        >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
        ...                           alliance.datasets.load_dataset("demo").sessions)
        >>> fit.simulate(2, seed=3).shape == (2, fit.nobs)
        True
        """
        if int(nsim) != nsim or nsim < 1:
            raise ValueError(f"nsim must be a positive whole number, not {nsim!r}.")
        if self.residual_ratios is not None:
            raise ValueError("simulate is not implemented for fits with residual_groups=.")
        f = self._fit
        return simulate_responses(
            f["x"] @ self.params["estimate"].to_numpy(),
            self.sigma,
            f["z"],
            f["codes"],
            f["covs"],
            [len(lv.labels) for lv in f["levels"]],
            int(nsim),
            np.random.default_rng(seed),
        )

    @property
    def fixed_variables(self) -> list[str]:
        """The variables of the fixed part (not the outcome), in the order of the formula."""
        rhs = self.formula.split("~", 1)[1]
        names = set(self._fit["fixed_spec"].required_variables)
        return sorted(names, key=lambda v: (rhs.find(v) if v in rhs else len(rhs), v))

    def model_frame(self) -> pd.DataFrame:
        """The rows the fit used, with the variables the model uses (as lme4's
        ``model.frame``)."""
        f = self._fit
        need = set(f["fixed_spec"].required_variables)
        for lv in f["levels"]:
            need |= set(lv.keys)
            for spec in lv.specs:
                need |= set(spec.required_variables)
        if f["options"].get("residual_groups") is not None:
            need.add(f["options"]["residual_groups"])
        response = self.formula.split("~", 1)[0].strip()
        cols = [c for c in f["data"].columns if c in need or c == response]
        return f["data"].loc[f["index"], cols]

    @property
    def rows(self) -> pd.Index:
        """Index labels of the rows of ``data`` the fit used (after dropping missing values)."""
        return self._fit["index"]

    @property
    def outcome(self) -> np.ndarray:
        """The outcome values the fit used, in the order of :attr:`rows`."""
        return self._fit["y"]

    # ---- derived summaries
    @property
    def covariances(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of the random effects at each level (``sigma^2 Lambda Lambda'``).

        Entries between uncorrelated terms (``||``) are structurally zero.
        """
        f = self._fit
        return {
            lv.name: pd.DataFrame(cov, index=lv.terms, columns=lv.terms)
            for lv, cov in zip(f["levels"], f["covs"], strict=True)
        }

    @property
    def r2(self) -> pd.Series:
        """Marginal and conditional R^2 (Nakagawa & Schielzeth 2013; Johnson 2014 for slopes).

        Fixed-effect variance ``var(X beta)``; each level's variance is the mean over rows of
        ``z_i' Sigma z_i``, as in R's ``MuMIn::r.squaredGLMM``.
        """
        f = self._fit
        var_f = float(np.var(f["x"] @ self.params["estimate"].to_numpy(), ddof=1))
        var_r = float(sum(self._level_variances().values()))
        total = var_f + var_r + self.sigma**2
        return pd.Series(
            {"marginal": var_f / total, "conditional": (var_f + var_r) / total}, name="r2"
        )

    def _level_variances(self) -> dict[str, float]:
        f = self._fit
        out = {}
        for lv, cov, ztz in zip(f["levels"], f["covs"], f["ztz"], strict=True):
            out[lv.name] = float(np.trace(cov @ ztz)) / self.nobs
        return out

    @property
    def icc(self) -> pd.DataFrame:
        """Intraclass correlation of each grouping level (Nakagawa et al. 2017, adjusted ICC).

        The level's variance (mean over rows of ``z_i' Sigma z_i``; for a random intercept
        simply its variance) over the sum of all levels' variances plus the residual variance.
        With random slopes it depends on the scale of the slope variables (e.g. where session 0
        is).
        """
        var = self._level_variances()
        total = sum(var.values()) + self.sigma**2
        return pd.DataFrame(
            {
                "group": list(var),
                "variance": list(var.values()),
                "icc": [v / total for v in var.values()],
            }
        )

    def _kenward_roger(self):
        """The Kenward-Roger adjustment (computed once; REML fits only)."""
        f = self._fit
        if f.get("kr") is None:
            if not self.reml:
                raise ValueError(
                    "Kenward-Roger df are defined for REML fits (as pbkrtest); refit with "
                    "reml=True or use ddf='satterthwaite'."
                )
            f["kr"] = kenward_roger(
                f["x"],
                f["z"],
                f["codes"],
                [lv.blocks for lv in f["levels"]],
                f["covs"],
                self.sigma,
                f["phi"],
            )
        return f["kr"]

    def _linear_test(self, w: np.ndarray, ddf: str) -> tuple[float, float, float]:
        """Estimate, SE and df of ``w' beta`` (``ddf``: satterthwaite or kenward-roger)."""
        est = float(w @ self.params["estimate"].to_numpy())
        if ddf == "kenward-roger":
            kr = self._kenward_roger()
            var = float(w @ kr.phi_a @ w)
            df = kr.ddf(w)
        elif ddf == "satterthwaite":
            var = float(w @ self._fit["phi"] @ w)
            df = _satterthwaite(w, var, self._fit["jac"], self.vcov_varpar)
        else:
            raise ValueError(f"ddf must be 'satterthwaite' or 'kenward-roger', not {ddf!r}.")
        return est, math.sqrt(var), df

    def contrast(
        self,
        weights: np.ndarray | list[float],
        *,
        ddf: Literal["satterthwaite", "kenward-roger"] | None = None,
    ) -> pd.Series:
        """Test of a linear combination ``L' beta`` with Satterthwaite or Kenward-Roger df.

        Parameters
        ----------
        weights : array-like
            One weight per fixed effect, in the order of ``params``.
        ddf : {"satterthwaite", "kenward-roger"}, optional
            Default: Kenward-Roger for a fit with ``ddf="kenward-roger"`` (adjusted SE and
            df), Satterthwaite otherwise.

        Returns
        -------
        pandas.Series
            estimate, se, df, statistic, p.
        """
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(self.params),):
            raise ValueError(
                f"weights must have one entry per fixed effect ({len(self.params)}: "
                f"{', '.join(self.params['term'])}), got shape {w.shape}."
            )
        if ddf is None:
            ddf = "kenward-roger" if self.ddf == "kenward-roger" else "satterthwaite"
        est, se, df = self._linear_test(w, ddf)
        t = est / se
        p = 2 * stats.t.sf(abs(t), df)
        return pd.Series({"estimate": est, "se": se, "df": df, "statistic": t, "p": p})

    def marginal_means(
        self,
        specs: str | list[str],
        at: dict[str, Any] | None = None,
        *,
        ddf: Literal["satterthwaite", "kenward-roger"] = "satterthwaite",
        adjust: Literal["tukey", "holm", "bonferroni", "none"] = "tukey",
        level: float | None = None,
    ) -> MarginalMeans:
        """Estimated marginal means and their pairwise contrasts, as R's ``emmeans``.

        Parameters
        ----------
        specs : str or list of str
            The factor(s) whose levels get a mean (``emmeans(fit, pairwise ~ specs)``); a
            numeric variable is allowed when ``at`` gives the values to compare.
        at : dict, optional
            Values of grid variables: a numeric variable at given value(s) instead of its
            mean, or a factor restricted to some of its levels.
        ddf : {"satterthwaite", "kenward-roger"}
            Degrees of freedom: Satterthwaite's (default; emmeans with ``lmer.df =
            "satterthwaite"``) or Kenward-Roger's with its adjusted covariance (REML fits;
            ``lmer.df = "kenward-roger"``, emmeans' own default).
        adjust : {"tukey", "holm", "bonferroni", "none"}
            Multiplicity adjustment of the contrasts' p values (emmeans' default for
            pairwise contrasts is Tukey's).
        level : float, optional
            Confidence level of the intervals; default the fit's.

        Returns
        -------
        MarginalMeans
            ``.means``, ``.contrasts``, ``.grid``, ``.params``, ``.notes``.

        Notes
        -----
        The reference grid crosses all levels of every factor of the fixed part with every
        numeric variable at its mean over the fit's rows; a mean averages the grid's
        predictions over the other factors with equal weights (emmeans' defaults). A
        variable inside a transform (``I(session**2)``) is set first and transformed after,
        as emmeans does. Random effects are not part of the means (population level).

        Examples
        --------
        >>> import alliance
        >>> sessions = alliance.datasets.load_dataset("demo").sessions
        >>> fit = alliance.models.lmm("phq9 ~ phase + session + (1 | client)", sessions)
        >>> emm = fit.marginal_means("phase")
        >>> emm.contrasts["contrast"].tolist()
        ['assessment - exploration', 'assessment - treatment', 'exploration - treatment']
        """
        if ddf not in ("satterthwaite", "kenward-roger"):
            raise ValueError(f"ddf must be 'satterthwaite' or 'kenward-roger', not {ddf!r}.")
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
        f = self._fit
        spec = f["fixed_spec"]
        rows = f["data"].loc[f["index"], sorted(spec.required_variables)]
        return marginal_means(
            self,
            specs,
            at,
            ddf=ddf,
            level=level,
            adjust=adjust,
            spec=spec,
            data=rows,
            linear_test=self._linear_test,
        )

    def confint(
        self,
        method: Literal["wald", "profile", "boot"] = "profile",
        *,
        level: float | None = None,
        parm: Literal["all", "fixed", "random"] = "all",
        nsim: int = 500,
        seed=None,
        n_jobs: int = 1,
    ) -> pd.DataFrame:
        """Confidence intervals of the variance parameters and fixed effects (lme4's
        ``confint.merMod``).

        Parameters
        ----------
        method : {"profile", "wald", "boot"}
            ``"profile"`` (default, as lme4): likelihood-ratio intervals, the values at which
            the profiled ML deviance exceeds its minimum by the chi-square(1) quantile, for the
            random-effect SDs and correlations, the residual SD and the fixed effects.
            ``"wald"``: estimate +- z * SE for the fixed effects and NaN for the variance
            parameters (as lme4, which gives no Wald interval for them). ``"boot"``:
            parametric bootstrap percentile intervals (lme4's ``confint(method = "boot")``,
            ``boot.type = "perc"``): ``nsim`` responses simulated from this fit (see
            :meth:`simulate`), the model refitted to each by this fit's criterion.
        level : float, optional
            Confidence level; default the fit's ``level``.
        parm : {"all", "fixed", "random"}
            Which parameters: all, the fixed effects only, or the variance parameters only.
        nsim : int, default 500
            ``"boot"``: number of bootstrap samples.
        seed : int or numpy.random.Generator, optional
            ``"boot"``: same seed, same intervals (also with ``n_jobs > 1``).
        n_jobs : int, default 1
            ``"boot"``: parallel refits with joblib (``-1``: all cores).

        Returns
        -------
        pandas.DataFrame
            One row per parameter in lme4's order (variance parameters, then ``sigma``, then
            the fixed effects): ``parameter`` (e.g. ``sd Intercept | client``, ``cor
            Intercept, session | client``, ``sigma``, or the fixed-effect term), ``group``,
            ``term``, ``term2``, ``estimate`` (this fit's), ``ci_low``, ``ci_high`` and
            ``lme4_name`` (``.sig01``, ``.sig02``, ..., ``.sigma``, ``(Intercept)``, ...: the
            row names of ``confint(fit, oldNames = TRUE)``).
            With ``"boot"`` the frame's ``attrs`` hold ``n_boot`` (successful refits) and
            ``n_failed``; a refit that fails is left out (counted).

        Notes
        -----
        As lme4, profiles are computed on the maximum-likelihood deviance: a REML fit is
        refitted by ML first (the intervals are then likelihood intervals around the ML
        estimates; the ``estimate`` column stays this fit's). Each bound is the root of the
        signed square root of the deviance difference, found by Brent's method with the other
        parameters re-optimized at every trial value (lme4 interpolates a spline through
        profile points instead; the two agree to about 1e-4). A bound that the profile does
        not reach inside the parameter space is the boundary itself (an SD of 0, a
        correlation of +-1). Wald intervals use the normal quantile, as lme4.

        Examples
        --------
        >>> import alliance
        >>> fit = alliance.models.lmm("phq9 ~ session + (1 | client)",
        ...                           alliance.datasets.load_dataset("demo").sessions)
        >>> ci = fit.confint("profile")
        >>> ci["lme4_name"].tolist()
        ['.sig01', '.sigma', '(Intercept)', 'session']
        >>> bool((ci["ci_low"] < ci["estimate"]).all() and (ci["estimate"] < ci["ci_high"]).all())
        True
        >>> boot = fit.confint("boot", nsim=10, seed=1)
        >>> boot.attrs["n_boot"]
        10
        """
        if method not in ("wald", "profile", "boot"):
            raise ValueError(f"method must be 'profile', 'wald' or 'boot', not {method!r}.")
        if method == "boot" and (int(nsim) != nsim or nsim < 2):
            raise ValueError(f"nsim must be a whole number of at least 2, not {nsim!r}.")
        if parm not in ("all", "fixed", "random"):
            raise ValueError(f"parm must be 'all', 'fixed' or 'random', not {parm!r}.")
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
        z = float(stats.norm.ppf(0.5 + level / 2))
        if self.residual_ratios is not None and method in ("profile", "boot"):
            raise ValueError(
                f"{method} intervals are not implemented with residual_groups=; use "
                "confint('wald') for the fixed effects."
            )
        ml = self.refit(reml=False)
        f = ml._fit
        profiler = Profiler(f["engine"], ml.nobs, len(ml.params))
        rows = []
        vc = self.variance_components
        nsig = 0
        levels = f["levels"]
        for i, vp in enumerate(profiler.varpars):
            if vp.kind == "sigma":
                row = {"parameter": "sigma", "group": "Residual", "term": "", "term2": ""}
                row["estimate"] = self.sigma
                row["lme4_name"] = ".sigma"
            else:
                lv = levels[vp.level]
                nsig += 1
                if vp.kind == "sd":
                    t1, t2 = lv.terms[vp.row], ""
                    label = f"sd {t1} | {lv.name}"
                else:
                    t1, t2 = lv.terms[vp.col], lv.terms[vp.row]
                    label = f"cor {t1}, {t2} | {lv.name}"
                match = vc[(vc["group"] == lv.name) & (vc["term"] == t1) & (vc["term2"] == t2)]
                row = {"parameter": label, "group": lv.name, "term": t1, "term2": t2}
                row["estimate"] = float(match["sdcor"].iloc[0])
                row["lme4_name"] = f".sig{nsig:02d}"
            row["_index"] = i
            rows.append(row)
        varpar_rows = rows
        fixed_rows = [
            {
                "parameter": term,
                "group": "",
                "term": term,
                "term2": "",
                "estimate": est,
                "lme4_name": "(Intercept)" if term == "Intercept" else term,
                "_index": j,
            }
            for j, (term, est) in enumerate(
                zip(self.params["term"], self.params["estimate"], strict=True)
            )
        ]
        if method == "boot":
            return self._boot_intervals(varpar_rows, fixed_rows, parm, level, nsim, seed, n_jobs)
        out = []
        if parm in ("all", "random"):
            for row in varpar_rows:
                if method == "wald":
                    lo = hi = math.nan
                else:
                    lo, hi = profiler.varpar_interval(row["_index"], z)
                out.append({**row, "ci_low": lo, "ci_high": hi})
        if parm in ("all", "fixed"):
            for row in fixed_rows:
                j = row["_index"]
                if method == "wald":
                    se = math.sqrt(float(self._fit["phi"][j, j]))  # lme4: vcov(), unadjusted
                    lo, hi = row["estimate"] - z * se, row["estimate"] + z * se
                else:
                    est_ml = float(ml.params["estimate"].iloc[j])
                    se_ml = float(ml.params["se"].iloc[j])
                    lo, hi = profiler.fixed_interval(j, est_ml, se_ml, z)
                out.append({**row, "ci_low": lo, "ci_high": hi})
        cols = ["parameter", "group", "term", "term2", "estimate", "ci_low", "ci_high"]
        return pd.DataFrame(out, columns=[*cols, "lme4_name"])

    def _boot_intervals(self, varpar_rows, fixed_rows, parm, level, nsim, seed, n_jobs):
        """Percentile intervals from a parametric bootstrap (rows as :meth:`confint`)."""
        rows = (varpar_rows if parm in ("all", "random") else []) + (
            fixed_rows if parm in ("all", "fixed") else []
        )
        keys = [
            ("sigma", None)
            if r["lme4_name"] == ".sigma"
            else ("fixed", r["_index"])
            if r["group"] == ""
            else ("vc", (r["group"], r["term"], r["term2"]))
            for r in rows
        ]

        def values(fit) -> np.ndarray:
            vc = fit.variance_components.set_index(["group", "term", "term2"])["sdcor"]
            est = fit.params["estimate"].to_numpy()
            out = []
            for kind, key in keys:
                if kind == "sigma":
                    out.append(fit.sigma)
                elif kind == "fixed":
                    out.append(est[key])
                else:
                    out.append(float(vc.get(key, math.nan)))
            return np.array(out, dtype=float)

        responses = self.simulate(int(nsim), seed=seed)
        draws = bootstrap(responses, lambda y: self.refit(response=y), values, n_jobs=n_jobs)
        ok = [d for d in draws if d is not None]
        if len(ok) < 2:
            raise ValueError(
                f"only {len(ok)} of {nsim} bootstrap refits succeeded; no interval can be "
                "formed (check the model, e.g. a singular fit)."
            )
        mat = np.vstack(ok)
        a = (1 - level) / 2
        lo = np.nanquantile(mat, a, axis=0)
        hi = np.nanquantile(mat, 1 - a, axis=0)
        cols = ["parameter", "group", "term", "term2", "estimate", "ci_low", "ci_high"]
        table = pd.DataFrame(
            [{**r, "ci_low": lo[i], "ci_high": hi[i]} for i, r in enumerate(rows)],
            columns=[*cols, "lme4_name"],
        )
        table.attrs["n_boot"] = len(ok)
        table.attrs["n_failed"] = len(draws) - len(ok)
        return table

    def to_frame(self) -> pd.DataFrame:
        """Fixed effects and variance components in one long frame (``part`` tells which)."""
        fixed = self.params.assign(part="fixed")
        vc = self.variance_components.rename(columns={"vcov": "estimate"}).assign(part="random")
        vc["term"] = np.where(vc["term2"] == "", vc["term"], vc["term"] + ", " + vc["term2"])
        vc["term"] = vc["group"] + ": " + vc["term"]
        cols = ["part", "term", "estimate", "se", "df", "statistic", "p", "ci_low", "ci_high"]
        return pd.concat([fixed, vc.drop(columns=["group", "term2", "sdcor"])], ignore_index=True)[
            cols
        ]

    def summary(self) -> str:
        """A text summary in the spirit of lme4's ``summary(fit)``."""
        lines = [
            f"Linear mixed model fit by {self.method}"
            + {
                "satterthwaite": " (Satterthwaite df)",
                "kenward-roger": " (Kenward-Roger df and SEs)",
            }.get(self.ddf, " (Wald z)"),
            f"Formula: {self.formula}",
            f"{self.method} log-likelihood {self.loglik:.4f}   AIC {self.aic:.2f}   "
            f"BIC {self.bic:.2f}",
            f"Observations: {self.nobs}; groups: "
            + ", ".join(f"{k} {v}" for k, v in self.ngroups.items()),
        ]
        if self.n_excluded:
            lines.append(
                f"Excluded rows (missing values): {self.n_excluded} ("
                + ", ".join(f"{r.column} {r.n_rows}" for r in self.excluded.itertuples())
                + ")"
            )
        lines += ["", "Random effects:"]
        vc = self.variance_components
        lines.append(vc.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lines += ["", "Fixed effects:"]
        lines.append(self.params.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        r2 = self.r2
        lines += ["", f"R2 marginal {r2['marginal']:.3f}, conditional {r2['conditional']:.3f}"]
        status = "converged" if self.converged else "NOT converged"
        lines.append(
            f"Optimizer: {status}, max |gradient| {self.convergence['max_abs_gradient']:.2g} "
            f"(scaled {self.convergence['max_scaled_gradient']:.2g}), "
            f"{self.convergence['evaluations']} evaluations"
        )
        if self.singular:
            lines.append(
                "Singular fit: a variance is estimated at zero or a correlation at +-1 "
                "(see variance_components)."
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------- Satterthwaite


def _satterthwaite(w: np.ndarray, var: float, jac: np.ndarray, vcov_varpar: np.ndarray) -> float:
    """df = 2 var^2 / (g' A g) with g_i = w' dV/dvarpar_i w (as lmerTest's contest1D)."""
    g = np.einsum("i,kij,j->k", w, jac, w)
    denom = float(g @ vcov_varpar @ g)
    if denom <= 0:
        return math.inf
    return 2.0 * var * var / denom


def _pinv_psd(h: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    vals, vecs = np.linalg.eigh(h)
    pos = vals > tol
    return (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T


# --------------------------------------------------------------------------- fit


def _moment_start(st, eps: float = 0.1) -> np.ndarray:
    """Starting theta from per-group least squares (method of moments), correlations zero."""
    p, n = st.p, st.n
    xtx, xty, yy = st.wtw[:p, :p], st.wtw[:p, p], st.wtw[p, p]
    beta = np.linalg.solve(xtx, xty)
    s2 = max((yy - beta @ xty) / max(n - p, 1), 1e-12)
    coef = np.append(-beta, 1.0)
    theta = np.zeros(st.ntheta)
    for k in range(st.k):
        q = st.q[k]
        rkk = st.r[k][k]  # (q, q, G)
        ze = np.tensordot(st.rroot[k], coef, axes=(1, 0))  # (q, G)
        var = np.full(q, s2)
        diag = np.stack([rkk[i, i] for i in range(q)])
        det = np.linalg.det(np.moveaxis(rkk, -1, 0)) if q > 1 else diag[0]
        ok = np.all(diag > 0, axis=0) & (det > 1e-6 * np.prod(diag, axis=0))
        if ok.sum() >= q + 2:
            low = core.stack_chol(rkk[:, :, ok])
            li = core.stack_tri_inv(low)
            inv = core.stack_mm(core.stack_t(li), li)
            b = core.stack_mv(inv, ze[:, ok])
            raw = np.var(b, axis=1, ddof=1)
            samp = s2 * np.stack([inv[i, i] for i in range(q)]).mean(axis=1)
            var = np.maximum(raw - samp, eps * raw)
            var = np.where(var > 0, var, s2)
        # a near-singular group design can make the moment estimate absurd (1e14 seen in
        # the stacked mediation model); a start beyond 100 residual SDs helps no optimizer
        diag = np.minimum(np.sqrt(var / s2), 100.0)
        for t, (lev, r, c) in enumerate(st.theta_pos):
            if lev == k and r == c:
                theta[t] = diag[r]
    return theta


def lmm(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    *,
    ddf: Literal["satterthwaite", "kenward-roger", "wald"] = "satterthwaite",
    level: float = 0.95,
    start: np.ndarray | None = None,
    maxiter: int = 2000,
    residual_groups: str | None = None,
) -> LmmResult:
    """Fit a linear mixed model with nested or crossed random effects (lme4 formula syntax).

    Parameters
    ----------
    formula : str
        ``"outcome ~ fixed terms + (terms | group) + ..."``. The fixed part is read by
        formulaic (factors, interactions ``a:b``/``a*b``, transforms such as ``I(session**2)``,
        ``C(x)``, ``np.log(x)``). Random terms as in lme4: ``(1 | client)`` random intercept;
        ``(1 + session | client)`` correlated intercept and slope(s), any number of columns;
        ``(0 + session | client)`` slope only; ``(1 + session || client)`` uncorrelated;
        ``(1 | therapist/client)`` nesting shorthand for ``(1 | therapist) + (1 |
        therapist:client)``. Grouping factors may be nested (each client in one therapist),
        crossed or partially crossed (clients who saw two therapists, coders by sessions):
        ``(1 | client) + (1 | therapist)`` fits whichever the data are.
    data : pandas.DataFrame
        Long format, one row per client x session.
    reml : bool
        Restricted maximum likelihood (default) or maximum likelihood. Models are compared
        by likelihood ratio with :func:`alliance.models.compare`, which refits REML fits by
        ML itself (as lme4's ``anova``), so there is no need to fit with ``reml=False`` for
        that; ML fits are what ``compare(..., refit=False)`` and AIC comparisons of models
        with different fixed effects need.
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        Degrees of freedom of the fixed-effect t tests: Satterthwaite's approximation as in
        lmerTest (default); ``"kenward-roger"`` (REML only): Kenward & Roger's adjusted
        covariance of the fixed effects (so adjusted SEs) and df, as pbkrtest and lmerTest's
        ``ddf = "Kenward-Roger"`` (dense in the rows, limited to 4,000; meant for small
        numbers of therapists or clients); or ``"wald"`` for z tests.
    level : float
        Confidence level of ``ci_low``/``ci_high``.
    start : array-like, optional
        Starting theta (relative covariance factors, lme4's order within each grouping level,
        levels innermost first). Default: method-of-moments estimates.
    maxiter : int
        Most L-BFGS-B iterations.
    residual_groups : str, optional
        A column whose groups have their own residual variance: the residual SD of group g is
        ``sigma * r_g``, the first group (sorted) at ``r = 1``, as nlme's ``lme(...,
        weights = varIdent(form = ~ 1 | residual_groups))`` (e.g. the outcome indicator of
        a stacked multivariate model, Bauer, Preacher & Gil 2006). The ratios are estimated
        by (RE)ML and returned in ``.residual_ratios``; fixed-effect SEs and Satterthwaite's
        df are conditional on them (not Kenward-Roger, not profile intervals).

    Returns
    -------
    LmmResult
        ``.params``, ``.variance_components``, ``.random_effects``, ``.loglik``, ``.aic``,
        ``.bic``, ``.converged``, ``.singular``, ``.excluded``, ``.r2``, ``.icc``,
        ``.summary()``, ``.predict()``.

    Raises
    ------
    KeyError
        A variable of the formula is not a column of ``data``.
    ValueError
        A rank-deficient fixed part, too few rows or groups, or a model lme4 refuses as
        unidentifiable (a grouping factor with one observation per group, or a term with as
        many random effects as observations).

    Notes
    -----
    The criterion is lme4's profiled deviance in the relative covariance factor theta (Bates,
    Maechler, Bolker & Walker 2015, J Stat Softw 67(1)). Nesting makes the penalized
    least-squares system block-structured, so each evaluation costs O(groups) with batched
    numpy operations and the gradient is analytic; see ``docs/lmm.md``. Rows with a missing
    value in any variable the model uses are dropped and counted in ``.excluded``.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> fit = alliance.models.lmm("phq9 ~ wai_sr + session + (1 + session | client)"
    ...                           " + (1 | therapist)", study.sessions)
    >>> fit.converged
    True
    >>> list(fit.params.columns)
    ['term', 'estimate', 'se', 'df', 'statistic', 'p', 'ci_low', 'ci_high']
    """
    data = require_frame(data)
    if ddf not in ("satterthwaite", "kenward-roger", "wald"):
        raise ValueError(f"ddf must be 'satterthwaite', 'kenward-roger' or 'wald', not {ddf!r}.")
    if ddf == "kenward-roger" and not reml:
        raise ValueError(
            "Kenward-Roger df are defined for REML fits (as pbkrtest); fit with reml=True, "
            "or use ddf='satterthwaite' with ML."
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
    if residual_groups is not None and ddf == "kenward-roger":
        raise ValueError(
            "Kenward-Roger df are not available with residual_groups=; use "
            "ddf='satterthwaite' (conditional on the residual SD ratios) or 'wald'."
        )
    response, fixed, random = parse_formula(formula)
    if not random:
        raise ValueError(
            f"formula {formula!r} has no random-effect term; add one such as (1 | client). "
            "For a model without random effects use ordinary least squares."
        )

    # ---- variables and missing values
    try:
        fixed_formula = Formula(f"{response} ~ {fixed}")
        needed = set(fixed_formula.required_variables)
        for term in random:
            needed |= set(Formula(term.expr).required_variables)
    except FormulaicError as exc:
        raise ValueError(f"could not read formula {formula!r}: {exc}") from exc
    for term in random:
        needed |= set(term.group)
    if residual_groups is not None:
        needed.add(residual_groups)
    columns = [c for c in data.columns if c in needed]
    missing_cols = sorted(needed - set(columns))
    if missing_cols:
        require_columns(data, table="data", **{f"variable {c!r}": c for c in missing_cols})
    na = data[columns].isna()
    drop = na.any(axis=1).to_numpy()
    counts = na.sum()
    excluded = exclusion_log(
        [(f"missing {c}", c, int(v), None) for c, v in counts[counts > 0].items()]
    )
    frame = data.loc[~drop, columns] if drop.any() else data[columns]
    n = len(frame)

    # ---- fixed part
    mm = _materialize(f"{response} ~ {fixed}", frame, "fixed-effect design")
    if mm.lhs.shape[1] != 1:
        raise ValueError(
            f"the outcome {response!r} must be one numeric column (got {mm.lhs.shape[1]} "
            "columns; is it a text or categorical column?)."
        )
    y = _float_matrix(mm.lhs)[:, 0]
    x = _float_matrix(mm.rhs)
    xnames = [str(c) for c in mm.rhs.columns]
    for what, arr in (("outcome", y[:, None]), ("fixed-effect design", x)):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(
                f"the {what} has non-finite values in {format_rows(frame.index[bad])} "
                "(e.g. a log of zero); fix or drop those rows."
            )

    # ---- random part: one level per distinct grouping
    by_group: dict[tuple[str, ...], list[RandomTerm]] = {}
    for term in random:
        by_group.setdefault(term.group, []).append(term)
    levels: list[_Level] = []
    for keys, terms in by_group.items():
        zs, names, blocks, specs, spec_cols = [], [], [], [], []
        for term in terms:
            simple = _SimpleSpec.parse(term.expr, frame)
            if simple is not None:
                zm = simple.get_model_matrix(frame)
                specs.append(simple)
            else:
                zm = _materialize(term.expr, frame, f"random-effect design of ({term.expr} | ...)")
                specs.append(zm.model_spec)
            cols = [str(c) for c in zm.columns]
            spec_cols.append(cols)
            start_col = len(names)
            for c in cols:
                if c in names:
                    raise ValueError(
                        f"{c!r} appears twice among the random effects of "
                        f"{':'.join(keys)!r}; list each column in one term only."
                    )
            names.extend(cols)
            zs.append(_float_matrix(zm))
            idx = list(range(start_col, start_col + len(cols)))
            if term.correlated:
                blocks.append(idx)
            else:
                blocks.extend([[i] for i in idx])
        z = zs[0] if len(zs) == 1 else np.column_stack(zs)
        if not np.isfinite(z).all():
            raise ValueError(
                f"the random-effect design of {':'.join(keys)!r} has non-finite values."
            )
        codes, labels = _group_codes(frame, keys)
        levels.append(
            _Level(":".join(keys), names, blocks, specs, spec_cols, keys, z, codes, labels)
        )
    levels, nested = _order_levels(levels)
    p = x.shape[1]
    if n <= p:
        raise ValueError(f"only {n} complete rows for {p} fixed effects; more data are needed.")
    _check_identifiable(levels, n)

    # with an intercept, centring the outcome only shifts the intercept's estimate and keeps
    # y'y (from which the residual sum of squares is a difference) small: fewer rounding errors
    # With an intercept, centre the outcome and the other fixed-effect columns: a
    # reparametrization (beta = T beta_c with T = I - e_0 m') that leaves the deviance unchanged
    # (det T = 1) but keeps y'y and X'X, from which the residual sum of squares and R_X are
    # differences of large numbers, small. Fewer rounding errors, a cleaner optimum.
    const = np.flatnonzero(np.all(x == 1.0, axis=0))
    transform = np.eye(p)
    if len(const):
        i0 = const[0]
        means = x.mean(axis=0)
        means[i0] = 0.0
        x_fit = x - means
        y_fit = y - y.mean()
        transform[i0, :] -= means
    else:
        x_fit, y_fit = x, y
    # centre random slopes that share a correlated block with an intercept (z_c = z A): the
    # same model (b = A b_c), a far better conditioned deviance when a slope variable is far
    # from zero (e.g. calendar days), where the optimizer would otherwise stop on a ridge
    if start is None:
        fit_levels, shifts = _centre_slopes(levels)
    else:
        fit_levels, shifts = levels, [np.eye(lv.q) for lv in levels]
    varident = None
    if residual_groups is not None:
        # group-specific residual SDs (nlme's varIdent): rows scaled by 1 / r_g; see
        # _lmm_varident for the likelihood's Jacobian term and the outer search over r
        with _one_blas_thread():
            varident = _fit_varident(
                y_fit, x_fit, fit_levels, xnames, frame, residual_groups, reml, nested, start
            )
        w = varident["w"]
        y_fit, x_fit = y_fit * w, x_fit * w[:, None]
        fit_levels = [replace(lv, z=lv.z * w[:, None]) for lv in fit_levels]
        start = varident["theta"]
    with _one_blas_thread():
        fit = _fit(
            y_fit,
            x_fit,
            fit_levels,
            xnames,
            reml=reml,
            start=start,
            maxiter=maxiter,
            nested=nested,
        )
    if varident is not None:
        fit["deviance"] += varident["jacobian"]

    # ---- assemble results (back to the user's parametrization)
    st, sigma = fit["st"], fit["sigma"]
    beta = transform @ fit["beta"]
    if len(const):
        beta[const[0]] += y.mean()
    fit["sxx"] = transform @ fit["sxx"] @ transform.T
    fit["jac"] = np.einsum("ab,kbc,dc->kad", transform, fit["jac"], transform)
    lambdas = [
        lower_factor(a @ lam, lv.blocks)
        for a, lam, lv in zip(shifts, st.lambdas(fit["theta"]), levels, strict=True)
    ]
    theta = np.array([lambdas[k][i, j] for k, i, j in st.theta_pos])
    diag_mask = np.array([i == j for _, i, j in st.theta_pos])
    singular = bool(np.any(theta[diag_mask] < SINGULAR_TOL))
    covs = [sigma**2 * lam @ lam.T for lam in lambdas]
    vcov = sigma**2 * fit["sxx"]
    phi = vcov
    kr = None
    if ddf == "kenward-roger":
        kr = kenward_roger(
            x,
            [lv.z for lv in levels],
            [lv.codes for lv in levels],
            [lv.blocks for lv in levels],
            covs,
            sigma,
            vcov,
        )
        vcov = kr.phi_a
    se = np.sqrt(np.diag(vcov))
    stat = beta / se
    if ddf in ("satterthwaite", "kenward-roger"):
        if kr is not None:
            dfs = np.array([kr.ddf(np.eye(p)[i]) for i in range(p)])
        else:
            dfs = np.array(
                [
                    _satterthwaite(np.eye(p)[i], vcov[i, i], fit["jac"], fit["vcov_varpar"])
                    for i in range(p)
                ]
            )
        pval = 2 * stats.t.sf(np.abs(stat), dfs)
        crit = stats.t.ppf(0.5 + level / 2, dfs)
    else:
        dfs = np.full(p, np.inf)
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = np.full(p, stats.norm.ppf(0.5 + level / 2))
    params = pd.DataFrame(
        {
            "term": xnames,
            "estimate": beta,
            "se": se,
            "df": dfs,
            "statistic": stat,
            "p": pval,
            "ci_low": beta - crit * se,
            "ci_high": beta + crit * se,
        }
    )
    # random-slope columns were centred for the fit (b = A b_c): back to the user's columns
    vc_rows = []
    for lv, cov in zip(levels, covs, strict=True):
        for block in lv.blocks:
            for i in block:
                vc_rows.append((lv.name, lv.terms[i], "", cov[i, i], math.sqrt(cov[i, i])))
            for a_pos, i in enumerate(block):
                for j in block[a_pos + 1 :]:
                    sd = math.sqrt(cov[i, i] * cov[j, j])
                    corr = cov[i, j] / sd if sd > 0 else math.nan
                    vc_rows.append((lv.name, lv.terms[i], lv.terms[j], cov[i, j], corr))
    vc_rows.append(("Residual", "", "", sigma**2, sigma))
    variance_components = pd.DataFrame(vc_rows, columns=["group", "term", "term2", "vcov", "sdcor"])
    # conditional modes b = Lambda u, mapped back to the original group labels
    random_effects = {}
    b_by_code = []
    for k, lv in enumerate(levels):
        b_sorted = (shifts[k] @ st.lambdas(fit["theta"])[k] @ fit["u"][k]).T
        b = np.empty_like(b_sorted)
        b[st.original[k]] = b_sorted
        b_by_code.append(b)
        random_effects[lv.name] = pd.DataFrame(b, index=lv.labels, columns=lv.terms)
    ztz = [lv.z.T @ lv.z for lv in levels]
    jac = fit["jac"]
    result = LmmResult(
        formula=formula,
        reml=reml,
        ddf=ddf,
        params=params,
        variance_components=variance_components,
        random_effects=random_effects,
        loglik=-0.5 * fit["deviance"],
        nobs=n,
        ngroups={lv.name: len(lv.labels) for lv in levels},
        converged=fit["converged"],
        singular=singular,
        excluded=excluded,
        n_excluded=int(drop.sum()),
        excluded_index=data.index[drop],
        theta=theta,
        sigma=sigma,
        convergence=fit["convergence"],
        cov_params=pd.DataFrame(vcov, index=xnames, columns=xnames),
        vcov_varpar=fit["vcov_varpar"],
        level=level,
        _fit={
            "x": x,
            "y": y,
            "z": [lv.z for lv in levels],
            "codes": [lv.codes for lv in levels],
            "b": b_by_code,
            "index": frame.index,
            "levels": levels,
            "fixed_spec": mm.rhs.model_spec,
            "covs": covs,
            "ztz": ztz,
            "jac": jac,
            "data": data,
            "phi": phi,
            "kr": kr,
            "options": {"ddf": ddf, "level": level, "maxiter": maxiter}
            | ({"residual_groups": residual_groups} if residual_groups is not None else {}),
            "varident": varident,
            "engine": {
                "dev": fit["dev"],
                "theta": fit["theta"],
                "transform": transform,
                "const": int(const[0]) if len(const) else None,
                "ymean": float(y.mean()),
                "shifts": shifts,
                "blocks": [lv.blocks for lv in levels],
                "templates": st.templates,
            },
        },
    )
    if varident is not None:
        result.residual_ratios = pd.Series(
            np.exp(np.r_[0.0, varident["log_r"]]),
            index=pd.Index(varident["labels"], name=residual_groups),
            name="residual SD ratio",
        )
        result.notes.append(
            f"Residual SD by {residual_groups} (varIdent): sigma is that of "
            f"{varident['labels'][0]!r}; ratios in .residual_ratios. Fixed-effect SEs and df "
            "are conditional on the ratios; r2 and icc use that group's residual variance."
        )
    if not result.converged:
        log.warning("lmm: optimizer did not converge: %s", fit["convergence"])
        result.notes.append(
            "The optimizer did not converge (see .convergence); interpret with care."
        )
    if result.singular:
        result.notes.append(
            "Singular fit: a random-effect variance is at zero or a correlation at +-1."
        )
    return result


def _weighted_deviance(y, x, levels: list[_Level], codes, *, reml: bool, nested: bool):
    """A factory ``log r -> deviance object`` of the rows divided by their group's SD ratio.

    Nested designs: the cross products are sums over rows, so those of each residual group
    are formed once and any ratios give a weighted sum of them (no pass over the rows).
    """
    ngroups = int(codes.max()) + 1

    def specs_for(w):
        return [
            LevelSpec(lv.name, lv.codes, lv.z * w[:, None], lv.template(), lv.terms)
            for lv in levels
        ]

    if not nested:

        def make_crossed(log_r):
            w = row_scale(log_r, codes)
            st = build_crossed(y * w, x * w[:, None], specs_for(w))
            return CrossedDeviance(st, reml=reml)

        return make_crossed

    parts = []
    for g in range(ngroups):
        w = (codes == g).astype(float)
        parts.append(build_structure(y * w, x * w[:, None], specs_for(w)))

    def make(log_r):
        c = np.exp(-2.0 * np.r_[0.0, np.asarray(log_r, dtype=float)])
        base = parts[0]
        r = [
            {j: sum(c[g] * parts[g].r[k][j] for g in range(ngroups)) for j in base.r[k]}
            for k in range(base.k)
        ]
        rroot = [sum(c[g] * parts[g].rroot[k] for g in range(ngroups)) for k in range(base.k)]
        wtw = sum(c[g] * parts[g].wtw for g in range(ngroups))
        return ProfiledDeviance(replace(base, r=r, rroot=rroot, wtw=wtw), reml=reml)

    return make


def _fit_varident(y, x, levels, xnames, frame, column, reml, nested, start) -> dict[str, Any]:
    codes, labels = _group_codes(frame, (column,))
    if len(labels) < 2:
        raise ValueError(
            f"residual_groups={column!r} has {len(labels)} group among the rows used; it "
            "needs two or more (or leave residual_groups=None)."
        )
    small = np.bincount(codes) < 2
    if small.any():
        raise ValueError(
            f"residual_groups={column!r}: groups {list(labels[small])} have fewer than two "
            "rows; a residual variance cannot be estimated for them."
        )
    make = _weighted_deviance(y, x, levels, codes, reml=reml, nested=nested)
    log_r0 = start_log_ratios(y, x, codes, len(labels))
    dev0 = make(log_r0)
    _check_rank(dev0.st.wtw[:-1, :-1], xnames)
    theta0 = _moment_start(dev0.st) if start is None else np.asarray(start, dtype=float)
    out = fit_ratios(make, codes, log_r0, theta0)
    out["codes"] = codes
    out["labels"] = list(labels)
    out["w"] = row_scale(out["log_r"], codes)
    out["jacobian"] = 2.0 * float(np.bincount(codes)[1:] @ out["log_r"])
    out["make"] = make
    return out


def _fit(
    y,
    x,
    levels: list[_Level],
    xnames: list[str],
    *,
    reml: bool,
    start,
    maxiter: int,
    nested: bool = True,
) -> dict[str, Any]:
    specs = [LevelSpec(lv.name, lv.codes, lv.z, lv.template(), lv.terms) for lv in levels]
    if nested:
        st = build_structure(y, x, specs)
        _check_rank(st.wtw[:-1, :-1], xnames)
        dev = ProfiledDeviance(st, reml=reml)
    else:
        st = build_crossed(y, x, specs)
        _check_rank(st.wtw[:-1, :-1], xnames)
        dev = CrossedDeviance(st, reml=reml)
    if start is None:
        theta0 = _moment_start(st)
    else:
        theta0 = np.asarray(start, dtype=float)
        if theta0.shape != (st.ntheta,):
            raise ValueError(f"start must have {st.ntheta} values (theta), got {theta0.shape}.")
    # scale each entry of Lambda by its row's starting SD ratio, so the optimizer sees O(1)
    diag0 = {}
    for t, (k, r, c) in enumerate(st.theta_pos):
        if r == c:
            diag0[(k, r)] = max(abs(theta0[t]), 1e-3)
    scale = np.array([diag0[(k, r)] for k, r, _ in st.theta_pos])
    lower = st.lower_bounds()
    bounds = [
        (lo / s if np.isfinite(lo) else None, None) for lo, s in zip(lower, scale, strict=True)
    ]
    evals = {"n": 0}

    def fun(phi):
        evals["n"] += 1
        d, g = dev.deviance_and_gradient(phi * scale)
        return d, g * scale

    options = {"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-9, "maxcor": 20, "maxls": 10}
    history: list[float] = []

    def stop_when_flat(intermediate_result):
        # the deviance is accurate to ~1e-13 relative; iterating below 1e-11 only feeds
        # rounding noise to the line search (the Newton step below finishes the job)
        history.append(float(intermediate_result.fun))
        if len(history) > 1 and history[-2] - history[-1] < 1e-11 * abs(history[-1]):
            raise StopIteration

    diag_mask = np.array([r == c for _, r, c in st.theta_pos])
    nr = st.n - st.p if reml else st.n

    def run(start_theta):
        res = optimize.minimize(
            fun,
            start_theta / scale,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options=options,
            callback=stop_when_flat,
        )
        history.clear()
        theta = res.x * scale
        theta[diag_mask & (theta < 0)] = 0.0
        # ---- Hessian of the (theta, sigma) deviance: Satterthwaite's df, convergence check
        # and a final Newton step that polishes the quasi-Newton optimum
        deviance, g_ld, g_r2, r2, _ = dev.varpar_parts(theta)
        grad = g_ld + nr / r2 * g_r2
        sigma = math.sqrt(r2 / nr)
        hess, dsxx = dev.varpar_hessian(theta, sigma, g_r2, r2)
        h_theta = hess[:-1, :-1] - np.outer(hess[:-1, -1], hess[-1, :-1]) / hess[-1, -1]
        free = ~(diag_mask & (theta <= 1e-10) & (grad > 0))
        if free.any():
            try:
                step = np.linalg.solve(h_theta[np.ix_(free, free)], grad[free])
            except np.linalg.LinAlgError:
                step = None
            if step is not None and np.all(np.isfinite(step)):
                trial = theta.copy()
                trial[free] -= step
                trial[diag_mask & (trial < 0)] = 0.0
                d_trial, g_trial = dev.deviance_and_gradient(trial)
                evals["n"] += 1
                if d_trial <= deviance:
                    theta, deviance, grad = trial, d_trial, g_trial
        return res, theta, deviance, grad, hess, dsxx, h_theta

    def min_curvature(theta, grad, h_theta):
        free = ~(diag_mask & (theta <= 1e-10) & (grad > 0))
        if not free.any():
            return 0.0
        vals = np.linalg.eigvalsh(h_theta[np.ix_(free, free)])
        return float(vals.min() / max(1.0, abs(vals).max()))

    best = run(theta0)
    restarts = 0
    # never stop at a saddle or a ridge: a Hessian that is not positive semi-definite at the
    # optimizer's stopping point means it is not a minimum; restart from other values
    if min_curvature(best[1], best[3], best[6]) < -1e-6:
        alt_starts = [np.where(diag_mask, best[1], 0.0), np.where(diag_mask, 2.0 * theta0, 0.0)]
        for alt in alt_starts:
            restarts += 1
            cand = run(np.maximum(alt, np.where(diag_mask, 1e-2, -np.inf)))
            if cand[2] < best[2]:
                best = cand
            if min_curvature(best[1], best[3], best[6]) >= -1e-6:
                break
    res, theta, deviance, grad, hess, dsxx, h_theta = best
    curvature = min_curvature(theta, grad, h_theta)
    free = ~(diag_mask & (theta <= 1e-10) & (grad > 0))
    f = dev.factor(theta)
    beta, u = dev.solve(f)
    singular = bool(np.any(theta[diag_mask] < SINGULAR_TOL))
    sigma = math.sqrt(f.r2 / nr)
    sxx = dev.sigma_xx(f)
    vcov_varpar = 2.0 * _pinv_psd(hess)
    # d Var(beta) / d (theta, sigma), Var(beta) = sigma^2 (R_X'R_X)^{-1}; the theta part from
    # the Hessian's evaluations (a Newton step of ~1e-6 does not matter at this accuracy)
    jac = np.concatenate([sigma**2 * dsxx, (2 * sigma * sxx)[None]], axis=0)
    # lme4's convergence check: the gradient scaled by the Hessian of the profiled deviance
    # (the remaining Newton step), or the raw gradient if smaller, over the free parameters
    g_free = grad[free]
    h_free = h_theta[np.ix_(free, free)]
    try:
        scaled = np.abs(np.linalg.solve(h_free, g_free))
    except np.linalg.LinAlgError:
        scaled = np.full(len(g_free), np.inf)
    max_grad = float(np.max(np.abs(g_free))) if free.any() else 0.0
    crit = float(np.max(np.minimum(scaled, np.abs(g_free)))) if free.any() else 0.0
    psd = curvature >= -1e-6
    converged = bool(np.isfinite(deviance) and crit < GRADIENT_TOL and psd)
    convergence = {
        "optimizer": "L-BFGS-B",
        "message": str(res.message),
        "iterations": int(res.nit),
        "evaluations": evals["n"],
        "max_abs_gradient": max_grad,
        "max_scaled_gradient": crit,
        "hessian_min_eigenvalue": float(np.linalg.eigvalsh(hess).min()),
        "hessian_psd": bool(psd),
        "restarts": restarts,
        "converged": converged,
    }
    return {
        "st": st,
        "dev": dev,
        "theta": theta,
        "beta": beta,
        "u": u,
        "sigma": sigma,
        "sxx": sxx,
        "deviance": deviance,
        "converged": converged,
        "singular": singular,
        "convergence": convergence,
        "vcov_varpar": vcov_varpar,
        "jac": jac,
    }
