"""Runs one job inside a Celery task: claim, call one function, record the outcome.

Tasks stay thin: they pass the job id and a work function here. The work function
gets the job and a progress callback and returns the job's `result`; it must write
its outputs atomically and create its rows together with `job_succeed` so that a
cancelled or failed job leaves nothing visible.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from backend.config.api import ApplicationError
from workers.core.errors import Cancelled, InputError, ProgressFn

from .models import Job
from .services import job_claim, job_fail, progress_reporter

log = logging.getLogger(__name__)

WorkFn = Callable[[Job, ProgressFn], Any]


def run_job(job_id: str, work: WorkFn, *, worker: str | None = None) -> None:
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        log.info("job %s is not ours to run (claimed elsewhere or finished)", job_id)
        return
    try:
        work(job, progress_reporter(job))
    except Cancelled:
        log.info("job %s was cancelled", job_id)
    except InputError as exc:
        job_fail(job=job, error=str(exc))
    except ApplicationError as exc:
        job_fail(job=job, error=exc.message)
    except SoftTimeLimitExceeded:
        job_fail(job=job, error="The job ran longer than the time allowed and was stopped.")
    except MemoryError:
        job_fail(job=job, error="The job ran out of memory.")
    except Exception as exc:
        log.exception("job %s failed", job_id)
        job_fail(
            job=job,
            error=f"The job failed unexpectedly ({type(exc).__name__}); the error was logged.",
        )
