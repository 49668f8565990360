"""Writes for jobs: create-and-enqueue, claim with a lease, progress, finish, cancel.

A task claims its job with a conditional update (`queued -> running`); zero rows
means another worker has it or it is finished, and the task does nothing. A job
whose lease ran out (its worker died) may be claimed again, a bounded number of
times. Every final failure leaves the job in a terminal state with a readable error.
"""

from __future__ import annotations

import logging
import shutil
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.events import event_emit
from backend.core.quota import user_limits
from backend.core.storage import store_root
from backend.projects.models import Project
from workers.core.atomic import remove_stale_temp_dirs
from workers.core.errors import Cancelled

from .models import ACTIVE, Job, JobStatus, WorkerHeartbeat
from .queue import celery_app

log = logging.getLogger(__name__)

GIVEN_UP = "The job's worker stopped repeatedly; it was given up."
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)

# kind -> (Celery task name, queue). Tasks are looked up by name so that this
# module does not import the task modules (and their heavy imports).
JOB_KINDS: dict[str, tuple[str, str]] = {
    "import_lstmvis": ("statelab.import_lstmvis", "cpu"),
    "import_lstmvis_dir": ("statelab.import_lstmvis_dir", "cpu"),
    "corpus_upload": ("statelab.corpus_upload", "cpu"),
    "model_upload": ("statelab.model_upload", "cpu"),
    "match": ("statelab.match", "cpu"),
    "index": ("statelab.index", "cpu"),
    "annotation_upload": ("statelab.annotation_upload", "cpu"),
    "ranking": ("statelab.ranking", "cpu"),
    "statistics": ("statelab.statistics", "cpu"),
    "extract": ("statelab.extract", "gpu"),
    "train": ("statelab.train", "gpu"),
}


def job_send(job_id: str, kind: str) -> None:
    """Send a committed job's task to its queue by name (never run it in the request).

    A broker that does not answer leaves the job queued with a message saying so and
    `sent_at` empty; every worker's periodic sweep (`jobs_resend`) sends it once the
    broker answers again, and a worker that starts does too (`jobs_requeue_stale`)."""
    app = celery_app()
    task_name, queue = JOB_KINDS[kind]
    if app.conf.task_always_eager:
        # Tests without a worker run the task here, after commit, as a worker would.
        app.loader.import_default_modules()
        app.tasks[task_name].apply(args=(job_id,))
        return
    try:
        # A job's outcome lives in its row, never in the result backend: sending with
        # ignore_result keeps the result backend (and its reconnect retries, 19 s when
        # Redis is down) out of the request. One quick retry covers a broker blip.
        app.send_task(
            task_name,
            args=[job_id],
            queue=queue,
            ignore_result=True,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.2},
        )
        Job.objects.filter(id=job_id).update(sent_at=timezone.now())
    except Exception:
        # The job row is committed; the request must not fail now, and nothing runs
        # inside it. A worker that starts sends waiting jobs again.
        log.exception("could not send job %s to the broker", job_id)
        Job.objects.filter(id=job_id).update(sent_at=None)
        Job.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
            updated_at=timezone.now(),
            message="Waiting: the job queue did not answer; the job is sent as soon as it does.",
        )


def job_create(
    *,
    kind: str,
    project: Project,
    user: User | None,
    params: dict[str, Any],
    dedupe_key: str = "",
    message: str = "Waiting for a worker",
) -> tuple[Job, bool]:
    """Create a job and enqueue it after commit. Returns (job, created).

    With a `dedupe_key`, an identical active job is returned instead of a new one.
    The caller's count of active jobs is checked under a lock on the user's row, so
    concurrent submissions cannot pass the per-user limit together; an identical job
    that ends while this one is inserted is retried past, never answered with a 500.
    """
    if kind not in JOB_KINDS:
        raise ApplicationError(f"Unknown job kind '{kind}'.")
    for _ in range(3):
        try:
            with transaction.atomic():
                existing = _active_duplicate(project, kind, dedupe_key)
                if existing is not None:
                    return existing, False
                if user is not None:
                    _active_jobs_check(user)
                job = Job.objects.create(
                    kind=kind,
                    project=project,
                    created_by=user,
                    params=params,
                    dedupe_key=dedupe_key,
                    message=message,
                    max_attempts=settings.STATELAB_JOB_MAX_ATTEMPTS,
                )
                transaction.on_commit(partial(job_send, str(job.id), job.kind))
            return job, True
        except IntegrityError:
            # An identical job was inserted meanwhile: share it, or, when it has
            # already ended, insert this one on the next round.
            existing = _active_duplicate(project, kind, dedupe_key)
            if existing is not None:
                return existing, False
    raise ApplicationError(
        "Identical requests kept colliding; ask again.", code="busy", status_code=409
    )


