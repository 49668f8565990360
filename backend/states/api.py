"""State-set routes: LSTMVis import, extraction, describe, context windows, selection,
phrase search, exports, and annotation uploads (for a state set or a corpus)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.artifacts.api import CorpusSerializer
from backend.artifacts.selectors import corpus_for_user, corpus_in_project, model_in_project
from backend.artifacts.services import upload_precheck
from backend.core.downloads import DownloadNegotiation, download_response
from backend.core.errors import ApplicationError
from backend.core.events import event_emit
from backend.core.params import float_param, int_list, int_param, transform_param
from backend.core.renderers import WINDOW_MEDIA_TYPE, window_packed
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.projects.models import Role
from backend.projects.selectors import project_for_user

from .annotations import annotation_upload_start
from .corpus import stateset_corpus_ensure
from .directories import import_dir_start, import_path_check
from .exports import export_format, stateset_export
from .models import StateSet
from .selectors import (
    stateset_context,
    stateset_describe,
    stateset_for_user,
    stateset_searcher,
    stateset_selection,
)
from .services import extraction_start, import_start, index_start, stateset_delete


class FileUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField()


class DirectoryImportSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(
        max_length=4096,
        trim_whitespace=False,
        help_text="absolute path of an LSTMVis directory on the server, inside one of "
        "the import roots (STATELAB_IMPORT_ROOTS); staff only",
    )


class ImportView(JobSubmissionThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={
            "multipart/form-data": FileUploadSerializer,
            "application/json": DirectoryImportSerializer,
        },
        responses={202: JobEnvelopeSerializer},
        description="Import an LSTMVis project: the zip of its directory as `file`, or "
        '(staff) `{"path": ...}` of a directory on the server, read where it lies '
        "(docs/lstmvis-import.md#directories-on-the-server).",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        if (request.content_type or "").split(";")[0].strip() == "application/json":
            return self._from_directory(request, project)
        upload_precheck(user=request.user, content_length=request.META.get("CONTENT_LENGTH"))  # type: ignore[arg-type]
        file = request.FILES.get("file")
        if file is None:
            raise ApplicationError("Attach the zip of an LSTMVis project directory as 'file'.")
        job, _ = import_start(project=project, user=request.user, file=file)  # type: ignore[arg-type]
        event_emit(
            "import.uploaded",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={"bytes": file.size},
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)

    def _from_directory(self, request: Request, project: Any) -> Response:
        if not getattr(request.user, "is_staff", False):
            raise ApplicationError(
                "Importing a directory from the server is for administrators; upload the "
                "zip of the directory as 'file' instead.",
                code="permission_denied",
                status_code=403,
            )
        data = DirectoryImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        src = import_path_check(data.validated_data["path"])
        job, _ = import_dir_start(project=project, user=request.user, path=src)  # type: ignore[arg-type]
        event_emit(
            "import.uploaded",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={"from": "server directory"},
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


class AnnotationUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="UTF-8 text in the chosen format")
    name = serializers.CharField(
        max_length=128, help_text="the track's name: letters, digits, '_' or '-'"
    )
    kind = serializers.ChoiceField(choices=["discrete", "scalar"])
    format = serializers.ChoiceField(
        choices=["lines", "tsv", "conllu"],
        help_text="lines: a value per line; tsv: token<TAB>value; conllu: one column",
    )
    column = serializers.CharField(
        required=False,
        help_text="conllu only: a column name (UPOS, XPOS, DEPREL...) or a 1-based index",
    )
    replace = serializers.BooleanField(
        default=False, help_text="replace a track of the same name instead of refusing"
    )


def _annotation_upload(request: Request, **target: Any) -> Response:
    upload_precheck(user=request.user, content_length=request.META.get("CONTENT_LENGTH"))  # type: ignore[arg-type]
    data = AnnotationUploadSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    job, _ = annotation_upload_start(
        user=request.user,  # type: ignore[arg-type]
        file=v["file"],
        name=v["name"],
        kind=v["kind"],
        fmt=v["format"],
        column=v.get("column"),
        replace=v["replace"],
        **target,
    )
    ((on_key, on),) = target.items()
    event_emit(
        "annotation.uploaded",
        user=request.user,
        project=on.project,
        object_id=job.id,
        summary={
            on_key: str(on.id),
            "track": v["name"],
            "track_kind": v["kind"],
            "format": v["format"],
            "bytes": v["file"].size,
        },
    )
    return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


_ANNOTATION_DOC = (
    "Upload a per-token annotation track (docs/api.md#annotation-uploads): a job "
    '(`annotation_upload`) whose result is `{"annotation": name}`. A name already '
    "there answers 409 unless `replace` is true."
)


class StateSetAnnotationsView(JobSubmissionThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": AnnotationUploadSerializer},
        responses={202: JobEnvelopeSerializer},
        description=_ANNOTATION_DOC,
    )
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id, need=Role.EDITOR)
        return _annotation_upload(request, stateset=ss)


class CorpusAnnotationsView(JobSubmissionThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": AnnotationUploadSerializer},
        responses={202: JobEnvelopeSerializer},
        description=_ANNOTATION_DOC + " Every later extraction from the corpus carries it.",
    )
    def post(self, request: Request, corpus_id: str) -> Response:
        corpus = corpus_for_user(request.user, corpus_id, need=Role.EDITOR)
        return _annotation_upload(request, corpus=corpus)


VALUE_KINDS = ["h", "c", "gates"]


class ExtractionRequestSerializer(serializers.Serializer[Any]):
    model = serializers.UUIDField()
    corpus = serializers.UUIDField()
    values = serializers.ListField(
        child=serializers.ChoiceField(choices=VALUE_KINDS),
        default=["h", "c"],
        allow_empty=False,
        max_length=len(VALUE_KINDS),
        help_text="what to keep per layer: h, c (LSTM only), gates (LSTM i f g o, GRU r z n)",
    )
    topk = serializers.IntegerField(
        min_value=0,
        max_value=100,
        required=False,
        help_text="top-k next-token predictions kept (default 5, or the vocabulary size if smaller)",
    )
    surprisal = serializers.BooleanField(
        default=True, help_text="keep each token's surprisal (-log p) as an annotation"
    )
    streams = serializers.IntegerField(
        min_value=1,
        max_value=4096,
        required=False,
        allow_null=True,
        help_text="parallel streams the corpus is cut into (the state is zero at each start)",
    )
    dtype = serializers.ChoiceField(
        choices=["float32", "float16"],
        default="float32",
        error_messages={
            "invalid_choice": "dtype must be float32 or float16 (half the disk), not {input!r}."
        },
        help_text="how the states are stored: float32, or float16 for half the disk "
        "(values rounded to float16; every view, export and match reads them as float32)",
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class ExtractionView(JobSubmissionThrottleMixin, APIView):
    @extend_schema(request=ExtractionRequestSerializer, responses={202: JobEnvelopeSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        data = ExtractionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        job, _ = extraction_start(
            project=project,
            user=request.user,  # type: ignore[arg-type]
            model=model_in_project(project, v["model"]),
            corpus=corpus_in_project(project, v["corpus"]),
            values=list(dict.fromkeys(v["values"])),
            topk=v.get("topk"),
            surprisal=v["surprisal"],
            streams=v.get("streams"),
            dtype=v["dtype"],
            name=v.get("name", ""),
        )
        event_emit(
            "extraction.started",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={
                "model": str(v["model"]),
                "corpus": str(v["corpus"]),
                "values": v["values"],
                "topk": v.get("topk"),
                "streams": v.get("streams"),
                "dtype": v["dtype"],
            },
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


class StateSetSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    project = serializers.CharField()
    corpus = serializers.CharField(allow_null=True)
    length = serializers.IntegerField()
    sources = serializers.ListField(child=serializers.DictField())
    annotations = serializers.ListField(child=serializers.DictField())
    stream_starts = serializers.ListField(child=serializers.IntegerField())
    indexes = serializers.DictField(
        help_text='which indexes exist: {"match": bool, "match_sources": {source id: bool}, '
        '"search": bool}; POST .../index/ builds the missing ones'
    )


class StateSetDetailView(APIView):
    @extend_schema(responses=StateSetSerializer)
    def get(self, request: Request, stateset_id: str) -> Response:
        return Response(stateset_describe(stateset_for_user(request.user, stateset_id)))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id, need=Role.EDITOR)
        stateset_delete(stateset=ss)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StateSetCorpusView(APIView):
    @extend_schema(
        request=None,
        responses={200: CorpusSerializer, 201: CorpusSerializer},
        description=(
            "The state set's text as a corpus of its project, to train on and extract "
            "from: an imported state set gets one made from its tokens and dictionary "
            "(201); a state set that has a corpus answers it (200)."
        ),
    )
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id, need=Role.EDITOR)
        corpus, created = stateset_corpus_ensure(ss, request.user)
        return Response(
            CorpusSerializer(corpus).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class StateSetIndexView(JobSubmissionThrottleMixin, APIView):
    @extend_schema(
        request=None,
        responses={202: JobEnvelopeSerializer},
        description="Build the indexes (match, phrase search) a state set lacks: a job.",
    )
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id, need=Role.EDITOR)
        job, _ = index_start(stateset=ss, user=request.user)  # type: ignore[arg-type]
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


MAX_CONTEXT_VALUES = 2_000_000


def _source_cells(ss: Any, source: str) -> int:
    for s in ss.manifest.get("sources", []):
        if s["id"] == source:
            return int(s["cells"])
    return 0  # unknown source: read_context says so


VALUES_PARAMETER = OpenApiParameter(
    "values",
    str,
    enum=["json", "f32"],
    description="f32: the answer packed as binary (docs/api.md, Context windows)",
)
CONTEXT_RESPONSES = {
    (200, "application/json"): OpenApiTypes.OBJECT,
    (200, WINDOW_MEDIA_TYPE): OpenApiResponse(
        OpenApiTypes.BINARY,
        description="values=f32: uint32 header length, JSON header, float32 cells x tokens",
    ),
}


class ContextView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, required=True),
            OpenApiParameter("start", int, required=True),
            OpenApiParameter("end", int, required=True, description="inclusive"),
            OpenApiParameter("cells", str, description="comma-separated cell indices"),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter("threshold", float),
            VALUES_PARAMETER,
        ],
        responses=CONTEXT_RESPONSES,
    )
    def get(self, request: Request, stateset_id: str) -> HttpResponseBase:
        ss = stateset_for_user(request.user, stateset_id)
        return context_response(request, context_answer(ss, request.query_params))


def context_response(request: Request, answer: dict[str, Any]) -> HttpResponseBase:
    """The window as JSON, or packed with float32 values when `values=f32`."""
    packing = request.query_params.get("values") or "json"
    if packing == "json":
        return Response(answer)
    if packing != "f32":
        raise ApplicationError(f"values must be json or f32, not {packing!r}.")
    return HttpResponse(window_packed(answer), content_type=WINDOW_MEDIA_TYPE)


def context_answer(ss: StateSet, q: Any, *, source: str | None = None) -> dict[str, Any]:
    """The context window a query string asks for (`source`, `start`, `end`, `cells`,
    `transform`, `threshold`), checked against the window limits; ``source`` fixes
    the source (the hypothesis route reads only the source it pins)."""
    from django.conf import settings

    source = source or q.get("source") or (ss.manifest.get("sources") or [{}])[0].get("id")
    start = int_param(q.get("start"), "start", 0)
    end = int_param(q.get("end"), "end", start + 99)
    if end < start:
        raise ApplicationError("end must not be before start.")
    if end - start + 1 > settings.STATELAB_CONTEXT_MAX_TOKENS:
        raise ApplicationError(
            f"A window holds at most {settings.STATELAB_CONTEXT_MAX_TOKENS} tokens."
        )
    cells = int_list(q.get("cells"), "cells") or None
    width = len(cells) if cells is not None else _source_cells(ss, str(source))
    if (end - start + 1) * width > MAX_CONTEXT_VALUES:
        raise ApplicationError(
            f"A window of {end - start + 1} tokens x {width} cells is more than "
            f"{MAX_CONTEXT_VALUES:,} values; ask for fewer cells or a shorter window."
        )
    return stateset_context(
        ss,
        str(source),
        start,
        end,
        cells=cells,
        transform=transform_param(q.get("transform")),
        threshold=float_param(q.get("threshold"), "threshold"),
        as_arrays=True,
    )


EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR,
        description="format=csv: `#` comment lines, then position,token,c<cell>...",
    ),
    (200, "application/octet-stream"): OpenApiResponse(
        OpenApiTypes.BINARY, description="format=npz: values, positions, tokens, cells, meta"
    ),
    (200, "application/x-hdf5"): OpenApiResponse(
        OpenApiTypes.BINARY, description="format=hdf5: the same datasets, metadata as attributes"
    ),
}


class StateSetExportView(APIView):
    """A slice of states as a file, pinned to its state set (docs/api.md, Exports)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        operation_id="statesets_export",
        parameters=[
            OpenApiParameter("source", str, required=True),
            OpenApiParameter("start", int, required=True),
            OpenApiParameter("end", int, required=True, description="inclusive"),
            OpenApiParameter("cells", str, description="comma-separated cell indices (all)"),
            OpenApiParameter("transform", str, enum=["tanh", "none"]),
            OpenApiParameter(
                "format", str, enum=["csv", "npz", "hdf5"], description="the file format (csv)"
            ),
        ],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request: Request, stateset_id: str) -> HttpResponseBase:
        ss = stateset_for_user(request.user, stateset_id)
        response = export_answer(ss, request.query_params)
        export_emit(request, ss.project, ss.id, "states")
        return response


