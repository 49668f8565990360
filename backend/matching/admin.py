from django.contrib import admin

from .models import Match, MatchShard


class MatchShardInline(admin.TabularInline[MatchShard, Match]):
    """The shards of a sharded match: which worker matched which token range."""

    model = MatchShard
    fields = ("index", "start", "end", "status", "worker", "attempts", "seconds", "started_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Match)
class MatchAdmin(admin.ModelAdmin[Match]):
    inlines = [MatchShardInline]
    list_display = [
        "id",
        "stateset",
        "source",
        "status",
        "hit_count",
        "exact",
        "shards",
        "seconds",
        "result_bytes",
        "created_by",
        "last_used_at",
    ]
    list_filter = ["status", "exact"]
    search_fields = ["id", "stateset__name", "stateset__project__slug", "cache_key"]
    readonly_fields = [f.name for f in Match._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
