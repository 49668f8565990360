"""Durable, atomic writes: a reader finds a file or folder complete, or not at all.

Every writer in the core follows one recipe: write to a temporary name in the
same directory as the final path (``.tmp-<name>-<random>``; the same directory
keeps the rename on one filesystem), fsync what was written, ``os.replace`` (a
file) or ``os.rename`` (a folder) it onto the final name, then fsync the parent
directory so that the rename itself survives a crash. A writer that fails
removes its temporary name; a writer that is killed leaves only a ``.tmp-``
name, never a partial file under the final one, and :func:`remove_stale_temp_dirs`
sweeps such folders once they are old enough.

* :func:`atomic_file` (and :func:`write_bytes_atomic`, :func:`write_json_atomic`)
  replaces one file;
* :func:`atomic_dir` (:func:`make_temp_dir` + :func:`publish_dir`) publishes a
  whole folder that must not exist yet; the files written inside it need only
  be fsynced (:func:`write_json_synced`, :func:`save_npy_synced`,
  :func:`fsync_tree`), as nobody sees them before the rename;
* the match and search indexes replace an older index of their own and publish
  with their own rules (``match_index``, ``search``) from the same parts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

import numpy as np

__all__ = [
    "TEMP_PREFIX",
    "atomic_dir",
    "atomic_file",
    "fsync_path",
    "fsync_tree",
    "make_temp_dir",
    "publish_dir",
    "remove_stale_temp_dirs",
    "save_npy_synced",
    "temp_sibling",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_json_synced",
]

# The prefix of every temporary name; sweeping relies on it.
TEMP_PREFIX = ".tmp-"


def temp_sibling(final: Path, *, unique: bool = True) -> Path:
    """The temporary name for ``final``, beside it: ``.tmp-<name>-<random>``.

    With ``unique=False`` the name is the fixed ``.tmp-<name>``: for a path that
    only one writer ever writes, whose next attempt then overwrites what a killed
    one left.
    """
    final = Path(final)
    suffix = f"-{secrets.token_hex(6)}" if unique else ""
    return final.parent / f"{TEMP_PREFIX}{final.name}{suffix}"


# --------------------------------------------------------------------------- #
# fsync
# --------------------------------------------------------------------------- #


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root``, directories after their files."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


# --------------------------------------------------------------------------- #
# Files inside a folder that is published as a whole
# --------------------------------------------------------------------------- #


def write_json_synced(path: Path, data: Any) -> None:
    """Write ``data`` as UTF-8 JSON (no NaN) to ``path`` in place and fsync it.

    Not atomic by itself: for files inside a temporary folder (:func:`atomic_dir`).
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def save_npy_synced(path: Path, arr: np.ndarray) -> None:
    """``np.save`` (no pickles) to ``path`` in place and fsync it; see :func:`write_json_synced`."""
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------- #
# One file
# --------------------------------------------------------------------------- #


@overload
def atomic_file(
    path: Path,
    mode: Literal["wb"] = "wb",
    *,
    encoding: None = None,
    unique_temp: bool = True,
) -> AbstractContextManager[BinaryIO]: ...


@overload
def atomic_file(
    path: Path,
    mode: Literal["w"],
    *,
    encoding: str = "utf-8",
    unique_temp: bool = True,
) -> AbstractContextManager[TextIO]: ...


def atomic_file(
    path: Path,
    mode: Literal["wb", "w"] = "wb",
    *,
    encoding: str | None = None,
    unique_temp: bool = True,
) -> AbstractContextManager[IO[Any]]:
    """Replace the file at ``path`` atomically with what is written in the block.

    ``with atomic_file(path) as fh: fh.write(...)`` writes to a temporary name
    beside ``path`` (:func:`temp_sibling`; ``unique_temp=False`` for the fixed
    name); when the block ends normally the file is flushed, fsynced and
    renamed onto ``path`` (replacing what was there), and the directory is
    fsynced. When the block raises (anything, ``Cancelled`` and
    ``KeyboardInterrupt`` too) the temporary file is removed and ``path`` keeps
    what it had, so a caller may write a stream of chunks and give up half-way.
    ``mode`` is ``"wb"`` (a binary file) or ``"w"`` (text, ``encoding``
    UTF-8 unless given).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_file writes with mode 'wb' or 'w', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    return _atomic_file(Path(path), mode, encoding, unique_temp)


@contextmanager
def _atomic_file(
    path: Path, mode: str, encoding: str | None, unique_temp: bool
) -> Iterator[IO[Any]]:
    tmp = temp_sibling(path, unique=unique_temp)
    try:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (:func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as UTF-8 JSON (no NaN), atomically."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    write_bytes_atomic(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- #
# A whole folder
# --------------------------------------------------------------------------- #


def make_temp_dir(final_dir: Path) -> Path:
    """Create and return a fresh temporary folder beside ``final_dir`` (and its parent)."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final_dir)
    tmp.mkdir()
    return tmp


def publish_dir(tmp: Path, final_dir: Path) -> None:
    """Move a fully written temporary folder onto ``final_dir`` (which must not exist).

    Everything under ``tmp`` is fsynced first and the parent after the rename.
    """
    fsync_tree(tmp)
    if final_dir.exists() or final_dir.is_symlink():
        raise FileExistsError(f"{final_dir} already exists")
    # rename(2) of a directory refuses a non-empty target, so a concurrent writer
    # that got there first makes this fail instead of being overwritten.
    os.rename(tmp, final_dir)
    fsync_path(final_dir.parent)


@contextmanager
def atomic_dir(final_dir: Path) -> Iterator[Path]:
    """``with atomic_dir(final) as tmp:`` fill ``tmp``; it becomes ``final`` at the end.

    ``final_dir`` must not exist (:func:`publish_dir`); when the block raises,
    ``tmp`` is removed and nothing appears at ``final_dir``.
    """
    tmp = make_temp_dir(final_dir)
    try:
        yield tmp
        publish_dir(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temp_dirs(parent: Path, *, older_than_s: float = 24 * 3600) -> list[Path]:
    """Delete ``.tmp-*`` directories under ``parent`` left by killed writers.

    Only directories untouched for ``older_than_s`` seconds go, so a writer that
    is still running keeps its temp dir. Returns what was removed.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for entry in parent.iterdir():
        if (
            entry.name.startswith(TEMP_PREFIX)
            and entry.is_dir()
            and not entry.is_symlink()
            and entry.stat().st_mtime < cutoff
        ):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
