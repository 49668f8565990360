"""Research events of a real session: a sequence of actions through the pages and the
API, every job run by a real worker process. Each successful action leaves exactly
one event, each refused one none, every job that ended one event of its outcome, and
the dashboard's figures are what those events say, before and after the rollup.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from backend.jobs.models import Job
from backend.usage.models import ResearchEvent
from backend.usage.services import day_bounds, usage_rollup_day
from tests.support.worker import FINISHED, job_wait_api

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TEXT = "((a)(b))\n(a((b)))\n" * 24
TINY = {"layers": 1, "hidden_size": 8, "epochs": 1, "seq_len": 8, "batch_size": 4}
OUTCOME = {"succeeded": "job.finished", "failed": "job.failed", "cancelled": "job.cancelled"}


def _as(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def _page(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


class Session:
    """Calls that say which event they must leave: `ok` expects a success and one
    event of `kind` for `who`; `refused` expects an error status and no event."""

    def __init__(self) -> None:
        self.expected: Counter[tuple[str, str, str]] = Counter()
        self.refused = 0

    def ok(self, who: str, kind: str, response, status: int = 200, project: str = "brackets"):
        assert response.status_code == status, (kind, response.status_code, response.content)
        self.expected[(who, kind, project)] += 1
        return response

    def refuse(self, response, status: int):
        assert response.status_code == status, (response.status_code, response.content)
        self.refused += 1
        return response


def _job(api, response, kind: str) -> dict:
    assert response.status_code == 202, response.content
    job = job_wait_api(api, response.json()["job"]["id"], seconds=120)
    assert job["kind"] == kind, job
    return job


def _events_settle(expected_total: int, seconds: float = 20) -> list[ResearchEvent]:
    """The events once every job's outcome is written (a worker writes it just after
    the job's row commits)."""
    deadline = time.monotonic() + seconds
    while True:
        events = list(ResearchEvent.objects.order_by("at", "id"))
        if len(events) >= expected_total or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def _figures(api, query: str) -> dict:
    r = api.get(f"/api/usage/{query}")
    assert r.status_code == 200, r.content
    answer = r.json()
    totals = {k: v for k, v in answer["totals"].items() if not k.startswith("days_from")}
    return {"tables": answer["tables"], "totals": totals}


