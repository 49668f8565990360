"""Checking an untrusted HDF5 file in a separate, resource-limited process.

libhdf5 is a large C parser with a steady stream of CVEs for malformed files, and
an HDF5 file can point outside itself: external links open other files, virtual
datasets map other files' data, external raw storage reads arbitrary files as a
dataset's bytes, and dynamically loaded filter plugins run foreign code. So a
user's HDF5 file is first opened by a *child* Python process (this module run
with ``-m``) that has

* an address-space limit, a CPU-time limit and a wall-clock timeout,
* no right to write files (``RLIMIT_FSIZE = 0``, ``SIGXFSZ`` ignored so a write
  fails instead of killing), no core dumps, few file descriptors,
* HDF5 plugin loading switched off and a minimal environment.

The child walks every link without following any (``visititems_links``), refuses
anything that reaches outside the file, any filter outside a short list of
built-in ones, non-numeric dtypes and ranks above 2, and a declared total size
over the quota; then it reads every dataset in slices of about a million
elements, so a truncated or corrupt file fails in the child, not in the worker.
It prints one JSON line: the datasets with shapes and dtypes, or an error.

If libhdf5 crashes, the limits kill the child, or it runs out of time, the parent
reports that the file "could not be read safely". Only after a file passed does
the parent open it itself (:func:`read_dataset_rows`, :class:`ValidatedHdf5`),
and then only by names the check reported, resolved through hard links only.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from workers.core.errors import InputError

__all__ = [
    "ALLOWED_FILTERS",
    "MAX_CHUNK_BYTES",
    "DatasetInfo",
    "ValidatedHdf5",
    "inspect_hdf5",
    "read_dataset_rows",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filter id -> name. Only filters built into libhdf5 (and LZF, which h5py
# registers itself); no plugin is ever loaded.
ALLOWED_FILTERS = {
    1: "gzip",
    2: "shuffle",
    3: "fletcher32",
    6: "scaleoffset",
    32000: "lzf",
}

_SLICE_ELEMENTS = 1 << 20
# A chunk is decompressed whole on every read that touches it, so a huge chunk
# makes slice-wise copying slow and memory-hungry; 64 MiB is far above what
# h5py, torch-hdf5 or LSTMVis' scripts produce.
MAX_CHUNK_BYTES = 64 << 20
# The parent's chunk cache holds one largest chunk, so slices never decompress
# the same chunk twice in a row.
_CHUNK_CACHE_BYTES = MAX_CHUNK_BYTES + (16 << 20)
_EXIT_REFUSED = 2
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and numpy dtype name (``"float32"``, ``"int64"``...) of a dataset."""

    shape: tuple[int, ...]
    dtype: str


class _Refused(Exception):
    """Raised inside the child for a file that must not be used."""


# --------------------------------------------------------------------------- #
# Shared: resolve a path through hard links only
# --------------------------------------------------------------------------- #


def _normalise_name(name: str) -> str:
    return "/".join(p for p in name.split("/") if p and p != ".")


def _resolve_hard(root: Any, name: str) -> Any:
    """The object at ``name``, walking hard links only; ``None`` if there is none.

    ``root`` is an open ``h5py.File``. Every component must be a hard link, so the
    walk never opens another file or follows a link that was not checked.
    """
    import h5py

    obj = root
    for part in _normalise_name(name).split("/"):
        if not part:
            continue
        if not isinstance(obj, h5py.Group) or part == "..":
            return None
        link = obj.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            return None
        obj = obj[part]
    return obj


# --------------------------------------------------------------------------- #
# Child process
# --------------------------------------------------------------------------- #


