from django.contrib import admin

from .models import Membership, Project


class MembershipInline(admin.TabularInline[Membership, Project]):
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ["slug", "name", "public", "created_at"]
    list_filter = ["public"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
