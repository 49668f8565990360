"""`/api/v2/info`, `/api/v2/context`, `/api/v2/search`, answering as LSTMVis' server did.

Project ids: a StateLab project's slug names its newest state set; `slug/<state set
id>` names any of them. Sources are addressed as LSTMVis did (`states::states1`)
or by StateLab's source id. Errors keep LSTMVis' status codes with JSON bodies.
Access control applies as everywhere: only projects the caller belongs to exist.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError
from backend.core.params import float_param, int_list, int_param, str_list, transform_param
from backend.projects.selectors import projects_for_user
from backend.states.models import StateSet
from backend.states.selectors import stateset_searcher, stateset_store
from workers.core.errors import InputError

MAX_V2_VALUES = 2_000_000


def _not_found(message: str) -> ApplicationError:
    return ApplicationError(message, code="not_found", status_code=404)


def _visible_statesets(user: Any) -> list[tuple[str, StateSet]]:
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


def _resolve_project(user: Any, project_id: str | None) -> StateSet:
    if not project_id:
        raise _not_found("No such project")
    for pid, ss in _visible_statesets(user):
        if pid == project_id or f"{ss.project.slug}/{ss.id}" == project_id:
            return ss
    raise _not_found("No such project")


def _source_index(ss: StateSet) -> dict[str, str]:
    """Every name a source answers to -> its StateLab id."""
    names: dict[str, str] = {}
    for s in ss.manifest.get("sources", []):
        names[s["id"]] = s["id"]
        if s.get("name"):
            names[s["name"]] = s["id"]
    return names


def _resolve_source(ss: StateSet, source: str | None) -> str:
    names = _source_index(ss)
    if not source:
        first = ss.manifest.get("sources", [])
        if first:
            return str(first[0]["id"])
        raise _not_found("No valid source")
    if source not in names:
        raise _not_found("No valid source")
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


class InfoView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(
            [
                {"project": pid, "info": project_info(ss)}
                for pid, ss in _visible_statesets(request.user)
            ]
        )


def _round(values: list[list[float]]) -> list[list[float | None]]:
    return [[None if (v is None or math.isnan(v)) else round(v, 5) for v in row] for row in values]


def context_results(
    store: Any,
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
    from workers.core.context import read_context

    if "states" in dims:
        width = len(cells) or int(store.source(source).cells)
        values = len(positions) * (left + right + 1) * width
        if values > MAX_V2_VALUES:
            raise ApplicationError(
                f"This asks for {values:,} state values (positions x window x cells); at most "
                f"{MAX_V2_VALUES:,} at once. Select cells or ask for fewer positions."
            )
    results: dict[str, Any] = {d: [] for d in dims}
    n = store.length
    for pos in positions:
        if pos < 0 or pos >= n:
            raise ApplicationError(f"pos {pos} is outside the corpus (0..{n - 1}).")
        a, b = max(pos - left, 0), min(pos + right, n - 1)
        try:
            ctx = read_context(
                store,
                source,
                a,
                b,
                cells=cells or None,
                transform=transform,
                threshold=activation if cells else None,
                annotations=any(d.startswith("meta_") for d in dims),
            )
        except InputError as exc:
            raise ApplicationError(exc.message) from exc
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
                    raise _not_found(f"No meta track '{name}'")
                results[d].append(ctx["annotations"][name])
            else:
                raise ApplicationError(f"Unknown dim '{d}'.")
    results["cells"] = cells
    return results


class ContextView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, required=True),
            OpenApiParameter("source", str),
            OpenApiParameter("pos", str, required=True, description="comma-separated positions"),
            OpenApiParameter("left", int),
            OpenApiParameter("right", int),
            OpenApiParameter("dims", str),
            OpenApiParameter("cells", str),
            OpenApiParameter("bitmask", str),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter("activation", float),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        q = request.query_params
        ss = _resolve_project(request.user, q.get("project"))
        source = _resolve_source(ss, q.get("source"))
        store = stateset_store(ss)
        positions = int_list(q.get("pos"), "pos")
        if not positions:
            raise ApplicationError("pos must name at least one position.")
        if len(positions) > 1000:
            raise ApplicationError("At most 1000 positions at once.")
        left = max(int_param(q.get("left"), "left", 10), 0)
        right = max(int_param(q.get("right"), "right", 10), 0)
        if left + right > 2000:
            raise ApplicationError("left + right may be at most 2000.")
        dims = str_list(q.get("dims")) or ["states", "words", "cell_count"]
        cells = int_list(q.get("cells"), "cells")
        bitmask = q.get("bitmask")
        if bitmask:
            if set(bitmask) - {"0", "1"}:
                raise ApplicationError("bitmask must be a string of 0 and 1.")
            cells = [i for i, b in enumerate(bitmask) if b == "1"]
        transform = transform_param(q.get("transform"))
        activation = float_param(q.get("activation"), "activation", 0.3)
        results = context_results(
            store,
            source,
            positions,
            left=left,
            right=right,
            dims=dims,
            cells=cells,
            transform=transform,
            activation=activation,
        )
        request_echo = {k: q.get(k) for k in q}
        return Response({"request": request_echo, "results": results})


class SearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, required=True),
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("html", bool),
            OpenApiParameter("limit", int),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        q = request.query_params
        ss = _resolve_project(request.user, q.get("project"))
        query = q.get("q", "")
        if not query:
            raise ApplicationError("Give the phrase to search for as 'q'.")
        limit = min(max(int_param(q.get("limit"), "limit", 50), 1), 1000)
        as_html = str(q.get("html", "false")).lower() in ("1", "true", "yes")
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
        return Response({"request": {k: q.get(k) for k in q}, "res": res})
