"""The match engine: the exact ranking of ``matching.md`` ("Match"), whole corpus.

A match query is a set of selected cells ``C`` of one source, a threshold and the
off-constraints. The engine enumerates every candidate range (maximal runs of
``count[t] >= k`` for every level ``k``), scores it by ``I = |C & C'(R)|`` and
``U = |C | C'(R)|`` and returns the top ``K`` by ``(I desc, U asc, L desc, a asc)``
together with the strict and fuzzy length histograms. Everything here is exact;
when a query would score more candidates than the budget allows, the result says
``exact = False`` and how many were left unscored.

This module is the entry point: :func:`match` checks a query and hands it to
the CPU engine (``match_engine``) or the CUDA path (``match_torch``), and the
shards of a query merge here (:func:`shard_bounds`, :func:`merge_results`). The
query and result types live in ``match_types`` and are re-exported; they need
only numpy, so the web process can validate and serialise queries. The engine,
its compiled kernels (``match_kernels``) and the index (``match_index``) are
imported when a match runs. The layout and the algorithm are described in
``docs/matching.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.core.errors import InputError, ProgressFn
from workers.core.match_types import (
    DEFAULT_BUDGET,
    DEVICES,
    ENGINE_VERSION,
    MAX_LIMIT,
    MAX_ZERO,
    TRANSFORMS,
    MatchHit,
    MatchQuery,
    MatchResult,
    is_whole_number,
    trim_histogram,
)
from workers.core.store import StateSet

__all__ = [
    "DEFAULT_BUDGET",
    "DEVICES",
    "ENGINE_VERSION",
    "MAX_LIMIT",
    "MAX_ZERO",
    "TRANSFORMS",
    "MatchHit",
    "MatchQuery",
    "MatchResult",
    "build_match_index",
    "has_match_index",
    "match",
    "merge_results",
    "shard_bounds",
]


def _add_hist(parts: list[list[int]]) -> list[int]:
    size = max((len(p) for p in parts), default=0)
    total = np.zeros(size, dtype=np.int64)
    for p in parts:
        total[: len(p)] += np.asarray(p, dtype=np.int64)
    return trim_histogram(total)


def merge_results(parts: list[MatchResult], limit: int) -> MatchResult:
    """Merge the results of shards that together cover the corpus, exactly.

    Every candidate belongs to exactly one shard (the one holding its start),
    so the top ``limit`` of the union of the parts' top lists is the top of the
    whole, the histograms add up, and the answer is exact iff every part is.
    """
    hits = sorted((h for p in parts for h in p.hits), key=MatchHit.sort_key)[:limit]
    return MatchResult(
        hits=hits,
        strict_histogram=_add_hist([p.strict_histogram for p in parts]),
        fuzzy_histogram=_add_hist([p.fuzzy_histogram for p in parts]),
        exact=all(p.exact for p in parts),
        unscored=sum(p.unscored for p in parts),
        candidates=sum(p.candidates for p in parts),
        scored=sum(p.scored for p in parts),
    )


def shard_bounds(n: int, shard_tokens: int) -> list[tuple[int, int]]:
    """Token ranges ``[(start, end_exclusive), ...]`` of at most ``shard_tokens`` each."""
    if n < 1:
        raise ValueError("a corpus has at least one token")
    if shard_tokens < 1:
        raise ValueError("a shard has at least one token")
    return [(s, min(n, s + shard_tokens)) for s in range(0, n, shard_tokens)]


def _check_shard(shard: tuple[int, int] | None, n: int) -> tuple[int, int]:
    if shard is None:
        return 0, n
    s, e = int(shard[0]), int(shard[1])
    if not 0 <= s < e <= n:
        raise InputError(f"the shard {s}-{e} must be a non-empty part of the corpus of {n} tokens")
    return s, e


def match(
    ss: StateSet,
    source_id: str,
    q: MatchQuery,
    *,
    shard: tuple[int, int] | None = None,
    budget: int = DEFAULT_BUDGET,
    device: str = "cpu",
    use_index: bool = True,
    threads: int | None = None,
) -> MatchResult:
    """Run ``q`` on ``source_id`` of ``ss`` (the whole corpus, or one shard of it).

    ``shard=(s, e)`` answers for the candidates starting in ``[s, e)`` only (it
    reads past ``e`` until every run that started inside has ended), so
    :func:`merge_results` of the shards of :func:`shard_bounds` equals the
    unsharded answer. ``budget`` caps the candidates whose union is computed;
    ``device`` is ``"cpu"`` or ``"cuda"`` (identical answers). The match index
    (:func:`build_match_index`) is used when present and ``use_index`` is true;
    without it the row-major source is scanned, with the same answers.
    ``threads`` (default: up to 2) splits a CPU scan into parts run at once.
    """
    info = ss.source(source_id)
    n, d = ss.length, info.cells
    q.validate(n, d)
    if device not in DEVICES:
        raise InputError(f"the device must be 'cpu' or 'cuda', not {device!r}")
    if not is_whole_number(budget) or budget < 1:
        raise InputError("the budget must be a whole number of at least 1")
    s, e = _check_shard(shard, n)
    if device == "cuda":
        from workers.core import match_torch

        return match_torch.run_query(
            ss, source_id, q, (s, e), torch_device="cuda", use_index=use_index, budget=int(budget)
        )
    from workers.core import match_engine

    return match_engine.run(
        ss, source_id, q, s, e, budget=int(budget), use_index=use_index, threads=threads
    )


def build_match_index(
    ss_path: Path,
    *,
    source_ids: list[str] | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Build the match index of a state set's sources (all, or ``source_ids``).

    Atomic (each source's index is written to a temporary folder and renamed
    into place), idempotent (a source that has a current index is skipped) and
    safe to run again after an interrupted build. Memory stays bounded: the
    row-major source is read in row blocks.
    """
    from workers.core import match_index

    match_index.build(Path(ss_path), source_ids=source_ids, progress=progress)


def has_match_index(ss: StateSet, source_id: str) -> bool:
    """Whether ``source_id`` of ``ss`` has a current match index."""
    from workers.core import match_index

    ss.source(source_id)
    return match_index.open_index(ss, source_id) is not None
