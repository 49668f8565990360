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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.core.atomic import (
    fsync_path,
    make_temp_dir,
    remove_stale_temp_dirs,
    write_json_synced,
)
from workers.core.errors import ProgressFn
from workers.core.store import StateSet

__all__ = ["INDEX_FORMAT", "INDEX_VERSION", "MatchIndex", "build", "encode", "open_index"]

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
    src_path = ss.path / "sources" / f"{source_id}.npy"
    src_offset = npy_data_offset(src_path)
    codes_path = tmp / "codes.npy"
    mins_path = tmp / "mins.npy"
    blocks = -(-n // SUMMARY_BLOCK)
    mm = np.lib.format.open_memmap(codes_path, mode="w+", dtype=np.uint16, shape=(d, n))
    offset = int(mm.offset)
    del mm
    mm = np.lib.format.open_memmap(mins_path, mode="w+", dtype=np.uint16, shape=(d, blocks))
    mins_offset = int(mm.offset)
    del mm
    # Whole summary blocks per row block, so that no summary spans two reads.
    step = max(1, _BLOCK_VALUES // d // SUMMARY_BLOCK) * SUMMARY_BLOCK
    block = np.empty((step, d), dtype=np.float32)
    src_fd = os.open(src_path, os.O_RDONLY)
    out_fd = os.open(codes_path, os.O_WRONLY)
    mins_fd = os.open(mins_path, os.O_WRONLY)
    try:
        for a in range(0, n, step):
            b = min(n, a + step)
            view = block[: b - a]
            want = view.nbytes
            got = os.preadv(src_fd, [view.data.cast("B")], src_offset + 4 * a * d)
            if got != want:
                raise OSError(f"short read from {src_path.name}")
            codes = encode(view)  # (b - a, d)
            codes_t = np.ascontiguousarray(codes.T)  # (d, b - a)
            for c in range(d):
                os.pwrite(out_fd, codes_t[c].data.cast("B"), offset + 2 * (c * n + a))
            summary = codes  # NaN is code 0, the smallest
            nb = -(-(b - a) // SUMMARY_BLOCK)
            pad = nb * SUMMARY_BLOCK - (b - a)
            if pad:
                summary = np.concatenate([summary, np.repeat(summary[-1:], pad, axis=0)])
            mins_t = np.ascontiguousarray(summary.reshape(nb, SUMMARY_BLOCK, d).min(axis=1).T)
            blk0 = a // SUMMARY_BLOCK
            for c in range(d):
                os.pwrite(mins_fd, mins_t[c].data.cast("B"), mins_offset + 2 * (c * blocks + blk0))
            if report is not None:
                report((done_rows + b) / total_rows, f"match index of {source_id}: {b}/{n} rows")
        os.fsync(out_fd)
        os.fsync(mins_fd)
    finally:
        os.close(src_fd)
        os.close(out_fd)
        os.close(mins_fd)
    meta = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "codec": CODEC,
        "layout": "cell-major",
        "summary_block": SUMMARY_BLOCK,
        "dtype": "uint16",
        "source_id": source_id,
        "rows": n,
        "cells": d,
    }
    write_json_synced(tmp / "meta.json", meta)
    fsync_path(tmp)


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
