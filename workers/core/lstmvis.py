"""Importing an LSTMVis project directory into a StateLab state set.

LSTMVis users bring directories made for that tool: an ``lstm.yml`` that names
HDF5 files and dictionaries by alias, and says which datasets are the word
sequence, the state matrices, the annotation ("meta") tracks and the word
embedding (``docs/lstmvis-compat.md`` section 1 describes the format).
They should not have to convert anything, so every feature of that format is
read here, and the result is a state set in StateLab's own store format
(:mod:`workers.core.store`) that the viewer and match engine read directly.

Everything in the directory is untrusted:

* ``lstm.yml`` goes through ``yaml.safe_load`` only, with a size cap, and the
  parsed config is copied into plain JSON with a node budget (YAML aliases can
  otherwise expand exponentially when the config is serialised);
* file names in ``files`` must stay inside the directory: no absolute paths, no
  ``..``, no symlinks anywhere on the way;
* every HDF5 file is validated by :func:`workers.core.hdf5_guard.inspect_hdf5`
  in a limited child process before this process opens it, and is then read in
  slices, by names the check reported;
* every shape, dtype and id range is checked against the word sequence before
  anything is published, and errors name the user's file and what is wrong.

The state set is built with :class:`~workers.core.store.StateSetWriter`, so on
any error (or cancellation through the progress callback) nothing is left at
``dest`` and the temporary directory is removed.

Sources are copied block by block (about 10 million values at a time, so memory
does not grow with the corpus) with positioned writes, and each block is encoded
into the source's match index on the way (``index=True``), so the state set is
published with its match index and nothing reads the copy again. With a
``work_dir`` the import is resumable: the state set grows in ``work_dir`` and a
checkpoint there records the HDF5 files' checks and how many rows of each source
are safely on disk (after an fsync, about every gigabyte). A later call with the
same ``work_dir`` (the next attempt of a job whose worker was killed) skips the
checks of files that have not changed since (same inode, size, modification and
change times) and continues each source where the checkpoint says; if any file
of the project changed, it starts again from nothing.

Mapping to the store: sources get generated ids ``s0, s1, ...`` in the order of
``states.types``, and their ``name`` is the LSTMVis address
``"<file alias>::<dataset path>"``. The parsed config is kept in
``extra["lstmvis_config"]`` (for ``/api/v2/info``), with ``extra["name"]`` and
``extra["description"]``; ``extra["sources_by_address"]`` maps addresses to ids.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from workers.core.atomic import write_json_atomic
from workers.core.errors import InputError, ProgressFn
from workers.core.hdf5_guard import DatasetInfo, ValidatedHdf5, inspect_hdf5
from workers.core.match_index import SUMMARY_BLOCK, IndexWriter, block_rows
from workers.core.store import AnnotationInfo, Manifest, SourceInfo, StateSetWriter

__all__ = ["CONFIG_NAME", "import_lstmvis_dir", "parse_dictionary"]

CONFIG_NAME = "lstm.yml"
HDF5_SUFFIXES = (".h5", ".hdf5")
DICT_SUFFIXES = (".dict", ".txt")

_MAX_CONFIG_BYTES = 256 << 10
_MAX_CONFIG_NODES = 100_000
_MAX_DICT_ID = (1 << 24) - 1
_SLICE_ELEMENTS = 1 << 22
_META_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")
_DICT_LINE = re.compile(r"(.*?)\s+(\S+)\s*")

_CFG = CONFIG_NAME

# A resumable import's record of its progress, in its work folder.
_CHECKPOINT = "checkpoint.json"
_CHECKPOINT_VERSION = 1
# Bytes of states copied between two checkpoints (each waits for the disk).
_CHECKPOINT_BYTES = 1 << 30
# The HDF5 check reads every byte in a child process: its time limit grows with
# the file, from 60 s, at a pace far below any disk's.
_CHECK_MIN_S = 60.0
_CHECK_BYTES_PER_S = 64 << 20


def _size_text(n: int) -> str:
    """Bytes for a progress message: "96 KB", "812 MB", "2.42 GB" (units of 1024)."""
    if n < 1 << 20:
        return f"{n / (1 << 10):.0f} KB"
    if n < 1 << 30:
        return f"{n / (1 << 20):.0f} MB"
    return f"{n / (1 << 30):.2f} GB"


# --------------------------------------------------------------------------- #
# Small parsing helpers
# --------------------------------------------------------------------------- #


def _load_config(src: Path) -> dict[str, Any]:
    path = src / CONFIG_NAME
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise InputError("the project has no lstm.yml", file=_CFG) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("lstm.yml must be a regular file, not a link or folder", file=_CFG)
    if st.st_size > _MAX_CONFIG_BYTES:
        raise InputError(
            f"the file is {st.st_size} bytes, more than the {_MAX_CONFIG_BYTES} allowed",
            file=_CFG,
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start})", file=_CFG
        ) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(
            f"the file is not plain YAML{where}: {problem} "
            "(only plain YAML is read; tags such as !!python/... are refused)",
            file=_CFG,
        ) from None
    if not isinstance(config, dict):
        raise InputError(
            "the file must hold a mapping of settings (name, files, states, ...)", file=_CFG
        )
    return config


def _to_json(value: Any, budget: list[int]) -> Any:
    """Copy a parsed YAML value into plain JSON types, counting nodes."""
    budget[0] -= 1
    if budget[0] < 0:
        raise InputError(
            "the file is too complex (too many entries after expanding aliases)", file=_CFG
        )
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _to_json(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_to_json(v, budget) for v in value]
    if isinstance(value, _dt.date | _dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def dictionary_lines(text: str, *, display_name: str) -> Iterator[tuple[int, str, int]]:
    """``(line number, token, id)`` for each non-blank line of an LSTMVis dictionary.

    The id is the last whitespace-separated field, the token everything before it;
    a line that is only whitespace and an id gives the space token ``" "``.
    """
    for lineno, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.rstrip("\r")
        if not line.strip():
            continue
        m = _DICT_LINE.fullmatch(line)
        if m is None:
            raise InputError(
                f"line {lineno} is {line[:40]!r}; each line must be a token and an id",
                file=display_name,
            )
        token, id_text = m.group(1), m.group(2)
        if not id_text.isdigit():
            raise InputError(
                f"line {lineno} ends in {id_text[:20]!r}, which is not an id from 0 to "
                f"{_MAX_DICT_ID}",
                file=display_name,
            )
        if int(id_text) > _MAX_DICT_ID:
            raise InputError(
                f"line {lineno} has the id {id_text[:20]}; ids must lie between 0 and "
                f"{_MAX_DICT_ID}",
                file=display_name,
            )
        yield lineno, token if token else " ", int(id_text)


def parse_dictionary(data: bytes, *, display_name: str) -> list[str]:
    """Parse an LSTMVis dictionary into a list indexed by id (``""`` for unused ids).

    Each line is ``token id``; the id is the last whitespace-separated field and
    the token everything before it. A line that is only whitespace and an id
    (``" 17"``) maps that id to the space token ``" "``. Later lines win over
    earlier ones with the same id, as in LSTMVis.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the dictionary is not UTF-8 text (bad byte at offset {exc.start})", file=display_name
        ) from None
    mapping: dict[int, str] = {}
    for _lineno, token, idx in dictionary_lines(text, display_name=display_name):
        mapping[idx] = token
    if not mapping:
        raise InputError("the dictionary is empty", file=display_name)
    out = [""] * (max(mapping) + 1)
    for idx, token in mapping.items():
        out[idx] = token
    return out


