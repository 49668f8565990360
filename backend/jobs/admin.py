from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin[Job]):
    list_display = ["id", "kind", "project", "created_by", "status", "progress", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "project__slug", "created_by__username", "error"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
