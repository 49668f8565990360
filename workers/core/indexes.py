"""The indexes a state set is read through, built in one call.

A state set is written once (by an LSTMVis import or an extraction) and read many
times. Two readers keep their own index beside the data, inside the state set
directory: the match engine (``workers.core.match``: its cell-major, quantised
copies of every source) and phrase search (``workers.core.search``: token
positions grouped by id). Each builder writes under a temporary name and renames
into place, so a reader sees a complete index or none, and each reader still
answers without its index (slower), so a state set imported before indexes
existed keeps working until an ``index`` job has built them.

This module is the one place that knows which indexes exist: the import and
extraction jobs call :func:`build_indexes` before they record the state set (so a
new state set's first match is as fast as its hundredth), the ``index`` job calls
it with ``missing_only=True`` for older state sets, and :func:`index_status` tells
the API what is there. An LSTMVis import writes each source's match index while
it copies the source (``match_index.IndexWriter``, fed the same blocks), so that
no second pass reads the copy; :func:`build_indexes` then finds it current and
builds the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.core.errors import ProgressFn
from workers.core.store import StateSet

__all__ = ["build_indexes", "index_status"]

# The match index is most of the work (it reads every value of every source);
# phrase search reads only the token ids.
_MATCH_SHARE = 0.85


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """`module.name` when that module provides it, else None."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def _part(progress: ProgressFn | None, start: float, end: float) -> ProgressFn:
    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report


def build_indexes(
    ss_path: Path, progress: ProgressFn | None = None, *, missing_only: bool = False
) -> list[str]:
    """Build the match index of every source and the phrase-search index of the
    state set at ``ss_path``; returns what was built (``"match:<source>"``,
    ``"search"``).

    With ``missing_only`` an index that already exists is kept as it is. Progress
    goes to ``progress``, which may raise ``Cancelled`` to stop the work; an index
    a builder did not finish is never visible.
    """
    from workers.core.match import build_match_index, has_match_index

    ss_path = Path(ss_path)
    ss = StateSet.open(ss_path)
    build_search = _optional("workers.core.search", "build_search_index")
    match_end = _MATCH_SHARE if build_search is not None else 1.0
    sources = [s for s in ss.source_ids if not (missing_only and bool(has_match_index(ss, s)))]
    built: list[str] = []
    if sources:
        _part(progress, 0.0, match_end)(0.0, f"Building the match index of {len(sources)} sources")
        build_match_index(ss_path, source_ids=sources, progress=_part(progress, 0.0, match_end))
        built += [f"match:{s}" for s in sources]
    if build_search is not None and not (missing_only and _search_ready(ss_path)):
        _part(progress, match_end, 1.0)(0.0, "Building the phrase-search index")
        build_search(ss_path, progress=_part(progress, match_end, 1.0))
        built.append("search")
    _part(progress, 0.0, 1.0)(1.0, "Indexes built" if built else "Indexes were already built")
    return built


def _search_ready(ss_path: Path) -> bool | None:
    has = _optional("workers.core.search", "has_search_index")
    return None if has is None else bool(has(ss_path))


def index_status(ss: StateSet) -> dict[str, Any]:
    """Which indexes a state set has: ``{"match": bool, "match_sources": {id: bool},
    "search": bool | None}`` (``None``: this installation has no search index)."""
    from workers.core.match import has_match_index

    per_source = {s: bool(has_match_index(ss, s)) for s in ss.source_ids}
    return {
        "match": bool(per_source) and all(per_source.values()),
        "match_sources": per_source,
        "search": _search_ready(ss.path),
    }
