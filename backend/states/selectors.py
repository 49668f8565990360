"""Reads and access checks for state sets, and the cache of opened stores.

`stateset_for_user` answers 404 for a state set the caller may not see, exactly as
for a missing one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from backend.core.errors import ApplicationError
from backend.core.storage import store_path
from backend.projects.models import Role
from backend.projects.selectors import get_for_user
from workers.core.context import read_context
from workers.core.search import PhraseSearcher, split_query
from workers.core.selection import selected_cells
from workers.core.store import StateSet as StoreStateSet

from .models import StateSet


def stateset_for_user(user: Any, stateset_id: Any, *, need: str = Role.VIEWER) -> StateSet:
    return get_for_user(StateSet.objects.all(), user, stateset_id, what="state set", need=need)


@lru_cache(maxsize=32)
def _open(path: str, revision: int) -> StoreStateSet:
    return StoreStateSet.open(store_path(path))


def stateset_store(ss: StateSet) -> StoreStateSet:
    """The opened store of a state set (memory-mapped, cached per process). The cache
    is keyed by the row's `revision`, which a job that changes the folder (an added
    annotation) bumps as it records its success: the next request opens it again."""
    return _open(ss.path, ss.revision)


@lru_cache(maxsize=32)
def _searcher(path: str, revision: int) -> PhraseSearcher:
    return PhraseSearcher(_open(path, revision))


def stateset_searcher(ss: StateSet) -> PhraseSearcher:
    """Phrase search over a state set (cached per process with its token table and,
    once built, its memory-mapped search index)."""
    return _searcher(ss.path, ss.revision)


def stateset_describe(ss: StateSet) -> dict[str, Any]:
    """The `GET /api/statesets/{id}/` answer."""
    m = ss.manifest
    return {
        "id": str(ss.id),
        "name": ss.name,
        "description": ss.description,
        "project": ss.project.slug,
        "origin": ss.origin,
        "corpus": str(ss.corpus_id) if ss.corpus_id else None,
        "length": ss.length,
        "vocab_size": m.get("vocab_size"),
        "sources": [
            {
                "id": s["id"],
                "name": s.get("name", s["id"]),
                "layer": s["layer"],
                "kind": s["kind"],
                "cells": s["cells"],
                "transform": s["transform"],
                "unsigned": s.get("unsigned", False),
                "dtype": s.get("dtype", "float32"),
            }
            for s in m.get("sources", [])
        ],
        "annotations": [
            {k: a[k] for k in ("name", "kind", "labels", "range", "k") if a.get(k) is not None}
            for a in m.get("annotations", [])
        ],
        # Where an extraction started a stream from the zero state; an imported
        # state set does not say, so it lists none.
        "stream_starts": m.get("stream_starts", []) if ss.origin == "extraction" else [],
        "doc_starts": m.get("doc_starts", []),
        "indexes": stateset_indexes(ss),
        "created_at": ss.created_at.isoformat(),
    }


def stateset_indexes(ss: StateSet) -> dict[str, Any]:
    """Which indexes the state set has on disk (`POST .../index/` builds missing ones):
    `{"match": bool, "match_sources": {source id: bool}, "search": bool | None}`."""
    from workers.core.errors import InputError
    from workers.core.indexes import index_status

    try:
        return index_status(stateset_store(ss))
    except (InputError, OSError):
        return {"match": False, "match_sources": {}, "search": False}


def query_tokens(q: str, vocab: list[str]) -> list[str]:
    """The tokens of a search phrase: characters for a character vocabulary (so spaces
    and newlines can be searched; a marker such as ``<eos>`` is one token),
    whitespace-separated words otherwise. See ``workers.core.search.split_query``."""
    return split_query(q, vocab)


def stateset_source(ss: StateSet, source: str) -> dict[str, Any]:
    """The manifest entry of source `source`, or a 400 that lists the sources there are."""
    sources = ss.manifest.get("sources", [])
    for s in sources:
        if s["id"] == source:
            return dict(s)
    known = ", ".join(str(s["id"]) for s in sources) or "none"
    raise ApplicationError(
        f"There is no source '{source}' in this state set; its sources are: {known}.",
        code="unknown_source",
    )


def stateset_context(
    ss: StateSet,
    source: str,
    start: int,
    end: int,
    *,
    cells: list[int] | None = None,
    transform: str | None = None,
    threshold: float | None = None,
    annotations: bool = True,
    as_arrays: bool = False,
) -> dict[str, Any]:
    """The context window `[start, end]` of one source (`workers.core.context.read_context`;
    bad input raises `InputError`, which the API answers with 400)."""
    return read_context(
        stateset_store(ss),
        source,
        start,
        end,
        cells=cells,
        transform=transform,
        threshold=threshold,
        annotations=annotations,
        as_arrays=as_arrays,
    )


def stateset_selection(
    ss: StateSet,
    source: str,
    start: int,
    end: int,
    threshold: float,
    *,
    zero_left: int,
    zero_right: int,
    transform: str | None = None,
) -> list[int]:
    """The cells a hypothesis `[start, end]` selects (docs/matching.md, selection), the
    range checked against the corpus first."""
    if end < start:
        raise ApplicationError("end must not be before start.")
    if start < 0 or end >= ss.length:
        raise ApplicationError(
            f"The hypothesis {start}-{end} must lie inside the corpus of {ss.length} tokens "
            f"(positions 0 to {ss.length - 1})."
        )
    cells = selected_cells(
        stateset_store(ss),
        source,
        start,
        end,
        threshold,
        zero_left=zero_left,
        zero_right=zero_right,
        transform=transform,
    )
    return [int(c) for c in cells]