def _has_signature(path: Path) -> bool:
    """True if the HDF5 signature is at offset 0, 512, 1024, 2048, ... (user block)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _check_dataset(name: str, ds: Any) -> DatasetInfo:
    plist = ds.id.get_create_plist()
    if ds.is_virtual:
        raise _Refused(f"dataset '{name}' is a virtual dataset that maps other files")
    if ds.external:
        raise _Refused(f"dataset '{name}' keeps its data in external files")
    for i in range(plist.get_nfilters()):
        code, _flags, _values, fname = plist.get_filter(i)
        if code not in ALLOWED_FILTERS:
            label = fname.decode("ascii", "replace") if isinstance(fname, bytes) else str(fname)
            raise _Refused(
                f"dataset '{name}' uses the compression filter {code} ({label or 'unknown'}); "
                f"only {', '.join(sorted(ALLOWED_FILTERS.values()))} are accepted"
            )
    dtype = np.dtype(ds.dtype)
    if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(
            f"dataset '{name}' has the data type {dtype}; only integer and floating-point "
            "numbers are accepted"
        )
    if len(ds.shape) > 2:
        raise _Refused(f"dataset '{name}' has {len(ds.shape)} dimensions; at most 2 are accepted")
    if ds.chunks is not None:
        chunk_bytes = math.prod(ds.chunks) * dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            raise _Refused(
                f"dataset '{name}' is stored in chunks of {chunk_bytes} bytes; at most "
                f"{MAX_CHUNK_BYTES} are accepted (rewrite it with smaller chunks)"
            )
    return DatasetInfo(shape=tuple(int(x) for x in ds.shape), dtype=dtype.name)


def _read_all(name: str, ds: Any, info: DatasetInfo) -> None:
    """Read every element in slices, so damage shows here and memory stays small."""
    shape = info.shape
    try:
        if len(shape) == 0:
            ds[()]
            return
        rows = shape[0]
        per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
        if rows == 0 or per_row == 0:
            return
        step = max(1, _SLICE_ELEMENTS // per_row)
        buf = np.empty((min(step, rows), *shape[1:]), dtype=np.dtype(info.dtype))
        for a in range(0, rows, step):
            b = min(rows, a + step)
            ds.read_direct(buf, source_sel=np.s_[a:b], dest_sel=np.s_[0 : b - a])
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise _Refused(f"the data of dataset '{name}' is damaged or truncated ({exc})") from exc


def _inspect_in_child(path: Path, quota_bytes: int) -> dict[str, DatasetInfo]:
    import h5py

    # No filter plugin may ever be loaded from anywhere.
    while h5py.h5pl.size() > 0:
        h5py.h5pl.remove(0)

    if not _has_signature(path):
        raise _Refused("the file is not an HDF5 file (the HDF5 signature is missing)")
    try:
        f = h5py.File(path, "r", locking=False)
    except (OSError, ValueError) as exc:
        raise _Refused(f"the file is not a valid HDF5 file or is damaged ({exc})") from exc
    with f:
        links: list[tuple[str, Any]] = []
        try:
            f.visititems_links(lambda n, link: links.append((n, link)))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise _Refused(f"the structure of the file is damaged ({exc})") from exc
        datasets: dict[str, DatasetInfo] = {}
        handles: dict[str, Any] = {}
        soft: list[tuple[str, str]] = []
        for name, link in links:
            if isinstance(link, h5py.ExternalLink):
                raise _Refused(
                    f"'{name}' is an external link to another file "
                    f"({str(link.filename).replace(chr(92), '/').rsplit('/', 1)[-1][:100]!r}); "
                    "external links are not accepted"
                )
            if isinstance(link, h5py.SoftLink):
                soft.append((name, link.path))
                continue
            if not isinstance(link, h5py.HardLink):
                raise _Refused(f"'{name}' is a link of an unsupported kind")
            try:
                obj = f[name]
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise _Refused(f"object '{name}' is damaged ({exc})") from exc
            if isinstance(obj, h5py.Dataset):
                datasets[name] = _check_dataset(name, obj)
                handles[name] = obj
        for name, target in soft:
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            absolute = target if target.startswith("/") else f"{parent}/{target}"
            obj = _resolve_hard(f, absolute)
            if obj is None:
                raise _Refused(
                    f"'{name}' is a link to '{target}', which is not an object in this file"
                )
            if isinstance(obj, h5py.Dataset):
                key = _normalise_name(absolute)
                if key in datasets:
                    datasets[name] = datasets[key]
        declared = sum(
            math.prod(info.shape) * np.dtype(info.dtype).itemsize
            for name, info in datasets.items()
            if name in handles
        )
        if declared > quota_bytes:
            raise _Refused(
                f"the datasets declare {declared:,} bytes, more than the {quota_bytes:,} bytes "
                "allowed for this import (the storage quota, and at most a fixed multiple "
                "of the bytes uploaded: datasets that were never written still count)"
            )
        for name, ds in handles.items():
            _read_all(name, ds, datasets[name])
    return datasets


def _child_main(argv: list[str]) -> int:
    path = Path(argv[1])
    quota = int(argv[0])
    try:
        datasets = _inspect_in_child(path, quota)
    except _Refused as exc:
        message = str(exc).replace(str(path), "<file>")
        print(json.dumps({"ok": False, "error": message}))
        return _EXIT_REFUSED
    except MemoryError:
        print(
            json.dumps({"ok": False, "error": "checking the file needs more memory than allowed"})
        )
        return _EXIT_REFUSED
    out = {name: {"shape": list(i.shape), "dtype": i.dtype} for name, i in datasets.items()}
    print(json.dumps({"ok": True, "datasets": out}))
    return 0


# --------------------------------------------------------------------------- #
# Parent
# --------------------------------------------------------------------------- #


def _limits(memory_bytes: int, cpu_s: int) -> Any:
    def apply() -> None:
        # Runs in the child between fork and exec: only async-signal-safe-ish calls.
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        # An ignored signal stays ignored across exec: a write fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def _child_env() -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "PYTHONPATH": str(_REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HDF5_PLUGIN_PRELOAD": "::",
        "HDF5_USE_FILE_LOCKING": "FALSE",
        "LC_ALL": "C.UTF-8",
    }


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def inspect_hdf5(
    path: Path,
    *,
    display_name: str,
    quota_bytes: int,
    timeout_s: float = 60,
    memory_bytes: int = 2 << 30,
) -> dict[str, DatasetInfo]:
    """Validate ``path`` in a limited child process; return its datasets by name.

    Names are paths inside the file without a leading ``/`` (``"g/states1"``); soft
    links to checked datasets appear under their own names too. Raises
    ``InputError(..., file=display_name)`` for a refused, damaged or dangerous file.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise InputError("the file is missing", file=display_name)
    cmd = [
        sys.executable,
        "-B",
        "-m",
        "workers.core.hdf5_guard",
        str(int(quota_bytes)),
        str(path),
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            timeout=timeout_s,
            env=_child_env(),
            cwd=_REPO_ROOT,
            preexec_fn=_limits(int(memory_bytes), max(1, math.ceil(timeout_s))),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"could not be read safely: checking it took longer than {timeout_s:g} seconds",
            file=display_name,
        ) from None
    result = _last_json_line(proc.stdout)
    if proc.returncode == 0 and result and result.get("ok"):
        return {
            str(name): DatasetInfo(shape=tuple(int(x) for x in d["shape"]), dtype=str(d["dtype"]))
            for name, d in result["datasets"].items()
        }
    if proc.returncode == _EXIT_REFUSED and result and "error" in result:
        raise InputError(str(result["error"]), file=display_name)
    if proc.returncode < 0:
        why = f"the HDF5 reader was stopped by {_signal_name(proc.returncode)}"
        if proc.returncode in (-signal.SIGKILL, -signal.SIGXCPU):
            why += " (it used too much memory or time)"
        elif proc.returncode in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT):
            why += " (the file is malformed)"
    else:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        why = f"the HDF5 reader failed ({tail[0].replace(str(path), '<file>')[:300]})"
    raise InputError(f"could not be read safely: {why}", file=display_name)


