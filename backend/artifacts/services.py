"""Writes for artefacts: storing uploads, building corpora from text, storing and
training language models."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check, storage_remaining
from backend.core.storage import iter_chunks, new_dir, save_stream, store_path, store_root
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_detail_set, job_succeed
from backend.projects.models import Project
from workers.core.errors import Cancelled, InputError, ProgressFn

from .models import Corpus, LanguageModel, ModelOrigin, Tokenization, Upload


def upload_discard(upload: Upload) -> None:
    """Remove an upload's file once its job is done with it (the row stays as a record)."""
    if upload.path:
        store_path(upload.path).unlink(missing_ok=True)
        Upload.objects.filter(id=upload.id).update(path="")


def upload_precheck(*, user: User | None, content_length: str | None) -> None:
    """Refuse an upload by its declared size before its body is read or stored."""
    try:
        declared = int(content_length or 0)
    except ValueError:
        declared = 0
    cap = int(settings.STATELAB_UPLOAD_MAX_BYTES)
    if declared > cap + (1 << 20):  # the multipart envelope adds a little
        raise ApplicationError(
            f"The upload is larger than the limit of {cap // (1 << 20)} MB.",
            code="too_large",
            status_code=413,
        )
    if declared:
        storage_check(user, max(declared - (1 << 20), 0))


def upload_store(
    *, project: Project, user: User | None, kind: str, file: Any, suffix: str
) -> Upload:
    """Copy an uploaded file into the store (capped in size and by quota) and record it."""
    declared = getattr(file, "size", None)
    if declared:
        storage_check(user, int(declared))
    cap = min(int(settings.STATELAB_UPLOAD_MAX_BYTES), storage_remaining(user) or 1)
    try:
        rel, size, sha = save_stream(file, suffix=suffix, max_bytes=cap)
    except ApplicationError as exc:
        if exc.code == "too_large" and cap < settings.STATELAB_UPLOAD_MAX_BYTES:
            storage_check(user, cap + 1)  # say it in terms of the quota
        raise
    if size == 0:
        store_path(rel).unlink(missing_ok=True)
        raise ApplicationError("The uploaded file is empty.", code="empty_upload")
    name = Path(str(getattr(file, "name", "") or "")).name[:255]
    return Upload.objects.create(
        project=project,
        created_by=user,
        kind=kind,
        original_name=name,
        path=rel,
        size=size,
        sha256=sha,
    )


def corpus_upload_start(
    *, project: Project, user: User, file: Any, tokenization: str, name: str = ""
) -> tuple[Job, bool]:
    if tokenization not in Tokenization.values:
        raise ApplicationError("tokenization must be 'word' or 'char'.")
    upload = upload_store(project=project, user=user, kind="text", file=file, suffix=".txt")
    display = name or Path(upload.original_name).stem or "corpus"
    return upload_job_start(
        kind="corpus_upload",
        project=project,
        user=user,
        upload=upload,
        params={"tokenization": tokenization, "name": display},
        dedupe_key=f"{upload.sha256}:{tokenization}:{display}",
    )


def upload_job_start(
    *,
    kind: str,
    project: Project,
    user: User | None,
    upload: Upload,
    params: dict[str, Any],
    dedupe_key: str,
) -> tuple[Job, bool]:
    """Queue the job that consumes `upload`; an identical active job takes its place
    (and this second copy of the file is dropped)."""
    try:
        job, created = job_create(
            kind=kind,
            project=project,
            user=user,
            params={"upload": str(upload.id), **params},
            dedupe_key=dedupe_key,
        )
    except ApplicationError:
        upload_discard(upload)
        upload.delete()
        raise
    if not created:
        store_path(upload.path).unlink(missing_ok=True)
        upload.delete()
    return job, created


UploadWorkFn = Callable[[Job, Upload, ProgressFn], dict[str, str]]


def consuming_upload(work: UploadWorkFn) -> Callable[[Job, ProgressFn], dict[str, str]]:
    """A job's work function that reads the job's upload, which is removed once the
    job ends (succeeded, failed or cancelled) so a file is never stored twice."""

    def run(job: Job, progress: ProgressFn) -> dict[str, str]:
        upload = Upload.objects.get(id=job.params["upload"])
        try:
            if not upload.path:
                raise ApplicationError("The uploaded file is gone; upload it again.")
            return work(job, upload, progress)
        finally:
            upload_discard(upload)

    return run


