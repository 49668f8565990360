"""Match through HTTP (targets: p50 <= 80 ms at 1M tokens x 650 cells, m = 8, and
within the engine's own time + 8 ms), and opening a saved hypothesis (target: p95
<= 50 ms).

What is timed is what a user's click costs: `POST /api/statesets/{id}/matches/`
(and LSTMVis' `GET /api/v2/match`) over a real socket to gunicorn, answered by the
web process itself (`backend/matching/inline.py`; `--match-http-inline off` sends
every match through a job, a separate Celery worker process and the broker as
before), the answer recorded and returned as JSON. Every query selects 8 fresh
random cells (threshold 0.3, zero_left 1), so no answer is ever a stored one. A
query that outlasts the request's short wait (a 202) is followed up through
`GET /api/jobs/{id}/` and counted with its whole time.

It runs in a child process of its own (`python -m workers.benchmarks.match_http`)
so that its Django settings (the embedded SQLite database, or a PostgreSQL
database made for the run with `--match-http-database URL`; the broker chosen
here) do not mix with other sections'. The broker is the local Redis when it
answers (a lab's set-up), else the embedded filesystem broker, whose 0.2 s
polling then dominates; the JSON says which. Everything lives in a temporary
folder: the random-walk state set (like real cell states) and its match index are
generated and removed afterwards.

Opening a saved hypothesis is what a colleague's click on its link costs: `GET
/api/hypotheses/{id}/` (the newest version with its pinned match result, reused)
then `GET /api/hypotheses/{id}/match/?limit=20` (the first hits with their
context), each over the same keep-alive connection; the pair is timed together.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    broker_choose,
    celery_worker_command,
    celery_workers_wait,
    free_port,
    gunicorn_command,
    log_wait,
    process_start,
    process_stop,
    section_child_main,
    section_child_run,
    section_flags,
    temporary_database,
)

TARGET_P50_MS = 80.0
TARGET_OPEN_P95_MS = 50.0
TARGET_BROWSER_P50_MS = 300.0
TARGET_FIRST_DRAW_MS = 150.0
TARGET_PAN_MS = 100.0
# Target: a match over HTTP within the engine's own time + 8 ms (p50).
TARGET_OVER_ENGINE_MS = 8.0
CHROMIUM = Path("/usr/bin/chromium")
REDIS_URL = "redis://127.0.0.1:6379/13"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match-http-tokens", type=int, default=1_000_000, help="match_http: corpus length"
    )
    parser.add_argument(
        "--match-http-cells", type=int, default=650, help="match_http: cells of the source"
    )
    parser.add_argument(
        "--match-http-selected", type=int, default=8, help="match_http: cells per query (m)"
    )
    parser.add_argument(
        "--match-http-queries", type=int, default=60, help="match_http: requests timed"
    )
    parser.add_argument(
        "--match-http-warmup", type=int, default=5, help="match_http: requests not timed"
    )
    parser.add_argument(
        "--match-http-opens", type=int, default=200, help="match_http: hypothesis opens timed"
    )
    parser.add_argument(
        "--match-http-browser-queries",
        type=int,
        default=20,
        help="match_http: Match presses timed in Chromium (0: none)",
    )
    parser.add_argument(
        "--match-http-broker",
        default="auto",
        help="match_http: a broker URL, 'filesystem', or 'auto' (local Redis when it answers)",
    )
    parser.add_argument(
        "--match-http-database",
        default="sqlite",
        help="match_http: 'sqlite' (the embedded default), or a PostgreSQL admin URL "
        "on whose server a database is made for the run and dropped after it",
    )
    parser.add_argument(
        "--match-http-inline",
        choices=("on", "off"),
        default="on",
        help="match_http: small matches answered by the web process (off: through jobs)",
    )
    parser.add_argument(
        "--match-http-shard-tokens",
        type=int,
        default=0,
        help="match_http: shard size (0: the setting's default)",
    )


class Api:
    """One keep-alive HTTP connection with a token, like a script or the browser."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")


def _match(api: Api, ss_id: str, cells: list[int]) -> tuple[float, dict[str, Any], bool]:
    """One query, timed until its answer is known; (seconds, answer, answered at once)."""
    body = {"source": "s0", "cells": cells, "threshold": 0.3, "zero_left": 1}
    t = time.perf_counter()
    status, answer = api.call("POST", f"/api/statesets/{ss_id}/matches/", body)
    if status == 202:
        job_id = answer["job"]["id"]
        while True:
            _, job = api.call("GET", f"/api/jobs/{job_id}/")
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.005)
        if job["status"] != "succeeded":
            raise RuntimeError(f"match job {job_id} {job['status']}: {job['error']}")
        status, answer = api.call("GET", f"/api/matches/{job['result']['match']}/?limit=50")
    elapsed = time.perf_counter() - t
    if status != 200 or answer.get("status") != "succeeded":
        raise RuntimeError(f"match request answered {status}: {str(answer)[:300]}")
    return elapsed, answer, status == 200 and "reused" in answer


