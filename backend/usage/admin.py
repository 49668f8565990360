from typing import Any

from django.contrib import admin

from .models import ResearchEvent, UsageEvent


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "method", "route", "project", "status", "duration_ms"]
    list_filter = ["method", "status"]
    search_fields = ["username", "route", "project"]


@admin.register(ResearchEvent)
class ResearchEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "kind", "project", "object_id"]
    list_filter = ["kind"]
    search_fields = ["username", "project", "object_id"]