def export_answer(
    ss: StateSet,
    q: Any,
    *,
    source: str | None = None,
    cells: list[int] | None = None,
    pin_extra: dict[str, Any] | None = None,
) -> HttpResponseBase:
    """The slice a query string asks for (`source`, `start`, `end`, `cells`,
    `transform`, `format`) as a download. ``source`` fixes the source and ``cells``
    is the default cell list (the hypothesis route: its pinned source and cells);
    ``pin_extra`` is written into the file beside the state set's pin."""
    fmt = export_format(q.get("format"))
    source = source or q.get("source")
    if not source:
        raise ApplicationError("The parameter 'source' is required.")
    download = stateset_export(
        ss,
        source=source,
        start=int_param(q.get("start"), "start"),
        end=int_param(q.get("end"), "end"),
        cells=int_list(q.get("cells"), "cells") or cells,
        transform=transform_param(q.get("transform")),
        fmt=fmt,
        pin_extra=pin_extra,
    )
    return download_response(download)


def export_emit(request: Request, project: Any, object_id: Any, what: str, **summary: Any) -> None:
    """The `export.downloaded` event of a download that is being answered: what was
    exported (states, hits, ranking, statistics) and in which format."""
    fmt = request.query_params.get("format") or "csv"
    event_emit(
        "export.downloaded",
        user=request.user,
        project=project,
        object_id=object_id,
        summary={"what": what, "format": str(fmt)[:10], **summary},
    )


