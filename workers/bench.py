"""`make bench`: the speed targets, measured, as JSON with the machine that measured them.

Context reads (issue target: p95 <= 30 ms for 100 tokens x 650 cells) are timed
twice: the core call alone (`read_context` on a memory-mapped state set) and the
whole API request through Django (authentication, access check, JSON rendering),
in-process with Django's test client. The state set is generated here (a random
walk, like real LSTM cell states) in a temporary folder, so nothing large is
committed. Options: --tokens N (default 1,000,000), --cells D (650), --reads R.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "max_ms": round(ms[-1], 3),
        "n": len(ms),
    }


def build_stateset(path: Path, n: int, d: int, seed: int = 1) -> None:
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    ids = rng.integers(0, len(vocab), size=n).astype(np.int32)
    state = np.zeros(d, dtype=np.float32)

    def fill(a: int, b: int) -> np.ndarray:
        nonlocal state
        steps = rng.normal(0, 0.3, size=(b - a, d)).astype(np.float32)
        steps[0] += state
        block = np.cumsum(steps, axis=0, dtype=np.float32)
        block *= 0.999  # keep the walk bounded over a long corpus
        state = block[-1].copy()
        return block

    with StateSetWriter(path) as w:
        w.set_tokens(ids, vocab)
        w.add_source(
            SourceInfo(id="s0", name="states::c1", layer=1, kind="c", cells=d, transform="tanh"),
            n,
            fill,
        )
        w.add_annotation(
            AnnotationInfo(name="depth", kind="scalar"), rng.random(n).astype(np.float32)
        )
        w.commit()


def bench_context(root: Path, n: int, d: int, reads: int, window: int) -> dict[str, Any]:
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


def bench_http(var: Path, ss_dir: Path, n: int, d: int, starts: Any, window: int) -> dict[str, Any]:
    os.environ["DJANGO_SETTINGS_MODULE"] = "backend.config.settings.local"
    os.environ["STATELAB_VAR_DIR"] = str(var)
    os.environ["STATELAB_STORE_ROOT"] = str(var / "store")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from backend.accounts.services import user_create
    from backend.projects.services import project_create
    from backend.states.models import StateSet

    user = user_create(username="bench", password=os.urandom(16).hex())
    project = project_create(user=user, name="bench")
    rel = "statesets/bench"
    (var / "store" / "statesets").mkdir(parents=True, exist_ok=True)
    shutil.move(str(ss_dir), str(var / "store" / rel))
    manifest = json.loads((var / "store" / rel / "manifest.json").read_text())
    ss = StateSet.objects.create(
        project=project, name="bench", length=n, path=rel, manifest=manifest, created_by=user
    )
    (var / "static").mkdir(parents=True, exist_ok=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--cells", type=int, default=650)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("var/bench/bench.json"))
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="statelab-bench-"))
    try:
        ss_dir = tmp / "stateset"
        t = time.perf_counter()
        build_stateset(ss_dir, args.tokens, args.cells)
        build_s = time.perf_counter() - t
        ctx = bench_context(ss_dir, args.tokens, args.cells, args.reads, args.window)
        http = bench_http(
            tmp / "var", ss_dir, args.tokens, args.cells, ctx.pop("starts"), args.window
        )
        result = {
            "benchmark": "context",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
