"""`python -m workers.benchmarks.loadtest` (`make loadtest`): 50 users for 5 minutes
against a throw-away lab on loopback; the figures as JSON.

Targets: no errors (5xx or any other unexpected status, connection errors, timeouts,
wrong answers; 429s are counted apart), `context` p95 <= 300 ms, `match (new)` p95
<= 1.5 s, and the service answering normally right after the load.

What it does, everything under a temporary folder removed afterwards:

1. The lab: PostgreSQL when it answers on 127.0.0.1:5432 (a fresh database, dropped
   at the end), Redis on 127.0.0.1:6379 as broker and shared cache (a database
   number found empty, flushed at the end), else the embedded default (SQLite and
   the filesystem broker); migrated.
2. A random-walk state set like the benchmarks' (1,000,000 tokens x 650 cells by
   default, 2.6 GB) with its match and phrase-search indexes; a project, one
   account and API token per simulated user (editors, so that they may upload).
3. gunicorn (2 processes x 4 threads, as `make run` starts it; idle connections
   kept longer than a user's pause) and one Celery worker (concurrency 1), both on
   loopback, with the product's own settings and rate limits.
4. Before the load: the repeated queries' answers recorded, and a quiet baseline
   (context reads and new matches one after another).
5. locust, headless, one process (`locustfile.py` says what the users do).
6. After the load: the job queue drained, then the same reads and matches as the
   baseline, which must be correct and within the targets.
7. The JSON: per action count, failures, 429s, p50/p95/max (exact, from every
   sample); the server's own time per route (gunicorn's access log); CPU used by
   each part and by the rest of the machine; load averages; the machine.
   Written to `var/bench/loadtest.json` and printed; the exit status is 1 when a
   target is missed, with how far.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    build_stateset,
    celery_worker_command,
    free_port,
    gunicorn_command,
    machine,
    port_answers,
    process_start,
    process_stop,
    summarise,
)
from workers.benchmarks.loadtest.checks import hits_digest

TARGET_CONTEXT_P95_MS = 300.0
TARGET_MATCH_NEW_P95_MS = 1500.0
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ROOT = Path(__file__).resolve().parents[3]
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
WINDOW = 200
REPEATED_QUERIES = 8
PHRASES = 120
SEARCH_LIMIT = 200
CPU_STEP_S = 30.0
# How often each action comes, relative to the others (locustfile.py describes them).
MIX = {"context": 60, "search": 20, "match (repeated)": 15, "match (new)": 10, "upload": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--users", type=int, default=50, help="simulated users (50)")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the load (5)")
    p.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    p.add_argument("--think", default="1,5", help="seconds between a user's actions (1,5)")
    p.add_argument(
        "--mix",
        default="",
        help="weights to change, e.g. 'upload=5,search=10' ("
        + ", ".join(f"{k}={v}" for k, v in MIX.items())
        + ")",
    )
    p.add_argument("--tokens", type=int, default=1_000_000, help="state set length")
    p.add_argument("--cells", type=int, default=650, help="cells of its source")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (2)")
    p.add_argument("--web-threads", type=int, default=4, help="threads per process (4)")
    p.add_argument("--worker-concurrency", type=int, default=1, help="Celery processes (1)")
    p.add_argument(
        "--database", choices=["auto", "postgres", "sqlite"], default="auto", help="auto"
    )
    p.add_argument("--broker", choices=["auto", "redis", "filesystem"], default="auto")
    p.add_argument("--redis-db", type=int, default=11, help="first Redis database tried")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "loadtest.json")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    return p.parse_args(argv)


# -- loopback services --------------------------------------------------------------


def _pg_admin() -> Any:
    import psycopg

    last: Exception | None = None
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user="postgres",
                dbname=dbname,
                autocommit=True,
                connect_timeout=3,
            )
        except psycopg.OperationalError as exc:
            last = exc
    raise RuntimeError(f"PostgreSQL on {PG_HOST}:{PG_PORT} refused the connection: {last}")


def _redis_free_db(first: int) -> int:
    """A Redis database number holding no keys, trying ``first`` first."""
    import redis

    for n in [first, *[i for i in range(15, -1, -1) if i != first]]:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n, socket_connect_timeout=1)
        try:
            if client.dbsize() == 0:
                return n
        finally:
            client.close()
    raise RuntimeError("every Redis database on 127.0.0.1:6379 holds keys; none to borrow")


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# -- CPU accounting -----------------------------------------------------------------


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return total - idle, total


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


class PostgresCpu:
    """CPU seconds of the PostgreSQL backends serving one database. Backends come and
    go (connections are reused for a minute), so each one's last figure is kept."""

    def __init__(self, dbname: str | None) -> None:
        self.dbname = dbname
        self.seen: dict[int, float] = {}

    def total(self) -> float:
        import psutil

        if not self.dbname:
            return 0.0
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("postgres:") and f" {self.dbname} " in cmd:
                    t = proc.cpu_times()
                    self.seen[proc.pid] = t.user + t.system
        return sum(self.seen.values())


