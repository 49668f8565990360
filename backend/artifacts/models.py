"""Uploads (files waiting for or kept by their job), corpora and language models."""

import uuid

from django.conf import settings
from django.db import models


class Upload(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="uploads"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "lstmvis_zip", "text", "model_weights", "model_vocab", "model_config"
    kind = models.CharField(max_length=20)
    original_name = models.CharField(max_length=255, blank=True, default="")  # shown, never a path
    # relative to the store root, generated; emptied once its job has finished with it
    path = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.original_name}"


class Tokenization(models.TextChoices):
    WORD = "word"
    CHAR = "char"


class Corpus(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="corpora"
    )
    name = models.CharField(max_length=200)
    tokenization = models.CharField(max_length=10, choices=Tokenization.choices)
    length = models.BigIntegerField()
    vocab_size = models.IntegerField()
    documents = models.IntegerField()
    path = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "corpora"

    def __str__(self) -> str:
        return self.name


class ModelOrigin(models.TextChoices):
    UPLOAD = "upload"
    TRAINING = "training"


class LanguageModel(models.Model):
    """A recurrent language model in the store: a folder written by the core
    (`workers.core.modelfile`) holding checked weights, the spec and the vocabulary.
    The columns repeat what the list pages and the extraction form need."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="language_models"
    )
    name = models.CharField(max_length=200)
    spec = models.JSONField(default=dict)  # RNNSpec.to_json()
    rnn_type = models.CharField(max_length=20)
    layers = models.PositiveIntegerField()
    hidden_size = models.PositiveIntegerField()
    vocab_size = models.PositiveIntegerField()
    path = models.CharField(max_length=255)  # relative to the store root, generated
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    origin = models.CharField(max_length=10, choices=ModelOrigin.choices)
    training_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ResumableState(models.TextChoices):
    RECEIVING = "receiving"  # bytes are still coming (tus PATCH requests)
    DONE = "done"  # every byte arrived: the file became an `Upload` (and its job started)
    FAILED = "failed"  # every byte arrived but the upload was refused; `error` says why


class ResumableUpload(models.Model):
    """A file arriving in pieces over tus 1.0 (`services.resumable`): what was declared
    when it was created, how many bytes are stored so far, and where they wait. The
    row outlives the web process, so an upload resumes after a restart; once the last
    byte arrives the file becomes an `Upload` like a small one, and its job starts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="resumable_uploads"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20)  # "import", "corpus", "model", "model_vocab", ...
    filename = models.CharField(max_length=255, blank=True, default="")  # shown, never a path
    length = models.BigIntegerField()  # Upload-Length, checked against limits at creation
    offset = models.BigIntegerField(default=0)  # bytes stored and recorded
    metadata = models.JSONField(default=dict)  # the checked Upload-Metadata of its kind
    state = models.CharField(
        max_length=10, choices=ResumableState.choices, default=ResumableState.RECEIVING
    )
    # relative to the store root, generated; the partial file while receiving
    path = models.CharField(max_length=255, blank=True, default="")
    upload = models.ForeignKey(
        Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.filename} {self.offset}/{self.length}"
