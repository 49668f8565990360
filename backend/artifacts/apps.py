from typing import Any

from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    name = "backend.artifacts"
    label = "artifacts"

    def ready(self) -> None:
        from django.db.models import Sum

        from backend.core.quota import storage_counter_register

        from .models import Corpus, LanguageModel, Upload

        def stored(user: Any) -> int:
            total = 0
            for model in (Corpus, LanguageModel):
                total += (
                    model.objects.filter(created_by=user).aggregate(n=Sum("size_bytes"))["n"] or 0
                )
            waiting = Upload.objects.filter(created_by=user).exclude(path="")
            return int(total + (waiting.aggregate(n=Sum("size"))["n"] or 0))

        storage_counter_register("artifacts", stored)
