"""A sharded match over several worker processes (target: at 10M tokens x 650 cells the
p50 over 3 workers below the p50 of 1 worker, answers identical).

What is timed is a match job from its creation to its answer: `match_start` (the row
and the job, sent through Redis), taken by a separate `celery worker` process, then
either one engine call there (one worker, no shards) or a chord of 3 shard tasks
spread over 3 worker processes (concurrency 1 each, as on three machines) merged by
the callback, and the answer recorded. The same fresh queries (8 random cells,
threshold 0.3, zero_left 1) run in each configuration and once in this process
through the engine directly; the answers (hits and both histograms) must be equal.

The corpus is generated the way `common.build_stateset` does (a random walk per cell),
written once as the float32 source and, from the same blocks, as its match index
(cell-major uint16 codes): at 10M x 650 that is 26 GB + 13 GB on disk. The engine
needs both (the index for the scans, the source for the rows at the edges of
candidates and for values whose code straddles the threshold). Where the disk has
less than that free (with a 20 % margin), the corpus is shortened to what fits and the
JSON says so (`stateset.tokens_requested`).

It runs in a child process of its own, like `match_http`, on the local PostgreSQL
(database `shard_bench`, created if missing) and Redis (database 8); without Redis it
is skipped, without PostgreSQL it uses SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    celery_worker_command,
    celery_workers_wait,
    django_setup,
    machine,
    missed,
    port_answers,
    process_start,
    process_stop,
    section_child_main,
    section_child_run,
    section_flags,
    summarise,
)

REDIS_URL = "redis://127.0.0.1:6379/8"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/shard_bench"
THRESHOLD = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-match-tokens", type=int, default=10_000_000, help="shard_match: corpus length"
    )
    parser.add_argument(
        "--shard-match-cells", type=int, default=650, help="shard_match: cells of the source"
    )
    parser.add_argument(
        "--shard-match-workers", type=int, default=3, help="shard_match: worker processes"
    )
    parser.add_argument(
        "--shard-match-queries", type=int, default=20, help="shard_match: queries timed"
    )
    parser.add_argument(
        "--shard-match-warmup", type=int, default=3, help="shard_match: queries not timed"
    )


def fitting_tokens(var: Path, n: int, d: int) -> int:
    """`n`, or the most tokens whose source and index fit the free disk under `var`
    with a 20 % margin (a multiple of 1M, at least 1M)."""
    free = shutil.disk_usage(var).free
    per_token = d * (4 + 2) * 1.2
    if n * per_token <= free:
        return n
    return max(1_000_000, int(free / per_token) // 1_000_000 * 1_000_000)


def build_with_index(path: Path, n: int, d: int, seed: int = 1) -> float:
    """A state set of `n` tokens with source `s0` (n x d float32, a random walk: steps
    N(0, 0.3), damped by 0.999 per block, as `common.build_stateset`) and its match
    index, both written from the same blocks in one pass. Returns the seconds it took."""
    from workers.core.match_index import IndexWriter, block_rows
    from workers.core.store import SourceInfo, StateSetWriter

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    with StateSetWriter(path) as w:
        w.set_tokens(rng.integers(0, len(vocab), size=n).astype(np.int32), vocab)
        source = w.open_source(
            SourceInfo(id="s0", name="states::c1", layer=1, kind="c", cells=d, transform="tanh"),
            n,
        )
        writer = IndexWriter(w.tmp_dir / "index" / "match" / "s0", n, d)
        state = np.zeros(d, dtype=np.float32)
        step = block_rows(d)
        try:
            for a in range(0, n, step):
                b = min(n, a + step)
                block = rng.standard_normal((b - a, d), dtype=np.float32)
                block *= np.float32(0.3)
                block[0] += state
                np.cumsum(block, axis=0, out=block)
                block *= np.float32(0.999)
                state = block[-1].copy()
                source.write_rows(a, block)
                writer.write(a, block)
            writer.finish("s0")
        finally:
            writer.close()
        w.commit()
    return time.perf_counter() - t


def _database() -> str:
    if not port_answers(5432):
        return ""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'shard_bench'").fetchone():
            c.execute("CREATE DATABASE shard_bench")
    return POSTGRES_URL


def _workers_start(count: int, var: Path, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    logs = [var / f"worker-{i}.log" for i in range(count)]
    procs = [
        process_start(
            celery_worker_command(
                f"shard-bench-{os.getpid()}-{i}@%h", options=["--prefetch-multiplier", "1"]
            ),
            env,
            log,
        )
        for i, log in enumerate(logs)
    ]
    celery_workers_wait(procs, logs, 120)
    return procs


def _run_queries(
    ss: Any, queries: list[list[int]], shard_tokens: int, warmup: int
) -> tuple[list[float], list[dict[str, Any]], dict[str, int]]:
    """Each query as a match job through the workers: (seconds, answers, shards per worker)."""
    from django.conf import settings

    from backend.jobs.models import Job
    from backend.matching.models import Match
    from backend.matching.services import match_query_build, match_start

    settings.STATELAB_MATCH_SHARD_TOKENS = shard_tokens
    Match.objects.all().delete()
    times, answers = [], []
    per_worker: dict[str, int] = {}
    for i, cells in enumerate(queries):
        t = time.perf_counter()
        source, query = match_query_build(
            stateset=ss, source="s0", threshold=THRESHOLD, cells=cells, zero_left=1
        )
        match, job = match_start(stateset=ss, user=None, source=source, query=query)
        assert job is not None, "a fresh query was answered from the store"
        while (row := Job.objects.filter(id=job.id).values("status", "error", "result").get())[
            "status"
        ] in ("queued", "running"):
            time.sleep(0.002)
        elapsed = time.perf_counter() - t
        if row["status"] != "succeeded":
            raise RuntimeError(f"match job {job.id} {row['status']}: {row['error']}")
        for worker, shards in (row["result"].get("shards_by_worker") or {}).items():
            per_worker[worker] = per_worker.get(worker, 0) + len(shards)
        if i >= warmup:
            times.append(elapsed)
            answers.append(Match.objects.get(id=match.id).result)
    return times, answers, per_worker


def _key(answer: dict[str, Any]) -> tuple[Any, ...]:
    return (answer["hits"], answer["strict"], answer["fuzzy"], answer["exact"])


def child(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    if not port_answers(6379):
        return {"skipped": "no Redis at 127.0.0.1:6379 (chords need its result backend)"}
    d, k = args.shard_match_cells, args.shard_match_workers
    var.mkdir(parents=True, exist_ok=True)
    n = fitting_tokens(var, args.shard_match_tokens, d)
    database = _database()
    os.environ.update(CELERY_BROKER_URL=REDIS_URL, STATELAB_WORKER_WARM_UP="true")
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    django_setup(var, database or None)
    from backend.accounts.services import user_create
    from backend.config.celery_app import app
    from backend.matching.codec import result_row
    from backend.matching.services import match_query_build
    from backend.projects.services import project_create
    from backend.states.models import StateSet
    from backend.states.selectors import stateset_store
    from workers.core.match import match as engine_match

    app.control.purge()
    rel = f"statesets/shard-bench-{os.getpid()}"
    ss_dir = var / "store" / rel
    build_s = build_with_index(ss_dir, n, d)
    user = user_create(username=f"shard-bench-{os.getpid()}", password=os.urandom(16).hex())
    project = project_create(user=user, name=f"shard bench {os.getpid()}")
    manifest = json.loads((ss_dir / "manifest.json").read_text())
    ss = StateSet.objects.create(
        project=project, name="bench", length=n, path=rel, manifest=manifest, created_by=user
    )
    rng = np.random.default_rng(23)
    total = args.shard_match_warmup + args.shard_match_queries
    queries = [sorted(int(c) for c in rng.choice(d, 8, replace=False)) for _ in range(total)]

    # The engine in this process, unsharded: the reference answers.
    store = stateset_store(ss)
    direct_times, direct = [], []
    for i, cells in enumerate(queries):
        _, query = match_query_build(
            stateset=ss, source="s0", threshold=THRESHOLD, cells=cells, zero_left=1
        )
        t = time.perf_counter()
        answer = result_row(engine_match(store, "s0", query))
        if i >= args.shard_match_warmup:
            direct_times.append(time.perf_counter() - t)
            direct.append(answer)

    env = dict(os.environ)
    runs: dict[str, Any] = {}
    answers: dict[str, list[dict[str, Any]]] = {}
    # (name, workers, shard size): k shards over k workers; one worker, unsharded;
    # the same k shards on one worker (what the chord costs without more processes).
    configs = [
        (f"{k}_workers_{k}_shards", k, -(-n // k)),
        ("1_worker_unsharded", 1, n),
        (f"1_worker_{k}_shards", 1, -(-n // k)),
    ]
    try:
        for name, count, shard_tokens in configs:
            procs = _workers_start(count, var, env)
            try:
                times, answers[name], per_worker = _run_queries(
                    ss, queries, shard_tokens, args.shard_match_warmup
                )
            finally:
                for p in procs:
                    process_stop(p)
            runs[name] = {
                "workers": count,
                "shards": len(range(0, n, shard_tokens)),
                "shards_per_worker": sorted(per_worker.values()),
                **summarise(times),
            }
    finally:
        shutil.rmtree(ss_dir, ignore_errors=True)
    identical = all(
        [_key(a) for a in answers[name]] == [_key(a) for a in direct] for name in answers
    )
    sharded, single = runs[configs[0][0]], runs[configs[1][0]]
    return {
        "stateset": {
            "tokens": n,
            "tokens_requested": args.shard_match_tokens,
            "cells": d,
            "bytes": {"source": n * d * 4, "index": n * d * 2},
            "build_s": round(build_s, 1),
        },
        "selected_cells": 8,
        "threshold": THRESHOLD,
        "broker": "redis",
        "database": "postgresql" if database else "sqlite",
        "worker": "celery prefork, concurrency 1, one process each (as on separate machines)",
        "cores": machine()["cores"],
        "engine_in_process": summarise(direct_times),
        "runs": runs,
        "answers_identical": identical,
        "target": f"p50 of {k} workers < p50 of 1 worker",
        "missed": [
            *missed(f"p50 of {k} workers", sharded["p50_ms"], single["p50_ms"], "ms"),
            *([] if identical else ["the sharded answers differ from the engine's"]),
        ],
        "met": identical and sharded["p50_ms"] < single["p50_ms"],
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Runs the measurement in a child process with its own settings; returns its JSON."""
    var = tmp / "shard-match-var"
    var.mkdir(parents=True, exist_ok=True)
    flags = section_flags(args, "shard_match", ["tokens", "cells", "workers", "queries", "warmup"])
    try:
        return section_child_run("workers.benchmarks.shard_match", var, flags)
    finally:
        shutil.rmtree(var, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return section_child_main(argv, "shard_match benchmark (child process)", add_arguments, child)


if __name__ == "__main__":
    sys.exit(main())
