from django.contrib import admin

from .models import StateSet


@admin.register(StateSet)
class StateSetAdmin(admin.ModelAdmin[StateSet]):
    list_display = ["name", "project", "origin", "length", "size_bytes", "created_by", "created_at"]
    list_filter = ["origin"]
    search_fields = ["name", "project__slug"]
    readonly_fields = ["id", "path", "manifest", "length", "size_bytes", "created_at"]