# -- a plain client for the set-up and the checks before and after ------------------


class Api:
    """One keep-alive connection with a token."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            r = self.conn.getresponse()
        except (ConnectionError, http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise
        return r.status, json.loads(r.read() or b"null")

    def match(self, ss: str, cells: list[int]) -> dict[str, Any]:
        body = {"source": "s0", "cells": cells, "threshold": 0.3, "zero_left": 1}
        status, answer = self.call("POST", f"/api/statesets/{ss}/matches/", body)
        if status == 202:
            job = answer["job"]
            deadline = time.monotonic() + 180
            while job["status"] in ("queued", "running"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"match job {job['id']} did not end in 180 s")
                time.sleep(0.05)
                _, job = self.call("GET", f"/api/jobs/{job['id']}/")
            if job["status"] != "succeeded":
                raise RuntimeError(f"match job {job['id']} {job['status']}: {job['error']}")
            status, answer = self.call("GET", f"/api/matches/{job['result']['match']}/?limit=50")
        if status != 200 or answer.get("status") != "succeeded":
            raise RuntimeError(f"a match answered {status}: {str(answer)[:300]}")
        return dict(answer)


def quiet_check(
    api: Api, ss: str, n: int, d: int, rng: random.Random, values: np.ndarray
) -> dict[str, Any]:
    """20 context reads and 5 new matches one after another, each answer checked."""
    context_s, match_s, wrong = [], [], []
    for _ in range(20):
        start = rng.randrange(0, n - WINDOW)
        t = time.perf_counter()
        status, answer = api.call(
            "GET", f"/api/statesets/{ss}/context/?source=s0&start={start}&end={start + WINDOW - 1}"
        )
        context_s.append(time.perf_counter() - t)
        cell = rng.randrange(d)
        want = np.tanh(np.asarray(values[start : start + WINDOW, cell], dtype=np.float64))
        if status != 200 or not np.allclose(answer["values"][cell], want, atol=2e-5):
            wrong.append(f"context at {start} answered {status}")
    for _ in range(5):
        cells = sorted(rng.sample(range(d), 8))
        t = time.perf_counter()
        try:
            answer = api.match(ss, cells)
            if answer["query"]["cells"] != cells:
                wrong.append(f"match of {cells} answered for another query")
        except RuntimeError as exc:
            wrong.append(str(exc)[:300])
        match_s.append(time.perf_counter() - t)
    return {"context": summarise(context_s), "match_new": summarise(match_s), "wrong": wrong}


# -- the plan the simulated users follow ---------------------------------------------


def phrase_positions(ids: np.ndarray, phrase: list[int], limit: int) -> tuple[list[int], int]:
    """Where a phrase of token ids starts (the first ``limit``) and how often: a scan."""
    n = ids.size - len(phrase) + 1
    mask = ids[:n] == phrase[0]
    for k, t in enumerate(phrase[1:], start=1):
        mask &= ids[k : k + n] == t
    found = np.flatnonzero(mask)
    return [int(p) for p in found[:limit]], int(found.size)


def make_phrases(ids: np.ndarray, vocab: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Phrases read off the corpus: a third of one token (~200 hits each here), the rest
    of two or three (mostly one hit: the place they were read from)."""
    out = []
    for i in range(PHRASES):
        size = 1 + i % 3
        at = rng.randrange(0, ids.size - size)
        phrase = [int(t) for t in ids[at : at + size]]
        positions, total = phrase_positions(ids, phrase, SEARCH_LIMIT)
        out.append(
            {"q": " ".join(vocab[t] for t in phrase), "positions": positions, "total": total}
        )
    return out


