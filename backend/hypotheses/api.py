"""Ranking routes: `POST/GET /api/statesets/{id}/rankings/`, `GET /api/rankings/{id}/`
and `GET /api/rankings/{id}/export/?format=csv`.

A POST whose ranking is stored answers 200 with it at once; otherwise it starts
(or joins) the ranking job and answers 202 with the job, whose result is then
`{"ranking": "<id>"}`. Anyone who may read the state set may rank its cells.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, StreamingHttpResponse
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

from backend.core.downloads import Download, DownloadNegotiation, download_response
from backend.core.errors import ApplicationError
from backend.core.params import int_param
from backend.core.renderers import FastJSONRenderer
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.states.selectors import stateset_for_user

from .models import Ranking
from .selectors import (
    ranking_cells,
    ranking_csv_lines,
    ranking_filename,
    ranking_for_user,
    rankings_of,
)
from .services import ranking_start


class RankingRequestSerializer(serializers.Serializer[Any]):
    source = serializers.CharField(help_text="the source id (see the state set's `sources`)")  # type: ignore[assignment]
    annotation = serializers.CharField(
        max_length=128, help_text="a discrete or scalar annotation track of the state set"
    )
    label = serializers.CharField(  # type: ignore[assignment]
        required=False,
        allow_null=True,
        max_length=1000,
        help_text="discrete tracks: the label the cells are ranked for; scalar tracks: none",
    )


class RankingCellSerializer(serializers.Serializer[Any]):
    """One ranked cell (`workers.core.ranking.Ranking.cells`); null where the measure
    cannot be computed (an empty class, a constant cell)."""

    cell = serializers.IntegerField()
    auroc = serializers.FloatField(required=False, allow_null=True, help_text="discrete tracks")
    pearson = serializers.FloatField(required=False, allow_null=True, help_text="scalar tracks")
    spearman = serializers.FloatField(required=False, allow_null=True, help_text="scalar tracks")


class RankingSummarySerializer(serializers.ModelSerializer[Ranking]):
    """The one definition of a ranking's JSON without its cells."""

    stateset = serializers.UUIDField(source="stateset_id", read_only=True)
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    measure = serializers.ChoiceField(
        choices=["auroc", "pearson"],
        read_only=True,
        help_text="`auroc` for a discrete track and label; `pearson` (with spearman) "
        "for a scalar track",
    )
    error_bound = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="the largest proven AUROC error over the cells (null for scalar tracks)",
    )
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Ranking
        fields = [
            "id",
            "stateset",
            "source",
            "annotation",
            "label",
            "measure",
            "n",
            "error_bound",
            "job",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_label(self, ranking: Ranking) -> str | None:
        return ranking.label or None


class RankingSerializer(RankingSummarySerializer):
    """`GET /api/rankings/{id}/`: the ranking with its cells, best first."""

    cells = serializers.SerializerMethodField()

    class Meta(RankingSummarySerializer.Meta):
        fields = [*RankingSummarySerializer.Meta.fields, "cells"]
        read_only_fields = fields

    @extend_schema_field(RankingCellSerializer(many=True))
    def get_cells(self, ranking: Ranking) -> list[dict[str, Any]]:
        return ranking_cells(ranking, self.context.get("top"))


class StateSetRankingsView(JobSubmissionThrottleMixin, APIView):
    @extend_schema(responses=RankingSummarySerializer(many=True))
    def get(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id)
        return Response(RankingSummarySerializer(rankings_of(ss), many=True).data)

    @extend_schema(
        request=RankingRequestSerializer,
        responses={200: RankingSerializer, 202: JobEnvelopeSerializer},
        description=(
            "Rank every cell of a source against an annotation track (AUROC for a "
            "label of a discrete track, Pearson and Spearman for a scalar track). 200 "
            "with the ranking when it is stored; otherwise 202 with the job, whose "
            "result names the ranking."
        ),
    )
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id)
        data = RankingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        started = ranking_start(
            stateset=ss,
            user=request.user,  # type: ignore[arg-type]
            source=v["source"],
            annotation=v["annotation"],
            label=v.get("label"),
        )
        if isinstance(started, Ranking):
            return Response(RankingSerializer(started).data)
        return Response(job_envelope(started), status=status.HTTP_202_ACCEPTED)


class RankingDetailView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("top", int, description="only the best N cells")],
        responses=RankingSerializer,
    )
    def get(self, request: Request, ranking_id: str) -> Response:
        ranking = ranking_for_user(request.user, ranking_id)
        raw = request.query_params.get("top")
        top = None if raw in (None, "") else int_param(raw, "top")
        if top is not None and top < 1:
            raise ApplicationError(f"top must be at least 1, not {top}.")
        return Response(RankingSerializer(ranking, context={"top": top}).data)


class RankingExportView(APIView):
    renderer_classes = [FastJSONRenderer]
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv"], description="csv (the default)")],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="a `#` comment line naming the state set, source, annotation "
                "and label, then `cell,auroc,rank` or `cell,pearson,spearman,rank`, best first",
            )
        },
    )
    def get(self, request: Request, ranking_id: str) -> StreamingHttpResponse | FileResponse:
        ranking = ranking_for_user(request.user, ranking_id)
        fmt = request.query_params.get("format") or "csv"
        if fmt != "csv":
            raise ApplicationError(f"format must be 'csv', not '{fmt}'.")
        return download_response(
            Download(
                filename=ranking_filename(ranking),
                content_type="text/csv; charset=utf-8",
                chunks=(line.encode() for line in ranking_csv_lines(ranking)),
            )
        )
