from django.contrib import admin

from .models import Invitation, Membership, Project


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
