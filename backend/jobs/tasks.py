"""The shape every job task shares: run the job, or retry later while another
worker's lease on it is live (that worker may have died); and what a worker does when
it starts: compile the compute core's kernels before it takes jobs, send again the
jobs a dead worker left, sweep what it left in the store, and keep recording its
heartbeat (read by `/healthz`) until it stops."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from .runner import WorkFn, run_job

MAX_TAKEOVER_RETRIES = 20
log = logging.getLogger(__name__)


def run_or_retry(task: Any, job_id: str, work: WorkFn) -> None:
    wait = run_job(job_id, work, worker=getattr(task.request, "hostname", None))
    if wait is not None:
        raise task.retry(countdown=wait, max_retries=MAX_TAKEOVER_RETRIES)


@celeryd_after_setup.connect
def kernels_warm(sender: Any = None, **_: object) -> None:
    """Compile the core's kernels (or load them from numba's cache) before the worker
    takes jobs, so that no job waits for them (`workers.core.warmup`). This runs in
    the worker's main process before its pool's processes are forked, so each of
    them starts with the kernels compiled. A failure is logged and the worker starts
    anyway; its first jobs then compile what they need."""
    from django.conf import settings

    if not settings.STATELAB_WORKER_WARM_UP:
        return
    from workers.core.warmup import warm_up

    try:
        done = warm_up()
    except Exception:
        log.exception("warming up the kernels failed; the first jobs compile them")
        return
    log.info("Kernels warmed: %s", done.summary())


@worker_process_init.connect
def kernels_check(**_: object) -> None:
    """In each pool process: the kernels it inherited from the main process, warmed
    again where it was not forked from a warm one (another start method)."""
    from django.conf import settings

    if not settings.STATELAB_WORKER_WARM_UP:
        return
    from workers.core.warmup import kernel_status, warm_up

    try:
        status = kernel_status()
        how = "inherited"
        if not all(status.values()):
            how = f"warmed here in {warm_up().seconds:.2f} s"
            status = kernel_status()
    except Exception:
        log.exception("warming up the kernels failed in pool process %d", os.getpid())
        return
    compiled = sum(1 for n in status.values() if n)
    log.info(
        "Pool process %d: %d of %d kernels compiled (%s)", os.getpid(), compiled, len(status), how
    )


@worker_ready.connect
def requeue_stale_jobs(sender: Any = None, **_: object) -> None:
    """Jobs left behind by a worker that died are sent again when a worker starts, and
    the temporary folders such a worker left (older than a day) are removed. Then the
    worker's background thread records its heartbeat every `STATELAB_WORKER_HEARTBEAT_S`
    seconds and sweeps every `STATELAB_JOB_SWEEP_S` seconds for jobs no broker holds."""
    from .services import jobs_requeue_stale, store_sweep

    hostname = getattr(sender, "hostname", None)
    jobs_requeue_stale(worker=hostname)
    store_sweep()
    _background_start(WorkerIdentity.of(sender))


@worker_shutdown.connect
def worker_stopped(sender: Any = None, **_: object) -> None:
    """A worker that stops cleanly says so, so `/healthz` need not wait for its
    heartbeat to age."""
    from .services import worker_stopped_record

    name = getattr(sender, "hostname", None)
    if not name:
        return
    try:
        worker_stopped_record(name=str(name), pid=os.getpid())
    except Exception:
        log.exception("could not record that worker %s stopped", name)


@dataclass(frozen=True)
class WorkerIdentity:
    """What a heartbeat tells about its worker: node name, main process, queues."""

    name: str
    pid: int
    queues: list[str]
    started_at: datetime

    @classmethod
    def of(cls, consumer: Any) -> WorkerIdentity:
        from django.utils import timezone

        app = getattr(consumer, "app", None)
        try:
            queues = sorted(app.amqp.queues.consume_from) if app is not None else []
        except Exception:
            queues = []
        name = str(getattr(consumer, "hostname", None) or f"worker@{socket.gethostname()}")
        return cls(name=name, pid=os.getpid(), queues=queues, started_at=timezone.now())


def _background_start(me: WorkerIdentity) -> None:
    from django.conf import settings

    beat = float(settings.STATELAB_WORKER_HEARTBEAT_S)
    sweep = float(settings.STATELAB_JOB_SWEEP_S)
    if beat <= 0 and sweep <= 0:
        return
    if beat > 0:
        try:
            _heartbeat(me)
        except Exception:
            log.exception("could not record the worker's first heartbeat")
    threading.Thread(
        target=_background_forever, args=(me, beat, sweep), name="job-sweeper", daemon=True
    ).start()


def _heartbeat(me: WorkerIdentity) -> None:
    from .services import worker_heartbeat_record

    worker_heartbeat_record(name=me.name, pid=me.pid, queues=me.queues, started_at=me.started_at)


def _background_forever(me: WorkerIdentity, beat: float, sweep: float) -> None:
    """The worker's background thread: its heartbeat every `beat` seconds, `jobs_resend`
    every `sweep` seconds (either off at 0). A broker or database that does not answer
    is logged and tried again at the next turn."""
    from django.db import close_old_connections

    from .services import jobs_resend
    from .signals import sweep as sweep_signal

    tick = min(t for t in (beat, sweep) if t > 0)
    next_beat = time.monotonic() + beat
    next_sweep = time.monotonic() + sweep
    while True:
        time.sleep(tick)
        now = time.monotonic()
        if beat > 0 and now >= next_beat:
            next_beat = now + beat
            try:
                _heartbeat(me)
            except Exception:
                log.exception("the worker's heartbeat failed; it is written again in %s s", beat)
        if sweep > 0 and now >= next_sweep:
            next_sweep = now + sweep
            try:
                sent = jobs_resend()
                if sent:
                    log.info("sent %d job(s) again that no broker held", sent)
            except Exception:
                log.exception("the job sweep failed; it runs again in %s s", sweep)
            for receiver, answer in sweep_signal.send_robust(sender=None):
                if isinstance(answer, Exception):
                    log.error("the sweep of %s failed: %r", receiver, answer)
        close_old_connections()
