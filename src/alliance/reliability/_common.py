"""Input handling shared by the reliability modules: confidence levels, item blocks, keys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance import instruments as _instruments
from alliance._checks import renamed, require_columns, require_frame

__all__ = ["check_level", "keyed_scales", "numeric_block"]


def check_level(function: str, level: float | None, ci: float | None) -> float:
    """The confidence level from ``level=`` (or its former name ``ci=``, with a warning)."""
    chosen = renamed(function, "ci", ci, "level", level, default=0.95)
    if isinstance(chosen, bool) or not isinstance(chosen, int | float) or not 0 < chosen < 1:
        raise ValueError(
            f"{function}: level must be a confidence level between 0 and 1 (e.g. 0.95), "
            f"got {chosen!r}"
        )
    return float(chosen)


def numeric_block(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    block = frame[list(columns)]
    bad = [c for c in block.columns if not pd.api.types.is_numeric_dtype(block[c])]
    if bad:
        raise ValueError(
            f"{what} must be numeric; column(s) {', '.join(map(repr, bad))} are not. "
            "Recode response labels to numbers first (e.g. with Series.map)"
        )
    return block.astype(float)


def keyed_scales(
    data: pd.DataFrame,
    items: Sequence[str] | None,
    instrument: str | _instruments.Instrument | None,
    reverse: Sequence[str] | None,
    subscales: bool,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Keyed item block and the scales (name -> columns) to analyse."""
    frame = require_frame(data)
    ins = None if instrument is None else _instruments.get(instrument)
    if items is None:
        if ins is not None:
            items = ins.items
        else:
            items = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    items = list(items)
    if len(items) < 2:
        raise ValueError(
            f"reliability needs at least 2 item columns, got {items!r}; pass items=[...]"
        )
    require_columns(frame, **{f"item {i}": c for i, c in enumerate(items, start=1)})
    block = numeric_block(frame, items, "item columns")
    flip: list[str] = []
    if reverse is not None:
        unknown = [c for c in reverse if c not in items]
        if unknown:
            raise KeyError(
                f"reverse= names {', '.join(map(repr, unknown))}, which are not among the items"
            )
        flip = list(reverse)
    elif ins is not None:
        if ins.reverse_items is None:
            raise ValueError(
                f"the registry does not store the reverse-keyed items of {ins.name}; pass "
                "reverse=[<item columns>] (or reverse=[] if none are reverse keyed)"
            )
        flip = [items[i - 1] for i in ins.reverse_items]
    if flip:
        if ins is not None:
            low, high = ins.item_min, ins.item_max
        else:  # as psych::alpha: the observed range of all items
            low, high = np.nanmin(block.to_numpy()), np.nanmax(block.to_numpy())
        block[flip] = low + high - block[flip]
    scales = {ins.name if ins is not None else "scale": items}
    if ins is not None and subscales:
        for sub, members in ins.subscales.items():
            scales[f"{ins.name}_{sub}"] = [items[i - 1] for i in members]
    return block, scales
