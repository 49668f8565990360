"""Where things live on disk. A user's file name never becomes a path: every file and
folder is named by a generated id under the store root, and paths kept in the
database are relative to that root so the store can move.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from workers.core.atomic import atomic_file

from .errors import ApplicationError


def store_root() -> Path:
    root = Path(settings.STATELAB_STORE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def store_path(relative: str) -> Path:
    path = (store_root() / relative).resolve()
    if store_root().resolve() not in path.parents:
        raise ValueError(f"path {relative!r} leaves the store")
    return path


def store_delete_on_commit(relative: str) -> None:
    """Remove a stored file or folder once the transaction deleting its row commits
    (a rolled-back deletion keeps both)."""
    path = store_path(relative)
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


def new_dir(kind: str) -> tuple[str, Path]:
    """A fresh, not yet existing folder for a `kind` ("statesets", "corpora")."""
    (store_root() / kind).mkdir(parents=True, exist_ok=True)
    rel = f"{kind}/{uuid.uuid4().hex}"
    return rel, store_root() / rel


def save_stream(chunks: Any, *, suffix: str, max_bytes: int) -> tuple[str, int, str]:
    """Copy an upload into the store under a generated name, atomically.

    Returns (relative path, size, sha256). Refuses (and removes) anything over
    `max_bytes` while copying, so a lying Content-Length cannot fill the disk.
    """
    (store_root() / "uploads").mkdir(parents=True, exist_ok=True)
    rel = f"uploads/{uuid.uuid4().hex}{suffix}"
    digest = hashlib.sha256()
    size = 0
    # Over the limit half-way: the temporary file goes, nothing is left under `rel`.
    with atomic_file(store_root() / rel) as out:
        for chunk in iter_chunks(chunks):
            size += len(chunk)
            if size > max_bytes:
                raise ApplicationError(
                    f"The upload is larger than the limit of {max_bytes // (1 << 20)} MB.",
                    code="too_large",
                    status_code=413,
                )
            digest.update(chunk)
            out.write(chunk)
    return rel, size, digest.hexdigest()


def iter_chunks(source: Any) -> Iterator[bytes]:
    chunks = getattr(source, "chunks", None)
    if callable(chunks):
        yield from chunks(1 << 20)
        return
    read = getattr(source, "read")  # noqa: B009
    while True:
        block = read(1 << 20)
        if not block:
            return
        yield block


def work_dir(kind: str, job_id: uuid.UUID) -> Path:
    """A job's working folder, the same for every attempt of the job, so that a
    restarted job finds what an earlier attempt left (an extraction resumes there)."""
    path = store_root() / "work" / f"{kind}-{job_id.hex}"
    path.mkdir(parents=True, exist_ok=True)
    return path
