from django.contrib import admin

from .models import Ranking


@admin.register(Ranking)
class RankingAdmin(admin.ModelAdmin[Ranking]):
    list_display = [
        "id",
        "stateset",
        "source",
        "annotation",
        "label",
        "measure",
        "n",
        "created_by",
        "created_at",
    ]
    list_filter = ["measure"]
    search_fields = ["id", "stateset__name", "stateset__project__slug", "annotation"]
    readonly_fields = [f.name for f in Ranking._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
