"""The selected cells of a hypothesis, exactly as ``matching.md`` ("Selection") says.

A hypothesis is ``(source, start, end, threshold, zero_left, zero_right)``. Its
selected cells are all cells whose on/off pattern over
``[start - zero_left, end + zero_right]`` is exactly
``off^zero_left on^(end - start + 1) off^zero_right``, where a cell is on at ``t``
iff ``transform(S[t, c]) >= threshold``, positions outside ``[0, N-1]`` are off
and NaN is off.

The work is split in two so the rule can be tested on its own: the pure
:func:`select_from_window` takes the transformed window that lies inside the
corpus plus how many pattern positions fell off either end, and
:func:`selected_cells` reads that window from a state set. The window is a few
rows of a row-major source, so one contiguous read answers it.
"""

from __future__ import annotations

import math

import numpy as np

from workers.core.context import apply_transform
from workers.core.errors import InputError
from workers.core.store import StateSet

__all__ = ["select_from_window", "selected_cells"]


def select_from_window(
    window: np.ndarray,
    threshold: float,
    zero_left: int,
    zero_right: int,
    before_pad: int,
    after_pad: int,
) -> np.ndarray:
    """Indices (ascending, int64) of the columns of ``window`` that fit the pattern.

    ``window`` is ``(T, D)``, already transformed, covering the part of
    ``[start - zero_left, end + zero_right]`` inside the corpus; ``before_pad`` and
    ``after_pad`` are the pattern positions cut off before position 0 and after
    N-1 (those count as off). The on-run has length
    ``before_pad + T + after_pad - zero_left - zero_right``, which must be >= 1.
    """
    if zero_left < 0 or zero_right < 0 or before_pad < 0 or after_pad < 0:
        raise ValueError("zero_left, zero_right and the pads must be >= 0")
    arr = np.asarray(window)
    if arr.ndim != 2:
        raise ValueError("window must be 2-D (positions x cells)")
    t, d = arr.shape
    total = before_pad + t + after_pad
    run = total - zero_left - zero_right
    if run < 1:
        raise ValueError("the pattern has no on-positions")
    # Pattern position p (0..total-1) is window row p - before_pad.
    on_lo, on_hi = zero_left, zero_left + run  # on-part: [on_lo, on_hi) in pattern positions
    if on_lo < before_pad or on_hi > before_pad + t:
        # An on-position lies outside the corpus, where every cell is off.
        return np.empty(0, dtype=np.int64)
    on = arr >= threshold  # NaN compares False: off
    r_lo, r_hi = on_lo - before_pad, on_hi - before_pad
    ok = np.ones(d, dtype=bool)
    if r_hi > r_lo:
        ok &= on[r_lo:r_hi].all(axis=0)
    if r_lo > 0:
        ok &= ~on[:r_lo].any(axis=0)
    if r_hi < t:
        ok &= ~on[r_hi:].any(axis=0)
    return np.flatnonzero(ok).astype(np.int64)


def selected_cells(
    ss: StateSet,
    source_id: str,
    start: int,
    end: int,
    threshold: float,
    *,
    zero_left: int = 1,
    zero_right: int = 0,
    transform: str | None = None,
) -> list[int]:
    """The selected cells of a hypothesis on ``source_id`` (see the module doc)."""
    info = ss.source(source_id)
    n = ss.length
    for name, value in (
        ("start", start),
        ("end", end),
        ("zero_left", zero_left),
        ("zero_right", zero_right),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{name} must be a whole number, not {value!r}")
    start, end, zero_left, zero_right = int(start), int(end), int(zero_left), int(zero_right)
    if start > end:
        raise InputError(f"the selection starts at {start} but ends before it, at {end}")
    if start < 0 or end > n - 1:
        raise InputError(f"the selection {start}-{end} must lie inside the corpus of {n} tokens")
    if zero_left < 0 or zero_right < 0:
        raise InputError("the off-constraints left and right must be 0 or more")
    if isinstance(threshold, bool) or not math.isfinite(float(threshold)):
        raise InputError(f"the threshold must be a finite number, not {threshold!r}")
    lo = start - zero_left
    hi = end + zero_right
    a, b = max(0, lo), min(n - 1, hi)
    window = apply_transform(
        np.asarray(ss.values(source_id)[a : b + 1]),
        info.transform if transform is None else transform,
    )
    picked = select_from_window(window, float(threshold), zero_left, zero_right, a - lo, hi - b)
    out: list[int] = picked.tolist()
    return out
