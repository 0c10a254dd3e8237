"""Likelihood-ratio comparison of mixed models, as lme4's ``anova(m0, m1, ...)``.

:func:`compare` takes two or more fits of :func:`alliance.models.lmm` (or of
:func:`alliance.models.glmm`) to the same rows, orders them by their number of parameters and
tests each against the one before it. REML fits are refitted by maximum likelihood first
(lme4's ``refit = TRUE``): REML likelihoods of models with different fixed effects are not
comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from alliance.models._lmm_boot import bootstrap as run_bootstrap
from alliance.models.glmm import GlmmResult
from alliance.models.lmm import LmmResult
from alliance.results import Result

__all__ = ["compare", "ComparisonResult"]

TABLE_COLUMNS = [
    "model",
    "formula",
    "method",
    "npar",
    "aic",
    "bic",
    "loglik",
    "deviance",
    "chisq",
    "df",
    "p",
    "p_boundary",
]

REFIT_NOTE = "refitting model(s) with ML (instead of REML)"


@dataclass(repr=False)
class ComparisonResult(Result):
    """Result of :func:`compare` (an :class:`alliance.results.Result`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model, ordered by number of parameters (as lme4's ``anova``): ``model``
        (position in the call, from 0), ``formula``, ``method`` (``ML``/``REML``/``Laplace``/
        ``AGQ``: the likelihood in the row), ``npar``, ``aic``, ``bic``, ``loglik``,
        ``deviance`` (-2 logLik), and for every row after the first the test against the row
        before it: ``chisq`` (``2 * max(0, logLik difference)``), ``df`` (difference in
        ``npar``), ``p`` (chi-square) and ``p_boundary`` (the chi-bar-square p value when the
        two models differ only by one added random-effect variance with its covariances, else
        NaN).
    params : pandas.DataFrame
        The tests in the results contract's layout: ``term`` names the pair, ``estimate`` and
        ``statistic`` are the chi-square, ``df`` its degrees of freedom.
    refitted : bool
        Whether REML fits were refitted by ML.
    fits : list
        The fits the table rests on (the ML refits where refitted), in the table's order.
    nobs : int
    notes : list of str
    bootstrap : pandas.DataFrame or None
        With ``bootstrap=nsim``: one row per test (``term`` as in ``params``) with ``chisq``
        (observed), ``p_boot``, ``n_boot`` (successful simulations) and ``n_failed``; the
        simulated statistics are in ``boot_chisq`` (dict term -> array). ``table`` then has
        a ``p_boot`` column.
    """

    table: pd.DataFrame
    params: pd.DataFrame
    refitted: bool
    fits: list
    nobs: int
    excluded: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    bootstrap: pd.DataFrame | None = None
    boot_chisq: dict | None = None

    citation = (
        "Bates, Maechler, Bolker & Walker (2015), Journal of Statistical Software 67(1); "
        "Stram & Lee (1994), Biometrics 50(4) (chi-bar-square)"
    )

    @property
    def model(self) -> str:
        return "likelihood-ratio comparison of mixed models"

    def _n_by_level(self) -> dict[str, int]:
        return {"rows": self.nobs}

    def __repr__(self) -> str:
        return f"<ComparisonResult: {len(self.table)} models, nobs={self.nobs}>"

    def summary(self) -> str:
        lines = [self.model, f"Observations: {self.nobs}", ""]
        show = self.table.drop(columns=["formula"])
        lines.append(show.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        lines.append("")
        lines += [f"{row.model}: {row.formula}" for row in self.table.itertuples()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _kind(fit) -> str:
    if isinstance(fit, LmmResult):
        return "lmm"
    if isinstance(fit, GlmmResult):
        return "glmm"
    raise TypeError(
        f"compare takes results of alliance.models.lmm or alliance.models.glmm, not "
        f"{type(fit).__name__}."
    )


def _npar(fit) -> int:
    if isinstance(fit, LmmResult):
        return fit.n_params
    return len(fit.params) + len(fit.theta)


def _method(fit) -> str:
    if isinstance(fit, LmmResult):
        return fit.method
    return "Laplace" if fit.nagq == 1 else f"AGQ({fit.nagq})"


def _formula(fit) -> str:
    return fit.formula


def _check_same_rows(fits: list) -> None:
    first = fits[0]
    for i, fit in enumerate(fits[1:], start=1):
        if fit.nobs != first.nobs:
            raise ValueError(
                f"model 0 was fitted to {first.nobs} rows and model {i} to {fit.nobs}: a "
                "likelihood-ratio test needs the same rows. Drop the rows with missing values "
                "in any variable of either model before fitting both (e.g. "
                "data.dropna(subset=[...]))."
            )
        if not first.rows.equals(fit.rows):
            raise ValueError(
                f"models 0 and {i} were fitted to different rows (same count, different "
                "index labels): fit both to the same data frame."
            )
        if not np.array_equal(first.outcome, fit.outcome):
            raise ValueError(
                f"models 0 and {i} have different outcomes or weights ({first.formula!r} and "
                f"{fit.formula!r}); likelihoods of different outcomes (or of a transformed "
                "outcome) cannot be compared."
            )


def _vc_keys(fit) -> set[tuple[str, str, str]]:
    vc = fit.variance_components
    keep = vc[vc["group"] != "Residual"]
    return {(r.group, r.term, r.term2) for r in keep.itertuples()}


def _one_added_variance(small, big) -> int | None:
    """Number of parameters added when ``big`` adds one variance (and its covariances) to
    ``small`` with the same fixed effects; ``None`` otherwise."""
    if list(small.params["term"]) != list(big.params["term"]):
        return None
    a, b = _vc_keys(small), _vc_keys(big)
    if not a <= b:
        return None
    added = b - a
    variances = [k for k in added if k[2] == ""]
    if len(variances) != 1:
        return None
    group, term, _ = variances[0]
    if not all(k[2] == "" or (k[0] == group and term in (k[1], k[2])) for k in added):
        return None
    return len(added)


def compare(
    *fits, refit: bool = True, bootstrap: int | None = None, seed=None, n_jobs: int = 1
) -> ComparisonResult:
    """Likelihood-ratio tests of nested mixed models, as lme4's ``anova(m0, m1, ...)``.

    Parameters
    ----------
    *fits : LmmResult or GlmmResult
        Two or more models fitted to the same rows (and the same outcome). They are ordered
        by number of parameters and each is tested against the one before it, so list
        models that are nested in that order.
    refit : bool, default True
        Refit REML fits by maximum likelihood first (lme4's ``refit = TRUE``; a note says so).
        ``False`` compares REML likelihoods, which is valid only for models with the same
        fixed effects (refused otherwise) and all fitted by REML.
    bootstrap : int, optional
        Number of parametric-bootstrap samples for each test (linear mixed models only), as
        pbkrtest's ``PBmodcomp``: responses simulated from the smaller model, both models
        refitted to each (by ML after an ML refit, else by the models' criterion), and
        ``p_boot = (1 + #{chisq* >= chisq}) / (1 + n)``. It needs no chi-square or boundary
        approximation.
    seed : int or numpy.random.Generator, optional
        Seed of the bootstrap (same seed, same p values, also with ``n_jobs > 1``).
    n_jobs : int, default 1
        Parallel refits with joblib (``-1``: all cores).

    Returns
    -------
    ComparisonResult
        ``.table`` (npar, AIC, BIC, logLik, deviance, Chisq, Df, p as lme4's ``anova``, and
        ``p_boundary``), ``.params``, ``.notes``.

    Raises
    ------
    ValueError
        Fewer than two models, models fitted to different rows or outcomes, linear and
        generalized models mixed, or ``refit=False`` with different fixed effects or with ML
        and REML fits mixed.
    TypeError
        A result that is not from ``lmm`` or ``glmm``.

    Notes
    -----
    The statistic is ``2 * max(0, logLik_i - logLik_{i-1})`` on ``npar_i - npar_{i-1}`` df.
    A test of a variance component is a test of a parameter on the boundary of its space
    (a variance of zero), so the chi-square p value is conservative: when the larger model
    adds one random effect (a variance and its ``k - 1`` covariances with the random effects
    already in its term) to otherwise the same model, the null distribution is the 50:50
    mixture of chi-square with ``k - 1`` and ``k`` df (Self & Liang 1987; Stram & Lee 1994);
    ``p_boundary`` gives it (for one variance alone, half the chi-square p value). For other
    differences in the random part no simple mixture applies and ``p_boundary`` is NaN.

    Examples
    --------
    >>> import alliance
    >>> sessions = alliance.datasets.load_dataset("demo").sessions
    >>> m0 = alliance.models.lmm("phq9 ~ session + (1 | client)", sessions)
    >>> m1 = alliance.models.lmm("phq9 ~ session + wai_sr + (1 | client)", sessions)
    >>> out = alliance.models.compare(m0, m1)
    >>> out.table["npar"].tolist()
    [4, 5]
    >>> out.notes[0]
    'refitting model(s) with ML (instead of REML)'
    >>> boot = alliance.models.compare(m0, m1, bootstrap=5, seed=1)
    >>> boot.bootstrap["n_boot"].tolist()
    [5]
    """
    if len(fits) == 1 and isinstance(fits[0], list | tuple):
        fits = tuple(fits[0])
    if len(fits) < 2:
        raise ValueError("compare needs at least two fitted models, e.g. compare(m0, m1).")
    kinds = {_kind(f) for f in fits}
    if len(kinds) > 1:
        raise ValueError(
            "compare cannot mix linear (lmm) and generalized (glmm) mixed models: their "
            "likelihoods are of different outcome distributions."
        )
    fits = list(fits)
    _check_same_rows(fits)
    notes: list[str] = []
    refitted = False
    if kinds == {"lmm"}:
        remls = [f.reml for f in fits]
        if refit and any(remls):
            fits = [f.refit(reml=False) for f in fits]
            refitted = True
            notes.append(REFIT_NOTE)
        elif not refit:
            if len(set(remls)) > 1:
                raise ValueError(
                    "refit=False needs all models fitted by the same criterion; some are REML "
                    "and some ML fits. Use refit=True (the default)."
                )
            if remls[0]:
                terms = {tuple(f.params["term"]) for f in fits}
                if len(terms) > 1:
                    raise ValueError(
                        "REML likelihoods of models with different fixed effects cannot be "
                        "compared; use refit=True (ML refits, the default) or fit with "
                        "reml=False."
                    )
    if kinds == {"glmm"} and len({f.nagq for f in fits}) > 1:
        notes.append(
            "the models use different numbers of quadrature points (nagq); their likelihoods "
            "are approximations of different accuracy."
        )
    npar = np.array([_npar(f) for f in fits])
    order = np.argsort(npar, kind="stable")
    ordered = [fits[i] for i in order]
    ll = np.array([f.loglik for f in ordered])
    nobs = ordered[0].nobs
    k = npar[order]
    chisq = np.full(len(fits), np.nan)
    df = np.full(len(fits), np.nan)
    p = np.full(len(fits), np.nan)
    p_boundary = np.full(len(fits), np.nan)
    for i in range(1, len(fits)):
        chisq[i] = 2.0 * max(0.0, ll[i] - ll[i - 1])
        df[i] = k[i] - k[i - 1]
        if df[i] > 0:
            p[i] = float(stats.chi2.sf(chisq[i], df[i]))
        added = _one_added_variance(ordered[i - 1], ordered[i])
        if added is not None and added == df[i]:
            lower = float(stats.chi2.sf(chisq[i], added - 1)) if added > 1 else 0.0
            if chisq[i] == 0.0:
                lower = 1.0
            p_boundary[i] = 0.5 * lower + 0.5 * float(stats.chi2.sf(chisq[i], added))
    if np.any(df[1:] == 0):
        notes.append(
            "two models have the same number of parameters (Df 0): they are not nested and "
            "have no likelihood-ratio test; compare them by AIC/BIC."
        )
    if np.isfinite(p_boundary).any():
        notes.append(
            "a test of a random-effect variance is a test on the boundary (variance 0): the "
            "chi-square p is conservative; p_boundary is the chi-bar-square mixture p "
            "(for one variance alone, half the chi-square p)."
        )
    table = pd.DataFrame(
        {
            "model": order.astype(int),
            "formula": [_formula(f) for f in ordered],
            "method": [_method(f) for f in ordered],
            "npar": k.astype(int),
            "aic": -2.0 * ll + 2.0 * k,
            "bic": -2.0 * ll + math.log(nobs) * k,
            "loglik": ll,
            "deviance": -2.0 * ll,
            "chisq": chisq,
            "df": df,
            "p": p,
            "p_boundary": p_boundary,
        }
    )[TABLE_COLUMNS]
    params = pd.DataFrame(
        {
            "term": [
                f"model {table['model'][i]} vs model {table['model'][i - 1]}"
                for i in range(1, len(fits))
            ],
            "estimate": chisq[1:],
            "se": np.nan,
            "df": df[1:],
            "statistic": chisq[1:],
            "p": p[1:],
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    )
    boot = boot_chisq = None
    if bootstrap is not None:
        if kinds != {"lmm"}:
            raise ValueError(
                "bootstrap= is implemented for linear mixed models (lmm) only; for glmm fits "
                "use the likelihood-ratio test (or its p_boundary)."
            )
        if int(bootstrap) != bootstrap or bootstrap < 1:
            raise ValueError(f"bootstrap must be a positive number of samples, not {bootstrap!r}.")
        rng = np.random.default_rng(seed)
        rows, boot_chisq = [], {}
        p_boot = np.full(len(fits), np.nan)
        for i in range(1, len(fits)):
            small, big = ordered[i - 1], ordered[i]
            term = params["term"].iloc[i - 1]
            if df[i] <= 0:
                rows.append((term, chisq[i], np.nan, 0, 0))
                continue
            responses = small.simulate(int(bootstrap), seed=rng)

            def lrt(y, small=small, big=big):
                return 2.0 * max(0.0, big.refit(response=y).loglik - small.refit(response=y).loglik)

            draws = run_bootstrap(responses, lambda y: y, lrt, n_jobs=n_jobs)
            ok = np.array([d for d in draws if d is not None], dtype=float)
            p_boot[i] = (1 + np.sum(ok >= chisq[i] - 1e-10)) / (1 + len(ok))
            boot_chisq[term] = ok
            rows.append((term, chisq[i], p_boot[i], len(ok), len(draws) - len(ok)))
        table["p_boot"] = p_boot
        boot = pd.DataFrame(rows, columns=["term", "chisq", "p_boot", "n_boot", "n_failed"])
        notes.append(
            f"parametric bootstrap ({int(bootstrap)} samples per test, as pbkrtest's PBmodcomp): "
            "responses simulated from the smaller model, both models refitted; p_boot = "
            "(1 + #{chisq* >= chisq}) / (1 + n)."
        )
        failed = int(boot["n_failed"].sum())
        if failed:
            notes.append(f"{failed} bootstrap refits failed and were left out of p_boot.")
    return ComparisonResult(
        table=table,
        params=params,
        refitted=refitted,
        fits=ordered,
        nobs=nobs,
        excluded=ordered[0].excluded,
        notes=notes,
        bootstrap=boot,
        boot_chisq=boot_chisq,
    )
