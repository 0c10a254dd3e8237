"""Item responses -> scale and subscale scores, with reverse keys and prorating.

:func:`score` works on whole columns at once (numpy over an ``n_rows x n_items``
array), so a million session rows score in well under a second. :func:`score_file`
scores a file too big for memory batch by batch and writes the scores to Parquet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from alliance import instruments as _instruments
from alliance._checks import format_rows, require_columns, require_frame

__all__ = ["score", "score_file"]

logger = logging.getLogger(__name__)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _item_columns(instrument: _instruments.Instrument, items: Sequence[str] | None) -> list[str]:
    if items is None:
        return instrument.items
    if isinstance(items, str):
        raise TypeError(
            f"items must be a list of the {instrument.n_items} item columns in item order, "
            f"not the string {items!r}"
        )
    items = list(items)
    if len(items) != instrument.n_items:
        raise ValueError(
            f"{instrument.name} has {instrument.n_items} items but items= names {len(items)} "
            f"columns; list all {instrument.n_items} item columns in item order"
        )
    if len(set(items)) != len(items):
        dupes = sorted({c for c in items if items.count(c) > 1})
        raise ValueError(f"items= names column(s) {', '.join(map(repr, dupes))} twice")
    return items


def _max_missing(instrument: _instruments.Instrument, prorate: bool | int) -> int:
    if isinstance(prorate, bool | np.bool_):
        return instrument.max_missing if prorate else 0
    if isinstance(prorate, int | np.integer) and 0 <= prorate < instrument.n_items:
        return int(prorate)
    raise ValueError(
        f"prorate must be True (the published rule for {instrument.name}: at most "
        f"{instrument.max_missing} missing items), False (no missing items) or a whole "
        f"number of missing items from 0 to {instrument.n_items - 1}; got {prorate!r}"
    )


def _reverse_numbers(
    instrument: _instruments.Instrument, reverse: Sequence[int] | None
) -> tuple[int, ...]:
    if reverse is None:
        if instrument.reverse_items is None:
            raise ValueError(
                f"the registry does not store the reverse-keyed items of {instrument.name} "
                "(published forms differ); pass reverse=[...] with the item numbers of your "
                "form, or reverse=[] if none are reverse keyed"
            )
        return instrument.reverse_items
    numbers = tuple(reverse)
    bad = [
        i
        for i in numbers
        if not isinstance(i, int | np.integer) or not 1 <= i <= instrument.n_items
    ]
    if bad:
        raise ValueError(
            f"reverse= must hold item numbers 1..{instrument.n_items} of {instrument.name}, "
            f"got {', '.join(map(repr, bad))}"
        )
    return tuple(int(i) for i in numbers)


def _subscale_map(
    instrument: _instruments.Instrument, subscales: bool | Mapping[str, Sequence[int]]
) -> dict[str, tuple[int, ...]]:
    if isinstance(subscales, bool):
        return dict(instrument.subscales) if subscales else {}
    if not isinstance(subscales, Mapping):
        raise TypeError("subscales must be True, False or a dict of name -> item numbers")
    out = {}
    for sub, members in subscales.items():
        members = tuple(members)
        bad = [i for i in members if not isinstance(i, int | np.integer)]
        bad += [i for i in members if i not in bad and not 1 <= i <= instrument.n_items]
        if bad or not members:
            raise ValueError(
                f"subscale {sub!r} must list item numbers 1..{instrument.n_items}, got {members!r}"
            )
        out[str(sub)] = tuple(int(i) for i in members)
    return out


def _numeric_items(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The item block as a float array; a clear error for text or boolean columns."""
    problems = []
    for column in frame.columns:
        values = frame[column]
        if is_numeric_dtype(values) and not is_bool_dtype(values):
            continue
        coerced = pd.to_numeric(values, errors="coerce") if not is_bool_dtype(values) else None
        if coerced is None:
            problems.append(f"column {column!r} is true/false, not item scores")
            continue
        bad = values.notna() & coerced.isna()
        if bad.any():
            shown = values[bad].astype(str).unique()[:3]
            problems.append(
                f"column {column!r} has {int(bad.sum())} non-numeric values "
                f"({', '.join(map(repr, shown))}) in {format_rows(values.index[bad])}"
            )
    if problems:
        raise ValueError(
            f"{name} items must be numbers: " + "; ".join(problems) + ". Recode response "
            "labels to their numeric scores (e.g. with Series.map) and set non-answers to NaN"
        )
    if all(is_numeric_dtype(frame[c]) for c in frame.columns):
        return frame.to_numpy(dtype=float, na_value=np.nan)
    return frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _check_range(values: np.ndarray, frame: pd.DataFrame, ins: _instruments.Instrument) -> None:
    with np.errstate(invalid="ignore"):
        bad = (values < ins.item_min) | (values > ins.item_max)
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    shown = [
        f"row {frame.index[r]}: {frame.columns[c]} = {_fmt(values[r, c])}"
        for r, c in zip(rows[:8], cols[:8], strict=True)
    ]
    more = f" ... ({len(rows)} values in all)" if len(rows) > 8 else ""
    bad_rows = frame.index[np.unique(rows)]
    raise ValueError(
        f"{len(rows)} item value(s) of {ins.name} are outside its range "
        f"{_fmt(ins.item_min)}-{_fmt(ins.item_max)} in {format_rows(bad_rows)} "
        f"({'; '.join(shown)}{more}). Correct them or set them to NaN before scoring; if "
        "your form uses another range (e.g. 0-based coding), recode the items or define "
        "your own instrument with alliance.instruments.load()"
    )


