"""The user admin, with what staff look up about a user: their limits and storage,
and links to their recent events and their quota row.

The quota and event pages belong to apps above this one; they are reached by admin
URL names and the user's reverse relation (`user.quota`), never by import.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from backend.core.quota import human_bytes, storage_used, user_limits

from .models import User

# The admin lists of events kept per user (by plain user id, so they outlive the user).
EVENT_LISTS = (
    ("admin:usage_usageevent_changelist", "API requests"),
    ("admin:usage_researchevent_changelist", "research events"),
)


def _url(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


@admin.register(User)
class StateLabUserAdmin(UserAdmin[User]):
    readonly_fields = [*UserAdmin.readonly_fields, "limits", "recent_events"]
    fieldsets = [
        *(UserAdmin.fieldsets or []),
        ("Limits and activity", {"fields": ["limits", "recent_events"]}),
    ]

    @admin.display(description="limits")
    def limits(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        limits = user_limits(obj)
        own = getattr(obj, "quota", None)  # a UserQuota row, when staff gave one
        link = (
            _url("admin:projects_userquota_change", own.pk)
            if own is not None
            else (_url("admin:projects_userquota_add") or "") + f"?user={obj.pk}"
        )
        return format_html(
            'stores {} of {}; {} jobs at once; {} per upload (<a href="{}">{}</a>)',
            human_bytes(storage_used(obj)),
            human_bytes(limits.storage_bytes),
            limits.active_jobs,
            human_bytes(limits.upload_bytes),
            link,
            "change this user's limits" if own is not None else "give this user own limits",
        )

    @admin.display(description="recent events")
    def recent_events(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        links = [
            (f"{url}?user_id={obj.pk}", label)
            for name, label in EVENT_LISTS
            if (url := _url(name)) is not None
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links) or "-"
