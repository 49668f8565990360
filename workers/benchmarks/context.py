"""Context reads (target: p95 <= 30 ms for 100 tokens x 650 cells).

Timed twice: the core call alone (`read_context` on a memory-mapped state set) and
the whole API request through Django (authentication, access check, JSON
rendering), in-process with Django's test client. The state set is generated here
(a random walk, like real LSTM cell states), so nothing large is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import build_stateset, django_setup, summarise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, default=1_000_000, help="context: corpus length")
    parser.add_argument("--cells", type=int, default=650, help="context: cells per source")
    parser.add_argument("--reads", type=int, default=400, help="context: reads timed")
    parser.add_argument("--window", type=int, default=100, help="context: tokens per read")


def bench_core(root: Path, n: int, d: int, reads: int, window: int) -> dict[str, Any]:
    from workers.core.context import read_context
    from workers.core.store import StateSet

    ss = StateSet.open(root)
    rng = np.random.default_rng(2)
    starts = rng.integers(0, n - window, size=reads)
    # warm the page cache as a user's session would
    for s in starts[: min(reads, 50)]:
        read_context(ss, "s0", int(s), int(s) + window - 1)
    core = []
    for s in starts:
        t = time.perf_counter()
        out = read_context(ss, "s0", int(s), int(s) + window - 1)
        core.append(time.perf_counter() - t)
    if len(out["values"]) != d or len(out["values"][0]) != window:
        raise RuntimeError("the context window has the wrong shape")
    cells = list(range(0, d, max(d // 8, 1)))[:8]
    sel = []
    for s in starts[: reads // 2]:
        t = time.perf_counter()
        read_context(ss, "s0", int(s), int(s) + window - 1, cells=cells, threshold=0.3)
        sel.append(time.perf_counter() - t)
    return {
        "all_cells": summarise(core),
        "eight_cells_with_count": summarise(sel),
        "starts": starts,
    }


def bench_http(var: Path, ss_dir: Path, n: int, starts: Any, window: int) -> dict[str, Any]:
    django_setup(var)
    from django.test import Client

    from backend.accounts.services import user_create
    from backend.projects.services import project_create
    from backend.states.models import StateSet

    user = user_create(username="bench-context", password=os.urandom(16).hex())
    project = project_create(user=user, name="bench context")
    rel = "statesets/bench-context"
    (var / "store" / "statesets").mkdir(parents=True, exist_ok=True)
    shutil.move(str(ss_dir), str(var / "store" / rel))
    manifest = json.loads((var / "store" / rel / "manifest.json").read_text())
    ss = StateSet.objects.create(
        project=project, name="bench", length=n, path=rel, manifest=manifest, created_by=user
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = f"/api/statesets/{ss.id}/context/"
    times = []
    for s in starts:
        t = time.perf_counter()
        params = {"source": "s0", "start": str(int(s)), "end": str(int(s) + window - 1)}
        r = client.get(url, params)
        times.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(f"context request failed: {r.content[:200]!r}")
    return summarise(times[min(50, len(times) // 4) :])


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ss_dir = tmp / "context-stateset"
    t = time.perf_counter()
    build_stateset(ss_dir, args.tokens, args.cells)
    build_s = time.perf_counter() - t
    ctx = bench_core(ss_dir, args.tokens, args.cells, args.reads, args.window)
    http = bench_http(tmp / "var", ss_dir, args.tokens, ctx.pop("starts"), args.window)
    return {
        "stateset": {
            "tokens": args.tokens,
            "cells": args.cells,
            "dtype": "float32",
            "bytes": args.tokens * args.cells * 4,
            "build_s": round(build_s, 2),
        },
        "window_tokens": args.window,
        "context_core": ctx,
        "context_http": http,
        "target": {"context_p95_ms": 30},
        "met": http["p95_ms"] <= 30 and ctx["all_cells"]["p95_ms"] <= 30,
    }
