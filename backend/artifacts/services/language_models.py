"""Writes for language models: upload (stored by the request, checked by a job),
storing checked files, deletion.

The upload route (`model_upload_start`) does only what is cheap in the web process:
sizes, quota, the vocabulary's and config's size limits and the config's JSON. It
stores the files as uploads and queues a `model_upload` job (cpu queue), whose work
function (`model_upload_run`) reads the weights with the compute core -- torch is
imported there, never in the web process -- and records the model together with the
job's success. A refused model leaves no row and no file: the checker writes nothing
until everything is checked, and the uploads go when the job ends.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import storage_check, upload_check, user_limits
from backend.core.storage import (
    iter_chunks,
    new_dir,
    store_delete_on_commit,
    store_path,
    store_root,
)
from backend.jobs.models import Job
from backend.jobs.services import job_record
from backend.projects.models import Project
from workers.core.errors import InputError, ProgressFn

from ..models import LanguageModel, ModelOrigin, Upload
from .common import input_refusal
from .uploads import MAIN_UPLOAD, consuming_uploads, upload_job_start, upload_store, uploads_drop

if TYPE_CHECKING:
    from workers.core.modelfile import ModelInfo

MODEL_VOCAB_MAX_BYTES = 64 << 20
MODEL_CONFIG_MAX_BYTES = 1 << 20


def _too_large(what: str, limit: int) -> ApplicationError:
    return ApplicationError(
        f"The {what} is larger than the limit of {limit // (1 << 20)} MB.",
        code="too_large",
        status_code=413,
    )


def _read_small(file: Any, limit: int, what: str) -> bytes:
    declared = getattr(file, "size", None)
    if declared is not None and int(declared) > limit:
        raise _too_large(what, limit)
    data = b"".join(iter_chunks(file))
    if len(data) > limit:
        raise _too_large(what, limit)
    return bytes(data)


def model_config_parse(config: Any) -> dict[str, Any] | None:
    """The optional model config of an upload: JSON text or an uploaded JSON file."""
    if config is None:
        return None
    raw = (
        config
        if isinstance(config, str | bytes)
        else _read_small(config, MODEL_CONFIG_MAX_BYTES, "model config")
    )
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApplicationError("The model config must be UTF-8 JSON text.") from exc
    if not raw.strip():
        return None
    if len(raw) > MODEL_CONFIG_MAX_BYTES:
        raise ApplicationError("The model config is too long for a config.", code="too_large")
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ApplicationError(
            f"The model config is not valid JSON ({exc}); give an object such as "
            '{"rnn_type": "LSTM", "vocab_size": 50, "embedding_size": 64, '
            '"hidden_size": 64, "layers": 2}.'
        ) from exc
    if not isinstance(parsed, dict):
        raise ApplicationError("The model config must be a JSON object.")
    return parsed


def model_upload_start(
    *,
    project: Project,
    user: User | None,
    weights: Any,
    vocab: Any,
    config: Any = None,
    name: str = "",
    rnn_type: str | None = None,
) -> tuple[Job, bool]:
    """The upload route: store the uploaded files and queue the `model_upload` job
    that checks them and stores the model. Returns (job, created).

    Sizes, the quota, the vocabulary's presence and the config's JSON are checked
    before anything is stored. Identical uploads while the first one's job is active
    share its job (and the second copy of the files is dropped).
    """
    declared = int(getattr(weights, "size", 0) or 0)
    upload_check(user, declared, what="weights file")
    storage_check(user, declared + int(getattr(vocab, "size", 0) or 0), project=project)
    vocab_bytes = _read_small(vocab, MODEL_VOCAB_MAX_BYTES, "vocabulary file")
    if not vocab_bytes:
        raise ApplicationError("The vocabulary file is empty.", code="empty_upload")
    parsed_config = model_config_parse(config)
    weights_name = Path(str(getattr(weights, "name", "") or "weights")).name[:255]
    vocab_name = Path(str(getattr(vocab, "name", "") or "vocab.txt")).name[:255]
    display = (name.strip() or Path(weights_name).stem or "model")[:200]

    stored: list[Upload] = []
    try:
        weights_upload = upload_store(
            project=project,
            user=user,
            kind="model_weights",
            file=weights,
            suffix=".weights",
            what="weights file",
        )
        stored.append(weights_upload)
        vocab_upload = upload_store(
            project=project,
            user=user,
            kind="model_vocab",
            file=ContentFile(vocab_bytes, name=vocab_name),
            suffix=".vocab",
            what="vocabulary file",
        )
        stored.append(vocab_upload)
        also = {"vocab": vocab_upload}
        if parsed_config is not None:
            config_upload = upload_store(
                project=project,
                user=user,
                kind="model_config",
                file=ContentFile(json.dumps(parsed_config).encode(), name="config.json"),
                suffix=".json",
                what="model config",
            )
            stored.append(config_upload)
            also["config"] = config_upload
    except BaseException:
        uploads_drop(stored)
        raise
    return model_job_start(
        project=project,
        user=user,
        weights=weights_upload,
        vocab=vocab_upload,
        config=also.get("config"),
        name=display,
        rnn_type=rnn_type,
    )


def model_job_start(
    *,
    project: Project,
    user: User | None,
    weights: Upload,
    vocab: Upload,
    config: Upload | None = None,
    name: str = "",
    rnn_type: str | None = None,
) -> tuple[Job, bool]:
    """Queue the `model_upload` job of stored files (a small upload's or resumable
    ones'): weights, vocabulary and an optional config. Identical active uploads share
    a job (and the second copy of the files is dropped)."""
    display = (name.strip() or Path(weights.original_name).stem or "model")[:200]
    also = {"vocab": vocab, **({"config": config} if config is not None else {})}
    stored = [weights, *also.values()]
    key = hashlib.sha256(
        json.dumps([[u.sha256 for u in stored], display, rnn_type or ""]).encode()
    ).hexdigest()
    return upload_job_start(
        kind="model_upload",
        project=project,
        user=user,
        upload=weights,
        also=also,
        params={"name": display, "rnn_type": rnn_type or ""},
        dedupe_key=key,
    )


def model_files_check(
    *,
    user: User | None,
    final: Path,
    weights: Path,
    vocab_bytes: bytes,
    vocab_filename: str,
    config: dict[str, Any] | None,
    rnn_type: str | None,
    weights_filename: str | None,
) -> ModelInfo:
    """Check a model (weights file, vocabulary, optional config) and write it to
    `final`. Worker side: the compute core imports torch. The weights may be as large
    as `user`'s limit for one upload. A refusal is an ApplicationError with the core's
    message and leaves nothing at `final`."""
    from workers.core.modelfile import model_upload

    try:
        return model_upload(
            weights,
            config,
            vocab_bytes,
            vocab_filename,
            final,
            max_bytes=user_limits(user).upload_bytes,
            rnn_type_hint=rnn_type or None,
            weights_filename=weights_filename,
        )
    except InputError as exc:
        shutil.rmtree(final, ignore_errors=True)
        raise input_refusal(exc) from exc
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def model_row_create(
    *, project: Project, user: User | None, rel: str, info: ModelInfo, name: str
) -> LanguageModel:
    """The row of an uploaded model whose checked files are at `rel`."""
    spec = info.spec.to_json()
    return LanguageModel.objects.create(
        project=project,
        name=name[:200],
        spec=spec,
        rnn_type=spec["rnn_type"],
        layers=spec["layers"],
        hidden_size=spec["hidden_size"],
        vocab_size=info.vocab_size,
        path=rel,
        size_bytes=info.size_bytes,
        sha256=info.sha256,
        origin=ModelOrigin.UPLOAD,
        created_by=user,
    )


def model_job_result(model: LanguageModel) -> dict[str, str]:
    """The `result` of a job that made a model (an upload or a training run)."""
    return {"model": str(model.id)}


def model_store_from_files(
    *,
    project: Project,
    user: User | None,
    weights: Path,
    vocab_bytes: bytes,
    vocab_filename: str,
    config: dict[str, Any] | None = None,
    name: str = "",
    rnn_type: str | None = None,
    weights_filename: str | None = None,
) -> LanguageModel:
    """Check a model (weights file on disk, vocabulary, optional config) and store it,
    at once. Worker side (it imports torch): for scripts, the demo and tests; the upload
    route goes through a job instead.

    Everything is checked before anything is kept: a refused model leaves no row
    and no file.
    """
    storage_check(user, weights.stat().st_size + len(vocab_bytes), project=project)
    rel, final = new_dir("models")
    info = model_files_check(
        user=user,
        final=final,
        weights=weights,
        vocab_bytes=vocab_bytes,
        vocab_filename=vocab_filename,
        config=config,
        rnn_type=rnn_type,
        weights_filename=weights_filename,
    )
    try:
        storage_check(user, info.size_bytes, project=project)
        display = name.strip() or Path(weights_filename or "").stem or "model"
        return model_row_create(project=project, user=user, rel=rel, info=info, name=display)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def _stored_message(info: ModelInfo) -> str:
    spec = info.spec
    layers = f"{spec.layers} layer{'s' if spec.layers != 1 else ''}"
    return f"Stored the {spec.rnn_type} model: {layers} of {spec.hidden_size} cells"


@consuming_uploads
def model_upload_run(job: Job, uploads: dict[str, Upload], progress: ProgressFn) -> dict[str, str]:
    """The model_upload job: check the uploaded files, store the model, record its row
    together with the job's success. Its result names the model: {"model": id}."""
    weights = uploads[MAIN_UPLOAD]
    vocab = uploads["vocab"]
    config_upload = uploads.get("config")
    config = (
        json.loads(store_path(config_upload.path).read_text("utf-8"))
        if config_upload is not None
        else None
    )
    (store_root() / "models").mkdir(parents=True, exist_ok=True)
    rel = f"models/{job.id.hex}"  # one folder per job: a restarted job replaces it
    final = store_root() / rel
    if final.exists():
        shutil.rmtree(final)  # a previous attempt finished writing but was not recorded
    progress(0.1, "Checking the weights.")
    info = model_files_check(
        user=job.created_by,
        final=final,
        weights=store_path(weights.path),
        vocab_bytes=store_path(vocab.path).read_bytes(),
        vocab_filename=vocab.original_name or "vocab.txt",
        config=config,
        rnn_type=job.params.get("rnn_type") or None,
        weights_filename=weights.original_name or "weights",
    )
    try:
        # The uploads count against the quota until the job ends and they go.
        storage_check(
            job.created_by,
            info.size_bytes - sum(u.size for u in uploads.values()),
            project=job.project,
        )
        with transaction.atomic():
            model = model_row_create(
                project=job.project,
                user=job.created_by,
                rel=rel,
                info=info,
                name=job.params["name"],
            )
            result = model_job_result(model)
            job_record(job=job, result=result, message=_stored_message(info), what="model")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return result


@transaction.atomic
def model_delete(*, model: LanguageModel) -> None:
    """Delete a model row now and its folder once the deletion has committed.
    State sets extracted with it stay: they hold their own values."""
    model.delete()
    store_delete_on_commit(model.path)
