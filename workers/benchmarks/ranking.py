"""Cell ranking (targets: rank 650 cells of 1M tokens against a discrete track <= 5 s;
the ranking's peak memory the same at 1M and 4M tokens). Hypothesis statistics
have their own section, ``statistics``.

The state set is ``build_stateset``'s random walk plus a discrete track ``pos``
(4 labels) that follows cell 41. Timings are wall clock after a warm-up on a
small set (numba's cached kernels loaded, the source in the page cache). Memory:
the ranking in a subprocess per size that reports its own peak resident set
(``VmHWM``, reset at start), ``--ranking-memory-cells`` cells wide.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import build_stateset, reset_peak_memory, status_kib

_REPO = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ranking-tokens", type=int, default=1_000_000, help="ranking: N")
    parser.add_argument("--ranking-cells", type=int, default=650, help="ranking: D")
    parser.add_argument(
        "--ranking-memory-tokens", default="1000000,4000000",
        help="ranking: corpus lengths for the peak-memory comparison ('' to skip)",
    )  # fmt: skip
    parser.add_argument("--ranking-memory-cells", type=int, default=128, help="ranking: D there")


_CHILD = """
import json, sys
from pathlib import Path
from workers.benchmarks.ranking import memory_child
print(json.dumps(memory_child(Path(sys.argv[1]))))
"""


def memory_child(path: Path) -> dict[str, Any]:
    """Run in a subprocess: one discrete ranking of the state set at ``path``."""
    from workers.core.ranking import rank_cells
    from workers.core.store import StateSet

    reset_peak_memory()
    ss = StateSet.open(path)
    t = time.perf_counter()
    rank_cells(ss, "s0", "pos", "top")
    return {
        "tokens": ss.length,
        "cells": ss.source("s0").cells,
        "seconds": round(time.perf_counter() - t, 2),
        "peak_rss_mib": round(status_kib("VmHWM") / 1024, 1),
    }


def _auroc_error(ss: Any, ranking: Any, cells: list[int]) -> float:
    from scipy.stats import mannwhitneyu

    labels = np.asarray(ss.annotation("pos")[0]) == 3
    vals = ss.values("s0")
    got = {e["cell"]: e["auroc"] for e in ranking.cells}
    worst = 0.0
    for c in cells:
        x = np.tanh(np.asarray(vals[:, c]))
        u = mannwhitneyu(x[labels], x[~labels]).statistic / (labels.sum() * (~labels).sum())
        worst = max(worst, abs(float(u) - got[c]))
    return worst


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from workers.core.ranking import rank_cells
    from workers.core.store import StateSet

    build_stateset(tmp / "warm", 5000, 16, track_cell=41)
    warm = StateSet.open(tmp / "warm")
    rank_cells(warm, "s0", "pos", "top")
    rank_cells(warm, "s0", "depth")

    n, d = args.ranking_tokens, args.ranking_cells
    build_stateset(tmp / "ss", n, d, track_cell=41)
    ss = StateSet.open(tmp / "ss")
    rank_cells(ss, "s0", "pos", "top", rows=1000)  # page cache warm
    t = time.perf_counter()
    ranking = rank_cells(ss, "s0", "pos", "top")
    rank_s = time.perf_counter() - t
    t = time.perf_counter()
    scalar = rank_cells(ss, "s0", "depth")
    scalar_s = time.perf_counter() - t
    check = [e["cell"] for e in ranking.cells[:3]] + [0, 1]
    error = _auroc_error(ss, ranking, check)
    shutil.rmtree(tmp / "ss")

    runs = []
    for size in [int(x) for x in args.ranking_memory_tokens.split(",") if x.strip()]:
        root = tmp / f"mem-{size}"
        build_stateset(root, size, args.ranking_memory_cells, seed=5, track_cell=41)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root)],
            cwd=_REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(root)
    peaks = [r["peak_rss_mib"] for r in runs]
    ratio = round(max(peaks) / min(peaks), 3) if peaks else None
    return {
        "tokens": n,
        "cells": d,
        "rank_discrete_s": round(rank_s, 2),
        "rank_scalar_s": round(scalar_s, 2),
        "auroc_error_bound": ranking.error_bound,
        "auroc_max_error_vs_scipy": error,
        "auroc_checked_cells": check,
        "top": ranking.cells[:3],
        "scalar_top": scalar.cells[:2],
        "memory": {"runs": runs, "peak_ratio": ratio},
        "met": rank_s <= 5.0 and (ratio is None or ratio <= 1.1),
    }