@consuming_upload
def corpus_build(job: Job, upload: Upload, progress: ProgressFn) -> dict[str, str]:
    """The corpus_upload job: decode, tokenise, write the corpus folder, record the row."""
    from workers.core.corpus import decode_upload, tokenize_text
    from workers.core.store import write_corpus

    progress(0.05, "Reading the text")
    text = decode_upload(store_path(upload.path).read_bytes())
    progress(0.3, "Tokenising")
    ids, vocab, doc_starts = tokenize_text(text, job.params["tokenization"])
    rel, final = new_dir("corpora")
    progress(0.7, f"Writing {len(ids):,} tokens")
    write_corpus(
        final,
        ids,
        vocab,
        doc_starts,
        {"name": job.params["name"], "tokenization": job.params["tokenization"]},
    )
    try:
        size = dir_size(final)
        storage_check(job.created_by, size - upload.size)
        with transaction.atomic():
            corpus = Corpus.objects.create(
                size_bytes=size,
                project=job.project,
                name=job.params["name"],
                tokenization=job.params["tokenization"],
                length=len(ids),
                vocab_size=len(vocab),
                documents=len(doc_starts),
                path=rel,
                created_by=job.created_by,
            )
            result = {"corpus": str(corpus.id)}
            if not job_succeed(job=job, result=result, message=f"{len(ids):,} tokens"):
                raise Cancelled("cancelled before the corpus was recorded")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return result


@transaction.atomic
def corpus_delete(*, corpus: Corpus) -> None:
    """Delete a corpus row now and its folder once the deletion has committed."""
    path = store_path(corpus.path)
    corpus.delete()
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


# --------------------------------------------------------------------------- #
# Language models: upload (checked in the request, stored at once), training
# (a job on the gpu queue), deletion.
# --------------------------------------------------------------------------- #

MODEL_VOCAB_MAX_BYTES = 64 << 20
MODEL_CONFIG_MAX_BYTES = 1 << 20
# A training job keeps at most this many curve points on its row: validation points
# all, training points thinned evenly once there are more.
CURVE_MAX_POINTS = 2000
CURVE_FLUSH_S = 0.5


