"""Per-user storage quota, kept in the database.

Each app that stores bytes for a user registers how to count them
(`storage_counter_register`, called from the app's `ready()`), so this bottom-floor
module knows no domain model: state sets, corpora, language models and uploads
waiting for their job all count against the user who made them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from workers.core.files import dir_size

from .errors import ApplicationError

__all__ = [
    "dir_size",
    "storage_check",
    "storage_counter_register",
    "storage_remaining",
    "storage_used",
]

# name -> function(user) -> bytes that user stores in that kind of object.
_COUNTERS: dict[str, Callable[[Any], int]] = {}


def storage_counter_register(name: str, count: Callable[[Any], int]) -> None:
    """Make `count(user)` part of every user's storage use (idempotent per name)."""
    _COUNTERS[name] = count


def storage_used(user: Any) -> int:
    return int(sum(count(user) for count in _COUNTERS.values()))


def _gb(n: int) -> str:
    return f"{n / (1 << 30):.2f} GB"


def storage_remaining(user: Any | None) -> int:
    if user is None:
        return int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES)
    return max(int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES) - storage_used(user), 0)


def storage_check(user: Any | None, adding: int) -> None:
    """Refuse `adding` more bytes for `user` when that would pass the quota."""
    if user is None:
        return
    quota = int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES)
    used = storage_used(user)
    if used + adding > quota:
        raise ApplicationError(
            f"This needs {_gb(adding)} more, over your storage quota of {_gb(quota)} "
            f"(you use {_gb(used)}). Delete state sets, corpora or models you no longer need.",
            code="quota_exceeded",
            status_code=413,
        )