def _active_duplicate(project: Project, kind: str, dedupe_key: str) -> Job | None:
    if not dedupe_key:
        return None
    return Job.objects.filter(
        project=project, kind=kind, dedupe_key=dedupe_key, status__in=ACTIVE
    ).first()


def _active_jobs_check(user: User) -> None:
    """Refuse a job over the user's limit of active jobs. Locks the user's row first
    (inside the caller's transaction), so that the count and the insert that follows
    are one step for concurrent submissions of the same user."""
    # FOR NO KEY UPDATE: job_create calls of the same user wait for each other, while
    # rows that merely reference the user (their foreign-key checks) do not.
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    active = Job.objects.filter(created_by=user, status__in=ACTIVE).count()
    limit = user_limits(user).active_jobs
    if active >= limit:
        raise ApplicationError(
            f"You already have {active} jobs queued or running, and your limit is {limit} "
            "at once; wait for some to finish or cancel one.",
            code="too_many_jobs",
            status_code=429,
            details={"limit": "active_jobs", "quota": limit, "used": active},
        )


def lease_end() -> Any:
    return timezone.now() + timedelta(seconds=settings.STATELAB_JOB_LEASE_SECONDS)


def job_claim(*, job_id: str, worker: str | None = None) -> Job | None:
    """Claim a job for this worker, or None when it is not ours to run."""
    worker = worker or socket.gethostname()
    now = timezone.now()
    claimed = Job.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        updated_at=timezone.now(),
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        lease_until=lease_end(),
        worker=worker,
        started_at=now,
        message="Started.",
    )
    if not claimed:
        # A re-delivered task whose previous worker died: take over once its lease ran out.
        claimed = Job.objects.filter(
            Q(lease_until__lt=now) | Q(lease_until__isnull=True),
            id=job_id,
            status=JobStatus.RUNNING,
            attempts__lt=F("max_attempts"),
        ).update(
            updated_at=timezone.now(),
            attempts=F("attempts") + 1,
            lease_until=lease_end(),
            worker=worker,
            message="Restarted after an interruption.",
        )
    if not claimed:
        given_up = Job.objects.filter(
            Q(lease_until__lt=now),
            id=job_id,
            status=JobStatus.RUNNING,
            attempts__gte=F("max_attempts"),
        ).update(
            updated_at=timezone.now(),
            status=JobStatus.FAILED,
            error=GIVEN_UP,
            finished_at=now,
        )
        if given_up:
            job_work_remove(job_id)
            job_ended_emit(job_id, "job.failed")
        return None
    return Job.objects.get(id=job_id)


