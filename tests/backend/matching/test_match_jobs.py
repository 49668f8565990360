"""The match job: a slow match answers 202 and its job names the match, shards merge to
the whole answer, cancel and failures leave the job terminal and the next request
starts afresh; the index job builds what older state sets lack."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.jobs.services import job_claim
from backend.matching.models import Match
from backend.matching.services import match_merge_run, match_shard_run
from tests.support.match_oracle import oracle

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def no_worker():
    """Jobs go to the real broker, where no worker takes them (as when all are busy)."""
    from backend.config.celery_app import app

    app.conf.task_always_eager = False
    try:
        yield app
    finally:
        app.conf.task_always_eager = True


def _post(api, imp, **body):
    body.setdefault("source", imp.source)
    return api.post(f"/api/statesets/{imp.stateset}/matches/", body, format="json")


def _key(answer):
    return (
        [(h["position"], h["length"], h["intersection"], h["union"]) for h in answer["hits"]],
        answer["strict_histogram"],
        answer["fuzzy_histogram"],
    )


def test_slow_match_answers_202_and_its_job_names_the_match(owner_api, imported, settings):
    settings.STATELAB_MATCH_WAIT_S = 0.2
    with no_worker() as app:
        r = _post(owner_api, imported, cells=[0, 1, 2])
        assert r.status_code == 202, r.content
        job = r.json()["job"]
        assert job["kind"] == "match" and job["status"] == "queued"
        # the same query again while it waits joins the same job
        again = _post(owner_api, imported, cells=[2, 1, 0])
        assert again.status_code == 202 and again.json()["job"]["id"] == job["id"]
    assert Job.objects.filter(kind="match").count() == 1
    match = Match.objects.get()
    pending = owner_api.get(f"/api/matches/{match.id}/").json()
    assert pending["status"] == "queued" and pending["hits"] == [] and pending["job"] == job["id"]
    app.tasks["statelab.match"].apply(args=(job["id"],))  # a worker takes it up
    done = owner_api.get(f"/api/jobs/{job['id']}/").json()
    assert done["status"] == "succeeded" and done["result"] == {"match": str(match.id)}
    page = owner_api.get(f"/api/matches/{match.id}/").json()
    assert page["status"] == "succeeded"
    expected = oracle(imported.raw, [0, 1, 2], 0.3, "tanh")
    assert [(h["position"], h["length"]) for h in page["hits"]] == [
        (a, length) for a, length, _, _ in expected.hits[:50]
    ]


def test_shards_merge_to_the_whole_answer(owner_api, imported, settings):
    body = {"cells": [0, 1, 2, 3, 5], "min_length": 1, "limit": 200}
    whole = _post(owner_api, imported, **body).json()
    assert whole["shards"] == 1
    for shard_tokens, gpu_tokens, shards in ((37, 0, 9), (10_000, 1, 1), (100, 1, 3)):
        Match.objects.all().delete()
        settings.STATELAB_MATCH_SHARD_TOKENS = shard_tokens
        settings.STATELAB_MATCH_GPU_TOKENS = gpu_tokens  # shards on the gpu queue
        r = _post(owner_api, imported, **body)
        assert r.status_code == 200, r.content
        sharded = r.json()
        assert sharded["shards"] == shards
        assert _key(sharded) == _key(whole)
        row = Match.objects.get()
        assert row.shards_done == shards
        job = Job.objects.get(id=sharded["job"])
        assert job.status == "succeeded" and job.result["match"] == str(row.id)


def test_cancelled_match_leaves_nothing_and_is_started_again(owner_api, imported, settings):
    settings.STATELAB_MATCH_WAIT_S = 0.1
    with no_worker() as app:
        job_id = _post(owner_api, imported, cells=[0, 1]).json()["job"]["id"]
    r = owner_api.post(f"/api/jobs/{job_id}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    app.tasks["statelab.match"].apply(args=(job_id,))  # delivered after the cancel
    # shards and the merge of a cancelled job do nothing
    assert match_shard_run(job_id=job_id, index=0, start=0, end=150) == {"skipped": True}
    match_merge_run(job_id=job_id, parts=[{"skipped": True}])
    assert Job.objects.get(id=job_id).status == "cancelled"
    match = Match.objects.get()
    assert match.status == "pending"
    assert owner_api.get(f"/api/matches/{match.id}/").json()["status"] == "cancelled"
    r = _post(owner_api, imported, cells=[0, 1])
    assert r.status_code == 200 and r.json()["id"] == str(match.id)
    assert r.json()["job"] != job_id and r.json()["status"] == "succeeded"


def test_a_failed_shard_fails_the_job_with_its_message(owner_api, imported, settings):
    settings.STATELAB_MATCH_WAIT_S = 0.1
    with no_worker():
        job_id = _post(owner_api, imported, cells=[0, 1]).json()["job"]["id"]
    assert job_claim(job_id=job_id) is not None  # running, as under a worker
    ok = match_shard_run(job_id=job_id, index=0, start=0, end=150)
    assert "result" in ok
    match_merge_run(job_id=job_id, parts=[ok, {"error": "Shard 2 of the match failed."}])
    job = Job.objects.get(id=job_id)
    assert job.status == "failed" and job.error == "Shard 2 of the match failed."
    assert Match.objects.get().status == "pending"
    assert _post(owner_api, imported, cells=[0, 1]).status_code == 200


def test_match_that_fails_answers_422_with_the_jobs_error(owner_api, stateset):
    ss = stateset[0]
    shutil.rmtree(store_path(ss.path))  # the state set's files are gone
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/", {"source": "s0", "cells": [0, 1]}, format="json"
    )
    assert r.status_code == 422, r.content
    error = r.json()["error"]
    assert error["code"] == "match_failed" and error["message"].startswith("The match failed")
    assert Job.objects.get(id=error["details"]["job"]).status == "failed"


def test_index_job_builds_what_an_older_stateset_lacks(
    owner_api, collaborator_api, outsider_api, stateset
):
    ss = stateset[0]
    url = f"/api/statesets/{ss.id}/"
    before = owner_api.get(url).json()["indexes"]
    assert before["match"] is False and before["match_sources"] == {"s0": False}
    assert collaborator_api.post(url + "index/").status_code == 403  # viewers may not
    assert outsider_api.post(url + "index/").status_code == 404
    r = owner_api.post(url + "index/")
    assert r.status_code == 202
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["kind"] == "index" and job["status"] == "succeeded", job
    assert job["result"] == {"stateset": str(ss.id)}
    after = owner_api.get(url).json()["indexes"]
    assert after == {"match": True, "match_sources": {"s0": True}, "search": True}
    again = owner_api.get(f"/api/jobs/{owner_api.post(url + 'index/').json()['job']['id']}/")
    assert again.json()["message"] == "Every index was already built"


def test_imported_and_sample_statesets_have_their_indexes(owner_api, imported, owner):
    from backend.states.models import StateSet
    from backend.states.sample import SAMPLE_SLUG, sample_create

    assert owner_api.get(f"/api/statesets/{imported.stateset}/").json()["indexes"]["match"]
    job = sample_create(owner=owner)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    sample = StateSet.objects.get(project__slug=SAMPLE_SLUG)
    indexes = owner_api.get(f"/api/statesets/{sample.id}/").json()["indexes"]
    assert indexes["match"] is True and indexes["search"] is True


def test_concurrent_identical_requests_share_one_row_and_one_job(owner, imported, settings):
    """Twelve identical POSTs at the same moment, each on its own connection."""
    import threading

    from django.db import connection
    from rest_framework.test import APIClient

    settings.STATELAB_MATCH_WAIT_S = 0.3
    barrier = threading.Barrier(12)
    answers: list[tuple[int, str]] = []

    def ask(i):
        client = APIClient()
        client.force_authenticate(owner)
        cells = [5, 3, 1] if i % 2 else [1, 3, 5]
        try:
            barrier.wait()
            r = client.post(
                f"/api/statesets/{imported.stateset}/matches/",
                {"source": imported.source, "cells": cells},
                format="json",
            )
            answers.append((r.status_code, r.json()["job"]["id"]))
        finally:
            connection.close()

    with no_worker():
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 12
    assert {status for status, _ in answers} == {202}
    assert len({job for _, job in answers}) == 1
    assert Match.objects.count() == 1
    assert Job.objects.filter(kind="match").count() == 1
    assert str(Match.objects.get().job_id) == answers[0][1]
