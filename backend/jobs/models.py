"""The Job row: kind, owner, project, status, progress with a message, attempts, lease, error.

The UI and the API read progress from here, never from Celery's result backend.
A partial unique constraint on (project, kind, dedupe_key) over active jobs makes
twenty identical requests at once create one job.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=40)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    params = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    # What a running job shows besides its progress, e.g. a training job's
    # {"curve": [{"step", "epoch", "tokens", "loss", "perplexity", "split"}, ...]}.
    detail = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    lease_until = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    dedupe_key = models.CharField(max_length=128, blank=True, default="")
    # When the job's task last reached the broker; null while it never did (the
    # broker was down): the periodic sweep (`jobs_resend`) sends it then.
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["status", "sent_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "dedupe_key"],
                condition=Q(status__in=["queued", "running"]) & ~Q(dedupe_key=""),
                name="one_active_job_per_dedupe_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"


class WorkerHeartbeat(models.Model):
    """A Celery worker's last sign of life, written by its background thread every
    `STATELAB_WORKER_HEARTBEAT_S` seconds (`jobs.tasks`) and read by `/healthz`. A
    worker is gone once its heartbeat is older than `STATELAB_WORKER_GONE_S`, or at
    once when it stopped cleanly (`stopped_at`). Rows a day old are removed."""

    name = models.CharField(max_length=200, primary_key=True)  # Celery's node name: cpu@host
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def alive_at(self, now: datetime) -> bool:
        """Whether the worker counts as alive at `now`: not stopped, and its heartbeat
        no older than `STATELAB_WORKER_GONE_S`."""
        gone_after = timedelta(seconds=float(settings.STATELAB_WORKER_GONE_S))
        return self.stopped_at is None and now - self.seen_at <= gone_after
