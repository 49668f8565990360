"""The shape every job task shares: run the job, or retry later while another
worker's lease on it is live (that worker may have died)."""

from __future__ import annotations

from typing import Any

from .runner import WorkFn, run_job

MAX_TAKEOVER_RETRIES = 20


def run_or_retry(task: Any, job_id: str, work: WorkFn) -> None:
    wait = run_job(job_id, work, worker=getattr(task.request, "hostname", None))
    if wait is not None:
        raise task.retry(countdown=wait, max_retries=MAX_TAKEOVER_RETRIES)
