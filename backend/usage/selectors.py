"""Reads of the usage record: who may see which usage, and the dashboard's figures.

Who sees what (`usage_scope_for`): staff see the whole lab (or any one user or
project); anyone else sees their own usage, and the usage of a project they own. A
project the caller may not see answers 404, one they see without owning it 403, as
everywhere in the API; another user's usage is staff's only (403).

The figures (`usage_dashboard`) come from the daily rollups for every day rolled up
after it ended, and from the raw events for the rest (today, or a day the periodic
rollup has not reached), aggregated by the same function as the rollup
(`services.usage_day_aggregate`). A year costs a handful of queries over a few rows
per day, whatever the number of events (docs/usage.md, docs/performance.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
from django.db.models import F, Max, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from backend.accounts.models import User
from backend.artifacts.models import Corpus, LanguageModel, Upload
from backend.core.errors import ApplicationError
from backend.core.events import KINDS, SYSTEM_KINDS
from backend.hypotheses.models import HypothesisVersion
from backend.hypotheses.selectors import hypotheses_visible
from backend.projects.models import Project, Role
from backend.projects.selectors import project_for_user
from backend.states.models import StateSet

from .models import (
    DailyActivity,
    DailyRollup,
    Family,
    MonthlyRollup,
    ResearchEvent,
    RollupDay,
    RollupMonth,
    Scope,
)
from .services import (
    JOB_OUTCOMES,
    DayAggregate,
    hist_add,
    hist_percentile,
    month_last,
    month_of,
    usage_days_aggregate,
)

MAX_DAYS = 1000
DEFAULT_DAYS = 30
TOP_HYPOTHESES = 25
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)

# Every table of the dashboard: its columns (the CSV header) and what a row is.
TABLES: dict[str, tuple[list[str], str]] = {
    "daily_active": (["day", "users"], "users with at least one action, per day"),
    "weekly_active": (
        ["week", "users"],
        "users with at least one action, per week (Monday to Sunday, within the range)",
    ),
    "actions": (["day", "kind", "count"], "research events per day and kind"),
    "latency": (
        ["day", "metric", "count", "p50_ms", "p95_ms"],
        "time to the answer of matches (answered ones) and context windows, per day",
    ),
    "matches": (
        ["day", "cached", "computed", "pending"],
        "match requests per day: answered from the store, computed, still running",
    ),
    "jobs_daily": (
        ["day", "job_kind", "finished", "failed", "cancelled"],
        "jobs that ended, per day and kind",
    ),
    "jobs": (
        [
            "job_kind",
            "finished",
            "failed",
            "cancelled",
            "failure_rate",
            "mean_s",
            "p50_s",
            "p95_s",
        ],
        "jobs that ended in the range, per kind: outcomes and run time",
    ),
    "projects": (["project", "actions", "users"], "the most used projects"),
    "users": (["user", "actions", "active_days", "projects"], "the most active users"),
    "hypotheses": (
        ["hypothesis", "title", "project", "events"],
        "the most used hypotheses (events that name them)",
    ),
    "storage_projects": (
        ["project", "statesets", "corpora", "models", "uploads", "total"],
        "bytes stored now, per project",
    ),
    "storage_users": (
        ["user", "statesets", "corpora", "models", "uploads", "total"],
        "bytes stored now, per user who made them",
    ),
}


@dataclass(frozen=True)
class UsageScope:
    """Whose usage: the whole lab, one user (`key` their id) or one project (its slug)."""

    scope: str
    key: str
    label: str
    username: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "label": self.label,
            "project": self.key if self.scope == Scope.PROJECT else None,
            "user": self.username or None,
        }


def usage_scope_for(user: Any, *, project: str | None, username: str | None) -> UsageScope:
    """The usage `user` asks for (`project` slug or `username`; neither: staff the
    whole lab, anyone else their own), if they may see it."""
    if project and username:
        raise ApplicationError("Give either project or user, not both.")
    if project:
        if user.is_staff:
            found = Project.objects.filter(slug=project).first()
            if found is None:
                raise Http404("No such project.")
        else:
            found, _ = project_for_user(user, project, need=Role.OWNER)
        return UsageScope(Scope.PROJECT, found.slug, f"project {found.name}")
    if username and username != user.get_username():
        if not user.is_staff:
            raise ApplicationError(
                "Only staff may see another user's usage.",
                code="permission_denied",
                status_code=403,
            )
        target = User.objects.filter(username=username).values_list("id", flat=True).first()
        for kept in (DailyActivity, ResearchEvent):  # a deleted user's events keep the name
            if target is None:
                target = (
                    kept.objects.filter(username=username, user_id__isnull=False)
                    .values_list("user_id", flat=True)
                    .first()
                )
        if target is None:
            raise Http404("No such user.")
        return UsageScope(Scope.USER, str(target), f"user {username}", username)
    if user.is_staff and not username:
        return UsageScope(Scope.LAB, "", "the whole lab")
    name = user.get_username()
    return UsageScope(Scope.USER, str(user.pk), f"user {name}", name)


def _day_param(raw: Any, name: str) -> date | None:
    if raw in (None, ""):
        return None
    try:
        day = date.fromisoformat(str(raw))
    except ValueError:
        raise ApplicationError(f"{name} must be a date as YYYY-MM-DD, not '{raw}'.") from None
    if not EARLIEST <= day <= LATEST:
        raise ApplicationError(f"{name} must be a day between {EARLIEST} and {LATEST}.")
    return day


def usage_range(params: Any, *, today: date | None = None) -> tuple[date, date]:
    """The days `from` to `to` (inclusive, UTC) a request asks for; by default the
    last 30 days to today."""
    today = today or timezone.now().date()
    last = _day_param(params.get("to"), "to") or today
    first = _day_param(params.get("from"), "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ApplicationError(f"from ({first}) must not be after to ({last}).")
    if (last - first).days + 1 > MAX_DAYS:
        raise ApplicationError(
            f"A range holds at most {MAX_DAYS} days; this one has {(last - first).days + 1}."
        )
    return first, last


def _days(first: date, last: date) -> Iterable[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def _week(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _in_scope(qs: QuerySet[Any], scope: UsageScope, *, rollup: bool) -> QuerySet[Any]:
    if rollup:
        return qs.filter(scope=scope.scope, key=scope.key)
    if scope.scope == Scope.USER:
        return qs.filter(user_id=int(scope.key))
    if scope.scope == Scope.PROJECT:
        return qs.filter(project=scope.key)
    return qs


Row = tuple[
    date, str, int, float, float | None, float | None
]  # day, series, count, total, p50, p95


class _Usage:
    """The figures of one scope over a range of days.

    Per-day figures come from the daily rollups of the final days and from raw events
    for the others (`live`). What the range merges (histograms of latency and job
    durations, counts per hypothesis) comes from the merged months the range holds
    whole, the daily rollups of the days around them, and the live days."""

    def __init__(self, scope: UsageScope, first: date, last: date, today: date) -> None:
        self.scope, self.first, self.last = scope, first, last
        self.shown_last = min(last, today)
        self.iso = {d: d.isoformat() for d in _days(first, last)}  # a day's text, once
        final = set(
            RollupDay.objects.filter(final=True, day__gte=first, day__lte=last).values_list(
                "day", flat=True
            )
        )
        months = {
            m
            for m in RollupMonth.objects.filter(month__gte=first, month__lte=last).values_list(
                "month", flat=True
            )
            if month_last(m) <= last
        }
        in_months = {d for d in final if month_of(d) in months}
        self.final_ranges = _ranges(final)
        self.edge_ranges = _ranges(final - in_months)
        self.months = sorted(months)
        # The days not rolled up, read from raw events a run of consecutive days at a time.
        self.live: list[DayAggregate] = []
        run: list[date] = []
        for d in [*_days(first, self.shown_last), None]:
            if d is not None and d not in final:
                run.append(d)
                continue
            if run:
                self.live += usage_days_aggregate(run[0], run[-1], scope=scope.scope, key=scope.key)
                run = []
        self._activity()
        self._figures()
        self._merged()

    def _rollups(self, ranges: list[tuple[date, date]]) -> QuerySet[Any]:
        if not ranges:
            return DailyRollup.objects.none()
        where = Q()
        for a, b in ranges:
            where |= Q(day__gte=a, day__lte=b)
        return _in_scope(DailyRollup.objects.filter(where), self.scope, rollup=True)

    # -- activity: active users, projects, users --------------------------------------

    def _activity(self) -> None:
        self.names: dict[int, str] = {}  # of users seen in the days not rolled up
        if self.final_ranges:
            where = Q()
            for a, b in self.final_ranges:
                where |= Q(day__gte=a, day__lte=b)
            qs = _in_scope(DailyActivity.objects.filter(where), self.scope, rollup=False)
            pairs = set(qs.values_list("day", "user_id").distinct())
            per = list(qs.values("project", "user_id").annotate(actions=Sum("actions")).order_by())
        else:
            pairs, per = set(), []
        for agg in self.live:
            for act in agg.activity:
                pairs.add((act.day, act.user_id))
                per.append({"project": act.project, "user_id": act.user_id, "actions": act.actions})
                self.names[act.user_id] = act.username
        self.pairs = pairs
        self.per_project_user = per

    def _names(self, ids: set[int]) -> dict[int, str]:
        """User names by id: the accounts', else (deleted accounts) the events'."""
        names = dict(User.objects.filter(id__in=ids).values_list("id", "username"))
        missing = ids - set(names)
        if missing:
            names.update(
                DailyActivity.objects.filter(user_id__in=missing)
                .values("user_id")
                .annotate(name=Max("username"))
                .values_list("user_id", "name")
            )
        names.update({k: v for k, v in self.names.items() if k not in names})
        return names

    def daily_active(self) -> list[dict[str, Any]]:
        counts: dict[date, int] = defaultdict(int)
        for day, _ in self.pairs:
            counts[day] += 1
        return [
            {"day": d.isoformat(), "users": counts.get(d, 0)}
            for d in _days(self.first, self.shown_last)
        ]

    def weekly_active(self) -> list[dict[str, Any]]:
        if self.first > self.shown_last:
            return []
        week_of = {d: _week(d) for d in _days(self.first, self.shown_last)}
        weeks: dict[date, set[int]] = defaultdict(set)
        for day, user_id in self.pairs:
            weeks[week_of[day]].add(user_id)
        out = []
        week = _week(self.first)
        while week <= self.shown_last:
            out.append({"week": week.isoformat(), "users": len(weeks.get(week, ()))})
            week += timedelta(days=7)
        return out

    def projects(self) -> list[dict[str, Any]]:
        actions: dict[str, int] = defaultdict(int)
        users: dict[str, set[int]] = defaultdict(set)
        for row in self.per_project_user:
            if not row["project"]:
                continue
            actions[row["project"]] += int(row["actions"])
            users[row["project"]].add(row["user_id"])
        rows = [{"project": p, "actions": n, "users": len(users[p])} for p, n in actions.items()]
        return sorted(rows, key=lambda r: (-r["actions"], r["project"]))

    def users(self) -> list[dict[str, Any]]:
        actions: dict[int, int] = defaultdict(int)
        projects: dict[int, set[str]] = defaultdict(set)
        days: dict[int, int] = defaultdict(int)
        for row in self.per_project_user:
            uid = row["user_id"]
            actions[uid] += int(row["actions"])
            if row["project"]:
                projects[uid].add(row["project"])
        for _, uid in self.pairs:
            days[uid] += 1
        names = self._names(set(actions))
        rows = [
            {
                "user": names.get(uid) or f"#{uid}",
                "actions": n,
                "active_days": days[uid],
                "projects": len(projects[uid]),
            }
            for uid, n in actions.items()
        ]
        return sorted(rows, key=lambda r: (-r["actions"], r["user"]))

    # -- per-day figures: actions by kind, latency, matches, jobs ---------------------

    def _figures(self) -> None:
        """Rows per family, in day order: (day, series, count, total, p50, p95)."""
        qs = self._rollups(self.final_ranges)
        by: dict[str, list[Row]] = defaultdict(list)
        for day, family, series, count in qs.filter(
            family__in=[Family.KIND, Family.MATCH]
        ).values_list("day", "family", "series", "count"):
            by[family].append((day, series, count, 0.0, None, None))
        for day, family, series, count, total, p50, p95 in qs.filter(
            family__in=[Family.LATENCY, Family.JOB]
        ).values_list("day", "family", "series", "count", "total", "p50", "p95"):
            by[family].append((day, series, count, total, p50, p95))
        for agg in self.live:
            for r in agg.rollups:
                if r.family != Family.HYPOTHESIS:
                    by[r.family].append((r.day, r.series, r.count, r.total, r.p50, r.p95))
        # In day order, then by name (Python's order, whatever the database's collation).
        self.by_family = {f: sorted(rows, key=lambda r: (r[0], r[1])) for f, rows in by.items()}

    def _rows(self, family: str) -> list[Row]:
        return self.by_family.get(family, [])

    def actions(self) -> list[dict[str, Any]]:
        return [
            {"day": self.iso[day], "kind": series, "count": count}
            for day, series, count, *_ in self._rows(Family.KIND)
        ]

    def latency(self) -> list[dict[str, Any]]:
        return [
            {
                "day": self.iso[day],
                "metric": series,
                "count": count,
                "p50_ms": _round(p50),
                "p95_ms": _round(p95),
            }
            for day, series, count, _, p50, p95 in self._rows(Family.LATENCY)
            if p50 is not None
        ]

    def matches(self) -> list[dict[str, Any]]:
        per: dict[date, dict[str, int]] = {}
        for day, series, count, *_ in self._rows(Family.MATCH):
            per.setdefault(day, {"cached": 0, "computed": 0, "pending": 0})[series] = count
        return [{"day": self.iso[d], **per[d]} for d in sorted(per)]

    def jobs_daily(self) -> list[dict[str, Any]]:
        per: dict[tuple[date, str], dict[str, int]] = {}
        split: dict[str, tuple[str, str]] = {}
        for day, series, count, *_ in self._rows(Family.JOB):
            if series not in split:
                job_kind, _, outcome = series.rpartition(":")
                split[series] = (job_kind, outcome)
            job_kind, outcome = split[series]
            row = per.get((day, job_kind))
            if row is None:
                row = per[(day, job_kind)] = {"finished": 0, "failed": 0, "cancelled": 0}
            row[outcome] = row.get(outcome, 0) + count
        return [{"day": self.iso[d], "job_kind": k, **per[(d, k)]} for d, k in sorted(per)]

    # -- what the range merges: histograms and hypotheses ------------------------------

    def _merged(self) -> None:
        """(family, series) -> [count, total, histogram] over the range, for latency and
        jobs; hypothesis id -> events."""
        merged: dict[tuple[str, str], list[Any]] = {}
        hypotheses: dict[str, int] = defaultdict(int)

        def add(family: str, series: str, count: int, total: float, hist: Any) -> None:
            m = merged.setdefault((family, series), [0, 0.0, {}])
            m[0] += count
            m[1] += total
            if isinstance(hist, str):
                hist = orjson.loads(hist) if hist != "{}" else None
            if hist:
                hist_add(m[2], hist)

        valued = [Family.LATENCY, Family.JOB]
        as_text = Cast("hist", TextField())
        sources: list[QuerySet[Any]] = [self._rollups(self.edge_ranges)]
        if self.months:
            sources.append(
                _in_scope(
                    MonthlyRollup.objects.filter(month__in=self.months), self.scope, rollup=True
                )
            )
        for qs in sources:
            for family, series, count, total, hist in qs.filter(family__in=valued).values_list(
                "family", "series", "count", "total", as_text
            ):
                add(family, series, count, total, hist)
            grouped = (
                qs.filter(family=Family.HYPOTHESIS)
                .values("series")
                .annotate(n=Sum("count"))
                .order_by()
            )
            for r in grouped:
                hypotheses[r["series"]] += int(r["n"])
        for agg in self.live:
            for r in agg.rollups:
                if r.family == Family.HYPOTHESIS:
                    hypotheses[r.series] += r.count
                elif r.family in valued:
                    add(r.family, r.series, r.count, r.total, r.hist)
        self.merged = merged
        self.hypothesis_counts = hypotheses

    def latency_overall(self) -> dict[str, dict[str, Any]]:
        return {
            series: {
                "count": count,
                "p50_ms": _round(hist_percentile(hist, 0.5)),
                "p95_ms": _round(hist_percentile(hist, 0.95)),
            }
            for (family, series), (count, _, hist) in sorted(self.merged.items())
            if family == Family.LATENCY
        }

    def jobs(self) -> list[dict[str, Any]]:
        counts: dict[str, dict[str, int]] = {}
        hists: dict[str, dict[str, int]] = defaultdict(dict)
        totals: dict[str, float] = defaultdict(float)
        for (family, series), (count, total, hist) in self.merged.items():
            if family != Family.JOB:
                continue
            job_kind, _, outcome = series.rpartition(":")
            row = counts.setdefault(job_kind, dict.fromkeys(JOB_OUTCOMES.values(), 0))
            row[outcome] = row.get(outcome, 0) + count
            if outcome in ("finished", "failed"):
                hist_add(hists[job_kind], hist)
                totals[job_kind] += total
        out = []
        for job_kind in sorted(counts):
            row = counts[job_kind]
            ended = row["finished"] + row["failed"]
            timed = sum(hists[job_kind].values())
            out.append(
                {
                    "job_kind": job_kind,
                    **row,
                    "failure_rate": round(row["failed"] / ended, 4) if ended else None,
                    "mean_s": _round(totals[job_kind] / timed) if timed else None,
                    "p50_s": _round(hist_percentile(hists[job_kind], 0.5)),
                    "p95_s": _round(hist_percentile(hists[job_kind], 0.95)),
                }
            )
        return out

    def hypotheses(self, user: Any) -> list[dict[str, Any]]:
        counts = self.hypothesis_counts
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_HYPOTHESES]
        known = _hypothesis_titles(user, [h for h, _ in top])
        return [
            {
                "hypothesis": h,
                "title": known.get(h, ("", ""))[0],
                "project": known.get(h, ("", ""))[1],
                "events": n,
            }
            for h, n in top
        ]

    def totals(self) -> dict[str, Any]:
        kinds: dict[str, int] = defaultdict(int)
        for _, series, count, *_ in self._rows(Family.KIND):
            kinds[series] += count
        return {
            "actions": sum(n for k, n in kinds.items() if k not in SYSTEM_KINDS),
            "active_users": len({uid for _, uid in self.pairs}),
            "by_kind": dict(sorted(kinds.items())),
            "latency": self.latency_overall(),
            "days_from_rollups": (self.shown_last - self.first).days + 1 - len(self.live)
            if self.first <= self.shown_last
            else 0,
            "days_from_events": len(self.live),
        }


def _ranges(days: set[date]) -> list[tuple[date, date]]:
    """Days as ranges of consecutive days."""
    out: list[tuple[date, date]] = []
    for d in sorted(days):
        if out and out[-1][1] == d - timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _hypothesis_titles(user: Any, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Title and project slug of the hypotheses among `ids` the caller may open
    (staff: all); others are named by id only."""
    import uuid

    valid = []
    for h in ids:
        try:
            valid.append(uuid.UUID(h))
        except ValueError:
            continue
    versions = HypothesisVersion.objects.filter(
        hypothesis_id__in=valid, number=F("hypothesis__version")
    )
    if not user.is_staff:
        versions = versions.filter(hypothesis__in=hypotheses_visible(user))
    return {
        str(hid): (title, slug)
        for hid, title, slug in versions.values_list(
            "hypothesis_id", "title", "hypothesis__project__slug"
        )
    }