def _as_int(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"{what} must be a whole number, not {value!r}", file=_CFG)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{what} must be a whole number, not {value!r}", file=_CFG) from None


def _as_str(value: Any, what: str) -> str:
    if value is None:
        raise InputError(f"{what} is missing", file=_CFG)
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise InputError(f"{what} must be a non-empty text, not {value!r}", file=_CFG)
    return str(value)


def _as_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a mapping, not {type(value).__name__}", file=_CFG)
    return {str(k): v for k, v in value.items()}


def _norm_ds(path: str) -> str:
    return "/".join(p for p in path.split("/") if p and p != ".")


# --------------------------------------------------------------------------- #
# Importer
# --------------------------------------------------------------------------- #


@dataclass
class _Dataset:
    alias: str
    file_label: str
    path: str
    info: DatasetInfo

    @property
    def address(self) -> str:
        return f"{self.alias}::{self.path}"


@dataclass
class _Meta:
    name: str
    kind: str
    data: _Dataset
    index: str
    labels: list[str] | None
    dict_alias: str | None
    range: list[float] | None
    weights: _Dataset | None


class _Importer:
    def __init__(self, src: Path, quota_bytes: int, progress: ProgressFn | None) -> None:
        self.src = src
        self.quota = quota_bytes
        self._progress = progress
        self.config = _load_config(src)
        self.files = self._read_files_section()
        # alias -> datasets, filled by the checks (or by a checkpoint's record of them)
        self.inspected: dict[str, dict[str, DatasetInfo]] = {}
        self._open: dict[str, ValidatedHdf5] = {}
        self._dicts: dict[str, list[str]] = {}

    def progress(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(min(1.0, max(0.0, fraction)), message)

    def close(self) -> None:
        for h5 in self._open.values():
            h5.forget()  # read once: leave the page cache to what was written
            h5.close()
        self._open.clear()

    # -- files ----------------------------------------------------------------
    def _read_files_section(self) -> dict[str, str]:
        files = self.config.get("files")
        if files is None:
            raise InputError("the 'files' section is missing (alias: file name)", file=_CFG)
        files = _as_mapping(files, "'files'")
        out: dict[str, str] = {}
        for alias, name in files.items():
            name = _as_str(name, f"files.{alias}")
            pure = PurePosixPath(name)
            if (
                "\\" in name
                or "\x00" in name
                or pure.is_absolute()
                or re.match(r"^[A-Za-z]:", name)
                or any(p in ("..", "") for p in name.split("/"))
            ):
                raise InputError(
                    f"files.{alias} is {name!r}; file names must be relative paths inside the "
                    "project folder, without '..'",
                    file=_CFG,
                )
            out[alias] = name
        return out

    def _file_path(self, alias: str, where: str, kinds: tuple[str, ...]) -> tuple[Path, str]:
        if alias not in self.files:
            raise InputError(
                f"{where} names the file alias {alias!r}, which 'files' does not define", file=_CFG
            )
        name = self.files[alias]
        if not name.lower().endswith(kinds):
            wanted = (
                "an HDF5 file (.h5, .hdf5)"
                if kinds == HDF5_SUFFIXES
                else "a dictionary (.dict, .txt)"
            )
            raise InputError(f"{where} needs {wanted}, but files.{alias} is {name!r}", file=_CFG)
        path = self.src
        for part in name.split("/"):
            path = path / part
            try:
                st = path.lstat()
            except FileNotFoundError:
                raise InputError(
                    f"files.{alias} is {name!r}, which is not in the project folder", file=_CFG
                ) from None
            if stat.S_ISLNK(st.st_mode):
                raise InputError(
                    f"files.{alias} ({name!r}) goes through a symbolic link, which is not accepted",
                    file=_CFG,
                )
        if not stat.S_ISREG(path.lstat().st_mode):
            raise InputError(f"files.{alias} ({name!r}) is not a regular file", file=_CFG)
        return path, name

    def fingerprint(self) -> dict[str, list[int] | None]:
        """What identifies the state of the project's files: ``lstm.yml`` and every
        file ``files`` names, each by device, inode, size, modification and change
        time (``None`` for one that is missing); a file written since changes it."""
        out: dict[str, list[int] | None] = {CONFIG_NAME: _file_identity(self.src / CONFIG_NAME)}
        for name in sorted(set(self.files.values())):
            out[name] = _file_identity(self.src.joinpath(*name.split("/")))
        return out

    def hdf5(self, alias: str, where: str) -> tuple[dict[str, DatasetInfo], str]:
        path, name = self._file_path(alias, where, HDF5_SUFFIXES)
        if alias not in self.inspected:
            size = path.stat().st_size
            self.progress(0.01, f"Checking {name} ({_size_text(size)}).")
            self.inspected[alias] = inspect_hdf5(
                path,
                display_name=name,
                quota_bytes=self.quota,
                timeout_s=_CHECK_MIN_S + size / _CHECK_BYTES_PER_S,
            )
        return self.inspected[alias], name

    def reader(self, ds: _Dataset) -> ValidatedHdf5:
        h5 = self._open.get(ds.alias)
        if h5 is None:
            path, name = self._file_path(ds.alias, "", HDF5_SUFFIXES)
            h5 = ValidatedHdf5(path, display_name=name)
            self._open[ds.alias] = h5
        return h5

    def dictionary(self, alias: str, where: str) -> list[str]:
        if alias not in self._dicts:
            path, name = self._file_path(alias, where, DICT_SUFFIXES)
            if path.stat().st_size > self.quota:
                raise InputError("the dictionary is larger than the storage quota", file=name)
            self._dicts[alias] = parse_dictionary(path.read_bytes(), display_name=name)
        return self._dicts[alias]

    def dataset(
        self,
        entry: dict[str, Any],
        where: str,
        *,
        file_key: str = "file",
        path_key: str = "path",
        default_alias: str | None = None,
    ) -> _Dataset:
        alias_value = entry.get(file_key, default_alias)
        if alias_value is None:
            raise InputError(f"{where} has no '{file_key}' (the alias of its HDF5 file)", file=_CFG)
        alias = _as_str(alias_value, f"{where}.{file_key}")
        path = _as_str(entry.get(path_key), f"{where}.{path_key}")
        infos, name = self.hdf5(alias, where)
        info = infos.get(_norm_ds(path))
        if info is None:
            raise InputError(f"there is no dataset '{path}' (named in lstm.yml {where})", file=name)
        return _Dataset(alias=alias, file_label=name, path=path, info=info)

    # -- reading ------------------------------------------------------------
    def row_blocks(
        self, ds: _Dataset, shape: tuple[int, ...]
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Rows ``[a, b)`` of a dataset of ``shape``, in slices of bounded size."""
        h5 = self.reader(ds)
        rows = shape[0]
        per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
        step = max(1, _SLICE_ELEMENTS // max(per_row, 1))
        for a in range(0, rows, step):
            b = min(rows, a + step)
            yield a, b, h5.rows(_norm_ds(ds.path), a, b).reshape((b - a, *shape[1:]))

    def read_ids(self, ds: _Dataset, what: str, shape: tuple[int, ...]) -> np.ndarray:
        """Read an integral dataset of ``shape`` into int64, checking every value."""
        out = np.empty(shape, dtype=np.int64)
        for a, b, block in self.row_blocks(ds, shape):
            if block.dtype.kind == "f":
                bad = ~np.isfinite(block) | (block != np.floor(block)) | (np.abs(block) > 2**53)
                if bad.any():
                    pos = a + int(np.argwhere(bad)[0][0])
                    raise InputError(
                        f"dataset '{ds.path}' ({what}) holds {float(block[bad].flat[0]):g} at row {pos}, "
                        "which is not a whole number",
                        file=ds.file_label,
                    )
            elif (
                block.dtype.kind == "u" and block.size and int(block.max()) > np.iinfo(np.int64).max
            ):
                raise InputError(
                    f"dataset '{ds.path}' ({what}) holds ids too large to use", file=ds.file_label
                )
            out[a:b] = block
        return out

    def read_floats(self, ds: _Dataset, shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape, dtype=np.float32)
        for a, b, block in self.row_blocks(ds, shape):
            out[a:b] = block
        return out

    # -- sections -----------------------------------------------------------
    def word_sequence(self) -> tuple[np.ndarray, list[str], str]:
        section = self.config.get("word_sequence")
        if section is None:
            raise InputError("the 'word_sequence' section is missing", file=_CFG)
        section = _as_mapping(section, "'word_sequence'")
        ds = self.dataset(section, "word_sequence")
        shape = ds.info.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] == 0:
            raise InputError(
                f"dataset '{ds.path}' (the word sequence) has shape {shape}; it must be one id per "
                "token (N, non-empty)",
                file=ds.file_label,
            )
        if "dict_file" not in section:
            raise InputError(
                "word_sequence has no 'dict_file' (the alias of its dictionary)", file=_CFG
            )
        dict_alias = _as_str(section["dict_file"], "word_sequence.dict_file")
        vocab = self.dictionary(dict_alias, "word_sequence.dict_file")
        ids = self.read_ids(ds, "word ids", (shape[0],))
        bad = (ids < 0) | (ids >= len(vocab))
        if not bad.any():
            defined = np.asarray([v != "" for v in vocab], dtype=bool)
            bad = ~defined[ids]
        if bad.any():
            pos = int(np.argmax(bad))
            raise InputError(
                f"dataset '{ds.path}' has the word id {int(ids[pos])} at position {pos}, which "
                f"the dictionary {self.files[dict_alias]} does not define",
                file=ds.file_label,
            )
        return ids.astype(np.int32), vocab, dict_alias

    def states(self, n: int) -> list[tuple[SourceInfo, _Dataset]]:
        section = self.config.get("states")
        if section is None:
            raise InputError("the 'states' section is missing", file=_CFG)
        section = _as_mapping(section, "'states'")
        types = section.get("types")
        if not isinstance(types, list) or not types:
            raise InputError("states.types must be a non-empty list of state entries", file=_CFG)
        default_alias = section.get("file")
        out: list[tuple[SourceInfo, _Dataset]] = []
        seen: set[str] = set()
        for i, raw in enumerate(types):
            where = f"states.types[{i}]"
            entry = _as_mapping(raw, where)
            ds = self.dataset(entry, where, default_alias=default_alias)
            if ds.address in seen:
                raise InputError(f"{where} repeats the source {ds.address}", file=_CFG)
            seen.add(ds.address)
            shape = ds.info.shape
            if len(shape) != 2 or shape[1] < 1:
                raise InputError(
                    f"dataset '{ds.path}' has shape {shape}; a state matrix must be 2-D (tokens x cells)",
                    file=ds.file_label,
                )
            if shape[0] != n:
                raise InputError(
                    f"dataset '{ds.path}' has {shape[0]} rows but the word sequence has {n} tokens",
                    file=ds.file_label,
                )
            transform = entry.get("transform", "tanh")
            if transform not in ("tanh", "none"):
                raise InputError(
                    f"{where}.transform is {transform!r}; it must be 'tanh' or 'none'", file=_CFG
                )
            unsigned = entry.get("unsigned", False)
            if not isinstance(unsigned, bool):
                raise InputError(f"{where}.unsigned must be true or false", file=_CFG)
            info = SourceInfo(
                id=f"s{i}",
                name=ds.address,
                layer=_as_int(entry.get("layer"), f"{where}.layer", default=1),
                kind=_as_str(entry.get("type", "state"), f"{where}.type"),
                cells=shape[1],
                transform=str(transform),
                unsigned=unsigned,
            )
            out.append((info, ds))
        return out

    def metas(self) -> list[_Meta]:
        section = self.config.get("meta")
        if section is None:
            return []
        section = _as_mapping(section, "'meta'")
        out = []
        for name, raw in section.items():
            where = f"meta.{name}"
            if not _META_NAME.match(name):
                raise InputError(
                    f"the meta entry name {name!r} may use only letters, digits, '_' and '-'",
                    file=_CFG,
                )
            entry = _as_mapping(raw, where)
            vis = _as_mapping(entry.get("vis") or {}, f"{where}.vis")
            kind = vis.get("type", entry.get("type"))
            if kind is None:
                kind = "discrete" if "dict" in entry else "scalar"
            if kind not in ("discrete", "scalar", "wordvec"):
                raise InputError(
                    f"{where} has the type {kind!r}; it must be discrete, scalar or wordvec",
                    file=_CFG,
                )
            ds = self.dataset(entry, where)
            labels = None
            dict_alias = None
            if "dict" in entry:
                dict_alias = _as_str(entry["dict"], f"{where}.dict")
                labels = self.dictionary(dict_alias, f"{where}.dict")
            rng = vis.get("range")
            num_range = None
            if isinstance(rng, list):
                if len(rng) != 2 or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in rng
                ):
                    raise InputError(f"{where}.vis.range must be two numbers or 'dict'", file=_CFG)
                num_range = [float(rng[0]), float(rng[1])]
            weights = None
            if "weights_path" in entry:
                if kind != "wordvec":
                    raise InputError(
                        f"{where}.weights_path is only allowed for wordvec entries", file=_CFG
                    )
                weights = self.dataset(entry, where, path_key="weights_path")
            index = _as_str(entry.get("index", "self"), f"{where}.index")
            out.append(_Meta(name, str(kind), ds, index, labels, dict_alias, num_range, weights))
        return out

    def embedding(self) -> _Dataset | None:
        section = self.config.get("word_embedding")
        if section is None:
            return None
        ds = self.dataset(_as_mapping(section, "'word_embedding'"), "word_embedding")
        if len(ds.info.shape) != 2 or min(ds.info.shape) < 1:
            raise InputError(
                f"dataset '{ds.path}' (the word embedding) has shape {ds.info.shape}; it must be "
                "2-D (words x dimensions)",
                file=ds.file_label,
            )
        return ds


def _lookup(meta: _Meta, table: np.ndarray, index_ids: np.ndarray) -> np.ndarray:
    rows = table.shape[0]
    if index_ids.size and (int(index_ids.min()) < 0 or int(index_ids.max()) >= rows):
        worst = int(index_ids.max()) if int(index_ids.max()) >= rows else int(index_ids.min())
        raise InputError(
            f"dataset '{meta.data.path}' (meta {meta.name}, indexed by {meta.index}) has {rows} rows "
            f"but must have one for every id up to {worst}",
            file=meta.data.file_label,
        )
    out: np.ndarray = table[index_ids]
    return out


def _meta_values(
    imp: _Importer, meta: _Meta, n: int, index_ids: dict[str, np.ndarray], vocab_size: int
) -> tuple[AnnotationInfo, np.ndarray, np.ndarray | None]:
    shape = meta.data.info.shape
    by_self = meta.index == "self"
    if by_self:
        ids_for_index = None
    elif meta.index in index_ids:
        ids_for_index = index_ids[meta.index]
    else:
        raise InputError(
            f"meta.{meta.name}.index is {meta.index!r}; it must be 'self', 'word_sequence' or the "
            "name of a discrete meta entry indexed by 'self'",
            file=_CFG,
        )
    rows_needed = n if by_self else None
    label = meta.data.file_label
    if meta.kind == "wordvec":
        if len(shape) == 1:
            shape = (shape[0], 1)
        if len(shape) != 2:
            raise InputError(
                f"dataset '{meta.data.path}' (meta {meta.name}) has shape {meta.data.info.shape}; a "
                "wordvec track is tokens x k ids",
                file=label,
            )
    elif len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
        raise InputError(
            f"dataset '{meta.data.path}' (meta {meta.name}) has shape {shape}; it must hold one value per "
            f"{'token' if by_self else 'id'}",
            file=label,
        )
    if rows_needed is not None and shape[0] != rows_needed:
        raise InputError(
            f"dataset '{meta.data.path}' (meta {meta.name}) has {shape[0]} rows but the word sequence "
            f"has {n} tokens",
            file=label,
        )
    weights = None
    if meta.kind == "scalar":
        values = imp.read_floats(meta.data, (shape[0],))
    else:
        values = imp.read_ids(
            meta.data,
            f"meta {meta.name}",
            (shape[0], *shape[1:2]) if meta.kind == "wordvec" else (shape[0],),
        )
        if meta.kind == "wordvec" and meta.weights is not None:
            if meta.weights.info.shape != meta.data.info.shape and meta.weights.info.shape != shape:
                raise InputError(
                    f"dataset '{meta.weights.path}' (weights of meta {meta.name}) has shape "
                    f"{meta.weights.info.shape}, but the ids have shape {meta.data.info.shape}",
                    file=meta.weights.file_label,
                )
            weights = imp.read_floats(meta.weights, shape)
    if ids_for_index is not None:
        values = _lookup(meta, values, ids_for_index)
        if weights is not None:
            weights = _lookup(meta, weights, ids_for_index)

    labels = meta.labels
    if meta.kind in ("discrete", "wordvec"):
        limit = (
            len(labels) if labels is not None else (vocab_size if meta.kind == "wordvec" else None)
        )
        if values.size:
            lo, hi = int(values.min()), int(values.max())
            if limit is not None and (lo < 0 or hi >= limit):
                bad = lo if lo < 0 else hi
                source = (
                    f"the dictionary {meta.name} uses"
                    if labels is not None
                    else "the word dictionary"
                )
                raise InputError(
                    f"dataset '{meta.data.path}' (meta {meta.name}) holds the id {bad}, which {source} "
                    "does not cover",
                    file=label,
                )
            if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
                raise InputError(
                    f"dataset '{meta.data.path}' (meta {meta.name}) holds values too large for label ids",
                    file=label,
                )
        values = values.astype(np.int32)
    rng = meta.range
    if meta.kind == "scalar" and rng is None:
        finite = values[np.isfinite(values)]
        rng = [float(finite.min()), float(finite.max())] if finite.size else None
    info = AnnotationInfo(name=meta.name, kind=meta.kind, labels=labels, range=rng)
    return info, values, weights


def _file_identity(path: Path) -> list[int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class _Checkpoint:
    """What a resumable import has done (``work_dir/checkpoint.json``): the checks
    of its HDF5 files and the rows of each source safely on disk, valid while the
    project's files are as they were (:meth:`_Importer.fingerprint`)."""

    def __init__(self, work: Path, fingerprint: dict[str, Any], options: dict[str, Any]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.path = work / _CHECKPOINT
        self.state_dir = work / "stateset"
        self.fingerprint = fingerprint
        self.options = options
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if (
            not isinstance(data, dict)
            or data.get("version") != _CHECKPOINT_VERSION
            or data.get("fingerprint") != fingerprint
            or data.get("options") != options
        ):
            # Another project, or files changed since: nothing done so far counts.
            shutil.rmtree(self.state_dir, ignore_errors=True)
            data = {}
        self.resumed = bool(data)
        self.inspected: dict[str, dict[str, DatasetInfo]] = {
            str(alias): {
                str(name): DatasetInfo(shape=tuple(int(x) for x in d[0]), dtype=str(d[1]))
                for name, d in datasets.items()
            }
            for alias, datasets in dict(data.get("inspected", {})).items()
        }
        self.rows: dict[str, int] = {str(k): int(v) for k, v in dict(data.get("rows", {})).items()}

    def save(self, inspected: dict[str, dict[str, DatasetInfo]]) -> None:
        write_json_atomic(
            self.path,
            {
                "version": _CHECKPOINT_VERSION,
                "fingerprint": self.fingerprint,
                "options": self.options,
                "inspected": {
                    alias: {name: [list(i.shape), i.dtype] for name, i in datasets.items()}
                    for alias, datasets in inspected.items()
                },
                "rows": self.rows,
            },
        )


class _Copied:
    """Progress by bytes of states copied: the job's fraction and message, and
    ``on_bytes(done, total)`` for whoever shows the bytes themselves."""

    def __init__(
        self, imp: _Importer, total: int, done: int, on_bytes: Callable[[int, int], None] | None
    ) -> None:
        self.imp, self.total, self.done, self.on_bytes = imp, max(total, 1), done, on_bytes

    def add(self, nbytes: int, address: str) -> None:
        self.done += nbytes
        self.report(address)

    def report(self, address: str) -> None:
        self.imp.progress(
            0.1 + 0.85 * self.done / self.total,
            f"Copying {address}: {_size_text(self.done)} of {_size_text(self.total)}.",
        )
        if self.on_bytes is not None:
            self.on_bytes(self.done, self.total)


def import_lstmvis_dir(
    src: Path,
    dest: Path,
    *,
    quota_bytes: int,
    progress: ProgressFn | None = None,
    work_dir: Path | None = None,
    index: bool = True,
    on_bytes: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Import the LSTMVis project in ``src`` into a new state set at ``dest``.

    ``quota_bytes`` caps the declared size of each HDF5 file and the size of the
    state set being written (its match index included when ``index``). Raises
    ``InputError`` for anything wrong with the project (nothing is left at
    ``dest`` then), and lets ``Cancelled`` from ``progress`` through, also
    leaving nothing behind.

    ``index`` writes each source's match index while the source is copied.
    ``work_dir`` (on the filesystem of ``dest``) makes the import resumable: see
    the module doc; the caller removes it once the state set is recorded, or
    after a failure. ``on_bytes(done, total)`` follows the bytes of states copied.
    """
    src = Path(src)
    dest = Path(dest)
    imp = _Importer(src, quota_bytes, progress)
    try:
        return _run_import(imp, dest, work_dir=work_dir, index=index, on_bytes=on_bytes)
    finally:
        imp.close()


def _run_import(
    imp: _Importer,
    dest: Path,
    *,
    work_dir: Path | None,
    index: bool,
    on_bytes: Callable[[int, int], None] | None,
) -> Manifest:
    imp.progress(0.0, "Reading lstm.yml.")
    config = imp.config
    budget = [_MAX_CONFIG_NODES]
    plain_config = _to_json(config, budget)
    name = str(config.get("name") or imp.src.name)
    description = str(config.get("description") or name)
    checkpoint = None
    if work_dir is not None:
        checkpoint = _Checkpoint(Path(work_dir), imp.fingerprint(), {"index": index})
        imp.inspected.update(checkpoint.inspected)

    ids, vocab, dict_alias = imp.word_sequence()
    n = int(ids.shape[0])
    sources = imp.states(n)
    metas = imp.metas()
    emb = imp.embedding()

    total_bytes = n * 4 + sum(n * s.cells * 4 for s, _ in sources)
    if emb is not None:
        total_bytes += math.prod(emb.info.shape) * 4
    if index:
        blocks = -(-n // SUMMARY_BLOCK)
        total_bytes += sum((n + blocks) * s.cells * 2 for s, _ in sources)
    if total_bytes > imp.quota:
        raise InputError(
            f"the state set would need {total_bytes} bytes, more than the {imp.quota} bytes allowed",
            file=_CFG,
        )

    # Ids usable by `index:` lookups: the word sequence and discrete self-indexed metas.
    index_ids: dict[str, np.ndarray] = {"word_sequence": ids}
    annotations: list[tuple[AnnotationInfo, np.ndarray, np.ndarray | None]] = []
    ordered = sorted(metas, key=lambda m: m.index != "self")
    for meta in ordered:
        if meta.kind == "wordvec" and meta.dict_alias == dict_alias:
            meta.labels = None  # the words' own dictionary: the ids index the vocab
        ann_info, values, weights = _meta_values(imp, meta, n, index_ids, len(vocab))
        if meta.kind == "discrete" and meta.index == "self":
            index_ids[meta.name] = values
        annotations.append((ann_info, values, weights))
    by_name = {a[0].name: a for a in annotations}
    annotations = [by_name[m.name] for m in metas]

    if checkpoint is not None:
        checkpoint.save(imp.inspected)
    state_bytes = sum(n * s.cells * 4 for s, _ in sources)
    rows_done = checkpoint.rows if checkpoint is not None else {}
    done_bytes = sum(min(rows_done.get(s.id, 0), n) * s.cells * 4 for s, _ in sources)
    copied = _Copied(imp, state_bytes, done_bytes, on_bytes)
    tmp_dir = checkpoint.state_dir if checkpoint is not None else None
    with StateSetWriter(dest, tmp_dir=tmp_dir) as writer:
        writer.set_tokens(ids, vocab)
        for info, ds in sources:
            _copy_source(
                imp, writer, info, ds, n, index=index, checkpoint=checkpoint, copied=copied
            )
        for ann, values, weights in annotations:
            writer.add_annotation(ann, values, weights)
        if emb is not None:
            imp.progress(0.96, "Copying the word embedding.")
            writer.set_embedding(imp.read_floats(emb, emb.info.shape))
        writer.set_streams([0], [0])
        writer.set_extra(
            {
                "name": name,
                "description": description,
                "imported_from": "lstmvis",
                "lstmvis_config": plain_config,
                "word_dict": dict_alias,
                "sources_by_address": {s.name: s.id for s, _ in sources},
            }
        )
        imp.progress(0.98, "Publishing the state set.")
        manifest = writer.commit()
    imp.progress(1.0, "Imported.")
    return manifest


def _copy_source(
    imp: _Importer,
    writer: StateSetWriter,
    info: SourceInfo,
    ds: _Dataset,
    n: int,
    *,
    index: bool,
    checkpoint: _Checkpoint | None,
    copied: _Copied,
) -> None:
    """Copy one state matrix into the state set (and its match index), block by
    block, from where the checkpoint says (the start, without one).

    Two blocks are in flight: while one is written (the source rows by one
    thread, its index codes by another, which encodes with two) the next is read
    from the HDF5 file, so the disk and the processors work at the same time; a
    checkpoint records only rows whose block, and every block before it, is
    written and synced.
    """
    start = checkpoint.rows.get(info.id, 0) if checkpoint is not None else 0
    if start % SUMMARY_BLOCK and start != n:
        start = 0  # not a block boundary of ours: copy it all again
    out = writer.open_source(info, n)
    indexer = (
        IndexWriter(
            writer.tmp_dir / "index" / "match" / info.id,
            n,
            info.cells,
            reuse=checkpoint is not None,
        )
        if index
        else None
    )
    step = block_rows(info.cells)
    buffers = [np.empty((min(step, n), info.cells), dtype=np.float32) for _ in range(2)]
    pending: deque[tuple[list[Future[None]], int, int]] = deque()
    unsynced = 0

    def finish_oldest() -> None:
        nonlocal unsynced
        futures, b, nbytes = pending.popleft()
        for f in futures:
            f.result()
        unsynced += nbytes
        if checkpoint is not None and unsynced >= _CHECKPOINT_BYTES and b < n:
            # Each sync runs on its writer's own thread, after the writes queued
            # there (the next block's among them): a sync from here would race the
            # index thread's staging and could drop a staged block.
            syncs = [rows_pool.submit(out.sync)]
            if indexer is not None:
                syncs.append(index_pool.submit(indexer.sync))
            for f in syncs:
                f.result()
            checkpoint.rows[info.id] = b
            checkpoint.save(imp.inspected)
            unsynced = 0
        copied.add(nbytes, ds.address)

    # One thread each, so that each file's blocks are written in order.
    rows_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmvis-rows")
    index_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmvis-index")
    try:
        h5 = imp.reader(ds)
        path = _norm_ds(ds.path)
        copied.report(ds.address)
        for k, a in enumerate(range(start, n, step)):
            if len(pending) == len(buffers):
                finish_oldest()  # frees the buffer read next
            b = min(n, a + step)
            block = h5.rows_into(path, a, b, buffers[k % len(buffers)])
            h5.forget_rows(path, a, b)
            futures = [rows_pool.submit(out.write_rows, a, block)]
            if indexer is not None:
                futures.append(index_pool.submit(indexer.write, a, block))
            pending.append((futures, b, block.nbytes))
        while pending:
            finish_oldest()
        if indexer is not None:
            indexer.finish(info.id)
        if checkpoint is not None and start < n:
            out.sync()
            checkpoint.rows[info.id] = n
            checkpoint.save(imp.inspected)
    finally:
        # Nothing may still write once this returns or raises (a cancelled job).
        for futures, _b, _nbytes in pending:
            for f in futures:
                f.cancel()
        rows_pool.shutdown(wait=True)
        index_pool.shutdown(wait=True)
        if indexer is not None:
            indexer.close()
