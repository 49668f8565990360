"""Fixtures for the match routes: an LSTMVis project imported through the real import
job, with the raw HDF5 values the answers are checked against."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support import lstmvis_builder as B


@dataclass
class Imported:
    stateset: str  # id
    source: str  # id of states::states1
    raw: np.ndarray  # (N, D) float32, as in the HDF5 file
    tokens: list[str]
    project_dir: object


def import_project(api, tmp_path, *, n: int = 300, d: int = 12, seed: int = B.SEED) -> Imported:
    proj = B.build_lstmvis_project(tmp_path / f"src-{seed}", n=n, d=d, seed=seed)
    r = api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("proj.zip", B.zip_dir(proj))},
        format="multipart",
    )
    assert r.status_code == 202, r.content
    deadline = time.monotonic() + 120  # at once in-process; a worker process takes a moment
    while (job := api.get(f"/api/jobs/{r.json()['job']['id']}/").json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    ss_id = job["result"]["stateset"]
    desc = api.get(f"/api/statesets/{ss_id}/").json()
    source = next(s["id"] for s in desc["sources"] if s["name"] == "states::states1")
    with h5py.File(proj / "states.hdf5") as f:
        raw = f["states1"][:].astype(np.float32)
    ctx = api.get(f"/api/statesets/{ss_id}/context/?source={source}&start=0&end={n - 1}").json()
    return Imported(ss_id, source, raw, ctx["tokens"], proj)


@pytest.fixture
def imported(owner_api, project, tmp_path):
    return import_project(owner_api, tmp_path)


CELERY = str(Path(sys.executable).parent / "celery")
PRIVATE_REDIS_DB = 12


def _drop_broker_connections(app) -> None:
    """Forget the pooled broker connections, so the next send uses the broker now set.

    The app's pools live in kombu's process-wide registry, keyed by broker URL; closing
    one pool without clearing the registry would leave a closed pool there for the next
    test that sends to the same broker, so the registry is reset as a whole."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def match_worker(_isolated_store, tmp_path):
    """A real worker process (`celery -A backend.config.celery_app worker`) on the test database and the
    suite's broker and result backend; tasks go through the broker while it runs."""
    from django.conf import settings
    from django.db import connection

    from backend.config.celery_app import app

    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        # A Redis database of its own: other runs of the suite on this machine use
        # database 15, start workers there and purge its queues.
        broker = broker.rsplit("/", 1)[0] + f"/{PRIVATE_REDIS_DB}"
    saved = (app.conf.broker_url, app.conf.broker_write_url)
    app.conf.broker_url = app.conf.broker_write_url = broker
    _drop_broker_connections(app)
    app.conf.task_always_eager = False
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="backend.config.settings.test",
        STATELAB_EAGER="0",
        STATELAB_TEST_WORKER_DB=connection.settings_dict["NAME"],
        STATELAB_STORE_ROOT=str(_isolated_store),
        DATABASE_URL=os.environ.get("DATABASE_URL", ""),
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker if broker.startswith("redis") else "",
    )
    log_path = tmp_path / "match-worker.log"
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
            "2",
            "-n",
            f"match-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the worker did not start in 60 s"
            time.sleep(0.2)
        yield log_path
    finally:
        app.conf.task_always_eager = True
        app.conf.broker_url, app.conf.broker_write_url = saved
        _drop_broker_connections(app)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
