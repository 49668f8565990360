"""Run as a process of its own by test_embedded_default: the embedded settings of
`make run` (SQLite, kombu's filesystem broker, Celery's file result backend, all
under a fresh var/ folder) with a real worker process, and one query matched
whole and in shards. Prints one JSON line with both answers.

A separate process is needed because the test suite's own settings use
PostgreSQL and Redis, and Django settings are fixed once per process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(var: Path) -> dict[str, object]:
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    from workers.benchmarks.common import (
        build_stateset,
        django_setup,
        log_wait,
        process_start,
        process_stop,
    )

    django_setup(var)
    for sub in ("queue", "processed", "control"):
        (var / "broker" / sub).mkdir(parents=True, exist_ok=True)
    from django.conf import settings
    from django.test import Client

    from backend.accounts.services import user_create
    from backend.jobs.models import Job
    from backend.matching.models import Match
    from backend.projects.services import project_create
    from backend.states.models import StateSet
    from workers.core.indexes import build_indexes

    assert settings.CELERY_RESULT_BACKEND.startswith("file://"), settings.CELERY_RESULT_BACKEND
    n = 3000
    rel = "statesets/embedded"
    ss_dir = Path(settings.STATELAB_STORE_ROOT) / rel
    build_stateset(ss_dir, n, 16)
    build_indexes(ss_dir)
    user = user_create(username="embedded", password=os.urandom(16).hex())
    project = project_create(user=user, name="embedded")
    manifest = json.loads((ss_dir / "manifest.json").read_text())
    ss = StateSet.objects.create(
        project=project, name="e", length=n, path=rel, manifest=manifest, created_by=user
    )
    log = var / "worker.log"
    worker = process_start(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "backend.config.celery_app",
            "worker",
            "-Q",
            "cpu,gpu",
            "-c",
            "1",
            "-n",
            f"embedded-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
        ],
        dict(os.environ),
        log,
    )
    try:
        log_wait(log, "ready", worker, 60)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        answers = {}
        for name, shard_tokens in (("whole", 10**9), ("sharded", 500)):
            Match.objects.all().delete()
            settings.STATELAB_MATCH_SHARD_TOKENS = shard_tokens
            r = client.post(
                f"/api/statesets/{ss.id}/matches/",
                {"source": "s0", "cells": [0, 2, 3, 5, 7], "min_length": 1, "limit": 300},
                content_type="application/json",
            )
            if r.status_code not in (200, 202):
                raise RuntimeError(r.content.decode()[:500])
            body = r.json()
            job_id = body["job"] if r.status_code == 200 else body["job"]["id"]
            deadline = time.monotonic() + 60
            while (job := Job.objects.get(id=job_id)).status in ("queued", "running"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job still {job.status}: {job.message}")
                time.sleep(0.05)
            if job.status != "succeeded":
                raise RuntimeError(f"job {job.status}: {job.error}")
            page = client.get(f"/api/matches/{job.result['match']}/", {"limit": 1000}).json()
            answers[name] = {
                "hits": [
                    [h["position"], h["length"], h["intersection"], h["union"]]
                    for h in page["hits"]
                ],
                "strict": page["strict_histogram"],
                "fuzzy": page["fuzzy_histogram"],
                "shards": page["shards"],
                "worker": job.worker,
            }
        left = sorted(p.name for p in Path(settings.CELERY_RESULT_BACKEND[7:]).iterdir())
        return {**answers, "results_left": left}
    finally:
        process_stop(worker, 15)


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
