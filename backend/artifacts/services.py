"""Writes for artefacts: storing uploads and building corpora from text."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from backend.accounts.models import User
from backend.config.api import ApplicationError
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_succeed
from backend.projects.models import Project
from workers.core.errors import Cancelled, ProgressFn

from .models import Corpus, Tokenization, Upload
from .quota import dir_size, storage_check, storage_remaining
from .storage import new_dir, save_stream, store_path


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
