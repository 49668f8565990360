"""GPU check for matching: CUDA gives the CPU engine's answers, and how fast.

Run on a machine with a CUDA device: ``python -m workers.gpucheck.match``. It
prints one JSON object and exits 1 when an answer differs (or there is no CUDA).

1. A random state set is generated in a temporary folder: AR(1) random walks
   like real cell states (2M tokens x 256 cells by default, with NaN here and
   there), indexed. A second, small one holds a few discrete levels, exact
   threshold values, NaN and infinities, where ties and exact checks abound.
2. Every query runs on the CPU (the reference: ``device="cpu"``) and on CUDA
   with the index, without it, and split into shards that are merged; the
   answers (hits, histograms, candidates, exactness, unscored) must be equal.
   The queries cover m = 1 to 80 cells (two mask words), both transforms,
   zero_left/zero_right 0-3, length filters, limits 1-1000 and a range
   restriction.
3. Timings (warm, median of repeats) of the CPU and CUDA engines per query.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Rows x cells of the large state set (env overrides for a quick run).
ROWS = int(os.environ.get("MATCH_GPUCHECK_ROWS", "2000000"))
CELLS = int(os.environ.get("MATCH_GPUCHECK_CELLS", "256"))


def _answer(result: Any) -> dict[str, Any]:
    """What must agree: everything but ``scored`` (work done, which sharding changes)."""
    out: dict[str, Any] = result.to_json()
    out.pop("scored", None)
    return out


def _write(path: Path, raw: np.ndarray, transform: str = "tanh") -> None:
    from workers.core.store import SourceInfo, StateSetWriter

    n, d = raw.shape
    with StateSetWriter(path) as w:
        w.set_tokens(np.zeros(n, dtype=np.int32), ["x"])
        w.add_source(
            SourceInfo(id="s0", name="states", layer=1, kind="c", cells=d, transform=transform),
            n,
            lambda a, b: raw[a:b],
        )
        w.commit()


def _large(path: Path) -> None:
    from workers.benchmarks.match import build_ar_stateset

    build_ar_stateset(path, ROWS, CELLS, seed=4)
    # A few NaN in place, to exercise them on the device too.
    src = np.load(path / "sources" / "s0.npy", mmap_mode="r+")
    rng = np.random.default_rng(5)
    src[rng.integers(0, ROWS, 500), rng.integers(0, CELLS, 500)] = np.nan
    src.flush()
    del src


def _small(path: Path) -> None:
    rng = np.random.default_rng(6)
    levels = np.array(
        [-1.0, -0.3, 0.0, 0.3, 0.5, 1.0, math.nan, math.inf, -math.inf, math.atanh(0.3)],
        dtype=np.float32,
    )
    raw = levels[rng.integers(0, levels.size, size=(5000, 12))]
    _write(path, raw)


def _queries(d: int, seed: int) -> list[Any]:
    from workers.core.match import MatchQuery

    rng = np.random.default_rng(seed)
    out = []
    specs: list[dict[str, Any]] = [
        {"m": 8},
        {"m": 8, "zero_left": 0},
        {"m": 1, "limit": 1000},
        {"m": 3, "zero_right": 2, "transform": "none", "threshold": 0.2},
        {"m": 16, "zero_left": 2, "zero_right": 1, "min_length": None},
        {"m": 32, "threshold": 0.0, "length": 3},
        {"m": 80, "threshold": -0.3, "limit": 5},
        {"m": 8, "range_start": 1000, "range_end": 500_000, "max_length": 20},
        {"m": 5, "zero_left": 3, "zero_right": 3, "threshold": 0.6},
    ]
    for spec in specs:
        m = min(int(spec.pop("m")), d)
        cells = tuple(int(c) for c in rng.choice(d, size=m, replace=False))
        spec.setdefault("threshold", 0.3)
        out.append(MatchQuery(cells=cells, **spec))
    return out


def _median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 3)


def _check(path: Path, shard_tokens: int, repeats: int) -> dict[str, Any]:
    from workers.core.match import match, merge_results, shard_bounds
    from workers.core.store import StateSet

    ss = StateSet.open(path)
    d = ss.source("s0").cells
    rows = []
    ok = True
    for q in _queries(d, seed=ss.length % 1000):
        if q.range_end is not None and q.range_end >= ss.length:
            continue
        want = _answer(match(ss, "s0", q))
        row: dict[str, Any] = {"query": q.to_json()}
        row["cells"] = len(q.cells)
        row["candidates"] = want["candidates"]
        row["cuda_index"] = _answer(match(ss, "s0", q, device="cuda")) == want
        row["cuda_rows"] = _answer(match(ss, "s0", q, device="cuda", use_index=False)) == want
        parts = [
            match(ss, "s0", q, shard=b, device="cuda")
            for b in shard_bounds(ss.length, shard_tokens)
        ]
        row["cuda_shards"] = _answer(merge_results(parts, q.limit)) == want
        row["cpu_ms"] = _median_ms(lambda q=q: match(ss, "s0", q), repeats)
        row["cuda_ms"] = _median_ms(lambda q=q: match(ss, "s0", q, device="cuda"), repeats)
        ok = ok and row["cuda_index"] and row["cuda_rows"] and row["cuda_shards"]
        rows.append(row)
    return {"tokens": ss.length, "cells": d, "queries": rows, "agree": ok}


def main() -> dict[str, Any]:
    import torch

    result: dict[str, Any] = {"cuda": bool(torch.cuda.is_available())}
    if not result["cuda"]:
        result["ok"] = False
        result["error"] = "no CUDA device"
        return result
    result["device"] = torch.cuda.get_device_name(0)
    result["torch"] = torch.__version__
    result["numpy"] = np.__version__
    from workers.core.match import build_match_index

    tmp = Path(tempfile.mkdtemp(prefix="statelab-gpucheck-match-"))
    try:
        t = time.perf_counter()
        _small(tmp / "small")
        _large(tmp / "large")
        build_match_index(tmp / "small")
        build_match_index(tmp / "large")
        result["setup_s"] = round(time.perf_counter() - t, 1)
        result["small"] = _check(tmp / "small", shard_tokens=777, repeats=3)
        result["large"] = _check(tmp / "large", shard_tokens=ROWS // 3 + 1, repeats=5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["ok"] = bool(result["small"]["agree"] and result["large"]["agree"])
    return result


if __name__ == "__main__":
    out = main()
    print(json.dumps(out, indent=2))
    sys.exit(0 if out.get("ok") else 1)
