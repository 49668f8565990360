"""The admin of projects, invitations and quotas: the lab's default limits, a user's
and a project's own (docs/administration.md)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from backend.core.quota import human_bytes, project_storage_used, storage_used

from .models import Invitation, LabQuota, Membership, Project, ProjectQuota, UserQuota
from .selectors import quota_project_storage, quota_user_limits


class MembershipInline(admin.TabularInline[Membership, Project]):
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ["slug", "name", "public", "created_at"]
    list_filter = ["public"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    """Invitations waiting for their user; `user` empty: the name belonged to no one
    when it was sent, and no one can accept it."""

    list_display = ["username", "project", "role", "user", "invited_by", "created_at"]
    search_fields = ["username", "project__slug"]
    raw_id_fields = ["project", "user", "invited_by"]


_UNITS = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


class ByteSizeField(forms.CharField):
    """A number of bytes typed as "100 GB", "512 MB", "1.5 TB" or a plain number
    (units of 1024); blank means "not set here"."""

    def __init__(self, **kwargs: Any) -> None:
        for unused in ("max_value", "min_value", "step_size", "max_length"):
            kwargs.pop(unused, None)
        kwargs.setdefault("help_text", "")
        kwargs["help_text"] = (
            f"{kwargs['help_text']} Write 100 GB, 512 MB, 1.5 TB or a number of bytes."
        ).strip()
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int):
            for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
                if value and value % size == 0:
                    return f"{value // size} {unit}"
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = str(value or "").strip()
        if not text:
            return None
        found = _SIZE.match(text)
        unit = found.group(2).lower() if found else ""
        if found is None or unit not in _UNITS:
            raise forms.ValidationError(
                "Write a size such as 100 GB, 512 MB, 1.5 TB or a number of bytes."
            )
        return round(float(found.group(1)) * _UNITS[unit])


def _size(value: int | None) -> str:
    return "lab default" if value is None else human_bytes(value)


# Byte fields typed and shown as sizes ("100 GB").
SIZES: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.PositiveBigIntegerField: {"form_class": ByteSizeField}
}


@admin.register(LabQuota)
class LabQuotaAdmin(admin.ModelAdmin[LabQuota]):
    """The one row of the lab's default limits: the list opens it (or adds it)."""

    formfield_overrides = SIZES

    fields = ["user_storage_bytes", "project_storage_bytes", "active_jobs", "upload_bytes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not LabQuota.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if LabQuota.objects.filter(id=1).exists():
            return redirect("admin:projects_labquota_change", 1)
        return redirect("admin:projects_labquota_add")


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin[UserQuota]):
    """A user's own limits; the list shows what applies and what is in use."""

    formfield_overrides = SIZES

    list_display = ["user", "storage", "storage_in_use", "jobs", "upload", "updated_at"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
    fields = ["user", "storage_bytes", "active_jobs", "upload_bytes", "in_use"]
    readonly_fields = ["in_use"]

    @admin.display(description="storage")
    def storage(self, obj: UserQuota) -> str:
        return (
            f"{_size(obj.storage_bytes)} ({human_bytes(quota_user_limits(obj.user).storage_bytes)})"
        )

    @admin.display(description="stored now")
    def storage_in_use(self, obj: UserQuota) -> str:
        return human_bytes(storage_used(obj.user))

    @admin.display(description="jobs at once")
    def jobs(self, obj: UserQuota) -> str:
        applies = quota_user_limits(obj.user).active_jobs
        return f"{obj.active_jobs if obj.active_jobs is not None else 'lab default'} ({applies})"

    @admin.display(description="one upload")
    def upload(self, obj: UserQuota) -> str:
        return (
            f"{_size(obj.upload_bytes)} ({human_bytes(quota_user_limits(obj.user).upload_bytes)})"
        )

    @admin.display(description="in use now")
    def in_use(self, obj: UserQuota) -> str:
        if obj.pk is None or obj.user_id is None:
            return "-"
        limits = quota_user_limits(obj.user)
        active = obj.user.jobs.filter(status__in=["queued", "running"]).count()
        return (
            f"stores {human_bytes(storage_used(obj.user))} of {human_bytes(limits.storage_bytes)}; "
            f"{active} of {limits.active_jobs} jobs queued or running"
        )


@admin.register(ProjectQuota)
class ProjectQuotaAdmin(admin.ModelAdmin[ProjectQuota]):
    """A project's own storage limit; the list shows what applies and what it stores."""

    formfield_overrides = SIZES

    list_display = ["project", "storage", "stored", "updated_at"]
    search_fields = ["project__slug", "project__name"]
    raw_id_fields = ["project"]
    fields = ["project", "storage_bytes", "stored"]
    readonly_fields = ["stored"]

    @admin.display(description="storage")
    def storage(self, obj: ProjectQuota) -> str:
        return f"{_size(obj.storage_bytes)} ({human_bytes(quota_project_storage(obj.project))})"

    @admin.display(description="stored now")
    def stored(self, obj: ProjectQuota) -> str:
        if obj.pk is None:
            return "-"
        return human_bytes(project_storage_used(obj.project))