class SelectionRequestSerializer(serializers.Serializer[Any]):
    source = serializers.CharField()  # type: ignore[assignment]
    start = serializers.IntegerField(min_value=0)
    end = serializers.IntegerField(min_value=0)
    # The same defaults as a match (POST .../matches/), so that a selection and
    # the match of its cells agree when neither names them.
    threshold = serializers.FloatField(default=0.3)
    zero_left = serializers.IntegerField(min_value=0, default=1)
    zero_right = serializers.IntegerField(min_value=0, default=0)
    transform = serializers.ChoiceField(choices=["tanh", "none"], required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError("end must not be before start.")
        return attrs


class SelectionResponseSerializer(serializers.Serializer[Any]):
    source = serializers.CharField()  # type: ignore[assignment]
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    threshold = serializers.FloatField()
    zero_left = serializers.IntegerField()
    zero_right = serializers.IntegerField()
    cells = serializers.ListField(child=serializers.IntegerField())


class SelectionView(APIView):
    @extend_schema(request=SelectionRequestSerializer, responses=SelectionResponseSerializer)
    def post(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id)
        answer = selection_answer(ss, request.data)
        selection_emit(request, ss, answer)
        return Response(answer)


def selection_answer(ss: StateSet, body: Any, *, source: str | None = None) -> dict[str, Any]:
    """The cells a request's hypothesis range selects; ``source`` fixes the source
    (the hypothesis routes read only the source they pin)."""
    data = SelectionRequestSerializer(data={**body, "source": source} if source else body)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    cells = stateset_selection(
        ss,
        v["source"],
        v["start"],
        v["end"],
        v["threshold"],
        zero_left=v["zero_left"],
        zero_right=v["zero_right"],
        transform=v.get("transform"),
    )
    keys = ("source", "start", "end", "threshold", "zero_left", "zero_right")
    return {**{k: v[k] for k in keys}, "cells": cells}


def selection_emit(request: Request, ss: StateSet, answer: dict[str, Any], **summary: Any) -> None:
    """The `selection.made` event of a selection answered: its range and the cells found."""
    event_emit(
        "selection.made",
        user=request.user,
        project=ss.project,
        object_id=ss.id,
        summary={
            "source": answer["source"],
            "tokens": answer["end"] - answer["start"] + 1,
            "threshold": answer["threshold"],
            "cells": len(answer["cells"]),
            **summary,
        },
    )


class SearchResponseSerializer(serializers.Serializer[Any]):
    q = serializers.CharField()
    tokens = serializers.ListField(child=serializers.CharField(trim_whitespace=False))
    positions = serializers.ListField(child=serializers.IntegerField())
    total = serializers.IntegerField(allow_null=True)


class SearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                str,
                required=True,
                description=(
                    "the phrase: words separated by whitespace, or for a character-level "
                    "corpus the characters as typed (spaces included)"
                ),
            ),
            OpenApiParameter("limit", int, description="at most this many positions (1-1000)"),
        ],
        responses=SearchResponseSerializer,
    )
    def get(self, request: Request, stateset_id: str) -> Response:
        ss = stateset_for_user(request.user, stateset_id)
        return Response(search_answer(ss, request.query_params))


def search_answer(ss: StateSet, params: Any) -> dict[str, Any]:
    """Exact phrase search (`q`, `limit`) over a state set's tokens."""
    q = params.get("q", "")
    if not q:
        raise ApplicationError("Give the phrase to search for as 'q'.")
    limit = min(max(int_param(params.get("limit"), "limit", 50), 1), 1000)
    searcher = stateset_searcher(ss)
    phrase = searcher.split(q)
    positions = searcher.search(phrase, limit)
    total = searcher.count(phrase) if len(positions) == limit else len(positions)
    return {"q": q, "tokens": phrase, "positions": [int(p) for p in positions], "total": total}
