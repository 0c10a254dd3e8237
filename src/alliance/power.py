"""Power analysis by Monte Carlo simulation over the registered models.

For every design (therapists, clients per therapist, sessions, dropout) and every
simulation, a study is drawn by the model's simulation hook (by default
:func:`alliance.simulate.simulate_study`), the model's own public function is fitted with
the columns the study's codebook gives each role, and the model's focal term is kept:
estimate, standard error, confidence interval and p value. Power is the share of
simulations with p below ``alpha``; bias and coverage say how well the estimator recovers
the simulated truth. Any model in :func:`alliance.models.list_models` with a simulation
hook can be run, including one registered by the user (see ``docs/guide/power.md``).

Simulations run in parallel on local cores (joblib) or on an existing Dask cluster. Every
simulation's seed is derived from ``seed`` and its (design, simulation) position, so the
numbers are the same whatever ``n_jobs`` or back end. Finished chunks are saved as Parquet
files in ``save_dir``; a run stopped with Ctrl-C resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alliance._checks import require_frame
from alliance._frames import with_tables
from alliance.models.registry import ModelSpec, get_model, list_models, study_roles
from alliance.simulate import Effects, as_effects
from alliance.study import Study

__all__ = ["fit_simulated", "power_models", "simulate_power", "summarize_power"]

logger = logging.getLogger(__name__)

_DESIGN_COLUMNS = ("n_therapists", "clients_per_therapist", "n_sessions")
_SIM_COLUMNS = ["design", "sim", "estimate", "se", "ci_low", "ci_high", "p", "truth", "error"]
_ESTIMATES = ("estimate", "se", "ci_low", "ci_high", "p")


def power_models() -> pd.DataFrame:
    """The registered models :func:`simulate_power` can run (those with a simulation hook).

    Examples
    --------
    >>> from alliance.power import power_models
    >>> {"within_between", "early_alliance_difference"} <= set(power_models()["name"])
    True
    """
    return list_models(simulate=True)


def _model(model: str | ModelSpec) -> ModelSpec:
    spec = get_model(model)
    if spec.simulation is None:
        able = ", ".join(power_models()["name"])
        raise ValueError(
            f"model {spec.name!r} has no simulation hook, so power cannot simulate data for it "
            f"(models it can: {able}); register it with simulate=Simulation(...) to add one"
        )
    return spec


def fit_simulated(spec: ModelSpec, study: Study, effects: Effects, engine: str = "alliance"):
    """Fit a registered model to one simulated study: its focal row and the truth.

    The columns come from the study's codebook (:func:`alliance.models.study_roles`); the
    model's public function is called with them and the hook's options, and the focal
    term's estimate, se, ci_low, ci_high and p are returned with ``truth``, the focal
    term's value implied by ``effects`` (NaN when the hook has none).

    Examples
    --------
    >>> from alliance.models import get_model
    >>> from alliance.power import fit_simulated
    >>> from alliance.simulate import as_effects, simulate_study
    >>> row = fit_simulated(get_model("prior_negative_therapy"),
    ...                     simulate_study(4, 5, 6, n_sites=1, seed=1), as_effects())
    >>> sorted(row)
    ['ci_high', 'ci_low', 'estimate', 'p', 'se', 'truth']
    >>> round(row["truth"], 2)
    -4.2
    """
    sim = spec.simulation
    roles = study_roles(study)
    truth = float(sim.truth(effects, study, roles)) if sim.truth is not None else np.nan
    if engine == "alliance":
        row = spec.estimate(study, roles, **sim.options)
    else:
        row = sim.engines[engine](study, roles)
    return {**{k: float(row[k]) for k in _ESTIMATES}, "truth": truth}


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
    spec: ModelSpec,
    engine: str,
    seed: int,
) -> pd.DataFrame:
    """Draw ``superset`` once per simulation and fit every member design on it."""
    from threadpoolctl import threadpool_limits

    eff = as_effects(effects)
    rows = []
    with threadpool_limits(1):
        for j in sims:
            rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(*key, j)))
            try:
                study = spec.simulation.draw(superset, eff, rng)
                simulated = ""
            except (ValueError, KeyError) as err:
                study, simulated = None, f"{type(err).__name__}: {err}"[:300]
            for i, design in members:
                row = {"design": i, "sim": j, "truth": np.nan}
                try:
                    if study is None:
                        raise ValueError(simulated)
                    sample = study if design == superset else _subset(study, design)
                    row.update(fit_simulated(spec, sample, eff, engine))
                    row["error"] = ""
                except (ValueError, np.linalg.LinAlgError, KeyError) as err:
                    row.update({k: np.nan for k in _ESTIMATES})
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
    model: str | ModelSpec = "within",
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
    model : str or ModelSpec, default "within"
        A registered model with a simulation hook (:func:`power_models`; e.g.
        ``"within_between"`` or its alias ``"within"``, ``"reverse"``,
        ``"prior_negative_therapy"``, ``"dropout_model"``), or a
        :class:`~alliance.models.ModelSpec`. Each simulated study is analysed by the
        model's own public function with the columns of the study's codebook, and the
        model's focal term is kept.
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
    engine : str, default "alliance"
        ``"alliance"`` fits the model's public function; another name is a comparison
        engine of the model's simulation hook (``"statsmodels"`` for ``within_between``
        and ``within_between_reverse``).
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
        matters little for power. Needs draws in the
        :func:`alliance.simulate.simulate_study` layout.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per design: the design columns, ``model``, ``effect`` (the planted
        :class:`~alliance.simulate.Effects` field), ``planted`` (its value, in the units of
        ``Effects``), ``truth`` (the focal term's value it implies, in the focal term's
        units, e.g. per WAI-SR total point; NaN when the model has no closed-form truth,
        and then bias and coverage are NaN too), ``n_sims``, ``n_failed``,
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
    >>> result.loc[0, "model"], result.loc[0, "effect"], float(result.loc[0, "planted"])
    ('early_alliance_difference', 'prior_negative_alliance', -0.35)
    >>> result[["n_sims", "n_failed"]].iloc[0].tolist(), round(float(result["truth"].iloc[0]), 2)
    ([4, 0], -4.2)
    """
    grid = _designs(design_grid)
    spec = _model(model)
    effects = dict(effects or {})
    as_effects(effects)  # unknown names fail here, with a close match
    engines = ["alliance", *spec.simulation.engines]
    if engine not in engines:
        raise ValueError(f"engine must be one of {engines} for model {spec.name!r}, not {engine!r}")
    if backend not in ("loky", "dask", "sequential"):
        raise ValueError(f"backend must be 'loky', 'dask' or 'sequential', not {backend!r}")
    if n_sims < 1 or chunk_size < 1:
        raise ValueError("n_sims and chunk_size must be at least 1")
    effect = spec.simulation.effect
    planted = float(effects.get(effect, getattr(Effects(), effect)))
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
    return summarize_power(sims, grid, alpha=alpha, model=spec.name, effect=effect, planted=planted)


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
    sims: pd.DataFrame,
    grid: pd.DataFrame,
    *,
    truth: float | None = None,
    alpha: float = 0.05,
    model: str | None = None,
    effect: str | None = None,
    planted: float = np.nan,
) -> pd.DataFrame:
    """Power, bias and coverage per design from a table of simulations.

    Parameters
    ----------
    sims : pandas.DataFrame
        One row per simulation: design, sim, estimate, se, ci_low, ci_high, p, error and,
        unless ``truth`` is given, the focal term's true value in ``truth``.
    grid : pandas.DataFrame
        The designs.
    truth : float, optional
        The true value for every simulation (overrides ``sims["truth"]``).
    alpha : float, default 0.05
    model, effect, planted : optional
        Written into the ``model``, ``effect`` and ``planted`` columns when given.

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
    sims = sims.copy()
    if truth is not None:
        sims["truth"] = float(truth)
    elif "truth" not in sims:
        raise KeyError("sims has no 'truth' column; pass truth= (the true value)")
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
        true = ok["truth"].astype(float)
        known = true.notna()
        value = float(true[known].mean()) if known.any() else np.nan
        mean_est = ok["estimate"].mean()
        covered = (ok["ci_low"] <= true) & (true <= ok["ci_high"])
        label = {"model": model} if model is not None else {}
        if effect is not None:
            label.update({"effect": effect, "planted": planted})
        rows.append(
            {
                **grid.iloc[i].to_dict(),
                **label,
                "truth": value,
                "n_sims": int(len(part)),
                "n_failed": int(len(part) - n),
                "power": power,
                "power_ci_low": centre - half,
                "power_ci_high": centre + half,
                "mean_estimate": mean_est,
                "bias": mean_est - value,
                "relative_bias": (mean_est - value) / value if value else np.nan,
                "empirical_se": ok["estimate"].std(ddof=1) if n > 1 else np.nan,
                "mean_se": ok["se"].mean(),
                "coverage": covered[known].mean() if known.any() else np.nan,
            }
        )
    out = pd.DataFrame(rows)
    return with_tables(out, simulations=sims)
