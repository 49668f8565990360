"""Housekeeping of the match store: unused and over-budget results go, pinned and
pending ones stay, a reuse racing with the sweep is never left with a dangling row,
and the sweep runs from the command, the Celery task and after a match is recorded."""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from backend.core.errors import ApplicationError
from backend.hypotheses.models import Hypothesis, HypothesisVersion
from backend.jobs.models import Job, JobStatus
from backend.matching import services
from backend.matching.models import Match, MatchStatus
from backend.matching.selectors import match_settle
from backend.matching.services import (
    match_query_build,
    match_record,
    match_start,
    match_store_evict,
    match_touch,
)
from workers.core.match_types import MatchHit, MatchResult

MB = 1 << 20


@pytest.fixture
def ss(stateset):
    return stateset[0]


@pytest.fixture
def now():
    return timezone.now()


def _stored(ss, *, used, size=1000, status=MatchStatus.DONE, key=None):
    """A stored match last used at `used`, counting `size` bytes against the budget."""
    return Match.objects.create(
        stateset=ss,
        source="s0",
        cache_key=key or uuid.uuid4().hex,
        query={"cells": [0, 1]},
        status=status,
        result={"hits": [], "strict": [], "fuzzy": []} if status == MatchStatus.DONE else {},
        result_bytes=size if status == MatchStatus.DONE else 0,
        last_used_at=used,
    )


def _pin(match, owner, project, number=1):
    """A saved hypothesis version whose stored match is `match`."""
    hyp = Hypothesis.objects.create(stateset=match.stateset, project=project, owner=owner)
    return HypothesisVersion.objects.create(
        hypothesis=hyp, number=number, title="brackets", source="s0", threshold=0.3, match=match
    )


def _exists(match) -> bool:
    return Match.objects.filter(id=match.id).exists()


# The two rules, and what they never touch.


@pytest.mark.django_db
def test_an_old_unpinned_done_match_is_evicted(ss, now):
    old = _stored(ss, used=now - timedelta(days=31), size=1234)
    done = match_store_evict(now)
    assert not _exists(old)
    assert done["evicted_unused"] == 1 and done["evicted"] == 1
    assert done["bytes_freed"] == 1234 and done["stored_bytes"] == 0


@pytest.mark.django_db
def test_a_recently_used_match_is_kept(ss, now, settings):
    settings.STATELAB_MATCH_KEEP_DAYS = 30
    recent = _stored(ss, used=now - timedelta(days=29))
    old = _stored(ss, used=now - timedelta(days=30, minutes=1))
    done = match_store_evict(now)
    assert _exists(recent) and not _exists(old)
    assert done["evicted_unused"] == 1


@pytest.mark.django_db
def test_keep_days_zero_turns_the_age_rule_off(ss, now, settings):
    settings.STATELAB_MATCH_KEEP_DAYS = 0
    old = _stored(ss, used=now - timedelta(days=3650))
    assert match_store_evict(now)["evicted"] == 0
    assert _exists(old)


@pytest.mark.django_db
def test_a_pinned_match_is_kept_however_old_and_over_budget(ss, now, owner, project, settings):
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 1
    pinned = _stored(ss, used=now - timedelta(days=3650), size=5 * MB)
    _pin(pinned, owner, project)
    loose = _stored(ss, used=now - timedelta(days=3650), size=10)
    done = match_store_evict(now)
    assert _exists(pinned) and not _exists(loose)
    assert done["evicted"] == 1 and done["stored_bytes"] == 5 * MB


@pytest.mark.django_db
def test_a_pending_match_is_kept_however_old_and_over_budget(ss, now, settings):
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 1
    pending = _stored(ss, used=now - timedelta(days=3650), status=MatchStatus.PENDING)
    big = _stored(ss, used=now - timedelta(hours=1), size=2 * MB)
    done = match_store_evict(now)
    assert _exists(pending) and not _exists(big)
    assert done["evicted_unused"] == 0 and done["evicted_over_budget"] == 1


