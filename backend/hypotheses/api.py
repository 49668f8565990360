"""Routes of rankings, saved hypotheses and their statistics.

Rankings: `POST/GET /api/statesets/{id}/rankings/`, `GET /api/rankings/{id}/` and
`GET /api/rankings/{id}/export/?format=csv`. A POST whose ranking is stored answers
200 with it at once; otherwise it starts (or joins) the ranking job and answers 202
with the job, whose result is then `{"ranking": "<id>"}`. Anyone who may read the
state set may rank its cells.

Hypotheses: `/api/hypotheses/` and below (docs/api.md). Who may do what is decided
by `selectors.hypothesis_for_user`; a caller who may not open a hypothesis gets
the 404 of a missing one on every route under it. Statistics: `POST
/api/hypotheses/{id}/statistics/` (200 stored, 202 job), `GET /api/statistics/{id}/`
and its CSV export.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.downloads import Download, DownloadNegotiation, download_response
from backend.core.errors import ApplicationError
from backend.core.events import event_emit
from backend.core.fields import BoundedListField
from backend.core.params import int_param, uuid_or_404
from backend.core.renderers import FastJSONRenderer
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.matching.api import (
    MAX_LIMIT,
    MatchAnswerSerializer,
    MatchPageSerializer,
    MatchRequestSerializer,
    MatchSummarySerializer,
    match_page_answer,
    match_post_answer,
)
from backend.matching.models import Match, MatchStatus
from backend.matching.selectors import match_settle
from backend.states.api import (
    CONTEXT_RESPONSES,
    EXPORT_RESPONSES,
    VALUES_PARAMETER,
    SearchResponseSerializer,
    SelectionRequestSerializer,
    SelectionResponseSerializer,
    context_answer,
    context_response,
    export_answer,
    export_emit,
    search_answer,
    selection_answer,
    selection_emit,
)
from backend.states.selectors import stateset_for_user

from .models import (
    Comment,
    Hypothesis,
    HypothesisShare,
    HypothesisVersion,
    Ranking,
    Statistics,
    Visibility,
)
from .selectors import (
    SESSION_LINKS,
    Link,
    comment_for_user,
    hypotheses_list,
    hypothesis_for_user,
    hypothesis_roles,
    hypothesis_stateset_info,
    hypothesis_version,
    hypothesis_versions,
    ranking_cells,
    ranking_csv_lines,
    ranking_filename,
    ranking_for_user,
    rankings_of,
    statistics_csv_lines,
    statistics_filename,
    statistics_for_user,
    statistics_of,
)
from .services import (
    comment_create,
    comment_delete,
    comment_edit,
    hypothesis_create,
    hypothesis_delete,
    hypothesis_fork,
    hypothesis_from_ranking,
    hypothesis_match_ensure,
    hypothesis_update,
    ranking_start,
    share_remove,
    share_set,
    statistics_start,
)


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
        cached = isinstance(started, Ranking)
        event_emit(
            "ranking.run",
            user=request.user,
            project=ss.project,
            object_id=started.id,
            summary={
                "stateset": str(ss.id),
                "source": v["source"],
                "annotation": v["annotation"],
                "cached": cached,
            },
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
        response = _csv_download(request, ranking_filename(ranking), ranking_csv_lines(ranking))
        export_emit(request, ranking.stateset.project, ranking.id, "ranking")
        return response


def _csv_download(
    request: Request, filename: str, lines: Iterator[str]
) -> StreamingHttpResponse | FileResponse:
    """A CSV export (`format=csv`, the only format) streamed line by line."""
    fmt = request.query_params.get("format") or "csv"
    if fmt != "csv":
        raise ApplicationError(f"format must be 'csv', not '{fmt}'.")
    return download_response(
        Download(
            filename=filename,
            content_type="text/csv; charset=utf-8",
            chunks=(line.encode() for line in lines),
        )
    )


# --- saved hypotheses -------------------------------------------------------------

VISIBILITIES = [v.value for v in Visibility]
LINK_PARAM = OpenApiParameter(
    "link",
    str,
    description="the link token of a `link` hypothesis, for callers it is not shared with",
)


def _link(request: Request) -> Link:
    """The link token a request gives (`?link=`), else those its browser session
    opened links with: the analysis page of a link reader sends no token itself."""
    token = request.query_params.get("link")
    if token:
        return str(token)
    session = getattr(request._request, "session", None)
    links = session.get(SESSION_LINKS) if session is not None else None
    return links if isinstance(links, dict) else None


def _hypothesis_emit(
    kind: str,
    request: Request,
    hyp: Hypothesis,
    *,
    object_id: Any = None,
    project: Any = None,
    **summary: Any,
) -> None:
    """A research event about `hyp` (its id as `hypothesis` in the summary)."""
    event_emit(
        kind,
        user=request.user,
        project=project or hyp.project,
        object_id=object_id or hyp.id,
        summary={"hypothesis": str(hyp.id), **summary},
    )


class HypothesisSpecSerializer(serializers.Serializer[Any]):
    """What a version says (every field but `title` optional on PATCH)."""

    title = serializers.CharField(max_length=200)
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=100_000, help_text="Markdown"
    )
    tags = BoundedListField(
        child=serializers.CharField(max_length=64), required=False, max_length=50
    )
    source = serializers.CharField(max_length=128)  # type: ignore[assignment]
    start = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    end = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    threshold = serializers.FloatField()
    zero_left = serializers.IntegerField(min_value=0, max_value=1000, default=1)
    zero_right = serializers.IntegerField(min_value=0, max_value=1000, default=0)
    min_length = serializers.IntegerField(min_value=1, default=2, allow_null=True)
    max_length = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=50, help_text="hits kept in the match result"
    )
    transform = serializers.ChoiceField(
        choices=["tanh", "none"],
        required=False,
        allow_null=True,
        help_text="default: the source's own",
    )
    cells_added = BoundedListField(
        child=serializers.IntegerField(min_value=0), required=False, max_length=100_000
    )
    cells_excluded = BoundedListField(
        child=serializers.IntegerField(min_value=0), required=False, max_length=100_000
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "threshold" in attrs and not math.isfinite(attrs["threshold"]):
            raise serializers.ValidationError("threshold must be a finite number.")
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end < start:
            raise serializers.ValidationError("end must not be before start.")
        low, high = attrs.get("min_length"), attrs.get("max_length")
        if low is not None and high is not None and high < low:
            raise serializers.ValidationError("max_length must not be below min_length.")
        return attrs


class HypothesisCreateSerializer(HypothesisSpecSerializer):
    stateset = serializers.UUIDField(required=False, help_text="the state set (not with `ranking`)")
    visibility = serializers.ChoiceField(choices=VISIBILITIES, default="private")
    ranking = serializers.UUIDField(
        required=False, help_text="make the hypothesis of this ranking's top cells"
    )
    top = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="with `ranking`: how many cells"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        initial = getattr(self, "initial_data", None)
        if isinstance(initial, dict) and initial.get("ranking"):
            # The ranking names the state set and the source, and a title is made.
            for name in ("source", "title"):
                self.fields[name].required = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs.get("ranking"):
            if attrs.get("top") is None:
                raise serializers.ValidationError("With a ranking, give top: how many cells.")
            for name in ("stateset", "start", "end", "cells_added", "source"):
                if attrs.get(name) not in (None, []):
                    raise serializers.ValidationError(
                        f"A hypothesis of a ranking's top cells takes no {name}."
                    )
        elif not attrs.get("stateset"):
            raise serializers.ValidationError("Give the state set (or a ranking and top).")
        return attrs


class HypothesisPatchSerializer(HypothesisSpecSerializer):
    visibility = serializers.ChoiceField(choices=VISIBILITIES, required=False)
    rotate_link = serializers.BooleanField(
        required=False, help_text="make a new link token; the old link stops working"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            if getattr(field, "default", empty) is not empty:
                field.default = empty


class MatchBriefSerializer(MatchSummarySerializer):
    class Meta(MatchSummarySerializer.Meta):
        fields = ["id", "status", "job", "error", "exact", "total", "seconds", "finished_at"]
        read_only_fields = fields


class HypothesisSerializer(serializers.ModelSerializer[HypothesisVersion]):
    """The one definition of a hypothesis' JSON: a version with its hypothesis."""

    id = serializers.UUIDField(source="hypothesis_id", read_only=True)
    version = serializers.IntegerField(source="number", read_only=True)
    latest_version = serializers.IntegerField(source="hypothesis.version", read_only=True)
    stateset = serializers.UUIDField(source="hypothesis.stateset_id", read_only=True)
    project = serializers.CharField(source="hypothesis.project.slug", read_only=True)
    transform = serializers.SerializerMethodField()
    visibility = serializers.CharField(source="hypothesis.visibility", read_only=True)
    owner = serializers.CharField(source="hypothesis.owner.username", read_only=True)
    forked_from = serializers.UUIDField(
        source="hypothesis.forked_from_id", read_only=True, allow_null=True
    )
    forked_version = serializers.IntegerField(
        source="hypothesis.forked_version", read_only=True, allow_null=True
    )
    match = serializers.UUIDField(source="match_id", read_only=True, allow_null=True)
    match_result = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )
    role = serializers.SerializerMethodField()
    link = serializers.SerializerMethodField()
    stateset_info = serializers.SerializerMethodField()

    class Meta:
        model = HypothesisVersion
        fields = [
            "id",
            "version",
            "latest_version",
            "title",
            "notes",
            "tags",
            "project",
            "stateset",
            "source",
            "start",
            "end",
            "threshold",
            "zero_left",
            "zero_right",
            "min_length",
            "max_length",
            "limit",
            "transform",
            "cells_added",
            "cells_excluded",
            "cells",
            "visibility",
            "owner",
            "forked_from",
            "forked_version",
            "match",
            "match_result",
            "created_by",
            "created_at",
            "role",
            "link",
            "stateset_info",
        ]
        read_only_fields = fields

    def get_transform(self, version: HypothesisVersion) -> str | None:
        return version.transform or None

    @extend_schema_field(MatchBriefSerializer(allow_null=True))
    def get_match_result(self, version: HypothesisVersion) -> dict[str, Any] | None:
        return MatchBriefSerializer(version.match).data if version.match is not None else None

    @extend_schema_field(
        serializers.ChoiceField(choices=["owner", "editor", "viewer"], allow_null=True)
    )
    def get_role(self, version: HypothesisVersion) -> str | None:
        return self.context.get("role")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_link(self, version: HypothesisVersion) -> str | None:
        """The link token, shown to the owner of a `link` hypothesis only."""
        hyp = version.hypothesis
        if self.context.get("role") == "owner" and hyp.visibility == Visibility.LINK:
            return hyp.link_token
        return None

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_stateset_info(self, version: HypothesisVersion) -> dict[str, Any] | None:
        """What a reader needs of the state set (name, length, the pinned source, the
        annotation tracks): a user the hypothesis is shared with may not open the state
        set itself."""
        if not self.context.get("detail"):
            return None
        return hypothesis_stateset_info(version)