def _match_v2(api: Api, project: str, cells: list[int]) -> float:
    """One LSTMVis `/api/v2/match` query (the request waits for the worker's answer)."""
    path = f"/api/v2/match?project={project}&cells={','.join(map(str, cells))}&dims=words"
    t = time.perf_counter()
    status, answer = api.call("GET", path)
    elapsed = time.perf_counter() - t
    if status != 200:
        raise RuntimeError(f"v2 match answered {status}: {str(answer)[:300]}")
    return elapsed


def _hypothesis_open(api: Api, ss_id: str, cells: list[int], opens: int) -> dict[str, Any]:
    """Save a hypothesis of `cells`, then time opening it `opens` times."""
    body = {
        "stateset": ss_id,
        "source": "s0",
        "cells_added": cells,
        "threshold": 0.3,
        "zero_left": 1,
        "title": "bench",
        "notes": "opened by the benchmark",
    }
    status, saved = api.call("POST", "/api/hypotheses/", body)
    if status != 201:
        raise RuntimeError(f"saving a hypothesis answered {status}: {str(saved)[:300]}")
    hid = saved["id"]
    while saved["match_result"]["status"] != "succeeded":
        time.sleep(0.05)
        _, saved = api.call("GET", f"/api/hypotheses/{hid}/")
    times = []
    for i in range(opens + 5):
        t = time.perf_counter()
        s1, detail = api.call("GET", f"/api/hypotheses/{hid}/")
        s2, page = api.call("GET", f"/api/hypotheses/{hid}/match/?limit=20&left=10")
        elapsed = time.perf_counter() - t
        if s1 != 200 or s2 != 200 or detail["match"] != saved["match"]:
            raise RuntimeError(f"opening the hypothesis answered {s1}/{s2}")
        if i >= 5:
            times.append(elapsed)
    from workers.benchmarks.common import summarise

    return {
        "requests": "GET hypothesis + GET its match page (20 hits with context)",
        "hits": page["total"],
        **summarise(times),
    }