@pytest.mark.django_db
def test_over_budget_the_least_recently_used_go_first_until_under_budget(
    ss, now, owner, project, settings
):
    settings.STATELAB_MATCH_KEEP_DAYS = 0  # only the budget rule
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 2.5
    pinned = _stored(ss, used=now - timedelta(hours=10), size=MB)  # the oldest, but pinned
    _pin(pinned, owner, project)
    rows = [_stored(ss, used=now - timedelta(hours=h), size=MB) for h in (5, 4, 3, 2, 1)]
    # 6 MB stored, 1 MB of it pinned: the four oldest unpinned go, 2 MB stay.
    done = match_store_evict(now)
    assert [_exists(m) for m in rows] == [False, False, False, False, True]
    assert _exists(pinned)
    assert done["evicted_over_budget"] == 4 and done["evicted_unused"] == 0
    assert done["bytes_freed"] == 4 * MB and done["stored_bytes"] == 2 * MB
    assert done["budget_bytes"] == int(2.5 * MB)
    # within the budget now: a second sweep removes nothing
    assert match_store_evict(now)["evicted"] == 0


@pytest.mark.django_db
def test_over_budget_a_result_used_minutes_ago_stays(ss, now, settings):
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 1
    just_used = _stored(ss, used=now - timedelta(minutes=1), size=3 * MB)
    idle = _stored(ss, used=now - timedelta(minutes=30), size=MB)
    done = match_store_evict(now)
    assert _exists(just_used) and not _exists(idle)
    assert done["stored_bytes"] == 3 * MB


@pytest.mark.django_db
def test_a_large_store_is_swept_in_batches(ss, now, settings, monkeypatch):
    monkeypatch.setattr(services, "EVICT_BATCH", 3)
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 10 / MB  # 10 bytes
    for h in range(8):
        _stored(ss, used=now - timedelta(days=40 + h), size=1)
    for h in range(7):
        _stored(ss, used=now - timedelta(hours=1 + h), size=2)
    done = match_store_evict(now)
    assert done["evicted_unused"] == 8
    # 14 bytes over 10: the two least recently used go (7 and 6 hours ago), 10 stay
    assert done["evicted_over_budget"] == 2 and done["stored_bytes"] == 10
    assert Match.objects.count() == 5


@pytest.mark.django_db
def test_a_row_pinned_or_pending_once_locked_is_not_deleted(ss, now, owner, project):
    """Rows are looked at again after they are locked: a pin committed while they were
    selected (or a pending row) keeps them, whatever the selection said."""
    pinned = _stored(ss, used=now - timedelta(days=90))
    _pin(pinned, owner, project)
    pending = _stored(ss, used=now - timedelta(days=90), status=MatchStatus.PENDING)
    loose = _stored(ss, used=now - timedelta(days=90))
    seen, deleted, _ = services._evict_batch(Match.objects.all())  # a stale selection
    assert (seen, deleted) == (3, 1)
    assert _exists(pinned) and _exists(pending) and not _exists(loose)


