"""Across machines: a sharded match on three real worker processes (separate
``celery worker`` processes, concurrency 1 each, distinct node names) on Redis and
PostgreSQL, as three machines sharing a store would run it.

The shards are spread over the three workers (each shard's row and the job's result
say which worker matched it), the merged answer is the one of a single unsharded
engine call, and a worker killed (SIGKILL to its whole process group) while it holds a
shard does not change the answer: the next sweep of a live worker sends the shard
again into the same chord, within seconds (docs/jobs.md, "Shards").

The workers load ``tests.support.slow_shards``, which makes every shard wait a moment
before matching, so that the shards cannot all be taken by whichever worker is first
and a test can see a worker holding a shard.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from backend.jobs.models import Job
from backend.matching.codec import result_row
from backend.matching.models import Match, MatchShard
from backend.states.selectors import stateset_store
from tests.conftest import write_stateset
from tests.support.worker import job_wait

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKENS = 60_000
SHARD_TOKENS = 10_000  # six shards
CELLS = [1, 4, 6, 9]


def _three_workers(start_worker, *, delay: float) -> list:
    env = {
        # Heartbeats, the gone-after time and the sweep, shortened from 5 s, 30 s, 15 s.
        "STATELAB_WORKER_HEARTBEAT_S": "0.5",
        "STATELAB_WORKER_GONE_S": "2",
        "STATELAB_JOB_SWEEP_S": "0.5",
        "STATELAB_TEST_SHARD_DELAY_S": str(delay),
    }
    # A lease long enough that the job is never taken over as a whole: what finishes
    # it after a kill is the shard sent again, not a new fan-out.
    return [
        start_worker(
            concurrency=1,
            lease_seconds=60,
            extra_env=env,
            extra_args=["--include", "tests.support.slow_shards"],
        )
        for _ in range(3)
    ]


def _node(i: int) -> str:
    """The node name prefix of the i-th worker `WorkerProcesses` started."""
    return f"test-{os.getpid()}-{i}@"


def _start_match(api, ss, settings):
    settings.STATELAB_MATCH_SHARD_TOKENS = SHARD_TOKENS
    settings.STATELAB_MATCH_WAIT_S = 0.05
    r = api.post(
        f"/api/statesets/{ss.id}/matches/",
        {"source": "s0", "cells": CELLS, "threshold": 0.3, "min_length": 1, "limit": 200},
        format="json",
    )
    assert r.status_code == 202, r.content
    return r.json()["job"]["id"]


def _assert_exact(ss, match: Match) -> None:
    """The merged answer equals one unsharded call of the engine in this process."""
    from workers.core.match import MatchQuery
    from workers.core.match import match as engine_match

    whole = result_row(engine_match(stateset_store(ss), "s0", MatchQuery.from_json(match.query)))
    assert whole["hits"], "a query with no hits proves little"
    for key in ("hits", "strict", "fuzzy", "exact", "unscored", "candidates"):
        assert match.result[key] == whole[key], key


def test_shards_spread_over_three_workers_merge_to_the_unsharded_answer(
    owner_api, project, owner, settings, start_worker
):
    _three_workers(start_worker, delay=0.4)
    ss, *_ = write_stateset(project, owner, n=TOKENS, d=12, seed=3)
    job = job_wait(_start_match(owner_api, ss, settings), 60)
    assert job.status == "succeeded", job.error

    match = Match.objects.get(id=job.result["match"])
    assert match.status == "done" and match.shards == 6 and match.shards_done == 6
    rows = list(MatchShard.objects.filter(job=job).order_by("index"))
    assert [(r.start, r.end) for r in rows] == [
        (a, a + SHARD_TOKENS) for a in range(0, TOKENS, SHARD_TOKENS)
    ]
    assert all(r.status == "done" and r.attempts == 1 for r in rows)
    workers = {r.worker for r in rows}
    assert len(workers) == 3, workers  # every worker matched some of the shards
    assert all(any(w.startswith(_node(i)) for w in workers) for i in range(3))
    # the job's result says the same, for administrators
    by_worker = job.result["shards_by_worker"]
    assert sorted(i for shards in by_worker.values() for i in shards) == list(range(6))
    assert set(by_worker) == workers
    _assert_exact(ss, match)


def test_a_worker_killed_while_it_holds_a_shard_does_not_change_the_answer(
    owner_api, project, owner, settings, start_worker
):
    procs = _three_workers(start_worker, delay=2.0)
    ss, *_ = write_stateset(project, owner, n=TOKENS, d=12, seed=5)
    job_id = _start_match(owner_api, ss, settings)

    # Wait for the second worker to hold a shard, then kill it, main process and child.
    deadline = time.monotonic() + 30
    while not (
        held := MatchShard.objects.filter(
            job_id=job_id, status="running", worker__startswith=_node(1)
        ).first()
    ):
        assert time.monotonic() < deadline, list(
            MatchShard.objects.values("index", "status", "worker")
        )
        time.sleep(0.05)
    killed_at = time.monotonic()
    os.killpg(procs[1].pid, signal.SIGKILL)
    procs[1].wait(timeout=10)

    # Until the job ends the match shows no answer, never a part of one.
    deadline = time.monotonic() + 40
    while (job := Job.objects.get(id=job_id)).status in ("queued", "running"):
        match = Match.objects.get(job_id=job_id)
        # (The job may end between the two reads: then the answer is whole, written in
        # the same transaction as the job's success.)
        assert (match.status == "pending" and match.result == {}) or (
            match.status == "done"
            and Job.objects.get(id=job_id).status == "succeeded"
            and match.shards_done == match.shards
        ), "a partial answer is visible"
        assert time.monotonic() < deadline, f"job still {job.status}: {job.message}"
        time.sleep(0.1)
    finished_in = time.monotonic() - killed_at
    assert job.status == "succeeded", job.error
    assert job.attempts == 1  # the job was not started again as a whole
    assert finished_in < 20, finished_in  # seconds, not the broker's hour

    again = MatchShard.objects.get(job_id=job_id, index=held.index)
    assert again.status == "done" and again.attempts == 2
    assert not again.worker.startswith(_node(1))  # a live worker matched it
    assert all(
        held.index not in shards or not w.startswith(_node(1))
        for w, shards in job.result["shards_by_worker"].items()
    )
    match = Match.objects.get(id=job.result["match"])
    assert match.shards_done == 6
    _assert_exact(ss, match)
