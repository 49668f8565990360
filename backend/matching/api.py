"""Match routes: `POST /api/statesets/{id}/matches/` and `GET /api/matches/{id}/`.

A POST whose answer is stored answers 200 at once. Otherwise it starts (or joins)
the match job, waits up to `STATELAB_MATCH_WAIT_S` for it, and answers 200 with
the result, or 202 with the job when the match takes longer; the job's result is
then `{"match": "<id>"}`, and `GET /api/matches/{id}/` pages its hits with the
context the match view draws.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.downloads import DownloadNegotiation, download_response
from backend.core.errors import ApplicationError
from backend.core.events import event_emit
from backend.core.fields import BoundedListField
from backend.core.params import int_param
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.jobs.models import JobStatus
from backend.states.models import StateSet
from backend.states.selectors import stateset_for_user

from .inline import match_start_here
from .models import Match, MatchStatus
from .selectors import (
    match_export,
    match_for_user,
    match_histograms,
    match_hits,
    match_page_hits,
    match_settle,
    match_status,
)
from .services import match_query_build

MAX_LIMIT = 1000
MAX_SIDE = 100


class MatchRequestSerializer(serializers.Serializer[Any]):
    source = serializers.CharField(help_text="the source id (see the state set's `sources`)")  # type: ignore[assignment]
    cells = BoundedListField(
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
    range = BoundedListField(
        child=serializers.IntegerField(min_value=0),
        min_length=2,
        max_length=2,
        required=False,
        allow_null=True,
        help_text="[first, last] token positions (inclusive) that matches must lie in",
    )
    page = serializers.DictField(
        required=False,
        help_text="{offset, limit, left, right}: the answer also carries this page of hits "
        "with their context (`page`), as GET /api/matches/{id}/ gives it",
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
    """One hit as the engine reports it (`workers.core.match.MatchHit.to_json`)."""

    position = serializers.IntegerField(help_text="first token of the match")
    length = serializers.IntegerField()
    intersection = serializers.IntegerField()
    union = serializers.IntegerField()
    jaccard = serializers.FloatField()
    missing = serializers.IntegerField()


class MatchHitContextSerializer(MatchHitSerializer):
    """A hit with what the match view draws beside it (`selectors.match_page_hits`)."""

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


HISTOGRAM = serializers.ListField(
    child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2)
)


@extend_schema_field(MatchHitSerializer(many=True))
class StoredHitsField(serializers.Field):  # type: ignore[type-arg]
    """The hits exactly as stored (already the JSON of `MatchHitSerializer`): handed
    through without a per-field pass, which would cost milliseconds for 1,000 hits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value: Match) -> list[dict[str, Any]]:
        return match_hits(value)


