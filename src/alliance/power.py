"""Power analysis by Monte Carlo simulation over the package's models.

For every design (therapists, clients per therapist, sessions, dropout) and every
simulation, a study is drawn with :func:`alliance.simulate.simulate_study`, the chosen
model is fitted, and the estimate, its standard error, confidence interval and p value are
kept. Power is the share of simulations with p below ``alpha``; bias and coverage say how
well the estimator recovers the simulated truth.

Simulations run in parallel on local cores (joblib) or on an existing Dask cluster. Every
simulation's seed is derived from ``seed`` and its (design, simulation) position, so the
numbers are the same whatever ``n_jobs`` or back end. Finished chunks are saved as Parquet
files in ``save_dir``; a run stopped with Ctrl-C resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alliance._checks import close_matches, require_frame
from alliance._frames import with_tables
from alliance.simulate import Effects, _effects, simulate_study
from alliance.study import Study

__all__ = ["POWER_MODELS", "PowerModel", "simulate_power", "summarize_power"]

logger = logging.getLogger(__name__)

_DESIGN_COLUMNS = ("n_therapists", "clients_per_therapist", "n_sessions")
_SIM_COLUMNS = ["design", "sim", "estimate", "se", "ci_low", "ci_high", "p", "error"]


@dataclass(frozen=True)
class PowerModel:
    """A model that power can be computed for.

    Attributes
    ----------
    name : str
        Key in :data:`POWER_MODELS`.
    effect : str
        The :class:`~alliance.simulate.Effects` field whose value is the truth.
    description : str
        What is estimated, in words.
    fit : callable
        ``fit(study, engine) -> dict`` with estimate, se, ci_low, ci_high, p.
    """

    name: str
    effect: str
    description: str
    fit: Callable[..., dict]


def _row(estimate, se, ci_low, ci_high, p) -> dict:
    return {
        "estimate": float(estimate),
        "se": float(se),
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p": float(p),
    }


def _lagged_frame(study, reverse: bool) -> tuple[pd.DataFrame, str]:
    from alliance.models._prep import decompose, lead

    s = study.sessions.assign(wai=study.sessions["wai_sr"] / 12.0)
    x, y = ("phq9", "wai") if reverse else ("wai", "phq9")
    parts = decompose(s, x, "client", "session", detrend=True)
    frame = pd.DataFrame(
        {
            "client": s["client"],
            "session": s["session"],
            "x_within": parts["within"],
            "x_between": parts["between"],
            "y": lead(s, y, "client", "session"),
        }
    ).dropna()
    return frame, x


def _fit_lagged(study, engine: str, reverse: bool) -> dict:
    if engine == "alliance":
        from alliance.models import within_between

        s = study.sessions.assign(wai=study.sessions["wai_sr"] / 12.0)
        fit = within_between(
            s, alliance="wai", outcome="phq9", reverse=reverse, session_slope=False, method="mlm"
        )
        row = fit.params.set_index("term").loc[("phq9" if reverse else "wai") + "_within"]
        return _row(row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["p"])
    import statsmodels.formula.api as smf

    frame, _ = _lagged_frame(study, reverse)
    res = smf.mixedlm("y ~ x_within + x_between + session", frame, groups="client").fit(reml=True)
    lo, hi = res.conf_int().loc["x_within"]
    return _row(res.params["x_within"], res.bse["x_within"], lo, hi, res.pvalues["x_within"])


def _fit_prior_negative(study, engine: str) -> dict:
    s = study.sessions
    early = (
        s[s["session"] <= 3]
        .groupby("client", sort=False)["wai_sr"]
        .mean()
        .div(12.0)
        .rename("early")
        .reset_index()
    )
    frame = early.merge(
        study.clients[["client", "therapist", "prior_negative_therapy"]], on="client"
    )
    frame["pnt"] = frame["prior_negative_therapy"].astype(float)
    if engine == "alliance":
        from alliance.models import lmm

        row = lmm("early ~ pnt + (1 | therapist)", frame).params.set_index("term").loc["pnt"]
        return _row(row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["p"])
    import statsmodels.formula.api as smf

    res = smf.mixedlm("early ~ pnt", frame, groups="therapist").fit(reml=True)
    lo, hi = res.conf_int().loc["pnt"]
    return _row(res.params["pnt"], res.bse["pnt"], lo, hi, res.pvalues["pnt"])


#: The models :func:`simulate_power` knows by name.
POWER_MODELS: dict[str, PowerModel] = {
    m.name: m
    for m in (
        PowerModel(
            "within",
            "within",
            "within-client effect of alliance (item mean, detrended) on next-session PHQ-9 "
            "(alliance.models.within_between, random client intercept)",
            lambda study, engine: _fit_lagged(study, engine, reverse=False),
        ),
        PowerModel(
            "reverse",
            "reverse",
            "within-client effect of PHQ-9 on next-session alliance (item mean)",
            lambda study, engine: _fit_lagged(study, engine, reverse=True),
        ),
        PowerModel(
            "prior_negative_therapy",
            "prior_negative_alliance",
            "difference in early alliance (item mean, sessions 1-3) after a prior negative "
            "therapy (random therapist intercept)",
            _fit_prior_negative,
        ),
    )
}


def _model(model: str | PowerModel) -> PowerModel:
    if isinstance(model, PowerModel):
        return model
    if model not in POWER_MODELS:
        near = close_matches(model, POWER_MODELS)
        tip = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(
            f"no power model named {model!r}.{tip} Known: {', '.join(POWER_MODELS)}; or pass "
            "a PowerModel with your own fit function"
        )
    return POWER_MODELS[model]


def _designs(design_grid: pd.DataFrame) -> pd.DataFrame:
    grid = require_frame(design_grid, "design_grid").reset_index(drop=True)
    missing = [c for c in _DESIGN_COLUMNS if c not in grid.columns]
    if missing:
        raise KeyError(
            f"design_grid lacks column(s) {missing}; it needs n_therapists, "
            "clients_per_therapist and n_sessions (and optionally dropout, n_sites)"
        )
    unknown = set(grid.columns) - {*_DESIGN_COLUMNS, "dropout", "n_sites"}
    if unknown:
        raise KeyError(
            f"design_grid has unknown column(s) {sorted(unknown)}; allowed: "
            f"{', '.join(_DESIGN_COLUMNS)}, dropout, n_sites"
        )
    for col in _DESIGN_COLUMNS:
        bad = grid[col].isna() | (grid[col] < 1) | (grid[col] % 1 != 0)
        if bad.any():
            raise ValueError(f"design_grid[{col!r}] must hold whole numbers >= 1")
    if "dropout" in grid and not grid["dropout"].between(0, 1, inclusive="neither").all():
        raise ValueError("design_grid['dropout'] is a per-session probability between 0 and 1")
    return grid


def _effects_for(design: pd.Series, effects: dict) -> dict:
    out = dict(effects)
    if "dropout" in design and not pd.isna(design["dropout"]):
        p = float(design["dropout"])
        out["dropout_base"] = math.log(p / (1.0 - p))
    return out


def _subset(study: Study, design: dict) -> Study:
    """The first therapists, clients per therapist and sessions of a larger simulated study."""
    clients = study.clients
    therapists = pd.unique(clients["therapist"])[: int(design["n_therapists"])]
    position = clients.groupby("therapist", sort=False).cumcount()
    chosen = clients[
        clients["therapist"].isin(therapists) & (position < int(design["clients_per_therapist"]))
    ]
    keep = set(chosen["client"])
    horizon = int(design["n_sessions"])
    sessions, events = study.sessions, study.events
    return Study(
        sessions=sessions[
            sessions["client"].isin(keep) & (sessions["session"] <= horizon)
        ].reset_index(drop=True),
        clients=chosen.reset_index(drop=True),
        events=events[events["client"].isin(keep) & (events["session"] <= horizon)].reset_index(
            drop=True
        ),
        codebook=study.codebook,
        truth=study.truth,
        name=study.name,
    )


def _run_chunk(
    key: tuple[int, ...],
    sims: list[int],
    superset: dict,
    members: list[tuple[int, dict]],
    effects: dict,
    model: PowerModel,
    engine: str,
    seed: int,
) -> pd.DataFrame:
    """Simulate ``superset`` once per simulation and fit every member design on it."""
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1):
        for j in sims:
            rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(*key, j)))
            try:
                study = simulate_study(
                    int(superset["n_therapists"]),
                    int(superset["clients_per_therapist"]),
                    int(superset["n_sessions"]),
                    n_sites=int(superset.get("n_sites", 1) or 1),
                    effects=effects,
                    seed=rng,
                )
                simulated = ""
            except (ValueError, KeyError) as err:
                study, simulated = None, f"{type(err).__name__}: {err}"[:300]
            for i, design in members:
                row = {"design": i, "sim": j}
                try:
                    if study is None:
                        raise ValueError(simulated)
                    sample = study if design == superset else _subset(study, design)
                    row.update(model.fit(sample, engine))
                    row["error"] = ""
                except (ValueError, np.linalg.LinAlgError, KeyError) as err:
                    row.update({k: np.nan for k in ("estimate", "se", "ci_low", "ci_high", "p")})
                    row["error"] = f"{type(err).__name__}: {err}"[:300]
                rows.append(row)
    return pd.DataFrame(rows, columns=_SIM_COLUMNS)


def _groups(grid: pd.DataFrame, nested: bool) -> list[tuple[tuple[int, ...], dict, list]]:
    """(seed key, design to simulate, member designs) for each stream of simulations."""
    designs = [(i, grid.iloc[i].to_dict()) for i in range(len(grid))]
    if not nested:
        return [((i,), d, [(i, d)]) for i, d in designs]
    by = [c for c in ("dropout", "n_sites") if c in grid.columns]
    labels = grid[by].astype(str).agg("|".join, axis=1) if by else pd.Series("", grid.index)
    out = []
    for g, label in enumerate(pd.unique(labels)):
        members = [(i, d) for i, d in designs if labels.iloc[i] == label]
        superset = dict(members[0][1])
        for col in _DESIGN_COLUMNS:
            superset[col] = max(d[col] for _, d in members)
        out.append(((1_000_000 + g,), superset, members))
    return out


def simulate_power(
    design_grid: pd.DataFrame,
    effects: dict | None = None,
    model: str | PowerModel = "within",
    *,
    n_sims: int = 100,
    seed: int = 2026,
    alpha: float = 0.05,
    n_jobs: int = -1,
    backend: str = "loky",
    address: str | None = None,
    engine: str = "alliance",
    save_dir: str | Path | None = None,
    chunk_size: int = 10,
    nested: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Power, bias and coverage by simulation, for each design of a grid.

    Parameters
    ----------
    design_grid : pandas.DataFrame
        One row per design: ``n_therapists``, ``clients_per_therapist``, ``n_sessions``;
        optional ``dropout`` (per-session probability of leaving at average alliance) and
        ``n_sites``.
    effects : dict, optional
        Generating values, names as :class:`alliance.simulate.Effects` (e.g.
        ``{"within": -1.0}``); the rest keep their defaults.
    model : str or PowerModel, default "within"
        ``"within"``, ``"reverse"`` or ``"prior_negative_therapy"`` (see
        :data:`POWER_MODELS`), or your own :class:`PowerModel`.
    n_sims : int, default 100
        Simulations per design.
    seed : int, default 2026
        The simulation of design ``i``, number ``j`` uses the seed
        ``SeedSequence(seed, spawn_key=(i, j))``: the same numbers for any ``n_jobs`` or
        back end.
    alpha : float, default 0.05
        Two-sided significance level.
    n_jobs : int, default -1
        Local processes (-1: all cores). Ignored by the Dask back end.
    backend : {"loky", "dask", "sequential"}
        joblib's process pool, an existing Dask cluster, or one process.
    address : str, optional
        The Dask scheduler's address (``tcp://host:8786``); without it, the Dask client
        already running in this session is used.
    engine : {"alliance", "statsmodels"}
        Which mixed-model engine fits each simulation.
    save_dir : str or pathlib.Path, optional
        Folder for finished chunks (Parquet). A later call with the same arguments and
        folder skips what is already there; change ``seed`` or the grid and use a new folder.
    chunk_size : int, default 10
        Simulations per task (and per saved file).
    nested : bool, default False
        Reuse one simulated study across the designs of the grid: each simulation draws the
        largest design once (per ``dropout`` and ``n_sites``), and every smaller design is
        fitted on its first therapists, clients per therapist and sessions. The designs
        then share their random draws (common random numbers), so power curves are
        smoother and a grid costs one simulation per draw instead of one per design. The
        smaller samples follow the same generating model, except at their last session
        (a rupture may start there, and the last planned session may be missed), which
        matters little for power.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per design: the design columns, ``truth``, ``n_sims``, ``n_failed``,
        ``power`` with ``power_ci_low``/``power_ci_high`` (Wilson), ``mean_estimate``,
        ``bias``, ``relative_bias``, ``empirical_se``, ``mean_se``, ``coverage``. The table
        of every simulation is in ``.tables["simulations"]``; failed fits are counted in
        ``n_failed`` and their errors kept there, never dropped silently.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.power import simulate_power
    >>> grid = pd.DataFrame({"n_therapists": [4], "clients_per_therapist": [5],
    ...                      "n_sessions": [8]})
    >>> result = simulate_power(grid, model="prior_negative_therapy", n_sims=4, n_jobs=1,
    ...                         backend="sequential")
    >>> result[["n_sims", "n_failed", "truth"]].iloc[0].tolist()
    [4.0, 0.0, -0.35]
    """
    grid = _designs(design_grid)
    spec = _model(model)
    effects = dict(effects or {})
    _effects(effects)  # unknown names fail here, with a close match
    if engine not in ("alliance", "statsmodels"):
        raise ValueError(f"engine must be 'alliance' or 'statsmodels', not {engine!r}")
    if backend not in ("loky", "dask", "sequential"):
        raise ValueError(f"backend must be 'loky', 'dask' or 'sequential', not {backend!r}")
    if n_sims < 1 or chunk_size < 1:
        raise ValueError("n_sims and chunk_size must be at least 1")
    truth = float(effects.get(spec.effect, getattr(Effects(), spec.effect)))
    streams = _groups(grid, nested)
    chunks = [
        (g, list(range(start, min(start + chunk_size, n_sims))))
        for g in range(len(streams))
        for start in range(0, n_sims, chunk_size)
    ]
    done: list[pd.DataFrame] = []
    folder = Path(save_dir) if save_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        finished = {p.name for p in folder.glob("part-*.parquet")}
        todo = []
        for g, sims in chunks:
            name = _part_name(streams[g][0], sims[0])
            if name in finished:
                done.append(pd.read_parquet(folder / name))
            else:
                todo.append((g, sims))
        if done:
            logger.info("resuming: %d of %d chunks already in %s", len(done), len(chunks), folder)
        chunks = todo
    tasks = [
        (
            streams[g][0],
            sims,
            streams[g][1],
            streams[g][2],
            _effects_for(pd.Series(streams[g][1]), effects),
        )
        for g, sims in chunks
    ]
    try:
        for key, frame in _execute(tasks, spec, engine, seed, n_jobs, backend, address, progress):
            if folder is not None:
                frame.to_parquet(folder / _part_name(key, int(frame["sim"].min())), index=False)
            done.append(frame)
    except KeyboardInterrupt:
        logger.warning(
            "interrupted: %d simulations finished%s",
            sum(len(d) for d in done),
            f" and saved in {folder}; run the same call again to resume" if folder else "",
        )
        raise
    sims = (
        pd.concat(done, ignore_index=True).sort_values(["design", "sim"]).reset_index(drop=True)
        if done
        else pd.DataFrame(columns=_SIM_COLUMNS)
    )
    return summarize_power(sims, grid, truth=truth, alpha=alpha)