class VersionSummarySerializer(serializers.ModelSerializer[HypothesisVersion]):
    version = serializers.IntegerField(source="number", read_only=True)
    created_by = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )
    match = serializers.UUIDField(source="match_id", read_only=True, allow_null=True)

    class Meta:
        model = HypothesisVersion
        fields = ["version", "title", "cells", "threshold", "match", "created_by", "created_at"]
        read_only_fields = fields


def _settled(version: HypothesisVersion) -> HypothesisVersion:
    """Wait the match route's short while for a new version's match result, so that
    most answers carry it; a longer one is followed through `match_result.job`."""
    match = version.match
    if match is not None and match.status != MatchStatus.DONE and match.job is not None:
        try:
            match_settle(match, match.job, wait_s=float(settings.STATELAB_MATCH_WAIT_S))
        except ApplicationError:
            match.job.refresh_from_db()  # a failed match shows in `match_result.error`
    return version


def _answer(version: HypothesisVersion, role: str, status_code: int = 200) -> Response:
    data = HypothesisSerializer(version, context={"role": role, "detail": True}).data
    return Response(data, status=status_code)


class HypothesesView(JobSubmissionThrottleMixin, APIView):
    throttle_scope = "matches"

    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, description="project slug"),
            OpenApiParameter("stateset", str, description="state set id"),
            OpenApiParameter("tag", str),
            OpenApiParameter("mine", bool, description="only the caller's own"),
        ],
        responses=HypothesisSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        q = request.query_params
        versions = hypotheses_list(
            request.user,
            project=q.get("project") or None,
            stateset=q.get("stateset") or None,
            tag=q.get("tag") or None,
            mine=q.get("mine") in ("1", "true", "yes"),
        )
        roles = hypothesis_roles(request.user, [v.hypothesis for v in versions])
        return Response(
            [
                HypothesisSerializer(v, context={"role": roles[v.hypothesis_id]}).data
                for v in versions
            ]
        )

    @extend_schema(
        request=HypothesisCreateSerializer,
        responses={201: HypothesisSerializer},
        description=(
            "Save a hypothesis: a range and threshold (with off-constraints) select cells, "
            "adjusted by `cells_added` and `cells_excluded`; or `ranking` + `top` make it "
            "of a ranking's best cells that rise with its annotation. Version 1 pins its "
            "match result, reused when the same query was asked before."
        ),
    )
    def post(self, request: Request) -> Response:
        data = HypothesisCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        user = request.user
        if v.get("ranking"):
            ranking = ranking_for_user(user, v.pop("ranking"))
            given = {k: x for k, x in v.items() if k in request.data}  # not the defaults
            version = hypothesis_from_ranking(
                ranking=ranking,
                user=user,  # type: ignore[arg-type]
                top=int(given.pop("top")),
                threshold=float(given.pop("threshold")),
                spec=given,
            )
        else:
            ss = stateset_for_user(user, v.pop("stateset"))
            visibility = v.pop("visibility")
            version = hypothesis_create(
                stateset=ss,
                user=user,  # type: ignore[arg-type]
                spec=v,
                visibility=visibility,
            )
        answer = _answer(_settled(version), "owner", status.HTTP_201_CREATED)
        _hypothesis_emit(
            "hypothesis.saved", request, version.hypothesis, version=1, cells=len(version.cells)
        )
        return answer


