"""Quotas: storage per user and per project, active jobs per user, size of one upload.

The limits are database rows that staff edit in the admin (`backend/projects`:
the lab's defaults, a user's own limits, a project's own limit), each falling back
to a setting; this bottom-floor module knows neither those rows nor what is stored.
The projects app registers how to read a limit (`quota_limits_register`), and each
app that stores bytes registers how to count them (`storage_counter_register`, from
the app's `ready()`): a counter is called with `created_by=user` for a user's use
and with `project=project` for a project's. State sets, corpora, language models
and uploads waiting for their job all count, against the user who made them and
the project that holds them.

Every refusal is an `ApplicationError` whose message names the limit and the
current use (and whose `details` carry both in bytes): 413 for storage and upload
size (`quota_exceeded`, `too_large`), 429 for too many active jobs (`jobs.services`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from workers.core.files import dir_size

from .errors import ApplicationError

__all__ = [
    "UserLimits",
    "dir_size",
    "human_bytes",
    "project_storage_limit",
    "project_storage_used",
    "quota_limits_register",
    "storage_check",
    "storage_counter_register",
    "storage_remaining",
    "storage_used",
    "upload_check",
    "user_limits",
]


@dataclass(frozen=True)
class UserLimits:
    """What one user may use: bytes stored, jobs queued or running, bytes in one upload."""

    storage_bytes: int
    active_jobs: int
    upload_bytes: int


# name -> function(**where) -> bytes stored in that kind of object, `where` being
# {"created_by": user} or {"project": project}.
_COUNTERS: dict[str, Callable[..., int]] = {}
_USER_LIMITS: list[Callable[[Any], UserLimits]] = []
_PROJECT_LIMIT: list[Callable[[Any], int]] = []


def storage_counter_register(name: str, count: Callable[..., int]) -> None:
    """Make `count(created_by=user)` part of every user's storage use and
    `count(project=project)` part of every project's (idempotent per name)."""
    _COUNTERS[name] = count


def quota_limits_register(
    *, user: Callable[[Any], UserLimits], project: Callable[[Any], int]
) -> None:
    """Read limits through `user(user_or_None)` and `project(project)` (the rows staff
    edit) instead of the settings alone (idempotent: the last registration wins)."""
    _USER_LIMITS[:] = [user]
    _PROJECT_LIMIT[:] = [project]


def default_user_limits() -> UserLimits:
    """The limits the settings give, when no row says otherwise."""
    return UserLimits(
        storage_bytes=int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES),
        active_jobs=int(settings.STATELAB_MAX_ACTIVE_JOBS_PER_USER),
        upload_bytes=int(settings.STATELAB_UPLOAD_MAX_BYTES),
    )


def user_limits(user: Any | None) -> UserLimits:
    """The limits of `user` (the lab's defaults for None: a script's or the demo's)."""
    if _USER_LIMITS:
        return _USER_LIMITS[0](user)
    return default_user_limits()


def project_storage_limit(project: Any) -> int:
    if _PROJECT_LIMIT:
        return int(_PROJECT_LIMIT[0](project))
    return int(settings.STATELAB_PROJECT_STORAGE_QUOTA_BYTES)


def storage_used(user: Any) -> int:
    """Bytes stored by objects `user` made."""
    return int(sum(count(created_by=user) for count in _COUNTERS.values()))


def project_storage_used(project: Any) -> int:
    """Bytes stored by the objects of `project`, whoever made them."""
    return int(sum(count(project=project) for count in _COUNTERS.values()))


def human_bytes(n: int) -> str:
    """`n` bytes for a person: "1,000 bytes", "3.4 MB", "100.00 GB" (units of 1024)."""
    n = int(n)
    if abs(n) < 1 << 10:
        return f"{n:,} byte" + ("" if abs(n) == 1 else "s")
    for unit, shift, digits in (("KB", 10, 1), ("MB", 20, 1), ("GB", 30, 2)):
        if abs(n) < 1 << (shift + 10):
            return f"{n / (1 << shift):.{digits}f} {unit}"
    return f"{n / (1 << 40):.2f} TB"


def storage_remaining(user: Any | None, *, project: Any | None = None) -> int:
    """Bytes `user` may still store (in `project`, when given: the smaller of both)."""
    left = user_limits(user).storage_bytes
    if user is not None:
        left -= storage_used(user)
    if project is not None:
        left = min(left, project_storage_limit(project) - project_storage_used(project))
    return max(left, 0)


def _needs(adding: int) -> str:
    return f"This needs {human_bytes(adding)} more" if adding > 0 else "Nothing more fits"


def storage_check(user: Any | None, adding: int, *, project: Any | None = None) -> None:
    """Refuse `adding` more bytes for `user` (and in `project`, when given) when that
    would pass the user's storage quota or the project's."""
    adding = int(adding)
    if user is not None:
        quota = user_limits(user).storage_bytes
        used = storage_used(user)
        if used + adding > quota:
            raise ApplicationError(
                f"{_needs(adding)}: over your storage quota of {human_bytes(quota)} "
                f"(you use {human_bytes(used)}). Delete state sets, corpora or models "
                "you no longer need, or ask an administrator for a larger quota.",
                code="quota_exceeded",
                status_code=413,
                details=_details("user_storage", quota, used, adding),
            )
    if project is not None:
        quota = project_storage_limit(project)
        used = project_storage_used(project)
        if used + adding > quota:
            raise ApplicationError(
                f"{_needs(adding)}: over the storage quota of project '{project}' of "
                f"{human_bytes(quota)} (it stores {human_bytes(used)}). Delete state "
                "sets, corpora or models it no longer needs, or ask an administrator "
                "for a larger quota.",
                code="quota_exceeded",
                status_code=413,
                details=_details("project_storage", quota, used, adding),
            )


def upload_check(user: Any | None, size: int, *, what: str = "upload", more: bool = False) -> None:
    """Refuse one upload of `size` bytes (`more`: at least that many) over the user's
    limit for one upload."""
    cap = user_limits(user).upload_bytes
    if int(size) > cap:
        shown = human_bytes(size) + (" or more" if more else "")
        raise ApplicationError(
            f"The {what} ({shown}) is larger than the limit of {human_bytes(cap)} for one upload.",
            code="too_large",
            status_code=413,
            details={"limit": "upload", "quota_bytes": cap, "size_bytes": int(size)},
        )


def _details(limit: str, quota: int, used: int, adding: int) -> dict[str, Any]:
    return {"limit": limit, "quota_bytes": quota, "used_bytes": used, "adding_bytes": adding}
