"""A real Celery worker process: the same query matched whole and in 8 shards (a
Celery chord through the real broker and result backend) gives the same answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from backend.jobs.models import Job
from backend.matching.codec import dense
from backend.matching.models import Match
from tests.support.match_oracle import oracle

from .conftest import import_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _answer(api, imp, settings, *, shard_tokens):
    settings.STATELAB_MATCH_SHARD_TOKENS = shard_tokens
    Match.objects.all().delete()
    r = api.post(
        f"/api/statesets/{imp.stateset}/matches/",
        {"source": imp.source, "cells": [0, 1, 2, 3, 5], "min_length": 1, "limit": 500},
        format="json",
    )
    assert r.status_code in (200, 202), r.content
    job_id = r.json()["job"] if r.status_code == 200 else r.json()["job"]["id"]
    deadline = time.monotonic() + 90
    while (job := Job.objects.get(id=job_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job.status}: {job.message}"
        time.sleep(0.1)
    assert job.status == "succeeded", job.error
    assert job.worker.startswith("match-")  # the worker process ran it
    match_id = job.result["match"]
    return api.get(f"/api/matches/{match_id}/", {"limit": 1000, "left": 0}).json()


def test_one_shard_and_eight_shards_give_the_same_answer(
    owner_api, project, tmp_path, settings, match_worker
):
    imp = import_project(owner_api, tmp_path, n=400)  # runs in the worker, builds indexes
    whole = _answer(owner_api, imp, settings, shard_tokens=1_000_000)
    sharded = _answer(owner_api, imp, settings, shard_tokens=50)
    assert whole["shards"] == 1 and sharded["shards"] == 8
    assert Match.objects.get().shards_done == 8

    def key(page):
        return (
            [(h["position"], h["length"], h["intersection"], h["union"]) for h in page["hits"]],
            page["strict_histogram"],
            page["fuzzy_histogram"],
            page["total"],
        )

    assert key(sharded) == key(whole)
    expected = oracle(imp.raw, [0, 1, 2, 3, 5], 0.3, "tanh", min_length=1, limit=500)
    assert key(whole)[0] == [tuple(h) for h in expected.hits]
    assert dense(whole["strict_histogram"]) == expected.strict
    assert dense(whole["fuzzy_histogram"]) == expected.fuzzy


def test_embedded_default_runs_sharded_matches(tmp_path):
    """`make run`'s settings (SQLite, filesystem broker, file result backend) run the
    chord of a sharded match through a worker process, and its answer is the whole one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_RESULT_BACKEND")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.backend.matching.embedded_driver", str(tmp_path / "var")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    whole, sharded = out["whole"], out["sharded"]
    assert whole["shards"] == 1 and sharded["shards"] == 6
    assert sharded["worker"].startswith("embedded-")
    assert whole["hits"] and sharded["hits"] == whole["hits"]
    assert (sharded["strict"], sharded["fuzzy"]) == (whole["strict"], whole["fuzzy"])
    # the shards' results were removed from the result backend once merged
    assert not [name for name in out["results_left"] if "shard" in name]
