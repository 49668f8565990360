"""Real Celery worker processes for the integration tests, and waiting for jobs.

A worker is started as a separate process (``celery -A backend.config.celery_app
worker``) on the test database, the test's state store and a broker of the suite's
own: under Redis, database :data:`WORKER_REDIS_DB`, not the database 15 every run of
the suite is configured with, so that a run's worker never takes (and a run's purge
never drops) another run's tasks. While the fixtures built on this module are active,
``job_send`` goes through that broker instead of running tasks in-process.

The fixtures (``broker_mode``, ``start_worker``, ``worker``) live in
``tests/backend/conftest.py``; :func:`job_wait` and :func:`job_wait_api` follow a
job until it is finished (by its row, or through ``GET /api/jobs/{id}/``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "CELERY",
    "FINISHED",
    "WORKER_REDIS_DB",
    "WorkerProcesses",
    "job_wait",
    "job_wait_api",
    "worker_broker",
]

CELERY = str(Path(sys.executable).parent / "celery")
# The match tests' worker (tests/backend/matching/conftest.py) uses database 12.
# STATELAB_TEST_WORKER_REDIS_DB picks another, for suites run side by side on one Redis.
WORKER_REDIS_DB = int(os.environ.get("STATELAB_TEST_WORKER_REDIS_DB") or 13)
FINISHED = ("succeeded", "failed", "cancelled")


def _worker_broker_url(url: str) -> str:
    if url.startswith(("redis://", "rediss://")):
        return url.rsplit("/", 1)[0] + f"/{WORKER_REDIS_DB}"
    return url


def _drop_broker_connections(app: Any) -> None:
    """Forget the pooled broker connections, so the next send uses the broker now set.

    The pools live in kombu's process-wide registry, keyed by broker URL: the registry
    is reset as a whole, so no closed pool is left there for a later send."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def worker_broker() -> Iterator[str]:
    """Jobs go through the broker (to a worker process) instead of running in-process,
    on the suite's worker broker, emptied first; everything is put back afterwards.
    Yields the broker URL a worker process must be given."""
    from django.conf import settings

    from backend.config.celery_app import app

    url = _worker_broker_url(settings.CELERY_BROKER_URL)
    saved = (app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager)
    app.conf.broker_url = app.conf.broker_write_url = url
    _drop_broker_connections(app)
    app.conf.task_always_eager = False
    try:
        app.control.purge()  # what a run that was killed left behind
        yield url
    finally:
        app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager = saved
        _drop_broker_connections(app)


class WorkerProcesses:
    """Starts worker processes on the test database; :meth:`stop` ends each of them
    (SIGTERM to its process group, SIGKILL after 20 s) and closes its log."""

    def __init__(self, *, broker: str, store: Path, logs: Path) -> None:
        self.broker, self.store, self.logs = broker, store, logs
        self.procs: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(
        self,
        *,
        concurrency: int = 1,
        lease_seconds: int = 3,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        from django.db import connection

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="backend.config.settings.test",
            STATELAB_EAGER="0",
            STATELAB_TEST_WORKER_DB=connection.settings_dict["NAME"],
            STATELAB_STORE_ROOT=str(self.store),
            STATELAB_JOB_LEASE_SECONDS=str(lease_seconds),
            DATABASE_URL=os.environ.get("DATABASE_URL", ""),
            CELERY_BROKER_URL=self.broker,
            CELERY_RESULT_BACKEND=self.broker if self.broker.startswith("redis") else "",
        )
        env.update(extra_env or {})
        n = len(self.procs)
        log_path = self.logs / f"worker-{n}.log"
        log = open(log_path, "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                CELERY,
                "-A",
                "backend.config.celery_app",
                "worker",
                "-Q",
                "cpu,gpu",
                "-c",
                str(concurrency),
                "-n",
                f"test-{os.getpid()}-{n}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                *(extra_args or []),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        deadline = time.monotonic() + 60
        while "ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the worker did not start in 60 s"
            time.sleep(0.2)
        return proc

    def stop(self) -> None:
        for proc, log in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            log.close()
        self.procs.clear()


def job_wait(job_id: Any, seconds: float = 90) -> Any:
    """The job's row once it is finished; an ``AssertionError`` after ``seconds``."""
    from backend.jobs.models import Job

    deadline = time.monotonic() + seconds
    while True:
        job = Job.objects.get(id=job_id)
        if job.status in FINISHED:
            return job
        if time.monotonic() >= deadline:
            raise AssertionError(f"job still {job.status} after {seconds} s: {job.message}")
        time.sleep(0.2)


def job_wait_api(api: Any, job_id: str, seconds: float = 90) -> dict[str, Any]:
    """``GET /api/jobs/{id}/`` once the job is finished; an ``AssertionError`` after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        r = api.get(f"/api/jobs/{job_id}/")
        assert r.status_code == 200, r.content
        job = r.json()
        if job["status"] in FINISHED:
            return job
        if time.monotonic() >= deadline:
            raise AssertionError(f"job still {job['status']} after {seconds} s: {job}")
        time.sleep(0.1)