# -- the server's own view: gunicorn's access log ----------------------------------------

_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=/)")
_SLUG_AFTER = re.compile(r"^(/api/projects/)[^/]+(/)")


def route_of(path: str) -> str:
    """`/api/statesets/<uuid>/context/` -> `/api/statesets/{id}/context/`."""
    return _SLUG_AFTER.sub(r"\1{slug}\2", _ID.sub("/{id}", path))


def server_times(log: Path, start: int, end: int) -> dict[str, Any]:
    """Per route: count, statuses, and the server's time (gunicorn's %(D)s) p50/p95/max."""
    times: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    with open(log, "rb") as fh:
        fh.seek(start)
        chunk = fh.read(max(end - start, 0)).decode(errors="replace")
    for line in chunk.splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[3].isdigit():
            continue
        method, path, code, micros = parts
        key = f"{method} {route_of(path)}"
        times[key].append(int(micros) / 1e6)
        statuses[key][code] += 1
    return {
        key: {**summarise(samples), "statuses": dict(statuses[key])}
        for key, samples in sorted(times.items(), key=lambda kv: -len(kv[1]))
    }


# -- reading locust's samples ---------------------------------------------------------


def figures(samples: list[list[Any]], seconds: float) -> dict[str, Any]:
    """Per action: count, failures, 429s, p50/p95/max over every sample (ms)."""
    by_name: dict[str, list[float]] = defaultdict(list)
    failed: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    for _, name, ms, error in samples:
        if name.endswith(" [429]"):
            throttled[name[: -len(" [429]")]] += 1
            continue
        by_name[name].append(ms / 1000.0)
        if error:
            failed[name] += 1
    out: dict[str, Any] = {}
    for name in sorted(by_name, key=lambda k: -len(by_name[k])):
        s = summarise(by_name[name])
        out[name] = {
            "count": s["n"],
            "failures": failed[name],
            "throttled_429": throttled[name],
            "per_s": round(s["n"] / seconds, 2),
            "p50_ms": round(s["p50_ms"], 1),
            "p95_ms": round(s["p95_ms"], 1),
            "max_ms": round(s["max_ms"], 1),
        }
    for name in throttled:
        out.setdefault(name, {"count": 0, "failures": 0, "throttled_429": throttled[name]})
    return out


def cpu_shares(marks: list[dict[str, float]], cores: int) -> list[dict[str, float]]:
    """Between successive marks: the share of all cores the lab's parts used, and the
    rest of the machine (``others``)."""
    out = []
    for a, b in itertools.pairwise(marks):
        span = (b["t"] - a["t"]) * cores
        ours = {k: (b[k] - a[k]) / span for k in ("web", "worker", "postgres", "locust")}
        others = max((b["busy"] - a["busy"]) / span - sum(ours.values()), 0.0)
        out.append({k: round(v, 2) for k, v in {**ours, "others": others}.items()})
    return out


