"""Daily rollups and retention: the dashboard gives the same figures from rollups as from
raw events; a rollup can be run again for a day; raw events go after the retention,
only once their day is rolled up, and only through the retention path."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from backend.usage.models import (
    AppendOnlyError,
    DailyActivity,
    DailyRollup,
    ResearchEvent,
    RollupDay,
    UsageEvent,
)
from backend.usage.services import (
    bucket_of,
    bucket_value,
    hist_percentile,
    month_last,
    month_of,
    usage_events_expire,
    usage_housekeeping,
    usage_rollup_day,
    usage_rollup_due,
)
from tests.support.usage import at_day, days_ago, record, request_event

pytestmark = pytest.mark.django_db


def _as(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


def _seed(owner, collaborator, days=(3, 2, 1, 0)):
    """A few days of varied events: matches with latencies, jobs, hypotheses, contexts."""
    rng = random.Random(4)
    for n in days:
        day = days_ago(n)
        for i in range(12):
            who = owner if i % 3 else collaborator
            at = at_day(day, hour=i % 12, minute=n)
            record(who, "project.opened", at=at)
            record(
                who,
                "match.run",
                at=at,
                object_id=f"m{i}",
                cells=3,
                corpus_tokens=1000,
                latency_ms=rng.lognormvariate(3, 1),
                answered=i % 5 != 0,
                cached=i % 2 == 0,
            )
            record(who, "hypothesis.saved", at=at, hypothesis=f"h{i % 4}")
            request_event(who, rng.lognormvariate(2, 0.5), at=at)
        record(None, "job.finished", at=at_day(day, 20), job_kind="match", duration_s=0.2)
        record(owner, "job.failed", at=at_day(day, 21), job_kind="extract", duration_s=12.5)
        record(owner, "job.finished", at=at_day(day, 22), job_kind="extract", duration_s=30.0)
        record(owner, "job.cancelled", at=at_day(day, 23), job_kind="train")
        record(owner, "project.opened", project="other", at=at_day(day, 23))


def _months_closed_since(day):
    """Months from `day`'s on that ended before today."""
    month, n = month_of(day), 0
    while month_last(month) < timezone.now().date():
        n += 1
        month = month_last(month) + timedelta(days=1)
    return n


def _figures(client, query):
    answer = client.get(f"/api/usage/{query}").json()
    totals = dict(answer["totals"])
    sources = (totals.pop("days_from_rollups"), totals.pop("days_from_events"))
    return {"tables": answer["tables"], "totals": totals}, sources


def test_the_dashboard_reads_the_same_figures_from_rollups_as_from_events(
    owner, collaborator, staff, project
):
    _seed(owner, collaborator)
    first = days_ago(3).isoformat()
    queries = [
        f"?from={first}",
        f"?from={first}&project=brackets",
        f"?from={first}&user=alice",
        f"?from={first}&user=bob",
    ]
    before = {q: _figures(_as(staff), q) for q in queries}
    assert all(sources == (0, 4) for _, sources in before.values())
    assert usage_rollup_due() == [days_ago(3), days_ago(2), days_ago(1)]
    after = {q: _figures(_as(staff), q) for q in queries}
    for q in queries:
        assert after[q][1] == (3, 1), q
        assert after[q][0] == before[q][0], q
    lab = after[queries[0]][0]
    assert lab["totals"]["by_kind"]["match.run"] == 48
    assert lab["totals"]["actions"] == 4 * (12 * 3 + 1)
    jobs = {r["job_kind"]: r for r in lab["tables"]["jobs"]}
    assert (jobs["extract"]["finished"], jobs["extract"]["failed"]) == (4, 4)
    assert jobs["extract"]["failure_rate"] == 0.5
    assert jobs["extract"]["mean_s"] == pytest.approx(21.25)
    assert jobs["train"]["cancelled"] == 4
    matches = lab["tables"]["matches"]
    assert [sum(r[k] for k in ("cached", "computed", "pending")) for r in matches] == [12] * 4
    day_lat = [r for r in lab["tables"]["latency"] if r["metric"] == "match"]
    assert len(day_lat) == 4 and all(r["count"] == 9 for r in day_lat)
    assert [r["users"] for r in lab["tables"]["daily_active"]] == [2, 2, 2, 2]