def _part_name(key: tuple[int, ...], first_sim: int) -> str:
    return f"part-k{key[0]:07d}-s{first_sim:07d}.parquet"


def _execute(tasks, spec, engine, seed, n_jobs, backend, address, progress):
    """Run the chunks; yield (seed key, finished simulations) as they finish."""
    from joblib import Parallel, delayed, parallel_config
    from tqdm import tqdm

    bar = tqdm(
        total=sum(len(t[1]) * len(t[3]) for t in tasks),
        disable=not progress,
        unit="fit",
        desc="simulations",
    )

    def run(task):
        key, sims, superset, members, eff = task
        return key, _run_chunk(key, sims, superset, members, eff, spec, engine, seed)

    try:
        if backend == "sequential":
            for task in tasks:
                key, frame = run(task)
                bar.update(len(frame))
                yield key, frame
            return
        calls = (delayed(run)(task) for task in tasks)
        if backend == "dask":
            client = _dask_client(address)
            with parallel_config(backend="dask", scheduler_host=client.scheduler.address):
                results = Parallel(return_as="generator_unordered")(calls)
                for key, frame in results:
                    bar.update(len(frame))
                    yield key, frame
            return
        results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(calls)
        for key, frame in results:
            bar.update(len(frame))
            yield key, frame
    finally:
        bar.close()


