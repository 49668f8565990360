"""A worker compiles the core's kernels before it takes its first job: the main
process warms them before Celery says it is ready, and the pool process that runs
the jobs starts with every kernel compiled (it inherits them), so no job waits for
a compiler. The speed of the first match is measured by `make bench`
(section first_match); here the mechanism is checked."""

import re

import pytest

from tests.conftest import write_stateset
from tests.support.worker import job_wait

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_warms_its_kernels_before_it_takes_jobs(
    start_worker, tmp_path, owner, owner_api, project
):
    proc = start_worker()
    log = (tmp_path / "worker-0.log").read_text()
    warmed = re.search(r"Kernels warmed: (\d+) of (\d+) kernels compiled", log)
    assert warmed, log[-3000:]
    assert warmed.group(1) == warmed.group(2) and int(warmed.group(2)) >= 9
    ready = re.search(r"@\S+ ready\.", log)
    assert ready and warmed.start() < ready.start(), "warmed after the worker was ready"

    pool = re.search(r"Pool process (\d+): (\d+) of (\d+) kernels compiled \(inherited\)", log)
    assert pool, log[-3000:]
    assert int(pool.group(1)) != proc.pid  # a forked pool process, not the main one
    assert pool.group(2) == pool.group(3) == warmed.group(2)

    ss = write_stateset(project, owner, n=2000, d=16)[0]
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/",
        {"source": "s0", "cells": [1, 2, 3], "threshold": 0.3},
        format="json",
    )
    assert r.status_code in (200, 202), r.content
    if r.status_code == 202:
        job = job_wait(r.json()["job"]["id"])
        assert job.status == "succeeded", job.error
