"""The Ranking row: every cell of a source ranked against an annotation track.

The app holds what a lab learns about its cells; for now that is rankings (saved
hypotheses come later). A ranking is computed once per (state set, source,
annotation, label) by a job and kept as long as its state set: deleting the
state set deletes its rankings. A state set changes only when an annotation track
is added or replaced, which bumps its ``revision``; a ranking records the revision
it was computed on and is reused only while the state set still has it.
"""

import uuid

from django.conf import settings
from django.db import models


class Ranking(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stateset = models.ForeignKey(
        "states.StateSet", on_delete=models.CASCADE, related_name="rankings"
    )
    source = models.CharField(max_length=128)
    annotation = models.CharField(max_length=128)
    # The label of a discrete track; "" for a scalar track (the API says null).
    label = models.CharField(max_length=1000, blank=True, default="")
    revision = models.PositiveIntegerField(default=0)
    measure = models.CharField(max_length=16)  # "auroc" (discrete) or "pearson" (scalar)
    # {"cells": [{"cell", "auroc"} | {"cell", "pearson", "spearman"}, ...]}, best first,
    # as `workers.core.ranking.Ranking.cells`.
    result = models.JSONField(default=dict)
    n = models.BigIntegerField(default=0)
    error_bound = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["stateset", "source", "annotation", "label"])]

    def __str__(self) -> str:
        label = f"={self.label}" if self.label else ""
        return f"ranking {self.id}: {self.source} vs {self.annotation}{label}"
