"""Match routes: `POST /api/statesets/{id}/matches/` and `GET /api/matches/{id}/`.

A POST whose answer is stored answers 200 at once. Otherwise it starts (or joins)
the match job, waits up to `STATELAB_MATCH_WAIT_S` for it, and answers 200 with
the result, or 202 with the job when the match takes longer; the job's result is
then `{"match": "<id>"}`, and `GET /api/matches/{id}/` pages its hits with the
context the match view draws.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError
from backend.core.params import int_param
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.jobs.models import JobStatus
from backend.states.models import StateSet
from backend.states.selectors import stateset_for_user, stateset_store
from workers.core.errors import InputError

from .selectors import match_answer, match_for_user, match_page, match_wait
from .services import match_start

MAX_LIMIT = 1000
MAX_SIDE = 100


class MatchRequestSerializer(serializers.Serializer[Any]):
    source = serializers.CharField(help_text="the source id (see the state set's `sources`)")  # type: ignore[assignment]
    cells = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        max_length=100_000,
        help_text="the selected cells; or give a hypothesis as `start` and `end` instead",
    )
    start = serializers.IntegerField(
        min_value=0, required=False, help_text="hypothesis: first token (inclusive)"
    )
    end = serializers.IntegerField(
        min_value=0, required=False, help_text="hypothesis: last token (inclusive)"
    )
    threshold = serializers.FloatField(default=0.3)
    zero_left = serializers.IntegerField(min_value=0, max_value=1000, default=1)
    zero_right = serializers.IntegerField(min_value=0, max_value=1000, default=0)
    min_length = serializers.IntegerField(min_value=1, default=2, allow_null=True)
    max_length = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    length = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="only matches of this length"
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=50)
    transform = serializers.ChoiceField(
        choices=["tanh", "none"],
        required=False,
        allow_null=True,
        help_text="default: the source's own",
    )
    range = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        min_length=2,
        max_length=2,
        required=False,
        allow_null=True,
        help_text="[first, last] token positions (inclusive) that matches must lie in",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_cells = attrs.get("cells") is not None
        has_range = "start" in attrs or "end" in attrs
        if has_cells and has_range:
            raise serializers.ValidationError(
                "Give either cells or a hypothesis range (start and end), not both."
            )
        if not has_cells and not has_range:
            raise serializers.ValidationError(
                "Give the cells to match, or a hypothesis range (start and end) to select them."
            )
        if has_range and ("start" not in attrs or "end" not in attrs):
            raise serializers.ValidationError("A hypothesis needs both start and end.")
        if has_range and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError("end must not be before start.")
        if has_cells and not attrs["cells"]:
            raise serializers.ValidationError("cells must name at least one cell.")
        if not math.isfinite(attrs["threshold"]):
            raise serializers.ValidationError("threshold must be a finite number.")
        window = attrs.get("range")
        if window is not None and window[1] < window[0]:
            raise serializers.ValidationError("range must be [first, last] with first <= last.")
        return attrs


class MatchHitSerializer(serializers.Serializer[Any]):
    position = serializers.IntegerField(help_text="first token of the match")
    length = serializers.IntegerField()
    intersection = serializers.IntegerField()
    union = serializers.IntegerField()
    jaccard = serializers.FloatField()
    missing = serializers.IntegerField()


class MatchHitContextSerializer(MatchHitSerializer):
    start = serializers.IntegerField(help_text="first token of the context (inclusive)")
    end = serializers.IntegerField(help_text="last token of the context (inclusive)")
    clipped = serializers.BooleanField(help_text="the context was cut at 500 tokens")
    tokens = serializers.ListField(child=serializers.CharField(trim_whitespace=False))
    cell_count = serializers.ListField(
        child=serializers.IntegerField(), help_text="selected cells on, per token"
    )
    annotations = serializers.DictField(
        child=serializers.ListField(),
        help_text="per annotation, one value per token: a label, a number, or for a "
        "top-k prediction track its top entry {token, weight}",
    )


class MatchSummarySerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    stateset = serializers.UUIDField()
    source = serializers.CharField()  # type: ignore[assignment]
    query = serializers.DictField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    job = serializers.UUIDField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    exact = serializers.BooleanField(
        help_text="false when the engine stopped at its budget; then `unscored` > 0"
    )
    unscored = serializers.IntegerField()
    candidates = serializers.IntegerField()
    total = serializers.IntegerField(help_text="number of hits")
    shards = serializers.IntegerField()
    seconds = serializers.FloatField(allow_null=True)
    strict_histogram = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="[length, count] pairs, ascending by length, for the lengths that occur: "
        "candidates with every selected cell on and obeying the off-constraints",
    )
    fuzzy_histogram = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="[length, count] pairs, ascending by length, for the lengths that occur: "
        "candidates with at least half of the selected cells on",
    )
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField()


class MatchAnswerSerializer(MatchSummarySerializer):
    reused = serializers.BooleanField(help_text="the answer was stored from an earlier query")
    hits = MatchHitSerializer(many=True)


class MatchPageSerializer(MatchSummarySerializer):
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    left = serializers.IntegerField()
    right = serializers.IntegerField()
    hits = MatchHitContextSerializer(many=True)


def _source(ss: StateSet, source: str) -> dict[str, Any]:
    sources = ss.manifest.get("sources", [])
    for s in sources:
        if s["id"] == source:
            return dict(s)
    known = ", ".join(str(s["id"]) for s in sources) or "none"
    raise ApplicationError(
        f"There is no source '{source}' in this state set; its sources are: {known}.",
        code="unknown_source",
    )


def query_from_request(ss: StateSet, v: dict[str, Any]) -> tuple[str, Any]:
    """(source id, validated MatchQuery) from the validated request body; a hypothesis
    range is turned into its selected cells first."""
    from workers.core.match import MatchQuery
    from workers.core.selection import selected_cells

    source = _source(ss, v["source"])
    n, d = int(ss.length), int(source["cells"])
    try:
        if v.get("cells") is not None:
            cells = sorted({int(c) for c in v["cells"]})
            bad = [c for c in cells if c >= d]
            if bad:
                raise ApplicationError(
                    f"Cell {bad[0]} does not exist; the source has cells 0 to {d - 1}.",
                    code="invalid",
                    details={"cells": bad[:20]},
                )
        else:
            if v["end"] >= n:
                raise ApplicationError(
                    f"The hypothesis {v['start']}-{v['end']} must lie inside the corpus of "
                    f"{n} tokens."
                )
            cells = selected_cells(
                stateset_store(ss),
                source["id"],
                v["start"],
                v["end"],
                v["threshold"],
                zero_left=v["zero_left"],
                zero_right=v["zero_right"],
                transform=v.get("transform"),
            )
            if not cells:
                raise ApplicationError(
                    f"The hypothesis {v['start']}-{v['end']} selects no cells: none is on "
                    f"(>= {v['threshold']}) throughout it and off for the {v['zero_left']} "
                    f"step(s) before and {v['zero_right']} after. Lower the threshold, "
                    "shorten the range or relax the off-constraints.",
                    code="empty_selection",
                )
        window = v.get("range")
        query = MatchQuery(
            cells=tuple(cells),
            threshold=float(v["threshold"]),
            zero_left=int(v["zero_left"]),
            zero_right=int(v["zero_right"]),
            min_length=v.get("min_length"),
            max_length=v.get("max_length"),
            length=v.get("length"),
            limit=int(v["limit"]),
            range_start=int(window[0]) if window else 0,
            range_end=int(window[1]) if window else None,
            transform=v.get("transform"),
        )
        query.validate(n, d)
    except InputError as exc:
        raise ApplicationError(str(exc)) from exc
    return str(source["id"]), query


class StateSetMatchesView(JobSubmissionThrottleMixin, APIView):
    throttle_scope = "matches"

    @extend_schema(
        request=MatchRequestSerializer,
        responses={200: MatchAnswerSerializer, 202: JobEnvelopeSerializer},
        description=(
            "Match a cell set (or the cells a hypothesis range selects) over the whole "
            "state set. 200 with the answer when it is stored or computed within a short "
            "wait; otherwise 202 with the job, whose result names the match."
        ),
    )
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id)
        data = MatchRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        source, query = query_from_request(ss, data.validated_data)
        match, job = match_start(
            stateset=ss,
            user=request.user,  # type: ignore[arg-type]
            source=source,
            query=query,
        )
        if job is None:
            return Response(match_answer(match, reused=True))
        ended = match_wait(job_id=job.id, timeout_s=float(settings.STATELAB_MATCH_WAIT_S))
        if ended == JobStatus.SUCCEEDED:
            match.refresh_from_db()
            return Response(match_answer(match, reused=False))
        job.refresh_from_db()
        if ended == JobStatus.FAILED:
            raise ApplicationError(
                f"The match failed: {job.error}",
                code="match_failed",
                status_code=422,
                details={"job": str(job.id)},
            )
        if ended == JobStatus.CANCELLED:
            raise ApplicationError(
                "The match was cancelled; ask for it again to start it anew.",
                code="match_cancelled",
                status_code=409,
                details={"job": str(job.id)},
            )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


def _bounded(raw: Any, name: str, default: int, low: int, high: int) -> int:
    value = int_param(raw, name, default)
    if not low <= value <= high:
        raise ApplicationError(f"{name} must be between {low} and {high}, not {value}.")
    return value


class MatchDetailView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("offset", int, description="first hit (default 0)"),
            OpenApiParameter("limit", int, description="hits per page (default 50, at most 1000)"),
            OpenApiParameter("left", int, description="tokens of context before a hit (10)"),
            OpenApiParameter("right", int, description="tokens of context after a hit (0)"),
        ],
        responses=MatchPageSerializer,
    )
    def get(self, request: Request, match_id: str) -> Response:
        match = match_for_user(request.user, match_id)
        q = request.query_params
        offset = _bounded(q.get("offset"), "offset", 0, 0, 10**9)
        limit = _bounded(q.get("limit"), "limit", 50, 1, MAX_LIMIT)
        left = _bounded(q.get("left"), "left", 10, 0, MAX_SIDE)
        right = _bounded(q.get("right"), "right", 0, 0, MAX_SIDE)
        return Response(match_page(match, offset=offset, limit=limit, left=left, right=right))