def _last_json_line(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


class ValidatedHdf5:
    """An HDF5 file that passed :func:`inspect_hdf5`, opened read-only in this process.

    Datasets are looked up through hard links only, so nothing beyond what the
    check saw can be reached.
    """

    def __init__(self, path: Path, *, display_name: str | None = None) -> None:
        import h5py

        self.display_name = display_name or Path(path).name
        self._path = Path(path)
        self._fd: int | None = None
        self._file = h5py.File(path, "r", locking=False, rdcc_nbytes=_CHUNK_CACHE_BYTES)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _forget(self, offset: int, length: int) -> None:
        if not hasattr(os, "posix_fadvise"):
            return
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)

    def forget_rows(self, name: str, a: int, b: int) -> None:
        """Drop rows ``[a, b)`` of a contiguous dataset from the page cache: an
        import reads each byte once, and what it writes should stay cached
        instead (the new state set's first match reads it). Chunked datasets are
        left to :meth:`forget`."""
        ds = self.dataset(name)
        offset = ds.id.get_offset() if ds.chunks is None else None
        if offset is None or b <= a:
            return
        row_bytes = math.prod(ds.shape[1:]) * np.dtype(ds.dtype).itemsize
        self._forget(int(offset) + a * row_bytes, (b - a) * row_bytes)

    def forget(self) -> None:
        """Drop the whole file from the page cache (see :meth:`forget_rows`)."""
        self._forget(0, 0)

    def dataset(self, name: str) -> Any:
        import h5py

        obj = _resolve_hard(self._file, _resolve_soft_name(self._file, name))
        if not isinstance(obj, h5py.Dataset):
            raise InputError(f"there is no dataset '{name}'", file=self.display_name)
        return obj

    def rows(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows ``[a, b)`` of a 1-D or 2-D dataset as a new array."""
        ds = self.dataset(name)
        out: np.ndarray = np.asarray(ds[a:b])
        return out

    def rows_into(self, name: str, a: int, b: int, out: np.ndarray) -> np.ndarray:
        """Rows ``[a, b)`` of a 2-D dataset as float32, read into ``out[: b - a]``
        (returned): a float32 dataset straight from the file, without a new array
        per call; any other dtype through numpy's conversion, as :meth:`rows`."""
        ds = self.dataset(name)
        view = out[: b - a]
        if np.dtype(ds.dtype) == np.float32 and view.flags.c_contiguous:
            if b > a:
                ds.read_direct(view, source_sel=np.s_[a:b], dest_sel=np.s_[0 : b - a])
        else:
            view[...] = np.asarray(ds[a:b])
        return view

    def read(self, name: str) -> np.ndarray:
        ds = self.dataset(name)
        out: np.ndarray = np.asarray(ds[()])
        return out


def _resolve_soft_name(f: Any, name: str) -> str:
    """Follow one level of soft link (checked by the child) to its hard path."""
    import h5py

    norm = _normalise_name(name)
    parent, _, leaf = norm.rpartition("/")
    grp = _resolve_hard(f, parent) if parent else f
    if not isinstance(grp, h5py.Group) or not leaf:
        return norm
    link = grp.get(leaf, getlink=True)
    if isinstance(link, h5py.SoftLink):
        target = str(link.path)
        return _normalise_name(target if target.startswith("/") else f"{parent}/{target}")
    return norm


def read_dataset_rows(path: Path, dataset: str, a: int, b: int) -> np.ndarray:
    """Rows ``[a, b)`` of ``dataset`` in a file that already passed :func:`inspect_hdf5`."""
    with ValidatedHdf5(path) as h5:
        return h5.rows(dataset, a, b)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