STORED: list[tuple[str, Any, str]] = [
    ("statesets", StateSet, "size_bytes"),
    ("corpora", Corpus, "size_bytes"),
    ("models", LanguageModel, "size_bytes"),
    ("uploads", Upload, "size"),
]


def usage_storage(scope: UsageScope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Bytes stored now, per project and per user who made them, within the scope
    (a user: what they made; a project: what it holds)."""
    by_project: dict[str, dict[str, int]] = {}
    by_user: dict[str, dict[str, int]] = {}
    empty = {name: 0 for name, _, _ in STORED} | {"total": 0}
    for name, model, size in STORED:
        qs = model.objects.all()
        if model is Upload:
            qs = qs.exclude(path="")  # consumed by its job: the bytes live elsewhere now
        if scope.scope == Scope.USER:
            qs = qs.filter(created_by_id=int(scope.key))
        elif scope.scope == Scope.PROJECT:
            qs = qs.filter(project__slug=scope.key)
        for row in qs.values("project__slug", "created_by__username").annotate(n=Sum(size)):
            n = int(row["n"] or 0)
            for table, key in (
                (by_project, row["project__slug"]),
                (by_user, row["created_by__username"] or "(deleted users)"),
            ):
                entry = table.setdefault(key, dict(empty))
                entry[name] += n
                entry["total"] += n
    projects = [{"project": k, **v} for k, v in by_project.items()]
    users = [{"user": k, **v} for k, v in by_user.items()]
    return (
        sorted(projects, key=lambda r: (-r["total"], r["project"])),
        sorted(users, key=lambda r: (-r["total"], r["user"])),
    )


def usage_dashboard(
    user: Any,
    scope: UsageScope,
    first: date,
    last: date,
    *,
    only: str | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Every table of the dashboard (or `only` that one) for `scope` from `first` to
    `last`, with the totals of the range."""
    today = today or timezone.now().date()
    masked = scope.scope == Scope.PROJECT and not user.is_staff
    if only in ("storage_projects", "storage_users"):
        projects, users = usage_storage(scope)
        if masked:
            users = _others_folded(users, user)
        return {"tables": {"storage_projects": projects, "storage_users": users}}
    usage = _Usage(scope, first, last, today)
    tables: dict[str, Any] = {
        "daily_active": usage.daily_active,
        "weekly_active": usage.weekly_active,
        "actions": usage.actions,
        "latency": usage.latency,
        "matches": usage.matches,
        "jobs_daily": usage.jobs_daily,
        "jobs": usage.jobs,
        "projects": usage.projects,
        "users": usage.users,
        "hypotheses": lambda: usage.hypotheses(user),
    }
    if masked:
        tables["users"] = lambda: _others_folded(usage.users(), user)
    if only is not None:
        return {"tables": {only: tables[only]()}}
    out = {name: make() for name, make in tables.items()}
    out["storage_projects"], out["storage_users"] = usage_storage(scope)
    if masked:
        out["storage_users"] = _others_folded(out["storage_users"], user)
    return {"totals": usage.totals(), "tables": out}


OTHERS = "(other users)"


def _others_folded(rows: list[dict[str, Any]], user: Any) -> list[dict[str, Any]]:
    """A per-user table as a project owner who is not staff sees it: their own row,
    and one row that sums everyone else's (no other user is named)."""
    me = user.get_username()
    own = [r for r in rows if r["user"] == me]
    others = [r for r in rows if r["user"] != me]
    if not others:
        return own
    folded: dict[str, Any] = {"user": OTHERS}
    for column in others[0]:
        if column == "user":
            continue
        if column == "active_days":
            folded[column] = None  # days of different people do not add up
        else:
            folded[column] = sum(int(r[column] or 0) for r in others)
    return [*own, folded]


def usage_kinds() -> list[dict[str, Any]]:
    """The kinds of research events, with what each records."""
    return [{"kind": k, "description": d, "system": k in SYSTEM_KINDS} for k, d in KINDS.items()]


def usage_project_choices(user: Any) -> list[dict[str, str]]:
    """The projects whose usage `user` may open: all for staff, else those they own."""
    qs = Project.objects.all()
    if not user.is_staff:
        qs = qs.filter(memberships__user=user, memberships__role=Role.OWNER)
    return [{"slug": p.slug, "name": p.name} for p in qs.order_by("name", "slug")]
