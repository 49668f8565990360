"""`/api/v2/info`, `/context`, `/search` and `/match`, answering as LSTMVis' server did.

Project ids: a StateLab project's slug names its newest state set; `slug/<state set
id>` names any of them. Sources are addressed as LSTMVis did (`states::states1`)
or by StateLab's source id. Errors keep LSTMVis' status codes with JSON bodies.
Access control applies as everywhere: only projects the caller belongs to exist.

`/match` is LSTMVis' match route answered by StateLab's exact engine. The LSTMVis
client waits for this answer, so the request waits for the match job (as the REST
route does, through `matching.selectors.match_settle`) up to
`STATELAB_V2_MATCH_WAIT_S`, then answers 503 naming the job; asking again later
finds the stored answer.

Parameters map onto the engine as LSTMVis' server used them: `activation` is the
threshold; `constraints=[left, right]` switches the one-step off-constraint on a
side on when its value is > 0 (`zero_left`/`zero_right` = 1, else 0; default
`1,0`); `phrase_length=0` keeps every match of length 2 or more (LSTMVis' own
cut-off), another value keeps only matches of exactly that length; `mode` (`fast`
or `precise`) is accepted and ignored, since every answer is exact and covers the
whole corpus. `rankingDetail` lists `{pos, factors}` with
`factors = [pos, 0, length, jaccard, missing, union, intersection]`,
`positionDetail` is the `/context` answer for the ranked positions, and both
histograms are indexed by length. Two keys are StateLab's own: `exact` (false only
when the engine stopped at its budget) and `unscored`.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError
from backend.core.params import float_param, int_list, int_param, str_list, transform_param
from backend.matching.api import match_emit
from backend.matching.inline import match_start_here
from backend.matching.selectors import match_settle

from .selectors import (
    MODES,
    context_results,
    project_info,
    resolve_project,
    resolve_source,
    search_results,
    v2_match_query,
    v2_match_results,
    visible_statesets,
)


class V2ProjectInfoSerializer(serializers.Serializer[Any]):
    project = serializers.CharField(help_text="the project id to pass to the other routes")
    info = serializers.DictField(help_text="the project's lstm.yml-shaped config with sizes")


class InfoView(APIView):
    @extend_schema(responses=V2ProjectInfoSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            [
                {"project": pid, "info": project_info(ss)}
                for pid, ss in visible_statesets(request.user)
            ]
        )


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
        ss = resolve_project(request.user, q.get("project"))
        source = resolve_source(ss, q.get("source"))
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
            ss,
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
        ss = resolve_project(request.user, q.get("project"))
        query = q.get("q", "")
        if not query:
            raise ApplicationError("Give the phrase to search for as 'q'.")
        limit = min(max(int_param(q.get("limit"), "limit", 50), 1), 1000)
        as_html = str(q.get("html", "false")).lower() in ("1", "true", "yes")
        res = search_results(ss, query, limit=limit, as_html=as_html)
        return Response({"request": {k: q.get(k) for k in q}, "res": res})


class MatchView(APIView):
    throttle_scope = "matches"

    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, required=True),
            OpenApiParameter("source", str),
            OpenApiParameter("cells", str, required=True, description="comma-separated cells"),
            OpenApiParameter("activation", float, description="threshold (0.3)"),
            OpenApiParameter("left", int, description="context before each match (10)"),
            OpenApiParameter("right", int, description="context after each match start (10)"),
            OpenApiParameter("dims", str, description="positionDetail dims (states,words)"),
            OpenApiParameter("phrase_length", int, description="0: any length >= 2"),
            OpenApiParameter("mode", str, enum=list(MODES), description="ignored: exact"),
            OpenApiParameter(
                "constraints", str, description="left,right; > 0 switches that side on (1,0)"
            ),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter("limit", int, description="ranked matches (50, at most 1000)"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        ss = resolve_project(request.user, q.get("project"))
        source = resolve_source(ss, q.get("source"))
        source, query = v2_match_query(ss, source, q)
        left = max(int_param(q.get("left"), "left", 10), 0)
        right = max(int_param(q.get("right"), "right", 10), 0)
        if left + right > 2000:
            raise ApplicationError("left + right may be at most 2000.")
        dims = str_list(q.get("dims")) or ["states", "words"]
        match, job, fresh = match_start_here(
            stateset=ss,
            user=request.user,  # type: ignore[arg-type]
            source=source,
            query=query,
        )
        running = match_settle(match, job, wait_s=float(settings.STATELAB_V2_MATCH_WAIT_S))
        if running is not None:
            raise ApplicationError(
                "The match is still running; ask again in a while for its answer.",
                code="match_running",
                status_code=503,
                details={"job": str(running.id)},
            )
        cells = int_list(q.get("cells"), "cells")
        results = v2_match_results(match, cells=cells, left=left, right=right, dims=dims)
        match_emit(
            request.user, ss, match, query, started, answered=True, cached=not fresh, route="v2"
        )
        return Response({"request": {k: q.get(k) for k in q}, "results": results})