class HypothesisDetailView(APIView):
    @extend_schema(parameters=[LINK_PARAM], responses=HypothesisSerializer)
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, role = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = hypothesis_version(hyp)
        hypothesis_match_ensure(version, request.user)  # type: ignore[arg-type]
        return _answer(version, role)

    @extend_schema(
        request=HypothesisPatchSerializer,
        responses=HypothesisSerializer,
        description=(
            "Any field of the hypothesis' content writes a new numbered version (the "
            "newest one with the changes); `visibility` and `rotate_link` change who sees "
            "it (owner only) and write no version."
        ),
    )
    def patch(self, request: Request, hypothesis_id: str) -> Response:
        hyp, role = hypothesis_for_user(request.user, hypothesis_id, need="editor")
        data = HypothesisPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            raise ApplicationError("Nothing to change: give at least one field.")
        version = hypothesis_update(
            hyp=hyp,
            user=request.user,  # type: ignore[arg-type]
            changes=dict(data.validated_data),
            role=role,
        )
        answer = _answer(_settled(version), role)
        _hypothesis_emit(
            "hypothesis.saved",
            request,
            hyp,
            version=version.number,
            cells=len(version.cells),
            changed=sorted(data.validated_data),
        )
        return answer

    @extend_schema(responses={204: None})
    def delete(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, need="owner")
        hypothesis_delete(hyp=hyp)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HypothesisVersionsView(APIView):
    @extend_schema(parameters=[LINK_PARAM], responses=VersionSummarySerializer(many=True))
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        return Response(VersionSummarySerializer(hypothesis_versions(hyp), many=True).data)


