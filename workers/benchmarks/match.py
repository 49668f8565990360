"""The match engine (targets: p50 <= 8 ms, p95 <= 15 ms at 1M tokens x 650 cells, m = 8,
zero_left = 1, on both sources; p50 <= 60 ms, linear growth and flat memory at 10M tokens).

Two generated sources, both random walks, both 1M x 650 float32 with their match
index:

* ``ar`` (the contract's hard case): each cell an AR(1) walk
  ``x_t = 0.9 x_(t-1) + noise`` with unit variance, the way real cell states
  wander and come back. With 8 random cells at threshold 0.3 the best answers
  have I = 5 or 6 and the 50th has I = 4, as ``matching.md`` describes, and
  some 200,000 candidates pass the length filter;
* ``walk``: the unbounded random walk of ``common.build_stateset`` (what the
  other sections use). Cells stay on or off for very long stretches, so there
  are few candidates but they are long, and the histograms reach lengths near N.

Queries select 8 cells the way a user does: the selected cells of a random
hypothesis (``selection.selected_cells`` on a random 1-4 token range), filled up
with random cells when a range selects fewer than 8, cut to 8 when it selects
more. Files are read once before timing (a warm page cache, as on a lab server
that has been answering queries), and a few queries are run first to load the
compiled kernels; timing starts once the engine has mapped the files into the
process (it does so in the background on first use). Both the default (both cores) and a single thread are timed.

The 10M run happens in child processes (``python -m workers.benchmarks.match
child ...``) so that their resident memory is their own. Peak memory is the
kernel's high-water mark ``VmHWM``, reset (``/proc/self/clear_refs``) after the
set-up so that it covers the matches alone; ``ru_maxrss`` would not do, as Linux
carries the parent's peak across ``fork``/``exec`` into it. The runs are the
same queries at 1M and 10M tokens on a source of ``--match-large-cells`` cells
(128 by default: the scan reads only the 8 selected cells, so the growth with N
does not depend on D, while 10M x 650 float32 would need 26 GB of disk; the
JSON records what was run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    build_stateset,
    missed,
    reset_peak_memory,
    status_kib,
    summarise,
)

TARGET_P50_MS = 8.0
TARGET_P95_MS = 15.0
TARGET_LARGE_P50_MS = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--match-tokens", type=int, default=1_000_000, help="match: corpus length")
    parser.add_argument("--match-cells", type=int, default=650, help="match: cells per source")
    parser.add_argument("--match-queries", type=int, default=200, help="match: queries timed")
    parser.add_argument(
        "--match-data",
        default="ar,walk",
        help="match: sources to time, comma-separated: ar (hard case), walk",
    )
    parser.add_argument(
        "--match-large-tokens", type=int, default=10_000_000, help="match: the large corpus"
    )
    parser.add_argument(
        "--match-large-cells", type=int, default=128, help="match: cells of the large corpus"
    )
    parser.add_argument(
        "--match-large-queries", type=int, default=30, help="match: queries at 1M and 10M"
    )
    parser.add_argument("--match-skip-large", action="store_true", help="match: skip the 10M run")


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #


def _ar_kernel() -> Any:
    import numba

    @numba.njit(cache=True, nogil=True)
    def ar(noise: np.ndarray, state: np.ndarray, rho: np.float32) -> np.ndarray:
        out = np.empty_like(noise)
        for t in range(noise.shape[0]):
            for c in range(noise.shape[1]):
                state[c] = rho * state[c] + noise[t, c]
                out[t, c] = state[c]
        return out

    return ar


def build_ar_stateset(path: Path, n: int, d: int, rho: float = 0.9, seed: int = 1) -> None:
    """AR(1) random walks with unit variance (source ``s0``, transform tanh)."""
    from workers.core.store import SourceInfo, StateSetWriter

    ar = _ar_kernel()
    rng = np.random.default_rng(seed)
    sigma = np.float32(np.sqrt(1.0 - rho * rho))
    state = np.zeros(d, dtype=np.float32)

    def fill(a: int, b: int) -> np.ndarray:
        noise = rng.standard_normal((b - a, d), dtype=np.float32) * sigma
        out: np.ndarray = ar(noise, state, np.float32(rho))
        return out

    vocab = [f"w{i}" for i in range(5000)]
    with StateSetWriter(path) as w:
        w.set_tokens(rng.integers(0, len(vocab), size=n).astype(np.int32), vocab)
        w.add_source(
            SourceInfo(id="s0", name="states::c1", layer=1, kind="c", cells=d, transform="tanh"),
            n,
            fill,
        )
        w.commit()


def _warm(path: Path) -> None:
    """Read every file of a state set once, so that timing sees a warm page cache."""
    buf = bytearray(8 << 20)
    for f in sorted(path.rglob("*.npy")):
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def queries(ss: Any, count: int, seed: int, m: int = 8) -> list[Any]:
    """Queries as users make them: the selected cells of random hypotheses."""
    from workers.core.match import MatchQuery
    from workers.core.selection import selected_cells

    rng = np.random.default_rng(seed)
    n, d = ss.length, ss.source("s0").cells
    out = []
    for _ in range(count):
        start = int(rng.integers(1, n - 8))
        end = start + int(rng.integers(0, 4))
        picked = selected_cells(ss, "s0", start, end, 0.3, zero_left=1)
        cells = [int(c) for c in rng.permutation(picked)[:m]] if picked else []
        rest = [int(c) for c in rng.permutation(d) if int(c) not in cells]
        cells += rest[: m - len(cells)]
        out.append(MatchQuery(cells=tuple(cells), threshold=0.3, zero_left=1))
    return out


# --------------------------------------------------------------------------- #
# Timing
# --------------------------------------------------------------------------- #


def time_queries(
    path: Path, qs: list[Any], *, threads: int | None = None, warmup: int = 5
) -> dict[str, Any]:
    from workers.core import match_engine
    from workers.core.match import match
    from workers.core.store import StateSet

    ss = StateSet.open(path)
    for q in qs[:warmup]:
        match(ss, "s0", q, threads=threads)
    while match_engine.populating():  # the maps a first match starts to fill
        time.sleep(0.05)
    times, cands, scored, top, kth, exact = [], [], [], [], [], []
    stages: dict[str, list[float]] = {}
    for q in qs:
        t = time.perf_counter()
        r = match(ss, "s0", q, threads=threads)
        times.append(time.perf_counter() - t)
        cands.append(r.candidates)
        scored.append(r.scored)
        exact.append(r.exact)
        if r.hits:
            top.append(r.hits[0].intersection)
            kth.append(r.hits[-1].intersection)
        for key, value in r.timings_ms.items():
            stages.setdefault(key, []).append(value)
    return {
        "engine": summarise(times),
        "candidates_median": int(np.median(cands)),
        "scored_median": int(np.median(scored)),
        "best_I_median": float(np.median(top)) if top else None,
        "kth_I_median": float(np.median(kth)) if kth else None,
        "all_exact": all(exact),
        "stages_median_ms": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
    }


def _dataset(kind: str, path: Path, n: int, d: int) -> dict[str, Any]:
    from workers.core.match import build_match_index

    t = time.perf_counter()
    if kind == "ar":
        build_ar_stateset(path, n, d)
    else:
        build_stateset(path, n, d)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    build_match_index(path)
    index_s = time.perf_counter() - t
    index_bytes = sum(f.stat().st_size for f in (path / "index").rglob("*") if f.is_file())
    return {
        "tokens": n,
        "cells": d,
        "generate_s": round(gen_s, 1),
        "index_build_s": round(index_s, 1),
        "index_bytes": index_bytes,
        "source_bytes": n * d * 4,
    }


def _no_index(path: Path, qs: list[Any]) -> dict[str, Any]:
    from workers.core.match import match
    from workers.core.store import StateSet

    ss = StateSet.open(path)
    times = []
    for q in qs:
        t = time.perf_counter()
        match(ss, "s0", q, use_index=False)
        times.append(time.perf_counter() - t)
    return summarise(times)


# --------------------------------------------------------------------------- #
# The large corpus, in child processes
# --------------------------------------------------------------------------- #


def child(argv: list[str]) -> None:
    """``child <stateset> <queries> <seed>``: time queries, print JSON with ru_maxrss."""
    path, count, seed = Path(argv[0]), int(argv[1]), int(argv[2])
    from workers.core.store import StateSet

    _warm(path)
    ss = StateSet.open(path)
    qs = queries(ss, count, seed)
    time_queries(path, qs[:3], warmup=0)  # compiled kernels loaded, maps open
    # Reset the high-water mark (Linux: "5" > clear_refs), so that what follows
    # measures the matches alone.
    reset_peak_memory()
    rss_before = status_kib("VmRSS")
    out = time_queries(path, qs, warmup=0)
    peak = status_kib("VmHWM")
    out["rss_before_queries_mib"] = round(rss_before / 1024, 1)
    out["peak_rss_mib"] = round(peak / 1024, 1)
    out["peak_rss_increase_mib"] = round((peak - rss_before) / 1024, 1)
    print(json.dumps(out))


def _run_child(path: Path, count: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "workers.benchmarks.match", "child", str(path), str(count), "7"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the match benchmark child failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def large(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n_small, n_large, d = args.match_tokens, args.match_large_tokens, args.match_large_cells
    need = (n_small + n_large) * d * (4 + 2) * 1.05
    free = shutil.disk_usage(tmp).free
    if free < need + (8 << 30):
        return {"skipped": f"needs {need / 2**30:.0f} GiB of disk, {free / 2**30:.0f} GiB free"}
    out: dict[str, Any] = {"cells": d, "note": "AR(1) source; the scan reads only the 8 cells"}
    runs = {}
    for name, n in (("small", n_small), ("large", n_large)):
        path = tmp / f"match-{name}"
        out[f"{name}_data"] = _dataset("ar", path, n, d)
        runs[name] = _run_child(path, args.match_large_queries)
        runs[name]["tokens"] = n
        shutil.rmtree(path, ignore_errors=True)
    ratio = runs["large"]["engine"]["p50_ms"] / runs["small"]["engine"]["p50_ms"]
    out.update(runs)
    out["tokens_ratio"] = n_large / n_small
    out["p50_ratio"] = round(ratio, 2)
    out["peak_rss_ratio"] = round(runs["large"]["peak_rss_mib"] / runs["small"]["peak_rss_mib"], 2)
    grow_small = runs["small"]["peak_rss_increase_mib"]
    grow_large = runs["large"]["peak_rss_increase_mib"]
    out["linear"] = ratio <= 1.1 * n_large / n_small
    # Flat: what a match adds to the process does not grow with N (a little slack
    # for the scored candidates' rows, which grow with their number).
    out["memory_flat"] = grow_large <= 1.5 * grow_small + 32
    return out


# --------------------------------------------------------------------------- #
# Section
# --------------------------------------------------------------------------- #


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from workers.core.store import StateSet

    result: dict[str, Any] = {
        "query": "8 cells from random hypotheses, threshold 0.3 (tanh), zero_left 1, limit 50",
        "target": {
            "p50_ms": TARGET_P50_MS,
            "p95_ms": TARGET_P95_MS,
            "large_p50_ms": TARGET_LARGE_P50_MS,
        },
        "sources": {},
    }
    met = True
    misses: list[str] = []
    for kind in [k for k in args.match_data.split(",") if k]:
        path = tmp / f"match-{kind}"
        info = _dataset(kind, path, args.match_tokens, args.match_cells)
        _warm(path)
        qs = queries(StateSet.open(path), args.match_queries, seed=3)
        both = time_queries(path, qs)
        one = time_queries(path, qs, threads=1, warmup=2)
        section: dict[str, Any] = {
            "stateset": info,
            "threads_default": both,
            "threads_1": {"engine": one["engine"], "stages_median_ms": one["stages_median_ms"]},
            "no_index": _no_index(path, qs[:3]),
        }
        ok = bool(
            both["engine"]["p50_ms"] <= TARGET_P50_MS
            and both["engine"]["p95_ms"] <= TARGET_P95_MS
            and both["all_exact"]
        )
        misses += missed(f"{kind} p50", both["engine"]["p50_ms"], TARGET_P50_MS, "ms")
        misses += missed(f"{kind} p95", both["engine"]["p95_ms"], TARGET_P95_MS, "ms")
        if not both["all_exact"]:
            misses.append(f"{kind}: an answer was not exact")
        section["met"] = ok
        met = met and ok
        result["sources"][kind] = section
        shutil.rmtree(path, ignore_errors=True)
    if not args.match_skip_large:
        result["large"] = large(args, tmp)
        if "skipped" not in result["large"]:
            big = result["large"]["large"]["engine"]["p50_ms"]
            met = (
                met
                and result["large"]["linear"]
                and result["large"]["memory_flat"]
                and big <= TARGET_LARGE_P50_MS
            )
            misses += missed("10M p50", big, TARGET_LARGE_P50_MS, "ms")
            if not result["large"]["linear"]:
                misses.append(f"10M: {result['large']['p50_ratio']}x the 1M time, not linear")
            if not result["large"]["memory_flat"]:
                misses.append("10M: memory grew with the corpus")
    result["met"] = met
    result["missed"] = misses
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description="match engine benchmark")
        add_arguments(parser)
        ns = parser.parse_args()
        tmp_dir = Path(tempfile.mkdtemp(prefix="statelab-match-"))
        try:
            print(json.dumps(run(ns, tmp_dir), indent=2))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
