"""The match engine behind :func:`workers.core.match.match` (first, plain version)."""

from __future__ import annotations

import numpy as np

from workers.core.context import apply_transform
from workers.core.match import MatchHit, MatchQuery, MatchResult, _trim
from workers.core.store import StateSet


def run(
    ss: StateSet,
    source_id: str,
    q: MatchQuery,
    s: int,
    e: int,
    *,
    budget: int,
    device: str,
    use_index: bool,
) -> MatchResult:
    info = ss.source(source_id)
    transform = info.transform if q.transform is None else q.transform
    thr = float(q.threshold)
    raw = np.asarray(ss.values(source_id))
    on = apply_transform(raw, transform) >= thr
    n = on.shape[0]
    cells = np.array(q.cells, dtype=np.int64)
    m = len(cells)
    count = on[:, cells].sum(axis=1)
    zl, zr = q.zero_left, q.zero_right
    lo_len, hi_len = q.length_bounds
    r_end = n - 1 if q.range_end is None else q.range_end
    half = (m + 1) // 2
    strict = np.zeros(n + 1, dtype=np.int64)
    fuzzy = np.zeros(n + 1, dtype=np.int64)
    found: list[tuple[int, int, int, int]] = []
    stack: list[tuple[int, int]] = []
    prev = 0
    for t in range(n + 1):
        c = int(count[t]) if t < n else 0
        if c < prev:
            last = -1
            while stack and stack[-1][1] > c:
                a, k = stack.pop()
                last = a
                if not s <= a < e:
                    continue
                b = t - 1
                length = b - a + 1
                ok = np.asarray(on[a : b + 1].all(axis=0))
                if zl:
                    ok &= ~on[max(0, a - zl) : a].any(axis=0)
                if zr:
                    ok &= ~on[b + 1 : b + 1 + zr].any(axis=0)
                i = int(ok[cells].sum())
                u = m + int(ok.sum()) - i
                if k >= half:
                    fuzzy[length] += 1
                if k == m and i == m:
                    strict[length] += 1
                if lo_len <= length <= hi_len and q.range_start <= a and b <= r_end:
                    found.append((i, u, length, a))
            if c > 0 and (not stack or stack[-1][1] < c):
                stack.append((last, c))
        elif c > prev:
            stack.append((t, c))
        prev = c
        if t >= e and not any(s <= a < e for a, _ in stack):
            break
    found.sort(key=lambda x: (-x[0], x[1], -x[2], x[3]))
    hits = [
        MatchHit(position=a, length=L, intersection=i, union=u, jaccard=i / u, missing=m - i)
        for i, u, L, a in found[: q.limit]
    ]
    return MatchResult(
        hits=hits,
        strict_histogram=_trim(strict),
        fuzzy_histogram=_trim(fuzzy),
        exact=True,
        unscored=0,
        candidates=len(found),
        scored=len(found),
    )