class HypothesisVersionView(APIView):
    @extend_schema(parameters=[LINK_PARAM], responses=HypothesisSerializer)
    def get(self, request: Request, hypothesis_id: str, number: int) -> Response:
        hyp, role = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = hypothesis_version(hyp, number)
        hypothesis_match_ensure(version, request.user)  # type: ignore[arg-type]
        return _answer(version, role)


def _version_param(request: Request, hyp: Hypothesis) -> HypothesisVersion:
    raw = request.query_params.get("version")
    return hypothesis_version(hyp, None if raw in (None, "") else int_param(raw, "version"))


class HypothesisMatchView(APIView):
    @extend_schema(
        parameters=[
            LINK_PARAM,
            OpenApiParameter("version", int, description="default: the newest"),
            OpenApiParameter("offset", int, description="first hit (default 0)"),
            OpenApiParameter("limit", int, description="hits per page (default 50)"),
            OpenApiParameter("left", int, description="tokens of context before a hit (10)"),
            OpenApiParameter("right", int, description="tokens of context after a hit (0)"),
        ],
        responses=MatchPageSerializer,
        description="The version's pinned match result, one page of hits with context.",
    )
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = _version_param(request, hyp)
        match = hypothesis_match_ensure(version, request.user)  # type: ignore[arg-type]
        return Response(match_page_answer(match, request.query_params))


