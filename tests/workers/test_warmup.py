"""The warm-up a worker runs when it starts: afterwards every kernel has compiled
signatures, and real work (matches of every shape, with and without an index,
sharded, threaded; rankings; statistics; an index build) compiles nothing new,
so no job waits for a compiler. Run in a fresh interpreter: what other tests
compiled in this one would hide a gap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path

from workers.core.warmup import kernel_status, warm_up

done = warm_up()
before = kernel_status()

from workers.benchmarks.common import build_stateset
from workers.core.match import MatchQuery, build_match_index, match
from workers.core.ranking import rank_cells
from workers.core.stats import Hypothesis, hypothesis_statistics
from workers.core.store import StateSet

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "set"
    # Long enough for a match to be split between two threads.
    build_stateset(path, 600_000, 70, track_cell=3)
    build_match_index(path)
    ss = StateSet.open(path)
    for cells in [(4,), (1, 2, 3), tuple(range(66))]:
        for transform in (None, "none"):
            for use_index in (True, False):
                q = MatchQuery(cells=cells, threshold=0.3, transform=transform, zero_right=1)
                match(ss, "s0", q, use_index=use_index)
                match(ss, "s0", q, use_index=use_index, shard=(1000, 300_000), threads=1)
    rank_cells(ss, "s0", "pos", "hi")
    rank_cells(ss, "s0", "depth", transform="none")
    h = Hypothesis(source="s0", cells=(1, 2, 3), threshold=0.3)
    hypothesis_statistics(ss, h, "pos", label="hi")
    hypothesis_statistics(ss, h, "depth", scalar_threshold=0.5)

after = kernel_status()
print(json.dumps({"ready": done.ready, "before": before, "after": after}))
"""


def _fresh(script: str) -> dict[str, Any]:
    """Run `script` in a fresh interpreter; the JSON of its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_after_the_warm_up_real_work_compiles_nothing_new() -> None:
    out = _fresh(SCRIPT)
    assert out["ready"]
    assert out["before"] and all(out["before"].values()), out["before"]
    new = {k: (out["before"][k], n) for k, n in out["after"].items() if n != out["before"][k]}
    assert new == {}, f"compiled after the warm-up: {new}"


MATCHING_ONLY = r"""
import json, tempfile
from pathlib import Path

from workers.core.warmup import KERNELS, kernel_status, warm_up

done = warm_up(matching_only=True)
before = kernel_status()

from workers.benchmarks.common import build_stateset
from workers.core.match import MatchQuery, build_match_index, match
from workers.core.store import StateSet

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "set"
    build_stateset(path, 300_000, 70)
    build_match_index(path)
    ss = StateSet.open(path)
    for cells in [(4,), (1, 2, 3), tuple(range(66))]:
        for transform in (None, "none"):
            for use_index in (True, False):
                q = MatchQuery(cells=cells, threshold=0.3, transform=transform)
                match(ss, "s0", q, use_index=use_index)

after = kernel_status()
engine = [f"match_kernels.{k}" for k in KERNELS["workers.core.match_kernels"]]
print(json.dumps({"before": before, "after": after, "engine": engine}))
"""


def test_a_web_process_warms_the_match_kernels_only() -> None:
    """What a web process compiles before it answers small matches itself: every
    match kernel, so that no match compiles, and none of ranking's or statistics'."""
    out = _fresh(MATCHING_ONLY)
    before, after = out["before"], out["after"]
    assert all(before[k] for k in out["engine"]), before
    assert not any(n for k, n in before.items() if k not in out["engine"]), before
    new = {k: (before[k], after[k]) for k in out["engine"] if after[k] != before[k]}
    assert new == {}, f"a match compiled after the warm-up: {new}"
