from typing import Any

from django.apps import AppConfig


class StatesConfig(AppConfig):
    name = "backend.states"
    label = "states"

    def ready(self) -> None:
        from django.db.models import Sum

        from backend.core.quota import storage_counter_register

        from .models import StateSet

        def stored(**where: Any) -> int:
            """Bytes of state sets of one user (`created_by=`) or one project (`project=`)."""
            qs = StateSet.objects.filter(**where)
            return int(qs.aggregate(n=Sum("size_bytes"))["n"] or 0)

        storage_counter_register("statesets", stored)

        from backend.artifacts.services import ResumableKind, resumable_kind_register

        from .services import import_resumable_check, import_resumable_start

        # An LSTMVis zip may also arrive in pieces (tus) and then imports as a small one.
        resumable_kind_register(
            ResumableKind(
                name="import",
                upload_kind="lstmvis_zip",
                suffix=".zip",
                what="uploaded file",
                check=import_resumable_check,
                start=import_resumable_start,
            )
        )