class HypothesisContextView(APIView):
    @extend_schema(
        parameters=[
            LINK_PARAM,
            OpenApiParameter("version", int, description="default: the newest"),
            OpenApiParameter("start", int, required=True),
            OpenApiParameter("end", int, required=True, description="inclusive"),
            OpenApiParameter("cells", str, description="comma-separated cell indices"),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter("threshold", float),
            VALUES_PARAMETER,
        ],
        responses=CONTEXT_RESPONSES,
        description=(
            "A context window of the source the hypothesis pins (the shape of "
            "`GET /api/statesets/{id}/context/`), readable by whoever may open the "
            "hypothesis."
        ),
    )
    def get(self, request: Request, hypothesis_id: str) -> HttpResponseBase:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = _version_param(request, hyp)
        return context_response(
            request, context_answer(hyp.stateset, request.query_params, source=version.source)
        )


class ShareSerializer(serializers.ModelSerializer[HypothesisShare]):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = HypothesisShare
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class ShareWriteSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=["viewer", "editor"], default="viewer")


class ShareRemoveSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)


class HypothesisSharesView(APIView):
    @extend_schema(responses=ShareSerializer(many=True))
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, need="owner")
        shares = hyp.shares.select_related("user").order_by("user__username")
        return Response(ShareSerializer(shares, many=True).data)

    @extend_schema(request=ShareWriteSerializer, responses={201: ShareSerializer})
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, need="owner")
        data = ShareWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        share = share_set(hyp=hyp, by=request.user, **data.validated_data)  # type: ignore[arg-type]
        _hypothesis_emit("hypothesis.shared", request, hyp, role=share.role)
        return Response(ShareSerializer(share).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ShareRemoveSerializer, responses={204: None})
    def delete(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, need="owner")
        data = ShareRemoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        share_remove(hyp=hyp, username=data.validated_data["username"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ForkSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(min_value=1, required=False, help_text="default: newest")
    title = serializers.CharField(max_length=200, required=False)


class HypothesisForkView(APIView):
    @extend_schema(
        parameters=[LINK_PARAM], request=ForkSerializer, responses={201: HypothesisSerializer}
    )
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        data = ForkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        version = hypothesis_version(hyp, v.get("version"))
        fork = hypothesis_fork(
            hyp=hyp,
            version=version,
            user=request.user,  # type: ignore[arg-type]
            title=v.get("title"),
        )
        answer = _answer(fork, "owner", status.HTTP_201_CREATED)
        _hypothesis_emit(
            "hypothesis.forked",
            request,
            hyp,
            object_id=fork.hypothesis_id,
            project=fork.hypothesis.project,
            version=version.number,
        )
        return answer


class CommentSerializer(serializers.ModelSerializer[Comment]):
    author = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "version", "created_at", "edited_at"]
        read_only_fields = ["id", "author", "created_at", "edited_at"]
        extra_kwargs = {"body": {"max_length": 20_000}}


class CommentEditSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=20_000)


