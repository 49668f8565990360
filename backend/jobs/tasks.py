"""The shape every job task shares: run the job, or retry later while another
worker's lease on it is live (that worker may have died); and what a worker does when
it starts: send again the jobs a dead worker left, sweep what it left in the store."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready

from .runner import WorkFn, run_job

MAX_TAKEOVER_RETRIES = 20


def run_or_retry(task: Any, job_id: str, work: WorkFn) -> None:
    wait = run_job(job_id, work, worker=getattr(task.request, "hostname", None))
    if wait is not None:
        raise task.retry(countdown=wait, max_retries=MAX_TAKEOVER_RETRIES)


@worker_ready.connect
def requeue_stale_jobs(sender: object = None, **_: object) -> None:
    """Jobs left behind by a worker that died are sent again when a worker starts, and
    the temporary folders such a worker left (older than a day) are removed."""
    from .services import jobs_requeue_stale, store_sweep

    jobs_requeue_stale(worker=getattr(sender, "hostname", None))
    store_sweep()
