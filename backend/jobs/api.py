"""Job status and cancel: `GET /api/jobs/{id}/`, `POST /api/jobs/{id}/cancel/`, per-project lists."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.projects.models import Role
from backend.projects.selectors import project_for_user, require_role

from .models import Job
from .selectors import job_for_user
from .services import job_cancel


class JobSerializer(serializers.ModelSerializer[Job]):
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    detail = serializers.DictField(
        read_only=True,
        help_text=(
            "What a running job shows besides its progress. A training job keeps "
            '`{"curve": [{"step", "epoch", "tokens", "loss", "perplexity", "split"}, ...]}` '
            "here, thinned to at most a few thousand points."
        ),
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "project",
            "created_by",
            "status",
            "progress",
            "message",
            "error",
            "result",
            "detail",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
        ]
        read_only_fields = fields


class JobEnvelopeSerializer(serializers.Serializer[Any]):
    job = JobSerializer()


def job_envelope(job: Job) -> dict[str, Any]:
    return {"job": JobSerializer(job).data}


class JobDetailView(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobSerializer(job_for_user(request.user, job_id)).data)


class JobCancelView(APIView):
    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, job_id: str) -> Response:
        job = job_for_user(request.user, job_id)
        if job.created_by_id != request.user.pk:  # one's own job may always be cancelled
            require_role(request.user, job.project, need=Role.EDITOR)
        return Response(JobSerializer(job_cancel(job=job)).data)


class ProjectJobsView(APIView):
    @extend_schema(responses=JobSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug)
        jobs = Job.objects.filter(project=project).select_related("project", "created_by")[:200]
        return Response(JobSerializer(jobs, many=True).data)
