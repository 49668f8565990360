"""Hypothesis statistics (target: agreement + enrichment + robustness of 8 cells at 1M
tokens x 650 cells <= 10 s, end to end).

The state set is the ranking section's (``common.build_stateset``: random walks,
a discrete track ``pos`` following cell 41) with one more thing a real model has
and independent walks lack: a group of 8 cells that switch on together where a
latent feature is on (``common.feature_states``), and a discrete track ``phase``
that says where it is. Its match index is built, as an extraction or an import
does. Two hypotheses are timed, both at threshold ``--statistics-threshold``:

* ``feature``: the 8 cells of the feature against ``phase`` = ``in``. Some 6,500
  matched ranges and 54,000 match candidates at 1M tokens, the kind of answer
  a good hypothesis has;
* ``walk``: the 8 best cells of a ranking against ``pos`` = ``top`` (what a user
  tests after ranking). The walks stay on for stretches of hundreds of
  thousands of tokens, so the match engine's candidates are few but very long
  (the top 50 hits cover some 780,000 positions) and no range is matched
  strictly.

Each hypothesis runs in a child process, which runs it once first (numba's
cached kernels loaded, the files in the page cache), then restarts the kernel's
high-water mark ``VmHWM`` and times ``--statistics-repeats`` calls of
``hypothesis_statistics`` end to end; after each, the same work in its parts:
the streaming scan (agreement + enrichment) and robustness (11 matches). One
more child times the ``feature`` hypothesis with the state set's pages dropped
from the page cache first (``posix_fadvise``), the case of a state set nobody
has read for a while; its kernels are loaded on a small state set first.

Memory: ``VmHWM`` counts the pages of the files the match engine maps (it keeps
its maps of the source and the index for the next query; they are page cache,
shared and dropped under pressure), so the private memory is reported apart:
the peak of ``RssAnon``, sampled every 5 ms while the timed calls run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import build_stateset, reset_peak_memory, status_kib

_REPO = Path(__file__).resolve().parents[2]
TARGET_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--statistics-tokens", type=int, default=1_000_000, help="statistics: N")
    parser.add_argument("--statistics-cells", type=int, default=650, help="statistics: D")
    parser.add_argument(
        "--statistics-repeats", type=int, default=3, help="statistics: timed calls per case"
    )
    parser.add_argument(
        "--statistics-threshold", type=float, default=0.3, help="statistics: tanh threshold"
    )


def feature_cells(d: int) -> tuple[int, ...]:
    """8 cells spread over a source of ``d >= 10`` cells (not 41, the ``pos`` track's)."""
    return tuple(int(c) for c in np.linspace(0, d - 1, 10)[1:9].round())


def evict(path: Path) -> None:
    """Drop the pages of every file under ``path`` from the page cache."""
    for f in sorted(path.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


class AnonPeak:
    """The largest ``RssAnon`` seen while the block runs, sampled by a thread."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.every_s = every_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, status_kib("RssAnon"))
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, status_kib("RssAnon"))


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _parts(ss: Any, h: Any, annotation: str, label: str) -> dict[str, float]:
    """``hypothesis_statistics``' work, timed in its two parts."""
    from workers.core.stats import (
        agreement_from_counts,
        enrichment_from_counts,
        robustness,
        scan_hypothesis,
    )

    t = time.perf_counter()
    scan = scan_hypothesis(ss, h, annotation, label=label)
    agreement_from_counts(scan["tp"], scan["fp"], scan["fn"], scan["tn"])
    enrichment_from_counts(scan["inside"], scan["totals"], scan["labels"], scan["n"])
    scan_s = time.perf_counter() - t
    t = time.perf_counter()
    robustness(ss, h)
    return {"scan_s": scan_s, "robustness_s": time.perf_counter() - t}


_CHILD = """
import json, sys
from workers.benchmarks.statistics import child
print(json.dumps(child(json.loads(sys.argv[1]))))
"""


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a subprocess: time one hypothesis (see the module doc)."""
    from workers.core.match import match
    from workers.core.stats import Hypothesis, hypothesis_statistics
    from workers.core.store import StateSet

    ss = StateSet.open(Path(spec["path"]))
    h = Hypothesis("s0", tuple(spec["cells"]), float(spec["threshold"]))
    ann, label = spec["annotation"], spec["label"]
    if spec.get("cold"):
        warm = StateSet.open(Path(spec["warm_path"]))
        hw = Hypothesis("s0", tuple(spec["warm_cells"]), float(spec["threshold"]))
        hypothesis_statistics(warm, hw, ann, label=label)
        evict(ss.path)
        reset_peak_memory()
        anon = status_kib("RssAnon")
        with AnonPeak() as peak:
            parts = _parts(ss, h, ann, label)
        return {
            "cold_s": round(parts["scan_s"] + parts["robustness_s"], 2),
            "cold_scan_s": round(parts["scan_s"], 2),
            "cold_robustness_s": round(parts["robustness_s"], 2),
            "cold_anon_before_mib": _mib(anon),
            "cold_peak_anon_mib": _mib(peak.peak_kib),
            "cold_peak_rss_mib": _mib(status_kib("VmHWM")),
        }
    hypothesis_statistics(ss, h, ann, label=label)
    reset_peak_memory()
    anon = status_kib("RssAnon")
    total, scan, rob = [], [], []
    st: dict[str, Any] = {}
    with AnonPeak() as peak:
        for _ in range(int(spec["repeats"])):
            t = time.perf_counter()
            st = hypothesis_statistics(ss, h, ann, label=label)
            total.append(time.perf_counter() - t)
            parts = _parts(ss, h, ann, label)
            scan.append(parts["scan_s"])
            rob.append(parts["robustness_s"])
    hwm = status_kib("VmHWM")
    base = match(ss, "s0", h.query(50))
    return {
        "median_s": round(float(np.median(total)), 2),
        "runs_s": [round(x, 2) for x in total],
        "scan_median_s": round(float(np.median(scan)), 2),
        "robustness_median_s": round(float(np.median(rob)), 2),
        "anon_before_mib": _mib(anon),
        "peak_anon_mib": _mib(peak.peak_kib),
        "peak_rss_mib": _mib(hwm),
        "rss_file_mib": _mib(status_kib("RssFile")),
        "agreement": {k: round(v, 4) if isinstance(v, float) else v
                      for k, v in st["agreement"].items()},
        "ranges": st["ranges"],
        "inside_tokens": st["inside_tokens"],
        "enrichment": [
            {"label": e["label"], "inside": e["inside"], "lift": round(e["lift"], 3), "q": e["q"]}
            for e in st["enrichment"]
        ],
        "robustness": {
            "positions": st["robustness"]["positions"],
            "min_jaccard": round(st["robustness"]["min_jaccard"], 3),
            "threshold": [round(x["jaccard"], 3) for x in st["robustness"]["threshold"]],
            "leave_one_out": [round(x["jaccard"], 3) for x in st["robustness"]["leave_one_out"]],
        },
        "match_candidates": base.candidates,
        "match_hits": len(base.hits),
    }  # fmt: skip


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        cwd=_REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from workers.core.match import build_match_index
    from workers.core.ranking import rank_cells
    from workers.core.store import StateSet

    n, d, thr = args.statistics_tokens, args.statistics_cells, args.statistics_threshold
    feature = feature_cells(d)
    warm_feature = feature_cells(16)
    warm = tmp / "stats-warm"
    build_stateset(warm, 5000, 16, track_cell=41, feature_cells=warm_feature)
    build_match_index(warm)

    root = tmp / "stats"
    t = time.perf_counter()
    build_stateset(root, n, d, track_cell=41, feature_cells=feature)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    build_match_index(root)
    index_s = time.perf_counter() - t
    ranking = rank_cells(StateSet.open(root), "s0", "pos", "top")
    walk = tuple(int(e["cell"]) for e in ranking.cells[:8])

    load_before = os.getloadavg()[0]
    common = {"path": str(root), "threshold": thr, "repeats": args.statistics_repeats}
    cases = {
        "feature": {**common, "cells": list(feature), "annotation": "phase", "label": "in"},
        "walk": {**common, "cells": list(walk), "annotation": "pos", "label": "top"},
    }
    results: dict[str, Any] = {}
    for name, spec in cases.items():
        results[name] = {"cells": spec["cells"], "annotation": spec["annotation"],
                         "label": spec["label"], **_run_child(spec)}  # fmt: skip
    cold = _run_child(
        {**cases["feature"], "cold": True, "warm_path": str(warm), "warm_cells": list(warm_feature)}
    )
    results["feature"].update(cold)
    shutil.rmtree(root)
    shutil.rmtree(warm)
    worst = max(r["median_s"] for r in results.values())
    return {
        "tokens": n,
        "cells": d,
        "threshold": thr,
        "generate_s": round(build_s, 1),
        "match_index_s": round(index_s, 1),
        "target_s": TARGET_S,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cases": results,
        "met": worst <= TARGET_S,
    }
