"""The match engine's scan on a torch device (CUDA), with the CPU path's answers.

The CPU path walks the corpus position by position (a stack of open runs); a GPU
wants whole-array operations instead, so the same candidates are found level by
level: for every level ``k``, the maximal runs of ``count >= k`` are the pairs of
rising and falling edges of ``count >= k``, and such a run is a candidate of
level ``k`` exactly when ``count == k`` somewhere inside it (``matching.md``:
"the minimum count over it equals k"). ``I`` comes from prefix sums of each
selected cell's bits: on throughout ``[a, b]``, off on ``[a - zl, a - 1]`` and on
``[b + 1, b + zr]``.

Nothing here decides "on" from a float on the device: index codes whose class
is certain are compared on the device, and every other value is checked on the
CPU with ``apply_transform(values) >= threshold``, so the bits are the CPU
path's bits. The union ``U`` of the few candidates that can reach the top is
computed on the CPU by the same code as there (``match_engine.finish``).

A shard (or the whole corpus) is processed in segments, each treated exactly
like a shard of its own, and merged into one collector: memory is bounded by
the segment, not by ``N``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.core.match_engine import (
    ROW_VALUES,
    Collector,
    MatchFiles,
    Plan,
    finish,
    floor_of,
)
from workers.core.match_types import DEFAULT_BUDGET, MatchQuery, MatchResult
from workers.core.store import StateSet

if TYPE_CHECKING:
    import torch

__all__ = ["run", "run_query"]

# Positions per segment: bounded so that (m x segment) bytes of bits stay small.
_SEGMENT_BITS = 1 << 27
_MAX_SEGMENT = 1 << 22
_MIN_SEGMENT = 1 << 16
_HIST_CAP = 1 << 16


def run_query(
    ss: StateSet,
    source_id: str,
    q: MatchQuery,
    shard: tuple[int, int] | None = None,
    *,
    torch_device: str = "cuda",
    use_index: bool = True,
    budget: int = DEFAULT_BUDGET,
) -> MatchResult:
    """:func:`workers.core.match.match` on a torch device of any kind (``match`` calls
    it for ``device="cuda"``; tests use "cpu")."""
    from workers.core.match_index import open_index

    info = ss.source(source_id)
    q.validate(ss.length, info.cells)
    s, e = (0, ss.length) if shard is None else shard
    plan = Plan.make(ss, source_id, q, budget)
    files = MatchFiles(plan, open_index(ss, source_id) if use_index else None)
    try:
        return run(plan, files, s, e, torch_device=torch_device)
    finally:
        files.close()


def run(plan: Plan, files: MatchFiles, s: int, e: int, *, torch_device: str) -> MatchResult:
    """Shard ``[s, e)`` of ``plan`` on ``torch_device``; see the module doc."""
    import torch

    from workers.core.errors import InputError

    if torch_device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("this worker has no CUDA device; match on the CPU instead")
    dev = torch.device(torch_device)
    t_start = time.perf_counter()
    timings: dict[str, float] = {"scan_ms": 0.0}
    col = Collector(m=plan.m, limit=plan.limit, budget=plan.budget)
    segment = max(_MIN_SEGMENT, min(_MAX_SEGMENT, _SEGMENT_BITS // plan.m))
    for s0 in range(s, e, segment):
        c0 = time.perf_counter()
        _segment(plan, files, s0, min(e, s0 + segment), dev, col)
        timings["scan_ms"] += (time.perf_counter() - c0) * 1000
    result = finish(plan, files, col, timings)
    result.timings_ms["total_ms"] = round((time.perf_counter() - t_start) * 1000, 3)
    return result


def _bits(plan: Plan, files: MatchFiles, p0: int, q: int, dev: torch.device) -> torch.Tensor:
    """bool (m, q - p0) on ``dev``: the selected cells' on/off at positions ``[p0, q)``."""
    import torch

    if files.codes is None:
        out = np.empty((plan.m, q - p0), dtype=np.bool_)
        step = max(1, ROW_VALUES // plan.d)
        for a in range(p0, q, step):
            b = min(q, a + step)
            rows = np.ascontiguousarray(files.src.array[a:b])
            out[:, a - p0 : b - p0] = plan.is_on(rows[:, plan.cells]).T
        return torch.from_numpy(out).to(dev)
    host = np.ascontiguousarray(files.codes.array[plan.cells, p0:q])
    codes = torch.from_numpy(host.view(np.int16)).to(dev).to(torch.int32) & 0xFFFF
    on_lo, on_hi, ck_lo, ck_hi = files.classes
    on = (codes >= on_lo) & (codes <= on_hi)
    check = (codes >= ck_lo) & (codes <= ck_hi)
    del codes
    where = torch.nonzero(check).cpu().numpy()
    if where.size:
        js, ts = where[:, 0], where[:, 1]
        values = np.ascontiguousarray(files.src.array[ts + p0, plan.cells[js]])
        exact = torch.from_numpy(plan.is_on(values)).to(dev)
        on[torch.from_numpy(js).to(dev), torch.from_numpy(ts).to(dev)] = exact
        files.checks += int(js.size)
    return on


def _segment(
    plan: Plan, files: MatchFiles, s: int, e: int, dev: torch.device, col: Collector
) -> None:
    """Add the candidates starting in ``[s, e)`` to ``col``."""
    import torch

    n, m, zl, zr = plan.n, plan.m, plan.zl, plan.zr
    p0 = max(0, s - max(zl, 1))
    ext = max(_MIN_SEGMENT, e - s)
    while True:
        q = min(n, e + ext + zr)
        on = _bits(plan, files, p0, q, dev)
        count = on.sum(dim=0, dtype=torch.int32)
        # Runs owned by this segment have levels above mu and end at the first
        # position at or past e whose count is at most mu.
        mu = 0 if s == 0 else int(count[s - 1 - p0 : e - p0].min())
        tail = torch.nonzero(count[e - p0 :] <= mu)
        if tail.numel():
            stop = e + int(tail[0])
            if stop + zr <= q or q == n:
                break
        elif q == n:
            stop = n
            break
        ext *= 4
    length_t = stop - p0
    c = count[:length_t]
    zero = torch.zeros(1, dtype=torch.bool, device=dev)
    found_a: list[torch.Tensor] = []
    found_b: list[torch.Tensor] = []
    found_k: list[torch.Tensor] = []
    for k in range(mu + 1, m + 1):
        ge = c >= k
        starts = torch.nonzero(ge & ~torch.cat([zero, ge[:-1]])).flatten()
        if starts.numel() == 0:
            continue
        ends = torch.nonzero(ge & ~torch.cat([ge[1:], zero])).flatten()
        eq = torch.cat(
            [torch.zeros(1, dtype=torch.int32, device=dev), (c == k).cumsum(0, dtype=torch.int32)]
        )
        keep = (eq[ends + 1] - eq[starts] > 0) & (starts + p0 >= s) & (starts + p0 < e)
        found_a.append(starts[keep])
        found_b.append(ends[keep])
        found_k.append(torch.full_like(starts[keep], k))
    if not found_a:
        return
    a = torch.cat(found_a)  # offsets from p0
    b = torch.cat(found_b)
    level = torch.cat(found_k)
    del found_a, found_b, found_k
    inter = torch.zeros_like(a)
    zero32 = torch.zeros(1, dtype=torch.int32, device=dev)
    lo = torch.clamp(a - zl, min=-p0)  # positions before 0 are off (p0 = 0 then)
    hi = torch.clamp(b + 1 + zr, max=n - p0)
    for j in range(m):
        pre = torch.cat([zero32, on[j].cumsum(0, dtype=torch.int32)])
        thru = pre[b + 1] - pre[a] == b - a + 1
        left = pre[a] - pre[lo] == 0
        right = pre[hi] - pre[b + 1] == 0
        inter += (thru & left & right).to(inter.dtype)
    del on
    length = b - a + 1
    a = a + p0
    _reduce(plan, col, a, length, level, inter)


def _split_hist(lengths: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    import torch

    short = lengths < _HIST_CAP
    dense = torch.bincount(lengths[short], minlength=0).cpu().numpy()
    return dense, lengths[~short].cpu().numpy()


def _reduce(
    plan: Plan,
    col: Collector,
    a: torch.Tensor,
    length: torch.Tensor,
    level: torch.Tensor,
    inter: torch.Tensor,
) -> None:
    """Histograms, counts per ``I`` and the candidates that may reach the top, to the CPU."""
    import torch

    half = (plan.m + 1) // 2
    fuzzy, fuzzy_long = _split_hist(length[level >= half])
    strict, strict_long = _split_hist(length[(level == plan.m) & (inter == plan.m)])
    col.add_hist(strict, fuzzy, strict_long, fuzzy_long)
    elig = (length >= plan.len_lo) & (length <= plan.len_hi) & (a >= plan.range_start)
    elig &= a + length - 1 <= plan.range_end
    ea, el, ei = a[elig], length[elig], inter[elig]
    counts = torch.bincount(ei, minlength=plan.m + 1).cpu().numpy()
    col.add_counts(counts)
    keep = ei >= max(col.floor, floor_of(counts, plan.limit))
    ea, el, ei = ea[keep], el[keep], ei[keep]
    if ea.numel() > 2 * plan.budget:
        # (I desc, L desc, a asc): stable sorts from the last key to the first
        order = torch.argsort(ea, stable=True)
        order = order[torch.argsort(-el[order], stable=True)]
        order = order[torch.argsort(-ei[order], stable=True)][: plan.budget]
        ea, el, ei = ea[order], el[order], ei[order]
    host: Any = [x.cpu().numpy().astype(np.int64) for x in (ea, el, ei)]
    col.add_candidates(host[0], host[1], host[2])
