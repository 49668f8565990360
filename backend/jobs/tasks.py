"""The shape every job task shares: run the job, or retry later while another
worker's lease on it is live (that worker may have died); and what a worker does when
it starts: send again the jobs a dead worker left, sweep what it left in the store."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready

from .runner import WorkFn, run_job

MAX_TAKEOVER_RETRIES = 20
log = logging.getLogger(__name__)


def run_or_retry(task: Any, job_id: str, work: WorkFn) -> None:
    wait = run_job(job_id, work, worker=getattr(task.request, "hostname", None))
    if wait is not None:
        raise task.retry(countdown=wait, max_retries=MAX_TAKEOVER_RETRIES)


@worker_ready.connect
def requeue_stale_jobs(sender: object = None, **_: object) -> None:
    """Jobs left behind by a worker that died are sent again when a worker starts, and
    the temporary folders such a worker left (older than a day) are removed. Then the
    worker sweeps every `STATELAB_JOB_SWEEP_S` seconds for jobs no broker holds."""
    from .services import jobs_requeue_stale, store_sweep

    jobs_requeue_stale(worker=getattr(sender, "hostname", None))
    store_sweep()
    _sweeper_start()


def _sweeper_start() -> None:
    from django.conf import settings

    every = float(settings.STATELAB_JOB_SWEEP_S)
    if every <= 0:
        return
    threading.Thread(target=_sweep_forever, args=(every,), name="job-sweeper", daemon=True).start()


def _sweep_forever(every: float) -> None:
    """The worker's sweep thread: `jobs_resend` now and then. A broker or database that
    does not answer is logged and tried again at the next turn."""
    from django.db import close_old_connections

    from .services import jobs_resend

    while True:
        time.sleep(every)
        try:
            sent = jobs_resend()
            if sent:
                log.info("sent %d job(s) again that no broker held", sent)
        except Exception:
            log.exception("the job sweep failed; it runs again in %s s", every)
        finally:
            close_old_connections()
