"""The match engine behind :func:`workers.core.match.match`, on the CPU.

One pass over the corpus (or a shard of it) in chunks of positions:

1. **Bits.** The on/off bits of the ``m`` selected cells for a chunk, packed per
   position into ``m``-bit masks. With the match index the codes of the selected
   cells are read (``m x chunk x 2`` bytes) and classified by
   :func:`index_classes`; codes that straddle the threshold are checked against
   the float32 source with the very expression the viewer uses,
   ``apply_transform(values, transform) >= threshold``. Without an index the
   rows of the chunk are read from the row-major source and thresholded the same
   way.
2. **Candidates.** ``match_kernels.stream1``/``stream`` keep the stack of open
   runs (every level at once) with the AND of the masks over each run, so when a
   candidate ends its level (the minimum count) and ``I`` are known at once; the
   kernel counts the histograms and ``counts[I]`` of the eligible candidates
   (length filter, range restriction) and hands over those whose ``I`` can still
   reach the top ``K`` (:class:`Collector`).
3. **Union.** ``U`` needs all ``D`` cells, so it is computed only for the kept
   candidates: edge rows from the row-major source, the inside from the index
   (:func:`_score_index`), or all their rows without an index
   (:func:`_score_rows`); the final order is ``(I desc, U asc, L desc, a asc)``.

A long range is split into parts scanned by two threads (the kernels release
the GIL); parts are shards, merged exactly. Files are memory-mapped once per
process; for corpora above ``RELEASE_ABOVE`` tokens the pages a match read are
handed back (they stay in the page cache), so resident memory is bounded by the
chunk size and the budget, not by ``N``. ``docs/matching.md`` has the details
and the exactness argument.

The CUDA path (``match_torch``) finds the same candidates its own way and
shares the rest with this module: :class:`Plan`, :class:`MatchFiles`,
:class:`Collector` and :func:`finish`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import mmap
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from workers.core.context import apply_transform
from workers.core.match_index import (
    CODE_STEPS,
    SUMMARY_BLOCK,
    MatchIndex,
    npy_data_offset,
    open_index,
)
from workers.core.match_types import MatchHit, MatchQuery, MatchResult, trim_histogram
from workers.core.store import StateSet

__all__ = [
    "Collector",
    "MatchFiles",
    "Plan",
    "finish",
    "floor_of",
    "index_classes",
    "key_classes",
    "key_encode",
    "run",
    "run_cpu",
]

# Positions per chunk when reading the index: m x 2^17 x 2 bytes of codes.
CHUNK = 1 << 17
# float32 values per read of the row-major source (16 MiB).
ROW_VALUES = 4 << 20
# Candidates whose union is computed together (fewer where pages are handed back
# after each group).
SCORE_GROUP = 2048
SCORE_GROUP_RELEASED = 256
# Rows apart that are still read by one pread, with the rows between them.
_ROW_GAP = 8

_FINITE_LO = 0x0080  # codes 0x0000-0x007E: negative NaN only; 0x007F: -inf and NaN
_FINITE_HI = 0xFF7F  # 0xFF80: +inf and NaN; 0xFF81-0xFFFF: positive NaN only


@dataclass(frozen=True)
class Plan:
    """A validated query, resolved against its source."""

    n: int
    d: int
    cells: np.ndarray  # int64 (m,)
    m: int
    threshold: float
    transform: str
    zl: int
    zr: int
    len_lo: int
    len_hi: int
    range_start: int
    range_end: int
    limit: int
    budget: int
    src_path: str
    src_offset: int
    src_dtype: str = "float32"  # float16 sources are converted as they are read

    @classmethod
    def make(cls, ss: StateSet, source_id: str, q: MatchQuery, budget: int) -> Plan:
        info = ss.source(source_id)
        lo, hi = q.length_bounds
        path = ss.path / "sources" / f"{source_id}.npy"
        return cls(
            n=ss.length,
            d=info.cells,
            cells=np.asarray(q.cells, dtype=np.int64),
            m=len(q.cells),
            threshold=float(q.threshold),
            transform=info.transform if q.transform is None else q.transform,
            zl=int(q.zero_left),
            zr=int(q.zero_right),
            len_lo=lo,
            len_hi=hi,
            range_start=int(q.range_start),
            range_end=ss.length - 1 if q.range_end is None else int(q.range_end),
            limit=int(q.limit),
            budget=budget,
            src_path=str(path),
            src_offset=_data_offset(str(path)),
            src_dtype=info.dtype,
        )

    def is_on(self, values: np.ndarray) -> np.ndarray:
        """The contract's "on": ``apply_transform(values) >= threshold`` (NaN off)."""
        out: np.ndarray = apply_transform(values, self.transform) >= self.threshold
        return out


@lru_cache(maxsize=256)
def _data_offset(path: str) -> int:
    return npy_data_offset(Path(path))


# --------------------------------------------------------------------------- #
# Classifying index codes
# --------------------------------------------------------------------------- #


def key_encode(values: np.ndarray) -> np.ndarray:
    """uint16 *key* codes of float32 ``values``: the high half of the order-preserving
    32-bit key (sign bit set for positives, all bits flipped for negatives).

    Key codes classify raw float32 values read from the row-major source (the
    edge rows of a candidate) with a few bit operations, where computing
    ``tanh`` for every value would cost more. They sort like the values; NaN
    has codes of its own at both ends (``0x0000-0x007F`` and ``0xFF80-0xFFFF``,
    the two boundary codes shared with ``-inf`` and ``+inf``).
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    flip = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return ((bits ^ flip) >> np.uint32(16)).astype(np.uint16)


@lru_cache(maxsize=1)
def _key_bounds() -> tuple[np.ndarray, np.ndarray]:
    """float32 (65536,) lowest and highest value of each key code (NaN codes: garbage)."""
    codes = np.arange(1 << 16, dtype=np.uint32)
    out = []
    for low in (0, 0xFFFF):
        key = (codes << np.uint32(16)) | np.uint32(low)
        neg = (key & np.uint32(0x80000000)) == 0
        bits = np.where(neg, ~key, key ^ np.uint32(0x80000000)).astype(np.uint32)
        out.append(bits.view(np.float32))
    return out[0], out[1]


def _tanh_margin(threshold: float) -> tuple[float, float]:
    """``(thr32, eps)``: numpy compares float32 values with ``float32(threshold)``;
    ``eps`` (64 float32 steps) is far more than numpy's float32 ``tanh`` error."""
    thr32 = float(np.float32(threshold))
    return thr32, 64.0 * float(np.spacing(np.abs(np.float32(thr32)))) + abs(threshold - thr32)


