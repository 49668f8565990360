"""Per-user storage quota, kept in the database: state sets, corpora, language
models and uploads waiting for their job count against the user who made them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import Sum

from backend.accounts.models import User
from backend.config.api import ApplicationError


def storage_used(user: User) -> int:
    from backend.states.models import StateSet

    from .models import Corpus, LanguageModel, Upload

    total = 0
    for qs in (
        StateSet.objects.filter(created_by=user),
        Corpus.objects.filter(created_by=user),
        LanguageModel.objects.filter(created_by=user),
    ):
        total += qs.aggregate(n=Sum("size_bytes"))["n"] or 0
    total += (
        Upload.objects.filter(created_by=user).exclude(path="").aggregate(n=Sum("size"))["n"] or 0
    )
    return int(total)


def _gb(n: int) -> str:
    return f"{n / (1 << 30):.2f} GB"


def storage_remaining(user: User | None) -> int:
    if user is None:
        return int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES)
    return max(int(settings.STATELAB_USER_STORAGE_QUOTA_BYTES) - storage_used(user), 0)


def storage_check(user: User | None, adding: int) -> None:
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


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
