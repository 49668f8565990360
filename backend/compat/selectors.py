"""Reads behind LSTMVis' API (`/api/v2/...`): which state sets a caller's project ids
name, the `info` config, context windows, search hits and the `/match` answer in
LSTMVis' shapes. Everything is read through the states and matching apps' selectors;
nothing here touches the compute core directly.

Project ids: a StateLab project's slug names its newest state set; `slug/<state set
id>` names any of them. Sources are addressed as LSTMVis did (`states::states1`)
or by StateLab's source id.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from backend.core.errors import ApplicationError
from backend.core.params import float_param, int_list, int_param, transform_param
from backend.matching.codec import dense
from backend.matching.models import Match
from backend.matching.services import match_query_build
from backend.projects.selectors import projects_for_user
from backend.states.models import StateSet
from backend.states.selectors import (
    stateset_context,
    stateset_searcher,
    stateset_source,
    stateset_store,
)

MODES = ("fast", "precise")
MAX_V2_VALUES = 2_000_000


def not_found(message: str) -> ApplicationError:
    return ApplicationError(message, code="not_found", status_code=404)


def visible_statesets(user: Any) -> list[tuple[str, StateSet]]:
    """(project id, state set) pairs, newest state set of a project under the bare slug."""
    out: list[tuple[str, StateSet]] = []
    seen: set[int] = set()
    qs = (
        StateSet.objects.filter(project__in=projects_for_user(user))
        .select_related("project")
        .order_by("project__slug", "-created_at")
    )
    for ss in qs:
        if ss.project_id in seen:
            out.append((f"{ss.project.slug}/{ss.id}", ss))
        else:
            seen.add(ss.project_id)
            out.append((ss.project.slug, ss))
    return out


def resolve_project(user: Any, project_id: str | None) -> StateSet:
    if not project_id:
        raise not_found("No such project")
    for pid, ss in visible_statesets(user):
        if pid == project_id or f"{ss.project.slug}/{ss.id}" == project_id:
            return ss
    raise not_found("No such project")


def source_index(ss: StateSet) -> dict[str, str]:
    """Every name a source answers to -> its StateLab id."""
    names: dict[str, str] = {}
    for s in ss.manifest.get("sources", []):
        names[s["id"]] = s["id"]
        if s.get("name"):
            names[s["name"]] = s["id"]
    return names


def resolve_source(ss: StateSet, source: str | None) -> str:
    names = source_index(ss)
    if not source:
        first = ss.manifest.get("sources", [])
        if first:
            return str(first[0]["id"])
        raise not_found("No valid source")
    if source not in names:
        raise not_found("No valid source")
    return names[source]


def _synth_config(ss: StateSet) -> dict[str, Any]:
    """An lstm.yml-shaped config for state sets that did not come from LSTMVis."""
    return {
        "name": ss.name,
        "description": ss.description or ss.name,
        "files": {"states": "states", "words": "words"},
        "word_sequence": {"file": "words", "path": "word_ids", "dict_file": "words"},
        "states": {
            "file": "states",
            "types": [
                {
                    "type": s["kind"],
                    "layer": s["layer"],
                    "path": s["id"],
                    "transform": s["transform"],
                    "unsigned": s.get("unsigned", False),
                }
                for s in ss.manifest.get("sources", [])
            ],
        },
        "meta": {
            a["name"]: {"vis": {"type": a["kind"]}} for a in ss.manifest.get("annotations", [])
        },
    }


def project_info(ss: StateSet) -> dict[str, Any]:
    m = ss.manifest
    extra = m.get("extra", {}) or {}
    config = dict(extra.get("lstmvis_config") or _synth_config(ss))
    config.setdefault("name", ss.name)
    config.setdefault("description", config["name"])
    sources = m.get("sources", [])
    states = dict(config.get("states") or {})
    types = [dict(t) for t in states.get("types", [])]
    for i, t in enumerate(types):
        if i < len(sources):
            t["size"] = [ss.length, sources[i]["cells"]]
            t.setdefault("transform", sources[i]["transform"])
            t["source"] = sources[i]["name"]
    states["types"] = types
    config["states"] = states
    ws = dict(config.get("word_sequence") or {})
    ws["size"] = [ss.length]
    ws["dict_size"] = m.get("vocab_size")
    config["word_sequence"] = ws
    config["index"] = False
    config["is_searchable"] = True
    return config


def _round(values: list[list[float]]) -> list[list[float | None]]:
    return [[None if (v is None or math.isnan(v)) else round(v, 5) for v in row] for row in values]


def context_results(
    ss: StateSet,
    source: str,
    positions: list[int],
    *,
    left: int,
    right: int,
    dims: list[str],
    cells: list[int],
    transform: str | None,
    activation: float | None,
) -> dict[str, Any]:
    """The `results` of `/context` (also `positionDetail` of `/match`): per asked
    dimension, one entry per position, the window clamped at the corpus ends."""
    if "states" in dims:
        width = len(cells) or int(stateset_source(ss, source)["cells"])
        values = len(positions) * (left + right + 1) * width
        if values > MAX_V2_VALUES:
            raise ApplicationError(
                f"This asks for {values:,} state values (positions x window x cells); at most "
                f"{MAX_V2_VALUES:,} at once. Select cells or ask for fewer positions."
            )
    results: dict[str, Any] = {d: [] for d in dims}
    n = int(ss.length)
    for pos in positions:
        if pos < 0 or pos >= n:
            raise ApplicationError(f"pos {pos} is outside the corpus (0..{n - 1}).")
        a, b = max(pos - left, 0), min(pos + right, n - 1)
        ctx = stateset_context(
            ss,
            source,
            a,
            b,
            cells=cells or None,
            transform=transform,
            threshold=activation if cells else None,
            annotations=any(d.startswith("meta_") for d in dims),
        )
        for d in dims:
            if d == "states":
                results[d].append(
                    {"pos": pos, "left": a, "right": b, "data": _round(ctx["values"])}
                )
            elif d == "words":
                results[d].append(
                    {
                        "pos": pos,
                        "left": a,
                        "right": b,
                        "word_ids": ctx["token_ids"],
                        "words": ctx["tokens"],
                    }
                )
            elif d == "cell_count":
                results[d].append(ctx.get("cell_count") or [0] * (b - a + 1))
            elif d.startswith("meta_"):
                name = d[len("meta_") :]
                if name not in ctx["annotations"]:
                    raise not_found(f"No meta track '{name}'")
                results[d].append(ctx["annotations"][name])
            else:
                raise ApplicationError(f"Unknown dim '{d}'.")
    results["cells"] = cells
    return results


def search_results(ss: StateSet, query: str, *, limit: int, as_html: bool) -> list[dict[str, Any]]:
    """`/search`'s `res`: each hit's position and its text with five tokens around it."""
    store = stateset_store(ss)
    searcher = stateset_searcher(ss)
    phrase = searcher.split(query)
    hits = searcher.search(phrase, limit)
    vocab = store.vocab
    res = []
    for index in hits:
        a = max(int(index) - 5, 0)
        b = min(int(index) + len(phrase) + 5, store.length)
        ids = np.asarray(store.tokens[a:b])
        words = [vocab[int(i)] for i in ids]
        k0, k1 = int(index) - a, int(index) - a + len(phrase)
        if as_html:
            text = " ".join(
                [html.escape(w) for w in words[:k0]]
                + ["<b>" + " ".join(html.escape(w) for w in words[k0:k1]) + "</b>"]
                + [html.escape(w) for w in words[k1:]]
            )
        else:
            text = " ".join(words)
        res.append({"index": int(index), "text": text})
    return res


def v2_match_query(ss: StateSet, source: str, q: Any) -> tuple[str, Any]:
    """LSTMVis' match parameters mapped onto the one query builder of the REST route
    (`matching.services.match_query_build`): (source id, query)."""
    cells = int_list(q.get("cells"), "cells")
    if not cells:
        raise ApplicationError("cells must name at least one cell.")
    activation = float_param(q.get("activation"), "activation", 0.3)
    phrase_length = int_param(q.get("phrase_length"), "phrase_length", 0)
    if phrase_length < 0:
        raise ApplicationError("phrase_length must be 0 (any length) or a positive length.")
    mode = q.get("mode") or "fast"
    if mode not in MODES:
        raise ApplicationError("mode must be 'fast' or 'precise'.")
    constraints = int_list(q.get("constraints"), "constraints") or [1, 0]
    if len(constraints) != 2:
        raise ApplicationError("constraints must be two integers: left,right.")
    limit = int_param(q.get("limit"), "limit", 50)
    if not 1 <= limit <= 1000:
        raise ApplicationError("limit must be between 1 and 1000.")
    return match_query_build(
        stateset=ss,
        source=source,
        cells=cells,
        threshold=float(activation if activation is not None else 0.3),
        zero_left=1 if constraints[0] > 0 else 0,
        zero_right=1 if constraints[1] > 0 else 0,
        min_length=2 if phrase_length == 0 else None,
        length=phrase_length or None,
        limit=limit,
        transform=transform_param(q.get("transform")),
    )


def v2_match_results(
    match: Match,
    *,
    cells: list[int],
    left: int,
    right: int,
    dims: list[str],
) -> dict[str, Any]:
    """`/match`'s `results` for a finished match, in LSTMVis' shape (see the module doc)."""
    ss = match.stateset
    source = match.source
    query = match.query
    result = match.result
    ranking = [
        {
            "pos": h["position"],
            "factors": [
                h["position"],
                0,
                h["length"],
                h["jaccard"],
                h["missing"],
                h["union"],
                h["intersection"],
            ],
        }
        for h in result["hits"]
    ]
    positions = [h["position"] for h in result["hits"]]
    if positions:
        detail = context_results(
            ss,
            source,
            positions,
            left=left,
            right=right,
            dims=dims,
            cells=cells,
            transform=query.get("transform"),
            activation=float(query["threshold"]),
        )
    else:
        detail = {**{dim: [] for dim in dims}, "cells": cells}
    return {
        "rankingDetail": ranking,
        "positionDetail": detail,
        # LSTMVis' shape: dense lists indexed by length.
        "fuzzyLengthHistogram": dense(result["fuzzy"]),
        "strictLengthHistogram": dense(result["strict"]),
        # StateLab's own: false (with a count) only if the engine's budget cut it.
        "exact": result["exact"],
        "unscored": result["unscored"],
    }
