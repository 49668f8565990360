"""Rank every cell of a source against an annotation track, whole corpus, one pass.

A ranking answers "which cells follow this annotation?" for all ``D`` cells at
once: for a discrete track and one of its labels, the AUROC of each cell's
transformed value for "the token has the label"; for a scalar track, Pearson
and Spearman of the transformed value against the scalar. The definitions, the
error bound and the measurements are in ``docs/statistics.md``.

Why it is shaped so. The source is row-major float32 ``N x D`` (2.6 GB for 1M x
650), so any per-cell read of a column costs a pass over the whole file; the
ranking therefore reads the source once, in blocks of rows (``pread`` into one
reused buffer, so neither the page cache of a memory map nor any array grows
with ``N``), and keeps per-cell summaries of a size fixed in advance:

* **rank statistics (AUROC, Spearman)** need the order of all ``N`` values of a
  cell. An exact order needs ``O(N)`` memory per cell (a sort); instead each
  value falls into one of :data:`BINS` order-preserving bins of the raw float32
  value (the sign, 18 binary exponents ``|v|`` in ``[2^-10, 2^8)`` with 9
  mantissa bits each, i.e. a relative width of ``2^-9``, one bin for the small
  values of each sign and one for the large ones). Pairs in different bins are
  ordered exactly; pairs in one bin are counted as ties. For AUROC the error
  this makes is bounded, per cell, by ``0.5 * sum_b pos_b * neg_b / (n_pos *
  n_neg)``, which the result reports (``error_bound``, the largest over cells).
* **Pearson** needs only sums, accumulated exactly in float64.

Memory: ``D x BINS x 2`` int32 counts (96 MB at ``D = 650``) for a discrete
track, ``D x BINS`` int32 plus float64 (144 MB) for a scalar one, plus one block
of rows; none of it grows with ``N``.

NaN: a token whose value of a cell is NaN is left out for that cell only; for a
scalar track a token whose scalar is not finite is left out for every cell.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from workers.core.errors import InputError, ProgressFn
from workers.core.store import StateSet

__all__ = [
    "BINS",
    "Ranking",
    "auroc_from_hist",
    "bin_codes",
    "iter_row_blocks",
    "label_id",
    "rank_cells",
]

# Order-preserving bins of a float32 value: see the module docstring.
_E_LO = 117  # 2^-10
_E_HI = 134  # 2^7 .. 2^8
_MANT = 9
_HALF = ((_E_HI - _E_LO + 1) << _MANT) + 2  # bins per sign
BINS = 2 * _HALF
_NO_SAT = 0x7F800001  # above every finite and infinite value

# Values per block of rows read at once (4M float32 = 16 MiB).
_BLOCK_VALUES = 4 << 20

THREADS = max(1, min(2, os.cpu_count() or 1))


def _tanh_saturation_bits() -> int:
    """The bits of the smallest positive float32 ``v`` with ``np.tanh(v) == 1``.

    Every raw value at or beyond it is the same transformed value (1 or -1), so
    those values must share one bin to stay ties.
    """
    lo, hi = 0x3F800000, 0x41800000  # 1.0 and 16.0
    one = np.float32(1.0)
    while lo < hi:
        mid = (lo + hi) // 2
        v = np.array([mid], dtype=np.uint32).view(np.float32)
        if np.tanh(v)[0] == one:
            hi = mid
        else:
            lo = mid + 1
    return lo


_TANH_SAT = _tanh_saturation_bits()


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _bin(u: Any, sat: Any) -> Any:  # pragma: no cover - compiled
    """The bin of a non-NaN float32 given by its bits ``u`` (uint32)."""
    a = u & np.uint32(0x7FFFFFFF)
    if a >= sat:
        j = _HALF - 1
    else:
        e = a >> np.uint32(23)
        if e < _E_LO:
            j = 0
        elif e > _E_HI:
            j = _HALF - 1
        else:
            j = 1 + int(a >> np.uint32(23 - _MANT)) - (_E_LO << _MANT)
    if (u >> np.uint32(31)) != 0 and a != 0:
        return _HALF - 1 - j
    return _HALF + j


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _bin_array(u: Any, sat: Any, out: Any) -> None:  # pragma: no cover - compiled
    for i in range(u.shape[0]):
        a = u[i] & np.uint32(0x7FFFFFFF)
        out[i] = -1 if a > np.uint32(0x7F800000) else _bin(u[i], sat)


def bin_codes(values: np.ndarray, transform: str) -> np.ndarray:
    """int64 (n,) bin of each float32 raw value of a 1-D array; NaN gives -1.

    Bins are ordered like the transformed values: a lower bin means a strictly
    smaller transformed value.
    """
    arr = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    out = np.empty(arr.shape[0], dtype=np.int64)
    _bin_array(arr.view(np.uint32), np.uint32(_sat(transform)), out)
    return out


def _sat(transform: str) -> int:
    if transform == "tanh":
        return _TANH_SAT
    if transform == "none":
        return _NO_SAT
    raise InputError(f"the transform must be 'tanh' or 'none', not {transform!r}")


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _discrete_block(
    bits: Any, c0: int, c1: int, cls: Any, sat: Any, hist: Any
) -> None:  # pragma: no cover - compiled
    """hist[c, bin, cls[t]] += 1 for the rows of ``bits`` (B x D uint32), cells [c0, c1)."""
    nan = np.uint32(0x7F800000)
    for c in range(c0, c1):
        h = hist[c]
        for t in range(bits.shape[0]):
            u = bits[t, c]
            if (u & np.uint32(0x7FFFFFFF)) > nan:
                continue
            h[_bin(u, sat), cls[t]] += 1


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scalar_block(
    raw: Any,
    bits: Any,
    c0: int,
    c1: int,
    y: Any,
    ry: Any,
    tanh: bool,
    sat: Any,
    cnt: Any,
    sry: Any,
    sums: Any,
) -> None:  # pragma: no cover - compiled
    """Per cell: bin counts, the scalar's ranks summed per bin, and the Pearson sums.

    ``y`` float64 (B,) is the scalar (NaN: the token is left out), ``ry`` its
    mid-rank. ``sums[c]`` = n, sx, sxx, sy, syy, sxy, sry, sryry (float64).
    """  # fmt: skip
    nan = np.uint32(0x7F800000)
    for c in range(c0, c1):
        s = sums[c]
        for t in range(raw.shape[0]):
            yt = y[t]
            if yt != yt:
                continue
            u = bits[t, c]
            if (u & np.uint32(0x7FFFFFFF)) > nan:
                continue
            v = raw[t, c]
            x = np.float64(np.float32(math.tanh(v))) if tanh else np.float64(v)
            b = _bin(u, sat)
            cnt[c, b] += 1
            r = ry[t]
            sry[c, b] += r
            s[0] += 1.0
            s[1] += x
            s[2] += x * x
            s[3] += yt
            s[4] += yt * yt
            s[5] += x * yt
            s[6] += r
            s[7] += r * r


def iter_row_blocks(
    ss: StateSet, source_id: str, rows: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` for consecutive blocks of rows of a source, read with ``pread``.

    ``block`` is float32 ``(b, D)`` (a float16 source's values converted), a view
    of one buffer that the next block overwrites (copy what must outlive the
    step). Reading with ``pread`` instead of through a memory map keeps the
    resident set at one block whatever ``N``.
    """
    info = ss.source(source_id)
    n, d = ss.length, info.cells
    step = max(1, rows if rows is not None else _BLOCK_VALUES // max(1, d))
    src = ss.source_file(source_id)
    buf = np.empty((min(step, n), d), dtype=np.float32)
    fd = os.open(src.path, os.O_RDONLY)
    try:
        for a in range(0, n, step):
            b = min(n, a + step)
            yield a, src.read_rows(fd, a, buf[: b - a])
    finally:
        os.close(fd)


@dataclass
class Ranking:
    """Every cell of a source ranked against an annotation track, best first.

    ``cells`` holds ``{"cell", "auroc"}`` (discrete) or ``{"cell", "pearson",
    "spearman"}`` (scalar, ordered by ``|pearson|``); ``n`` is the number of
    tokens used (before any per-cell NaN exclusion); ``error_bound`` is the
    largest proven AUROC error over the cells (``None`` for a scalar track).
    """

    source: str
    annotation: str
    label: str | None
    measure: str
    n: int
    cells: list[dict[str, Any]] = field(default_factory=list)
    error_bound: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "annotation": self.annotation,
            "label": self.label,
            "measure": self.measure,
            "n": self.n,
            "error_bound": self.error_bound,
            "cells": self.cells,
        }