def _ranges(on: np.ndarray, maybe: np.ndarray, first: int) -> tuple[int, int, int, int]:
    """``(on_lo, on_hi, ck_lo, ck_hi)`` from per-code flags of consecutive codes.

    ``on`` and ``maybe`` are monotone (a suffix), so the codes split into off,
    check and on ranges; empty ranges are ``(1, 0)``.
    """
    n_off = int(np.argmax(maybe)) if maybe.any() else len(maybe)
    n_on = int(np.argmax(on)) if on.any() else len(on)
    check = maybe & ~on
    if not (on[n_on:].all() and not maybe[:n_off].any() and check[n_off:n_on].all()):
        raise RuntimeError("the code classes of the match index are not monotone")
    on_lo, on_hi = (first + n_on, first + len(on) - 1) if n_on < len(on) else (1, 0)
    ck_lo, ck_hi = (first + n_off, first + n_on - 1) if n_off < n_on else (1, 0)
    return on_lo, on_hi, ck_lo, ck_hi


@lru_cache(maxsize=512)
def key_classes(transform: str, threshold: float) -> tuple[int, int, int, int, int, int]:
    """``(on_lo, on_hi, ck_lo, ck_hi, sp1, sp2)`` for key codes (:func:`key_encode`).

    Codes in ``[on_lo, on_hi]`` hold only values that are on; codes in
    ``[ck_lo, ck_hi]`` and the codes ``sp1``/``sp2`` (``+-inf`` together with NaN)
    hold values of both kinds and are checked value by value; all other codes
    hold only off values (NaN among them). ``none`` is decided exactly (the
    comparison is monotone in the value); for ``tanh`` a code counts as on (off)
    only when the true ``tanh`` of its lowest (highest) value clears the
    threshold by the margin of :func:`_tanh_margin`.
    """
    lo, hi = _key_bounds()
    fin = slice(_FINITE_LO, _FINITE_HI + 1)
    flo, fhi = lo[fin], hi[fin]
    if transform == "none":
        on = flo >= threshold
        maybe = fhi >= threshold
    else:
        thr32, eps = _tanh_margin(threshold)
        on = np.tanh(flo.astype(np.float64)) >= thr32 + eps
        maybe = ~(np.tanh(fhi.astype(np.float64)) < thr32 - eps)
    on_lo, on_hi, ck_lo, ck_hi = _ranges(on, maybe, _FINITE_LO)
    specials = np.array([-np.inf, np.inf], dtype=np.float32)
    inf_on = apply_transform(specials, transform) >= threshold
    # An unused special is set to code 0, which holds only NaN: checked, found off.
    sp1 = 0x007F if bool(inf_on[0]) else 0
    sp2 = 0xFF80 if bool(inf_on[1]) else 0
    return on_lo, on_hi, ck_lo, ck_hi, sp1, sp2


# Slack for the float64 arithmetic of the index codes (tanh, the scaling, floor).
_CODE_SLACK = 1e-12


@lru_cache(maxsize=512)
def index_classes(transform: str, threshold: float) -> tuple[int, int, int, int]:
    """``(on_lo, on_hi, ck_lo, ck_hi)`` for the index codes of ``match_index.encode``.

    Code ``c >= 1`` holds values with ``tanh(v)`` in
    ``[(c - 1) / 32767 - 1, c / 32767 - 1]`` (give or take ``_CODE_SLACK``). For
    ``tanh`` a code is surely on when the lower end clears the threshold by the
    margin of :func:`_tanh_margin`, surely off when the upper end stays below
    it by the margin; for ``none`` the ends map back through ``atanh`` and are
    compared with ``float32(threshold)``, with a relative slack for ``atanh``'s
    rounding. Code 0 (NaN) is in no range: off.
    """
    c = np.arange(1, 1 << 16, dtype=np.float64)
    t_lo = np.maximum((c - 1.0) / CODE_STEPS - 1.0 - _CODE_SLACK, -1.0)
    t_hi = np.minimum(c / CODE_STEPS - 1.0 + _CODE_SLACK, 1.0)
    if transform == "none":
        thr32 = float(np.float32(threshold))
        with np.errstate(divide="ignore"):
            raw_lo = np.arctanh(t_lo)
            raw_hi = np.arctanh(t_hi)
        on = raw_lo - 1e-9 * (1.0 + np.abs(raw_lo)) >= thr32
        maybe = ~(raw_hi + 1e-9 * (1.0 + np.abs(raw_hi)) < thr32)
    else:
        thr32, eps = _tanh_margin(threshold)
        on = t_lo >= thr32 + eps
        maybe = ~(t_hi < thr32 - eps)
    return _ranges(on, maybe, 1)


# --------------------------------------------------------------------------- #
# Reading a state set's files without holding them in memory
# --------------------------------------------------------------------------- #


class _Mapped:
    """A read-only map of a whole ``.npy`` file (data part as a 2-D array).

    A match reads the codes of a few cells over the whole corpus and scattered
    rows of the source; mapping avoids copies. Maps are kept per process
    (:func:`_mapped`) so that a warm worker touches no page twice; for large
    corpora ``release`` hands the pages of a finished chunk back (they stay in
    the page cache), so resident memory is bounded by the chunk, not by ``N``.
    """

    def __init__(self, path: str, offset: int, dtype: type, shape: tuple[int, int]) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self.mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self.offset = offset
        self.itemsize = np.dtype(dtype).itemsize
        self.shape = shape
        self.array: np.ndarray = np.frombuffer(
            self.mm, dtype=dtype, count=shape[0] * shape[1], offset=offset
        ).reshape(shape)
        self.populating: threading.Thread | None = None

    def release(self, row: int, col0: int, col1: int) -> None:
        """Drop the pages of ``array[row, col0:col1]`` from this process."""
        start = self.offset + self.itemsize * (row * self.shape[1] + col0)
        end = self.offset + self.itemsize * (row * self.shape[1] + col1)
        start = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
        end = end // mmap.PAGESIZE * mmap.PAGESIZE
        if end > start:
            self.mm.madvise(mmap.MADV_DONTNEED, start, end - start)

    def release_all(self) -> None:
        self.mm.madvise(mmap.MADV_DONTNEED)

    def populate_soon(self) -> None:
        """Map every page of the file into this process, in a background thread,
        once: afterwards no read of a match faults (a first fault costs
        microseconds, and a match of 1M tokens touches thousands of pages it
        never touched before: the codes of the cells it selects, the rows around
        its candidates). The pages are the page cache's own, so this costs no
        memory beyond the file's share of it; only for files that a match keeps
        mapped anyway (below ``RELEASE_ABOVE`` tokens), and while the populated maps
        the process holds stay within ``_POPULATE_BYTES``."""
        with _MAPS_LOCK:
            held = sum(len(m.mm) for m in _MAPS.values() if m.populating is not None)
            if (
                not _populate_here
                or self.populating is not None
                or held + len(self.mm) > _POPULATE_BYTES
            ):
                return
            self.populating = threading.Thread(
                target=self._populate, name="statelab-map-populate", daemon=True
            )
        self.populating.start()

    def _populate(self) -> None:
        # Through libc, not mmap.madvise: a foreign call releases the GIL, so the
        # process' other threads (a web server's requests) go on meanwhile.
        start = self.array.ctypes.data - self.offset
        size = len(self.mm)
        with contextlib.suppress(OSError, AttributeError):
            # Kernels before 5.14 refuse the advice: pages are then mapped on first use.
            _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(size), _MADV_POPULATE_READ)


