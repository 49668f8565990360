"""Writes of the usage record: research events, the daily rollups and retention.

- `research_events_store` is the writer `backend.core.events` hands events to;
  `records_insert` writes usage records in one round trip that does not wait for
  the disk (the request log's row too).
- `usage_days_aggregate` turns raw events into rollup rows, a day at a time in one
  pass; the rollup (`usage_rollup_day`) stores them, and the dashboard uses the
  same function for the days not rolled up yet (today), so both read alike.
- `usage_rollup_due` rolls up every past day that has no final rollup yet,
  `usage_rollup_months_due` merges the closed months, `usage_events_expire` applies
  the retention: together, what the periodic task runs (`usage_housekeeping`).

A rollup replaces the rows of its day in one transaction, so running it again for a
day (the management command, a second beat) gives the same rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, TextField, Value
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from backend.core.events import SYSTEM_KINDS, Event

from .models import (
    MONTH_FAMILIES,
    DailyActivity,
    DailyRollup,
    Family,
    MonthlyRollup,
    ResearchEvent,
    RollupDay,
    RollupMonth,
    Scope,
    UsageEvent,
)

# Request events whose duration is the latency of a context window.
CONTEXT_ROUTES = (
    "api/statesets/<str:stateset_id>/context/",
    "api/hypotheses/<str:hypothesis_id>/context/",
    "api/v2/context",
)
JOB_OUTCOMES = {"job.finished": "finished", "job.failed": "failed", "job.cancelled": "cancelled"}

BUCKETS_PER_DOUBLING = 8
BUCKET_BASE = 0.001  # the lowest value told apart (ms for latencies, s for durations)
EXPIRE_BATCH = 20_000


def records_insert(objs: list[Any]) -> None:
    """Insert usage records (rows of one model) as a request can afford to.

    On PostgreSQL, outside a transaction: one round trip, one statement whose commit
    does not wait for the disk (`synchronous_commit` off for it alone; a crash of the
    database server may lose the last fraction of a second of records), instead of an
    insert that waits a millisecond or more for the disk. Elsewhere a plain insert.
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        model.objects.bulk_create(objs)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Names come from the model, values are parameters. Two statements in one message
    # run as one transaction, so SET LOCAL holds for the insert's commit.
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(f.column) for f in fields)
    values = ", ".join([row] * len(objs))
    sql = f"SET LOCAL synchronous_commit TO OFF; INSERT INTO {table} ({columns}) VALUES {values}"  # noqa: S608
    params = [f.get_db_prep_save(getattr(o, f.attname), connection) for o in objs for f in fields]
    with connection.cursor() as cur:
        cur.execute(sql, params)


def research_events_store(events: list[Event]) -> None:
    """The writer of research events: one insert for all of them."""
    _research_events_insert(events)


def _research_events_insert(events: list[Event]) -> None:
    records_insert(
        [
            ResearchEvent(
                at=e.at,
                user_id=e.user_id,
                username=e.username,
                project=e.project,
                kind=e.kind,
                object_id=e.object_id,
                summary=e.summary,
            )
            for e in events
        ]
    )


# --- values: exact percentiles of a day, mergeable histograms over days ---------------


def bucket_of(value: float) -> int:
    """The log-spaced bucket of a value: 8 per doubling from `BUCKET_BASE` (a bucket's
    middle is within 4.4% of every value in it)."""
    if not value > BUCKET_BASE:
        return 0
    return math.floor(BUCKETS_PER_DOUBLING * math.log2(value / BUCKET_BASE))


def bucket_value(bucket: int) -> float:
    """The geometric middle of a bucket."""
    return BUCKET_BASE * 2 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted `values`, interpolated linearly between ranks."""
    if not values:
        return None
    rank = q * (len(values) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)


def hist_add(into: dict[str, int], hist: dict[str, int]) -> None:
    for bucket, n in hist.items():
        into[bucket] = into.get(bucket, 0) + int(n)


def hist_percentile(hist: dict[str, int], q: float) -> float | None:
    """The q-quantile of the values a histogram counts, as its bucket's middle."""
    total = sum(hist.values())
    if not total:
        return None
    rank = math.floor(q * (total - 1))
    seen = 0
    for bucket in sorted(hist, key=int):
        seen += hist[bucket]
        if seen > rank:
            return bucket_value(int(bucket))
    return bucket_value(int(max(hist, key=int)))