def _browser_match(port: int, session: str, ss_id: str, fresh: Any, queries: int) -> dict[str, Any]:
    """The analysis page in Chromium, timed by the page itself (`performance.measure`):
    its first draw of a 200-token window of all 650 cells (`analysis:first-draw`,
    the module's start to the window drawn, its request included), a pan by one
    window (`analysis:pan`, PageDown), and the Match button to the first rows of hits
    drawn (`analysis:match`). Each round opens the page with fresh cells at a new
    place, waits for it to be drawn, pans once, presses Match and reads the measures
    once the table is ready; the first two rounds warm the browser's caches."""
    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} is missing (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    from workers.benchmarks.common import summarise

    base = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {
        "first_draw": [],
        "since_navigation": [],
        "since_html": [],
        "pan": [],
        "match": [],
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
            page = context.new_page()
            for i in range(queries + 2):
                cells = ",".join(str(c) for c in fresh())
                page.goto(f"{base}/statesets/{ss_id}/?cells={cells}&w=200&pos={1000 + 5000 * i}")
                page.wait_for_selector('#figure[data-ready="true"]', timeout=60_000)
                page.locator("#figure").focus()
                page.keyboard.press("PageDown")
                page.wait_for_function(
                    "() => performance.getEntriesByName('analysis:pan').length > 0",
                    timeout=60_000,
                )
                page.get_by_role("button", name="Match", exact=True).click()
                page.wait_for_function(
                    "() => performance.getEntriesByName('analysis:match').length > 0",
                    timeout=60_000,
                )
                took = page.evaluate(
                    """() => {
                        const at = (n) => performance.getEntriesByName('analysis:' + n)[0];
                        const first = at('first-draw');
                        return {
                            'first-draw': first.duration,
                            'since-navigation': first.startTime + first.duration,
                            'since-html': first.startTime + first.duration
                                - performance.getEntriesByType('navigation')[0].responseEnd,
                            pan: at('pan').duration,
                            match: at('match').duration,
                        };
                    }"""
                )
                if i >= 2:
                    times["first_draw"].append(float(took["first-draw"]) / 1000)
                    times["since_navigation"].append(float(took["since-navigation"]) / 1000)
                    times["since_html"].append(float(took["since-html"]) / 1000)
                    times["pan"].append(float(took["pan"]) / 1000)
                    times["match"].append(float(took["match"]) / 1000)
        finally:
            browser.close()
    return {
        "window": {"tokens": 200, "cells": "all"},
        "first_draw": summarise(times["first_draw"]),
        # the same draw timed from the navigation's start: the HTML, the page's
        # modules and the window's request (preloaded by the page's head) included
        "first_draw_since_navigation": summarise(times["since_navigation"]),
        # ... and from the page's HTML received (its modules, the request, the draw)
        "first_draw_since_html": summarise(times["since_html"]),
        "pan_one_window": summarise(times["pan"]),
        "match_to_rows": summarise(times["match"]),
    }


def child(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    """Runs in the child process: set up, start the worker and web server, time."""
    from workers.benchmarks.common import build_stateset, django_setup, missed, summarise

    broker = broker_choose(args.match_http_broker, REDIS_URL)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    os.environ["STATELAB_MATCH_RATE"] = "100000/min"
    if args.match_http_shard_tokens:
        os.environ["STATELAB_MATCH_SHARD_TOKENS"] = str(args.match_http_shard_tokens)
    if args.match_http_inline == "off":
        os.environ["STATELAB_MATCH_INLINE_TOKENS"] = "0"
    database = os.environ.get("STATELAB_BENCH_DATABASE_URL") or None
    django_setup(var, database)
    for sub in ("queue", "processed", "control"):
        (var / "broker" / sub).mkdir(parents=True, exist_ok=True)
    from django.conf import settings
    from rest_framework.authtoken.models import Token

    from backend.accounts.services import user_create
    from backend.projects.services import project_create
    from backend.states.models import StateSet
    from workers.core.indexes import build_indexes

    n, d = args.match_http_tokens, args.match_http_cells
    rel = "statesets/bench-match"
    ss_dir = Path(settings.STATELAB_STORE_ROOT) / rel
    t = time.perf_counter()
    build_stateset(ss_dir, n, d)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    build_indexes(ss_dir)
    index_s = time.perf_counter() - t
    user = user_create(username="bench-match", password=os.urandom(16).hex())
    project = project_create(user=user, name="bench match")
    manifest = json.loads((ss_dir / "manifest.json").read_text())
    ss = StateSet.objects.create(
        project=project, name="bench", length=n, path=rel, manifest=manifest, created_by=user
    )
    token = Token.objects.create(user=user).key
    from django.test import Client

    web_client = Client()
    web_client.force_login(user)
    session = web_client.cookies["sessionid"].value
    if args.match_http_browser_queries:  # the page's files, served as `make run` does
        from django.core.management import call_command

        call_command("collectstatic", interactive=False, verbosity=0)

    env = dict(os.environ)
    port = free_port()
    worker = process_start(
        celery_worker_command(f"bench-{os.getpid()}@%h"), env, var / "worker.log"
    )
    web = process_start(gunicorn_command(port), env, var / "web.log")
    try:
        # With --loglevel WARNING the worker says nothing when ready: ask it.
        celery_workers_wait([worker], [var / "worker.log"], 90)
        log_wait(var / "web.log", "Booting worker", web, 60)
        api = Api(port, token)
        while True:
            try:
                api.call("GET", f"/api/statesets/{ss.id}/")
                break
            except (ConnectionError, OSError):
                time.sleep(0.2)
                api = Api(port, token)
        rng = np.random.default_rng(11)
        seen: set[tuple[int, ...]] = set()

        def fresh() -> list[int]:
            while True:
                cells = tuple(
                    sorted(int(c) for c in rng.choice(d, args.match_http_selected, replace=False))
                )
                if cells not in seen:
                    seen.add(cells)
                    return list(cells)

        from backend.matching.models import Match

        for _ in range(args.match_http_warmup):
            _match(api, str(ss.id), fresh())
        # The web process compiles its match kernels in the background when it starts
        # (backend/matching/inline.py); until then its matches go through jobs.
        deadline = time.monotonic() + 60
        while args.match_http_inline == "on" and time.monotonic() < deadline:
            _, answer, _ = _match(api, str(ss.id), fresh())
            if Match.objects.filter(id=answer["id"], job__isnull=True).exists():
                break
        before = Match.objects.filter(job__isnull=True).count()
        times, engine, at_once, best_i = [], [], 0, []
        for _ in range(args.match_http_queries):
            elapsed, answer, direct = _match(api, str(ss.id), fresh())
            times.append(elapsed)
            at_once += int(direct)
            if answer.get("seconds") is not None:
                engine.append(float(answer["seconds"]))
            if answer["hits"]:
                best_i.append(answer["hits"][0]["intersection"])
            if answer.get("reused"):
                raise RuntimeError("a fresh query was answered from the store")
        http_stats = summarise(times)
        in_web = Match.objects.filter(job__isnull=True).count() - before
        engine_p50 = summarise(engine)["p50_ms"] if engine else None
        over_engine = (
            round(http_stats["p50_ms"] - engine_p50, 3) if engine_p50 is not None else None
        )
        v2_times = [
            _match_v2(api, project.slug, fresh())
            for _ in range(max(args.match_http_queries // 2, 1))
        ]
        opened = _hypothesis_open(api, str(ss.id), fresh(), args.match_http_opens)
        in_browser = (
            _browser_match(port, session, str(ss.id), fresh, args.match_http_browser_queries)
            if args.match_http_browser_queries
            else {"skipped": "--match-http-browser-queries 0"}
        )
        browser_ok = "skipped" in in_browser or (
            in_browser["match_to_rows"]["p50_ms"] <= TARGET_BROWSER_P50_MS
            and in_browser["first_draw"]["p50_ms"] <= TARGET_FIRST_DRAW_MS
            and in_browser["pan_one_window"]["p50_ms"] <= TARGET_PAN_MS
        )
        return {
            "stateset": {
                "tokens": n,
                "cells": d,
                "build_s": round(build_s, 1),
                "index_build_s": round(index_s, 1),
            },
            "selected_cells": args.match_http_selected,
            "broker": broker.split("://")[0],
            "database": "postgresql" if database else "sqlite",
            "client": "http.client keep-alive -> gunicorn (1 process, 4 threads)",
            "worker": "celery prefork, concurrency 1",
            "inline": args.match_http_inline,
            "match_http": http_stats,
            # LSTMVis' route, answered the same way, with its own shape.
            "v2_match_http": summarise(v2_times),
            "engine": summarise(engine) if engine else None,
            "answered_within_wait": at_once,
            # by the web process itself (backend/matching/inline.py), not by a job
            "answered_in_web": in_web,
            "over_engine_p50_ms": over_engine,
            "best_intersection_median": float(np.median(best_i)) if best_i else None,
            "hypothesis_open": opened,
            # The analysis page in Chromium: first draw, pan, Match to the first rows.
            "browser": in_browser,
            "target": {
                "match_http_p50_ms": TARGET_P50_MS,
                "hypothesis_open_p95_ms": TARGET_OPEN_P95_MS,
                "browser_match_to_rows_p50_ms": TARGET_BROWSER_P50_MS,
                "browser_first_draw_p50_ms": TARGET_FIRST_DRAW_MS,
                "browser_pan_p50_ms": TARGET_PAN_MS,
                "over_engine_p50_ms": TARGET_OVER_ENGINE_MS,
            },
            "missed": [
                *missed("REST p50", http_stats["p50_ms"], TARGET_P50_MS, "ms"),
                *missed("REST p50 over the engine", over_engine, TARGET_OVER_ENGINE_MS, "ms"),
                *missed("hypothesis open p95", opened["p95_ms"], TARGET_OPEN_P95_MS, "ms"),
                *(
                    []
                    if "skipped" in in_browser
                    else [
                        *missed(
                            "browser first draw p50",
                            in_browser["first_draw"]["p50_ms"],
                            TARGET_FIRST_DRAW_MS,
                            "ms",
                        ),
                        *missed(
                            "browser pan p50",
                            in_browser["pan_one_window"]["p50_ms"],
                            TARGET_PAN_MS,
                            "ms",
                        ),
                        *missed(
                            "browser match to rows p50",
                            in_browser["match_to_rows"]["p50_ms"],
                            TARGET_BROWSER_P50_MS,
                            "ms",
                        ),
                    ]
                ),
            ],
            "met": http_stats["p50_ms"] <= TARGET_P50_MS
            and over_engine is not None
            and over_engine <= TARGET_OVER_ENGINE_MS
            and opened["p95_ms"] <= TARGET_OPEN_P95_MS
            and browser_ok,
        }
    finally:
        process_stop(web)
        process_stop(worker)
        shutil.rmtree(ss_dir, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Runs the measurement in a child process with its own settings; returns its JSON."""
    var = tmp / "match-http-var"
    var.mkdir(parents=True, exist_ok=True)
    flags = section_flags(
        args,
        "match_http",
        [
            "tokens",
            "cells",
            "selected",
            "queries",
            "warmup",
            "opens",
            "broker",
            "browser_queries",
            "shard_tokens",
            "inline",
        ],
    )
    try:
        if args.match_http_database == "sqlite":
            return section_child_run("workers.benchmarks.match_http", var, flags)
        with temporary_database(args.match_http_database, "statelab_bench_http") as url:
            return section_child_run(
                "workers.benchmarks.match_http", var, flags, {"STATELAB_BENCH_DATABASE_URL": url}
            )
    finally:
        shutil.rmtree(var, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return section_child_main(argv, "match_http benchmark (child process)", add_arguments, child)


if __name__ == "__main__":
    sys.exit(main())
