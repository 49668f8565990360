"""Writes for state sets: starting an LSTMVis import, running it, deleting a state set."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction

from backend.accounts.models import User
from backend.artifacts.models import Upload
from backend.artifacts.quota import dir_size, storage_check
from backend.artifacts.services import consuming_upload, upload_job_start, upload_store
from backend.artifacts.storage import new_dir, store_path, store_root
from backend.jobs.models import Job
from backend.jobs.services import job_succeed
from backend.projects.models import Project
from workers.core.errors import Cancelled, ProgressFn

from .models import StateSet


def import_start(*, project: Project, user: User | None, file: Any) -> tuple[Job, bool]:
    """Store an uploaded LSTMVis zip and queue its import. Identical uploads share a job."""
    upload = upload_store(project=project, user=user, kind="lstmvis_zip", file=file, suffix=".zip")
    return import_upload_start(project=project, user=user, upload=upload)


def import_upload_start(*, project: Project, user: User | None, upload: Upload) -> tuple[Job, bool]:
    return upload_job_start(
        kind="import_lstmvis",
        project=project,
        user=user,
        upload=upload,
        params={"name": upload.original_name},
        dedupe_key=upload.sha256,
    )


@consuming_upload
def import_run(job: Job, upload: Upload, progress: ProgressFn) -> dict[str, str]:
    """The import_lstmvis job: unpack safely, validate and convert, record atomically."""
    from workers.core.archive import extract_zip_safely
    from workers.core.lstmvis import import_lstmvis_dir

    (store_root() / "tmp").mkdir(exist_ok=True)
    unpack = store_root() / "tmp" / f".tmp-unpack-{uuid.uuid4().hex}"
    rel, final = new_dir("statesets")
    try:
        progress(0.02, "Unpacking the archive")
        project_dir = extract_zip_safely(
            store_path(upload.path),
            unpack,
            max_entries=settings.STATELAB_ZIP_MAX_ENTRIES,
            max_total_bytes=settings.STATELAB_IMPORT_QUOTA_BYTES,
        )

        def sub(fraction: float, message: str) -> None:
            progress(0.05 + 0.9 * fraction, message)

        manifest = import_lstmvis_dir(
            project_dir, final, quota_bytes=settings.STATELAB_IMPORT_QUOTA_BYTES, progress=sub
        )
        size = dir_size(final)
        storage_check(job.created_by, size - upload.size)
        manifest_json = manifest.to_json()
        extra = manifest_json.get("extra", {})
        name = str(extra.get("name") or project_dir.name or job.params.get("name") or "import")
        with transaction.atomic():
            ss = StateSet.objects.create(
                project=job.project,
                name=name[:200],
                description=str(extra.get("description") or "")[:5000],
                origin="lstmvis",
                length=manifest.length,
                path=rel,
                manifest=manifest_json,
                size_bytes=size,
                created_by=job.created_by,
            )
            result = {"stateset": str(ss.id)}
            if not job_succeed(
                job=job, result=result, message=f"Imported {manifest.length:,} tokens"
            ):
                raise Cancelled("cancelled before the state set was recorded")
        return result
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(unpack, ignore_errors=True)


@transaction.atomic
def stateset_delete(*, stateset: StateSet) -> None:
    path = store_path(stateset.path)
    stateset.delete()
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))
