"""The cache every web process shares: rate-limit counts, login lockouts, marks.

Counts kept in one process's memory let a client that lands on several processes
try several times the limit, so the default cache is always a store outside the
process (`cache_settings`):

- `STATELAB_CACHE_URL=redis://host:port/db` (or `rediss://`): that Redis;
- unset, with a Redis broker (`CELERY_BROKER_URL=redis://...`): the broker's Redis,
  under the key prefix `STATELAB_CACHE_PREFIX`;
- unset, on the embedded default (no Redis): files under `var/cache/`, shared by the
  processes of one machine (`STATELAB_CACHE_URL=file:///path` names another folder).

Both backends below differ from Django's in one way each: `RedisCache.clear()`
removes only the keys under its prefix (the database may hold the broker's queues),
and `FileCache` makes `add()` and `incr()` atomic across processes, which login
lockouts rely on to count every failure.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.exceptions import ImproperlyConfigured
from django.core.files import locks

REDIS_SCHEMES = ("redis://", "rediss://")


def cache_settings(
    *, url: str, broker_url: str, var_dir: Path, prefix: str
) -> dict[str, dict[str, Any]]:
    """`CACHES` for the configured store (see the module's docstring)."""
    if not url and broker_url.startswith(REDIS_SCHEMES):
        url = broker_url
    if url.startswith(REDIS_SCHEMES):
        return {
            "default": {
                "BACKEND": "backend.core.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": prefix,
                # A Redis that does not answer is noticed within a second, as the
                # broker's is (CELERY_REDIS_SOCKET_CONNECT_TIMEOUT).
                "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
            }
        }
    if not url or url.startswith("file://"):
        folder = url[len("file://") :] if url else str(var_dir / "cache")
        if not Path(folder).is_absolute():
            raise ImproperlyConfigured(
                f"STATELAB_CACHE_URL must name an absolute folder (file:///path), not {url!r}."
            )
        return {
            "default": {
                "BACKEND": "backend.core.cache.FileCache",
                "LOCATION": folder,
                "KEY_PREFIX": prefix,
                # Django's default (300) would let a burst of new keys (login attempts
                # under many user names) push out the lockouts that are counting.
                "OPTIONS": {"MAX_ENTRIES": 100_000},
            }
        }
    raise ImproperlyConfigured(
        "STATELAB_CACHE_URL must be redis://..., rediss://... or file:///path; "
        "a cache inside each process would let every web process count logins on its own."
    )


class RedisCache(DjangoRedisCache):
    """Django's Redis cache whose `clear()` deletes only this cache's keys."""

    def clear(self) -> None:
        # Keys are "<prefix>:<version>:<key>" (Django's default KEY_FUNCTION).
        pattern = _glob_escape(self.key_prefix) + ":*"
        client = self._cache.get_client(None, write=True)  # type: ignore[attr-defined]
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class FileCache(FileBasedCache):
    """Django's file cache with `add()` and `incr()` done under a lock on the folder,
    so that two processes counting the same key never lose a count."""

    # Django's private helpers, which django-stubs does not declare.
    _dir: str

    def _createdir(self) -> None:
        super()._createdir()  # type: ignore[misc]

    def _key_to_file(self, key: str, version: Any = None) -> str:
        return str(super()._key_to_file(key, version))  # type: ignore[misc]

    def _folder_lock(self) -> contextlib.AbstractContextManager[None]:
        return _locked(Path(self._dir) / ".lock")

    def add(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        self._createdir()
        with self._folder_lock():
            return super().add(key, value, timeout, version)

    def incr(self, key: str, delta: int = 1, version: Any = None) -> Any:
        self._createdir()
        with self._folder_lock():
            fname = self._key_to_file(key, version)
            try:
                with open(fname, "rb") as f:
                    expiry = pickle.load(f)  # noqa: S301 - our own file, as in Django's backend
                    value = pickle.loads(zlib.decompress(f.read()))  # noqa: S301
            except FileNotFoundError:
                raise ValueError(f"Key '{key}' not found") from None
            now = time.time()
            if expiry is not None and expiry < now:
                raise ValueError(f"Key '{key}' not found")
            new_value = value + delta
            # Keeps the key's expiry (Django's incr() would restart it at the default).
            remaining = None if expiry is None else max(expiry - now, 0.001)
            self.set(key, new_value, remaining, version)
            return new_value


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with open(fd, "r+b") as f:
        locks.lock(f, locks.LOCK_EX)
        try:
            yield
        finally:
            locks.unlock(f)
