"""A brute-force reading of matching.md, steps 1-5, for the match engine's tests.

Written word for word from the contract and independently of the engine: the
whole matrix is thresholded, every level's maximal runs are collected into a
dict (a range found at several levels is one candidate, at the highest level it
appears), every candidate is scored against all D cells by looking at every
position, and the list is fully sorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class OracleResult:
    hits: list[tuple[int, int, int, int]]  # (a, L, I, U), ranked
    strict: list[int]
    fuzzy: list[int]
    candidates: int


def on_matrix(raw: np.ndarray, transform: str, threshold: float) -> np.ndarray:
    """bool (N, D): transform(S[t, c]) >= threshold; NaN compares False, so it is off."""
    vals = raw.astype(np.float32)
    if transform == "tanh":
        vals = np.tanh(vals)
    return vals >= threshold


def _trim(hist: list[int]) -> list[int]:
    while hist and hist[-1] == 0:
        hist.pop()
    return hist


def oracle(
    raw: np.ndarray,
    cells: list[int],
    threshold: float,
    transform: str,
    zero_left: int = 1,
    zero_right: int = 0,
    min_length: int | None = 2,
    max_length: int | None = None,
    length: int | None = None,
    limit: int = 50,
    range_start: int = 0,
    range_end: int | None = None,
) -> OracleResult:
    on = on_matrix(raw, transform, threshold)
    n, d = on.shape
    m = len(cells)

    def is_on(t: int, c: int) -> bool:
        return 0 <= t < n and bool(on[t, c])

    # 1. count
    count = [sum(1 for c in cells if is_on(t, c)) for t in range(n)]
    # 2. candidates: maximal runs of count >= k, levels m..1; first level found wins
    level: dict[tuple[int, int], int] = {}
    for k in range(m, 0, -1):
        t = 0
        while t < n:
            if count[t] >= k:
                a = t
                while t + 1 < n and count[t + 1] >= k:
                    t += 1
                level.setdefault((a, t), k)
            t += 1
    # 3. score every candidate against all D cells
    scored = []
    strict = [0] * (n + 1)
    fuzzy = [0] * (n + 1)
    for (a, b), k in level.items():
        cprime = set()
        for c in range(d):
            if not all(is_on(t, c) for t in range(a, b + 1)):
                continue
            if any(is_on(t, c) for t in range(a - zero_left, a)):
                continue
            if any(is_on(t, c) for t in range(b + 1, b + zero_right + 1)):
                continue
            cprime.add(c)
        inter = len(set(cells) & cprime)
        union = len(set(cells) | cprime)
        size = b - a + 1
        # 5. histograms, whole corpus, no length filter
        if k == m and set(cells) <= cprime:
            strict[size] += 1
        if k >= math.ceil(m / 2):
            fuzzy[size] += 1
        if length is not None:
            ok = size == length
        else:
            ok = (min_length is None or size >= min_length) and (
                max_length is None or size <= max_length
            )
        end = n - 1 if range_end is None else range_end
        if ok and range_start <= a and b <= end:
            scored.append((a, size, inter, union))
    # 4. ranking: I desc, U asc, L desc, a asc
    scored.sort(key=lambda x: (-x[2], x[3], -x[1], x[0]))
    return OracleResult(
        hits=scored[:limit], strict=_trim(strict), fuzzy=_trim(fuzzy), candidates=len(scored)
    )
