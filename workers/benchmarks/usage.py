"""Usage tracking at a year's scale (targets: the dashboard API p95 <= 300 ms for any
range of the year, on PostgreSQL, after the rollup; the rollup of a day of 10^4 events
<= 2 s; recording an event adds <= 1 ms p95 to a request).

A throw-away PostgreSQL database is seeded with a year of synthetic research events
(10^6 rows by default: 50 users, 30 projects, each user in a few projects, busier on
weekdays, the kinds in the proportions of a lab's day; match latencies and job
durations log-normal) and 10^5 context-window requests in the request log, written
with COPY. One day of the year holds 10^4 events. Then:

- the rollup of every day before today is timed (`usage_rollup_due`), and the busy
  day's rollup again on its own, five times;
- `GET /api/usage/` is timed through the whole Django stack (in-process, session
  authentication), for random ranges of the year (1 to 365 days, always some whole
  years) as staff (the whole lab), as one user and as a project's owner; ranges that
  end today also read today's raw events;
- recording is timed as a request pays for it: an event emitted and written by the
  usage middleware's path (one insert), and the project page (which records
  `project.opened`) with and without the writer, interleaved.

It runs in a child process of its own (`python -m workers.benchmarks.usage`), whose
settings point at the database created here and dropped afterwards. The server is
`--usage-database` (an admin URL; default `$STATELAB_BENCH_DATABASE_URL`, else the
local PostgreSQL); without one answering, the section is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    section_child_main,
    section_child_run,
    section_flags,
    temporary_database,
)

TARGET_DASHBOARD_P95_MS = 300.0
TARGET_ROLLUP_DAY_S = 2.0
TARGET_RECORD_P95_MS = 1.0

# Kinds and their share of a day's events (job outcomes follow from the jobs started).
KIND_WEIGHTS = {
    "project.opened": 0.10,
    "stateset.viewed": 0.12,
    "selection.made": 0.20,
    "match.run": 0.22,
    "hypothesis.saved": 0.05,
    "hypothesis.shared": 0.01,
    "hypothesis.forked": 0.01,
    "hypothesis.commented": 0.03,
    "statistics.run": 0.03,
    "ranking.run": 0.02,
    "annotation.uploaded": 0.01,
    "model.uploaded": 0.005,
    "corpus.uploaded": 0.005,
    "import.uploaded": 0.005,
    "training.started": 0.005,
    "extraction.started": 0.01,
    "export.downloaded": 0.03,
    "job.finished": 0.13,
    "job.failed": 0.01,
    "job.cancelled": 0.005,
}
JOB_KINDS = ["match", "extract", "train", "ranking", "statistics", "corpus_upload", "index"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--usage-events", type=int, default=1_000_000, help="usage: research events of the year"
    )
    parser.add_argument("--usage-users", type=int, default=50, help="usage: users")
    parser.add_argument("--usage-projects", type=int, default=30, help="usage: projects")
    parser.add_argument(
        "--usage-requests", type=int, default=100_000, help="usage: context requests logged"
    )
    parser.add_argument(
        "--usage-day-events", type=int, default=10_000, help="usage: events of the busy day"
    )
    parser.add_argument(
        "--usage-queries", type=int, default=60, help="usage: dashboard requests per scope"
    )
    parser.add_argument(
        "--usage-records", type=int, default=2000, help="usage: events recorded, timed"
    )
    parser.add_argument(
        "--usage-database",
        default=os.environ.get("STATELAB_BENCH_DATABASE_URL")
        or "postgres://postgres@127.0.0.1:5432/postgres",
        help="usage: a PostgreSQL URL allowed to create and drop a database",
    )


# --- the child process: seed, roll up, time ----------------------------------------------


def _copy(table: str, columns: list[str], lines: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        raw = cur.cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(0, len(lines), 50_000):
                copy.write("".join(lines[i : i + 50_000]))


def _seed(args: argparse.Namespace, rng: np.random.Generator, now: datetime) -> dict[str, Any]:
    """Users, projects with members, a year of events and context requests (COPY)."""
    from django.contrib.auth.hashers import make_password

    from backend.accounts.models import User
    from backend.projects.models import Membership, Project

    password = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"user{i:02d}", password=password) for i in range(args.usage_users)]
    )
    projects = Project.objects.bulk_create(
        [
            Project(
                slug=f"project-{i:02d}", name=f"Project {i:02d}", created_by=users[i % len(users)]
            )
            for i in range(args.usage_projects)
        ]
    )
    member_of: list[list[int]] = []
    memberships = []
    for u, user in enumerate(users):
        mine = {u % len(projects)} | set(rng.choice(len(projects), rng.integers(0, 4)).tolist())
        member_of.append(sorted(mine))
        for p in mine:
            role = "owner" if projects[p].created_by_id == user.id else "editor"
            memberships.append(Membership(project=projects[p], user=user, role=role))
    Membership.objects.bulk_create(memberships, ignore_conflicts=True)
    hypotheses = [
        [f"{p:04x}{h:04x}-0000-4000-8000-000000000000" for h in range(20)]
        for p in range(len(projects))
    ]

    today = now.date()
    first = today - timedelta(days=364)
    busy = today - timedelta(days=100)
    n_rest = args.usage_events - args.usage_day_events
    # Days weighted: weekdays busier than weekends; today only up to now.
    day_weight = np.array(
        [0.35 if (first + timedelta(days=i)).weekday() >= 5 else 1.0 for i in range(365)]
    )
    day_weight[-1] *= (
        now - datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    ).total_seconds() / 86400
    day_idx = rng.choice(365, n_rest, p=day_weight / day_weight.sum())
    day_idx = np.concatenate([day_idx, np.full(args.usage_day_events, (busy - first).days)])
    n = day_idx.size
    seconds = rng.integers(0, 86_400, n)
    last_seconds = int(
        (now - datetime.combine(today, datetime.min.time(), tzinfo=UTC)).total_seconds()
    )
    seconds[day_idx == 364] %= max(last_seconds, 1)
    popularity = 1.0 / np.arange(1, len(users) + 1) ** 0.8
    who = rng.choice(len(users), n, p=popularity / popularity.sum())
    kinds = list(KIND_WEIGHTS)
    weights = np.array(list(KIND_WEIGHTS.values()))
    kind_idx = rng.choice(len(kinds), n, p=weights / weights.sum())
    pick = rng.random(n)
    latency = rng.lognormal(3.5, 1.0, n)
    duration = rng.lognormal(2.0, 1.5, n)
    job_pick = rng.integers(0, len(JOB_KINDS), n)
    hyp_pick = rng.integers(0, 20, n)

    lines = []
    for i in range(n):
        u = int(who[i])
        theirs = member_of[u]
        p = theirs[int(pick[i] * len(theirs))]
        kind = kinds[kind_idx[i]]
        at = datetime.combine(
            first + timedelta(days=int(day_idx[i])), datetime.min.time(), tzinfo=UTC
        )
        at += timedelta(seconds=int(seconds[i]), microseconds=i % 1_000_000)
        summary: dict[str, Any] = {}
        if kind == "match.run":
            answered = pick[i] > 0.03
            summary = {"cells": 8, "corpus_tokens": 1_000_000, "latency_ms": round(float(latency[i]), 3),
                       "answered": bool(answered), "cached": bool(pick[i] > 0.6)}  # fmt: skip
        elif kind.startswith("job."):
            summary = {
                "job_kind": JOB_KINDS[job_pick[i]],
                "duration_s": round(float(duration[i]), 3),
            }
        elif kind.startswith(("hypothesis.", "statistics.")):
            summary = {"hypothesis": hypotheses[p][hyp_pick[i]]}
        lines.append(
            f"{at.isoformat()}\t{users[u].id}\t{users[u].username}\t{projects[p].slug}\t{kind}\t"
            f"o{i}\t{json.dumps(summary, separators=(',', ':'))}\n"
        )
    t = time.perf_counter()
    _copy(
        "usage_researchevent",
        ["at", "user_id", "username", "project", "kind", "object_id", "summary"],
        lines,
    )
    copy_events_s = time.perf_counter() - t

    m = args.usage_requests
    r_day = rng.choice(365, m, p=day_weight / day_weight.sum())
    r_sec = rng.integers(0, 86_400, m)
    r_sec[r_day == 364] %= max(last_seconds, 1)
    r_who = rng.choice(len(users), m, p=popularity / popularity.sum())
    r_ms = rng.lognormal(1.8, 0.5, m)
    req_lines = []
    for i in range(m):
        u = int(r_who[i])
        at = datetime.combine(
            first + timedelta(days=int(r_day[i])), datetime.min.time(), tzinfo=UTC
        )
        at += timedelta(seconds=int(r_sec[i]))
        slug = projects[member_of[u][0]].slug
        req_lines.append(
            f"{at.isoformat()}\t{users[u].id}\t{users[u].username}\tGET\t"
            f"api/statesets/<str:stateset_id>/context/\t/api/statesets/x/context/\t{slug}\t200\t"
            f"{float(r_ms[i]):.3f}\n"
        )
    t = time.perf_counter()
    _copy(
        "usage_usageevent",
        [
            "at",
            "user_id",
            "username",
            "method",
            "route",
            "path",
            "project",
            "status",
            "duration_ms",
        ],
        req_lines,
    )
    copy_requests_s = time.perf_counter() - t
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE usage_researchevent; ANALYZE usage_usageevent;")
    return {
        "users": users,
        "projects": projects,
        "member_of": member_of,
        "first": first,
        "busy": busy,
        "info": {
            "events": n,
            "request_events": m,
            "users": len(users),
            "projects": len(projects),
            "days": 365,
            "busy_day_events": args.usage_day_events,
            "today_events": int((day_idx == 364).sum()),
            "copy_events_s": round(copy_events_s, 2),
            "copy_requests_s": round(copy_requests_s, 2),
        },
    }


def child(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    os.environ["DJANGO_SETTINGS_MODULE"] = "backend.config.settings.local"
    os.environ["STATELAB_VAR_DIR"] = str(var)
    os.environ["STATELAB_STORE_ROOT"] = str(var / "store")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from backend.accounts.models import User
    from backend.core import events as core_events
    from backend.core.events import event_emit, events_collect, events_write
    from backend.usage.services import (
        usage_rollup_day,
        usage_rollup_due,
        usage_rollup_months_due,
    )
    from workers.benchmarks.common import summarise

    call_command("migrate", verbosity=0)
    (var / "static").mkdir(parents=True, exist_ok=True)
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    now = timezone.now()
    np_rng = np.random.default_rng(7)
    seeded = _seed(args, np_rng, now)
    today = now.date()

    t = time.perf_counter()
    rolled = usage_rollup_due(now=now)
    rollup_year_s = time.perf_counter() - t
    day_runs = []
    for _ in range(5):
        t = time.perf_counter()
        marker = usage_rollup_day(day=seeded["busy"], now=now)
        day_runs.append(time.perf_counter() - t)
    t = time.perf_counter()
    months = usage_rollup_months_due(now=now)
    months_s = time.perf_counter() - t
    with connection.cursor() as cur:  # what autovacuum does after the hourly task
        for table in ("usage_dailyrollup", "usage_dailyactivity", "usage_monthlyrollup"):
            cur.execute(f"VACUUM ANALYZE {table}")
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM usage_dailyrollup")
        rollup_rows = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM usage_dailyactivity")
        activity_rows = cur.fetchone()[0]

    staff = User.objects.create(username="staff", is_staff=True)
    users, projects = seeded["users"], seeded["projects"]
    owner = projects[0].created_by
    one_user = users[3]
    rng = random.Random(5)
    first = seeded["first"]

    def ranges(k: int) -> list[tuple[str, str]]:
        out = [(first.isoformat(), today.isoformat())] * max(2, k // 10)
        while len(out) < k:
            length = rng.randint(1, 365)
            start = first + timedelta(days=rng.randint(0, 365 - length))
            out.append((start.isoformat(), (start + timedelta(days=length - 1)).isoformat()))
        rng.shuffle(out)
        return out

    scopes = {
        "lab (staff)": (staff, ""),
        "one user": (one_user, ""),
        "a project (its owner)": (owner, f"&project={projects[0].slug}"),
    }
    dashboard: dict[str, Any] = {}
    every = []
    year_lab = []
    for name, (user, extra) in scopes.items():
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        for a, b in ranges(5):  # warm-up
            client.get(f"/api/usage/?from={a}&to={b}{extra}")
        times = []
        for a, b in ranges(args.usage_queries):
            t = time.perf_counter()
            r = client.get(f"/api/usage/?from={a}&to={b}{extra}")
            took = time.perf_counter() - t
            if r.status_code != 200:
                raise RuntimeError(f"the dashboard answered {r.status_code}: {r.content[:300]!r}")
            times.append(took)
            if name == "lab (staff)" and (a, b) == (first.isoformat(), today.isoformat()):
                year_lab.append(took)
        dashboard[name] = summarise(times)
        every += times
    full = Client(HTTP_HOST="127.0.0.1")
    full.force_login(staff)
    answer = full.get(f"/api/usage/?from={first}&to={today}").json()
    dashboard["lab, whole year"] = summarise(year_lab)
    dashboard["all"] = summarise(every)
    dashboard["year_totals"] = {
        "actions": answer["totals"]["actions"],
        "active_users": answer["totals"]["active_users"],
        "days_from_rollups": answer["totals"]["days_from_rollups"],
        "days_from_events": answer["totals"]["days_from_events"],
    }

    # Recording: what a request pays for one event (emitted, then written in one insert).
    record = []
    for i in range(args.usage_records + 100):
        t = time.perf_counter()
        with events_collect() as held:
            event_emit("project.opened", user=owner, project=projects[0], object_id=str(i))
        events_write(held)
        if i >= 100:
            record.append(time.perf_counter() - t)
    page = Client(HTTP_HOST="127.0.0.1")
    page.force_login(owner)
    url = f"/p/{projects[0].slug}/"
    writers = dict(core_events._WRITERS)
    with_writer: list[float] = []
    without_writer: list[float] = []
    for i in range(2 * 300 + 40):
        on = i % 2 == 0
        core_events._WRITERS.clear()
        if on:
            core_events._WRITERS.update(writers)
        t = time.perf_counter()
        r = page.get(url)
        took = time.perf_counter() - t
        if r.status_code != 200:
            raise RuntimeError(f"the project page answered {r.status_code}")
        if i >= 40:
            (with_writer if on else without_writer).append(took)
    core_events._WRITERS.clear()
    core_events._WRITERS.update(writers)
    page_with, page_without = summarise(with_writer), summarise(without_writer)

    met_dashboard = dashboard["all"]["p95_ms"] <= TARGET_DASHBOARD_P95_MS
    busy_s = max(day_runs)
    recorded = summarise(record)
    return {
        "database": f"PostgreSQL {version}",
        "seed": seeded["info"],
        "rollup_year": {
            "days": len(rolled),
            "seconds": round(rollup_year_s, 1),
            "mean_day_ms": round(1000 * rollup_year_s / max(len(rolled), 1), 1),
            "rollup_rows": rollup_rows,
            "activity_rows": activity_rows,
            "months_merged": len(months),
            "months_s": round(months_s, 1),
        },
        "rollup_busy_day": {
            "events": marker.events,
            "runs": len(day_runs),
            **summarise(day_runs),
        },
        "dashboard": dashboard,
        "record": {
            "emit_and_write": recorded,
            "project_page_with_recording": page_with,
            "project_page_without": page_without,
            "page_p50_difference_ms": round(page_with["p50_ms"] - page_without["p50_ms"], 3),
        },
        "target": {
            "dashboard_p95_ms": TARGET_DASHBOARD_P95_MS,
            "rollup_day_s": TARGET_ROLLUP_DAY_S,
            "record_p95_ms": TARGET_RECORD_P95_MS,
        },
        "met": met_dashboard
        and busy_s <= TARGET_ROLLUP_DAY_S
        and recorded["p95_ms"] <= TARGET_RECORD_P95_MS,
    }


# --- the parent: a database of its own, the child, the result --------------------------


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Creates a database, runs the measurement in a child process, drops the database."""
    var = tmp / "usage-var"
    var.mkdir(parents=True, exist_ok=True)
    flags = section_flags(
        args,
        "usage",
        ["events", "users", "projects", "requests", "day_events", "queries", "records"],
    )
    import psycopg

    try:
        with temporary_database(args.usage_database, "statelab_bench_usage") as db_url:
            return section_child_run(
                "workers.benchmarks.usage", var, flags, {"DATABASE_URL": db_url}
            )
    except psycopg.OperationalError as exc:  # no server there: the section is skipped
        return {"skipped": f"no PostgreSQL at {args.usage_database}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    return section_child_main(argv, "usage benchmark (child process)", add_arguments, child)


if __name__ == "__main__":
    sys.exit(main())