@extend_schema_field(MatchHitContextSerializer(many=True))
class PageHitsField(serializers.Field):  # type: ignore[type-arg]
    """A page of hits with their context (`selectors.match_page_hits`), handed through."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value: Match) -> list[dict[str, Any]]:
        page = self.context["page"]
        return match_page_hits(value, **page)


class MatchSummarySerializer(serializers.ModelSerializer[Match]):
    """The one definition of a match's JSON (without its hits), for every answer."""

    stateset = serializers.UUIDField(source="stateset_id", read_only=True)
    status = serializers.SerializerMethodField()
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    exact = serializers.BooleanField(
        read_only=True, help_text="false when the engine stopped at its budget; then `unscored` > 0"
    )
    total = serializers.IntegerField(source="hit_count", read_only=True, help_text="number of hits")
    strict_histogram = serializers.SerializerMethodField(
        help_text="[length, count] pairs, ascending by length, for the lengths that occur: "
        "candidates with every selected cell on and obeying the off-constraints",
    )
    fuzzy_histogram = serializers.SerializerMethodField(
        help_text="[length, count] pairs, ascending by length, for the lengths that occur: "
        "candidates with at least half of the selected cells on",
    )

    class Meta:
        model = Match
        fields = [
            "id",
            "stateset",
            "source",
            "query",
            "status",
            "job",
            "error",
            "exact",
            "unscored",
            "candidates",
            "total",
            "shards",
            "seconds",
            "strict_histogram",
            "fuzzy_histogram",
            "created_at",
            "finished_at",
            "last_used_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=JobStatus.choices))
    def get_status(self, match: Match) -> str:
        return match_status(match)

    @extend_schema_field(serializers.CharField(allow_blank=True))
    def get_error(self, match: Match) -> str:
        if match.job is not None and match.status != MatchStatus.DONE:
            return str(match.job.error)
        return ""

    @extend_schema_field(HISTOGRAM)
    def get_strict_histogram(self, match: Match) -> list[list[int]]:
        return match_histograms(match)[0]

    @extend_schema_field(HISTOGRAM)
    def get_fuzzy_histogram(self, match: Match) -> list[list[int]]:
        return match_histograms(match)[1]


class MatchAnswerSerializer(MatchSummarySerializer):
    """The answer of `POST .../matches/`: the match with every hit, without context."""

    reused = serializers.SerializerMethodField(
        help_text="the answer was stored from an earlier query"
    )
    hits = StoredHitsField()

    class Meta(MatchSummarySerializer.Meta):
        fields = [*MatchSummarySerializer.Meta.fields, "reused", "hits"]
        read_only_fields = fields

    def get_reused(self, match: Match) -> bool:
        return bool(self.context.get("reused", False))


class MatchPageSerializer(MatchSummarySerializer):
    """`GET /api/matches/{id}/`: one page of hits with their context."""

    offset = serializers.SerializerMethodField()
    limit = serializers.SerializerMethodField()
    left = serializers.SerializerMethodField()
    right = serializers.SerializerMethodField()
    hits = PageHitsField()

    class Meta(MatchSummarySerializer.Meta):
        fields = [*MatchSummarySerializer.Meta.fields, "offset", "limit", "left", "right", "hits"]
        read_only_fields = fields

    def get_offset(self, match: Match) -> int:
        return int(self.context["page"]["offset"])

    def get_limit(self, match: Match) -> int:
        return int(self.context["page"]["limit"])

    def get_left(self, match: Match) -> int:
        return int(self.context["page"]["left"])

    def get_right(self, match: Match) -> int:
        return int(self.context["page"]["right"])


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
        return match_post_answer(ss, request.data, request.user)


def match_post_answer(
    ss: StateSet, body: Any, user: Any, *, source: str | None = None, hypothesis: Any = None
) -> Response:
    """Match a request's cells or hypothesis range over a state set: 200 with the answer,
    or 202 with the job; ``source`` fixes the source and ``hypothesis`` is the one whose
    routes ask (the hypothesis routes)."""
    started = time.perf_counter()
    data = MatchRequestSerializer(data={**body, "source": source} if source else body)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    window = v.get("range")
    source_id, query = match_query_build(
        stateset=ss,
        source=v["source"],
        cells=v.get("cells"),
        start=v.get("start"),
        end=v.get("end"),
        threshold=v["threshold"],
        zero_left=v["zero_left"],
        zero_right=v["zero_right"],
        min_length=v.get("min_length"),
        max_length=v.get("max_length"),
        length=v.get("length"),
        limit=v["limit"],
        transform=v.get("transform"),
        window=(window[0], window[1]) if window else None,
    )
    match, job, fresh = match_start_here(
        stateset=ss,
        user=user,
        source=source_id,
        query=query,
    )
    running = match_settle(match, job, wait_s=float(settings.STATELAB_MATCH_WAIT_S))
    extra = {"hypothesis": str(hypothesis)} if hypothesis is not None else {}
    if running is not None:
        match_emit(user, ss, match, query, started, answered=False, **extra)
        return Response(job_envelope(running), status=status.HTTP_202_ACCEPTED)
    reused = job is None and not fresh
    answer = MatchAnswerSerializer(match, context={"reused": reused})
    answer_body: dict[str, Any] = dict(answer.data)
    if v.get("page") is not None:
        # The first page of hits with context in the same answer (the match view's
        # first rows), as GET /api/matches/{id}/ would give it: one round trip less.
        answer_body = {**answer_body, "page": match_page_answer(match, v["page"])}
    match_emit(user, ss, match, query, started, answered=True, cached=reused, **extra)
    return Response(answer_body)


def match_emit(
    user: Any, ss: StateSet, match: Match, query: Any, started: float, **summary: Any
) -> None:
    """The `match.run` event of a match request answered: how many cells over how long
    a corpus, how long the answer took (ms since `started`, a `perf_counter` time),
    whether it was answered (else 202/503: still running) and from the store."""
    event_emit(
        "match.run",
        user=user,
        project=ss.project,
        object_id=match.id,
        summary={
            "cells": len(query.cells),
            "corpus_tokens": ss.length,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            **summary,
        },
    )


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
        return Response(match_page_answer(match, request.query_params))


def match_page_answer(match: Match, q: Any) -> dict[str, Any]:
    """One page of a match's hits with context, as a query string asks for it
    (`offset`, `limit`, `left`, `right`, each checked)."""
    offset = _bounded(q.get("offset"), "offset", 0, 0, 10**9)
    limit = _bounded(q.get("limit"), "limit", 50, 1, MAX_LIMIT)
    left = _bounded(q.get("left"), "left", 10, 0, MAX_SIDE)
    right = _bounded(q.get("right"), "right", 0, 0, MAX_SIDE)
    page = {"offset": offset, "limit": limit, "left": left, "right": right}
    return dict(MatchPageSerializer(match, context={"page": page}).data)


class MatchExportView(APIView):
    """A finished match's hits as CSV (docs/api.md, Exports); 409 while it runs."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        operation_id="matches_export",
        parameters=[OpenApiParameter("format", str, enum=["csv"], description="csv (the default)")],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="`#` comment lines naming the state set, source and query, then "
                "rank,position,length,intersection,union,jaccard,missing,text",
            )
        },
    )
    def get(self, request: Request, match_id: str) -> HttpResponseBase:
        match = match_for_user(request.user, match_id)
        fmt = request.query_params.get("format") or "csv"
        if fmt != "csv":
            raise ApplicationError(f"format must be csv, not '{fmt}'.", code="invalid_format")
        response = download_response(match_export(match))
        event_emit(
            "export.downloaded",
            user=request.user,
            project=match.stateset.project,
            object_id=match.id,
            summary={"what": "hits", "format": "csv"},
        )
        return response