class HypothesisCommentsView(APIView):
    @extend_schema(parameters=[LINK_PARAM], responses=CommentSerializer(many=True))
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        comments = hyp.comments.select_related("author").order_by("created_at")
        return Response(CommentSerializer(comments, many=True).data)

    @extend_schema(
        parameters=[LINK_PARAM], request=CommentSerializer, responses={201: CommentSerializer}
    )
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        data = CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comment_create(
            hyp=hyp,
            user=request.user,  # type: ignore[arg-type]
            body=data.validated_data["body"],
            version=data.validated_data.get("version"),
        )
        _hypothesis_emit(
            "hypothesis.commented",
            request,
            hyp,
            object_id=comment.id,
            characters=len(comment.body),
        )
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class HypothesisCommentView(APIView):
    @extend_schema(
        parameters=[LINK_PARAM], request=CommentEditSerializer, responses=CommentSerializer
    )
    def patch(self, request: Request, hypothesis_id: str, comment_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        comment = comment_for_user(request.user, hyp, comment_id)
        data = CommentEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        edited = comment_edit(
            comment=comment,
            user=request.user,  # type: ignore[arg-type]
            body=data.validated_data["body"],
        )
        return Response(CommentSerializer(edited).data)

    @extend_schema(parameters=[LINK_PARAM], responses={204: None})
    def delete(self, request: Request, hypothesis_id: str, comment_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        comment = comment_for_user(request.user, hyp, comment_id)
        comment_delete(comment=comment, user=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class StatisticsRequestSerializer(serializers.Serializer[Any]):
    annotation = serializers.CharField(max_length=128)
    label = serializers.CharField(  # type: ignore[assignment]
        required=False, allow_null=True, max_length=1000, help_text="discrete tracks"
    )
    threshold = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="scalar tracks: a token is positive at or above it",
    )
    version = serializers.IntegerField(min_value=1, required=False, help_text="default: newest")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        t = attrs.get("threshold")
        if t is not None and not math.isfinite(t):
            raise serializers.ValidationError("threshold must be a finite number.")
        return attrs


class StatisticsSerializer(serializers.ModelSerializer[Statistics]):
    """`GET /api/statistics/{id}/`: agreement, enrichment and robustness of a version."""

    hypothesis = serializers.UUIDField(source="version.hypothesis_id", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    threshold = serializers.FloatField(source="scalar_threshold", read_only=True, allow_null=True)
    agreement = serializers.SerializerMethodField()
    enrichment = serializers.SerializerMethodField()
    robustness = serializers.SerializerMethodField()
    ranges = serializers.SerializerMethodField()
    inside_tokens = serializers.SerializerMethodField()
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Statistics
        fields = [
            "id",
            "hypothesis",
            "version",
            "annotation",
            "label",
            "threshold",
            "agreement",
            "enrichment",
            "robustness",
            "ranges",
            "inside_tokens",
            "job",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_label(self, row: Statistics) -> str | None:
        return row.label or None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_agreement(self, row: Statistics) -> dict[str, Any]:
        return dict(row.result.get("agreement") or {})

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_enrichment(self, row: Statistics) -> list[dict[str, Any]]:
        return list(row.result.get("enrichment") or [])

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_robustness(self, row: Statistics) -> dict[str, Any]:
        return dict(row.result.get("robustness") or {})

    def get_ranges(self, row: Statistics) -> int:
        return int(row.result.get("ranges") or 0)

    def get_inside_tokens(self, row: Statistics) -> int:
        return int(row.result.get("inside_tokens") or 0)


class HypothesisStatisticsView(JobSubmissionThrottleMixin, APIView):
    @extend_schema(
        parameters=[LINK_PARAM, OpenApiParameter("version", int, description="only this version")],
        responses=StatisticsSerializer(many=True),
    )
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        raw = request.query_params.get("version")
        number = None if raw in (None, "") else int_param(raw, "version")
        return Response(StatisticsSerializer(statistics_of(hyp, number), many=True).data)

    @extend_schema(
        parameters=[LINK_PARAM],
        request=StatisticsRequestSerializer,
        responses={200: StatisticsSerializer, 202: JobEnvelopeSerializer},
        description=(
            "Agreement (with a label of a discrete track, or a scalar track at or above "
            "`threshold`), enrichment of every label inside the matched ranges, and "
            "robustness of a hypothesis version over the whole corpus. 200 when stored; "
            "otherwise 202 with the job, whose result names the statistics."
        ),
    )
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        data = StatisticsRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        version = hypothesis_version(hyp, v.get("version"))
        started = statistics_start(
            version=version,
            user=request.user,  # type: ignore[arg-type]
            annotation=v["annotation"],
            label=v.get("label"),
            threshold=v.get("threshold"),
        )
        event_emit(
            "statistics.run",
            user=request.user,
            project=hyp.project,
            object_id=started.id,
            summary={
                "hypothesis": str(hyp.id),
                "version": version.number,
                "annotation": v["annotation"],
                "cached": isinstance(started, Statistics),
            },
        )
        if isinstance(started, Statistics):
            return Response(StatisticsSerializer(started).data)
        return Response(job_envelope(started), status=status.HTTP_202_ACCEPTED)


class StatisticsDetailView(APIView):
    @extend_schema(parameters=[LINK_PARAM], responses=StatisticsSerializer)
    def get(self, request: Request, statistics_id: str) -> Response:
        row = statistics_for_user(request.user, statistics_id, link=_link(request))
        return Response(StatisticsSerializer(row).data)


class StatisticsExportView(APIView):
    renderer_classes = [FastJSONRenderer]
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[
            LINK_PARAM,
            OpenApiParameter("format", str, enum=["csv"], description="csv (the default)"),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="a `#` line naming the hypothesis version, state set, source, "
                "cells and annotation; `section,key,value` rows of agreement and robustness; "
                "then `label,inside,expected,lift,p,q` rows of enrichment",
            )
        },
    )
    def get(self, request: Request, statistics_id: str) -> StreamingHttpResponse | FileResponse:
        row = statistics_for_user(request.user, statistics_id, link=_link(request))
        response = _csv_download(request, statistics_filename(row), statistics_csv_lines(row))
        hyp = row.version.hypothesis
        export_emit(request, hyp.project, row.id, "statistics", hypothesis=str(hyp.id))
        return response


class HypothesisExportView(APIView):
    """A slice of the pinned source as a file, with the version's cells by default,
    pinned to the state set and the hypothesis version (docs/api.md, Exports)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        operation_id="hypotheses_export",
        parameters=[
            LINK_PARAM,
            OpenApiParameter("version", int, description="default: the newest"),
            OpenApiParameter("start", int, required=True),
            OpenApiParameter("end", int, required=True, description="inclusive"),
            OpenApiParameter("cells", str, description="comma-separated (the version's cells)"),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter(
                "format", str, enum=["csv", "npz", "hdf5"], description="the file format (csv)"
            ),
        ],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request: Request, hypothesis_id: str) -> HttpResponseBase:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = _version_param(request, hyp)
        response = export_answer(
            hyp.stateset,
            request.query_params,
            source=version.source,
            cells=[int(c) for c in version.cells],
            pin_extra={
                "hypothesis": str(hyp.id),
                "hypothesis_version": version.number,
                "hypothesis_title": version.title,
            },
        )
        export_emit(request, hyp.project, hyp.stateset_id, "states", hypothesis=str(hyp.id))
        return response


# --- the analysis page for a reader of the hypothesis --------------------------------
# A reader the hypothesis is shared with (or who has its link) may not open its state
# set; these routes give them what the analysis page asks of a state set, on the
# source the version pins only: selections, phrase search, new matches and their
# pages. Whoever may open the hypothesis may use them.


class HypothesisSelectionView(APIView):
    @extend_schema(
        parameters=[LINK_PARAM, OpenApiParameter("version", int, description="default: newest")],
        request=SelectionRequestSerializer,
        responses=SelectionResponseSerializer,
        description="`POST /api/statesets/{id}/selection/` on the pinned source.",
    )
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = _version_param(request, hyp)
        answer = selection_answer(hyp.stateset, request.data, source=version.source)
        selection_emit(request, hyp.stateset, answer, hypothesis=str(hyp.id))
        return Response(answer)


class HypothesisSearchView(APIView):
    @extend_schema(
        parameters=[
            LINK_PARAM,
            OpenApiParameter("q", str, required=True, description="the phrase"),
            OpenApiParameter("limit", int, description="at most this many positions (1-1000)"),
        ],
        responses=SearchResponseSerializer,
        description="`GET /api/statesets/{id}/search/` over the hypothesis' state set.",
    )
    def get(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        return Response(search_answer(hyp.stateset, request.query_params))


class HypothesisMatchesView(JobSubmissionThrottleMixin, APIView):
    throttle_scope = "matches"

    @extend_schema(
        parameters=[LINK_PARAM, OpenApiParameter("version", int, description="default: newest")],
        request=MatchRequestSerializer,
        responses={200: MatchAnswerSerializer, 202: JobEnvelopeSerializer},
        description="`POST /api/statesets/{id}/matches/` on the pinned source.",
    )
    def post(self, request: Request, hypothesis_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        version = _version_param(request, hyp)
        return match_post_answer(
            hyp.stateset, request.data, request.user, source=version.source, hypothesis=hyp.id
        )


class HypothesisMatchDetailView(APIView):
    @extend_schema(
        parameters=[
            LINK_PARAM,
            OpenApiParameter("offset", int, description="first hit (default 0)"),
            OpenApiParameter("limit", int, description="hits per page (default 50)"),
            OpenApiParameter("left", int, description="tokens of context before a hit (10)"),
            OpenApiParameter("right", int, description="tokens of context after a hit (0)"),
        ],
        responses=MatchPageSerializer,
        description="`GET /api/matches/{id}/` for a match of the hypothesis' state set "
        "on a source one of its versions pins.",
    )
    def get(self, request: Request, hypothesis_id: str, match_id: str) -> Response:
        hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=_link(request))
        sources = set(hyp.versions.values_list("source", flat=True))
        match = (
            Match.objects.select_related("job")
            .filter(id=uuid_or_404(match_id), stateset=hyp.stateset, source__in=sources)
            .first()
        )
        if match is None:
            raise Http404("No such match.")
        match.stateset = hyp.stateset
        return Response(match_page_answer(match, request.query_params))
