"""The match index: a cell-major, 16-bit quantised copy of a source.

The engine must threshold ``m`` selected columns over the whole corpus for every
query. In the row-major source those columns are strided (one value every
``4 D`` bytes), so gathering 8 of 650 columns of a 1M-token source touches the
whole 2.6 GB file. The index stores each cell's values contiguously, as a
16-bit *code* per value, so the same scan reads ``m x N x 2`` bytes.

The code quantises ``tanh(v)`` (computed in float64) in 65,534 equal steps of
``2 / 32767`` over ``[-1, 1]``::

    code(v) = 1 + floor((tanh(v) + 1) * 32767)     (1 .. 65535)
    code(NaN) = 0

* Codes sort like the values (tanh is monotone), so for a threshold the codes
  fall into three ranges: surely off, a code or two that straddle the threshold
  (checked value by value against the float32 source, FastBit's "candidate
  check"), surely on. NaN, code 0, is below every range: always off.
* The steps are fine where thresholds are: a tanh threshold of 0.3 leaves
  values within 3e-5 of it to check, a few dozen per cell per million tokens
  of real cell states (the high half of the float32 bits, the first codec we
  tried, needed 60 times more, and each check is a random read of the source).
  The same codes serve a query with the other transform: a raw threshold maps
  through ``atanh``; only thresholds beyond about +-10 fall into the saturated
  end codes and are checked value by value.

See ``match_engine.index_classes`` for how a query classifies the codes.

Layout, one folder per source, published by rename::

    <stateset>/index/match/<source_id>/meta.json    {"format", "version", ...}
    <stateset>/index/match/<source_id>/codes.npy    uint16 (D, N), row c = cell c
    <stateset>/index/match/<source_id>/mins.npy     uint16 (D, ceil(N / 256))

``mins[c, k]`` is the smallest code of cell ``c`` over positions
``[256 k, 256 k + 256)`` (0 when one of them is NaN). When that code is surely
on, the whole block is on; when it is surely off, the block holds an off value.
The engine uses it to check that a cell stays on over a long range without
reading every code.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from workers.core.atomic import (
    fsync_path,
    make_temp_dir,
    remove_stale_temp_dirs,
    write_json_synced,
)
from workers.core.errors import ProgressFn
from workers.core.store import ArrayFile, StateSet

__all__ = [
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "IndexWriter",
    "MatchIndex",
    "block_rows",
    "build",
    "code_bounds",
    "encode",
    "open_index",
]

INDEX_FORMAT = "statelab-match-index"
INDEX_VERSION = 3
CODEC = "tanh-u16"
# Values per row block while building: 16k rows x 650 cells x 4 bytes = 42 MB.
_BLOCK_VALUES = 10 << 20
# Positions summarised by one entry of ``mins.npy``.
SUMMARY_BLOCK = 256


CODE_STEPS = 32767.0


def encode(values: np.ndarray) -> np.ndarray:
    """uint16 codes of float32 ``values`` (same shape), see the module doc."""
    t = np.tanh(np.asarray(values, dtype=np.float64))
    codes = np.floor((t + 1.0) * CODE_STEPS) + 1.0
    codes = np.where(np.isnan(t), 0.0, np.clip(codes, 1.0, 65535.0))
    return codes.astype(np.uint16)


def _order_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort like the float32 ``values`` (NaN aside)."""
    b = np.asarray(values, dtype=np.float32).view(np.uint32)
    return np.where(b & 0x80000000, ~b, b | 0x80000000).astype(np.uint32)


def _floats_of_keys(keys: np.ndarray) -> np.ndarray:
    k = np.asarray(keys, dtype=np.uint32)
    return np.where(k & 0x80000000, k & 0x7FFFFFFF, ~k).astype(np.uint32).view(np.float32)