def test_a_rollup_run_again_replaces_its_day(owner, collaborator, project):
    _seed(owner, collaborator, days=(2,))
    day = days_ago(2)

    def rows():
        return sorted(
            DailyRollup.objects.filter(day=day).values_list(
                "scope", "key", "family", "series", "count", "total", "p50", "p95"
            )
        ), sorted(
            DailyActivity.objects.filter(day=day).values_list("user_id", "project", "actions")
        )

    usage_rollup_day(day=day)
    first = rows()
    usage_rollup_day(day=day)
    assert rows() == first
    record(owner, "project.opened", at=at_day(day, 23, 59))
    usage_rollup_day(day=day)
    lab = DailyRollup.objects.get(day=day, scope="lab", family="kind", series="project.opened")
    assert lab.count == 12 + 1 + 1  # replaced, not added to
    marker = RollupDay.objects.get(day=day)
    assert marker.final and marker.events == 12 * 3 + 5 + 1


def test_today_rolled_up_stays_read_from_events(owner, project):
    record(owner, "project.opened")
    marker = usage_rollup_day(day=timezone.now().date())
    assert not marker.final
    record(owner, "project.opened")
    answer = _as(owner).get("/api/usage/").json()
    assert answer["totals"]["by_kind"] == {"project.opened": 2}
    assert answer["totals"]["days_from_events"] == 30


def test_rollup_due_covers_the_days_between_events_and_not_today(owner, project):
    record(owner, "project.opened", at=at_day(days_ago(5)))
    record(owner, "project.opened", at=at_day(days_ago(2)))
    record(owner, "project.opened")
    assert usage_rollup_due() == [days_ago(n) for n in (5, 4, 3, 2, 1)]
    assert usage_rollup_due() == []
    assert not RollupDay.objects.filter(day=timezone.now().date()).exists()
    assert set(RollupDay.objects.values_list("final", flat=True)) == {True}


def test_retention_deletes_old_raw_events_only_once_rolled_up(owner, staff, project, settings):
    assert settings.STATELAB_USAGE_RETENTION_DAYS == 400
    old, edge, kept = days_ago(401), days_ago(400), days_ago(399)
    for day in (old, edge, kept):
        record(owner, "match.run", at=at_day(day), latency_ms=20.0)
        request_event(owner, 5.0, at=at_day(day))
    assert usage_events_expire() == {"research_events": 0, "request_events": 0}
    assert ResearchEvent.objects.count() == 3  # no rollup yet: nothing may go

    done = usage_housekeeping()
    assert done == {
        "days_rolled_up": 401,
        "months_merged": _months_closed_since(old),
        "research_events": 1,
        "request_events": 1,
    }
    assert sorted(e.at.date() for e in ResearchEvent.objects.all()) == [edge, kept]
    assert sorted(e.at.date() for e in UsageEvent.objects.all()) == [edge, kept]
    # the figures of the day deleted live on in its rollup
    answer = _as(staff).get(f"/api/usage/?from={old}&to={old}").json()
    assert answer["totals"]["by_kind"] == {"match.run": 1}
    assert answer["totals"]["latency"]["context"]["count"] == 1
    again = usage_housekeeping()
    assert again == {
        "days_rolled_up": 0,
        "months_merged": 0,
        "research_events": 0,
        "request_events": 0,
    }


def test_retention_stops_at_a_day_not_rolled_up(owner, project):
    for n in (405, 403, 402):
        record(owner, "project.opened", at=at_day(days_ago(n)))
    usage_rollup_day(day=days_ago(405), now=timezone.now())
    usage_rollup_day(day=days_ago(404), now=timezone.now())
    # 403 has no rollup: it and everything after it stay
    assert usage_events_expire()["research_events"] == 1
    assert sorted(e.at.date() for e in ResearchEvent.objects.all()) == [
        days_ago(403),
        days_ago(402),
    ]


