"""Corpus and model routes: upload text (-> job), upload a model (-> job that checks
and stores it), start a training run (-> job), list, describe and delete them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApplicationError
from backend.core.events import event_emit
from backend.core.throttles import JobSubmissionThrottleMixin
from backend.jobs.api import JobEnvelopeSerializer, job_envelope
from backend.projects.models import Role
from backend.projects.selectors import project_for_user

from .models import Corpus, LanguageModel, Tokenization
from .selectors import corpus_for_user, corpus_in_project, model_for_user
from .services import (
    corpus_delete,
    corpus_upload_start,
    model_delete,
    model_upload_start,
    training_start,
    upload_precheck,
)


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
        upload_precheck(
            user=request.user,  # type: ignore[arg-type]
            content_length=request.META.get("CONTENT_LENGTH"),
            project=project,
        )
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
        event_emit(
            "corpus.uploaded",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={
                "tokenization": data.validated_data["tokenization"],
                "bytes": data.validated_data["file"].size,
            },
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


class CorpusDetailView(APIView):
    @extend_schema(responses=CorpusSerializer)
    def get(self, request: Request, corpus_id: str) -> Response:
        return Response(CorpusSerializer(corpus_for_user(request.user, corpus_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, corpus_id: str) -> Response:
        corpus = corpus_for_user(request.user, corpus_id, need=Role.EDITOR)
        corpus_delete(corpus=corpus)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LanguageModelSerializer(serializers.ModelSerializer[LanguageModel]):
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    spec = serializers.DictField(
        read_only=True,
        help_text="rnn_type, vocab_size, embedding_size, hidden_size, layers, tied",
    )
    training_job = serializers.UUIDField(source="training_job_id", read_only=True, allow_null=True)

    class Meta:
        model = LanguageModel
        fields = [
            "id",
            "name",
            "project",
            "spec",
            "rnn_type",
            "layers",
            "hidden_size",
            "vocab_size",
            "size_bytes",
            "sha256",
            "origin",
            "training_job",
            "created_at",
        ]
        read_only_fields = fields


class ModelUploadSerializer(serializers.Serializer[Any]):
    weights = serializers.FileField(help_text="safetensors, or a state dict saved by torch.save")
    vocab = serializers.FileField(
        help_text="JSON list of tokens, one token per line, or an LSTMVis .dict file"
    )
    config = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=(
            "JSON object with rnn_type, vocab_size, embedding_size, hidden_size, layers, "
            "tied (text or an uploaded file); optional for the word-language-model layout"
        ),
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    rnn_type = serializers.ChoiceField(
        choices=["LSTM", "GRU", "RNN_TANH", "RNN_RELU"],
        required=False,
        help_text="Tells a GRU from an LSTM etc. when no config is given and the shapes allow both",
    )


class ProjectModelsView(JobSubmissionThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=LanguageModelSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug)
        models = LanguageModel.objects.filter(project=project)
        return Response(LanguageModelSerializer(models, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ModelUploadSerializer},
        responses={202: JobEnvelopeSerializer},
        description=(
            "Stores the files and answers 202 with a `model_upload` job, which checks "
            "the weights and stores the model; once it has succeeded, its "
            '`result` is `{"model": "<id>"}`. A refused model fails the job with a '
            "readable `error` and leaves nothing stored."
        ),
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        upload_precheck(
            user=request.user,  # type: ignore[arg-type]
            content_length=request.META.get("CONTENT_LENGTH"),
            project=project,
        )
        if "weights" not in request.FILES or "vocab" not in request.FILES:
            raise ApplicationError(
                "Attach the weights as 'weights' and the vocabulary as 'vocab' "
                "(the config is optional)."
            )
        config: Any = request.FILES.get("config")
        if config is None:
            config = request.data.get("config")
        data = ModelUploadSerializer(data={k: v for k, v in request.data.items() if k != "config"})
        data.is_valid(raise_exception=True)
        job, _ = model_upload_start(
            project=project,
            user=request.user,  # type: ignore[arg-type]
            weights=data.validated_data["weights"],
            vocab=data.validated_data["vocab"],
            config=config,
            name=data.validated_data.get("name", ""),
            rnn_type=data.validated_data.get("rnn_type"),
        )
        event_emit(
            "model.uploaded",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={
                "bytes": data.validated_data["weights"].size,
                "rnn_type": data.validated_data.get("rnn_type"),
            },
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)


class ModelDetailView(APIView):
    @extend_schema(responses=LanguageModelSerializer)
    def get(self, request: Request, model_id: str) -> Response:
        return Response(LanguageModelSerializer(model_for_user(request.user, model_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, model_id: str) -> Response:
        model = model_for_user(request.user, model_id, need=Role.EDITOR)
        model_delete(model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrainingRequestSerializer(serializers.Serializer[Any]):
    corpus = serializers.UUIDField()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    rnn_type = serializers.ChoiceField(
        choices=["LSTM", "GRU", "RNN_TANH", "RNN_RELU"], default="LSTM"
    )
    layers = serializers.IntegerField(min_value=1, max_value=8, required=False)
    hidden_size = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    embedding_size = serializers.IntegerField(
        min_value=1, max_value=4096, required=False, allow_null=True
    )
    epochs = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    learning_rate = serializers.FloatField(min_value=1e-7, max_value=10.0, required=False)
    seq_len = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    tied = serializers.BooleanField(required=False)


class TrainingView(JobSubmissionThrottleMixin, APIView):
    @extend_schema(request=TrainingRequestSerializer, responses={202: JobEnvelopeSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for_user(request.user, slug, need=Role.EDITOR)
        data = TrainingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        corpus = corpus_in_project(project, v.pop("corpus"))
        name = v.pop("name", "")
        job, _ = training_start(
            project=project,
            user=request.user,  # type: ignore[arg-type]
            corpus=corpus,
            name=name,
            params=v,
        )
        event_emit(
            "training.started",
            user=request.user,
            project=project,
            object_id=job.id,
            summary={"corpus": str(corpus.id), **v},
        )
        return Response(job_envelope(job), status=status.HTTP_202_ACCEPTED)
