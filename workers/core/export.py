"""Exports: a slice of a state set as CSV, ``.npz`` or HDF5, and a match's hits as CSV.

An export is a file a user keeps, so every file says what it came from: the state
set (id and name), the source, the transform, the inclusive token range and the
cells, in a header comment (CSV), a JSON ``meta`` string (``.npz``) or attributes
(HDF5). The caller adds what only it knows (the state set's id and name, the
project) as ``pin``; the core adds what it computed.

A slice can be far larger than memory (a million tokens of 650 cells is 2.6 GB of
float32), so nothing here holds it whole: :func:`slice_blocks` reads the source
in blocks of rows (at most ``BLOCK_VALUES`` raw values per read, counting the
whole row width, since a row-major source is read row by row), transforms each
block and hands it on. CSV is a generator of byte chunks, one per block, for a
streaming response. ``.npz`` and HDF5 need a seekable file: the writers fill one
block at a time, the ``.npz`` through ``zipfile``'s streaming member writer (each
member an ``.npy`` header followed by the blocks' bytes), the HDF5 file through
preallocated datasets written by row ranges.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.core.context import TRANSFORMS, apply_transform, check_cells
from workers.core.errors import InputError
from workers.core.search import vocab_is_characters
from workers.core.store import StateSet

__all__ = [
    "BLOCK_VALUES",
    "EXPORT_FORMATS",
    "MATCH_TEXT_MAX_TOKENS",
    "SliceBlock",
    "SlicePlan",
    "match_csv_chunks",
    "slice_blocks",
    "slice_csv_chunks",
    "slice_plan",
    "write_hdf5",
    "write_npz",
]

EXPORT_FORMATS = ("csv", "npz", "hdf5")
# Raw values read per block: 1M float32 = 4 MiB, plus the transformed copy.
BLOCK_VALUES = 1 << 20
# A hit's text in a match export holds at most this many tokens (then "…").
MATCH_TEXT_MAX_TOKENS = 10_000
_MAX_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class SlicePlan:
    """A checked slice: ``[start, end]`` inclusive of source ``source``, ``cells`` in order."""

    source: str
    start: int
    end: int
    cells: list[int]
    transform: str
    block_rows: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class SliceBlock:
    """Rows ``[start, stop)`` of a slice: ``values`` float32 (rows x cells), ``token_ids`` int32."""

    start: int
    stop: int
    values: np.ndarray
    token_ids: np.ndarray


def slice_plan(
    ss: StateSet,
    source: str,
    start: int,
    end: int,
    *,
    cells: list[int] | None = None,
    transform: str | None = None,
    pin: dict[str, Any] | None = None,
    block_rows: int | None = None,
) -> SlicePlan:
    """Check a slice against the state set (``InputError`` saying what is wrong).

    The range must lie inside the corpus (it is not clamped: the file names the
    range it holds). ``cells`` None means all, ``transform`` None the source's own.
    ``meta`` is ``pin`` plus source, source name, transform, range, token count
    and cells: what every format records.
    """
    info = ss.source(source)
    n = ss.length
    start, end = int(start), int(end)
    if start < 0 or end < start or end >= n:
        raise InputError(
            f"the range {start}-{end} must be ascending and lie inside the corpus of {n} "
            f"tokens (positions 0 to {n - 1})"
        )
    chosen = check_cells(cells, info.cells)
    if not chosen:
        raise InputError("name at least one cell, or leave cells out for all of them")
    transform = info.transform if transform is None else transform
    if transform not in TRANSFORMS:
        raise InputError(f"the transform must be 'tanh' or 'none', not {transform!r}")
    if block_rows is None:
        # Bounded by the raw row width: a row-major source is read whole rows at a time.
        block_rows = min(_MAX_BLOCK_ROWS, max(1, BLOCK_VALUES // max(info.cells, 1)))
    if block_rows < 1:
        raise ValueError("block_rows must be at least 1")
    meta: dict[str, Any] = dict(pin or {})
    meta.update(
        {
            "source": info.id,
            "source_name": info.name,
            "transform": transform,
            "start": start,
            "end": end,
            "tokens": end - start + 1,
            "cells": chosen,
        }
    )
    return SlicePlan(info.id, start, end, chosen, transform, int(block_rows), meta)


def slice_blocks(ss: StateSet, plan: SlicePlan) -> Iterator[SliceBlock]:
    """The slice, ``plan.block_rows`` rows at a time, transformed (float32)."""
    raw_all = ss.values(plan.source)
    all_cells = plan.cells == list(range(raw_all.shape[1]))
    index = np.asarray(plan.cells, dtype=np.intp)
    for a in range(plan.start, plan.end + 1, plan.block_rows):
        b = min(a + plan.block_rows, plan.end + 1)
        raw = np.asarray(raw_all[a:b]) if all_cells else np.asarray(raw_all[a:b])[:, index]
        yield SliceBlock(
            a,
            b,
            apply_transform(raw, plan.transform),
            np.asarray(ss.tokens[a:b], dtype=np.int32),
        )


def _one_line(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _csv_quote(text: str) -> str:
    """A CSV field (RFC 4180), always quoted: tokens may be commas, quotes or newlines."""
    return '"' + text.replace('"', '""') + '"'


def _comment_lines(title: str, meta: dict[str, Any]) -> str:
    lines = [f"# {title}"] + [f"# {key}: {_one_line(value)}" for key, value in meta.items()]
    return "\n".join(lines) + "\n"


def slice_csv_chunks(ss: StateSet, plan: SlicePlan) -> Iterator[bytes]:
    """UTF-8 CSV: ``#`` comment lines with ``plan.meta``, then ``position,token,c<cell>...``
    and one row per token; one chunk per block. Values are written with 9 significant
    digits (float32 round-trips), NaN as ``nan``; tokens are quoted."""
    header = _comment_lines("StateLab state export", plan.meta)
    header += ",".join(["position", "token"] + [f"c{c}" for c in plan.cells]) + "\n"
    yield header.encode("utf-8")
    vocab = ss.vocab
    quoted: dict[int, str] = {}
    row_fmt = ",".join(["%.9g"] * len(plan.cells))
    for block in slice_blocks(ss, plan):
        out = []
        values = block.values.astype(np.float64).tolist()
        for offset, (tid, row) in enumerate(zip(block.token_ids.tolist(), values, strict=True)):
            tok = quoted.get(tid)
            if tok is None:
                tok = quoted[tid] = _csv_quote(vocab[tid] if 0 <= tid < len(vocab) else "")
            out.append(f"{block.start + offset},{tok},{row_fmt % tuple(row)}\n")
        yield "".join(out).encode("utf-8")


def _token_texts(vocab: list[str], ids: np.ndarray) -> list[str]:
    n = len(vocab)
    return [vocab[i] if 0 <= i < n else "" for i in ids.tolist()]


def _max_token_length(ss: StateSet, plan: SlicePlan) -> int:
    """The longest token text in the slice (read in blocks of token ids only)."""
    lengths = np.array([len(v) for v in ss.vocab] + [0], dtype=np.int64)
    step = max(plan.block_rows, 1 << 16)
    longest = 1
    for a in range(plan.start, plan.end + 1, step):
        ids = np.asarray(ss.tokens[a : min(a + step, plan.end + 1)], dtype=np.int64)
        ids = np.where((ids >= 0) & (ids < len(lengths) - 1), ids, len(lengths) - 1)
        longest = max(longest, int(lengths[ids].max(initial=0)))
    return longest


def _npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def _write_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    with zf.open(name, "w", force_zip64=True) as out:
        out.write(_npy_header(arr.shape, arr.dtype))
        out.write(np.ascontiguousarray(arr).tobytes())


def write_npz(ss: StateSet, plan: SlicePlan, path: Path) -> int:
    """Write the slice as an ``.npz`` that ``np.load`` reads without pickle.

    Arrays: ``values`` float32 (T x C), ``positions`` int64 (T,), ``tokens``
    unicode (T,), ``cells`` int32 (C,) and ``meta``, a 0-d unicode array holding
    ``plan.meta`` as JSON. ``values`` and ``tokens`` are written block by block.
    Returns the number of blocks.
    """
    t, c = plan.rows, len(plan.cells)
    width = _max_token_length(ss, plan)
    values_dtype = np.dtype("<f4")
    tokens_dtype = np.dtype(f"<U{width}")
    vocab = ss.vocab
    blocks = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_member(zf, "meta.npy", np.array(json.dumps(plan.meta, ensure_ascii=False)))
        _write_member(zf, "cells.npy", np.asarray(plan.cells, dtype="<i4"))
        _write_member(zf, "positions.npy", np.arange(plan.start, plan.end + 1, dtype="<i8"))
        with zf.open("values.npy", "w", force_zip64=True) as out:
            out.write(_npy_header((t, c), values_dtype))
            for block in slice_blocks(ss, plan):
                out.write(np.ascontiguousarray(block.values, dtype=values_dtype).tobytes())
                blocks += 1
        with zf.open("tokens.npy", "w", force_zip64=True) as out:
            out.write(_npy_header((t,), tokens_dtype))
            for a in range(plan.start, plan.end + 1, plan.block_rows):
                ids = np.asarray(ss.tokens[a : min(a + plan.block_rows, plan.end + 1)])
                out.write(np.array(_token_texts(vocab, ids), dtype=tokens_dtype).tobytes())
    return blocks


def write_hdf5(ss: StateSet, plan: SlicePlan, path: Path) -> int:
    """Write the slice as HDF5: datasets ``values`` float32 (T x C), ``positions``
    int64, ``cells`` int32, ``tokens`` (UTF-8 strings); the file's attributes hold
    every entry of ``plan.meta`` (lists as arrays) and ``meta``, all of it as JSON.
    The datasets are preallocated and filled block by block. Returns the number
    of blocks."""
    import h5py  # only the processes that write HDF5 load it

    t, c = plan.rows, len(plan.cells)
    vocab = ss.vocab
    blocks = 0
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "statelab-export"
        f.attrs["meta"] = json.dumps(plan.meta, ensure_ascii=False)
        for key, value in plan.meta.items():
            if value is None:
                continue
            f.attrs[key] = np.asarray(value) if isinstance(value, list) else value
        f.create_dataset("cells", data=np.asarray(plan.cells, dtype=np.int32))
        f.create_dataset("positions", data=np.arange(plan.start, plan.end + 1, dtype=np.int64))
        values = f.create_dataset("values", shape=(t, c), dtype=np.float32)
        tokens = f.create_dataset("tokens", shape=(t,), dtype=h5py.string_dtype("utf-8"))
        for block in slice_blocks(ss, plan):
            lo, hi = block.start - plan.start, block.stop - plan.start
            values[lo:hi] = block.values
            tokens[lo:hi] = np.array(_token_texts(vocab, block.token_ids), dtype=object)
            blocks += 1
    return blocks


def match_csv_chunks(
    ss: StateSet,
    hits: list[dict[str, Any]],
    meta: dict[str, Any],
    *,
    max_text_tokens: int = MATCH_TEXT_MAX_TOKENS,
) -> Iterator[bytes]:
    """UTF-8 CSV of a match's ranked hits: ``#`` comment lines with ``meta`` (state
    set, source, query), then ``rank,position,length,intersection,union,jaccard,
    missing,text``. ``text`` is the matched tokens, joined with nothing for a
    character vocabulary and with spaces otherwise, cut after ``max_text_tokens``
    tokens (then ending in ``…``)."""
    yield (
        _comment_lines("StateLab match export", meta)
        + "rank,position,length,intersection,union,jaccard,missing,text\n"
    ).encode("utf-8")
    vocab = ss.vocab
    sep = "" if vocab_is_characters(vocab) else " "
    n = ss.length
    out: list[str] = []
    for rank, hit in enumerate(hits, start=1):
        pos, length = int(hit["position"]), int(hit["length"])
        stop = min(pos + min(length, max_text_tokens), n)
        text = sep.join(_token_texts(vocab, np.asarray(ss.tokens[max(pos, 0) : stop])))
        if length > max_text_tokens:
            text += "…"
        out.append(
            f"{rank},{pos},{length},{int(hit['intersection'])},{int(hit['union'])},"
            f"{float(hit['jaccard']):.9g},{int(hit['missing'])},{_csv_quote(text)}\n"
        )
        if len(out) >= 256:
            yield "".join(out).encode("utf-8")
            out = []
    if out:
        yield "".join(out).encode("utf-8")
