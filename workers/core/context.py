"""Reading a context window: the values, tokens and annotations around a position.

This is the one core read the web process does itself, on every pan and zoom of
the selection view and for every row of a match list, so it must answer in a
few milliseconds from a memory-mapped state set of any size. It touches only the
rows of the window (a row-major source makes that one contiguous read), picks
the requested cells from that small block, transposes to cells x time, and
rounds and converts with numpy; there are no per-value Python loops except for
labels and wordvec entries, which are per token.

The answer is plain JSON data (lists, floats, strings). NaN values become
``None``, because JSON has no NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workers.core.errors import InputError
from workers.core.store import AnnotationInfo, StateSet

__all__ = ["MAX_CONTEXT_TOKENS", "TRANSFORMS", "apply_transform", "read_context"]

TRANSFORMS = ("tanh", "none")
MAX_CONTEXT_TOKENS = 20_000
_DIGITS = 5


def apply_transform(arr: np.ndarray, transform: str) -> np.ndarray:
    """``tanh`` or ``none`` applied to raw values; returns a new float32 array."""
    if transform == "tanh":
        return np.tanh(np.asarray(arr, dtype=np.float32))
    if transform == "none":
        return np.array(arr, dtype=np.float32, copy=True)
    raise InputError(f"the transform must be 'tanh' or 'none', not {transform!r}")


def _to_json_floats(arr: np.ndarray) -> list[Any]:
    """Round to 5 digits and convert to nested lists; NaN becomes ``None``."""
    rounded = np.round(arr.astype(np.float64), _DIGITS)
    nan = np.isnan(rounded)
    if nan.any():
        obj = rounded.astype(object)
        obj[nan] = None
        out: list[Any] = obj.tolist()
        return out
    plain: list[Any] = rounded.tolist()
    return plain


def check_window(ss: StateSet, start: int, end: int) -> tuple[int, int]:
    """Clamp an inclusive ``[start, end]`` to the corpus; refuse an empty or outside range."""
    n = ss.length
    if isinstance(start, bool) or isinstance(end, bool):
        raise InputError("start and end must be token positions")
    start, end = int(start), int(end)
    if start > end:
        raise InputError(f"the range starts at {start} but ends before it, at {end}")
    if end < 0 or start > n - 1:
        raise InputError(f"the range {start}-{end} lies outside the corpus of {n} tokens")
    return max(0, start), min(n - 1, end)


def check_cells(cells: list[int] | None, count: int) -> list[int]:
    """Validate cell indices against a source of ``count`` cells; ``None`` means all."""
    if cells is None:
        return list(range(count))
    out = []
    for c in cells:
        if isinstance(c, bool) or not isinstance(c, int | np.integer):
            raise InputError(f"cell {c!r} is not a cell number")
        if not 0 <= int(c) < count:
            raise InputError(f"cell {int(c)} does not exist; the source has cells 0 to {count - 1}")
        out.append(int(c))
    return out


def _annotation_values(ss: StateSet, info: AnnotationInfo, start: int, end: int) -> list[Any]:
    values, weights = ss.annotation(info.name)
    block = np.asarray(values[start : end + 1])
    if info.kind == "scalar":
        return _to_json_floats(block)
    if info.kind == "discrete":
        ids: list[int] = block.tolist()
        if info.labels is None:
            return ids
        labels = info.labels
        return [labels[i] if 0 <= i < len(labels) else str(i) for i in ids]
    # wordvec: per token, the k entries with their weights.
    names = info.labels if info.labels is not None else ss.vocab
    ids2: list[list[int]] = block.tolist()
    if weights is None:
        wrows: list[list[Any]] = [[None] * len(row) for row in ids2]
    else:
        wrows = _to_json_floats(np.asarray(weights[start : end + 1]))
    return [
        [
            {"token": names[i] if 0 <= i < len(names) else "", "weight": w}
            for i, w in zip(row, wrow, strict=True)
        ]
        for row, wrow in zip(ids2, wrows, strict=True)
    ]


def read_context(
    ss: StateSet,
    source_id: str,
    start: int,
    end: int,
    *,
    cells: list[int] | None = None,
    transform: str | None = None,
    threshold: float | None = None,
    annotations: bool = True,
    max_tokens: int = MAX_CONTEXT_TOKENS,
    as_arrays: bool = False,
) -> dict[str, Any]:
    """The window ``[start, end]`` (inclusive, clamped to the corpus) of one source.

    Returns ``{"start", "end", "tokens", "token_ids", "cells", "values",
    "annotations"}`` plus ``"cell_count"`` when both ``cells`` and ``threshold``
    are given. ``values[i][t - start]`` is cell ``cells[i]`` at ``t`` after the
    transform (``None``: the source's own), rounded to 5 digits.
    ``cell_count[t - start]`` counts the given cells that are on (transformed
    value >= threshold; NaN is off). Annotations map each name to one entry per
    token: a float (scalar), a label or int (discrete), or a list of
    ``{"token", "weight"}`` (wordvec).

    With ``as_arrays`` the values come as one rounded float64 array (cells x T,
    NaN kept) instead of nested lists: a JSON encoder that writes numpy arrays
    (orjson) then renders them without creating 65,000 Python floats and 650
    lists per window, which is what made the garbage collector the slowest part
    of a context request.
    """
    info = ss.source(source_id)
    a, b = check_window(ss, start, end)
    if b - a + 1 > max_tokens:
        raise InputError(
            f"the window has {b - a + 1} tokens; at most {max_tokens} can be read at once"
        )
    chosen = check_cells(cells, info.cells)
    transform = info.transform if transform is None else transform
    if threshold is not None and (
        isinstance(threshold, bool) or not math.isfinite(float(threshold))
    ):
        raise InputError(f"the threshold must be a finite number, not {threshold!r}")

    raw = np.asarray(ss.values(source_id)[a : b + 1])  # (T, D), one contiguous read
    if cells is not None:
        raw = raw[:, chosen]
    values = apply_transform(raw, transform)  # (T, C)

    token_ids = np.asarray(ss.tokens[a : b + 1]).tolist()
    vocab = ss.vocab
    result: dict[str, Any] = {
        "start": a,
        "end": b,
        "tokens": [vocab[i] for i in token_ids],
        "token_ids": token_ids,
        "cells": chosen,
        "values": (
            np.round(np.ascontiguousarray(values.T, dtype=np.float64), _DIGITS)
            if as_arrays
            else _to_json_floats(values.T)
        ),
    }
    if cells is not None and threshold is not None:
        result["cell_count"] = np.count_nonzero(values >= float(threshold), axis=1).tolist()
    result["annotations"] = (
        {ann.name: _annotation_values(ss, ann, a, b) for ann in ss.manifest.annotations}
        if annotations
        else {}
    )
    return result