def job_progress(*, job: Job, fraction: float, message: str) -> None:
    """Record progress and renew the lease; raises Cancelled when the job was cancelled."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    updated = Job.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
        updated_at=timezone.now(), progress=fraction, message=message[:500], lease_until=lease_end()
    )
    if not updated:
        raise Cancelled(f"job {job.id} is no longer running")


def progress_reporter(job: Job, *, every_s: float = 0.5) -> Callable[[float, str], None]:
    """A ProgressFn for the compute core that writes at most every `every_s` seconds."""
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = timezone.now().timestamp()
        if now - last[0] >= every_s or fraction >= 1.0:
            last[0] = now
            job_progress(job=job, fraction=fraction, message=message)

    return report


def job_detail_set(*, job: Job, detail: dict[str, Any]) -> bool:
    """Replace what a running job shows besides its progress (e.g. a training curve).
    Returns False when the job is no longer running."""
    return bool(
        Job.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
            updated_at=timezone.now(), detail=detail
        )
    )


def job_ended_emit(job_id: Any, kind: str) -> None:
    """The research event of a job that ended (`job.finished`, `job.failed`,
    `job.cancelled`): its kind, how long it waited and ran, and its attempts, for
    the user who made it. Inside a transaction it is written once that commits."""
    row = (
        Job.objects.filter(id=job_id)
        .values(
            "kind",
            "project__slug",
            "created_by_id",
            "created_by__username",
            "created_at",
            "started_at",
            "finished_at",
            "attempts",
        )
        .first()
    )
    if row is None:
        return
    ended = row["finished_at"] or timezone.now()
    started = row["started_at"]
    summary: dict[str, Any] = {"job_kind": row["kind"], "attempts": row["attempts"]}
    if started is not None:
        summary["duration_s"] = round(max((ended - started).total_seconds(), 0.0), 3)
        summary["waited_s"] = round(max((started - row["created_at"]).total_seconds(), 0.0), 3)
    event_emit(
        kind,
        user_id=row["created_by_id"],
        username=row["created_by__username"] or "",
        project=row["project__slug"],
        object_id=job_id,
        summary=summary,
    )


def job_succeed(*, job: Job, result: dict[str, Any], message: str = "Done") -> bool:
    done = bool(
        Job.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
            updated_at=timezone.now(),
            status=JobStatus.SUCCEEDED,
            progress=1.0,
            message=message,
            result=result,
            finished_at=timezone.now(),
            lease_until=None,
        )
    )
    if done:
        job_ended_emit(job.id, "job.finished")
    return done


def job_record(*, job: Job, result: dict[str, Any], message: str, what: str) -> None:
    """Mark a job succeeded with what it made, inside the caller's transaction that
    records `what` (a state set, a model...). A job cancelled meanwhile raises
    `Cancelled`, so that transaction rolls back and the caller removes its files."""
    if not job_succeed(job=job, result=result, message=message):
        raise Cancelled(f"cancelled before the {what} was recorded")


def job_fail(*, job: Job, error: str) -> None:
    failed = Job.objects.filter(id=job.id, status__in=ACTIVE).update(
        updated_at=timezone.now(),
        status=JobStatus.FAILED,
        error=error[:10_000],
        message="Failed.",
        finished_at=timezone.now(),
        lease_until=None,
    )
    if failed:
        job_ended_emit(job.id, "job.failed")


def job_cancel(*, job: Job) -> Job:
    updated = Job.objects.filter(id=job.id, status__in=ACTIVE).update(
        updated_at=timezone.now(),
        status=JobStatus.CANCELLED,
        message="Cancelled.",
        finished_at=timezone.now(),
        lease_until=None,
    )
    job.refresh_from_db()
    if updated:
        job_ended_emit(job.id, "job.cancelled")
    if not updated:
        raise ApplicationError(
            f"The job has already {job.status}; only queued or running jobs can be cancelled.",
            code="not_cancellable",
            status_code=409,
        )
    return job


def job_retry(*, job: Job) -> Job:
    """Queue a failed or cancelled job again under the same id (staff do, from the
    admin), so that whatever waits on it (a pending match, the project's job list)
    sees it run again: attempts start from zero and the task is sent after commit.

    Refused (409) when the job is not failed or cancelled, or when an identical job
    (same dedupe key) is queued or running meanwhile. A job that consumed uploads
    finds their files gone and fails again, saying so."""
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = Job.objects.filter(id=job.id, status__in=RETRYABLE).update(
                status=JobStatus.QUEUED,
                progress=0.0,
                message="Queued again.",
                error="",
                result={},
                detail={},
                attempts=0,
                lease_until=None,
                worker="",
                sent_at=None,
                started_at=None,
                finished_at=None,
                updated_at=now,
            )
            if updated:
                transaction.on_commit(partial(job_send, str(job.id), job.kind))
    except IntegrityError:
        twin = _active_duplicate(job.project, job.kind, job.dedupe_key)
        raise ApplicationError(
            f"An identical job ({twin.id if twin else 'just started'}) is queued or "
            "running; it is not retried twice.",
            code="not_retryable",
            status_code=409,
        ) from None
    job.refresh_from_db()
    if not updated:
        raise ApplicationError(
            f"The job is {job.status}, not failed or cancelled; it cannot be retried.",
            code="not_retryable",
            status_code=409,
        )
    return job


def jobs_requeue_stale(*, worker: str | None = None) -> int:
    """Jobs whose worker died and that no broker will redeliver: enqueue them again.

    Called when a worker starts. Running jobs claimed under this worker's own node
    name belong to its previous life (node names are unique among live workers), so
    their leases end now. Queued jobs older than a lease are sent again (the claim
    makes a duplicate delivery harmless); running jobs whose lease ran out are sent
    again while attempts are left, else failed.
    """
    now = timezone.now()
    if worker:
        Job.objects.filter(status=JobStatus.RUNNING, worker=worker).update(
            updated_at=timezone.now(), lease_until=now
        )
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.STATELAB_JOB_LEASE_SECONDS)
    n = 0
    stale = Job.objects.filter(
        Q(status=JobStatus.QUEUED, created_at__lt=cutoff)
        | Q(status=JobStatus.RUNNING, lease_until__lt=now)
    )
    for job in stale:
        if job.status == JobStatus.RUNNING and job.attempts >= job.max_attempts:
            job_fail(job=job, error=GIVEN_UP)
            job_work_remove(job.id)
            continue
        job_send(str(job.id), job.kind)
        n += 1
    return n


def jobs_resend(*, now: Any = None) -> int:
    """Send again the jobs no broker holds: queued jobs whose task never reached it
    (the broker was down when they were created; `sent_at` empty), queued jobs sent
    longer ago than `STATELAB_JOB_RESEND_AFTER_S` (a broker restarted without
    persistence loses its queue), and running jobs whose lease ran out (their worker
    died) while attempts are left; those without attempts left fail. Returns how
    many were sent.

    Run by every worker every `STATELAB_JOB_SWEEP_S` seconds, so a broker outage
    needs no worker restart. Each job is taken by one conditional update of its
    `sent_at`, so several workers sweeping at once send it once; a duplicate
    delivery would be harmless anyway (`job_claim`).
    """
    now = now or timezone.now()
    fresh = now - timedelta(seconds=2)  # a job just created is being sent after commit
    resend_after = now - timedelta(seconds=settings.STATELAB_JOB_RESEND_AFTER_S)
    lease = now - timedelta(seconds=settings.STATELAB_JOB_LEASE_SECONDS)
    due = Job.objects.filter(
        Q(status=JobStatus.QUEUED, sent_at__isnull=True, created_at__lt=fresh)
        | Q(status=JobStatus.QUEUED, sent_at__lt=resend_after)
        | Q(status=JobStatus.RUNNING, lease_until__lt=now)
        & (Q(sent_at__isnull=True) | Q(sent_at__lt=lease))
    ).only("id", "kind", "status", "attempts", "max_attempts", "sent_at")
    sent = 0
    for job in due[:500]:
        if job.status == JobStatus.RUNNING and job.attempts >= job.max_attempts:
            job_fail(job=job, error=GIVEN_UP)
            job_work_remove(job.id)
            continue
        taken = Job.objects.filter(id=job.id, sent_at=job.sent_at).update(sent_at=now)
        if taken:
            job_send(str(job.id), job.kind)
            sent += 1
    return sent


def job_work_remove(job_id: uuid.UUID | str) -> int:
    """Remove the working folders (`work/<kind>-<job id>`) of a job that will not run
    again: a job given up after its workers died leaves no partial extraction behind
    until the next sweep. Returns how many were removed."""
    work = store_root() / "work"
    if not work.is_dir():
        return 0
    removed = 0
    for entry in work.glob(f"*-{uuid.UUID(str(job_id)).hex}"):
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def store_sweep(*, older_than_s: float = 24 * 3600) -> int:
    """Remove temporary folders that killed workers left in the store, and working
    folders of jobs that are no longer queued or running. Returns how many."""
    removed = 0
    for kind in ("statesets", "corpora", "models", "tmp"):
        removed += len(remove_stale_temp_dirs(store_root() / kind, older_than_s=older_than_s))
    work = store_root() / "work"
    if work.is_dir():
        for entry in work.iterdir():
            try:
                job_id = uuid.UUID(entry.name.rsplit("-", 1)[-1])
            except ValueError:
                continue
            if not Job.objects.filter(id=job_id, status__in=ACTIVE).exists():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


def worker_heartbeat_record(*, name: str, pid: int, queues: list[str], started_at: Any) -> None:
    """Record that worker `name` is alive now (one upsert), and forget workers not seen
    for a day."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        name=name[:200],
        defaults={
            "pid": pid,
            "queues": sorted(queues),
            "started_at": started_at,
            "seen_at": now,
            "stopped_at": None,
        },
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()


def worker_stopped_record(*, name: str, pid: int) -> None:
    """Record that worker `name` stopped cleanly: `/healthz` counts it gone at once."""
    WorkerHeartbeat.objects.filter(name=name[:200], pid=pid).update(stopped_at=timezone.now())