# --- one day's aggregate ---------------------------------------------------------------


@dataclass
class _Figure:
    count: int = 0
    values: list[float] = field(default_factory=list)


@dataclass
class DayAggregate:
    """One day's rollup rows, unsaved."""

    day: date
    events: int = 0
    requests: int = 0
    activity: list[DailyActivity] = field(default_factory=list)
    rollups: list[DailyRollup] = field(default_factory=list)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def usage_days_aggregate(
    first: date,
    last: date,
    *,
    scope: str | None = None,
    key: str = "",
    until: datetime | None = None,
) -> list[DayAggregate]:
    """The rollup rows of each day from `first` to `last` from their raw events, read
    in one pass: every scope (the whole lab, each user, each project), or only
    `scope`/`key` (the dashboard's days not rolled up). `until` stops at that time."""
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    if until is not None:
        end = min(end, until)
    events = ResearchEvent.objects.filter(at__gte=start, at__lt=end)
    requests = UsageEvent.objects.filter(
        at__gte=start, at__lt=end, route__in=CONTEXT_ROUTES, status=200, method="GET"
    )
    if scope == Scope.USER:
        events = events.filter(user_id=int(key))
        requests = requests.filter(user_id=int(key))
    elif scope == Scope.PROJECT:
        events = events.filter(project=key)
        requests = requests.filter(project=key)

    figures: dict[tuple[date, str, str, str, str], _Figure] = defaultdict(_Figure)
    activity: dict[tuple[date, int, str], list[Any]] = {}
    counted: dict[date, list[int]] = defaultdict(lambda: [0, 0])

    only = (str(scope), key) if scope is not None else None
    lab = ("lab", "")

    def scopes_of(user_id: int | None, project: str) -> list[tuple[str, str]]:
        if only is not None:
            if only == lab:
                return [lab]
            if only[0] == "user":
                return [only] if user_id is not None and str(user_id) == only[1] else []
            return [only] if project == only[1] else []
        found = [lab]
        if user_id is not None:
            found.append(("user", str(user_id)))
        if project:
            found.append(("project", project))
        return found

    def add(
        day: date, where: list[tuple[str, str]], family: str, series: str, value: float | None
    ) -> None:
        for s, k in where:
            figure = figures[(day, s, k, family, series)]
            figure.count += 1
            if value is not None:
                figure.values.append(value)

    # The day as a date and the summary as text (parsed here, faster than per-row
    # converters): a day's events are read in well under 100 ms.
    on_day = Value(first) if first == last else TruncDate("at", tzinfo=UTC)
    rows = events.values_list(
        on_day,
        "user_id",
        "username",
        "project",
        "kind",
        "object_id",
        Cast("summary", output_field=TextField()),
    )
    for day, user_id, username, project, kind, object_id, text in rows.iterator(chunk_size=5000):
        counted[day][0] += 1
        where = scopes_of(user_id, project)
        try:
            summary = orjson.loads(text) if text and text != "{}" else {}
        except orjson.JSONDecodeError:
            summary = {}
        if not isinstance(summary, dict):
            summary = {}
        add(day, where, Family.KIND, kind, None)
        if user_id is not None and kind not in SYSTEM_KINDS:
            act = activity.setdefault((day, user_id, project), [username, 0])
            act[0] = username or act[0]
            act[1] += 1
        if kind == "match.run":
            if summary.get("answered") is False:
                add(day, where, Family.MATCH, "pending", None)
            else:
                cached = "cached" if summary.get("cached") else "computed"
                add(day, where, Family.MATCH, cached, None)
                add(day, where, Family.LATENCY, "match", _number(summary.get("latency_ms")))
        elif kind in JOB_OUTCOMES:
            job_kind = str(summary.get("job_kind") or "unknown")[:60]
            series = f"{job_kind}:{JOB_OUTCOMES[kind]}"
            add(day, where, Family.JOB, series, _number(summary.get("duration_s")))
        hypothesis = summary.get("hypothesis") or (
            object_id if kind.startswith("hypothesis.") else ""
        )
        if hypothesis:
            add(day, where, Family.HYPOTHESIS, str(hypothesis)[:80], None)

    for day, user_id, project, duration in requests.values_list(
        on_day, "user_id", "project", "duration_ms"
    ).iterator(chunk_size=5000):
        counted[day][1] += 1
        add(day, scopes_of(user_id, project), Family.LATENCY, "context", _number(duration))

    days = {}
    d = first
    while d <= last:
        days[d] = DayAggregate(day=d, events=counted[d][0], requests=counted[d][1])
        d += timedelta(days=1)
    for (day, user_id, project), (name, actions) in activity.items():
        days[day].activity.append(
            DailyActivity(day=day, user_id=user_id, username=name, project=project, actions=actions)
        )
    for (day, s, k, family, series), figure in figures.items():
        values = sorted(figure.values)
        hist: dict[str, int] = {}
        for v in values:
            b = str(bucket_of(v))
            hist[b] = hist.get(b, 0) + 1
        days[day].rollups.append(
            DailyRollup(
                day=day,
                scope=s,
                key=k,
                family=family,
                series=series,
                count=figure.count,
                total=float(sum(values)),
                p50=percentile(values, 0.5),
                p95=percentile(values, 0.95),
                hist=hist,
            )
        )
    return list(days.values())


