"""Writes for resumable uploads: files that arrive in pieces over tus 1.0 and become
an `Upload` (and its job) like a small upload once the last byte is in.

Shape (docs/api.md, "Resumable uploads"):

- `resumable_create` checks everything that can be checked from the declaration
  (kind and its metadata, Upload-Length against the limit for one upload and the
  storage quotas) before a byte is stored, and records a `ResumableUpload` with an
  empty partial file in the store's upload area. The declared length counts against
  the quotas from then on, so two uploads cannot both pass on the same free space.
- `resumable_write` appends one request body to the partial file, read from the
  request in 1 MiB pieces, never held whole. The bytes that arrived are kept and
  recorded whatever ends the request (a dropped connection included), so a client
  resumes where the server stopped. One writer at a time: the partial file is
  locked (`flock`) while a request writes it; the lock goes with the process that
  held it, so after a crash or restart the next request takes it, and the file's
  size (fsynced by the writer) is what was stored.
- `resumable_finish` moves the finished file into place as an `Upload` (a rename,
  never a copy) and starts the kind's job with the same service a small upload uses.
- `resumable_delete` (termination) and `resumable_expire` (uploads untouched for
  `STATELAB_RESUMABLE_EXPIRE_S`, swept lazily when uploads are created) remove
  partial files and rows.

The kinds are registered (`resumable_kind_register`): corpora and models here, the
LSTMVis import by the states app, which sits above this one.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import storage_check, upload_check
from backend.core.storage import store_path, store_root
from backend.jobs.models import Job
from backend.projects.models import Project

from ..models import ResumableState, ResumableUpload, Tokenization, Upload
from .corpora import corpus_job_start
from .language_models import (
    MODEL_CONFIG_MAX_BYTES,
    MODEL_VOCAB_MAX_BYTES,
    model_config_parse,
    model_job_start,
)
from .uploads import uploads_drop

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = ("creation", "termination", "expiration", "checksum")
TUS_CHECKSUMS = ("sha1",)
READ_BYTES = 1 << 20  # one read from the request, one write to the file
RECORD_EVERY = 64 << 20  # the offset is recorded this often while a body streams in
PARTIAL_DIR = "uploads/partial"
EXPIRE_BATCH = 50


class ReadableStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class CheckFn(Protocol):
    def __call__(
        self, *, project: Project, user: User | None, metadata: Mapping[str, str]
    ) -> dict[str, Any]: ...


class StartFn(Protocol):
    def __call__(
        self, *, project: Project, user: User | None, upload: Upload, params: dict[str, Any]
    ) -> tuple[Job, bool]: ...


@dataclass(frozen=True)
class ResumableKind:
    """What a kind of resumable upload becomes.

    `check` turns the creation's metadata into the params kept with the upload (or
    refuses it); `start` queues the job that consumes the finished `Upload` (None: the
    upload waits to be named by another one, like a model's vocabulary); `verify`
    checks a finished file of a kind without a job; `max_bytes` caps the kind below
    the limit for one upload."""

    name: str
    upload_kind: str  # Upload.kind of the finished file
    suffix: str
    what: str  # names the file in messages
    check: CheckFn
    start: StartFn | None = None
    verify: Callable[[Upload], None] | None = None
    max_bytes: int | None = None


RESUMABLE_KINDS: dict[str, ResumableKind] = {}


def resumable_kind_register(kind: ResumableKind) -> None:
    """Accept uploads of `kind.name` (idempotent per name)."""
    RESUMABLE_KINDS[kind.name] = kind


# --- the protocol's headers -------------------------------------------------------------


def metadata_parse(header: str | None) -> dict[str, str]:
    """Upload-Metadata (`key base64,key base64,key`) as text; a 400 when malformed."""
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        value = value.strip()
        if not key or " " in value:
            raise ApplicationError(
                "Upload-Metadata must be comma-separated pairs of a key and a base64 value.",
                code="invalid_metadata",
            )
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise ApplicationError(
                f"The Upload-Metadata value of '{key[:40]}' is not base64 of UTF-8 text.",
                code="invalid_metadata",
            ) from None
    return out


def metadata_encode(metadata: Mapping[str, str]) -> str:
    return ",".join(
        f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in metadata.items()
    )


def _non_negative(raw: str | None, header: str) -> int:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        value = -1
    if value < 0 or not str(raw).strip().isdigit():
        raise ApplicationError(
            f"{header} must be a whole number of bytes.", code="invalid_header"
        ) from None
    return value


def checksum_parse(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum (`sha1 <base64 digest>`), or None when absent."""
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm.lower() not in TUS_CHECKSUMS:
        raise ApplicationError(
            f"Upload-Checksum algorithm '{algorithm[:20]}' is not supported; use "
            + ", ".join(TUS_CHECKSUMS)
            + ".",
            code="checksum_unsupported",
        )
    try:
        return algorithm.lower(), base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise ApplicationError(
            "Upload-Checksum must be an algorithm and a base64 digest.", code="invalid_header"
        ) from None


# --- creation ---------------------------------------------------------------------------


def _expiry() -> datetime:
    return timezone.now() + timedelta(seconds=int(settings.STATELAB_RESUMABLE_EXPIRE_S))


def resumable_create(
    *,
    project: Project,
    user: User | None,
    length: str | None,
    metadata: Mapping[str, str],
    defer_length: str | None = None,
) -> ResumableUpload:
    """Record a new resumable upload of `project` after every check its declaration
    allows: kind and metadata, the declared length against the kind's cap, the limit
    for one upload and the storage quotas. Nothing is stored when one refuses."""
    if length is None:
        if defer_length is not None:
            raise ApplicationError(
                "Uploads of unknown length are not accepted: send Upload-Length.",
                code="length_required",
            )
        raise ApplicationError("Send the file's size in bytes as Upload-Length.")
    size = _non_negative(length, "Upload-Length")
    kind_name = metadata.get("kind", "")
    kind = RESUMABLE_KINDS.get(kind_name)
    if kind is None:
        raise ApplicationError(
            "Name the kind of upload in Upload-Metadata 'kind': one of "
            + ", ".join(sorted(RESUMABLE_KINDS))
            + ".",
            code="invalid_kind",
        )
    if size == 0:
        raise ApplicationError(f"The {kind.what} is empty.", code="empty_upload")
    if kind.max_bytes is not None and size > kind.max_bytes:
        raise ApplicationError(
            f"The {kind.what} is larger than the limit of {kind.max_bytes // (1 << 20)} MB.",
            code="too_large",
            status_code=413,
        )
    upload_check(user, size, what=kind.what)
    storage_check(user, size, project=project)
    params = kind.check(project=project, user=user, metadata=metadata)
    filename = os.path.basename(metadata.get("filename", "").replace("\\", "/"))[:255]
    resumable_expire()
    (store_root() / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
    upload_id = uuid.uuid4()
    rel = f"{PARTIAL_DIR}/{upload_id.hex}.part"
    with transaction.atomic():
        row = ResumableUpload.objects.create(
            id=upload_id,
            project=project,
            created_by=user,
            kind=kind.name,
            filename=filename,
            length=size,
            metadata=params,
            path=rel,
            expires_at=_expiry(),
        )
        # The row first: a partial file never exists without the row that removes it.
        with open(store_path(rel), "xb"):
            pass
    return row


# --- writing ----------------------------------------------------------------------------


@contextmanager
def _partial_locked(row: ResumableUpload) -> Iterator[int]:
    """The partial file of `row`, open for writing and locked against other writers
    (423 while another request writes it). The lock ends with the file descriptor,
    also when the process dies."""
    try:
        fd = os.open(store_path(row.path), os.O_RDWR)
    except FileNotFoundError:
        raise ApplicationError(
            "The bytes of this upload are gone; start the upload again.",
            code="upload_gone",
            status_code=410,
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ApplicationError(
                "Another request is writing this upload; ask for its offset again shortly.",
                code="upload_busy",
                status_code=423,
            ) from None
        yield fd
    finally:
        os.close(fd)


def _settle(row: ResumableUpload, fd: int) -> None:
    """Make the recorded offset what the file holds (a writer that was killed kept its
    bytes but could not record them). Under the file's lock."""
    size = os.fstat(fd).st_size
    if size > row.length:
        os.ftruncate(fd, row.length)
        size = row.length
    if size != row.offset:
        row.offset = size
        ResumableUpload.objects.filter(id=row.id).update(offset=size)


def resumable_offset(row: ResumableUpload) -> int:
    """The bytes stored of `row` (HEAD): settled against the file unless a request is
    writing it right now, in which case the last recorded offset."""
    if row.state != ResumableState.RECEIVING:
        return row.length
    try:
        with _partial_locked(row) as fd:
            _settle(row, fd)
    except ApplicationError as exc:
        if exc.code != "upload_busy":
            raise
    return row.offset


@dataclass
class WriteOutcome:
    upload: ResumableUpload
    written: int
    complete_body: bool


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def resumable_write(
    *,
    row: ResumableUpload,
    offset: str | None,
    stream: ReadableStream | None,
    content_length: int,
    checksum: str | None = None,
) -> WriteOutcome:
    """Append one PATCH body at `offset` (which must be the stored offset: 409 if not).
    The body is read in pieces of `READ_BYTES`; whatever ends it, the bytes that
    arrived are kept and recorded (with a checksum, only a whole body that matches).
    The last byte finishes the upload (`resumable_finish`)."""
    claimed = _non_negative(offset, "Upload-Offset")
    expected_sum = checksum_parse(checksum)
    if row.state != ResumableState.RECEIVING:
        if claimed == row.length and content_length == 0:
            return WriteOutcome(row, 0, True)
        raise ApplicationError(
            "This upload is complete; it takes no more bytes.",
            code="offset_mismatch",
            status_code=409,
            details={"offset": row.length},
        )
    if claimed + content_length > row.length:
        raise ApplicationError(
            f"The body would go past the declared length of {row.length:,} bytes.",
            code="too_large",
            status_code=413,
        )
    with _partial_locked(row) as fd:
        row.refresh_from_db()
        if row.state != ResumableState.RECEIVING:
            raise ApplicationError(
                "This upload is complete.", code="offset_mismatch", status_code=409
            )
        _settle(row, fd)
        if claimed != row.offset:
            raise ApplicationError(
                f"Upload-Offset {claimed:,} is not where the upload stands ({row.offset:,} "
                "bytes stored); ask for the offset (HEAD) and send from there.",
                code="offset_mismatch",
                status_code=409,
                details={"offset": row.offset},
            )
        start = row.offset
        written = 0
        hasher = hashlib.sha1() if expected_sum else None  # noqa: S324 (the protocol's choice)
        last_recorded = 0
        os.lseek(fd, start, os.SEEK_SET)
        try:
            while written < content_length and stream is not None:
                try:
                    block = stream.read(min(READ_BYTES, content_length - written))
                except Exception:  # the client went away mid-body: keep what arrived
                    break
                if not block:
                    break
                _write_all(fd, block)
                if hasher is not None:
                    hasher.update(block)
                written += len(block)
                if hasher is None and written - last_recorded >= RECORD_EVERY:
                    last_recorded = written
                    ResumableUpload.objects.filter(id=row.id).update(offset=start + written)
        finally:
            complete = written == content_length
            bad_sum = hasher is not None and (
                not complete or expected_sum is None or hasher.digest() != expected_sum[1]
            )
            if bad_sum:
                os.ftruncate(fd, start)  # a piece that cannot be verified is not kept
                written = 0
            os.fsync(fd)
            row.offset = start + written
            row.expires_at = _expiry()
            ResumableUpload.objects.filter(id=row.id).update(
                offset=row.offset, expires_at=row.expires_at
            )
    if hasher is not None and complete and bad_sum:
        raise ApplicationError(
            "The body does not match its Upload-Checksum; nothing of it was kept.",
            code="checksum_mismatch",
            status_code=460,
        )
    if row.offset == row.length:
        row = resumable_finish(row)
    return WriteOutcome(row, written, complete)


# --- finishing --------------------------------------------------------------------------


def _sha256_of(path: os.PathLike[str] | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def resumable_finish(row: ResumableUpload) -> ResumableUpload:
    """Turn a complete upload into an `Upload` (moving the file into place) and start
    its kind's job. A refusal of the job (too many active jobs, a refused model's
    config) marks the upload failed with the message and drops its file."""
    kind = RESUMABLE_KINDS[row.kind]
    partial = store_path(row.path)
    sha = _sha256_of(partial)
    rel = f"uploads/{uuid.uuid4().hex}{kind.suffix}"
    with transaction.atomic():
        locked = ResumableUpload.objects.select_for_update().get(id=row.id)
        if locked.state != ResumableState.RECEIVING or not locked.path:
            return locked
        os.replace(partial, store_path(rel))
        try:
            upload = Upload.objects.create(
                project_id=locked.project_id,
                created_by_id=locked.created_by_id,
                kind=kind.upload_kind,
                original_name=locked.filename,
                path=rel,
                size=locked.length,
                sha256=sha,
            )
            locked.upload = upload
            locked.path = ""
            locked.offset = locked.length
            locked.state = ResumableState.DONE
            locked.expires_at = _expiry()
            locked.save()
        except BaseException:
            os.replace(store_path(rel), partial)
            raise
    try:
        if kind.verify is not None:
            kind.verify(upload)
        if kind.start is not None:
            job, _ = kind.start(
                project=locked.project,
                user=locked.created_by,
                upload=upload,
                params=dict(locked.metadata),
            )
            locked.job = job
            ResumableUpload.objects.filter(id=locked.id).update(job=job)
    except ApplicationError as exc:
        uploads_drop(Upload.objects.filter(id=upload.id))
        locked.state = ResumableState.FAILED
        locked.error = exc.message
        locked.upload = None
        ResumableUpload.objects.filter(id=locked.id).update(
            state=locked.state, error=locked.error, upload=None
        )
        raise
    return locked


# --- termination and expiry -------------------------------------------------------------


def _forget(row: ResumableUpload) -> None:
    """Remove `row`, its partial file, and a finished file no job has taken."""
    if row.path:
        store_path(row.path).unlink(missing_ok=True)
    if row.job_id is None and row.upload_id is not None:
        uploads_drop(Upload.objects.filter(id=row.upload_id).exclude(path=""))
    row.delete()


def resumable_delete(*, row: ResumableUpload) -> None:
    """Termination: remove the upload and the bytes it stored (423 while a request is
    writing it). A finished upload's job is not touched."""
    if row.state == ResumableState.RECEIVING:
        with _partial_locked(row):
            _forget(row)
    else:
        _forget(row)


def resumable_expire(*, now: datetime | None = None, limit: int = EXPIRE_BATCH) -> int:
    """Remove up to `limit` uploads untouched past their expiry (a partial upload
    being written is left alone). Returns how many went."""
    gone = 0
    stale = ResumableUpload.objects.filter(expires_at__lt=now or timezone.now())
    for row in stale.order_by("expires_at")[:limit]:
        try:
            resumable_delete(row=row)
        except ApplicationError:
            continue
        gone += 1
    return gone


# --- the kinds of this app --------------------------------------------------------------


def _no_params(
    *, project: Project, user: User | None, metadata: Mapping[str, str]
) -> dict[str, Any]:
    return {}


def _corpus_check(
    *, project: Project, user: User | None, metadata: Mapping[str, str]
) -> dict[str, Any]:
    tokenization = metadata.get("tokenization") or Tokenization.WORD
    if tokenization not in Tokenization.values:
        raise ApplicationError("tokenization must be 'word' or 'char'.")
    name = metadata.get("name", "").strip()
    if len(name) > 200:
        raise ApplicationError("name: Ensure this field has no more than 200 characters.")
    return {"tokenization": tokenization, "name": name}


def _corpus_start(
    *, project: Project, user: User | None, upload: Upload, params: dict[str, Any]
) -> tuple[Job, bool]:
    return corpus_job_start(
        project=project,
        user=user,
        upload=upload,
        tokenization=params["tokenization"],
        name=params.get("name", ""),
    )


def _waiting_part(
    project: Project, user: User | None, upload_id: str, kind: str, what: str
) -> ResumableUpload:
    """A finished upload of `kind` by `user` in `project` that no job has taken yet."""
    try:
        key = uuid.UUID(upload_id)
    except ValueError:
        key = None
    row = (
        ResumableUpload.objects.filter(
            id=key, project=project, created_by=user, kind=kind, job__isnull=True
        )
        .select_related("upload")
        .first()
        if key is not None
        else None
    )
    if row is None or row.state != ResumableState.DONE or row.upload is None or not row.upload.path:
        raise ApplicationError(
            f"'{upload_id[:40]}' is not a finished {what} upload of yours in project "
            f"'{project.slug}'; upload the {what} first (kind '{kind}') and name its id.",
            code="invalid_metadata",
        )
    return row


def _model_check(
    *, project: Project, user: User | None, metadata: Mapping[str, str]
) -> dict[str, Any]:
    if not metadata.get("vocab"):
        raise ApplicationError(
            "Name the vocabulary in Upload-Metadata 'vocab': the id of a finished upload "
            "of kind 'model_vocab'."
        )
    _waiting_part(project, user, metadata["vocab"], "model_vocab", "vocabulary")
    if metadata.get("config"):
        _waiting_part(project, user, metadata["config"], "model_config", "model config")
    rnn_type = metadata.get("rnn_type", "")
    if rnn_type and rnn_type not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        raise ApplicationError("rnn_type must be one of LSTM, GRU, RNN_TANH, RNN_RELU.")
    return {
        "vocab": metadata["vocab"],
        "config": metadata.get("config", ""),
        "name": metadata.get("name", "").strip()[:200],
        "rnn_type": rnn_type,
    }


def _model_start(
    *, project: Project, user: User | None, upload: Upload, params: dict[str, Any]
) -> tuple[Job, bool]:
    vocab = _waiting_part(project, user, params["vocab"], "model_vocab", "vocabulary")
    config = (
        _waiting_part(project, user, params["config"], "model_config", "model config")
        if params.get("config")
        else None
    )
    assert vocab.upload is not None
    job, created = model_job_start(
        project=project,
        user=user,
        weights=upload,
        vocab=vocab.upload,
        config=config.upload if config is not None else None,
        name=params.get("name", ""),
        rnn_type=params.get("rnn_type") or None,
    )
    parts = [vocab.id] + ([config.id] if config is not None else [])
    ResumableUpload.objects.filter(id__in=parts).update(job=job)
    return job, created


def _config_verify(upload: Upload) -> None:
    if model_config_parse(store_path(upload.path).read_bytes()) is None:
        raise ApplicationError("The model config is empty.", code="empty_upload")


resumable_kind_register(
    ResumableKind(
        name="corpus",
        upload_kind="text",
        suffix=".txt",
        what="uploaded file",
        check=_corpus_check,
        start=_corpus_start,
    )
)
resumable_kind_register(
    ResumableKind(
        name="model",
        upload_kind="model_weights",
        suffix=".weights",
        what="weights file",
        check=_model_check,
        start=_model_start,
    )
)
resumable_kind_register(
    ResumableKind(
        name="model_vocab",
        upload_kind="model_vocab",
        suffix=".vocab",
        what="vocabulary file",
        check=_no_params,
        max_bytes=MODEL_VOCAB_MAX_BYTES,
    )
)
resumable_kind_register(
    ResumableKind(
        name="model_config",
        upload_kind="model_config",
        suffix=".json",
        what="model config",
        check=_no_params,
        verify=_config_verify,
        max_bytes=MODEL_CONFIG_MAX_BYTES,
    )
)