@lru_cache(maxsize=1)
def code_bounds() -> np.ndarray:
    """uint32 (65535,): ``[c - 1]`` is the order key of the smallest float32 whose
    :func:`encode` is ``c`` or more.

    Found by bisection over the float32 values from -inf to +inf, 65,535 searches
    at once, with :func:`encode` itself as the judge (it is monotone there), so a
    code read off these bounds is the code :func:`encode` gives. About 0.1 s,
    once per process.
    """
    lo_key, hi_key = (int(k) for k in _order_keys(np.array([-np.inf, np.inf])))
    want = np.arange(1, 1 << 16, dtype=np.int64)
    lo = np.full(want.size, lo_key, dtype=np.int64)
    hi = np.full(want.size, hi_key + 1, dtype=np.int64)  # hi: no such key found yet
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        ok = encode(_floats_of_keys(np.minimum(mid, hi_key).astype(np.uint32))) >= want
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
    bounds = lo.astype(np.uint32)
    bounds.setflags(write=False)
    return bounds


def npy_data_offset(path: Path) -> int:
    """Byte offset of the data of a C-order ``.npy`` file."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        return fh.tell()


@dataclass(frozen=True)
class MatchIndex:
    """An opened index: the two files and where their data starts."""

    codes_path: Path
    offset: int
    rows: int
    cells: int
    mins_path: Path
    mins_offset: int

    @property
    def blocks(self) -> int:
        return -(-self.rows // SUMMARY_BLOCK)

    def cell_offset(self, cell: int, start: int) -> int:
        """Byte offset of the code of ``cell`` at token ``start``."""
        return self.offset + 2 * (cell * self.rows + start)


def _index_dir(ss_path: Path, source_id: str) -> Path:
    return ss_path / "index" / "match" / source_id


def _read_meta(folder: Path) -> dict[str, object] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _current(meta: dict[str, object] | None, rows: int, cells: int) -> bool:
    return (
        meta is not None
        and meta.get("format") == INDEX_FORMAT
        and meta.get("version") == INDEX_VERSION
        and meta.get("codec") == CODEC
        and meta.get("rows") == rows
        and meta.get("cells") == cells
        and meta.get("summary_block") == SUMMARY_BLOCK
    )


_opened: dict[tuple[str, int, int], MatchIndex] = {}


def open_index(ss: StateSet, source_id: str) -> MatchIndex | None:
    """The current index of ``source_id``, or None when there is none (or an old one)."""
    info = ss.source(source_id)
    folder = _index_dir(ss.path, source_id)
    meta_path = folder / "meta.json"
    try:
        st = meta_path.stat()
    except OSError:
        return None
    key = (str(meta_path), st.st_ino, st.st_mtime_ns)
    cached = _opened.get(key)
    if cached is not None:
        return cached
    if not _current(_read_meta(folder), ss.length, info.cells):
        return None
    codes = folder / "codes.npy"
    mins = folder / "mins.npy"
    blocks = -(-ss.length // SUMMARY_BLOCK)
    try:
        offset = npy_data_offset(codes)
        mins_offset = npy_data_offset(mins)
        if codes.stat().st_size < offset + 2 * ss.length * info.cells:
            return None
        if mins.stat().st_size < mins_offset + 2 * blocks * info.cells:
            return None
    except (OSError, ValueError):
        return None
    idx = MatchIndex(
        codes_path=codes,
        offset=offset,
        rows=ss.length,
        cells=info.cells,
        mins_path=mins,
        mins_offset=mins_offset,
    )
    if len(_opened) > 256:
        _opened.clear()
    _opened[key] = idx
    return idx


# Threads that encode one block (the kernel releases the interpreter lock).
_THREADS = max(1, min(2, os.cpu_count() or 1))
# Codes held before they are written: one write per cell of up to this many values
# over all cells (64 MB), not one per block, which fragments the file and costs
# the kernel more per byte.
_STAGE_VALUES = 32 << 20


class IndexWriter:
    """Writes the match index of one source of ``rows x cells`` into ``folder``,
    block of rows by block of rows, in any order (one call at a time).

    ``write(start, block)`` encodes float32 rows ``[start, start + len(block))``
    (``start`` a multiple of :data:`SUMMARY_BLOCK`, and so the length unless the
    block ends the source) with the exact code of :func:`encode`, cell-major.
    Consecutive blocks are held together and written as one run per cell when
    the stage is full, when a block does not follow the last one, and by
    :meth:`sync`. :meth:`finish` syncs the files and writes ``meta.json`` last,
    so a folder without it is not an index. With ``reuse`` the files of an
    earlier, interrupted writer are kept and only what is written again changes
    (a resumed import). The folder is published by whoever owns it (a rename).
    """

    def __init__(self, folder: Path, rows: int, cells: int, *, reuse: bool = False) -> None:
        self.folder = Path(folder)
        self.rows, self.cells = int(rows), int(cells)
        self.blocks = -(-self.rows // SUMMARY_BLOCK)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").unlink(missing_ok=True)
        self._codes = ArrayFile(
            self.folder / "codes.npy", (self.cells, self.rows), np.uint16, reuse=reuse
        )
        self._mins = ArrayFile(
            self.folder / "mins.npy", (self.cells, self.blocks), np.uint16, reuse=reuse
        )
        self._bounds = code_bounds()
        stage = max(1, _STAGE_VALUES // self.cells // SUMMARY_BLOCK) * SUMMARY_BLOCK
        self._stage_rows = min(stage, -(-self.rows // SUMMARY_BLOCK) * SUMMARY_BLOCK)
        self._stage: tuple[np.ndarray, np.ndarray] | None = None  # codes, minimums
        self._stage_start = 0
        self._staged = 0  # rows held, from _stage_start
        # The writer's own threads, made on first use and ended by close(): a pool
        # kept by the module would outlive a fork (a worker's pool processes)
        # without its threads, and wait for them forever.
        self._pool: ThreadPoolExecutor | None = None
        self._guess: list[np.ndarray] = []

    def write(self, start: int, block: np.ndarray) -> None:
        """Encode rows ``[start, start + len(block))`` (float32, ``(r, cells)``)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        r = block.shape[0]
        if block.ndim != 2 or block.shape[1] != self.cells:
            raise ValueError(f"a block of shape {block.shape} does not have {self.cells} cells")
        if start % SUMMARY_BLOCK or start < 0 or start + r > self.rows:
            raise ValueError(f"rows [{start}, {start + r}) do not start a summary block")
        if r % SUMMARY_BLOCK and start + r != self.rows:
            raise ValueError("only the last block may end inside a summary block")
        for a in range(0, r, self._stage_rows):
            self._stage_block(start + a, block[a : a + self._stage_rows])

    def _stage_block(self, start: int, block: np.ndarray) -> None:
        r = block.shape[0]
        if self._staged and (
            start != self._stage_start + self._staged or self._staged + r > self._stage_rows
        ):
            self._flush()
        if self._stage is None:
            self._stage = (
                np.empty((self.cells, self._stage_rows), dtype=np.uint16),
                np.empty((self.cells, self._stage_rows // SUMMARY_BLOCK), dtype=np.uint16),
            )
        if not self._staged:
            self._stage_start = start
        at = self._staged
        # Parts of whole summary blocks, one per thread.
        summaries = -(-r // SUMMARY_BLOCK)
        per = -(-summaries // _THREADS) * SUMMARY_BLOCK
        parts = [(a, min(r, a + per)) for a in range(0, r, per)]
        while len(self._guess) < len(parts):
            self._guess.append(np.empty(per * self.cells, dtype=np.float32))
        if len(parts) == 1:
            self._encode(block, at, self._guess[0])
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=_THREADS, thread_name_prefix="match-index"
                )
            done = [
                self._pool.submit(self._encode, block[a:b], at + a, self._guess[i])
                for i, (a, b) in enumerate(parts)
            ]
            for f in done:
                f.result()
        self._staged += r

    def _encode(self, rows: np.ndarray, at: int, guess_buf: np.ndarray) -> None:
        """Codes of ``rows`` into the stage's columns ``at ...`` (and their minimums)."""
        from workers.core import match_kernels as K

        assert self._stage is not None
        codes, mins = self._stage
        r = rows.shape[0]
        guess = guess_buf[: r * self.cells].reshape(r, self.cells)
        np.tanh(rows, out=guess)
        K.encode_block(
            rows.view(np.uint32),
            guess,
            self._bounds,
            SUMMARY_BLOCK,
            codes[:, at : at + r],
            mins[:, at // SUMMARY_BLOCK : -(-(at + r) // SUMMARY_BLOCK)],
        )

    def _flush(self) -> None:
        """Write the staged rows: one run per cell in each file."""
        if not self._staged or self._stage is None:
            return
        codes, mins = self._stage
        n, blk0 = self._staged, self._stage_start // SUMMARY_BLOCK
        nb = -(-n // SUMMARY_BLOCK)
        for c in range(self.cells):
            self._codes.write_flat(c * self.rows + self._stage_start, codes[c, :n])
            self._mins.write_flat(c * self.blocks + blk0, mins[c, :nb])
        self._staged = 0

    def finish(self, source_id: str) -> None:
        """Sync the codes, then write ``meta.json``: the folder is a complete index."""
        self.sync()
        self.close()
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "codec": CODEC,
            "layout": "cell-major",
            "summary_block": SUMMARY_BLOCK,
            "dtype": "uint16",
            "source_id": source_id,
            "rows": self.rows,
            "cells": self.cells,
        }
        write_json_synced(self.folder / "meta.json", meta)
        fsync_path(self.folder)

    def sync(self) -> None:
        """Write what is staged and wait until everything is on disk (before a
        checkpoint)."""
        self._flush()
        self._codes.sync()
        self._mins.sync()

    def close(self) -> None:
        """Stop the threads and close the files; rows still staged are dropped (an
        index is complete only through :meth:`finish`)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._stage, self._staged, self._guess = None, 0, []
        self._codes.close()
        self._mins.close()


def block_rows(cells: int) -> int:
    """Rows per block that keep a block near ``_BLOCK_VALUES`` values, in whole
    summary blocks (what :meth:`IndexWriter.write` wants)."""
    return max(1, _BLOCK_VALUES // max(cells, 1) // SUMMARY_BLOCK) * SUMMARY_BLOCK


def _build_one(
    ss: StateSet,
    source_id: str,
    tmp: Path,
    report: ProgressFn | None,
    done_rows: int,
    total_rows: int,
) -> None:
    info = ss.source(source_id)
    n, d = ss.length, info.cells
    # A float16 source is read as float32 (exact), so its codes are those of the
    # same values stored as float32.
    src = ss.source_file(source_id)
    step = block_rows(d)
    block = np.empty((step, d), dtype=np.float32)
    writer = IndexWriter(tmp, n, d)
    src_fd = os.open(src.path, os.O_RDONLY)
    try:
        for a in range(0, n, step):
            b = min(n, a + step)
            writer.write(a, src.read_rows(src_fd, a, block[: b - a]))
            if report is not None:
                report((done_rows + b) / total_rows, f"match index of {source_id}: {b}/{n} rows")
        writer.finish(source_id)
    finally:
        os.close(src_fd)
        writer.close()


def build(ss_path: Path, *, source_ids: list[str] | None, progress: ProgressFn | None) -> None:
    """See :func:`workers.core.match.build_match_index`."""
    ss = StateSet.open(ss_path)
    wanted = ss.source_ids if source_ids is None else list(source_ids)
    for sid in wanted:
        ss.source(sid)  # unknown names fail before any work
    parent = ss.path / "index" / "match"
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(parent)
    todo = [
        sid
        for sid in wanted
        if not _current(_read_meta(_index_dir(ss.path, sid)), ss.length, ss.source(sid).cells)
    ]
    total = max(1, ss.length * len(todo))
    for i, sid in enumerate(todo):
        final = _index_dir(ss.path, sid)
        tmp = make_temp_dir(final)  # .tmp-<source id>-<random>
        try:
            _build_one(ss, sid, tmp, progress, i * ss.length, total)
            if final.exists():
                if _current(_read_meta(final), ss.length, ss.source(sid).cells):
                    # Another builder finished first; its index is as good as ours.
                    shutil.rmtree(tmp, ignore_errors=True)
                    continue
                # An index of an older version: readers fall back to the source
                # for the moment between these two calls, with the same answers.
                shutil.rmtree(final)
            os.rename(tmp, final)
            fsync_path(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if progress is not None:
        progress(1.0, "Match index ready.")