def test_zero_retention_keeps_everything(owner, project, settings):
    settings.STATELAB_USAGE_RETENTION_DAYS = 0
    record(owner, "project.opened", at=at_day(days_ago(900)))
    usage_rollup_due()
    assert usage_events_expire() == {"research_events": 0, "request_events": 0}
    assert ResearchEvent.objects.count() == 1


def test_events_stay_append_only_outside_retention(owner, project):
    event = record(owner, "project.opened", at=at_day(days_ago(500)))
    event.kind = "match.run"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        ResearchEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        ResearchEvent.objects.update(kind="x")


def test_postgresql_lets_only_retention_delete(owner, project):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    record(owner, "project.opened", at=at_day(days_ago(500)))
    record(owner, "project.opened", at=at_day(days_ago(10)))
    for sql in (
        "DELETE FROM usage_researchevent",
        "UPDATE usage_researchevent SET kind = 'x'",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(sql)
    limit = (timezone.now() - timedelta(days=400)).isoformat()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT set_config('statelab.retention_before', %s, true)", [limit])
        cur.execute("DELETE FROM usage_researchevent WHERE at < %s", [limit])
        assert cur.rowcount == 1
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT set_config('statelab.retention_before', %s, true)", [limit])
            cur.execute("DELETE FROM usage_researchevent")  # a newer row: refused
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cur:  # the limit lasted one transaction
            cur.execute("DELETE FROM usage_researchevent")
    assert ResearchEvent.objects.count() == 1


def test_the_hourly_task_is_scheduled_and_runs(owner, project, settings):
    from backend.config.celery_app import app
    from backend.usage.tasks import usage_rollup

    scheduled = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "statelab.usage_rollup" in scheduled
    app.loader.import_default_modules()
    assert "statelab.usage_rollup" in app.tasks
    record(owner, "project.opened", at=at_day(days_ago(1)))
    done = usage_rollup()
    assert done["days_rolled_up"] == 1 and done["research_events"] == 0
    assert RollupDay.objects.get(day=days_ago(1)).final


def test_management_command_rolls_up_a_range(owner, project, capsys):
    record(owner, "project.opened", at=at_day(days_ago(3)))
    day3, day1 = days_ago(3).isoformat(), days_ago(1).isoformat()
    call_command("usage_rollup", "--from", day3, "--to", day1)
    assert f"Rolled up 3 day(s), {day3} to {day1}." in capsys.readouterr().out
    assert RollupDay.objects.filter(final=True).count() == 3
    call_command("usage_rollup", "--expire")
    out = capsys.readouterr().out
    assert "No day was due" in out and "Deleted 0 research events" in out
    with pytest.raises(CommandError, match="--from must be a date as YYYY-MM-DD, not 'soon'"):
        call_command("usage_rollup", "--from", "soon")
    with pytest.raises(CommandError, match="--to must not be before --from"):
        call_command("usage_rollup", "--from", day1, "--to", day3)


def test_merged_percentiles_stay_within_a_bucket_of_the_exact_ones():
    rng = random.Random(11)
    for _ in range(30):
        values = sorted(
            rng.lognormvariate(rng.uniform(-2, 8), rng.uniform(0.1, 2)) for _ in range(500)
        )
        hist: dict[str, int] = {}
        for v in values:
            hist[str(bucket_of(v))] = hist.get(str(bucket_of(v)), 0) + 1
        for q in (0.5, 0.95):
            exact = values[int(q * (len(values) - 1))]
            assert hist_percentile(hist, q) == pytest.approx(exact, rel=0.045)
    assert bucket_value(bucket_of(1.0)) == pytest.approx(1.0, rel=0.045)
    assert hist_percentile({}, 0.5) is None