def usage_day_aggregate(
    day: date, *, scope: str | None = None, key: str = "", until: datetime | None = None
) -> DayAggregate:
    """The rollup rows of one day (`usage_days_aggregate` of that day alone)."""
    return usage_days_aggregate(day, day, scope=scope, key=key, until=until)[0]


# --- the rollup --------------------------------------------------------------------------


def usage_rollup_day(*, day: date, now: datetime | None = None) -> RollupDay:
    """Aggregate `day`'s raw events into its rollup rows, replacing any the day had.
    The day is `final` when rolled up after it ended."""
    now = now or timezone.now()
    _, end = day_bounds(day)
    RollupDay.objects.get_or_create(day=day, defaults={"rolled_at": now})
    with transaction.atomic():
        # One rollup of a day at a time: a second waits here, then replaces the rows.
        marker = RollupDay.objects.select_for_update().get(day=day)
        agg = usage_day_aggregate(day, until=now)
        DailyRollup.objects.filter(day=day).delete()
        DailyActivity.objects.filter(day=day).delete()
        # Its month, if merged already, must be merged again (usage_rollup_months_due).
        MonthlyRollup.objects.filter(month=month_of(day)).delete()
        RollupMonth.objects.filter(month=month_of(day)).delete()
        DailyActivity.objects.bulk_create(agg.activity, batch_size=2000)
        DailyRollup.objects.bulk_create(agg.rollups, batch_size=2000)
        marker.rolled_at = now
        marker.final = now >= end
        marker.events = agg.events
        marker.requests = agg.requests
        marker.save()
    return marker