# Races with a request that reuses a row.


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_reuse_racing_with_the_delete_is_never_left_with_a_dangling_row(ss, now, monkeypatch):
    """A request touches a row the sweep has already chosen: its touch waits for the
    sweep and then reports the row gone (so the request computes it again); it never
    reports success for a row that is then deleted."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks between connections need PostgreSQL")
    old = _stored(ss, used=now - timedelta(days=40))
    other = _stored(ss, used=now - timedelta(days=41))
    outcome: dict[str, object] = {}
    started = threading.Event()

    def reuse():
        try:
            outcome["pid"] = _backend_pid()
            started.set()
            outcome["touched"] = match_touch(match=Match(id=old.id))
        finally:
            connection.close()

    original = services._lock_batch

    def lock_then_race(candidates):
        rows = original(candidates)
        thread = threading.Thread(target=reuse)
        thread.start()
        outcome["thread"] = thread
        assert started.wait(10)
        deadline = time.monotonic() + 3
        while not _waits_for_a_lock(outcome["pid"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return rows

    monkeypatch.setattr(services, "_lock_batch", lock_then_race)
    done = match_store_evict(now)
    outcome["thread"].join(10)
    assert "touched" in outcome
    assert outcome["touched"] is _exists(old)
    assert outcome["touched"] is False and done["evicted_unused"] == 2
    assert not _exists(other)


@pytest.mark.django_db(transaction=True)
def test_a_row_held_by_a_reuse_in_progress_is_passed_over(ss, now):
    """A request whose touch is not yet committed holds the row: the sweep does not
    wait for it, removes the rest, and the row stays (recently used once committed)."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks between connections need PostgreSQL")
    held = _stored(ss, used=now - timedelta(days=40))
    loose = _stored(ss, used=now - timedelta(days=40))
    locked, swept = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def reuse():
        try:
            with transaction.atomic():
                outcome["touched"] = match_touch(match=Match(id=held.id))
                locked.set()
                outcome["sweep_did_not_wait"] = swept.wait(5)
        finally:
            connection.close()

    thread = threading.Thread(target=reuse)
    thread.start()
    assert locked.wait(10)
    done = match_store_evict(now)
    swept.set()
    thread.join(10)
    assert outcome["touched"] is True and outcome["sweep_did_not_wait"] is True
    assert _exists(held) and not _exists(loose)
    assert done["evicted_unused"] == 1
    assert match_store_evict(now)["evicted"] == 0  # now recently used


@pytest.mark.django_db
def test_a_query_whose_stored_answer_vanished_is_computed_again(ss, owner, now, monkeypatch):
    """The request read the done row, then the sweep removed it before the touch:
    the touch says so and `match_start` starts computing the answer on a new row."""
    source, query = match_query_build(stateset=ss, source="s0", threshold=0.3, cells=[0, 1, 2])
    key = services.match_key(source=source, query=query)
    stale = _stored(ss, used=now - timedelta(days=40), key=key)
    assert match_store_evict(now)["evicted"] == 1
    assert match_touch(match=stale) is False

    real = services.match_row_pending
    reads = iter([stale])
    monkeypatch.setattr(services, "match_row_pending", lambda **kw: next(reads, None) or real(**kw))
    match, job = match_start(stateset=ss, user=owner, source=source, query=query)
    assert job is not None and job.kind == "match"
    assert match.id != stale.id and match.status == MatchStatus.PENDING
    assert Match.objects.filter(cache_key=key).get().id == match.id


@pytest.mark.django_db
def test_a_waiting_request_whose_answer_was_removed_gets_a_clear_error(ss, project):
    match = _stored(ss, used=timezone.now())
    job = Job.objects.create(kind="match", project=project, status=JobStatus.SUCCEEDED)
    Match.objects.filter(id=match.id).delete()
    with pytest.raises(ApplicationError) as err:
        match_settle(match, job, wait_s=0)
    assert err.value.code == "match_gone" and err.value.status_code == 409


# Where the sweep runs.


def _result(n_hits: int) -> MatchResult:
    hits = [MatchHit(i * 10, 3, 2, 2, 1.0, 0) for i in range(n_hits)]
    return MatchResult(hits, [0, 0, 1, 4], [0, 0, 2, 5, 1], True, 0, 12)


def _record_one(ss, project):
    """Record a match as the worker does; returns the row."""
    match = _stored(ss, used=timezone.now(), status=MatchStatus.PENDING)
    job = Job.objects.create(kind="match", project=project, status=JobStatus.RUNNING)
    match_record(match_id=match.id, job=job, result=_result(3), seconds=0.01)
    match.refresh_from_db()
    return match


@pytest.fixture
def sweep_clock(monkeypatch):
    """The per-process and shared marks of the last sweep, as in a fresh worker."""
    monkeypatch.setattr(services, "_next_evict_check", 0.0)
    cache.delete(services.EVICT_CACHE_KEY)
    yield
    cache.delete(services.EVICT_CACHE_KEY)