def _dask_client(address: str | None):
    try:
        from distributed import Client, get_client
    except ImportError as err:  # pragma: no cover - dask is a dev dependency
        raise ModuleNotFoundError(
            "backend='dask' needs dask.distributed: pip install 'dask[distributed]'"
        ) from err
    if address is not None:
        return Client(address)
    try:
        return get_client()
    except ValueError as err:
        raise ValueError(
            "backend='dask' needs a running cluster: pass address='tcp://host:8786' or start "
            "a distributed.Client in this session first"
        ) from err


def summarize_power(
    sims: pd.DataFrame, grid: pd.DataFrame, *, truth: float, alpha: float = 0.05
) -> pd.DataFrame:
    """Power, bias and coverage per design from a table of simulations.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.power import summarize_power
    >>> sims = pd.DataFrame({"design": [0, 0], "sim": [0, 1], "estimate": [-1.0, -3.0],
    ...                      "se": [0.5, 0.5], "ci_low": [-2.0, -4.0], "ci_high": [0.0, -2.0],
    ...                      "p": [0.04, 0.001], "error": ["", ""]})
    >>> grid = pd.DataFrame({"n_therapists": [4], "clients_per_therapist": [5],
    ...                      "n_sessions": [8]})
    >>> summarize_power(sims, grid, truth=-2.5)[["power", "bias", "coverage"]].iloc[0].tolist()
    [1.0, 0.5, 0.5]
    """
    z = stats.norm.ppf(0.975)
    rows = []
    for i in range(len(grid)):
        part = sims[sims["design"] == i]
        ok = part[part["error"].fillna("") == ""].dropna(subset=["estimate", "p"])
        n = len(ok)
        hits = int((ok["p"] < alpha).sum())
        power = hits / n if n else np.nan
        # Wilson score interval for a binomial proportion
        centre = (hits + z**2 / 2) / (n + z**2) if n else np.nan
        half = (
            z * math.sqrt(power * (1 - power) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
            if n
            else np.nan
        )
        mean_est = ok["estimate"].mean()
        rows.append(
            {
                **grid.iloc[i].to_dict(),
                "truth": truth,
                "n_sims": int(len(part)),
                "n_failed": int(len(part) - n),
                "power": power,
                "power_ci_low": centre - half,
                "power_ci_high": centre + half,
                "mean_estimate": mean_est,
                "bias": mean_est - truth,
                "relative_bias": (mean_est - truth) / truth if truth else np.nan,
                "empirical_se": ok["estimate"].std(ddof=1) if n > 1 else np.nan,
                "mean_se": ok["se"].mean(),
                "coverage": ((ok["ci_low"] <= truth) & (truth <= ok["ci_high"])).mean()
                if n
                else np.nan,
            }
        )
    out = pd.DataFrame(rows)
    return with_tables(out, simulations=sims)
