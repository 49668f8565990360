"""Fixtures of the backend tests that drive a real Celery worker process (the
``integration`` marker): see tests/support/worker.py."""

from __future__ import annotations

import pytest

from tests.support.worker import WorkerProcesses, worker_broker


@pytest.fixture
def broker_mode():
    """Tasks go through the suite's worker broker instead of running in-process;
    yields that broker's URL."""
    with worker_broker() as url:
        yield url


@pytest.fixture
def start_worker(broker_mode, _isolated_store, tmp_path):
    """Starts worker processes (``start()`` returns the process once it is ready);
    each is stopped, or found already killed, at the end."""
    workers = WorkerProcesses(broker=broker_mode, store=_isolated_store, logs=tmp_path)
    yield workers.start
    workers.stop()


@pytest.fixture
def worker(start_worker):
    """One worker process, ready."""
    return start_worker()