def _scale(
    keyed: np.ndarray,
    missing: np.ndarray,
    columns: np.ndarray,
    limit: int,
    ins: _instruments.Instrument,
) -> tuple[np.ndarray, np.ndarray]:
    """Score one (sub)scale: prorated sum or mean, missing when too many items are missing."""
    k = len(columns)
    n_missing = missing[:, columns].sum(axis=1)
    answered = k - n_missing
    total = keyed[:, columns].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if ins.scoring == "sum":
            value = np.where(n_missing == 0, total, total * k / answered)
        else:
            value = total / answered
    value = value * ins.multiplier
    value[(n_missing > min(limit, k - 1))] = np.nan
    return value, n_missing


def score(
    data: pd.DataFrame,
    instrument: str | _instruments.Instrument,
    items: Sequence[str] | None = None,
    *,
    prorate: bool | int = True,
    reverse: Sequence[int] | None = None,
    subscales: bool | Mapping[str, Sequence[int]] = True,
    name: str | None = None,
) -> pd.DataFrame:
    """Score a questionnaire: scale and subscale scores and a count of missing items.

    Reverse-keyed items are flipped (``item_min + item_max - x``), then the scale score is
    the sum or the mean of the items (as the instrument is scored) times its multiplier
    (CORE-OM: mean x 10). A row with missing items is prorated when no more items are
    missing than allowed: a sum becomes ``mean of answered items x number of items``, a
    mean is the mean of the answered items. A row with more missing items gets a missing
    score; it is kept and counted, never dropped.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per questionnaire (e.g. client x session), items in columns.
    instrument : str or Instrument
        A registry name such as ``"phq9"`` or ``"wai_sr"`` (see
        :func:`alliance.instruments.list_instruments`), or your own ``Instrument``.
    items : list of str, optional
        The item columns in item order; by default ``<name>_1 .. <name>_<k>``.
    prorate : bool or int, default True
        ``True``: the instrument's published rule (``Instrument.max_missing``; 0 where no
        rule is published). ``False``: no missing items allowed. A whole number: at most
        that many missing items are prorated. Each subscale allows the same number of
        missing items among its own items (at least one item must be answered).
    reverse : list of int, optional
        Reverse-keyed item numbers (1-based) overriding the registry; required for
        instruments whose keys the registry does not store (WAI-S, HAq-II).
    subscales : bool or dict, default True
        Score the registry's subscales (``True``), none (``False``), or your own
        ``{"name": [item numbers]}``.
    name : str, optional
        Column-name stem of the results; by default the instrument's name.

    Returns
    -------
    pandas.DataFrame
        A copy of ``data`` with columns ``<name>`` (scale score), ``<name>_<subscale>``
        for each subscale and ``<name>_n_missing`` (missing items per row). Existing
        columns of those names are replaced. ``result.attrs["scoring"]`` records the
        rule used and counts rows scored, prorated and over the limit (with the first
        of those rows).

    Raises
    ------
    KeyError
        An item column is missing (with close matches).
    ValueError
        Item values outside the instrument's range (naming rows, items and values),
        text values, or an invalid ``prorate``/``reverse``/``subscales``.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance
    >>> df = pd.DataFrame({f"phq9_{i}": [1, 2, None] for i in range(1, 10)})
    >>> df.loc[1, "phq9_4"] = None
    >>> out = alliance.score(df, "phq9", prorate=1)
    >>> out[["phq9", "phq9_n_missing"]]
       phq9  phq9_n_missing
    0   9.0               0
    1  18.0               1
    2   NaN               9
    >>> out.attrs["scoring"]["n_over_limit"]
    1
    >>> alliance.score(df.assign(phq9_2=[1, 7, 0]), "phq9")
    Traceback (most recent call last):
    ...
    ValueError: 1 item value(s) of phq9 are outside its range 0-3 in row 1 (row 1: phq9_2 = 7)...

    Subscales and reverse keys come from the registry (CORE-10 items 2 and 3 are
    reverse keyed):

    >>> core = pd.DataFrame({f"core10_{i}": [4] for i in range(1, 11)})
    >>> float(alliance.score(core, "core10")["core10"].iloc[0])
    32.0
    """
    ins = _instruments.get(instrument)
    frame = require_frame(data)
    columns = _item_columns(ins, items)
    require_columns(frame, **{f"item {i}": c for i, c in enumerate(columns, start=1)})
    limit = _max_missing(ins, prorate)
    rev = _reverse_numbers(ins, reverse)
    subs = _subscale_map(ins, subscales)
    stem = ins.name if name is None else str(name)

    block = frame[columns]
    values = _numeric_items(block, ins.name)
    _check_range(values, block, ins)
    if rev:
        idx = np.asarray(rev) - 1
        values[:, idx] = ins.item_min + ins.item_max - values[:, idx]
    missing = np.isnan(values)
    keyed = np.where(missing, 0.0, values)

    scores: dict[str, np.ndarray] = {}
    total, n_missing = _scale(keyed, missing, np.arange(ins.n_items), limit, ins)
    scores[stem] = total
    for sub, members in subs.items():
        scores[f"{stem}_{sub}"], _ = _scale(keyed, missing, np.asarray(members) - 1, limit, ins)
    scores[f"{stem}_n_missing"] = n_missing.astype(np.int64)

    out = frame.copy()
    for column, value in scores.items():
        out[column] = value

    over = n_missing > limit
    n_over = int(over.sum())
    out.attrs["scoring"] = {
        "instrument": ins.name,
        "items": columns,
        "reverse_items": list(rev),
        "max_missing": limit,
        "n_rows": len(out),
        "n_scored": int(np.isfinite(total).sum()),
        "n_prorated": int(((n_missing > 0) & ~over).sum()),
        "n_over_limit": n_over,
        "rows_over_limit": frame.index[over][:20].tolist(),
    }
    if n_over:
        logger.info(
            "%s: %d of %d rows have more than %d missing items and get a missing score (%s)",
            ins.name,
            n_over,
            len(out),
            limit,
            format_rows(frame.index[over]),
        )
    return out


