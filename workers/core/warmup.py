"""Compiling the core's kernels before a worker takes its first job.

The match engine, the match index builder and the ranking and statistics of
hypotheses run numba kernels, which are compiled for the argument types of each
call the first time it is made: several seconds in a new process whose cache is
empty, about half a second to load them from numba's on-disk cache
(``cache=True``), either way inside the first job a process runs, so a user's
first match after a worker started waited for it.

A worker calls :func:`warm_up` when it starts, before it takes jobs: a small
state set is made in a temporary folder, its match index is built, and it is
matched through every path of the engine (with and without the index, one word
of cells and several, pages kept and handed back as for large corpora, both
transforms), then ranked and given statistics, so that every kernel has the
signatures real jobs use and writes them to the cache for the next process.
:func:`kernel_status` says how many compiled signatures each kernel has in this
process: the worker logs it, and tests assert that a real query compiles
nothing new after a warm-up.
"""

from __future__ import annotations

import importlib
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KERNELS", "WarmUp", "kernel_status", "warm_up"]

# The kernels that Python code calls, by module (steps that other kernels call or
# inline are compiled into them).
KERNELS = {
    "workers.core.match_kernels": (
        "classify_cells",
        "encode_block",
        "list_checks",
        "low_levels",
        "pack_bits",
        "score_index",
        "score_windows",
        "set_bits",
        "stream",
        "stream1",
    ),
    "workers.core.ranking": ("_bin_array", "_discrete_block", "_scalar_block"),
    "workers.core.stats": ("_walk",),
}

_TOKENS = 4000
_CELLS = 80
_THRESHOLD = 0.3


@dataclass
class WarmUp:
    """What :func:`warm_up` did: seconds, and per kernel its compiled signatures
    and how many of them came from numba's on-disk cache."""

    seconds: float
    kernels: dict[str, int] = field(default_factory=dict)
    from_cache: int = 0

    @property
    def ready(self) -> bool:
        """Every kernel has at least one compiled signature."""
        return bool(self.kernels) and all(self.kernels.values())

    def summary(self) -> str:
        compiled = sum(1 for n in self.kernels.values() if n)
        return (
            f"{compiled} of {len(self.kernels)} kernels compiled in {self.seconds:.2f} s "
            f"({self.from_cache} signatures loaded from the cache)"
        )


def _dispatchers() -> dict[str, Any]:
    """The kernels of :data:`KERNELS` by ``module.name``."""
    out: dict[str, Any] = {}
    for module, names in KERNELS.items():
        mod = importlib.import_module(module)
        for name in names:
            out[f"{module.rsplit('.', 1)[-1]}.{name}"] = getattr(mod, name)
    return out


def kernel_status() -> dict[str, int]:
    """Compiled signatures of each kernel in this process (0: not compiled yet)."""
    return {name: len(d.signatures) for name, d in sorted(_dispatchers().items())}


def _cache_hits() -> int:
    return sum(sum(d.stats.cache_hits.values()) for d in _dispatchers().values())


def warm_up(*, matching_only: bool = False) -> WarmUp:
    """Compile (or load from the cache) every kernel of :data:`KERNELS` for
    the argument types real jobs use; returns what it did. Takes about a second
    with a filled cache; nothing is left on disk but numba's cache. With
    ``matching_only`` (a web process, which answers small matches itself) only the
    match engine's kernels and the index builder's, not ranking's and statistics'."""
    started = time.perf_counter()
    hits_before = _cache_hits()
    with tempfile.TemporaryDirectory(prefix="statelab-warm-up-") as tmp:
        path = Path(tmp) / "stateset"
        _write_stateset(path)
        _exercise(path, matching_only=matching_only)
    return WarmUp(
        seconds=round(time.perf_counter() - started, 3),
        kernels=kernel_status(),
        from_cache=_cache_hits() - hits_before,
    )


def _write_stateset(path: Path) -> None:
    """A small state set like real cell states (AR(1) values), with values exactly
    at the threshold of both transforms so that every match checks some codes,
    a discrete and a scalar track, and its match index."""
    from workers.core.match import build_match_index
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(7)
    values = np.empty((_TOKENS, _CELLS), dtype=np.float32)
    state = np.zeros(_CELLS)
    for t in range(_TOKENS):
        state = 0.9 * state + rng.normal(0.0, 0.6, _CELLS)
        values[t] = state
    values[7::97] = np.float32(math.atanh(_THRESHOLD))  # straddles a code: checked
    values[13::97] = np.float32(_THRESHOLD)
    values[29::211, 3] = np.nan
    ids = rng.integers(0, 50, _TOKENS).astype(np.int32)
    with StateSetWriter(path) as w:
        w.set_tokens(ids, [f"w{i}" for i in range(50)])
        w.add_source(
            SourceInfo(
                id="s0", name="warm::up", layer=1, kind="state", cells=_CELLS, transform="tanh"
            ),
            _TOKENS,
            lambda a, b: values[a:b],
        )
        w.add_annotation(
            AnnotationInfo(name="kind", kind="discrete", labels=["a", "b"]),
            (values[:, 0] > 0).astype(np.int32),
        )
        w.add_annotation(AnnotationInfo(name="depth", kind="scalar"), values[:, 1].copy())
        w.commit()
    build_match_index(path)


def _exercise(path: Path, *, matching_only: bool = False) -> None:
    from workers.core.match import DEFAULT_BUDGET, MatchQuery
    from workers.core.match_engine import MatchFiles, Plan, run_cpu
    from workers.core.match_index import open_index
    from workers.core.ranking import rank_cells
    from workers.core.stats import Hypothesis, hypothesis_statistics
    from workers.core.store import StateSet

    ss = StateSet.open(path)
    one = (5,)  # a single column is laid out both ways: numba sees another type
    few = (0, 1, 2)  # one word of cells: the single-word kernels
    many = tuple(range(70))  # more than 64 cells: the multi-word kernels
    for cells in (one, few, many):
        for transform in ("tanh", "none"):
            q = MatchQuery(cells=cells, threshold=_THRESHOLD, transform=transform)
            q.validate(ss.length, _CELLS)
            for use_index in (True, False):
                # Pages kept (small corpora) and handed back (large ones) read the
                # source through different arrays: both are compiled.
                for release in (False, True):
                    plan = Plan.make(ss, "s0", q, DEFAULT_BUDGET)
                    files = MatchFiles(plan, open_index(ss, "s0") if use_index else None)
                    files.release = release
                    try:
                        run_cpu(plan, files, 0, plan.n, threads=1)
                    finally:
                        files.close()
    if matching_only:
        return
    for transform in ("tanh", "none"):
        rank_cells(ss, "s0", "kind", "a", transform=transform)
        rank_cells(ss, "s0", "depth", transform=transform)
    h = Hypothesis(source="s0", cells=few, threshold=_THRESHOLD)
    hypothesis_statistics(ss, h, "kind", label="a")
    hypothesis_statistics(ss, h, "depth", scalar_threshold=0.0)