def compute_device() -> str:
    """Where a worker runs a model: the GPU when this worker has one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _input_error(exc: InputError, code: str = "invalid_model") -> ApplicationError:
    return ApplicationError(str(exc), code=code)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Check a model (weights file on disk, vocabulary, optional config) and store it.

    Everything is checked before anything is kept: a refused model leaves no row
    and no file. For scripts and set-up code as well as for the upload route.
    """
    from workers.core.modelfile import model_upload

    storage_check(user, weights.stat().st_size + len(vocab_bytes))
    rel, final = new_dir("models")
    try:
        info = model_upload(
            weights,
            config,
            vocab_bytes,
            vocab_filename,
            final,
            max_bytes=int(settings.STATELAB_UPLOAD_MAX_BYTES),
            rnn_type_hint=rnn_type or None,
            weights_filename=weights_filename,
        )
    except InputError as exc:
        shutil.rmtree(final, ignore_errors=True)
        raise _input_error(exc) from exc
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    try:
        storage_check(user, info.size_bytes)
        spec = info.spec.to_json()
        display = name.strip() or Path(weights_filename or "").stem or "model"
        return LanguageModel.objects.create(
            project=project,
            name=display[:200],
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
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def _read_small(file: Any, limit: int, what: str) -> bytes:
    declared = getattr(file, "size", None)
    if declared is not None and int(declared) > limit:
        raise ApplicationError(
            f"The {what} is larger than the limit of {limit // (1 << 20)} MB.",
            code="too_large",
            status_code=413,
        )
    data = b"".join(iter_chunks(file))
    if len(data) > limit:
        raise ApplicationError(
            f"The {what} is larger than the limit of {limit // (1 << 20)} MB.",
            code="too_large",
            status_code=413,
        )
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


def model_upload_store(
    *,
    project: Project,
    user: User | None,
    weights: Any,
    vocab: Any,
    config: Any = None,
    name: str = "",
    rnn_type: str | None = None,
) -> LanguageModel:
    """The upload route: uploaded files in, a checked and stored model out.

    Sizes and the quota are checked first; the weights are spooled to a temporary
    file under the store (read back by the checker), which is removed whatever happens.
    """
    cap = int(settings.STATELAB_UPLOAD_MAX_BYTES)
    declared = int(getattr(weights, "size", 0) or 0)
    if declared > cap:
        raise ApplicationError(
            f"The weights file is larger than the limit of {cap // (1 << 20)} MB.",
            code="too_large",
            status_code=413,
        )
    storage_check(user, declared + int(getattr(vocab, "size", 0) or 0))
    vocab_bytes = _read_small(vocab, MODEL_VOCAB_MAX_BYTES, "vocabulary file")
    if not vocab_bytes:
        raise ApplicationError("The vocabulary file is empty.", code="empty_upload")
    parsed_config = model_config_parse(config)
    (store_root() / "tmp").mkdir(parents=True, exist_ok=True)
    spool = store_root() / "tmp" / f".tmp-model-{uuid.uuid4().hex}"
    try:
        spool.mkdir()
        weights_path = spool / "weights"
        size = 0
        with open(weights_path, "wb") as out:
            for chunk in iter_chunks(weights):
                size += len(chunk)
                if size > cap:
                    raise ApplicationError(
                        f"The weights file is larger than the limit of {cap // (1 << 20)} MB.",
                        code="too_large",
                        status_code=413,
                    )
                out.write(chunk)
        if size == 0:
            raise ApplicationError("The weights file is empty.", code="empty_upload")
        weights_name = Path(str(getattr(weights, "name", "") or "weights")).name[:255]
        vocab_name = Path(str(getattr(vocab, "name", "") or "vocab.txt")).name[:255]
        return model_store_from_files(
            project=project,
            user=user,
            weights=weights_path,
            vocab_bytes=vocab_bytes,
            vocab_filename=vocab_name,
            config=parsed_config,
            name=name,
            rnn_type=rnn_type,
            weights_filename=weights_name,
        )
    finally:
        shutil.rmtree(spool, ignore_errors=True)


@transaction.atomic
def model_delete(*, model: LanguageModel) -> None:
    """Delete a model row now and its folder once the deletion has committed.
    State sets extracted with it stay: they hold their own values."""
    path = store_path(model.path)
    model.delete()
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


TRAIN_FIELDS = (
    "rnn_type",
    "layers",
    "hidden_size",
    "embedding_size",
    "epochs",
    "learning_rate",
    "seq_len",
    "batch_size",
    "seed",
    "tied",
)


def training_start(
    *,
    project: Project,
    user: User | None,
    corpus: Corpus,
    name: str = "",
    params: dict[str, Any] | None = None,
) -> tuple[Job, bool]:
    """Queue a training run on `corpus` (job kind "train", gpu queue). `params` are
    TrainParams fields; anything left out takes its default. Identical active
    requests share one job."""
    from workers.core.train import TrainParams

    if corpus.project_id != project.id:
        raise ApplicationError(
            f"The corpus '{corpus.name}' is not in project '{project.slug}'.",
            code="unknown_corpus",
        )
    given = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(given) - set(TRAIN_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown training parameters: {', '.join(unknown)}.")
    try:
        train_params = TrainParams(**given)
    except InputError as exc:
        raise _input_error(exc, code="invalid") from exc
    settings_json = train_params.to_json()
    display = (name.strip() or f"{train_params.rnn_type} on {corpus.name}")[:200]
    key = hashlib.sha256(
        json.dumps([str(corpus.id), display, settings_json], sort_keys=True).encode()
    ).hexdigest()
    return job_create(
        kind="train",
        project=project,
        user=user,
        params={"corpus": str(corpus.id), "name": display, "train": settings_json},
        dedupe_key=key,
    )


class CurveRecorder:
    """Keeps a training job's curve on its row while it runs.

    Points are buffered and written at most every CURVE_FLUSH_S seconds (a
    validation point at once). Past CURVE_MAX_POINTS the training points are
    thinned evenly: only every `stride`-th is kept, the stride doubling as the run
    grows, while validation points and the newest training point always stay.
    """

    def __init__(self, job: Job, *, cap: int = CURVE_MAX_POINTS) -> None:
        self.job = job
        self.cap = cap
        self.kept: list[tuple[int, dict[str, Any]]] = []  # (training ordinal or -1, point)
        self.stride = 1
        self.ordinal = 0
        self.latest: tuple[int, dict[str, Any]] | None = None
        self.last_flush = 0.0
        self.dirty = False

    @staticmethod
    def _clean(point: dict[str, Any]) -> dict[str, Any]:
        clean = {
            k: point[k]
            for k in ("step", "epoch", "tokens", "loss", "perplexity", "split")
            if k in point
        }
        for k in ("loss", "perplexity"):
            v = clean.get(k)
            if isinstance(v, int | float) and not math.isfinite(v):
                clean[k] = None  # JSON has no infinity or NaN
        return clean

    def add(self, point: dict[str, Any]) -> None:
        clean = self._clean(point)
        if clean.get("split") == "train":
            self.ordinal += 1
            self.latest = (self.ordinal, clean)
            if (self.ordinal - 1) % self.stride == 0:
                self.kept.append(self.latest)
        else:
            self.kept.append((-1, clean))
        room = self.cap - 1  # the newest training point is shown too
        while len(self.kept) > room and self.stride < (1 << 30):
            self.stride *= 2
            self.kept = [(o, q) for o, q in self.kept if o < 0 or (o - 1) % self.stride == 0]
        self.kept = self.kept[-room:]
        self.dirty = True
        if clean.get("split") != "train" or time.monotonic() - self.last_flush >= CURVE_FLUSH_S:
            self.flush()

    def points(self) -> list[dict[str, Any]]:
        kept = list(self.kept)
        if self.latest is not None and all(o != self.latest[0] for o, _ in kept):
            kept.append(self.latest)
        kept.sort(key=lambda item: (item[1].get("step") or 0, item[0] < 0))
        return [q for _, q in kept]

    def flush(self) -> None:
        if self.dirty:
            job_detail_set(job=self.job, detail={"curve": self.points()})
            self.dirty = False
        self.last_flush = time.monotonic()


def training_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The train job: train on the corpus, store the model, record its row."""
    from workers.core.train import TrainParams, train

    corpus = Corpus.objects.filter(id=job.params["corpus"]).first()
    if corpus is None:
        raise ApplicationError("The corpus was deleted before training started.")
    (store_root() / "models").mkdir(parents=True, exist_ok=True)
    rel = f"models/{job.id.hex}"  # one folder per job: a restarted job replaces it
    final = store_root() / rel
    if final.exists():
        shutil.rmtree(final)  # a previous attempt finished writing but was not recorded
    recorder = CurveRecorder(job)
    job_detail_set(job=job, detail={"curve": []})  # a restarted job starts a fresh curve
    try:
        summary = train(
            store_path(corpus.path),
            final,
            TrainParams(**job.params["train"]),
            progress=progress,
            on_point=recorder.add,
            device=compute_device(),
        )
        recorder.flush()
        manifest = json.loads((final / "manifest.json").read_text())
        spec = manifest["spec"]
        size = dir_size(final)
        storage_check(job.created_by, size)
        sha = _sha256_file(final / str(manifest.get("weights", "weights.safetensors")))
        with transaction.atomic():
            model = LanguageModel.objects.create(
                project=job.project,
                name=job.params["name"],
                spec=spec,
                rnn_type=spec["rnn_type"],
                layers=spec["layers"],
                hidden_size=spec["hidden_size"],
                vocab_size=int(manifest.get("vocab_size") or spec["vocab_size"]),
                path=rel,
                size_bytes=size,
                sha256=sha,
                origin=ModelOrigin.TRAINING,
                training_job=job,
                created_by=job.created_by,
            )
            result = {"model": str(model.id)}
            if not job_succeed(job=job, result=result, message=_train_message(summary)):
                raise Cancelled("cancelled before the model was recorded")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return result


def _train_message(summary: dict[str, Any]) -> str:
    for key in ("valid_perplexity", "perplexity", "train_perplexity"):
        value = summary.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            label = "validation perplexity" if key.startswith("valid") else "perplexity"
            return f"Trained; {label} {value:.2f}"
    return "Trained"
