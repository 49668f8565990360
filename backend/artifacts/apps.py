from typing import Any

from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    name = "backend.artifacts"
    label = "artifacts"

    def ready(self) -> None:
        from django.db.models import Sum

        from backend.core.quota import storage_counter_register

        from .models import Corpus, LanguageModel, ResumableState, ResumableUpload, Upload

        def stored(**where: Any) -> int:
            """Bytes of corpora, models, uploads waiting for their job and the declared
            length of resumable uploads still arriving, of one user (`created_by=`) or
            one project (`project=`)."""
            total = 0
            for model in (Corpus, LanguageModel):
                total += model.objects.filter(**where).aggregate(n=Sum("size_bytes"))["n"] or 0
            waiting = Upload.objects.filter(**where).exclude(path="")
            total += waiting.aggregate(n=Sum("size"))["n"] or 0
            arriving = ResumableUpload.objects.filter(**where, state=ResumableState.RECEIVING)
            return int(total + (arriving.aggregate(n=Sum("length"))["n"] or 0))

        storage_counter_register("artifacts", stored)