_MADV_POPULATE_READ = 22  # Linux 5.14 and later
# Bytes of the files a process keeps populated at most (STATELAB_MATCH_POPULATE_MB,
# default 8 GiB: a 1M x 650 source and its index are 3.9 GB); a file whose pages are
# not in the page cache is read from disk, so this bounds what one process pulls in.
_POPULATE_BYTES = int(os.environ.get("STATELAB_MATCH_POPULATE_MB", "8192")) << 20
_populate_here = True


def populate_maps(enabled: bool) -> None:
    """Whether this process populates the maps it opens (workers do; a web process,
    many threads answering requests, does not: with its maps populated, its other
    requests got slower than the matches got faster, see ``docs/matching.md``)."""
    global _populate_here
    _populate_here = enabled


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return libc


def populating() -> bool:
    """Whether a map of this process is still being populated (for benchmarks,
    which time a process that has been answering queries for a while)."""
    with _MAPS_LOCK:
        maps = list(_MAPS.values())
    return any(m.populating is not None and m.populating.is_alive() for m in maps)


_MAPS: OrderedDict[tuple[str, int, int], _Mapped] = OrderedDict()
_MAPS_KEPT = 8
_MAPS_LOCK = threading.Lock()
# Corpora longer than this release the pages they read after each chunk.
RELEASE_ABOVE = 4_000_000


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _mapped(path: str, offset: int, dtype: type, shape: tuple[int, int]) -> _Mapped:
    """The process's map of ``path``, made on first use.

    Maps of files that were replaced or deleted since are dropped first, so a
    deleted state set's disk space is not held by a worker that matched it.
    """
    with _MAPS_LOCK:
        for key in list(_MAPS):
            if _identity(key[0]) != key[1:]:
                del _MAPS[key]  # the map closes when its last view goes
        ident = _identity(path)
        if ident is None:
            raise FileNotFoundError(path)
        key = (path, *ident)
        found = _MAPS.get(key)
        if found is None:
            found = _Mapped(path, offset, dtype, shape)
            _MAPS[key] = found
            while len(_MAPS) > _MAPS_KEPT:
                _MAPS.popitem(last=False)
        _MAPS.move_to_end(key)
        return found