@pytest.mark.django_db
def test_recording_a_match_stores_its_size(ss, project, sweep_clock, settings):
    settings.STATELAB_MATCH_EVICT_EVERY_S = 0
    match = _record_one(ss, project)
    assert match.status == MatchStatus.DONE
    compact = json.dumps(match.result, separators=(",", ":"), ensure_ascii=False)
    assert match.result_bytes == len(compact.encode()) > 0


@pytest.mark.django_db
def test_recording_a_match_sweeps_the_store_when_due(
    ss, project, now, settings, sweep_clock, django_capture_on_commit_callbacks
):
    settings.STATELAB_MATCH_EVICT_EVERY_S = 600
    first = _stored(ss, used=now - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert not _exists(first)
    # within the interval the next recorded match does not sweep again
    second = _stored(ss, used=now - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert _exists(second)
    # another process (its own clock) sees the shared mark and does not sweep either
    services._next_evict_check = 0.0
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert _exists(second)
    # nor does a process whose own clock says it swept lately, whatever the cache holds
    cache.delete(services.EVICT_CACHE_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert _exists(second)
    # once the interval is over it sweeps again
    services._next_evict_check = 0.0
    cache.delete(services.EVICT_CACHE_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert not _exists(second)


@pytest.mark.django_db
def test_no_sweep_after_recording_when_the_interval_is_zero(
    ss, project, now, settings, sweep_clock, django_capture_on_commit_callbacks
):
    settings.STATELAB_MATCH_EVICT_EVERY_S = 0
    old = _stored(ss, used=now - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=True):
        _record_one(ss, project)
    assert _exists(old)


@pytest.mark.django_db
def test_the_celery_task_sweeps_and_beat_runs_it_hourly(ss, now, settings):
    from backend.config.celery_app import app

    old = _stored(ss, used=now - timedelta(days=40))
    app.loader.import_default_modules()
    answer = app.tasks["statelab.match_evict"].apply().get()
    assert answer["evicted_unused"] == 1 and not _exists(old)
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "statelab.match_evict"
    )
    assert entry["schedule"] == 3600


@pytest.mark.django_db
def test_the_command_sweeps_and_says_what_it_did(ss, now, settings):
    settings.STATELAB_MATCH_STORE_BUDGET_MB = 512
    old = _stored(ss, used=now - timedelta(days=40), size=2048)
    newer = _stored(ss, used=now - timedelta(days=10), size=MB)
    out = io.StringIO()
    call_command("evict_matches", stdout=out)
    text = out.getvalue()
    assert "Evicted 1 match results unused for more than 30 days." in text
    assert "Evicted 0 match results" in text and "within 512 MB" in text
    assert "Freed 2.0 KB; 1.0 MB of results stay stored" in text
    assert not _exists(old) and _exists(newer)
    # the options override the settings for one run
    out = io.StringIO()
    call_command("evict_matches", "--keep-days", "0", "--budget-mb", "0.5", stdout=out)
    assert "No age limit" in out.getvalue()
    assert "Evicted 1 match results, least recently used first" in out.getvalue()
    assert not _exists(newer)


@pytest.mark.django_db
def test_the_migration_measures_results_stored_before_it(ss, now):
    migration = importlib.import_module("backend.matching.migrations.0002_match_result_bytes")
    result = {"hits": [{"position": 1, "length": 2}], "strict": [[2, 1]], "fuzzy": [[2, 3]]}
    done = _stored(ss, used=now, size=0)
    Match.objects.filter(id=done.id).update(result=result)
    pending = _stored(ss, used=now, status=MatchStatus.PENDING)
    from django.apps import apps

    migration.measure_results(apps, SimpleNamespace(connection=connection))
    done.refresh_from_db()
    pending.refresh_from_db()
    assert pending.result_bytes == 0
    # the database's JSON text, spaces included: close to the compact size
    compact = len(json.dumps(result, separators=(",", ":")))
    assert compact <= done.result_bytes <= compact * 1.5