def test_each_successful_action_leaves_one_event_and_the_dashboard_counts_them(
    worker, owner, collaborator, outsider, project, make_user
):
    alice, bob, charlie = _as(owner), _as(collaborator), _as(outsider)
    s = Session()

    # Pages: opening the project; an outsider is refused.
    s.ok("alice", "project.opened", _page(owner).get("/p/brackets/"))
    s.refuse(_page(outsider).get("/p/brackets/"), 404)

    # A corpus, a model trained on it, states extracted with it.
    upload = SimpleUploadedFile("parens.txt", TEXT.encode())
    r = s.ok(
        "alice",
        "corpus.uploaded",
        alice.post(
            "/api/projects/brackets/corpora/",
            {"file": upload, "tokenization": "char", "name": "parens"},
            format="multipart",
        ),
        202,
    )
    corpus_id = _job(alice, r, "corpus_upload")["result"]["corpus"]
    s.refuse(
        bob.post(
            "/api/projects/brackets/corpora/",
            {"file": SimpleUploadedFile("x.txt", b"x"), "tokenization": "char"},
            format="multipart",
        ),
        403,
    )
    s.refuse(
        alice.post(
            "/api/projects/brackets/trainings/",
            {"corpus": corpus_id, **TINY, "epochs": 0},
            format="json",
        ),
        400,
    )
    r = s.ok(
        "alice",
        "training.started",
        alice.post(
            "/api/projects/brackets/trainings/", {"corpus": corpus_id, **TINY}, format="json"
        ),
        202,
    )
    model_id = _job(alice, r, "train")["result"]["model"]
    r = s.ok(
        "alice",
        "extraction.started",
        alice.post(
            "/api/projects/brackets/extractions/",
            {"model": model_id, "corpus": corpus_id, "streams": 2},
            format="json",
        ),
        202,
    )
    ss_id = _job(alice, r, "extract")["result"]["stateset"]
    # A model whose weights are not a model: the upload succeeds, its job fails.
    r = s.ok(
        "alice",
        "model.uploaded",
        alice.post(
            "/api/projects/brackets/models/",
            {
                "weights": SimpleUploadedFile("w.safetensors", b"not weights at all"),
                "vocab": SimpleUploadedFile("vocab.json", b'["a", "b"]'),
            },
            format="multipart",
        ),
        202,
    )
    assert _job(alice, r, "model_upload")["status"] == "failed"

    # The analysis page, a window, a selection, matches.
    s.ok("alice", "stateset.viewed", _page(owner).get(f"/statesets/{ss_id}/"))
    s.refuse(_page(outsider).get(f"/statesets/{ss_id}/"), 404)
    desc = alice.get(f"/api/statesets/{ss_id}/").json()
    source = desc["sources"][0]["id"]
    n = desc["length"]
    context = alice.get(
        f"/api/statesets/{ss_id}/context/", {"source": source, "start": 0, "end": 49}
    )
    assert context.status_code == 200
    body = {"source": source, "start": 10, "end": 14, "threshold": 0.0}
    s.ok(
        "alice",
        "selection.made",
        alice.post(f"/api/statesets/{ss_id}/selection/", body, format="json"),
    )
    s.refuse(
        alice.post(f"/api/statesets/{ss_id}/selection/", {**body, "end": 2}, format="json"), 400
    )
    query = {"source": source, "cells": [0, 1], "threshold": 0.0}
    url = f"/api/statesets/{ss_id}/matches/"
    first = alice.post(url, query, format="json")
    if first.status_code == 202:  # longer than the short wait (a fresh worker compiles)
        _job(alice, first, "match")
        s.ok("alice", "match.run", first, 202)
    else:
        s.ok("alice", "match.run", first)
    again = s.ok("alice", "match.run", alice.post(url, query, format="json"))
    assert again.json()["reused"] is True
    match_id = again.json()["id"]
    s.refuse(charlie.post(url, query, format="json"), 404)
    s.refuse(alice.post(url, {"source": source, "threshold": 0.0}, format="json"), 400)
    v2 = f"/api/v2/match?project=brackets/{ss_id}&cells=0,1&activation=0"
    s.ok("alice", "match.run", alice.get(v2))
    s.refuse(alice.get("/api/v2/match?project=nope&cells=0,1"), 404)

    # A track, a ranking against it, a hypothesis, its statistics.
    lines = "".join(f"{i % 4}\n" for i in range(n))
    r = s.ok(
        "alice",
        "annotation.uploaded",
        alice.post(
            f"/api/statesets/{ss_id}/annotations/",
            {
                "file": SimpleUploadedFile("depth.txt", lines.encode()),
                "name": "depth",
                "kind": "scalar",
                "format": "lines",
            },
            format="multipart",
        ),
        202,
    )
    _job(alice, r, "annotation_upload")
    ranking = {"source": source, "annotation": "depth"}
    r = s.ok(
        "alice",
        "ranking.run",
        alice.post(f"/api/statesets/{ss_id}/rankings/", ranking, format="json"),
        202,
    )
    ranking_id = _job(alice, r, "ranking")["result"]["ranking"]
    s.ok(
        "alice",
        "ranking.run",
        alice.post(f"/api/statesets/{ss_id}/rankings/", ranking, format="json"),
    )
    r = s.ok(
        "alice",
        "hypothesis.saved",
        alice.post(
            "/api/hypotheses/",
            {"stateset": ss_id, "title": "inside", "source": source, "cells_added": [0, 1],
             "threshold": 0.0},
            format="json",
        ),
        201,
    )  # fmt: skip
    hyp = r.json()["id"]
    s.ok(
        "alice",
        "hypothesis.saved",
        alice.patch(f"/api/hypotheses/{hyp}/", {"title": "inside brackets"}, format="json"),
    )
    s.refuse(alice.patch(f"/api/hypotheses/{hyp}/", {}, format="json"), 400)
    s.ok(
        "alice",
        "hypothesis.shared",
        alice.post(f"/api/hypotheses/{hyp}/shares/", {"username": "bob", "role": "editor"}),
        201,
    )
    s.refuse(bob.post(f"/api/hypotheses/{hyp}/shares/", {"username": "alice"}), 403)
    s.ok("bob", "hypothesis.forked", bob.post(f"/api/hypotheses/{hyp}/fork/", {}), 201)
    s.ok(
        "bob",
        "hypothesis.commented",
        bob.post(f"/api/hypotheses/{hyp}/comments/", {"body": "nice"}),
        201,
    )
    s.refuse(charlie.post(f"/api/hypotheses/{hyp}/comments/", {"body": "x"}), 404)
    stats_url = f"/api/hypotheses/{hyp}/statistics/"
    r = s.ok(
        "alice",
        "statistics.run",
        alice.post(stats_url, {"annotation": "depth", "threshold": 1}, format="json"),
        202,
    )
    statistics_id = _job(alice, r, "statistics")["result"]["statistics"]
    s.refuse(alice.post(stats_url, {"annotation": "nope", "threshold": 1}, format="json"), 400)

    # Downloads.
    export = f"/api/statesets/{ss_id}/export/?source={source}&start=0&end=9"
    s.ok("bob", "export.downloaded", bob.get(export + "&format=csv"))
    s.refuse(bob.get(export + "&format=xls"), 400)
    s.ok("alice", "export.downloaded", alice.get(f"/api/rankings/{ranking_id}/export/"))
    s.ok("alice", "export.downloaded", alice.get(f"/api/statistics/{statistics_id}/export/"))
    s.ok("alice", "export.downloaded", alice.get(f"/api/matches/{match_id}/export/"))
    s.ok(
        "alice",
        "export.downloaded",
        alice.get(f"/api/hypotheses/{hyp}/export/?start=0&end=9&format=csv"),
    )
    done_job = Job.objects.filter(status="succeeded").first()
    s.refuse(alice.post(f"/api/jobs/{done_job.id}/cancel/"), 409)
    assert s.refused == 14

    # Every job has ended; each left one event of its outcome.
    for job in Job.objects.all():
        job_wait_api(alice, str(job.id), seconds=120)
    jobs = {str(j.id): j for j in Job.objects.all()}
    assert all(j.status in FINISHED for j in jobs.values())
    events = _events_settle(sum(s.expected.values()) + len(jobs))
    job_events = Counter((e.object_id, e.kind) for e in events if e.kind.startswith("job."))
    assert job_events == Counter((i, OUTCOME[j.status]) for i, j in jobs.items())
    for e in events:
        if e.kind.startswith("job."):
            job = jobs[e.object_id]
            assert (e.username, e.project) == ("alice", "brackets")
            assert e.summary["job_kind"] == job.kind
            assert e.summary["duration_s"] == pytest.approx(
                (job.finished_at - job.started_at).total_seconds(), abs=0.01
            )
    actions = Counter(
        (e.username, e.kind, e.project) for e in events if not e.kind.startswith("job.")
    )
    assert actions == s.expected
    assert not [e for e in events if e.username == "charlie"]
    # what a summary holds: parameters, never the text, the body or a query string
    for e in events:
        blob = str(e.summary)
        assert "nice" not in blob and "((a)" not in blob and "format=" not in blob
    matched = [e.summary for e in events if e.kind == "match.run"]
    assert matched[0].get("cached", False) is False and matched[1]["cached"] is True
    assert matched[0]["answered"] is (first.status_code == 200)
    assert all(m["cells"] == 2 and m["corpus_tokens"] == n for m in matched)
    assert all(m["latency_ms"] > 0 for m in matched)
    answered = [m for m in matched if m["answered"]]

    # The dashboard: the project's owner, the lab's staff; the same after the rollup.
    owner_view = _figures(alice, "?project=brackets")
    in_project = Counter(e.kind for e in events)
    assert owner_view["totals"]["by_kind"] == dict(in_project)
    assert owner_view["totals"]["actions"] == sum(s.expected.values())
    assert owner_view["totals"]["active_users"] == 2
    assert owner_view["tables"]["daily_active"][-1]["users"] == 2
    by_job = {r["job_kind"]: r for r in owner_view["tables"]["jobs"]}
    for j in jobs.values():
        assert by_job[j.kind]["finished" if j.status == "succeeded" else "failed"] >= 1
    assert by_job["model_upload"]["failed"] == 1 and by_job["model_upload"]["finished"] == 0
    assert sum(r["finished"] + r["failed"] for r in by_job.values()) == len(jobs)
    assert owner_view["totals"]["latency"]["match"]["count"] == len(answered)
    assert owner_view["totals"]["latency"]["context"]["count"] == 1
    today_matches = owner_view["tables"]["matches"][-1]
    assert today_matches["day"] == timezone.now().date().isoformat()
    assert today_matches["cached"] == sum(m["cached"] for m in answered) >= 1
    assert today_matches["cached"] + today_matches["computed"] == len(answered)
    assert today_matches["pending"] == 3 - len(answered)
    assert owner_view["tables"]["hypotheses"][0]["hypothesis"] == hyp
    assert owner_view["tables"]["hypotheses"][0]["title"] == "inside brackets"
    assert owner_view["tables"]["users"][0]["user"] == "alice"
    bob_view = _figures(bob, "")
    assert bob_view["totals"]["by_kind"] == {
        "hypothesis.forked": 1,
        "hypothesis.commented": 1,
        "export.downloaded": 1,
    }
    staff = make_user("stella", admin=True)
    lab = _figures(_as(staff), "")
    assert lab["totals"]["by_kind"] == owner_view["totals"]["by_kind"]

    today = timezone.now().date()
    _, tomorrow = day_bounds(today)
    assert usage_rollup_day(day=today, now=tomorrow + timedelta(seconds=1)).final
    assert _figures(alice, "?project=brackets") == owner_view
    assert _figures(_as(staff), "") == lab
