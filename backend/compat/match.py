"""`/api/v2/match`: LSTMVis' match route, answered by StateLab's exact engine.

The LSTMVis client waits for this answer, so it is synchronous: a stored answer
to the same query is used at once; a state set of up to
`STATELAB_MATCH_INLINE_TOKENS` tokens is matched in the request (tens of
milliseconds); a longer one goes through the same match job as the REST route and
the request waits for it (up to `STATELAB_V2_MATCH_WAIT_S`, then 503 naming the
job, and asking again later finds the stored answer).

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
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError
from backend.core.params import float_param, int_list, int_param, str_list, transform_param
from backend.jobs.models import JobStatus
from backend.matching.codec import dense
from backend.matching.models import Match, MatchStatus
from backend.matching.selectors import match_wait
from backend.matching.services import match_key, match_start, match_store, match_touch
from backend.states.models import StateSet
from backend.states.selectors import stateset_store
from workers.core.errors import InputError

from .views import _resolve_project, _resolve_source, context_results

MODES = ("fast", "precise")


def _query(q: Any, d: int, n: int) -> Any:
    from workers.core.match import MatchQuery

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
    query = MatchQuery(
        cells=tuple(sorted(set(cells))),
        threshold=float(activation if activation is not None else 0.3),
        zero_left=1 if constraints[0] > 0 else 0,
        zero_right=1 if constraints[1] > 0 else 0,
        min_length=2 if phrase_length == 0 else None,
        length=phrase_length or None,
        limit=limit,
        transform=transform_param(q.get("transform")),
    )
    try:
        query.validate(n, d)
    except InputError as exc:
        raise ApplicationError(str(exc)) from exc
    return query


def _answer(ss: StateSet, user: Any, source: str, query: Any) -> Match:
    """The stored answer, or one computed in the request (small state sets), or the
    answer of the match job, waited for."""
    from workers.core.match import match as engine_match

    stored = Match.objects.filter(
        stateset=ss, cache_key=match_key(source=source, query=query), status=MatchStatus.DONE
    ).first()
    if stored is not None:
        match_touch(match=stored)
        return stored
    if ss.length <= settings.STATELAB_MATCH_INLINE_TOKENS:
        t = time.perf_counter()
        try:
            result = engine_match(stateset_store(ss), source, query)
        except InputError as exc:
            raise ApplicationError(str(exc)) from exc
        return match_store(
            stateset=ss,
            user=user,
            source=source,
            query=query,
            result=result,
            seconds=time.perf_counter() - t,
        )
    match, job = match_start(stateset=ss, user=user, source=source, query=query)
    if job is None:
        return match
    ended = match_wait(job_id=job.id, timeout_s=float(settings.STATELAB_V2_MATCH_WAIT_S))
    if ended == JobStatus.SUCCEEDED:
        match.refresh_from_db()
        return match
    job.refresh_from_db()
    if ended == JobStatus.FAILED:
        raise ApplicationError(
            f"The match failed: {job.error}", code="match_failed", status_code=422
        )
    if ended == JobStatus.CANCELLED:
        raise ApplicationError(
            "The match was cancelled; ask again to start it anew.",
            code="match_cancelled",
            status_code=409,
        )
    raise ApplicationError(
        "The match is still running; ask again in a while for its answer.",
        code="match_running",
        status_code=503,
        details={"job": str(job.id)},
    )


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
        q = request.query_params
        ss = _resolve_project(request.user, q.get("project"))
        source = _resolve_source(ss, q.get("source"))
        d = next(int(s["cells"]) for s in ss.manifest["sources"] if s["id"] == source)
        query = _query(q, d, int(ss.length))
        left = max(int_param(q.get("left"), "left", 10), 0)
        right = max(int_param(q.get("right"), "right", 10), 0)
        if left + right > 2000:
            raise ApplicationError("left + right may be at most 2000.")
        dims = str_list(q.get("dims")) or ["states", "words"]
        match = _answer(ss, request.user, source, query)
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
        cells = int_list(q.get("cells"), "cells")
        if positions:
            detail = context_results(
                stateset_store(ss),
                source,
                positions,
                left=left,
                right=right,
                dims=dims,
                cells=cells,
                transform=query.transform,
                activation=query.threshold,
            )
        else:
            detail = {**{dim: [] for dim in dims}, "cells": cells}
        return Response(
            {
                "request": {k: q.get(k) for k in q},
                "results": {
                    "rankingDetail": ranking,
                    "positionDetail": detail,
                    # LSTMVis' shape: dense lists indexed by length.
                    "fuzzyLengthHistogram": dense(result["fuzzy"]),
                    "strictLengthHistogram": dense(result["strict"]),
                    # StateLab's own: false (with a count) only if the engine's budget cut it.
                    "exact": result["exact"],
                    "unscored": result["unscored"],
                },
            }
        )
