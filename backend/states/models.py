"""The StateSet row: a folder in the store plus its manifest, cached for fast listing."""

import uuid

from django.conf import settings
from django.db import models


class StateSet(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="statesets"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    origin = models.CharField(max_length=20, default="lstmvis")  # "lstmvis" | "extraction"
    corpus = models.ForeignKey(
        "artifacts.Corpus", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    length = models.BigIntegerField()
    path = models.CharField(max_length=255)  # relative to the store root, generated
    manifest = models.JSONField(default=dict)
    size_bytes = models.BigIntegerField(default=0)
    # Bumped whenever the folder changes (an annotation added), in the transaction
    # that records it: the per-process cache of opened stores is keyed by it.
    revision = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
