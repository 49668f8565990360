"""The job admin: read every job, and retry or cancel the selected ones through the
job services (`job_retry`, `job_cancel`), as the API would; and the workers'
heartbeats, as `/healthz` sees them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from backend.core.errors import ApplicationError

from .models import Job, WorkerHeartbeat
from .services import job_cancel, job_retry


def _each(
    admin_: admin.ModelAdmin[Job],
    request: HttpRequest,
    jobs: QuerySet[Job],
    act: str,
) -> None:
    """Apply `job_retry` or `job_cancel` to each job; report what was done and, for
    each job refused, why."""
    service = job_retry if act == "retry" else job_cancel
    done = 0
    for job in jobs.select_related("project"):
        try:
            service(job=job)
            done += 1
        except ApplicationError as exc:
            admin_.message_user(request, f"{job.kind} {job.id}: {exc.message}", messages.WARNING)
    verb = "queued again" if act == "retry" else "cancelled"
    if done:
        admin_.message_user(request, f"{done} job{'s' if done != 1 else ''} {verb}.")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin[Job]):
    list_display = [
        "id",
        "kind",
        "project",
        "created_by",
        "status",
        "progress",
        "attempts",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["id", "project__slug", "created_by__username", "error"]
    readonly_fields = [f.name for f in Job._meta.fields]
    actions = ["retry_jobs", "cancel_jobs"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Retry the selected failed or cancelled jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _each(self, request, queryset, "retry")

    @admin.action(description="Cancel the selected queued or running jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _each(self, request, queryset, "cancel")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin[WorkerHeartbeat]):
    """Workers seen in the last day; read-only (the workers write these rows)."""

    list_display = ["name", "pid", "queues", "seen_at", "alive", "stopped_at", "started_at"]
    readonly_fields = [f.name for f in WorkerHeartbeat._meta.fields]

    @admin.display(boolean=True, description="alive")
    def alive(self, obj: WorkerHeartbeat) -> bool:
        return obj.alive_at(timezone.now())

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
