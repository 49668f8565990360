"""Resumable upload routes: a tus 1.0 server (core protocol with the creation,
termination, expiration and checksum extensions) and a JSON view of one upload.

`POST /api/projects/{slug}/uploads/` creates an upload (tus creation: Upload-Length,
Upload-Metadata with `kind` and the kind's keys; docs/api.md "Resumable uploads");
`/api/uploads/{id}/` answers HEAD (offset), PATCH (append bytes), DELETE
(termination) and GET (JSON: state, offset, length, job). Authentication is the
API's own (token, or the session with its CSRF token). The protocol's routes carry
headers and raw bytes, not JSON, so they stay out of the OpenAPI schema; the JSON
GET is in it.

The PATCH body is never parsed by DRF: the service reads it from `request.stream`
in 1 MiB pieces straight into the partial file.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.http import http_date
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError, error_body
from backend.core.events import event_emit
from backend.core.quota import user_limits
from backend.jobs.api import JobSerializer
from backend.projects.models import Role
from backend.projects.selectors import project_for_user

from .models import ResumableState, ResumableUpload
from .selectors import resumable_for_user
from .services import (
    TUS_CHECKSUMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    metadata_encode,
    metadata_parse,
    resumable_create,
    resumable_delete,
    resumable_offset,
    resumable_write,
)

OFFSET_TYPE = "application/offset+octet-stream"
# The research event a finished upload records, as its small twin does.
EVENTS = {"import": "import.uploaded", "corpus": "corpus.uploaded", "model": "model.uploaded"}


class ResumableUploadSerializer(serializers.ModelSerializer[ResumableUpload]):
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    job = JobSerializer(read_only=True, allow_null=True, help_text="the job it started, once done")
    url = serializers.SerializerMethodField(help_text="the tus URL of the upload")

    class Meta:
        model = ResumableUpload
        fields = [
            "id",
            "url",
            "project",
            "kind",
            "filename",
            "length",
            "offset",
            "state",
            "metadata",
            "error",
            "job",
            "created_at",
            "expires_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: ResumableUpload) -> str:
        return reverse("upload-detail", kwargs={"upload_id": obj.id})


def _tus_check(request: Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApplicationError(
            f"This server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'.",
            code="tus_version",
            status_code=status.HTTP_412_PRECONDITION_FAILED,
        )


def _tus_options(request: Request) -> Response:
    response = Response(status=status.HTTP_204_NO_CONTENT)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = ",".join(TUS_EXTENSIONS)
    response["Tus-Checksum-Algorithm"] = ",".join(TUS_CHECKSUMS)
    response["Tus-Max-Size"] = str(user_limits(request.user).upload_bytes)
    return response


class TusView(APIView):
    """Every answer says the protocol's version; a 412 also lists the versions spoken."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        if response.status_code == status.HTTP_412_PRECONDITION_FAILED:
            response["Tus-Version"] = TUS_VERSION
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(exclude=True)
    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return _tus_options(request)


class ProjectUploadsView(TusView):
    @extend_schema(exclude=True)
    def post(self, request: Request, slug: str) -> Response:
        """tus creation: an upload of Upload-Length bytes, its kind and its keys in
        Upload-Metadata; 201 with its URL in Location."""
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        _tus_check(request)
        row = resumable_create(
            project=project,
            user=request.user,  # type: ignore[arg-type]
            length=request.headers.get("Upload-Length"),
            defer_length=request.headers.get("Upload-Defer-Length"),
            metadata=metadata_parse(request.headers.get("Upload-Metadata")),
        )
        response = Response(ResumableUploadSerializer(row).data, status=status.HTTP_201_CREATED)
        response["Location"] = reverse("upload-detail", kwargs={"upload_id": row.id})
        response["Upload-Expires"] = http_date(row.expires_at.timestamp())
        response["Upload-Offset"] = "0"
        return response


def _offset_headers(response: Response, row: ResumableUpload, offset: int) -> Response:
    response["Upload-Offset"] = str(offset)
    response["Upload-Length"] = str(row.length)
    if row.state == ResumableState.RECEIVING:
        response["Upload-Expires"] = http_date(row.expires_at.timestamp())
    if row.job_id is not None:
        response["Statelab-Job"] = str(row.job_id)
    response["Statelab-Upload-State"] = str(row.state)
    return response


class UploadDetailView(TusView):
    @extend_schema(
        responses=ResumableUploadSerializer,
        description="A resumable upload of the caller's (docs/api.md, 'Resumable uploads'): "
        "how far it is, and once every byte has arrived, the job it started.",
    )
    def get(self, request: Request, upload_id: str) -> Response:
        row = resumable_for_user(request.user, upload_id)
        offset = resumable_offset(row)
        return _offset_headers(Response(ResumableUploadSerializer(row).data), row, offset)

    @extend_schema(exclude=True)
    def head(self, request: Request, upload_id: str) -> Response:
        row = resumable_for_user(request.user, upload_id)
        _tus_check(request)
        response = _offset_headers(Response(status=status.HTTP_200_OK), row, resumable_offset(row))
        if row.metadata or row.filename:
            response["Upload-Metadata"] = metadata_encode(
                {"kind": row.kind, "filename": row.filename}
            )
        return response

    @extend_schema(exclude=True)
    def patch(self, request: Request, upload_id: str) -> Response:
        row = resumable_for_user(request.user, upload_id)
        _tus_check(request)
        media = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if media != OFFSET_TYPE:
            raise ApplicationError(
                f"Send the bytes as {OFFSET_TYPE}.",
                code="unsupported_media_type",
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not raw_length.strip().isdigit():
            raise ApplicationError(
                "Send the body with a Content-Length.",
                code="length_required",
                status_code=status.HTTP_411_LENGTH_REQUIRED,
            )
        length = int(raw_length)
        was = row.state
        outcome = resumable_write(
            row=row,
            offset=request.headers.get("Upload-Offset"),
            stream=request.stream if length else None,
            content_length=length,
            checksum=request.headers.get("Upload-Checksum"),
        )
        row = outcome.upload
        if not outcome.complete_body:
            body = error_body(
                "incomplete_body",
                f"The body ended after {outcome.written:,} of {length:,} bytes; those "
                "were kept: send the rest from Upload-Offset.",
            )
            return _offset_headers(Response(body, status=400), row, row.offset)
        if was == ResumableState.RECEIVING and row.state == ResumableState.DONE:
            self._finished(request, row)
        return _offset_headers(Response(status=status.HTTP_204_NO_CONTENT), row, row.offset)

    @extend_schema(exclude=True)
    def delete(self, request: Request, upload_id: str) -> Response:
        row = resumable_for_user(request.user, upload_id)
        _tus_check(request)
        resumable_delete(row=row)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _finished(self, request: Request, row: ResumableUpload) -> None:
        event = EVENTS.get(row.kind)
        if event is None or row.job_id is None:
            return
        summary: dict[str, Any] = {"bytes": row.length, "resumable": True}
        if row.kind == "corpus":
            summary["tokenization"] = row.metadata.get("tokenization")
        if row.kind == "model":
            summary["rnn_type"] = row.metadata.get("rnn_type") or None
        event_emit(
            event, user=request.user, project=row.project, object_id=row.job_id, summary=summary
        )