def score_file(
    in_path: str | Path,
    out_path: str | Path,
    instrument: str | _instruments.Instrument,
    items: Sequence[str] | None = None,
    *,
    prorate: bool | int = True,
    reverse: Sequence[int] | None = None,
    subscales: bool | Mapping[str, Sequence[int]] = True,
    name: str | None = None,
    keep: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    batch_rows: int = 1_000_000,
    progress: bool = False,
) -> dict:
    """Score a questionnaire in a sessions file too big for memory; write the scores.

    The file is read a batch of ``batch_rows`` rows at a time (only the item columns
    and the ``keep`` columns, with compact dtypes) and each batch is scored with
    :func:`score`; the scores are appended to ``out_path``. Memory depends on
    ``batch_rows``, not on the file's length. The output is written to a temporary
    file first and renamed at the end, so a failed run leaves no half-written output.

    Parameters
    ----------
    in_path : str or pathlib.Path
        A CSV, TSV or Parquet sessions file.
    out_path : str or pathlib.Path
        Where to write the scores: ``.parquet`` (or ``.csv``). One row per input row,
        in the input's order: the ``keep`` columns, then ``<name>``, its subscales and
        ``<name>_n_missing``.
    instrument, items, prorate, reverse, subscales, name
        As for :func:`score`.
    keep : list of str, optional
        Columns copied to the output; by default those of ``client``, ``therapist``,
        ``site`` and ``session`` that the file has.
    columns : mapping, optional
        Column renames applied on reading, e.g. ``{"ClientID": "client"}``.
    batch_rows : int, default 1000000
        Rows scored at once.
    progress : bool, default False
        Show a progress bar (rows scored).

    Returns
    -------
    dict
        What :func:`score` records in ``attrs["scoring"]``, summed over the file:
        ``n_rows``, ``n_scored``, ``n_prorated``, ``n_over_limit`` and
        ``rows_over_limit`` (the first 20 file rows over the limit; the first data row
        is row 1), plus ``out_path``.

    Raises
    ------
    KeyError
        An item or ``keep`` column is not in the file (with close matches).
    ValueError
        Item values outside the instrument's range or text values, naming the file's
        rows, from every batch; nothing is written then.

    Examples
    --------
    >>> import tempfile, pandas as pd, alliance
    >>> from alliance.datasets import dataset_path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     info = alliance.scoring.score_file(dataset_path("demo") / "sessions.csv.gz",
    ...                                        f"{tmp}/wai.parquet", "wai_sr", batch_rows=1000)
    ...     scores = pd.read_parquet(info["out_path"])
    >>> info["n_rows"], list(scores.columns[:4])
    (3688, ['client', 'therapist', 'site', 'session'])
    """
    from alliance import _stream

    ins = _instruments.get(instrument)
    item_cols = _item_columns(ins, items)
    _max_missing(ins, prorate)
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a whole number of at least 1, got {batch_rows!r}")
    in_path, out_path = Path(in_path), Path(out_path)
    out_fmt = out_path.name.lower().rsplit(".", 1)[-1]
    if out_fmt not in ("parquet", "csv"):
        raise ValueError(f"out_path must end in .parquet or .csv, got {out_path.name!r}")
    if out_path.resolve() == in_path.resolve():
        raise ValueError("out_path is the input file; input files are never overwritten")
    rename = dict(columns or {})
    stem = ins.name if name is None else str(name)
    totals = {"n_rows": 0, "n_scored": 0, "n_prorated": 0, "n_over_limit": 0}
    over_rows: list[int] = []
    errors: list[str] = []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = None
    level = logger.level
    with _stream.temporary_folder() as tmp:
        con = _stream.connect(temp_directory=tmp)
        try:
            source = _stream.open_source(con, in_path)
            have = [rename.get(c, c) for c in source.columns]
            if keep is None:
                keep = [c for c in ("client", "therapist", "site", "session") if c in have]
            keep = [c for c in keep if c not in item_cols]
            try:
                cols = _stream.select_columns(source, [*keep, *item_cols], rename)
            except KeyError as error:
                raise KeyError(
                    f"{error.args[0]}. Pass items=[...] with your item columns in item order, "
                    "or keep=[...] with columns the file has"
                ) from None
            plan = _stream.plan_dtypes(con, source, cols)
            logger.setLevel(logging.ERROR)  # one summary warning below, not one per batch
            for batch in _stream.iter_frames(
                con, source, plan, batch_rows=batch_rows, progress=progress, desc="scoring"
            ):
                batch = batch.rename(columns=rename) if rename else batch
                try:
                    scored = score(
                        batch,
                        ins,
                        item_cols,
                        prorate=prorate,
                        reverse=reverse,
                        subscales=subscales,
                        name=name,
                    )
                except ValueError as error:
                    errors.append(str(error))
                    continue
                info = scored.attrs["scoring"]
                for key in totals:
                    totals[key] += info[key]
                if len(over_rows) < 20:
                    over = scored[f"{stem}_n_missing"].to_numpy() > info["max_missing"]
                    over_rows += scored.index[over][: 20 - len(over_rows)].tolist()
                if errors:
                    continue
                result = scored[[*keep, *[c for c in scored.columns if c.startswith(stem)]]]
                result = result.drop(columns=[c for c in item_cols if c in result.columns])
                writer = _append(writer, result, partial, out_fmt)
        finally:
            logger.setLevel(level)
            con.close()
            if writer is not None and writer is not True:
                writer.close()
    if errors:
        partial.unlink(missing_ok=True)
        shown = "\n  ".join(errors[:5])
        more = f"\n  ... and {len(errors) - 5} more batches" if len(errors) > 5 else ""
        raise ValueError(
            f"{in_path.name}: nothing was written; {len(errors)} batch(es) of rows cannot be "
            f"scored (row numbers are the file's, the first data row is row 1):\n  {shown}{more}"
        )
    if writer is None:  # an empty file: write an empty result
        empty = pd.DataFrame(columns=[*keep, stem, f"{stem}_n_missing"])
        writer = _append(None, empty, partial, out_fmt)
        if writer is not True:
            writer.close()
    partial.replace(out_path)
    if totals["n_over_limit"]:
        logger.info(
            "%s: %d of %d rows of %s have more than %d missing items and get a missing "
            "score (first %s)",
            ins.name,
            totals["n_over_limit"],
            totals["n_rows"],
            in_path.name,
            _max_missing(ins, prorate),
            format_rows(over_rows),
        )
    return {
        "instrument": ins.name,
        "items": item_cols,
        "max_missing": _max_missing(ins, prorate),
        **totals,
        "rows_over_limit": over_rows,
        "out_path": str(out_path),
    }


def _append(writer, frame: pd.DataFrame, path: Path, fmt: str):
    """Append a batch to a Parquet writer (made on the first call) or a CSV file."""
    if fmt == "csv":
        frame.to_csv(path, mode="a" if writer else "w", header=not writer, index=False)
        return True
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table.cast(writer.schema))
    return writer
