"""Facts about stored files that several writers record: a folder's size on disk (what
counts against a storage quota) and a file's SHA-256 (read in 1 MiB blocks, so a
multi-GB weights file never sits in memory)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["dir_size", "sha256_file"]


def dir_size(path: Path) -> int:
    """Bytes of every regular file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