class MatchFiles:
    """The files one match reads: the index codes (if any) and the source.

    The source is float32 or float16 (``plan.src_dtype``); what :meth:`rows` and
    :meth:`values` return is float32 either way (float16 widens exactly), so the
    kernels and ``Plan.is_on`` see the same values as on a float32 copy.
    """

    def __init__(self, plan: Plan, idx: MatchIndex | None) -> None:
        self.plan = plan
        self.idx = idx
        self.codes: _Mapped | None = None
        self.checks = 0
        self.release = plan.n > RELEASE_ABOVE
        self.dtype = np.dtype(plan.src_dtype)
        self.src = _mapped(plan.src_path, plan.src_offset, self.dtype.type, (plan.n, plan.d))
        # Scattered reads of a large source go through pread: the first fault in
        # a map brings in a whole folio of the page cache (up to megabytes here),
        # which costs more than a system call and stays resident. A smaller
        # source is read through its map, which a warm worker has mostly mapped.
        self.fd = os.open(plan.src_path, os.O_RDONLY)
        try:
            if idx is not None:
                self.codes = _mapped(
                    str(idx.codes_path), idx.offset, np.uint16, (idx.cells, idx.rows)
                )
                self.mins = _mapped(
                    str(idx.mins_path), idx.mins_offset, np.uint16, (idx.cells, idx.blocks)
                )
                self.classes = index_classes(plan.transform, plan.threshold)
                self.keys = key_classes(plan.transform, plan.threshold)
        except BaseException:
            self.close()
            raise
        if not self.release:
            for mapped in (self.src, self.codes, getattr(self, "mins", None)):
                if mapped is not None:
                    mapped.populate_soon()

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(src, pos)``: uint32 ``src`` (R, D) holds the float32 bits of source rows
        and ``pos`` (shaped like ``rows``) the row of ``src`` that holds position
        ``rows[...]``, ``-1`` where the position lies outside the corpus.

        A smaller source is read in place through its map (nothing is copied);
        a large one in runs: positions closer than ``_ROW_GAP`` are read by one
        ``pread`` together with the rows between them.
        """
        plan = self.plan
        valid = (rows >= 0) & (rows < plan.n)
        f32 = self.dtype == np.float32
        if not self.release and f32:
            return self.src.array.view(np.uint32), np.where(valid, rows, -1)
        pos = np.full(rows.shape, -1, dtype=np.int64)
        want = np.unique(rows[valid])
        if want.size == 0:
            return np.zeros((0, plan.d), dtype=np.uint32), pos
        if not self.release:  # float16 through the map: the rows wanted, widened
            pos[valid] = np.searchsorted(want, rows[valid])
            return self.src.array[want].astype(np.float32).view(np.uint32), pos
        breaks = np.flatnonzero(np.diff(want) > _ROW_GAP) + 1
        run_lo = want[np.concatenate([[0], breaks])]
        run_hi = want[np.concatenate([breaks - 1, [want.size - 1]])] + 1
        run_at = np.concatenate([[0], np.cumsum(run_hi - run_lo)])
        buf = np.empty((int(run_at[-1]), plan.d), dtype=np.float32)
        raw = buf if f32 else np.empty(buf.shape, dtype=self.dtype)
        row_bytes = self.dtype.itemsize * plan.d
        for lo, hi, at in zip(run_lo.tolist(), run_hi.tolist(), run_at.tolist(), strict=False):
            view = raw[at : at + hi - lo]
            got = os.preadv(self.fd, [view.data.cast("B")], plan.src_offset + row_bytes * lo)
            if got != view.nbytes:
                raise OSError("the source is shorter than its header says")
        if not f32:
            buf[...] = raw
        r = rows[valid]
        k = np.searchsorted(run_lo, r, side="right") - 1
        pos[valid] = run_at[k] + (r - run_lo[k])
        return buf.view(np.uint32), pos

    def values(self, ts: np.ndarray, cs: np.ndarray) -> np.ndarray:
        """float32 values ``source[ts[i], cs[i]]`` (contiguous, for ``Plan.is_on``)."""
        plan = self.plan
        if not self.release or ts.size > 65536:
            out = np.ascontiguousarray(self.src.array[ts, cs], dtype=np.float32)
            if self.release:
                self.src.release_all()
            return out
        out = np.empty(ts.size, dtype=np.float32)
        size = self.dtype.itemsize
        base = plan.src_offset + size * (ts * plan.d + cs)
        for i, off in enumerate(base.tolist()):
            out[i] = np.frombuffer(os.pread(self.fd, size, off), dtype=self.dtype)[0]
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.release:
            # Scattered reads (checks, edge rows, the insides of candidates) too.
            self.src.release_all()
            if self.codes is not None:
                self.codes.release_all()
            if hasattr(self, "mins"):
                self.mins.release_all()

    @property
    def chunk(self) -> int:
        return CHUNK if self.codes is not None else max(1, ROW_VALUES // self.plan.d)

    def fill(self, t0: int, t1: int, mask: np.ndarray) -> None:
        """``mask[:, :t1 - t0]`` = the selected cells' bits at positions ``[t0, t1)``."""
        from workers.core import match_kernels as K

        length = t1 - t0
        plan = self.plan
        if self.codes is None:
            mask[:, :length] = 0
            rows = np.ascontiguousarray(self.src.array[t0:t1])
            K.pack_bits(plan.is_on(rows[:, plan.cells]), mask)
            if self.release:
                self.src.release(t0, 0, (t1 - t0) * plan.d)  # rows t0 .. t1 - 1
            return
        codes = self.codes.array
        on_lo, on_hi, ck_lo, ck_hi = self.classes
        flags = np.zeros((plan.m, -(-length // K.CHECK_BLOCK)), dtype=np.bool_)
        flagged = K.classify_cells(
            codes, plan.cells, t0, length, on_lo, on_hi, ck_lo, ck_hi, mask, flags
        )
        if flagged:
            cap = 4096
            while True:
                js = np.empty(cap, dtype=np.int64)
                ts = np.empty(cap, dtype=np.int64)
                k = K.list_checks(codes, plan.cells, flags, t0, length, ck_lo, ck_hi, js, ts)
                if k <= cap:
                    break
                cap = k
            js, ts = js[:k], ts[:k]
            values = self.values(ts + t0, plan.cells[js])
            K.set_bits(js, ts, plan.is_on(values), mask)
            self.checks += int(js.size)
        if self.release:
            for c in plan.cells.tolist():
                self.codes.release(c, t0, t1)


# --------------------------------------------------------------------------- #
# Keeping the candidates that can reach the top K
# --------------------------------------------------------------------------- #


def floor_of(counts: np.ndarray, limit: int) -> int:
    """``I_K``: the largest ``i`` with ``sum(counts[i:]) >= limit`` (0 if none)."""
    tail = np.cumsum(counts[::-1])[::-1]
    ok = np.flatnonzero(tail >= limit)
    return int(ok[-1]) if ok.size else 0


def _hist_list(dense: np.ndarray, long: list[np.ndarray]) -> list[int]:
    """Dense counts plus single long lengths as one list (index = length), trimmed.

    Runs can be as long as the corpus, so the list is built from zeros and the
    few non-zero entries rather than converted element by element.
    """
    out = trim_histogram(dense)
    if long:
        lengths, counts = np.unique(np.concatenate(long), return_counts=True)
        size = int(lengths[-1]) + 1
        if size > len(out):
            out.extend([0] * (size - len(out)))
        for length, count in zip(lengths.tolist(), counts.tolist(), strict=True):
            out[length] += count
    return out


def _hist_pairs(dense: np.ndarray, long: list[np.ndarray]) -> list[list[int]]:
    """:func:`_hist_list` as ``[length, count]`` pairs of its non-zero bins, made from
    the arrays (a dense list can hold a million zeros)."""
    lengths = np.flatnonzero(dense)
    counts = dense[lengths]
    if long:
        extra, times = np.unique(np.concatenate(long), return_counts=True)
        lengths = np.concatenate([lengths, extra])
        counts = np.concatenate([counts, times])
        lengths, at = np.unique(lengths, return_inverse=True)
        counts = np.bincount(at, weights=counts).astype(np.int64)
    pairs: list[list[int]] = np.stack([lengths, counts], axis=1).astype(np.int64).tolist()
    return pairs


def _add(total: np.ndarray, part: np.ndarray) -> np.ndarray:
    part = np.asarray(part, dtype=np.int64)
    if part.size > total.size:
        part = part.copy()
        part[: total.size] += total
        return part
    total[: part.size] += part
    return total


class Collector:
    """Histograms, counts per ``I`` and the candidates with ``I >= I_K`` so far.

    ``I_K`` (``floor``) is the largest ``i`` with at least ``K`` eligible
    candidates of ``I >= i``; it only grows, so candidates below it are dropped
    as soon as it passes them. Ties at ``I_K`` must all be scored; when more than
    the budget would be, the collector keeps the budget's worth by
    ``(I desc, L desc, a asc)`` and the answer is marked inexact.
    """

    def __init__(self, m: int, limit: int, budget: int) -> None:
        self.m = m
        self.limit = limit
        self.budget = budget
        self.strict = np.zeros(0, dtype=np.int64)
        self.fuzzy = np.zeros(0, dtype=np.int64)
        self.strict_long: list[np.ndarray] = []
        self.fuzzy_long: list[np.ndarray] = []
        self.counts = np.zeros(m + 1, dtype=np.int64)
        self.floor = 0
        self.a = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0, dtype=np.int64)
        self.inter = np.zeros(0, dtype=np.int64)

    def add_hist(
        self,
        strict: np.ndarray,
        fuzzy: np.ndarray,
        strict_long: np.ndarray | None = None,
        fuzzy_long: np.ndarray | None = None,
    ) -> None:
        """Add dense histograms (index = length) and, for lengths past them, the
        lengths themselves (one entry per candidate)."""
        self.strict = _add(self.strict, strict)
        self.fuzzy = _add(self.fuzzy, fuzzy)
        if strict_long is not None and strict_long.size:
            self.strict_long.append(np.asarray(strict_long, dtype=np.int64))
        if fuzzy_long is not None and fuzzy_long.size:
            self.fuzzy_long.append(np.asarray(fuzzy_long, dtype=np.int64))

    def histograms(self) -> tuple[list[int], list[int]]:
        return (
            _hist_list(self.strict, self.strict_long),
            _hist_list(self.fuzzy, self.fuzzy_long),
        )

    def histograms_sparse(self) -> tuple[list[list[int]], list[list[int]]]:
        """The same histograms as ``[length, count]`` pairs of the non-zero bins."""
        return (
            _hist_pairs(self.strict, self.strict_long),
            _hist_pairs(self.fuzzy, self.fuzzy_long),
        )

    def add_counts(self, counts: np.ndarray) -> None:
        self.counts += np.asarray(counts, dtype=np.int64)
        self.floor = floor_of(self.counts, self.limit)

    def set_counts(self, counts: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64).copy()
        self.floor = floor_of(self.counts, self.limit)

    def add_candidates(self, a: np.ndarray, length: np.ndarray, inter: np.ndarray) -> None:
        """Add eligible candidates (any superset of those with ``I >= I_K`` will do)."""
        keep = self.inter >= self.floor
        new = inter >= self.floor
        self.a = np.concatenate([self.a[keep], np.asarray(a[new], dtype=np.int64)])
        self.length = np.concatenate([self.length[keep], np.asarray(length[new], dtype=np.int64)])
        self.inter = np.concatenate([self.inter[keep], np.asarray(inter[new], dtype=np.int64)])
        if self.a.size > 2 * self.budget:
            self.truncate()

    def truncate(self) -> None:
        keep = self.inter >= self.floor
        self.a, self.length, self.inter = self.a[keep], self.length[keep], self.inter[keep]
        if self.a.size > self.budget:
            order = np.lexsort((self.a, -self.length, -self.inter))[: self.budget]
            self.a, self.length, self.inter = self.a[order], self.length[order], self.inter[order]

    @property
    def candidates(self) -> int:
        return int(self.counts.sum())

    def needed(self) -> int:
        return int(self.counts[self.floor :].sum())


# --------------------------------------------------------------------------- #
# Union: all D cells, only for the kept candidates
# --------------------------------------------------------------------------- #


def _score_index(
    plan: Plan, files: MatchFiles, a: np.ndarray, length: np.ndarray, inter: np.ndarray
) -> np.ndarray:
    """``|C'(R)|`` with the index: edge rows from the source, the inside from the codes."""
    from workers.core import match_kernels as K

    assert files.codes is not None
    codes = files.codes.array
    i_on, _i_hi, i_ck_lo, i_ck_hi = files.classes
    is_c = np.zeros(plan.d, dtype=np.bool_)
    is_c[plan.cells] = True
    size = np.zeros(a.size, dtype=np.int64)
    group = SCORE_GROUP_RELEASED if files.release else SCORE_GROUP
    for g0 in range(0, a.size, group):
        ga = np.ascontiguousarray(a[g0 : g0 + group])
        gb = ga + length[g0 : g0 + group] - 1
        # Edge rows: positions a - zl .. a, then b .. b + zr.
        src, pos = files.rows(
            np.concatenate(
                [
                    ga[:, None] + np.arange(-plan.zl, 1, dtype=np.int64),
                    gb[:, None] + np.arange(0, plan.zr + 1, dtype=np.int64),
                ],
                axis=1,
            )
        )
        gsize = np.zeros(ga.size, dtype=np.int64)
        ginter = np.zeros(ga.size, dtype=np.int64)
        cap = 4096
        while True:
            pend = np.empty((4, cap), dtype=np.int64)
            npend = K.score_index(
                codes, files.mins.array, SUMMARY_BLOCK, src, pos, ga, gb, plan.zl, is_c,
                *files.keys, i_on, i_ck_lo, i_ck_hi,
                gsize, ginter, pend[0], pend[1], pend[2], pend[3],
            )  # fmt: skip
            if npend <= cap:
                break
            cap = npend
        if files.release:
            files.codes.release_all()
            files.mins.release_all()
        if npend:
            pi, pc, pp, pw = pend[0, :npend], pend[1, :npend], pend[2, :npend], pend[3, :npend]
            on = plan.is_on(files.values(pp, pc))
            key = pi * plan.d + pc
            good = np.setdiff1d(np.unique(key), key[on != (pw == 1)])
            gi, gc = good // plan.d, good % plan.d
            np.add.at(gsize, gi, 1)
            np.add.at(ginter, gi, is_c[gc].astype(np.int64))
            files.checks += int(npend)
        if not np.array_equal(ginter, inter[g0 : g0 + group]):
            raise RuntimeError("the match index disagrees with the source; rebuild the index")
        size[g0 : g0 + group] = gsize
    return size


def _score_rows(
    plan: Plan, files: MatchFiles, a: np.ndarray, length: np.ndarray, inter: np.ndarray
) -> np.ndarray:
    """``|C'(R)|`` from the rows ``[a - zl, b + zr]`` of the row-major source."""
    from workers.core import match_kernels as K

    n, d, zl, zr = plan.n, plan.d, plan.zl, plan.zr
    size = np.zeros(a.size, dtype=np.int64)
    is_c = np.zeros(d, dtype=bool)
    is_c[plan.cells] = True
    order = np.argsort(a, kind="stable")
    rows_per_buf = max(1, ROW_VALUES // d)
    for g0 in range(0, order.size, SCORE_GROUP):
        sel = order[g0 : g0 + SCORE_GROUP]
        ga, gl = a[sel], length[sel]
        lo = np.maximum(ga - zl, 0)
        hi = np.minimum(ga + gl - 1 + zr, n - 1)
        # Merge the windows into spans of consecutive rows, each read once.
        span_lo: list[int] = []
        span_hi: list[int] = []
        for i in np.argsort(lo, kind="stable").tolist():
            if span_hi and lo[i] <= span_hi[-1] + 1:
                span_hi[-1] = max(span_hi[-1], int(hi[i]))
            else:
                span_lo.append(int(lo[i]))
                span_hi.append(int(hi[i]))
        slo = np.asarray(span_lo, dtype=np.int64)
        shi = np.asarray(span_hi, dtype=np.int64)
        sbase = np.concatenate([[0], np.cumsum(shi - slo + 1)])  # stream row of each span
        which = np.searchsorted(slo, lo, side="right") - 1
        shift = sbase[which] - slo[which]
        c_lo, c_hi = lo + shift, hi + shift
        c_a, c_b = ga + shift, ga + gl - 1 + shift
        acc_on = np.ones((sel.size, d), dtype=np.bool_)
        acc_bad = np.zeros((sel.size, d), dtype=np.bool_)
        total = int(sbase[-1])
        buf = np.empty((min(total, rows_per_buf), d), dtype=np.float32)
        for u0 in range(0, total, rows_per_buf):
            u1 = min(total, u0 + rows_per_buf)
            k = int(np.searchsorted(sbase, u0, side="right") - 1)
            u = u0
            while u < u1:
                take = min(u1, int(sbase[k + 1])) - u
                row = int(slo[k]) + (u - int(sbase[k]))
                buf[u - u0 : u - u0 + take] = files.src.array[row : row + take]
                u += take
                k += 1
            on = plan.is_on(buf[: u1 - u0])
            K.score_windows(on, u0, u1, c_lo, c_a, c_b, c_hi, acc_on, acc_bad)
        cprime = acc_on & ~acc_bad
        if not np.array_equal(cprime[:, is_c].sum(axis=1), inter[sel]):
            raise RuntimeError("the candidate scan disagrees with the source")
        size[sel] = cprime.sum(axis=1)
    return size


# Kept candidates per thread, at least, when the unions are computed in parallel.
_MIN_SCORE_PART = 256
# Kept candidates whose unions are computed first (then twice as many each time).
_SCORE_FIRST = 128


def _sizes(
    plan: Plan,
    files: MatchFiles,
    a: np.ndarray,
    length: np.ndarray,
    inter: np.ndarray,
    threads: int,
) -> np.ndarray:
    """``|C'(R)|`` of candidates (any order; read in order of position), with the
    index in up to ``threads`` parts at the same time (the kernel releases the GIL)."""
    by_a = np.argsort(a, kind="stable")
    a, length, inter = a[by_a], length[by_a], inter[by_a]
    parts = min(threads, a.size // _MIN_SCORE_PART)
    if files.codes is not None and parts > 1:
        cuts = np.linspace(0, a.size, parts + 1).astype(np.int64).tolist()
        with ThreadPoolExecutor(max_workers=parts) as pool:
            size = np.concatenate(
                list(
                    pool.map(
                        lambda ab: _score_index(
                            plan,
                            files,
                            a[ab[0] : ab[1]],
                            length[ab[0] : ab[1]],
                            inter[ab[0] : ab[1]],
                        ),
                        itertools.pairwise(cuts),
                    )
                )
            )
    elif files.codes is not None:
        size = _score_index(plan, files, a, length, inter)
    else:
        size = _score_rows(plan, files, a, length, inter)
    out = np.empty_like(size)
    out[by_a] = size
    return out


def finish(
    plan: Plan,
    files: MatchFiles,
    col: Collector,
    timings: dict[str, float],
    threads: int = 1,
) -> MatchResult:
    """Score the kept candidates and rank them (the last step of every path).

    The unions are computed in rounds, best possible first: candidates in order
    of ``(I desc, L desc, a asc)``, the ranking with the union left out. A
    union is at least ``m`` (``C'`` holds the ``I`` selected cells it shares),
    so a candidate not scored yet can at best rank as ``(I, m, L, a)``, and no
    later one better; once the K-th best scored candidate ranks above that,
    the rest cannot enter the top K and are not scored. Where many candidates
    tie at the K-th ``I`` (long runs of a random walk: thousands at ``I = 1``,
    most with ``U = m``), this scores a few hundred instead of all of them.
    """
    t = time.perf_counter()
    needed = col.needed()
    col.truncate()
    kept = int(col.a.size)
    order = np.lexsort((col.a, -col.length, -col.inter))
    col.a, col.length, col.inter = col.a[order], col.length[order], col.inter[order]
    m, k = plan.m, plan.limit
    size = np.zeros(kept, dtype=np.int64)
    scored = 0
    step = max(_SCORE_FIRST, 2 * k)
    while scored < kept:
        upto = min(kept, scored + step)
        size[scored:upto] = _sizes(
            plan, files, col.a[scored:upto], col.length[scored:upto], col.inter[scored:upto],
            threads,
        )  # fmt: skip
        scored = upto
        step *= 2
        if k <= scored < kept:
            u = m + size[:scored] - col.inter[:scored]
            kth = np.lexsort((col.a[:scored], -col.length[:scored], u, -col.inter[:scored]))[k - 1]
            best_left = (-int(col.inter[scored]), m, -int(col.length[scored]), int(col.a[scored]))
            got = (-int(col.inter[kth]), int(u[kth]), -int(col.length[kth]), int(col.a[kth]))
            if got < best_left:
                break
    col.a, col.length, col.inter, size = (
        col.a[:scored],
        col.length[:scored],
        col.inter[:scored],
        size[:scored],
    )
    union = plan.m + size - col.inter
    sparse = col.histograms_sparse()
    order = np.lexsort((col.a, -col.length, union, -col.inter))[: plan.limit]
    hits = [
        MatchHit(
            position=int(col.a[i]),
            length=int(col.length[i]),
            intersection=int(col.inter[i]),
            union=int(union[i]),
            jaccard=float(col.inter[i]) / float(union[i]),
            missing=plan.m - int(col.inter[i]),
        )
        for i in order.tolist()
    ]
    timings["score_ms"] = (time.perf_counter() - t) * 1000
    timings["checks"] = float(files.checks)
    return MatchResult(
        hits=hits,
        strict_histogram=None,  # made from the pairs when read
        fuzzy_histogram=None,
        exact=kept >= needed,
        unscored=max(0, needed - kept),
        candidates=col.candidates,
        scored=scored,
        timings_ms={k: round(v, 3) for k, v in timings.items()},
        histograms_sparse=sparse,
    )


# --------------------------------------------------------------------------- #
# The pass
# --------------------------------------------------------------------------- #


def run(
    ss: StateSet,
    source_id: str,
    q: MatchQuery,
    s: int,
    e: int,
    *,
    budget: int,
    use_index: bool,
    threads: int | None = None,
) -> MatchResult:
    """Shard ``[s, e)`` of a checked query on the CPU (see :func:`workers.core.match.match`)."""
    plan = Plan.make(ss, source_id, q, budget)
    idx = open_index(ss, source_id) if use_index else None
    files = MatchFiles(plan, idx)
    try:
        return run_cpu(plan, files, s, e, threads)
    finally:
        files.close()


# Threads per CPU match (parts of at least _MIN_PART positions each). A worker
# host that runs several matches at once may set STATELAB_MATCH_THREADS=1.
THREADS = max(1, int(os.environ.get("STATELAB_MATCH_THREADS", "0")) or min(2, os.cpu_count() or 1))
_MIN_PART = 1 << 18
# Candidates emitted by the kernel between two hand-overs to the collector.
_OUT_CAP = 1 << 15
# Lengths counted in the kernel's histograms; longer runs are handed over one by one.
_HIST_CAP = 1 << 16


def run_cpu(
    plan: Plan, files: MatchFiles, s: int, e: int, threads: int | None = None
) -> MatchResult:
    """The CPU pass over shard ``[s, e)`` (the whole corpus: ``[0, N)``).

    A long range is split into ``threads`` parts scanned at the same time (the
    kernels release the GIL); each part is a shard of its own, so merging their
    collectors is exact (see :func:`workers.core.match.merge_results`).
    """
    t_start = time.perf_counter()
    threads = THREADS if threads is None else max(1, threads)
    parts = threads if e - s >= threads * _MIN_PART else 1
    timings: dict[str, float] = {"bits_ms": 0.0, "stream_ms": 0.0}
    bounds = _split(plan, files, s, e, parts) if parts > 1 else [(s, e)]
    # Ends where every run closes: the corpus' end, and the cuts of _split (the
    # selected cells are all surely off there; only with the index).
    closed = {plan.n} | ({b for _a, b in bounds[:-1]} if files.codes is not None else set())
    if len(bounds) == 1:
        col = _scan(plan, files, s, e, timings, e in closed, threads)
    else:
        part_timings: list[dict[str, float]] = [{"bits_ms": 0.0, "stream_ms": 0.0} for _ in bounds]
        with ThreadPoolExecutor(max_workers=len(bounds)) as pool:
            cols = list(
                pool.map(
                    lambda i: _scan(
                        plan, files, *bounds[i], part_timings[i], bounds[i][1] in closed
                    ),
                    range(len(bounds)),
                )
            )
        col = Collector(m=plan.m, limit=plan.limit, budget=plan.budget)
        for part, pt in zip(cols, part_timings, strict=True):
            col.add_hist(part.strict, part.fuzzy)
            col.strict_long += part.strict_long
            col.fuzzy_long += part.fuzzy_long
            col.add_counts(part.counts)
            col.add_candidates(part.a, part.length, part.inter)
            for key, value in pt.items():
                timings[key] = timings.get(key, 0.0) + value
    result = finish(plan, files, col, timings, threads)
    result.timings_ms["total_ms"] = round((time.perf_counter() - t_start) * 1000, 3)
    return result


# Positions searched for a split point where every selected cell is off.
_SPLIT_WINDOW = 1 << 14


def _split(plan: Plan, files: MatchFiles, s: int, e: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` shards of ``[s, e)`` to scan at the same time, or ``[(s, e)]``.

    A part scans on past its end until the runs it owns close, so each inner
    bound is moved to the first position at or after the even split where every
    selected cell is surely off (by its index code): all runs close there and
    no part repeats another's work. Where there is no such position within
    ``_SPLIT_WINDOW`` (cells on for long stretches, like a random walk), a part
    would scan most of the next one again: the two are scanned as one. Without the
    index the even split is kept. Any bounds give the same answer (shards merge
    exactly); this only decides how the work is shared.
    """
    step = -(-(e - s) // parts)
    even = [(a, min(e, a + step)) for a in range(s, e, step)]
    if files.codes is None:
        return even
    on_lo, on_hi, ck_lo, ck_hi = files.classes
    cuts = [s]
    for _a, b in even[:-1]:
        w = min(_SPLIT_WINDOW, e - b)
        c = files.codes.array[plan.cells, b : b + w].astype(np.int32)
        live = ((c >= on_lo) & (c <= on_hi)) | ((c >= ck_lo) & (c <= ck_hi))
        off = np.flatnonzero(~live.any(axis=0))
        if off.size and b + int(off[0]) > cuts[-1]:
            cuts.append(b + int(off[0]))
    cuts.append(e)
    return list(itertools.pairwise(cuts))


# Scratch arrays of finished scans, kept for the next: fresh ones (megabytes)
# would be faulted in page by page on every query.
_SCRATCH: list[tuple[tuple[int, int, int], tuple[np.ndarray, ...]]] = []
_SCRATCH_KEPT = 4
_SCRATCH_LOCK = threading.Lock()


def _prunable(plan: Plan, files: MatchFiles, s: int, e: int, closed_end: bool) -> bool:
    """Whether shard ``[s, e)`` can be scanned by :func:`_scan_pruned`: at most 64
    cells, an index, a corpus small enough for one mask (its pages stay mapped), every
    run closed at ``e``, and only a minimum length of 1 or 2 as a filter (the
    candidates of the levels left out are counted, not listed)."""
    return (
        plan.m <= 64
        and (plan.m + 1) // 2 >= 2
        and files.codes is not None
        and not files.release
        and closed_end
        and plan.len_lo <= 2
        and plan.len_hi >= plan.n
        and plan.range_start <= 0
        and plan.range_end >= plan.n - 1
    )


def _scratch_take(
    key: tuple[Any, ...], make: Callable[[], tuple[np.ndarray, ...]]
) -> tuple[np.ndarray, ...]:
    """Scratch arrays of an earlier scan with the same ``key`` (the first two, the
    histograms, zeroed), or new ones (zeros)."""
    with _SCRATCH_LOCK:
        for i, (k, arrays) in enumerate(_SCRATCH):
            if k == key:
                del _SCRATCH[i]
                for arr in arrays[:2]:
                    arr.fill(0)
                return arrays
    return make()


def _scratch_give(key: tuple[Any, ...], arrays: tuple[np.ndarray, ...]) -> None:
    with _SCRATCH_LOCK:
        _SCRATCH.append((key, arrays))
        del _SCRATCH[:-_SCRATCH_KEPT]


def _scan(
    plan: Plan,
    files: MatchFiles,
    s: int,
    e: int,
    timings: dict[str, float],
    closed_end: bool = False,
    threads: int = 1,
) -> Collector:
    """Scan shard ``[s, e)``: histograms, counts and the candidates that may reach
    the top; ``threads`` > 1 where this is the only part of a match that may use
    that many (its bits are then found in parallel)."""
    if _prunable(plan, files, s, e, closed_end):
        return _scan_pruned(plan, files, s, e, timings, threads)
    words = (plan.m + 63) // 64
    key = ("chunks", words, plan.zl + files.chunk + plan.zr, min(plan.n + 1, _HIST_CAP))
    scratch = _scratch_take(
        key,
        lambda: (
            np.zeros(key[3], dtype=np.int64),
            np.zeros(key[3], dtype=np.int64),
            np.zeros((words, key[2]), dtype=np.uint64),
            np.zeros((4, _OUT_CAP), dtype=np.int64),
            np.zeros(key[2] + 1, dtype=np.int64),
        ),
    )
    strict, fuzzy, mask, out, changes = scratch
    try:
        return _scan_chunks(plan, files, s, e, timings, mask, strict, fuzzy, out, changes)
    finally:
        _scratch_give(key, scratch)


class _Stream:
    """The state of one candidate stream (:func:`match_kernels.stream1` /
    ``stream``) and what it handed over so far."""

    def __init__(
        self, plan: Plan, words: int, strict: np.ndarray, fuzzy: np.ndarray, out: np.ndarray
    ) -> None:
        m = plan.m
        self.plan = plan
        self.words = words
        self.strict, self.fuzzy, self.out = strict, fuzzy, out
        self.st_start = np.zeros(m + 2, dtype=np.int64)
        self.st_level = np.zeros(m + 2, dtype=np.int64)
        self.st_and = np.zeros((m + 2, words), dtype=np.uint64)
        self.st_okl = np.zeros((m + 2, words), dtype=np.uint64)
        self.state = np.zeros(4, dtype=np.int64)
        self.prev_mask = np.zeros(words, dtype=np.uint64)
        self.counts = np.zeros(m + 1, dtype=np.int64)
        self.col = Collector(m=m, limit=plan.limit, budget=plan.budget)
        self.long_strict: list[np.ndarray] = []
        self.long_fuzzy: list[np.ndarray] = []

    def run(
        self,
        mask: np.ndarray,
        base: int,
        tb: int,
        t1: int,
        s: int,
        e: int,
        changes: np.ndarray,
        lo_level: int = 1,
    ) -> tuple[int, bool]:
        """Stream positions ``[tb, t1)`` of ``mask`` (which starts at ``base``);
        returns ``(next position, done)``."""
        from workers.core import match_kernels as K

        plan, out, n = self.plan, self.out, self.plan.n
        while True:
            if self.words == 1:
                k, tb, done = K.stream1(
                    mask[0], base, tb, t1, n, s, e, plan.zl, plan.zr, plan.m,
                    plan.len_lo, plan.len_hi, plan.range_start, plan.range_end, plan.limit,
                    self.st_start, self.st_level, self.st_and[:, 0], self.st_okl[:, 0],
                    self.state, self.prev_mask, self.strict, self.fuzzy, self.counts,
                    out[0], out[1], out[2], out[3], changes, lo_level,
                )  # fmt: skip
            else:
                k, tb, done = K.stream(
                    mask, base, tb, t1, n, s, e, plan.zl, plan.zr, plan.m,
                    plan.len_lo, plan.len_hi, plan.range_start, plan.range_end, plan.limit,
                    self.st_start, self.st_level, self.st_and, self.st_okl,
                    self.state, self.prev_mask, self.strict, self.fuzzy, self.counts,
                    out[0], out[1], out[2], out[3],
                )  # fmt: skip
            if k:
                fa, fl, fi, ff = out[0, :k], out[1, :k], out[2, :k], out[3, :k]
                if (ff & 3).any():
                    self.long_fuzzy.append(fl[(ff & 1) != 0].copy())
                    self.long_strict.append(fl[(ff & 2) != 0].copy())
                self.col.set_counts(self.counts)
                el = (ff & 4) != 0
                self.col.add_candidates(fa[el], fl[el], fi[el])
            # (At the corpus' end the kernel returns n + 1 once the virtual position
            # n, where every run closes, is done.)
            if done or tb > n or (tb >= t1 and t1 < n):
                return tb, bool(done)

    def finish(self, uncounted: int = 0) -> Collector:
        """The collector, with ``uncounted`` more eligible candidates (of levels
        left out of the stream, whose ``I`` is below the top K's) in ``counts[0]``."""
        self.counts[0] += uncounted
        col = self.col
        col.set_counts(self.counts)
        none = np.zeros(0, dtype=np.int64)
        self.strict[0] = self.fuzzy[0] = 0  # the kernel's bin for "neither"
        col.add_hist(
            self.strict,
            self.fuzzy,
            np.concatenate([none, *self.long_strict]),
            np.concatenate([none, *self.long_fuzzy]),
        )
        return col


def _scan_chunks(
    plan: Plan,
    files: MatchFiles,
    s: int,
    e: int,
    timings: dict[str, float],
    mask: np.ndarray,
    strict: np.ndarray,
    fuzzy: np.ndarray,
    out: np.ndarray,
    changes: np.ndarray,
) -> Collector:
    """:func:`_scan` chunk by chunk, every level, with its large arrays given (the
    histograms zero on entry)."""
    n = plan.n
    chunk = files.chunk
    stream = _Stream(plan, mask.shape[0], strict, fuzzy, out)
    # Start early enough to know count[s - 1] and the zero_left positions before s.
    p0 = max(0, s - max(plan.zl, 1))
    t = p0
    done = False
    while not done:
        t1 = min(n, t + chunk)
        base = max(p0, t - plan.zl)  # the zero_left positions before the chunk, again
        buf_end = min(n, t1 + plan.zr)
        c0 = time.perf_counter()
        files.fill(base, buf_end, mask)
        c1 = time.perf_counter()
        t, done = stream.run(mask, base, t, t1, s, e, changes)
        timings["bits_ms"] += (c1 - c0) * 1000
        timings["stream_ms"] += (time.perf_counter() - c1) * 1000
        if not done and t >= n:
            raise RuntimeError("the candidate scan did not finish at the end of the corpus")
    return stream.finish()


# Levels are left out of the stream only when the levels kept hold this many
# candidates per place of the top K: then the top K's I is almost surely at
# least the lowest level kept (when it is not, the scan is run again whole).
_PRUNE_PER_HIT = 64
# ... and when a sample of the first positions of the shard says that it holds
# at least this many candidates (fewer: the whole stream is short anyway).
_PRUNE_SAMPLE = 1 << 16
_PRUNE_MIN_CANDIDATES = 20_000


def _check_progress(done: bool, t: int, stop: int) -> None:
    if not done and t >= stop:
        raise RuntimeError("the candidate scan did not finish at the end of its shard")


def _scan_pruned(
    plan: Plan, files: MatchFiles, s: int, e: int, timings: dict[str, float], threads: int = 1
) -> Collector:
    """:func:`_scan` for a shard whose runs all close at ``e``, with one mask for
    the whole shard, and without the low levels where they cannot matter.

    Most positions of a source whose cells switch often are changes of the
    count at the levels below half of the selected cells: those levels hold
    most candidates but none that the histograms count (fuzzy: levels from
    ``ceil(m / 2)``), and their ``I`` (at most their level) is below the top
    K's whenever the levels above hold K candidates of higher ``I``. So the
    candidates of each level up to 8 are counted first without listing them
    (:func:`match_kernels.low_levels`, a pass without branches), and when the
    levels from ``L`` up (``2 <= L <= ceil(m / 2)``) hold ``_PRUNE_PER_HIT``
    times K of them, the stream visits only the changes at levels ``L`` and
    up, and the candidates below are added to the count. If the top K's ``I``
    turns out to be below ``L`` after all, the stream is run again over every
    level, on the same mask: the answer is exact either way.
    """
    from workers.core import match_kernels as K

    n, m = plan.n, plan.m
    p0 = max(0, s - max(plan.zl, 1))
    stop = n if e >= n else e + 1  # the change at e (count 0) closes the last runs
    buf_end = min(n, stop + plan.zr)
    size = buf_end - p0
    hist = min(n + 1, _HIST_CAP)
    # Parts differ in length from query to query: sized by the next power of two,
    # their scratch arrays are found again (fresh ones are faulted in page by page).
    room = 1 << max(16, (size + 2 - 1).bit_length())
    key = ("whole", room, hist)
    scratch = _scratch_take(
        key,
        lambda: (
            np.zeros(hist, dtype=np.int64),
            np.zeros(hist, dtype=np.int64),
            np.zeros((1, room), dtype=np.uint64),
            np.zeros((4, _OUT_CAP), dtype=np.int64),
            np.zeros(room, dtype=np.int64),
        ),
    )
    strict, fuzzy, whole, out, changes = scratch
    mask = whole[:, :size]
    try:
        c0 = time.perf_counter()
        pieces = min(threads, size // _MIN_PART)
        if pieces > 1:
            cuts = np.linspace(p0, buf_end, pieces + 1).astype(np.int64).tolist()
            with ThreadPoolExecutor(max_workers=pieces) as pool:
                list(
                    pool.map(
                        lambda ab: files.fill(ab[0], ab[1], mask[:, ab[0] - p0 :]),
                        itertools.pairwise(cuts),
                    )
                )
        else:
            files.fill(p0, buf_end, mask)
        c1 = time.perf_counter()
        low = np.zeros(10, dtype=np.int64)
        end = min(n, e)
        # Counting the levels costs a pass; it pays where the stream is long, which
        # a sample of the shard tells (its runs cut at the sample's end).
        sample = min(end, p0 + _PRUNE_SAMPLE)
        K.low_levels(mask[0], p0, p0, sample, s, plan.len_lo, low)
        level = 1
        if int(low.sum()) * (end - p0) >= _PRUNE_MIN_CANDIDATES * (sample - p0):
            low[:] = 0
            K.low_levels(mask[0], p0, p0, end, s, plan.len_lo, low)
            for lv in range(min((m + 1) // 2, 9), 1, -1):
                if int(low[lv:9].sum()) >= _PRUNE_PER_HIT * plan.limit:
                    level = lv
                    break
        stream = _Stream(plan, 1, strict, fuzzy, out)
        t, done = p0, False
        while not done:
            t, done = stream.run(mask, p0, t, stop, s, e, changes, level)
            _check_progress(done, t, stop)
        if level > 1 and stream.col.floor < level:
            timings["rescans"] = timings.get("rescans", 0.0) + 1
            strict.fill(0)
            fuzzy.fill(0)
            level = 1
            stream = _Stream(plan, 1, strict, fuzzy, out)
            t, done = p0, False
            while not done:
                t, done = stream.run(mask, p0, t, stop, s, e, changes, level)
                _check_progress(done, t, stop)
        timings["bits_ms"] += (c1 - c0) * 1000
        timings["stream_ms"] += (time.perf_counter() - c1) * 1000
        return stream.finish(int(low[1:level].sum()))
    finally:
        _scratch_give(key, scratch)
