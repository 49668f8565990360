"""Writes for uploads: files a request stores for the job that consumes them.

A route that takes a file checks what is cheap (declared size, quota), copies the
file into the store as an `Upload` and queues a job with the upload's id
(`upload_job_start`); the job's work function, wrapped in `consuming_upload(s)`, reads
it and the file is removed when the job ends, whatever the outcome, so a file is never
stored twice. A job may consume several uploads, each under a role (a model's weights,
vocabulary and config).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import storage_check, storage_remaining, upload_check, user_limits
from backend.core.storage import save_stream, store_path
from backend.jobs.models import Job
from backend.jobs.services import job_create
from backend.projects.models import Project
from workers.core.errors import ProgressFn

from ..models import Upload

# The role of the upload named by a job's params["upload"]; further uploads are named
# by role in params["uploads"].
MAIN_UPLOAD = "upload"


def upload_discard(upload: Upload) -> None:
    """Remove an upload's file once its job is done with it (the row stays as a record)."""
    if upload.path:
        store_path(upload.path).unlink(missing_ok=True)
        Upload.objects.filter(id=upload.id).update(path="")


def uploads_drop(uploads: Iterable[Upload]) -> None:
    """Remove uploads no job will read: their files and their rows."""
    for upload in uploads:
        if upload.path:
            store_path(upload.path).unlink(missing_ok=True)
        upload.delete()


def upload_precheck(
    *, user: User | None, content_length: str | None, project: Project | None = None
) -> None:
    """Refuse an upload by its declared size before its body is read or stored: over
    the user's limit for one upload, or over the user's (or the project's) storage."""
    try:
        declared = int(content_length or 0)
    except ValueError:
        declared = 0
    envelope = 1 << 20  # the multipart envelope adds a little
    if declared > user_limits(user).upload_bytes + envelope:
        upload_check(user, declared - envelope)
    if declared:
        storage_check(user, max(declared - envelope, 0), project=project)


def upload_store(
    *,
    project: Project,
    user: User | None,
    kind: str,
    file: Any,
    suffix: str,
    what: str = "uploaded file",
) -> Upload:
    """Copy an uploaded file into the store (capped in size and by the quotas) and
    record it. `what` names the file in the messages of a refusal. A refusal leaves
    neither a file nor a row."""
    declared = getattr(file, "size", None)
    if declared:
        upload_check(user, int(declared), what=what)
        storage_check(user, int(declared), project=project)
    upload_cap = user_limits(user).upload_bytes
    cap = min(upload_cap, storage_remaining(user, project=project) or 1)
    try:
        rel, size, sha = save_stream(file, suffix=suffix, max_bytes=cap)
    except ApplicationError as exc:
        if exc.code == "too_large":
            # Say it in terms of the limit that stopped it.
            if cap < upload_cap:
                storage_check(user, cap + 1, project=project)
            upload_check(user, cap + 1, what=what, more=True)
        raise
    if size == 0:
        store_path(rel).unlink(missing_ok=True)
        raise ApplicationError(f"The {what} is empty.", code="empty_upload")
    name = Path(str(getattr(file, "name", "") or "")).name[:255]
    try:
        return Upload.objects.create(
            project=project,
            created_by=user,
            kind=kind,
            original_name=name,
            path=rel,
            size=size,
            sha256=sha,
        )
    except BaseException:
        store_path(rel).unlink(missing_ok=True)
        raise


def upload_job_start(
    *,
    kind: str,
    project: Project,
    user: User | None,
    upload: Upload,
    params: dict[str, Any],
    dedupe_key: str,
    also: Mapping[str, Upload] | None = None,
) -> tuple[Job, bool]:
    """Queue the job that consumes `upload` (and the uploads of `also`, by role); an
    identical active job takes its place (and this second copy of the files is dropped).
    Whatever refuses the job drops the files too."""
    extra = dict(also or {})
    job_params: dict[str, Any] = {MAIN_UPLOAD: str(upload.id), **params}
    if extra:
        job_params["uploads"] = {role: str(u.id) for role, u in extra.items()}
    every = [upload, *extra.values()]
    try:
        job, created = job_create(
            kind=kind, project=project, user=user, params=job_params, dedupe_key=dedupe_key
        )
    except BaseException:
        uploads_drop(every)
        raise
    if not created:
        uploads_drop(every)
    return job, created


def job_uploads(job: Job) -> dict[str, Upload]:
    """The uploads `job` consumes, by role (MAIN_UPLOAD for params["upload"]); a role
    whose row is gone is left out."""
    ids: dict[str, str] = {MAIN_UPLOAD: job.params[MAIN_UPLOAD], **job.params.get("uploads", {})}
    rows = {str(u.id): u for u in Upload.objects.filter(id__in=list(ids.values()))}
    return {role: rows[i] for role, i in ids.items() if i in rows}


UploadWorkFn = Callable[[Job, Upload, ProgressFn], dict[str, str]]
UploadsWorkFn = Callable[[Job, dict[str, Upload], ProgressFn], dict[str, str]]


def consuming_uploads(work: UploadsWorkFn) -> Callable[[Job, ProgressFn], dict[str, str]]:
    """A job's work function that reads the job's uploads (by role, see `job_uploads`),
    which are removed once the job ends (succeeded, failed or cancelled)."""

    def run(job: Job, progress: ProgressFn) -> dict[str, str]:
        uploads = job_uploads(job)
        try:
            wanted = 1 + len(job.params.get("uploads", {}))
            if len(uploads) < wanted or not all(u.path for u in uploads.values()):
                raise ApplicationError("The uploaded file is gone; upload it again.")
            return work(job, uploads, progress)
        finally:
            for upload in uploads.values():
                upload_discard(upload)

    return run


def consuming_upload(work: UploadWorkFn) -> Callable[[Job, ProgressFn], dict[str, str]]:
    """`consuming_uploads` for a job with one upload, handed to `work` as such."""

    def one(job: Job, uploads: dict[str, Upload], progress: ProgressFn) -> dict[str, str]:
        return work(job, uploads[MAIN_UPLOAD], progress)

    return consuming_uploads(one)