def _days(first: date, last: date) -> Iterable[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def _oldest_event_day() -> date | None:
    oldest = [model.objects.aggregate(at=Min("at"))["at"] for model in (ResearchEvent, UsageEvent)]
    found = [at for at in oldest if at is not None]
    return min(found).astimezone(UTC).date() if found else None


def usage_rollup_due(*, now: datetime | None = None) -> list[date]:
    """Roll up every day before today that has raw events (or lies between days that
    do) and no final rollup yet. Returns the days rolled up."""
    now = now or timezone.now()
    first = _oldest_event_day()
    if first is None:
        return []
    last = now.astimezone(UTC).date() - timedelta(days=1)
    final = set(
        RollupDay.objects.filter(final=True, day__gte=first, day__lte=last).values_list(
            "day", flat=True
        )
    )
    done = []
    for day in _days(first, last):
        if day not in final:
            usage_rollup_day(day=day, now=now)
            done.append(day)
    return done


def month_of(day: date) -> date:
    return day.replace(day=1)


def month_last(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def usage_rollup_month(*, month: date, now: datetime | None = None) -> int:
    """Merge the daily rollups of `month` in the families a range merges
    (`MONTH_FAMILIES`: counts, totals, histograms), replacing what the month had.
    Returns how many rows it has."""
    now = now or timezone.now()
    month = month_of(month)
    rows = DailyRollup.objects.filter(
        day__gte=month, day__lte=month_last(month), family__in=MONTH_FAMILIES
    ).values_list("scope", "key", "family", "series", "count", "total", Cast("hist", TextField()))
    merged: dict[tuple[str, str, str, str], list[Any]] = {}
    for scope, key, family, series, count, total, hist in rows.iterator(chunk_size=10_000):
        m = merged.setdefault((scope, key, family, series), [0, 0.0, {}])
        m[0] += count
        m[1] += total
        if hist and hist != "{}":
            hist_add(m[2], orjson.loads(hist))
    with transaction.atomic():
        MonthlyRollup.objects.filter(month=month).delete()
        MonthlyRollup.objects.bulk_create(
            [
                MonthlyRollup(
                    month=month,
                    scope=scope,
                    key=key,
                    family=family,
                    series=series,
                    count=count,
                    total=total,
                    hist=hist,
                )
                for (scope, key, family, series), (count, total, hist) in merged.items()
            ],
            batch_size=5000,
        )
        RollupMonth.objects.update_or_create(month=month, defaults={"rolled_at": now})
    return len(merged)


def usage_rollup_months_due(*, now: datetime | None = None) -> list[date]:
    """Merge every month that has ended, whose days are all rolled up (from the first
    day rolled up on) and that is not merged yet. Returns the months merged."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    final = set(RollupDay.objects.filter(final=True).values_list("day", flat=True))
    if not final:
        return []
    oldest = min(final)
    done = set(RollupMonth.objects.values_list("month", flat=True))
    merged = []
    for month in sorted({month_of(d) for d in final} - done):
        last = month_last(month)
        if last >= today:
            continue
        if all(d in final for d in _days(max(month, oldest), last)):
            usage_rollup_month(month=month, now=now)
            merged.append(month)
    return merged


def usage_rollup_range(*, first: date, last: date, now: datetime | None = None) -> list[date]:
    """Roll up every day from `first` to `last` (inclusive), whatever was there."""
    now = now or timezone.now()
    return [usage_rollup_day(day=day, now=now).day for day in _days(first, last)]


# --- retention ---------------------------------------------------------------------------


def _expire(model: type[ResearchEvent] | type[UsageEvent], before: datetime) -> int:
    """Delete `model`'s rows older than `before`, in batches. The append-only guard of
    the ORM is not used, and PostgreSQL's trigger lets these deletes through only
    because this transaction names the limit (`statelab.retention_before`)."""
    table = connection.ops.quote_name(model._meta.db_table)
    # The table name comes from the model, never from input.
    sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < %s LIMIT %s)"  # noqa: S608
    removed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute(
                    "SELECT set_config('statelab.retention_before', %s, true)",
                    [before.isoformat()],
                )
            cur.execute(sql, [before, EXPIRE_BATCH])
            n = max(int(cur.rowcount), 0)
        removed += n
        if n < EXPIRE_BATCH:
            return removed


def usage_events_expire(*, now: datetime | None = None, days: int | None = None) -> dict[str, int]:
    """Delete raw events (research and request) older than `days` whole days
    (`STATELAB_USAGE_RETENTION_DAYS`; 0 keeps them for ever), but never the events of
    a day without a final rollup: the figures of every day deleted stay in the rollups."""
    days = int(settings.STATELAB_USAGE_RETENTION_DAYS if days is None else days)
    if days <= 0:
        return {"research_events": 0, "request_events": 0}
    now = now or timezone.now()
    limit = now.astimezone(UTC).date() - timedelta(days=days)
    first = _oldest_event_day()
    if first is not None and first < limit:
        final = set(
            RollupDay.objects.filter(final=True, day__gte=first, day__lt=limit).values_list(
                "day", flat=True
            )
        )
        for day in _days(first, limit - timedelta(days=1)):
            if day not in final:
                limit = day
                break
    before, _ = day_bounds(limit)
    return {
        "research_events": _expire(ResearchEvent, before),
        "request_events": _expire(UsageEvent, before),
    }


def usage_housekeeping(*, now: datetime | None = None) -> dict[str, int]:
    """What the periodic task does: roll up the days due, merge the months closed,
    then apply retention."""
    rolled = usage_rollup_due(now=now)
    months = usage_rollup_months_due(now=now)
    expired = usage_events_expire(now=now)
    return {"days_rolled_up": len(rolled), "months_merged": len(months), **expired}
