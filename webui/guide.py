"""The demo's guided first view.

The demo project's hint asks for a range that starts at an opening bracket deep
in the nesting, matched; the hits then lie inside deep brackets. With the default off-constraint (a selected cell must be off at the position
before the range, `zero_left` 1) a range that starts *inside* a bracket selects
no cell: the cells that count nesting switched on at the opening bracket, before
the range, so none is off there. A range that starts at the opening bracket that
reaches a deep level, and ends before its closing bracket, does select them.

So the demo's state-set page opens on such a range, found in the state set's own
data (its `depth` track and the selection the API computes, the same call the page
makes), with a line that says why it starts where it does. The page applies the
view only when it is opened without a query of its own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.core.cache import cache

from backend.states.demo import DEMO_SLUG
from backend.states.models import StateSet
from backend.states.selectors import stateset_context, stateset_selection, stateset_store

THRESHOLD = 0.3
SCAN = 20_000  # tokens of the corpus searched for an example
TRIES = 60  # selections computed at most


def _runs(depth: np.ndarray, level: int) -> list[tuple[int, int]]:
    """Maximal runs [a, b] of depth >= level that start where the depth reaches it."""
    deep = np.concatenate([[False], depth >= level, [False]])
    edges = np.flatnonzero(np.diff(deep.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _find(ss: StateSet) -> dict[str, Any] | None:
    manifest = ss.manifest or {}
    sources = manifest.get("sources") or []
    names = {a.get("name") for a in manifest.get("annotations") or []}
    if not sources or "depth" not in names:
        return None
    source = str(sources[0]["id"])
    store = stateset_store(ss)
    depth = np.asarray(store.annotation("depth")[0][:SCAN], dtype=np.float64)
    fallback = None
    tries = 0
    for level in (4, 5, 3):
        for a, b in _runs(depth, level):
            if a == 0 or not 4 <= b - a + 1 <= 16:
                continue
            tries += 1
            if tries > TRIES:
                break
            cells = stateset_selection(ss, source, a, b, THRESHOLD, zero_left=1, zero_right=0)
            found = {"source": source, "start": a, "end": b, "level": level, "cells": cells}
            if 2 <= len(cells) <= 8:
                return found
            if cells and fallback is None:
                fallback = found
    return fallback


def demo_guide(ss: StateSet) -> dict[str, Any] | None:
    """For the demo's state set: the guided view (`query`, `url`) and its explanation."""
    if ss.project.slug != DEMO_SLUG:
        return None
    key = (
        f"webui:demo-guide:{ss.id}:{ss.length}:{len((ss.manifest or {}).get('annotations') or [])}"
    )
    found = cache.get(key)
    if found is None:
        found = _find(ss) or {}
        cache.set(key, found, 24 * 3600)
    if not found:
        return None
    a, b = found["start"], found["end"]
    text = "".join(
        stateset_context(ss, found["source"], a, b, cells=[0], annotations=False)["tokens"]
    )
    query = urlencode({"pos": max(0, a - 30), "start": a, "end": b})
    n = len(found["cells"])
    return {
        "query": query,
        "url": f"?{query}",
        "text": (
            f"the range {a} to {b} (“{text}”) starts at the opening bracket that reaches depth "
            f"{found['level']}: the cells that count nesting switch on exactly there, which is "
            f"what “Off before 1” asks for, so it selects {n} cell{'s' if n != 1 else ''}. "
            "Press Match: the hits lie inside deep brackets, as the depth column beside "
            "each one shows. A range of your own should start at an opening bracket too; "
            "one that starts inside brackets selects nothing while “Off before” is 1."
        ),
    }
