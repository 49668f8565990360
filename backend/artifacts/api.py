"""Corpus routes: upload text (-> job), list and describe corpora."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.config.api import ApplicationError, JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.projects.models import Role
from backend.projects.selectors import project_for_user, require_role
from backend.states.selectors import corpus_for_user

from .models import Corpus, Tokenization
from .services import corpus_delete, corpus_upload_start, upload_precheck


class CorpusUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField()
    tokenization = serializers.ChoiceField(choices=Tokenization.choices, default=Tokenization.WORD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class CorpusSerializer(serializers.ModelSerializer[Corpus]):
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Corpus
        fields = [
            "id",
            "name",
            "project",
            "tokenization",
            "length",
            "vocab_size",
            "documents",
            "created_at",
        ]


class ProjectCorporaView(JobSubmissionThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=CorpusSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug)
        return Response(CorpusSerializer(Corpus.objects.filter(project=project), many=True).data)

    @extend_schema(
        request={"multipart/form-data": CorpusUploadSerializer},
        responses={202: JobEnvelopeSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        upload_precheck(user=request.user, content_length=request.META.get("CONTENT_LENGTH"))  # type: ignore[arg-type]
        if "file" not in request.FILES:
            raise ApplicationError("Attach the UTF-8 text as 'file'.")
        data = CorpusUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job, _ = corpus_upload_start(
            project=project,
            user=request.user,  # type: ignore[arg-type]
            file=data.validated_data["file"],
            tokenization=data.validated_data["tokenization"],
            name=data.validated_data.get("name", ""),
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


class CorpusDetailView(APIView):
    @extend_schema(responses=CorpusSerializer)
    def get(self, request: Request, corpus_id: str) -> Response:
        return Response(CorpusSerializer(corpus_for_user(request.user, corpus_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, corpus_id: str) -> Response:
        corpus = corpus_for_user(request.user, corpus_id)
        require_role(request.user, corpus.project, need=Role.EDITOR)
        corpus_delete(corpus=corpus)
        return Response(status=status.HTTP_204_NO_CONTENT)