def label_id(labels: list[str] | None, label: str | int | None) -> tuple[int, str]:
    if label is None:
        raise InputError("a discrete annotation needs a label to rank against")
    if isinstance(label, str) and labels is not None and label in labels:
        return labels.index(label), label
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        name = labels[int(label)] if labels is not None and 0 <= int(label) < len(labels) else None
        return int(label), name if name is not None else str(int(label))
    raise InputError(f"the annotation has no label {label!r}")


def _run_cells(d: int, work: Any) -> None:
    """``work(c0, c1)`` over the cells, split across up to :data:`THREADS` threads."""
    if THREADS < 2 or d < 2:
        work(0, d)
        return
    mid = d // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda r: work(*r), [(0, mid), (mid, d)]))


def auroc_from_hist(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and its error bound per row from ``hist`` (D, BINS, 2) counts [neg, pos].

    Returns float64 ``(D,)`` twice; NaN where a class is empty. Pairs in different
    bins count 1 or 0, pairs in one bin 0.5 (exact for true ties), so the error
    is at most ``0.5 * sum_b pos_b neg_b / (n_pos n_neg)``.
    """
    neg = hist[:, :, 0].astype(np.float64)
    pos = hist[:, :, 1].astype(np.float64)
    n_neg = neg.sum(axis=1)
    n_pos = pos.sum(axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = n_pos * n_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / pairs
        bound = 0.5 * (pos * neg).sum(axis=1) / pairs
    return auc, bound


def _midranks(counts: np.ndarray) -> np.ndarray:
    """float64 mid-rank (1-based) of each bin of a histogram ``(..., BINS)``."""
    c = counts.astype(np.float64)
    return np.cumsum(c, axis=-1) - c + (c + 1.0) / 2.0


def _corr(n: np.ndarray, sx: np.ndarray, sxx: np.ndarray, sy: Any, syy: Any, sxy: Any) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        r = cov / np.sqrt(vx * vy)
    return np.where((vx > 0) & (vy > 0), np.clip(r, -1.0, 1.0), np.nan)


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 6)


def rank_cells(
    ss: StateSet,
    source_id: str,
    annotation: str,
    label: str | int | None = None,
    *,
    transform: str | None = None,
    rows: int | None = None,
    progress: ProgressFn | None = None,
) -> Ranking:
    """Rank all cells of ``source_id`` against ``annotation`` (and ``label`` if discrete).

    The source (float32 ``N x D``) is read once in blocks of ``rows`` rows;
    ``transform`` ``None`` means the source's own. Discrete: AUROC per cell,
    best (largest) first, ties by cell number. Scalar: Pearson and Spearman per
    cell, ordered by ``|pearson|`` descending (NaN last). A value that cannot be
    computed (an empty class, a constant cell) is ``None``.
    """
    info = ss.source(source_id)
    ann = ss.annotation_info(annotation)
    transform = info.transform if transform is None else transform
    sat = np.uint32(_sat(transform))
    n, d = ss.length, info.cells
    values, _ = ss.annotation(annotation)
    step = max(1, rows if rows is not None else _BLOCK_VALUES // max(1, d))

    def report(a: int) -> None:
        if progress is not None:
            progress(min(1.0, a / max(1, n)), f"Ranking cells: {a:,} of {n:,} rows read.")

    if ann.kind == "discrete":
        lid, lname = label_id(ann.labels, label)
        hist = np.zeros((d, BINS, 2), dtype=np.int32)
        for a, block in iter_row_blocks(ss, source_id, step):
            cls = (np.asarray(values[a : a + len(block)]) == lid).astype(np.int8)
            bits = block.view(np.uint32)
            _run_cells(
                d,
                lambda c0, c1, bits=bits, cls=cls: _discrete_block(bits, c0, c1, cls, sat, hist),
            )
            report(a + len(block))
        auc, bound = auroc_from_hist(hist)
        key = np.where(np.isnan(auc), -np.inf, auc)
        order = np.lexsort((np.arange(d), -key))
        finite = bound[np.isfinite(bound)]
        return Ranking(
            source=source_id,
            annotation=annotation,
            label=lname,
            measure="auroc",
            n=n,
            cells=[{"cell": int(c), "auroc": _num(auc[c])} for c in order],
            error_bound=float(finite.max()) if finite.size else None,
        )
    if ann.kind != "scalar":
        raise InputError(f"cells can be ranked against discrete or scalar tracks, not {ann.kind}")

    # The scalar's mid-ranks come from its own bins (a cheap pass over N floats).
    ybins = np.zeros(BINS, dtype=np.int64)
    used = 0
    for a in range(0, n, step):
        yb = np.asarray(values[a : a + step], dtype=np.float32)
        yb = np.where(np.isfinite(yb), yb, np.float32(np.nan))
        codes = bin_codes(yb, "none")
        codes = codes[codes >= 0]
        used += codes.size
        ybins += np.bincount(codes, minlength=BINS)
    yrank = _midranks(ybins)
    cnt = np.zeros((d, BINS), dtype=np.int32)
    sry = np.zeros((d, BINS), dtype=np.float64)
    sums = np.zeros((d, 8), dtype=np.float64)
    tanh = transform == "tanh"
    for a, block in iter_row_blocks(ss, source_id, step):
        yb = np.asarray(values[a : a + len(block)], dtype=np.float32)
        yb = np.where(np.isfinite(yb), yb, np.float32(np.nan))
        codes = bin_codes(yb, "none")
        ry = np.where(codes >= 0, yrank[np.maximum(codes, 0)], 0.0)
        y = yb.astype(np.float64)
        bits = block.view(np.uint32)
        _run_cells(
            d,
            lambda c0, c1, block=block, bits=bits, y=y, ry=ry: _scalar_block(
                block, bits, c0, c1, y, ry, tanh, sat, cnt, sry, sums
            ),
        )
        report(a + len(block))
    nn = sums[:, 0]
    pearson = _corr(nn, sums[:, 1], sums[:, 2], sums[:, 3], sums[:, 4], sums[:, 5])
    rx = _midranks(cnt)
    s_rx = nn * (nn + 1.0) / 2.0
    s_rxrx = (cnt * rx * rx).sum(axis=1)
    s_rxry = (rx * sry).sum(axis=1)
    spearman = _corr(nn, s_rx, s_rxrx, sums[:, 6], sums[:, 7], s_rxry)
    key = np.where(np.isnan(pearson), -1.0, np.abs(pearson))
    order = np.lexsort((np.arange(d), -key))
    return Ranking(
        source=source_id,
        annotation=annotation,
        label=None,
        measure="pearson",
        n=used,
        cells=[
            {"cell": int(c), "pearson": _num(pearson[c]), "spearman": _num(spearman[c])}
            for c in order
        ],
    )
