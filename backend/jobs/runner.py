"""Runs one job inside a Celery task: claim, call one function, record the outcome.

Tasks stay thin: they pass the job id and a work function here. The work function
gets the job and a progress callback and returns the job's `result`; it must write
its outputs atomically and create its rows together with `job_record` so that a
cancelled or failed job leaves nothing visible.

While the work runs, a heartbeat thread renews the job's lease, so the lease can be
short: a worker killed with SIGKILL stops renewing, and a re-delivered task takes
the job over once the lease has run out (the task retries itself until then).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.utils import timezone

from backend.core.errors import ApplicationError
from workers.core.errors import Cancelled, InputError, ProgressFn

from .models import Job, JobStatus
from .services import job_claim, job_fail, lease_end, progress_reporter

log = logging.getLogger(__name__)

WorkFn = Callable[[Job, ProgressFn], Any]


class _Heartbeat(threading.Thread):
    def __init__(self, job_id: Any) -> None:
        super().__init__(daemon=True, name=f"lease-{job_id}")
        self.job_id = job_id
        self.stop = threading.Event()

    def run(self) -> None:
        period = max(settings.STATELAB_JOB_LEASE_SECONDS / 3, 0.5)
        try:
            while not self.stop.wait(period):
                Job.objects.filter(id=self.job_id, status=JobStatus.RUNNING).update(
                    lease_until=lease_end()
                )
        except Exception:
            log.exception("lease heartbeat for job %s stopped", self.job_id)
        finally:
            connection.close()


@contextmanager
def lease_kept(job_id: Any) -> Iterator[None]:
    """Renew the lease of a running job while the block runs (a task that works for a
    job it did not claim itself, such as a shard of a match job)."""
    heartbeat = _Heartbeat(job_id)
    heartbeat.start()
    try:
        yield
    finally:
        heartbeat.stop.set()
        heartbeat.join(timeout=5)


def run_job(job_id: str, work: WorkFn, *, worker: str | None = None) -> float | None:
    """Run the job if it is ours. Returns seconds to wait before trying again when
    another worker holds a live lease on it (it may have died), else None."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        current = Job.objects.filter(id=job_id).values("status", "lease_until").first()
        if current and current["status"] == JobStatus.RUNNING and current["lease_until"]:
            wait = (current["lease_until"] - timezone.now()).total_seconds()
            return max(wait, 0.0) + 1.0
        log.info("job %s is not ours to run (finished or unknown)", job_id)
        return None
    heartbeat = _Heartbeat(job.id)
    heartbeat.start()
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
    finally:
        heartbeat.stop.set()
        heartbeat.join(timeout=5)
    return None
