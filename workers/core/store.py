"""StateLab's own on-disk format for state sets and corpora.

A *state set* is everything the viewer and the match engine read for one corpus
run through one model: the token sequence, one or more hidden-value matrices
(sources), annotation tracks and, optionally, the word embedding. It is a plain
directory of ``.npy`` files plus a JSON manifest, because

* ``np.load(mmap_mode="r")`` maps a source without reading it, so the web process
  can answer a context window of a 10^7-token corpus by touching a few pages, and
  many worker processes share the same page cache;
* every file has one fixed dtype and shape, so nothing needs a parser for
  untrusted structure (unlike HDF5, which is only ever *imported* from users);
* a directory can be written under a temporary name and moved into place with one
  ``rename``: a reader sees either nothing or a complete state set.

Layout of a state set directory::

    manifest.json                 written last, see below
    tokens.npy                    int32 (N,)   token id per time step
    vocab.json                    list of V strings, index = token id
    sources/<source_id>.npy       float32 (N, D) row-major, raw values; float16
                                  where the source's ``dtype`` says so
    annotations/<name>.npy        scalar: float32 (N,); discrete: int32 (N,);
                                  wordvec: int32 (N, k) token ids
    annotations/<name>.weights.npy  wordvec only, optional: float32 (N, k)
    embedding.npy                 optional float32 (V', E), row = token id

``manifest.json``::

    {"format": "statelab-stateset", "version": 1,
     "length": N, "vocab_size": V,
     "sources": [{"id", "name", "layer", "kind", "cells", "transform",
                  "unsigned", "dtype"}, ...],
     "annotations": [{"name", "kind", "labels", "range", "k"}, ...],
     "stream_starts": [...], "doc_starts": [...],
     "has_embedding": bool, "extra": {...}}

Source values are stored raw; the source's ``transform`` (``tanh`` or ``none``)
is applied at read time, so a user can still ask for the other view. A source's
``dtype`` is ``float32`` (the default, and what a manifest without the key means)
or ``float16`` (an extraction asked for half the disk). Every reader works in
float32: a float16 value converts to float32 exactly, so whatever is computed
from a float16 source equals what the same computation gives on the float32
array of the same (rounded) values. :meth:`StateSet.values` maps the file as
stored; :meth:`StateSet.source_file` and :meth:`SourceFile.read_rows` read rows
with ``pread`` into a float32 buffer. A discrete
annotation stores label ids, ``labels[i]`` being the label of id ``i`` (``""`` for
an id without a label). A wordvec annotation's ids index the state set's vocab
unless the annotation carries its own ``labels``.

A *corpus* directory is the tokenised text an extraction starts from:
``manifest.json`` (``{"format": "statelab-corpus", "version": 1, "length",
"vocab_size", "doc_starts", "extra", "annotations"}``), ``tokens.npy`` and
``vocab.json`` as above, and ``annotations/<name>.npy`` for per-token tracks
(scalar or discrete) that every state set extracted from it carries along.

Both are written through a temporary sibling directory
(``.tmp-<name>-<random>``) that is fsynced and renamed onto the final path, which
must not exist yet (:mod:`workers.core.atomic`). A worker killed half-way leaves
only a ``.tmp-`` directory, which :func:`remove_stale_temp_dirs` sweeps.

A published folder changes in one way only: a user's scalar or discrete track is
added or replaced (:func:`annotation_stage` + :func:`annotation_publish`, or
:func:`annotation_put`): the ``.npy`` is renamed into ``annotations/`` and then the
manifest is replaced atomically, under a lock on the folder.

A long job that must survive its worker dying (extraction) gives the writer a
temporary directory of its own (``tmp_dir``, on the same filesystem), which the
writer keeps when the job stops without committing, and fills its arrays out of
order through :class:`ArrayFile` (``open_tokens``, ``open_source``,
``open_annotation``): positioned writes into a preallocated ``.npy`` file, so a
retry can continue where the last attempt's checkpoint says it stopped.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from workers.core.atomic import (
    atomic_dir,
    fsync_path,
    make_temp_dir,
    publish_dir,
    remove_stale_temp_dirs,
    save_npy_synced,
    temp_sibling,
    write_json_atomic,
    write_json_synced,
)
from workers.core.errors import InputError

__all__ = [
    "CORPUS_FORMAT",
    "SOURCE_DTYPES",
    "STATESET_FORMAT",
    "AnnotationExistsError",
    "AnnotationInfo",
    "ArrayFile",
    "CorpusData",
    "Manifest",
    "SourceFile",
    "SourceInfo",
    "StagedAnnotation",
    "StateSet",
    "StateSetWriter",
    "UnknownNameError",
    "annotation_discard",
    "annotation_publish",
    "annotation_put",
    "annotation_stage",
    "open_corpus",
    "read_manifest_json",
    "remove_stale_temp_dirs",
    "write_corpus",
]

STATESET_FORMAT = "statelab-stateset"
CORPUS_FORMAT = "statelab-corpus"
FORMAT_VERSION = 1

TRANSFORMS = ("tanh", "none")
# How a source's values may be stored; float32 is the default.
SOURCE_DTYPES = ("float32", "float16")
ANNOTATION_KINDS = ("discrete", "scalar", "wordvec")

# Names that become file names inside the store: no separators, no dots first.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")

# Elements per slice when filling a source: 4M float32 values = 16 MiB.
_SLICE_ELEMENTS = 4 << 20

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class AnnotationExistsError(InputError):
    """An annotation track of that name exists and was not to be replaced."""


class UnknownNameError(InputError, KeyError):
    """A source or annotation name that the state set does not have.

    It is an ``InputError`` (the name came from a user) and a ``KeyError`` (it
    is a failed lookup), so callers may catch either.
    """


@dataclass
class SourceInfo:
    """One matrix of hidden values: ``cells`` columns, one row per token."""

    id: str
    name: str
    layer: int
    kind: str
    cells: int
    transform: str
    unsigned: bool = False
    dtype: str = "float32"  # one of SOURCE_DTYPES: how the values are stored

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.dtype == "float32":
            del out["dtype"]  # the default: manifests stay as they were before float16
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceInfo:
        dtype = str(data.get("dtype", "float32"))
        if dtype not in SOURCE_DTYPES:
            raise ValueError(f"source dtype {dtype!r} is not one of {SOURCE_DTYPES}")
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            layer=int(data["layer"]),
            kind=str(data["kind"]),
            cells=int(data["cells"]),
            transform=str(data["transform"]),
            unsigned=bool(data.get("unsigned", False)),
            dtype=dtype,
        )


@dataclass
class AnnotationInfo:
    """One annotation track: ``discrete`` labels, ``scalar`` values or ``wordvec``."""

    name: str
    kind: str
    labels: list[str] | None = None
    range: list[float] | None = None
    k: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnnotationInfo:
        labels = data.get("labels")
        rng = data.get("range")
        k = data.get("k")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            labels=[str(x) for x in labels] if labels is not None else None,
            range=[float(x) for x in rng] if rng is not None else None,
            k=int(k) if k is not None else None,
        )


@dataclass
class Manifest:
    """The description of a state set, stored as ``manifest.json``."""

    length: int
    vocab_size: int
    sources: list[SourceInfo] = field(default_factory=list)
    annotations: list[AnnotationInfo] = field(default_factory=list)
    stream_starts: list[int] = field(default_factory=lambda: [0])
    doc_starts: list[int] = field(default_factory=lambda: [0])
    has_embedding: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = STATESET_FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (``json.dumps`` it to store it)."""
        return {
            "format": self.format,
            "version": self.version,
            "length": self.length,
            "vocab_size": self.vocab_size,
            "sources": [s.to_json() for s in self.sources],
            "annotations": [a.to_json() for a in self.annotations],
            "stream_starts": list(self.stream_starts),
            "doc_starts": list(self.doc_starts),
            "has_embedding": self.has_embedding,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | bytes) -> Manifest:
        """Parse a manifest from its dict or its JSON text; damage is an ``InputError``."""
        try:
            if isinstance(data, str | bytes):
                data = json.loads(data)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            if data.get("format") != STATESET_FORMAT:
                raise InputError(
                    f"this is not a StateLab state set (format {data.get('format')!r})"
                )
            if data.get("version") != FORMAT_VERSION:
                raise InputError(
                    f"state set format version {data.get('version')!r} is not supported"
                )
            return cls(
                length=int(data["length"]),
                vocab_size=int(data["vocab_size"]),
                sources=[SourceInfo.from_json(s) for s in data["sources"]],
                annotations=[AnnotationInfo.from_json(a) for a in data["annotations"]],
                stream_starts=[int(x) for x in data["stream_starts"]],
                doc_starts=[int(x) for x in data["doc_starts"]],
                has_embedding=bool(data["has_embedding"]),
                extra=dict(data.get("extra") or {}),
            )
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the state set manifest is damaged ({exc})") from exc


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _check_name(name: str, what: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(
            f"{what} {name!r} must be 1-128 letters, digits, '_' or '-' and not start with '-'"
        )


def _as_int32_ids(ids: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.size and (
        int(arr.min()) < np.iinfo(np.int32).min or int(arr.max()) > np.iinfo(np.int32).max
    ):
        raise ValueError(f"{what} do not fit into int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _check_positions(values: list[int], length: int, what: str) -> list[int]:
    out = [int(v) for v in values]
    if not out or out[0] != 0:
        raise ValueError(f"{what} must start with 0")
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"{what} must be strictly increasing")
    if out[-1] >= length:
        raise ValueError(f"{what} must lie inside the sequence of {length} tokens")
    return out


# --------------------------------------------------------------------------- #
# Random-access array files
# --------------------------------------------------------------------------- #


def _read_npy_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(int(x) for x in shape), bool(fortran), np.dtype(dtype)


class ArrayFile:
    """A ``.npy`` file of fixed shape and dtype, written block by block in any order.

    Rows (the first axis) are written with ``os.pwrite`` at their offset, not
    through a memory map: pages written through a shared map stay in the
    writer's resident set until it is unmapped, so a long extraction would grow
    to the size of its output, while positioned writes keep the process at the
    size of one block. :meth:`start_writeback` asks the kernel to start writing
    finished rows out without waiting, so that a later :meth:`sync` (fdatasync)
    is short.

    With ``reuse=True`` an existing file of the same shape and dtype is kept as
    it is (a resumed job overwrites only what it writes again); anything else at
    ``path`` is replaced by a new file whose rows read as zeros until written.
    """

    def __init__(
        self, path: Path, shape: tuple[int, ...], dtype: Any, *, reuse: bool = False
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(x) for x in shape)
        self.dtype = np.dtype(dtype)
        if not self.shape or any(x < 0 for x in self.shape):
            raise ValueError(f"bad array shape {self.shape}")
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        nbytes = self._row_bytes * self.shape[0]
        offset = self._existing_offset(nbytes) if reuse else None
        if offset is None:
            header = {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": self.shape,
            }
            with open(self.path, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                offset = fh.tell()
                fh.truncate(offset + nbytes)  # sparse: no data written yet
        self._offset = offset
        self._fd: int | None = os.open(self.path, os.O_RDWR)

    def _existing_offset(self, nbytes: int) -> int | None:
        try:
            with open(self.path, "rb") as fh:
                shape, fortran, dtype = _read_npy_header(fh)
                offset = fh.tell()
                size = os.fstat(fh.fileno()).st_size
        except (OSError, ValueError):
            return None
        if shape != self.shape or fortran or dtype != self.dtype or size != offset + nbytes:
            return None
        return offset

    @property
    def rows(self) -> int:
        return self.shape[0]

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"{self.path.name} is closed")
        return self._fd

    def write_rows(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` (shape ``(n, *shape[1:])``) as rows ``[start, start + n)``."""
        fd = self._require_fd()
        arr = np.ascontiguousarray(block, dtype=self.dtype)
        if arr.shape[1:] != self.shape[1:] or arr.ndim != len(self.shape):
            raise ValueError(
                f"a block of shape {arr.shape} does not fit rows of shape {self.shape[1:]}"
            )
        n = arr.shape[0]
        if start < 0 or start + n > self.rows:
            raise ValueError(f"rows [{start}, {start + n}) lie outside [0, {self.rows})")
        view = arr.data.cast("B")
        pos = self._offset + start * self._row_bytes
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], pos + done)

    def write_flat(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` as the elements ``[start, start + values.size)`` of the
        array in C order: a run of one row of a cell-major index, for example."""
        fd = self._require_fd()
        arr = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1)
        total = self._row_bytes * self.rows // self.dtype.itemsize
        if start < 0 or start + arr.size > total:
            raise ValueError(f"elements [{start}, {start + arr.size}) lie outside [0, {total})")
        view = arr.data.cast("B")
        pos = self._offset + start * self.dtype.itemsize
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], pos + done)

    def write_spans(self, starts: np.ndarray, blocks: np.ndarray, counts: np.ndarray) -> None:
        """Write ``blocks[i, :counts[i]]`` as rows ``[starts[i], starts[i] + counts[i])``.

        ``blocks`` has shape ``(n, T, *shape[1:])``: one block of up to ``T`` rows
        for each of ``n`` spans (an extraction's streams). One call checks
        everything and then only issues the writes, so a thread writing many
        small spans holds the interpreter lock as little as possible.
        """
        fd = self._require_fd()
        arr = np.ascontiguousarray(blocks, dtype=self.dtype)
        starts = np.asarray(starts, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if arr.ndim != len(self.shape) + 1 or arr.shape[2:] != self.shape[1:]:
            raise ValueError(
                f"blocks of shape {arr.shape} do not fit rows of shape {self.shape[1:]}"
            )
        if starts.shape != (arr.shape[0],) or counts.shape != starts.shape:
            raise ValueError("one start and one count per block are needed")
        used = counts > 0
        if counts.size and (
            counts.min() < 0
            or counts.max() > arr.shape[1]
            or (
                used.any() and (starts[used].min() < 0 or (starts + counts)[used].max() > self.rows)
            )
        ):
            raise ValueError(f"spans lie outside the blocks or outside [0, {self.rows})")
        view = arr.data.cast("B")
        block_bytes = arr.shape[1] * self._row_bytes
        positions = (self._offset + starts * self._row_bytes).tolist()
        sizes = (counts * self._row_bytes).tolist()
        for i, (pos, size) in enumerate(zip(positions, sizes, strict=True)):
            if size:
                a = i * block_bytes
                done = os.pwrite(fd, view[a : a + size], pos)
                while done < size:
                    done += os.pwrite(fd, view[a + done : a + size], pos + done)

    def start_writeback(self, start: int = 0, stop: int | None = None) -> None:
        """Let the kernel start writing rows ``[start, stop)`` to disk (does not wait).

        Only call it for rows that are complete: a page that is being written
        out cannot be changed until that finishes, so writing into it again
        would wait for the disk. The range shrinks to whole pages, which also
        leaves out a page shared with the next, unwritten row.
        """
        fd = self._require_fd()
        if not hasattr(os, "posix_fadvise"):
            return
        stop = self.rows if stop is None else stop
        page = _PAGE_SIZE
        a = (self._offset + start * self._row_bytes) // page * page
        b = (self._offset + stop * self._row_bytes) // page * page
        if b > a:
            os.posix_fadvise(fd, a, b - a, os.POSIX_FADV_DONTNEED)

    def sync(self) -> None:
        """Wait until everything written so far is on disk."""
        os.fdatasync(self._require_fd())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _save_annotation(
    folder: Path, info: AnnotationInfo, values: np.ndarray, weights: np.ndarray | None
) -> int:
    """Write one annotation track into ``folder``; returns its number of rows."""
    base = folder / info.name
    arr = np.asarray(values)
    if weights is not None and info.kind != "wordvec":
        raise ValueError("only wordvec annotations have weights")
    if info.kind == "scalar":
        if arr.ndim != 1:
            raise ValueError("a scalar annotation is 1-D")
        save_npy_synced(base.with_suffix(".npy"), np.ascontiguousarray(arr, dtype=np.float32))
    elif info.kind == "discrete":
        if arr.ndim != 1:
            raise ValueError("a discrete annotation is 1-D")
        save_npy_synced(base.with_suffix(".npy"), _as_int32_ids(arr, "discrete annotation values"))
    elif info.kind == "wordvec":
        if arr.ndim != 2:
            raise ValueError("a wordvec annotation is 2-D (N x k)")
        info.k = int(arr.shape[1])
        save_npy_synced(base.with_suffix(".npy"), _as_int32_ids(arr, "wordvec annotation ids"))
        if weights is not None:
            w = np.asarray(weights)
            if w.shape != arr.shape:
                raise ValueError(f"wordvec weights have shape {w.shape}, ids have {arr.shape}")
            save_npy_synced(
                folder / f"{info.name}.weights.npy", np.ascontiguousarray(w, dtype=np.float32)
            )
    else:
        raise ValueError(f"annotation kind must be one of {ANNOTATION_KINDS}, not {info.kind!r}")
    return int(arr.shape[0])


def _load_annotation(
    folder: Path, info: AnnotationInfo, length: int, where: str
) -> tuple[np.ndarray, np.ndarray | None]:
    shape: tuple[int, ...] = (length,) if info.kind != "wordvec" else (length, int(info.k or 0))
    values = _mmap(folder / f"{info.name}.npy")
    wpath = folder / f"{info.name}.weights.npy"
    weights = _mmap(wpath) if info.kind == "wordvec" and wpath.exists() else None
    for arr in (values, weights):
        if arr is not None and arr.shape != shape:
            raise InputError(
                f"annotation {info.name!r} in {where} has shape {arr.shape}, expected {shape}"
            )
    return values, weights


# --------------------------------------------------------------------------- #
# Writer
# --------------------------------------------------------------------------- #


class StateSetWriter:
    """Builds a state set in a temporary directory and publishes it atomically.

    Use it as a context manager; leaving the block without :meth:`commit` (or
    with an exception) removes the temporary directory, so nothing is ever
    visible at ``final_dir`` unless it is complete::

        with StateSetWriter(dest) as w:
            w.set_tokens(ids, vocab)
            w.add_source(info, n, lambda a, b: matrix[a:b])
            manifest = w.commit()

    ``tmp_dir`` names the temporary directory instead of a fresh random one, for
    a job that resumes after its worker died: it is created if missing, what it
    holds is kept (``open_*`` with ``reuse=True`` continue existing files), and
    leaving the block without :meth:`commit` keeps it for the next attempt; only
    :meth:`abort` removes it. It must be on the filesystem of ``final_dir``.
    """

    def __init__(self, final_dir: Path, *, tmp_dir: Path | None = None) -> None:
        self.final_dir = Path(final_dir)
        if self.final_dir.exists() or self.final_dir.is_symlink():
            raise FileExistsError(f"{self.final_dir} already exists")
        self._owns_tmp = tmp_dir is None
        if tmp_dir is None:
            self.tmp_dir = make_temp_dir(self.final_dir)
        else:
            self.tmp_dir = Path(tmp_dir)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.final_dir.parent.mkdir(parents=True, exist_ok=True)
            if os.stat(self.tmp_dir).st_dev != os.stat(self.final_dir.parent).st_dev:
                raise ValueError(
                    f"the temporary directory {self.tmp_dir} is not on the filesystem of "
                    f"{self.final_dir}, so it cannot be moved into place"
                )
        (self.tmp_dir / "sources").mkdir(exist_ok=True)
        (self.tmp_dir / "annotations").mkdir(exist_ok=True)
        self._files: list[ArrayFile] = []
        self._length: int | None = None
        self._vocab_size = 0
        self._sources: list[tuple[SourceInfo, int]] = []
        self._annotations: list[tuple[AnnotationInfo, int]] = []
        self._stream_starts: list[int] | None = None
        self._doc_starts: list[int] | None = None
        self._embedding = False
        self._extra: dict[str, Any] = {}
        self._done = False

    # -- context manager ----------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            if self._owns_tmp:
                self.abort()
            else:
                self._close_files()
                self._done = True

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("this state set writer is already committed or aborted")

    # -- content ------------------------------------------------------------
    def set_tokens(self, ids: np.ndarray, vocab: list[str]) -> None:
        """Store the token ids (1-D, each in ``[0, len(vocab))``) and the vocab."""
        self._check_open()
        arr = _as_int32_ids(ids, "token ids")
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("token ids must be a non-empty 1-D array")
        if not all(isinstance(v, str) for v in vocab):
            raise ValueError("vocab entries must be strings")
        if int(arr.min()) < 0 or int(arr.max()) >= len(vocab):
            raise ValueError(f"token ids must lie in [0, {len(vocab)})")
        save_npy_synced(self.tmp_dir / "tokens.npy", arr)
        write_json_synced(self.tmp_dir / "vocab.json", list(vocab))
        self._length = int(arr.shape[0])
        self._vocab_size = len(vocab)

    def add_source(
        self,
        info: SourceInfo,
        rows: int,
        fill: Callable[[int, int], np.ndarray],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Write a ``rows x info.cells`` source (``info.dtype``), slice by slice.

        ``fill(a, b)`` returns rows ``[a, b)`` as an array of shape
        ``(b - a, info.cells)``; it is called with slices small enough that memory
        stays flat whatever ``rows`` is. ``progress(b)`` is called after each slice.
        """
        self._check_open()
        self._check_source(info, rows)
        path = self.tmp_dir / "sources" / f"{info.id}.npy"
        # Positioned writes, not a writable map: pages written through a map stay in
        # the writer's resident set, which would grow to the size of the source.
        out = ArrayFile(path, (rows, info.cells), info.dtype)
        try:
            step = max(1, _SLICE_ELEMENTS // info.cells)
            for a in range(0, rows, step):
                b = min(rows, a + step)
                block = np.asarray(fill(a, b))
                if block.shape != (b - a, info.cells):
                    raise ValueError(
                        f"fill({a}, {b}) gave shape {block.shape}, expected {(b - a, info.cells)}"
                    )
                out.write_rows(a, block)
                if progress is not None:
                    progress(b)
            out.sync()
        finally:
            out.close()
        self._sources.append((info, rows))

    def _check_source(self, info: SourceInfo, rows: int) -> None:
        _check_name(info.id, "source id")
        if info.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, not {info.transform!r}")
        if any(s.id == info.id for s, _ in self._sources):
            raise ValueError(f"source id {info.id!r} is used twice")
        if rows < 1 or info.cells < 1:
            raise ValueError("a source needs at least one row and one cell")
        if info.dtype not in SOURCE_DTYPES:
            raise ValueError(f"dtype must be one of {SOURCE_DTYPES}, not {info.dtype!r}")

    def _open_file(self, path: Path, shape: tuple[int, ...], dtype: Any) -> ArrayFile:
        f = ArrayFile(path, shape, dtype, reuse=not self._owns_tmp)
        self._files.append(f)
        return f

    def open_tokens(self, rows: int, vocab: list[str]) -> ArrayFile:
        """Store the vocab and open ``tokens.npy`` (int32, ``rows``) for writing in any order.

        The caller writes every row, each a token id in ``[0, len(vocab))``.
        """
        self._check_open()
        if rows < 1:
            raise ValueError("a state set needs at least one token")
        if not all(isinstance(v, str) for v in vocab):
            raise ValueError("vocab entries must be strings")
        write_json_synced(self.tmp_dir / "vocab.json", list(vocab))
        self._length = int(rows)
        self._vocab_size = len(vocab)
        return self._open_file(self.tmp_dir / "tokens.npy", (int(rows),), np.int32)

    def open_source(self, info: SourceInfo, rows: int) -> ArrayFile:
        """Open a ``rows x info.cells`` source (``info.dtype``) for writing rows in any order.

        Like :meth:`add_source`, but the caller writes the rows (all of them)
        through the returned :class:`ArrayFile` before :meth:`commit`; float32
        blocks written to a float16 source are rounded to nearest by the file.
        """
        self._check_open()
        self._check_source(info, rows)
        f = self._open_file(
            self.tmp_dir / "sources" / f"{info.id}.npy", (int(rows), info.cells), info.dtype
        )
        self._sources.append((info, int(rows)))
        return f

    def open_annotation(
        self, info: AnnotationInfo, rows: int, *, weights: bool = False
    ) -> tuple[ArrayFile, ArrayFile | None]:
        """Open an annotation track (and, for ``wordvec``, its weights) for writing in any order.

        Shapes and dtypes follow :meth:`add_annotation`; a ``wordvec`` track
        needs ``info.k``. The caller writes every row before :meth:`commit`.
        """
        self._check_open()
        _check_name(info.name, "annotation name")
        if any(a.name == info.name for a, _ in self._annotations):
            raise ValueError(f"annotation {info.name!r} is added twice")
        if weights and info.kind != "wordvec":
            raise ValueError("only wordvec annotations have weights")
        base = self.tmp_dir / "annotations"
        shape: tuple[int, ...]
        dtype: np.dtype[Any]
        if info.kind == "scalar":
            shape, dtype = (int(rows),), np.dtype(np.float32)
        elif info.kind == "discrete":
            shape, dtype = (int(rows),), np.dtype(np.int32)
        elif info.kind == "wordvec":
            if info.k is None or info.k < 1:
                raise ValueError("a wordvec annotation opened for writing needs k >= 1")
            shape, dtype = (int(rows), int(info.k)), np.dtype(np.int32)
        else:
            raise ValueError(
                f"annotation kind must be one of {ANNOTATION_KINDS}, not {info.kind!r}"
            )
        values = self._open_file(base / f"{info.name}.npy", shape, dtype)
        wfile = (
            self._open_file(base / f"{info.name}.weights.npy", shape, np.float32)
            if weights
            else None
        )
        self._annotations.append((info, int(rows)))
        return values, wfile

    def add_annotation(
        self, info: AnnotationInfo, values: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        """Store an annotation track; the dtype follows ``info.kind`` (see module doc)."""
        self._check_open()
        _check_name(info.name, "annotation name")
        if any(a.name == info.name for a, _ in self._annotations):
            raise ValueError(f"annotation {info.name!r} is added twice")
        rows = _save_annotation(self.tmp_dir / "annotations", info, values, weights)
        self._annotations.append((info, rows))

    def set_embedding(self, arr: np.ndarray) -> None:
        """Store the word embedding, one row per token id (float32, 2-D)."""
        self._check_open()
        emb = np.asarray(arr)
        if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
            raise ValueError("the embedding must be a non-empty 2-D array")
        save_npy_synced(self.tmp_dir / "embedding.npy", np.ascontiguousarray(emb, dtype=np.float32))
        self._embedding = True

    def set_streams(self, stream_starts: list[int], doc_starts: list[int]) -> None:
        """Record where streams (zero-state restarts) and documents begin."""
        self._check_open()
        self._stream_starts = [int(x) for x in stream_starts]
        self._doc_starts = [int(x) for x in doc_starts]

    def set_extra(self, extra: dict[str, Any]) -> None:
        """Free-form JSON metadata kept in the manifest (provenance, configs)."""
        self._check_open()
        json.dumps(extra, allow_nan=False)  # fail now, not at commit
        self._extra = dict(extra)

    # -- finish -------------------------------------------------------------
    def commit(self) -> Manifest:
        """Check that everything agrees, write the manifest and publish the directory."""
        self._check_open()
        try:
            if self._length is None:
                raise ValueError("set_tokens() was not called")
            n = self._length
            for src, rows in self._sources:
                if rows != n:
                    raise ValueError(f"source {src.id!r} has {rows} rows, the tokens {n}")
            for ann, rows in self._annotations:
                if rows != n:
                    raise ValueError(f"annotation {ann.name!r} has {rows} rows, the tokens {n}")
            manifest = Manifest(
                length=n,
                vocab_size=self._vocab_size,
                sources=[s for s, _ in self._sources],
                annotations=[a for a, _ in self._annotations],
                stream_starts=_check_positions(self._stream_starts or [0], n, "stream starts"),
                doc_starts=_check_positions(self._doc_starts or [0], n, "document starts"),
                has_embedding=self._embedding,
                extra=self._extra,
            )
            self._close_files()
            write_json_synced(self.tmp_dir / "manifest.json", manifest.to_json())
            publish_dir(self.tmp_dir, self.final_dir)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return manifest

    def _close_files(self) -> None:
        for f in self._files:
            f.close()

    def abort(self) -> None:
        """Throw away everything written so far. Safe to call more than once."""
        self._done = True
        self._close_files()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------- #
# Reader
# --------------------------------------------------------------------------- #


def read_manifest_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path/manifest.json`` (a state set, corpus or model folder);
    a missing or damaged manifest is an ``InputError``."""
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path.name} has no manifest.json; it is not a StateLab store") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the manifest of {path.name} is damaged ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"the manifest of {path.name} is damaged (not an object)")
    return data


def _mmap(path: Path) -> np.ndarray:
    try:
        arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as exc:
        raise InputError(f"the store {path.parent.name} is missing {path.name}") from exc
    return arr


def _load_vocab(path: Path) -> list[str]:
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    if not isinstance(vocab, list):
        raise InputError(f"the vocab of {path.name} is damaged")
    return [str(v) for v in vocab]


@dataclass(frozen=True)
class SourceFile:
    """A source's ``.npy`` file: where its row-major ``rows x cells`` data starts and
    how it is stored (float32 or float16)."""

    path: Path
    offset: int
    dtype: np.dtype[Any]
    rows: int
    cells: int

    @property
    def row_bytes(self) -> int:
        return self.cells * self.dtype.itemsize

    def read_rows(self, fd: int, start: int, out: np.ndarray) -> np.ndarray:
        """Rows ``[start, start + len(out))`` into ``out`` (float32, C-contiguous
        ``(r, cells)``) with ``pread`` on ``fd`` (this file, opened for reading);
        float16 values are converted, exactly. Returns ``out``."""
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape[1:] != (self.cells,):
            raise ValueError("rows are read into a C-contiguous float32 (r, cells) array")
        r = out.shape[0]
        if start < 0 or start + r > self.rows:
            raise ValueError(f"rows [{start}, {start + r}) lie outside [0, {self.rows})")
        # float16: the stored bytes go into the first half of ``out``'s memory and
        # are widened in place (no second buffer).
        raw = out.reshape(-1).view(np.uint8)[: r * self.row_bytes]
        mem = raw.data.cast("B")
        want, done = len(mem), 0
        while done < want:
            got = os.preadv(fd, [mem[done:]], self.offset + start * self.row_bytes + done)
            if got <= 0:
                raise OSError(f"short read from {self.path.name}")
            done += got
        if self.dtype != np.float32:
            _widen_in_place(raw.view(self.dtype), out)
        return out


def _widen_in_place(src: np.ndarray, out: np.ndarray) -> None:
    """``out.flat[i] = src[i]`` where ``src`` (float16, n values) is the first half
    of ``out``'s memory. Pieces go from the end backwards, each copied before it is
    written: piece ``[lo, hi)`` lands on bytes ``[4 lo, 4 hi)``, beyond the values
    ``[0, lo)`` still to be read (bytes ``[0, 2 lo)``)."""
    flat = out.reshape(-1)
    hi = flat.size
    while hi > 0:
        lo = max(0, hi - (1 << 16))
        flat[lo:hi] = src[lo:hi].astype(np.float32)
        hi = lo


class StateSet:
    """Read-only view of a published state set; arrays are memory-mapped lazily."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self._manifest = manifest
        self._sources = {s.id: s for s in manifest.sources}
        self._annotations = {a.name: a for a in manifest.annotations}
        self._vocab: list[str] | None = None
        self._tokens: np.ndarray | None = None
        self._values: dict[str, np.ndarray] = {}
        self._ann_values: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._embedding: np.ndarray | None = None

    @classmethod
    def open(cls, path: Path) -> StateSet:
        path = Path(path)
        return cls(path, Manifest.from_json(read_manifest_json(path)))

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def length(self) -> int:
        return self._manifest.length

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = _load_vocab(self.path)
        return self._vocab

    @property
    def tokens(self) -> np.ndarray:
        """int32 (N,) memory map of token ids."""
        if self._tokens is None:
            self._tokens = self._load(self.path / "tokens.npy", (self.length,))
        return self._tokens

    def _load(self, path: Path, shape: tuple[int, ...]) -> np.ndarray:
        arr = _mmap(path)
        if arr.shape != shape:
            raise InputError(
                f"{path.name} in state set {self.path.name} has shape {arr.shape}, expected {shape}"
            )
        return arr

    @property
    def source_ids(self) -> list[str]:
        return [s.id for s in self._manifest.sources]

    def source(self, source_id: str) -> SourceInfo:
        try:
            return self._sources[source_id]
        except KeyError:
            raise UnknownNameError(f"there is no source {source_id!r} in this state set") from None

    def values(self, source_id: str) -> np.ndarray:
        """(N, D) memory map of the raw values of a source, in the source's dtype
        (float32, or float16: convert what is read, ``apply_transform`` does)."""
        arr = self._values.get(source_id)
        if arr is None:
            info = self.source(source_id)
            arr = self._load(self.path / "sources" / f"{info.id}.npy", (self.length, info.cells))
            if arr.dtype != np.dtype(info.dtype):
                raise InputError(
                    f"source {info.id} of state set {self.path.name} is stored as {arr.dtype}, "
                    f"the manifest says {info.dtype}"
                )
            self._values[source_id] = arr
        return arr

    def source_file(self, source_id: str) -> SourceFile:
        """Where a source's values lie in its file, for reads with ``pread``."""
        info = self.source(source_id)
        path = self.path / "sources" / f"{info.id}.npy"
        try:
            with open(path, "rb") as fh:
                shape, fortran, dtype = _read_npy_header(fh)
                offset = fh.tell()
        except FileNotFoundError as exc:
            raise InputError(f"the store {self.path.name} is missing {path.name}") from exc
        if shape != (self.length, info.cells) or fortran or dtype != np.dtype(info.dtype):
            raise InputError(
                f"{path.name} in state set {self.path.name} holds {dtype} {shape}, expected "
                f"{info.dtype} {(self.length, info.cells)}"
            )
        return SourceFile(path, offset, dtype, self.length, info.cells)

    def annotation_info(self, name: str) -> AnnotationInfo:
        try:
            return self._annotations[name]
        except KeyError:
            raise UnknownNameError(f"there is no annotation {name!r} in this state set") from None

    def annotation(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, weights) of an annotation; weights only for wordvec tracks that have them."""
        cached = self._ann_values.get(name)
        if cached is None:
            info = self.annotation_info(name)
            base = self.path / "annotations"
            shape: tuple[int, ...] = (
                (self.length,) if info.kind != "wordvec" else (self.length, int(info.k or 0))
            )
            values = self._load(base / f"{info.name}.npy", shape)
            wpath = base / f"{info.name}.weights.npy"
            weights = (
                self._load(wpath, shape) if info.kind == "wordvec" and wpath.exists() else None
            )
            cached = (values, weights)
            self._ann_values[name] = cached
        return cached

    def embedding(self) -> np.ndarray | None:
        """float32 (V', E) memory map of the word embedding, or None."""
        if not self._manifest.has_embedding:
            return None
        if self._embedding is None:
            self._embedding = _mmap(self.path / "embedding.npy")
        return self._embedding


# --------------------------------------------------------------------------- #
# Corpus
# --------------------------------------------------------------------------- #


@dataclass
class CorpusData:
    """A tokenised corpus: ids (int32 memmap), vocab and document starts."""

    ids: np.ndarray
    vocab: list[str]
    doc_starts: list[int]
    extra: dict[str, Any]
    length: int
    path: Path | None = None
    annotations: list[AnnotationInfo] = field(default_factory=list)

    def annotation(self, info: AnnotationInfo) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, weights) of one of :attr:`annotations`, memory-mapped."""
        if self.path is None:
            raise ValueError("this corpus was not opened from a folder")
        return _load_annotation(self.path / "annotations", info, self.length, self.path.name)


def write_corpus(
    final_dir: Path,
    ids: np.ndarray,
    vocab: list[str],
    doc_starts: list[int],
    extra: dict[str, Any],
    *,
    annotations: list[tuple[AnnotationInfo, np.ndarray]] | None = None,
) -> None:
    """Write a corpus directory atomically (temp sibling + rename); see module doc.

    ``annotations`` are per-token tracks (scalar or discrete, one value per token)
    that every state set extracted from this corpus carries along.
    """
    final_dir = Path(final_dir)
    if final_dir.exists() or final_dir.is_symlink():
        raise FileExistsError(f"{final_dir} already exists")
    arr = _as_int32_ids(ids, "token ids")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("token ids must be a non-empty 1-D array")
    if int(arr.min()) < 0 or int(arr.max()) >= len(vocab):
        raise ValueError(f"token ids must lie in [0, {len(vocab)})")
    starts = _check_positions(doc_starts, int(arr.shape[0]), "document starts")
    json.dumps(extra, allow_nan=False)
    tracks = list(annotations or [])
    names = [info.name for info, _ in tracks]
    if len(set(names)) != len(names):
        raise ValueError("corpus annotation names must be unique")
    with atomic_dir(final_dir) as tmp:
        save_npy_synced(tmp / "tokens.npy", arr)
        write_json_synced(tmp / "vocab.json", list(vocab))
        if tracks:
            (tmp / "annotations").mkdir()
        for info, values in tracks:
            _check_name(info.name, "annotation name")
            if info.kind == "wordvec":
                raise ValueError("a corpus annotation is scalar or discrete")
            if _save_annotation(tmp / "annotations", info, values, None) != arr.shape[0]:
                raise ValueError(f"annotation {info.name!r} needs one value per token")
        write_json_synced(
            tmp / "manifest.json",
            {
                "format": CORPUS_FORMAT,
                "version": FORMAT_VERSION,
                "length": int(arr.shape[0]),
                "vocab_size": len(vocab),
                "doc_starts": starts,
                "extra": extra,
                "annotations": [info.to_json() for info, _ in tracks],
            },
        )


def open_corpus(path: Path) -> CorpusData:
    """Open a corpus directory written by :func:`write_corpus`; ids are memory-mapped."""
    path = Path(path)
    data = read_manifest_json(path)
    if data.get("format") != CORPUS_FORMAT or data.get("version") != FORMAT_VERSION:
        raise InputError(f"{path.name} is not a StateLab corpus (format {data.get('format')!r})")
    try:
        length = int(data["length"])
        doc_starts = [int(x) for x in data["doc_starts"]]
        extra = dict(data.get("extra") or {})
        annotations = [AnnotationInfo.from_json(a) for a in data.get("annotations") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the corpus manifest of {path.name} is damaged ({exc})") from exc
    ids = _mmap(path / "tokens.npy")
    if ids.shape != (length,):
        raise InputError(
            f"the corpus {path.name} has {ids.shape} token ids, the manifest says {length}"
        )
    return CorpusData(
        ids=ids,
        vocab=_load_vocab(path),
        doc_starts=doc_starts,
        extra=extra,
        length=length,
        path=path,
        annotations=annotations,
    )


# --------------------------------------------------------------------------- #
# Adding or replacing one annotation track of a published folder
# --------------------------------------------------------------------------- #


@dataclass
class StagedAnnotation:
    """A track written under a temporary name inside ``folder/annotations``, waiting
    for :func:`annotation_publish` (or :func:`annotation_discard`)."""

    folder: Path
    info: AnnotationInfo
    tmp: Path


def annotation_stage(folder: Path, info: AnnotationInfo, values: np.ndarray) -> StagedAnnotation:
    """Write a scalar or discrete track for an existing state-set or corpus folder under
    a temporary name (fsynced), checked against the folder's length; nothing is visible
    until :func:`annotation_publish`."""
    folder = Path(folder)
    _check_name(info.name, "annotation name")
    if info.kind not in ("scalar", "discrete"):
        raise ValueError("an added annotation is scalar or discrete")
    length = int(read_manifest_json(folder)["length"])
    arr = np.asarray(values)
    if arr.shape != (length,):
        raise InputError(
            f"the annotation {info.name!r} has {arr.shape[0] if arr.ndim else 0:,} values; "
            f"the tokens number {length:,}"
        )
    base = folder / "annotations"
    base.mkdir(exist_ok=True)
    tmp = temp_sibling(base / f"{info.name}.npy")
    try:
        if info.kind == "scalar":
            save_npy_synced(tmp, np.ascontiguousarray(arr, dtype=np.float32))
        else:
            save_npy_synced(tmp, _as_int32_ids(arr, "discrete annotation values"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StagedAnnotation(folder=folder, info=info, tmp=tmp)


def annotation_discard(staged: StagedAnnotation) -> None:
    """Remove a staged track that will not be published (safe after publishing)."""
    staged.tmp.unlink(missing_ok=True)


def annotation_publish(staged: StagedAnnotation, *, replace: bool = False) -> dict[str, Any]:
    """Move a staged track into place and write the new manifest; returns it.

    Under an exclusive lock on the folder (concurrent writers of one folder take
    turns), the manifest is read again, the name checked (an existing track is an
    ``AnnotationExistsError`` unless ``replace``), the ``.npy`` renamed onto its name and the
    manifest replaced, each atomically (:mod:`workers.core.atomic`): a reader that
    opens the folder sees the old manifest or the new one. A new track's file is in
    place before the manifest names it. A replaced track keeps its place in the list.
    """
    folder, info = staged.folder, staged.info
    final = folder / "annotations" / f"{info.name}.npy"
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = read_manifest_json(folder)
        tracks = [dict(a) for a in data.get("annotations") or []]
        at = next((i for i, a in enumerate(tracks) if a.get("name") == info.name), None)
        if at is not None and not replace:
            raise AnnotationExistsError(
                f"there is already an annotation named {info.name!r}; "
                "choose another name or replace it"
            )
        old_kind = tracks[at].get("kind") if at is not None else None
        entry = info.to_json()
        if at is None:
            tracks.append(entry)
        else:
            tracks[at] = entry
        data["annotations"] = tracks
        if data.get("format") == STATESET_FORMAT:
            Manifest.from_json(data)  # the new manifest must still read
        os.replace(staged.tmp, final)
        fsync_path(final.parent)
        try:
            write_json_atomic(folder / "manifest.json", data)
        except BaseException:
            if at is None:
                final.unlink(missing_ok=True)
            raise
        if old_kind == "wordvec":
            (folder / "annotations" / f"{info.name}.weights.npy").unlink(missing_ok=True)
        return data
    finally:
        os.close(fd)  # releases the lock


def annotation_put(
    folder: Path, info: AnnotationInfo, values: np.ndarray, *, replace: bool = False
) -> dict[str, Any]:
    """Add (or with ``replace`` replace) one scalar or discrete track of an existing
    state-set or corpus folder atomically; returns the new manifest."""
    staged = annotation_stage(folder, info, values)
    try:
        return annotation_publish(staged, replace=replace)
    finally:
        annotation_discard(staged)
