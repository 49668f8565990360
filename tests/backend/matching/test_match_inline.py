"""Small matches answered by the web process itself (backend/matching/inline.py): the
same answer as the engine and the job, stored on the same row, without a job; the job
path wherever the request should not hold a web thread or cannot be answered fast."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.matching import inline
from backend.matching.models import Match, MatchStatus
from tests.support.match_oracle import oracle

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def here(settings):
    """Matches of up to 10,000 tokens are answered here, with the kernels compiled."""
    settings.STATELAB_MATCH_INLINE_TOKENS = 10_000
    inline.inline_ready()
    deadline = time.monotonic() + 120
    while not inline.inline_ready():
        assert time.monotonic() < deadline, "the kernels were not compiled in two minutes"
        time.sleep(0.05)
    return settings


def _post(api, imp, **body):
    body.setdefault("source", imp.source)
    return api.post(f"/api/statesets/{imp.stateset}/matches/", body, format="json")


def _hits(answer):
    return [(h["position"], h["length"], h["intersection"], h["union"]) for h in answer["hits"]]


def test_a_small_match_is_answered_here_exactly_and_stored(owner_api, imported, here):
    r = _post(owner_api, imported, cells=[0, 1, 2], threshold=0.3)
    assert r.status_code == 200, r.content
    answer = r.json()
    assert answer["status"] == "succeeded" and answer["reused"] is False
    assert Job.objects.filter(kind="match").count() == 0  # no job, no queue
    row = Match.objects.get(id=answer["id"])
    assert row.status == MatchStatus.DONE and row.job_id is None and row.seconds is not None
    expected = oracle(imported.raw, [0, 1, 2], 0.3, "tanh")
    assert [(h[0], h[1]) for h in _hits(answer)] == [(a, n) for a, n, _, _ in expected.hits[:50]]
    # the stored answer is read again, and a job computes the same (off here)
    again = _post(owner_api, imported, cells=[2, 1, 0], threshold=0.3)
    assert again.json()["reused"] is True and _hits(again.json()) == _hits(answer)
    here.STATELAB_MATCH_INLINE_TOKENS = 0
    Match.objects.all().delete()
    by_job = _post(owner_api, imported, cells=[0, 1, 2], threshold=0.3)
    assert by_job.status_code == 200 and _hits(by_job.json()) == _hits(answer)
    assert Job.objects.filter(kind="match").count() == 1


def test_the_v2_route_is_answered_here_too(owner_api, imported, here):
    r = owner_api.get(
        "/api/v2/match",
        {"project": "brackets", "source": "states::states1", "cells": "0,1,2", "threshold": 0.3},
    )
    assert r.status_code == 200, r.content
    assert Job.objects.filter(kind="match").count() == 0
    assert Match.objects.get().status == MatchStatus.DONE


def test_long_statesets_and_missing_indexes_go_through_the_job(owner_api, imported, here):
    here.STATELAB_MATCH_INLINE_TOKENS = 100  # shorter than the state set (300)
    assert _post(owner_api, imported, cells=[0, 1]).status_code == 200
    assert Job.objects.filter(kind="match").count() == 1
    here.STATELAB_MATCH_INLINE_TOKENS = 10_000
    ss = Match.objects.get().stateset
    shutil.rmtree(store_path(ss.path) / "index" / "match")  # as an older state set
    assert _post(owner_api, imported, cells=[0, 3]).status_code == 200
    assert Job.objects.filter(kind="match").count() == 2


def test_busy_slots_send_the_match_to_its_job(owner_api, imported, here, monkeypatch):
    full = threading.BoundedSemaphore(1)
    full.acquire()
    monkeypatch.setattr(inline, "_slots", full)
    assert _post(owner_api, imported, cells=[1, 2]).status_code == 200
    assert Job.objects.filter(kind="match").count() == 1
    full.release()
    assert _post(owner_api, imported, cells=[1, 4]).status_code == 200
    assert Job.objects.filter(kind="match").count() == 1  # answered here


def test_a_bad_query_is_refused_before_anything_runs(owner_api, imported, here):
    r = _post(owner_api, imported, cells=[0, 999])
    assert r.status_code == 400 and "999" in r.json()["error"]["message"]
    assert not Match.objects.exists() and not Job.objects.filter(kind="match").exists()


def test_an_engine_failure_here_sends_the_match_to_a_worker(owner_api, imported, here, monkeypatch):
    import workers.core.match as core

    real = core.match
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a damaged map")
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "match", fails_once)
    r = _post(owner_api, imported, cells=[0, 2])
    assert r.status_code == 200, r.content
    assert len(calls) == 2 and Job.objects.filter(kind="match").count() == 1
    assert Match.objects.get().status == MatchStatus.DONE


def test_a_query_the_engine_refuses_is_a_422_and_stores_nothing(
    owner_api, imported, here, monkeypatch
):
    import workers.core.match as core
    from workers.core.errors import InputError

    def refuses(*args, **kwargs):
        raise InputError("the source has fewer cells than asked for")

    monkeypatch.setattr(core, "match", refuses)
    r = _post(owner_api, imported, cells=[0, 2])
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "The match failed: the source has fewer cells than asked for"
    )
    assert not Match.objects.exists() and not Job.objects.filter(kind="match").exists()