def timeline(
    samples: list[list[Any]], cpu: list[dict[str, float]], step_s: float = CPU_STEP_S
) -> list[dict[str, Any]]:
    """Every ``step_s``: requests, failures, context and new-match p95 (ms), and the
    share of the cores each part used then."""
    buckets: dict[int, list[list[Any]]] = defaultdict(list)
    for sample in samples:
        buckets[int(sample[0] // step_s)].append(sample)
    rows = []
    for b in sorted(buckets):
        part = buckets[b]

        def p95(name: str, part: list[list[Any]] = part) -> float | None:
            ms = sorted(s[2] for s in part if s[1] == name)
            return round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None

        rows.append(
            {
                "from_s": int(b * step_s),
                "requests": len(part),
                "failures": sum(1 for s in part if s[3]),
                "context_p95_ms": p95("context"),
                "match_new_p95_ms": p95("match (new)"),
                "cpu_share": cpu[b] if b < len(cpu) else None,
            }
        )
    return rows


def misses_of(result: dict[str, Any]) -> list[str]:
    """Each missed target, saying by how much."""
    out = []
    reqs = result["requests"]
    errors = result["totals"]["failures"]
    if errors:
        out.append(f"{errors} errors (target 0): {result['errors']}")
    for name, target in (
        ("context", TARGET_CONTEXT_P95_MS),
        ("match (new)", TARGET_MATCH_NEW_P95_MS),
    ):
        got = reqs.get(name, {}).get("p95_ms")
        if got is None:
            out.append(f"no '{name}' requests were made")
        elif got > target:
            over = got - target
            out.append(
                f"'{name}' p95 {got:.0f} ms is {over:.0f} ms ({100 * over / target:.0f} %) "
                f"over its {target:.0f} ms target"
            )
    after = result["after"]
    if after.get("wrong"):
        out.append(f"after the load: wrong answers {after['wrong']}")
    if after.get("drained_s") is None:
        out.append("after the load: jobs were still queued or running a minute later")
    for part, target in (
        ("context", TARGET_CONTEXT_P95_MS),
        ("match_new", TARGET_MATCH_NEW_P95_MS),
    ):
        got = after.get(part, {}).get("p95_ms")
        if got is not None and got > target:
            out.append(
                f"after the load: {part} p95 {got:.0f} ms, over its {target:.0f} ms target "
                f"by {got - target:.0f} ms"
            )
    return out


# -- the run ----------------------------------------------------------------------------


class Lab:
    """The throw-away lab: its database, broker, processes and temporary folder."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.var = tmp / "var"
        self.pg_db: str | None = None
        self.redis_db: int | None = None
        self.procs: list[tuple[subprocess.Popen[bytes], float]] = []

    def configure(self) -> dict[str, str]:
        """Choose and create the database and broker; the environment of every process."""
        a = self.args
        use_pg = a.database == "postgres" or (
            a.database == "auto" and port_answers(PG_PORT, PG_HOST)
        )
        use_redis = a.broker == "redis" or (
            a.broker == "auto" and port_answers(REDIS_PORT, REDIS_HOST)
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
            and k not in ("STATELAB_CACHE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG")
        }
        self.var.mkdir(parents=True)
        for sub in ("queue", "processed", "control"):
            (self.var / "broker" / sub).mkdir(parents=True)
        (self.var / "static").mkdir()
        env.update(
            DJANGO_SETTINGS_MODULE="backend.config.settings.local",
            STATELAB_VAR_DIR=str(self.var),
            STATELAB_STORE_ROOT=str(self.var / "store"),
            STATELAB_CACHE_PREFIX=f"statelab-loadtest-{os.getpid()}",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        )
        if use_pg:
            self.pg_db = f"statelab_loadtest_{os.getpid()}"
            with _pg_admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_db}"')
            env["DATABASE_URL"] = f"postgres://postgres@{PG_HOST}:{PG_PORT}/{self.pg_db}"
        if use_redis:
            self.redis_db = _redis_free_db(a.redis_db)
            env["CELERY_BROKER_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}"
        else:
            env["CELERY_BROKER_URL"] = "filesystem://"
        return env

    def close(self) -> None:
        """Stop the processes, drop the database, flush the Redis database; a step
        that fails says so and the others still run."""
        for proc, grace in reversed(self.procs):
            try:
                process_stop(proc, grace)
            except Exception as exc:
                print(f"Could not stop process {proc.pid}: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.pg_db:
            try:
                with _pg_admin() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            except Exception as exc:
                print(f"Could not drop the database {self.pg_db}: {exc}", file=sys.stderr)
            self.pg_db = None
        if self.redis_db is not None:
            import redis

            try:
                client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db)
                client.flushdb()
                client.close()
            except redis.RedisError as exc:
                print(f"Could not flush Redis database {self.redis_db}: {exc}", file=sys.stderr)
            self.redis_db = None

    def run(self) -> dict[str, Any]:
        a = self.args
        think = [float(x) for x in a.think.split(",")]
        mix = dict(MIX)
        for item in filter(None, a.mix.split(",")):
            name, _, weight = item.rpartition("=")
            if name not in mix:
                raise SystemExit(f"--mix: unknown action {name!r}; the actions: {', '.join(MIX)}")
            mix[name] = int(weight)
        loadavg = {"before": os.getloadavg()}
        env = self.configure()
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

        from rest_framework.authtoken.models import Token

        from backend.accounts.models import User
        from backend.jobs.models import Job, JobStatus
        from backend.projects.models import Membership, Role
        from backend.projects.services import project_create
        from backend.states.models import StateSet
        from workers.core.indexes import build_indexes
        from workers.core.store import StateSet as StoredStateSet

        n, d = a.tokens, a.cells
        rel = "statesets/loadtest"
        ss_dir = Path(settings.STATELAB_STORE_ROOT) / rel
        print(f"Generating the state set ({n:,} tokens x {d} cells)...", file=sys.stderr)
        t = time.perf_counter()
        build_stateset(ss_dir, n, d, seed=a.seed)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        build_indexes(ss_dir)
        index_s = time.perf_counter() - t

        owner = User.objects.create_user(username="loadtest-owner", password=None)
        project = project_create(user=owner, name="load test")
        manifest = json.loads((ss_dir / "manifest.json").read_text())
        ss = StateSet.objects.create(
            project=project, name="load", length=n, path=rel, manifest=manifest, created_by=owner
        )
        tokens = []
        for i in range(a.users):
            user = User.objects.create_user(username=f"loadtest-{i:03d}", password=None)
            Membership.objects.create(project=project, user=user, role=Role.EDITOR)
            tokens.append(Token.objects.create(user=user).key)
        owner_token = Token.objects.create(user=owner).key

        stored = StoredStateSet.open(ss_dir)
        rng = random.Random(a.seed)
        phrases = make_phrases(np.asarray(stored.tokens), stored.vocab, rng)
        values = stored.values("s0")

        port = free_port()
        bindir = Path(sys.executable).parent
        worker_cmd = celery_worker_command(
            f"loadtest-{os.getpid()}@%h", concurrency=a.worker_concurrency
        )
        worker = process_start(worker_cmd, env, self.var / "worker.log")
        self.procs.append((worker, 2.0))
        access_log = self.var / "access.log"
        web_cmd = gunicorn_command(
            port,
            workers=a.web_workers,
            threads=a.web_threads,
            options=[
                "--timeout",
                "120",
                # Idle connections stay open longer than a user thinks (gunicorn's default
                # is 2 s): a POST sent on a connection the server has just closed is not
                # resent by locust's client (browsers resend it) and would count as an error.
                "--keep-alive",
                str(math.ceil(think[1]) + 5),
                "--access-logfile",
                str(access_log),
                "--access-logformat",
                "%(m)s %(U)s %(s)s %(D)s",
            ],
        )
        web = process_start(web_cmd, env, self.var / "web.log")
        self.procs.append((web, 10.0))

        api = Api(port, owner_token)
        deadline = time.monotonic() + 90
        while True:
            try:
                if api.call("GET", f"/api/statesets/{ss.id}/")[0] == 200:
                    break
            except (ConnectionError, http.client.HTTPException, OSError):
                pass
            if web.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start:\n{_tail(self.var / 'web.log')}")
            time.sleep(0.3)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker stopped:\n{_tail(self.var / 'worker.log')}")

        # The repeated queries' answers (the first ask computes and stores each).
        repeated = []
        for _ in range(REPEATED_QUERIES):
            cells = sorted(rng.sample(range(d), 8))
            answer = api.match(str(ss.id), cells)
            again = api.match(str(ss.id), cells)
            if not again.get("reused") or hits_digest(again["hits"]) != hits_digest(answer["hits"]):
                raise RuntimeError(f"the stored match of {cells} did not answer as stored")
            repeated.append(
                {"cells": cells, "total": answer["total"], "digest": hits_digest(answer["hits"])}
            )
        before = quiet_check(api, str(ss.id), n, d, rng, values)

        plan_path = self.tmp / "plan.json"
        samples_path = self.tmp / "samples.json"
        plan = {
            "stateset": str(ss.id),
            "project": project.slug,
            "source": "s0",
            "length": n,
            "cells": d,
            "store_path": str(ss_dir),
            "values_file": "sources/s0.npy",
            "tokens_file": "tokens.npy",
            "tokens": tokens,
            "repeated": repeated,
            "phrases": phrases,
            "think_s": think,
            "mix": mix,
            "seed": a.seed,
            "samples_out": str(samples_path),
        }
        plan_path.write_text(json.dumps(plan))
        locust_env = {**env, "STATELAB_LOADTEST_PLAN": str(plan_path)}
        seconds = round(a.minutes * 60)
        locust_cmd = [
            str(bindir / "locust"),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(a.users),
            "--spawn-rate",
            str(a.spawn_rate),
            "--run-time",
            f"{seconds}s",
            "--host",
            f"http://127.0.0.1:{port}",
            "--csv",
            str(a.out.with_suffix("")),
            "--only-summary",
            "--stop-timeout",
            "30",
            "--loglevel",
            "WARNING",
        ]
        print(
            f"Load: {a.users} users for {a.minutes:g} min against http://127.0.0.1:{port}/ ...",
            file=sys.stderr,
        )
        log_start = access_log.stat().st_size
        ticks = os.sysconf("SC_CLK_TCK")
        loadavg["at_start"] = os.getloadavg()
        cpu0 = _machine_cpu()
        part0 = {"web": _tree_cpu(web.pid), "worker": _tree_cpu(worker.pid)}
        pg = PostgresCpu(self.pg_db)
        pg0 = pg.total()
        t = time.perf_counter()
        locust = process_start(locust_cmd, locust_env, self.tmp / "locust.log")
        self.procs.append((locust, 10.0))
        locust_cpu, pg_cpu = 0.0, pg0
        marks: list[dict[str, float]] = []

        def mark(elapsed: float) -> None:
            marks.append(
                {
                    "t": elapsed,
                    "busy": _machine_cpu()[0] / ticks,
                    "web": _tree_cpu(web.pid),
                    "worker": _tree_cpu(worker.pid),
                    "locust": locust_cpu,
                    "postgres": pg_cpu,
                }
            )

        while locust.poll() is None:
            locust_cpu = max(locust_cpu, _tree_cpu(locust.pid))
            pg_cpu = pg.total()
            elapsed = time.perf_counter() - t
            if elapsed >= CPU_STEP_S * len(marks):
                mark(elapsed)
            if elapsed > seconds + 180:
                raise RuntimeError(f"locust did not stop:\n{_tail(self.tmp / 'locust.log')}")
            time.sleep(1.0)
        wall = time.perf_counter() - t
        mark(wall)
        cpu1 = _machine_cpu()
        loadavg["at_end"] = os.getloadavg()
        cores = os.cpu_count() or 1
        busy_s = (cpu1[0] - cpu0[0]) / ticks
        parts = {
            "web": _tree_cpu(web.pid) - part0["web"],
            "worker": _tree_cpu(worker.pid) - part0["worker"],
            "postgres": pg.total() - pg0,
            "locust": locust_cpu,
        }
        parts["everything else"] = max(busy_s - sum(parts.values()), 0.0)
        cpu = {
            "machine_busy_share": round(busy_s / (wall * cores), 3),
            "cpu_seconds": {k: round(v, 1) for k, v in parts.items()},
            "share_of_all_cores": {k: round(v / (wall * cores), 3) for k, v in parts.items()},
        }
        log_end = access_log.stat().st_size
        if not samples_path.exists():
            raise RuntimeError(f"locust wrote no samples:\n{_tail(self.tmp / 'locust.log')}")
        samples = json.loads(samples_path.read_text())["samples"]

        # Right after: the queue drained, then the quiet reads and matches again.
        t = time.perf_counter()
        drained: float | None = None
        while time.perf_counter() - t < 60:
            if not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
                drained = round(time.perf_counter() - t, 2)
                break
            time.sleep(0.2)
        after = {
            "drained_s": drained,
            **quiet_check(Api(port, owner_token), str(ss.id), n, d, rng, values),
        }
        loadavg["after"] = os.getloadavg()
        jobs = Counter(
            f"{kind} {status}" for kind, status in Job.objects.values_list("kind", "status")
        )
        log_errors = sum(
            _tail(self.var / name, 10**9).count("Traceback") for name in ("web.log", "worker.log")
        )

        reqs = figures(samples, wall)
        errors = Counter(
            s[3].split(":", 1)[0] + ": " + s[3].split(":", 1)[-1][:120] for s in samples if s[3]
        )
        rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        result: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
            "setup": {
                "users": a.users,
                "spawn_rate_per_s": a.spawn_rate,
                "minutes": a.minutes,
                "think_s": think,
                "mix": mix,
                "stateset": {
                    "tokens": n,
                    "cells": d,
                    "build_s": round(build_s, 1),
                    "index_build_s": round(index_s, 1),
                },
                "database": "postgresql" if self.pg_db else "sqlite",
                "broker": "redis" if self.redis_db is not None else "filesystem",
                "web": f"gunicorn, {a.web_workers} processes x {a.web_threads} threads",
                "worker": f"celery prefork, concurrency {a.worker_concurrency}",
                "client": "locust (FastHttpUser), one process on the same machine",
                "rate_limits": dict(rates),
                "match_wait_s": settings.STATELAB_MATCH_WAIT_S,
            },
            "load_average": {k: [round(x, 2) for x in v] for k, v in loadavg.items()},
            "wall_s": round(wall, 1),
            "requests": reqs,
            "totals": {
                "count": sum(r.get("count", 0) for r in reqs.values()),
                "failures": sum(r.get("failures", 0) for r in reqs.values()),
                "throttled_429": sum(r.get("throttled_429", 0) for r in reqs.values()),
            },
            "errors": dict(errors.most_common(10)),
            "timeline": timeline(samples, cpu_shares(marks, cores)),
            "server": server_times(access_log, log_start, log_end),
            "server_log_tracebacks": log_errors,
            "cpu": cpu,
            "jobs": dict(jobs),
            "before": before,
            "after": after,
            "targets": {
                "errors": 0,
                "context_p95_ms": TARGET_CONTEXT_P95_MS,
                "match_new_p95_ms": TARGET_MATCH_NEW_P95_MS,
                "after": "answers correct, same targets, job queue drained",
            },
        }
        misses = misses_of(result)
        result["misses"] = misses
        result["met"] = not misses
        return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="statelab-loadtest-"))
    lab = Lab(args, tmp)
    try:
        result = lab.run()
    finally:
        lab.close()
        if args.keep:
            print(f"Kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    for miss in result["misses"]:
        print(f"MISSED: {miss}", file=sys.stderr)
    return 0 if result["met"] else 1
