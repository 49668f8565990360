"""Compiled kernels of the match engine (numba, cached on disk).

Each kernel is a plain loop over arrays that the engine (``match_engine``)
prepares; the semantics live there and in ``docs/matching.md``. Shapes:

* ``codes``  uint16 (D, N): the match index, row ``c`` = cell ``c`` (a memory map);
* ``mask``   uint64 (W, T): bit ``j % 64`` of ``mask[j // 64, t]`` is selected cell
  ``j`` on at position ``base + t``, ``W = ceil(m / 64)``.

Kernels never decide "on" from a float: that comparison is done by numpy
(``apply_transform(values) >= threshold``) exactly as the viewer does it. The
kernels combine the resulting bits, or index codes whose answer is certain, and
hand every uncertain code back to be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numba.extending import intrinsic

__all__ = [
    "ENCODE_TILE",
    "classify_cells",
    "encode_block",
    "list_checks",
    "pack_bits",
    "score_index",
    "score_windows",
    "set_bits",
    "stream",
    "stream1",
]

F = TypeVar("F", bound=Callable[..., Any])

_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def _jit(fn: F) -> F:
    return cast(F, numba.njit(cache=True, nogil=True, boundscheck=False)(fn))


def _inline(fn: F) -> F:
    """A step of a kernel, inlined into it (numba IR) wherever it is called: no call
    overhead in the inner loops, and one definition for kernels that share it."""
    return cast(F, numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")(fn))


@intrinsic
def _ctpop(typingctx: Any, x: Any) -> Any:
    """The CPU's population count (LLVM ``ctpop``) of a uint64."""
    sig = numba.types.uint64(numba.types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


@_inline
def _U(i: int) -> np.uint64:
    """An index known to be >= 0, as unsigned: numba then leaves out the
    wrap-around of negative indices (a shift, a mask and a load per access)."""
    return np.uint64(i)


@_jit
def _popcount(x: np.uint64) -> int:
    return int(np.int64(_ctpop(x)))  # type: ignore[call-arg]  # numba passes typingctx


CHECK_BLOCK = 1024


@_jit
def classify_cells(
    codes: np.ndarray,
    cells: np.ndarray,
    t0: int,
    t_len: int,
    on_lo: int,
    on_hi: int,
    ck_lo: int,
    ck_hi: int,
    mask: np.ndarray,
    flags: np.ndarray,
) -> int:
    """Bits of the codes ``codes[cells[j], t0 : t0 + t_len]`` that are surely on.

    A code ``c`` is on when ``on_lo <= c <= on_hi`` and needs the exact check
    when ``ck_lo <= c <= ck_hi`` (an empty range has ``lo > hi``); every other
    code is off. ``flags[j, k]`` says whether
    block ``k`` (``CHECK_BLOCK`` positions) of cell ``j`` has such a code; the
    number of flagged blocks is returned. ``mask[:, :t_len]`` is overwritten (it
    need not be zero on entry).

    Block by block, eight cells at a time: their bits are gathered in one byte
    per position and the byte is ORed into the block's masks. The compares are
    16-bit wrap-around range tests and the per-position work is a select into
    a byte, so the loops vectorise with narrow lanes (about twice as fast as
    ORing each cell's bit into the 64-bit masks directly).
    """
    lo = np.uint16(on_lo)
    span = np.uint16((on_hi - on_lo) & 0xFFFF)
    on_en = on_hi >= on_lo
    clo = np.uint16(ck_lo)
    cspan = np.uint16((ck_hi - ck_lo) & 0xFFFF)
    ck_en = ck_hi >= ck_lo
    zero = np.uint8(0)
    m = cells.shape[0]
    acc = np.zeros(CHECK_BLOCK, dtype=np.uint8)
    flagged = 0
    for k0 in range(0, t_len, CHECK_BLOCK):
        k1 = min(t_len, k0 + CHECK_BLOCK)
        n_t = k1 - k0
        for g in range(0, m, 8):
            for t in range(n_t):
                acc[t] = zero
            for j in range(g, min(m, g + 8)):
                blk = codes[cells[j], t0 + k0 : t0 + k1]
                bit = np.uint8(1 << (j - g)) if on_en else zero
                chk = False
                for t in range(n_t):
                    c = blk[t]
                    acc[t] |= bit if np.uint16(c - lo) <= span else zero
                    chk |= bool(np.uint16(c - clo) <= cspan)
                chk = chk and ck_en
                flags[j, k0 // CHECK_BLOCK] = chk
                flagged += chk
            dst = mask[g >> 6, k0:k1]
            shift = np.uint64(g & 63)
            if (g & 63) == 0:  # the word's first eight cells: no need to clear it first
                for t in range(n_t):
                    dst[t] = np.uint64(acc[t])
            else:
                for t in range(n_t):
                    dst[t] |= np.uint64(acc[t]) << shift
    return flagged


@_jit
def _scan_checks(
    codes: np.ndarray,
    cells: np.ndarray,
    flags: np.ndarray,
    t0: int,
    t_len: int,
    ck_lo: int,
    ck_hi: int,
    js: np.ndarray,
    ts: np.ndarray,
) -> int:
    k = 0
    cap = js.shape[0]
    for j in range(cells.shape[0]):
        row = codes[cells[j], t0 : t0 + t_len]
        for blk in range(flags.shape[1]):
            if not flags[j, blk]:
                continue
            for t in range(blk * CHECK_BLOCK, min(t_len, (blk + 1) * CHECK_BLOCK)):
                c = int(row[t])
                if ck_lo <= c <= ck_hi:
                    if k < cap:
                        js[k] = j
                        ts[k] = t
                    k += 1
    return k


@_jit
def list_checks(
    codes: np.ndarray,
    cells: np.ndarray,
    flags: np.ndarray,
    t0: int,
    t_len: int,
    ck_lo: int,
    ck_hi: int,
    out_j: np.ndarray,
    out_t: np.ndarray,
) -> int:
    """(cell row j, position offset t) of every code that needs the exact check,
    looking only into the blocks that ``classify_cells`` flagged. Returns how
    many there are; only as many as fit are written (call again with longer
    arrays when the count is larger)."""
    return _scan_checks(codes, cells, flags, t0, t_len, ck_lo, ck_hi, out_j, out_t)


@_jit
def set_bits(js: np.ndarray, ts: np.ndarray, on: np.ndarray, mask: np.ndarray) -> None:
    """Set the bits that the exact check found on."""
    for i in range(js.shape[0]):
        if on[i]:
            j = js[i]
            mask[j >> 6, ts[i]] |= _ONE << np.uint64(j & 63)


@_jit
def pack_bits(bits: np.ndarray, mask: np.ndarray) -> None:
    """``bits`` bool (T, m) into ``mask`` (zero on entry)."""
    t_len, m = bits.shape
    for j in range(m):
        out = mask[j >> 6]
        shift = np.uint64(j & 63)
        for t in range(t_len):
            out[t] |= np.uint64(bits[t, j]) << shift


# --------------------------------------------------------------------------- #
# The candidate stream (stream, stream1) and the steps the two share
# --------------------------------------------------------------------------- #


@_inline
def _owns_open_run(st_start: np.ndarray, size: int, own_s: int, own_e: int) -> bool:
    """Whether one of the ``size`` open runs started in ``[own_s, own_e)``."""
    for i in range(size):  # noqa: SIM110 - numba compiles the loop, not a generator
        if own_s <= st_start[i] < own_e:
            return True
    return False


@_inline
def _tally(
    length: int,
    level: int,
    inter: int,
    eligible: np.int64,
    m: int,
    half: int,
    limit: int,
    strict: np.ndarray,
    fuzzy: np.ndarray,
    counts: np.ndarray,
    floor: Any,
    above: Any,
) -> tuple[np.int64, Any, Any]:
    """Count a closing candidate (see :func:`stream`): into the length histograms
    (or, beyond them, flag bits 1 and 2), into ``counts[I]`` when ``eligible`` (0
    or 1), and move the running ``I_K`` (``floor``, with ``above`` eligible
    candidates above it). Returns ``(flag, floor, above)``: flag bit 4 says the
    candidate may reach the top. Branch-free where it can be: the stack's ups
    and downs are as unpredictable as the data."""
    fz = np.int64(level >= half)
    st = np.int64((level == m) & (inter == m))
    flag = np.int64(0)
    if length < strict.shape[0]:
        fuzzy[length * fz] += 1
        strict[length * st] += 1
    else:
        flag = fz | (st << 1)
    counts[inter] += eligible
    above += eligible & np.int64(inter > floor)
    while above >= limit:
        floor += 1
        above -= counts[floor]
    flag |= (eligible & np.int64(inter >= floor)) << 2
    return flag, floor, above


@_inline
def _count_changed(mask: np.ndarray, row: int, prev_mask: np.ndarray) -> tuple[int, bool]:
    """``(count, changed)`` of the masks at ``row``: cells on, and whether any differs
    from ``prev_mask``."""
    c = 0
    changed = False
    for w in range(prev_mask.shape[0]):
        cur = mask[w, row]
        c += _popcount(cur)
        changed |= cur != prev_mask[w]
    return c, changed


@_inline
def _inter_words(
    mask: np.ndarray, base: int, t: int, n: int, zr: int, acc: np.ndarray, okl: np.ndarray
) -> int:
    """``I`` of a range closing at ``t - 1``: cells on throughout (``acc``), off before
    it (``okl``) and off on the ``zr`` positions from ``t`` (read here)."""
    ones = ~_ZERO
    inter = 0
    for w in range(acc.shape[0]):
        okr = ones
        for p in range(t, min(n, t + zr)):
            okr &= ~mask[w, p - base]
        inter += _popcount(acc[w] & okl[w] & okr)
    return inter


@_inline
def _push_words(
    mask: np.ndarray,
    base: int,
    t: int,
    zl: int,
    c: int,
    size: int,
    st_start: np.ndarray,
    st_level: np.ndarray,
    st_and: np.ndarray,
    st_okl: np.ndarray,
) -> None:
    """Open entry ``size``: runs of the levels up to ``c`` starting at ``t``, with the
    cells off on the ``zl`` positions before ``t``."""
    ones = ~_ZERO
    st_start[size] = t
    st_level[size] = c
    for w in range(st_and.shape[1]):
        st_and[size, w] = ones
        off = ones
        for p in range(max(base, t - zl), t):
            off &= ~mask[w, p - base]
        st_okl[size, w] = off


@_jit
def stream(
    mask: np.ndarray,
    base: int,
    t_begin: int,
    t_end: int,
    n: int,
    own_s: int,
    own_e: int,
    zl: int,
    zr: int,
    m: int,
    len_lo: int,
    len_hi: int,
    r_lo: int,
    r_hi: int,
    limit: int,
    st_start: np.ndarray,
    st_level: np.ndarray,
    st_and: np.ndarray,
    st_okl: np.ndarray,
    state: np.ndarray,
    prev_mask: np.ndarray,
    strict: np.ndarray,
    fuzzy: np.ndarray,
    counts: np.ndarray,
    out_a: np.ndarray,
    out_len: np.ndarray,
    out_i: np.ndarray,
    out_flag: np.ndarray,
) -> tuple[int, int, bool]:
    """Enumerate the candidates that end while scanning positions ``[t_begin, t_end)``
    (``t_end == n``: also the virtual position ``n``, where every run ends).

    The candidate ranges are the nodes of a stack of open runs: entry ``i`` holds
    the levels ``(st_level[i-1], st_level[i]]``, all started at ``st_start[i]``.
    When the count drops, the entries above the new count end at ``t - 1``; the
    range of such an entry is one candidate, and its level (the minimum count
    over it) is ``st_level``. Only candidates starting in ``[own_s, own_e)`` are
    counted.

    ``I`` needs no per-cell state: entry ``i`` keeps ``st_and[i]``, the AND of the
    masks from its start up to the next entry's start (the top entry: up to now),
    so a closing range's AND (the selected cells on throughout) is the AND of
    the segments popped so far; ``st_okl[i]`` holds the cells off on
    ``[start - zl, start - 1]`` (read back in ``mask`` when the entry is
    pushed) and the cells off on ``[b + 1, b + zr]`` are read ahead when it
    closes. ``mask`` covers positions ``[base, ...)``: ``zl`` positions before
    ``t_begin`` (where there are any) and ``zr`` past ``t_end``.

    Each candidate is counted into the length histograms (``strict``, ``fuzzy``;
    index 0 collects the candidates that belong to neither; lengths beyond
    their size are emitted with ``out_flag`` bits 1 and 2 instead); an eligible
    one (length filter, range restriction) into ``counts[I]``, and emitted (flag
    bit 4) when ``I`` is at least the running ``I_K`` (``state[2]``, with
    ``state[3]`` = eligible count above it): :func:`_tally`. ``state`` is
    ``[stack size, previous count, I_K, above]``. Returns ``(emitted, next t,
    done)``: the kernel returns early when the output is nearly full, and is
    done once no run owned by this shard is open past ``own_e`` (or the corpus
    ended).
    """
    size = state[0]
    prev = state[1]
    floor = state[2]
    above = state[3]
    words = prev_mask.shape[0]
    half = (m + 1) // 2
    cap = out_a.shape[0]
    ones = ~_ZERO
    acc = np.empty(words, dtype=np.uint64)
    okl = np.empty(words, dtype=np.uint64)
    k = 0
    t = t_begin
    stop = t_end + 1 if t_end == n else t_end
    lim_all = min(t_end, n)
    done = False
    while t < stop:
        if t >= own_e and not _owns_open_run(st_start, size, own_s, own_e):
            done = True
            break
        if k + m + 2 > cap:
            break
        c = 0
        if t < n:
            if words == 1:
                # Skip the positions where nothing changes.
                pm = prev_mask[0]
                row0 = mask[0]
                lim = lim_all if t >= own_e else min(lim_all, own_e)
                while t < lim and row0[t - base] == pm:
                    t += 1
                if t == lim:
                    continue
                c = _popcount(row0[t - base])
            else:
                c, changed = _count_changed(mask, t - base, prev_mask)
                if not changed:
                    t += 1
                    continue
        if c < prev:
            last = -1
            for w in range(words):
                acc[w] = ones
            while size > 0 and st_level[size - 1] > c:
                size -= 1
                a = st_start[size]
                last = a
                for w in range(words):
                    acc[w] &= st_and[size, w]
                    okl[w] = st_okl[size, w]
                if a < own_s or a >= own_e:
                    continue
                length = t - a
                eligible = np.int64(
                    (length >= len_lo) & (length <= len_hi) & (a >= r_lo) & (t - 1 <= r_hi)
                )
                inter = _inter_words(mask, base, t, n, zr, acc, okl)
                flag, floor, above = _tally(
                    length, st_level[size], inter, eligible, m, half, limit,
                    strict, fuzzy, counts, floor, above,
                )  # fmt: skip
                if flag:
                    out_a[k] = a
                    out_len[k] = length
                    out_i[k] = inter
                    out_flag[k] = flag
                    k += 1
            if c > 0 and (size == 0 or st_level[size - 1] < c):
                # The runs of the levels down to c go on, from the last start popped.
                st_start[size] = last
                st_level[size] = c
                for w in range(words):
                    st_and[size, w] = acc[w]
                    st_okl[size, w] = okl[w]
                size += 1
            elif size > 0:
                for w in range(words):
                    st_and[size - 1, w] &= acc[w]
        elif c > prev:
            _push_words(mask, base, t, zl, c, size, st_start, st_level, st_and, st_okl)
            size += 1
        prev = c
        if t < n:
            for w in range(words):
                cur = mask[w, t - base]
                if size > 0:
                    st_and[size - 1, w] &= cur
                prev_mask[w] = cur
        t += 1
    state[0] = size
    state[1] = prev
    state[2] = floor
    state[3] = above
    return k, t, done or t > n


@_inline
def _levels_own(st_start: np.ndarray, lo: int, prev: int, own_s: int, own_e: int) -> bool:
    """Whether one of the open levels ``lo .. prev`` started in ``[own_s, own_e)``."""
    for lv in range(lo, prev + 1):  # noqa: SIM110 - numba compiles the loop, not a generator
        if own_s <= st_start[lv] < own_e:
            return True
    return False


@_jit
def stream1(
    mask: np.ndarray,
    base: int,
    t_begin: int,
    t_end: int,
    n: int,
    own_s: int,
    own_e: int,
    zl: int,
    zr: int,
    m: int,
    len_lo: int,
    len_hi: int,
    r_lo: int,
    r_hi: int,
    limit: int,
    st_start: np.ndarray,
    st_level: np.ndarray,
    st_and: np.ndarray,
    st_okl: np.ndarray,
    state: np.ndarray,
    prev_mask: np.ndarray,
    strict: np.ndarray,
    fuzzy: np.ndarray,
    counts: np.ndarray,
    out_a: np.ndarray,
    out_len: np.ndarray,
    out_i: np.ndarray,
    out_flag: np.ndarray,
    changes: np.ndarray,
    lo_level: int,
) -> tuple[int, int, bool]:
    """:func:`stream` for at most 64 selected cells, without a stack: ``mask`` is
    uint64 (T,) and the open runs are kept by level (index = level; 0 and
    ``m + 1`` are scratch entries): ``st_start[lv]`` where the run of ``count >=
    lv`` started, ``st_and[lv]`` the AND of the masks from there to the next
    level's start (the top level: to now) and ``st_okl[lv]`` the cells off on
    the ``zl`` positions before it.

    The positions where the mask changes are listed first (into ``changes``,
    longer than the range scanned), without a branch per position; each change
    then moves the count one level per step. Level ``lv`` closing at ``t`` is
    the candidate ``[st_start[lv], t - 1]`` unless the level above closed at
    the same time with the same start (then that range is the candidate, of
    the higher level): the stack entries of :func:`stream` are the distinct
    starts. Stores and selects take the place of the stack's data-dependent
    branches.

    ``lo_level`` > 1 leaves out the levels below it: a count below it is read as
    ``lo_level - 1`` (once the count got there), so those levels stay open and
    are never candidates, and positions where only they change are not
    visited. Their candidates are counted by :func:`low_levels` instead.
    ``st_level`` is not used; ``state[1]`` is the count, the rest as in
    :func:`stream`.
    """
    prev = state[1]
    floor = state[2]
    above = state[3]
    half = (m + 1) // 2
    cap = out_a.shape[0]
    allm = ~_ZERO if m >= 64 else (_ONE << np.uint64(m)) - _ONE
    pm = prev_mask[0]
    k = 0
    t = t_begin
    lim = min(t_end, n)
    done = False
    ones = ~_ZERO
    hcap = strict.shape[0]
    # The changes in [t_begin, lim), without a branch per position, and at the
    # corpus' end the virtual position n, where every run closes.
    nch = 0
    last = pm
    for u in range(t_begin, lim):
        x = mask[_U(u - base)]
        x = x if _popcount(x) >= lo_level else _ZERO
        changes[_U(nch)] = u
        nch += int(x != last)
        last = x
    if t_end >= n:
        changes[nch] = n
        nch += 1
    stopped = False
    for ci in range(nch):
        u = changes[ci]
        if u >= own_e and not _levels_own(st_start, lo_level, prev, own_s, own_e):
            done = True
            stopped = True
            break
        if k + m + 2 > cap:
            t = u
            stopped = True
            break
        cur = mask[u - base] if u < n else _ZERO
        c = _popcount(cur)
        # Below lo_level the count stays at lo_level - 1 (once it got there): the
        # levels under it stay open, so a drop from above costs steps only down
        # to lo_level.
        cur = cur if c >= lo_level else _ZERO
        c = c if c >= lo_level else min(prev, lo_level - 1)
        okr = ones
        for p in range(u, min(n, u + zr)):
            okr &= ~mask[p - base]
        offb = ones
        for p in range(max(base, u - zl), u):
            offb &= ~mask[p - base]
        # One level per step, closing the level the count leaves (going down) or
        # opening the level it enters (going up), with selects instead of branches.
        acc = ones
        last = np.int64(-1)
        for _ in range(max(1, abs(c - prev))):
            down = prev > c
            up = prev < c
            # Going down closes level prev: the range [start, u - 1], a
            # candidate unless the level above closed just now with the same start
            # (then that range is the candidate, of the higher level).
            a = st_start[_U(prev)]
            acc &= st_and[_U(prev)] | np.uint64(np.int64(down) - 1)  # down: AND; else ones
            inter = _popcount(acc & st_okl[_U(prev)] & okr & allm)
            length = u - a
            cand = np.int64(down & (a != last) & (a >= own_s) & (a < own_e) & (prev >= lo_level))
            last = a if down else last
            eligible = cand & np.int64(
                (length >= len_lo) & (length <= len_hi) & (a >= r_lo) & (u - 1 <= r_hi)
            )
            fz = cand & np.int64(prev >= half)
            st = cand & np.int64((prev == m) & (inter == m))
            small = np.int64(length < hcap)
            at = length * small
            fuzzy[_U(at * fz)] += 1
            if st:  # the selected cells all on throughout: rare
                strict[_U(at)] += 1
            flag = (1 - small) * (fz | (st << 1))
            counts[_U(inter)] += eligible
            above += eligible & np.int64(inter > floor)
            while above >= limit:
                floor += 1
                above -= counts[_U(floor)]
            flag |= (eligible & np.int64(inter >= floor)) << 2
            if flag:  # rare once the top K's I is known: a branch that predicts well
                out_a[_U(k)] = a
                out_len[_U(k)] = length
                out_i[_U(k)] = inter
                out_flag[_U(k)] = flag
                k += 1
            # Going up opens level prev + 1 at u (else the writes go to the scratch
            # entry m + 1: stores that always happen need no branch).
            nxt = prev - np.int64(down) + np.int64(up)
            w = nxt if up else m + 1
            st_start[_U(w)] = u
            st_okl[_U(w)] = offb
            st_and[_U(w)] = ones
            prev = nxt
        # The level the count is at now goes on through u (level 0: a scratch entry).
        st_and[_U(c)] &= acc & cur
        pm = cur
        t = u + 1
    if not stopped:
        t = n + 1 if t_end >= n else lim
        done = lim >= own_e and not _levels_own(st_start, lo_level, prev, own_s, own_e)
    state[0] = 0
    state[1] = prev
    state[2] = floor
    state[3] = above
    prev_mask[0] = pm
    return k, t, done or t > n


# Bit 7 of byte lane lv - 1 (lv = 1 .. 8) of _LANES_GE[c]: c >= lv; of _LANES_EQ[c]: c == lv.
_LANES_GE = np.array(
    [sum(0x80 << (8 * (lv - 1)) for lv in range(1, 9) if c >= lv) for c in range(65)],
    dtype=np.uint64,
)
_LANES_EQ = np.array(
    [(0x80 << (8 * (c - 1))) if 1 <= c <= 8 else 0 for c in range(65)], dtype=np.uint64
)
# Positions between two flushes of the per-lane byte counters (at most 255).
_LANE_FLUSH = 248


@_jit
def low_levels(
    mask: np.ndarray,
    base: int,
    t0: int,
    t1: int,
    own_s: int,
    len_lo: int,
    out: np.ndarray,
) -> None:
    """``out[lv] +=`` the candidates of level ``lv`` (1 to 8) that start at or after
    ``own_s`` and are at least ``len_lo`` (1 or 2) long, over positions ``[t0,
    t1)``: every run open at ``t1`` is closed there, so ``t1`` must be a position
    where the count is 0 or the corpus' end.

    Eight levels side by side, one byte lane each (bit 7 of lane ``lv - 1``,
    from the tables ``_LANES_GE``/``_LANES_EQ``): a run of level ``lv`` is a
    candidate of that level when it held a position where the count was
    exactly ``lv``. Lane counters are bytes, flushed every ``_LANE_FLUSH``
    positions. No branch depends on the data.
    """
    tge = _LANES_GE
    teq = _LANES_EQ
    ge_prev = _ZERO
    seen = _ZERO
    owned = _ZERO
    opened_prev = _ZERO
    lane_acc = _ZERO
    ones = ~_ZERO
    short_ok = ones if len_lo <= 1 else _ZERO
    t = t0
    while t <= t1:
        stop = min(t1 + 1, t + _LANE_FLUSH)
        for u in range(t, stop):
            c = _popcount(mask[_U(u - base)]) if u < t1 else 0
            ge = tge[_U(c)]
            opening = ge & ~ge_prev
            closing = ge_prev & ~ge
            hits = closing & seen & owned & (~opened_prev | short_ok)
            lane_acc += hits >> np.uint64(7)
            owned = (owned & ~opening) | (opening if u >= own_s else _ZERO)
            seen = (seen & ~opening) | teq[_U(c)]
            opened_prev = opening
            ge_prev = ge
        for lane in range(8):
            out[lane + 1] += np.int64((lane_acc >> np.uint64(8 * lane)) & np.uint64(0xFF))
        lane_acc = _ZERO
        t = stop


@_jit
def _code(bits: np.uint32) -> int:
    """The index code of a float32 given as its bits (see ``match_index.encode``)."""
    hi = np.int64(bits) >> 16
    return int(hi ^ (0x8000 | ((hi >> 15) * 0x7FFF)))


@_jit
def _value_class(
    bits: np.uint32, on_lo: int, on_hi: int, ck_lo: int, ck_hi: int, sp1: int, sp2: int
) -> int:
    """0 off, 1 on, 2 check: the class of the index code of a float32 given as bits."""
    return _code_class(_code(bits), on_lo, on_hi, ck_lo, ck_hi, sp1, sp2)


@_jit
def _index_class(c: int, on_lo: int, ck_lo: int, ck_hi: int) -> int:
    """0 off, 1 on, 2 check: the class of an index code (on: ``c >= on_lo``)."""
    if c >= on_lo:
        return 1
    if ck_lo <= c <= ck_hi:
        return 2
    return 0


@_jit
def _code_class(c: int, on_lo: int, on_hi: int, ck_lo: int, ck_hi: int, sp1: int, sp2: int) -> int:
    """0 off, 1 on, 2 check: the class of an index code."""
    if on_lo <= c <= on_hi:
        return 1
    if (ck_lo <= c <= ck_hi) | (c == sp1) | (c == sp2):
        return 2
    return 0


@_jit
def _edge_pass(
    row: np.ndarray,
    want_on: bool,
    maybe: np.ndarray,
    on_lo: int,
    on_hi: int,
    ck_lo: int,
    ck_hi: int,
    sp1: int,
    sp2: int,
) -> None:
    """Clear ``maybe[c]`` where the value ``row[c]`` (float32 bits) is surely not as wanted."""
    for c in range(row.shape[0]):
        hi = np.int64(row[c]) >> 16
        code = hi ^ (0x8000 | ((hi >> 15) * 0x7FFF))
        on = (code >= on_lo) & (code <= on_hi)
        if want_on:
            ok = on | ((code >= ck_lo) & (code <= ck_hi)) | (code == sp1) | (code == sp2)
        else:
            ok = ~on
        maybe[c] &= np.uint8(ok)


@_jit
def score_index(
    codes: np.ndarray,
    mins: np.ndarray,
    block: int,
    src: np.ndarray,
    at: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    zl: int,
    is_c: np.ndarray,
    on_lo: int,
    on_hi: int,
    ck_lo: int,
    ck_hi: int,
    sp1: int,
    sp2: int,
    i_on: int,
    i_ck_lo: int,
    i_ck_hi: int,
    size: np.ndarray,
    inter: np.ndarray,
    pend_i: np.ndarray,
    pend_c: np.ndarray,
    pend_p: np.ndarray,
    pend_want: np.ndarray,
) -> int:
    """``|C'(R)|`` and ``I`` of the candidates ``[a, b]``, cell by cell.

    ``src`` is uint32 (R, D), float32 bits of source rows, and ``at`` int64
    (k, zl + 1 + zr + 1) the rows of ``src`` that hold positions ``a - zl .. a``
    and then ``b .. b + zr`` of each candidate, ``-1`` for positions outside the
    corpus (off, as NaN would be). The positions strictly inside come from the
    index: ``mins`` (D, N / block) for whole summary blocks, ``codes`` (D, N) for
    the rest. Edge values are classified by their key codes (``on_lo`` ..
    ``sp2``), index codes by ``i_on`` .. ``i_ck_hi``; a cell is rejected at the
    first value that is surely wrong (on where it must be off or the reverse),
    and each value that needs the exact check is listed in ``pend_*`` as
    (candidate, cell, position, wanted on) with the cell left out of
    ``size``/``inter`` for the caller to settle. Returns the number of pending
    checks; when it exceeds the arrays' length the caller must retry with
    longer arrays.
    """
    d = src.shape[1]
    zr = at.shape[1] - zl - 2
    cap = pend_i.shape[0]
    npend = 0
    maybe = np.empty(d, dtype=np.uint8)
    for i in range(a.shape[0]):
        ai = a[i]
        bi = b[i]
        rows = at[i]
        s_count = 0
        s_inter = 0
        # Which cells may fit the edge rows: branch-free passes over whole rows
        # (most cells fail here), the exact walk below only for the rest.
        maybe[:] = 1
        for r in range(zl + 2 + zr):
            if r == zl + 1 and bi == ai:
                continue
            want_on = r == zl or r == zl + 1
            if rows[r] >= 0:
                _edge_pass(src[rows[r]], want_on, maybe, on_lo, on_hi, ck_lo, ck_hi, sp1, sp2)
            elif want_on:
                maybe[:] = 0
        for c in range(d):
            if not maybe[c]:
                continue
            first = npend
            bad = False
            # Edge rows (row r is position a - zl + r, then b + r - zl - 1):
            # on at a and b, off elsewhere.
            for r in range(zl + 2 + zr):
                if r == zl + 1 and bi == ai:
                    continue
                want = r == zl or r == zl + 1
                pos = ai - zl + r if r <= zl else bi + r - zl - 1
                v = 0
                if rows[r] >= 0:
                    v = _value_class(src[rows[r], c], on_lo, on_hi, ck_lo, ck_hi, sp1, sp2)
                if v == 2:
                    if npend < cap:
                        pend_i[npend] = i
                        pend_c[npend] = c
                        pend_p[npend] = pos
                        pend_want[npend] = 1 if want else 0
                    npend += 1
                elif (v == 1) != want:
                    bad = True
                    break
            if not bad:
                # Inside: whole summary blocks by their smallest code, the rest code by code.
                row = codes[c]
                mrow = mins[c]
                p = ai + 1
                while p < bi and not bad:
                    end = min(bi, (p | (block - 1)) + 1)
                    if (p & (block - 1)) == 0 and p + block <= bi:
                        v = _index_class(int(mrow[p // block]), i_on, i_ck_lo, i_ck_hi)
                        if v == 1:
                            p += block
                            continue
                        if v == 0:
                            bad = True
                            break
                    for q in range(p, end):
                        v = _index_class(int(row[q]), i_on, i_ck_lo, i_ck_hi)
                        if v == 1:
                            continue
                        if v == 2:
                            if npend < cap:
                                pend_i[npend] = i
                                pend_c[npend] = c
                                pend_p[npend] = q
                                pend_want[npend] = 1
                            npend += 1
                            continue
                        bad = True
                        break
                    p = end
            if bad:
                npend = first
                continue
            if npend == first:
                s_count += 1
                if is_c[c]:
                    s_inter += 1
        size[i] = s_count
        inter[i] = s_inter
    return npend


@_jit
def score_windows(
    on: np.ndarray,
    u0: int,
    u1: int,
    c_lo: np.ndarray,
    c_a: np.ndarray,
    c_b: np.ndarray,
    c_hi: np.ndarray,
    acc_on: np.ndarray,
    acc_bad: np.ndarray,
) -> None:
    """Fold rows ``[u0, u1)`` of a row stream into the candidates' cell flags.

    ``on`` is bool (u1 - u0, D), row ``u - u0`` of the stream. Candidate ``i``
    covers stream rows ``[c_lo, c_hi]`` with its on-part ``[c_a, c_b]``:
    ``acc_on[i]`` stays True for cells on in every on-row, ``acc_bad[i]`` becomes
    True for cells on in an off-row.
    """
    d = on.shape[1]
    for i in range(c_lo.shape[0]):
        lo = max(c_lo[i], u0)
        hi = min(c_hi[i], u1 - 1)
        if lo > hi:
            continue
        for u in range(lo, hi + 1):
            r = u - u0
            if c_a[i] <= u <= c_b[i]:
                for c in range(d):
                    acc_on[i, c] &= on[r, c]
            else:
                for c in range(d):
                    acc_bad[i, c] |= on[r, c]


# --------------------------------------------------------------------------- #
# Building the index: codes of a block of rows, cell-major
# --------------------------------------------------------------------------- #

# Rows per tile of :func:`encode_block`.
ENCODE_TILE = 16


@_jit
def encode_block(
    bits: np.ndarray,
    guess: np.ndarray,
    bounds: np.ndarray,
    summary: int,
    codes: np.ndarray,
    mins: np.ndarray,
) -> None:
    """The index codes of a block of rows, written cell-major, and their minimums.

    ``bits`` uint32 (R, D) are the float32 values' bits, ``guess`` float32 (R, D)
    their float32 ``tanh`` (numpy's, a first guess only), ``bounds`` uint32
    (65535,) the order key of the smallest float32 of each code (``bounds[c - 1]``
    for code ``c``, see ``match_index``). Fills ``codes`` uint16 (D, R) with the
    exact code of every value (NaN: 0) and ``mins`` uint16 (D, ceil(R / summary))
    with the smallest code of each ``summary`` rows.

    The guess lands on the right code or next to it (float32 ``tanh`` is off by
    an ulp or two, about 1e-7 where a code spans 6e-5), and the order key of the
    value against ``bounds`` moves it onto the exact one, so the result is the
    code of ``match_index.encode`` without a float64 ``tanh`` per value. Rows go
    in tiles of :data:`ENCODE_TILE`, so that the cell-major writes of a tile
    stay in cache until they are complete.
    """
    rows, d = bits.shape
    low = np.full(d, 65535, dtype=np.int64)
    for i0 in range(0, rows, ENCODE_TILE):
        i1 = min(rows, i0 + ENCODE_TILE)
        for i in range(i0, i1):
            for j in range(d):
                b = np.int64(bits[i, j])  # 64-bit arithmetic: no sign or wrap-around surprises
                c = 0
                if (b & 0x7FFFFFFF) <= 0x7F800000:  # not NaN
                    # The order key: negative values reversed below the positive ones.
                    key = 0xFFFFFFFF - b if b >= 0x80000000 else b + 0x80000000
                    c = int((np.float64(guess[i, j]) + 1.0) * 32767.0) + 1
                    c = min(max(c, 1), 65535)
                    while c > 1 and key < np.int64(bounds[c - 1]):
                        c -= 1
                    while c < 65535 and np.int64(bounds[c]) <= key:
                        c += 1
                codes[j, i] = c
                low[j] = min(low[j], c)
            if (i + 1) % summary == 0 or i + 1 == rows:
                blk = i // summary
                for j in range(d):
                    mins[j, blk] = low[j]
                    low[j] = 65535
