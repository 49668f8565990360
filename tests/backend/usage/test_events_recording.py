"""How research events are recorded: held until the request's answer is known and
written only for a success; after the commit of the transaction that emitted them;
at once in a worker; never breaking the request; summaries kept small and plain."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory

from backend.core.events import event_emit, events_collect, summary_clean
from backend.usage.middleware import UsageMiddleware
from backend.usage.models import ResearchEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _call(user, status: int, *, emit_in_atomic: bool = False, fail: bool = False):
    def view(request):
        if emit_in_atomic:
            with transaction.atomic():
                event_emit("project.opened", user=user, project="brackets")
                if fail:
                    raise RuntimeError("rolled back")
        else:
            event_emit("project.opened", user=user, project="brackets", summary={"n": 1})
        return HttpResponse(status=status)

    request = RequestFactory().get("/p/brackets/")
    request.user = user
    return UsageMiddleware(view)(request)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 302])
def test_a_successful_request_writes_its_event(owner, status):
    assert _call(owner, status).status_code == status
    event = ResearchEvent.objects.get()
    assert (event.username, event.kind, event.project, event.summary) == (
        "alice",
        "project.opened",
        "brackets",
        {"n": 1},
    )
    assert event.user_id == owner.pk


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 429, 500, 503])
def test_a_refused_or_failed_request_writes_none(owner, status):
    assert _call(owner, status).status_code == status
    assert not ResearchEvent.objects.exists()


def test_an_event_waits_for_its_transaction(owner):
    _call(owner, 200, emit_in_atomic=True)
    assert ResearchEvent.objects.count() == 1
    with pytest.raises(RuntimeError):
        _call(owner, 200, emit_in_atomic=True, fail=True)
    assert ResearchEvent.objects.count() == 1


def test_outside_a_request_an_event_is_written_at_once_or_after_commit(owner):
    event_emit("job.finished", user_id=owner.pk, username="alice", project="brackets")
    assert ResearchEvent.objects.count() == 1
    with transaction.atomic():
        event_emit("job.failed", user_id=owner.pk, username="alice", project="brackets")
        assert ResearchEvent.objects.count() == 1
    assert ResearchEvent.objects.count() == 2
    with events_collect() as held:
        event_emit("job.failed", user_id=owner.pk, username="alice")
    assert [e.kind for e in held] == ["job.failed"] and ResearchEvent.objects.count() == 2


def test_recording_never_breaks_the_request(owner, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the database is gone")

    import backend.usage.middleware
    import backend.usage.services

    monkeypatch.setattr(backend.usage.services, "records_insert", broken)
    assert _call(owner, 200).status_code == 200
    assert "the event writer research-events failed" in caplog.text
    monkeypatch.setattr(backend.usage.middleware, "records_insert", broken)
    request = RequestFactory().get("/api/projects/")
    request.user = owner
    assert UsageMiddleware(lambda r: HttpResponse(status=200))(request).status_code == 200
    assert "could not record a usage event" in caplog.text
    assert not ResearchEvent.objects.exists()
    event_emit("no.such.kind", user=owner)  # logged, not raised
    assert "unknown research event kind" in caplog.text


def test_summaries_keep_small_plain_values():
    long = "x" * 1000
    cleaned = summary_clean(
        {"text": long, "n": 3, "ok": True, "none": None, "obj": object, "cells": list(range(100))}
    )
    assert cleaned["text"] == "x" * 200 and cleaned["n"] == 3 and cleaned["ok"] is True
    assert cleaned["none"] is None and cleaned["obj"] == "<class 'object'>"
    assert cleaned["cells"] == list(range(32))
    assert len(summary_clean({f"k{i}": i for i in range(100)})) == 24
