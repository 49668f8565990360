"""The Match row: one stored answer per (state set, query), reused by identical queries.

A state set never changes once published, so a match result stays true for as long
as its state set exists; deleting the state set deletes its matches. The row is
created when a query is first asked (``pending``, with the job that computes it)
and holds the merged engine answer once that job is done. ``cache_key`` is the
engine's own cache key for (source, query), a SHA-256 of the canonical query, so
equal queries meet on one row whatever order their fields came in.

Rows do not stay forever: ``services.match_store_evict`` removes done results that
no saved hypothesis pins (``pinned_by``, from ``hypotheses.HypothesisVersion.match``)
once they have gone unused long enough or the store is over its size budget;
``last_used_at`` and ``result_bytes`` are what it goes by.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class MatchStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"


class Match(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stateset = models.ForeignKey(
        "states.StateSet", on_delete=models.CASCADE, related_name="matches"
    )
    source = models.CharField(max_length=128)
    cache_key = models.CharField(max_length=64)
    query = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=MatchStatus.choices, default=MatchStatus.PENDING
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The merged engine answer (`codec.result_row`: hits, sparse histograms, counts) and
    # a few of its facts as columns.
    result = models.JSONField(default=dict)
    exact = models.BooleanField(default=True)
    unscored = models.BigIntegerField(default=0)
    candidates = models.BigIntegerField(default=0)
    hit_count = models.PositiveIntegerField(default=0)
    shards = models.PositiveIntegerField(default=1)
    shards_done = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)  # engine time, summed over shards
    # The size of `result` as compact JSON text (UTF-8 bytes), set when it is recorded:
    # what the match store's size budget counts.
    result_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_used_at"]
        constraints = [
            models.UniqueConstraint(fields=["stateset", "cache_key"], name="one_match_per_query")
        ]
        indexes = [
            models.Index(fields=["stateset", "-last_used_at"]),
            # The eviction's order: done rows, least recently used first.
            models.Index(fields=["status", "last_used_at"], name="match_status_last_used"),
        ]
        verbose_name_plural = "matches"

    def __str__(self) -> str:
        return f"match {self.id} on {self.stateset_id} ({self.status})"


class ShardStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class MatchShard(models.Model):
    """One token range of a sharded match job: which worker took it, when, how often.

    Written when the job fans out (``queued``), when a worker starts the shard
    (``running``, its node name, attempts + 1, and the chord it belongs to) and when
    it has matched it (``done``). The partial answer itself travels in the chord's
    result backend; this row is what the job sweep reads to send again a shard whose
    worker died (its heartbeat is gone) and what the job's result and the admin show
    (shards per worker). Rows go with their job.
    """

    match = models.ForeignKey(Match, on_delete=models.CASCADE, related_name="shard_rows")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="+")
    index = models.PositiveIntegerField()
    start = models.BigIntegerField()
    end = models.BigIntegerField()  # exclusive
    queue = models.CharField(max_length=10, default="cpu")
    status = models.CharField(
        max_length=10, choices=ShardStatus.choices, default=ShardStatus.QUEUED
    )
    worker = models.CharField(max_length=200, blank=True, default="")  # Celery node name
    attempts = models.PositiveIntegerField(default=0)
    # The chord this shard reports to (its group id, and the callback's signature): a
    # shard sent again must count in the same chord.
    group_id = models.CharField(max_length=64, blank=True, default="")
    chord = models.JSONField(default=dict, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)  # engine time of the last run

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="one_row_per_match_shard")
        ]
        indexes = [models.Index(fields=["status", "started_at"], name="match_shard_status")]

    def __str__(self) -> str:
        return f"shard {self.index} of job {self.job_id} ({self.status}, {self.worker or '-'})"
