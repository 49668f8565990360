"""Server-side imports of LSTMVis directories: read where they lie, no upload.

A lab's state sets are gigabytes (the paper's Penn Treebank states are four
sources of 1M x 650 float32, about 10 GB of HDF5) and often already sit on the
server or a shared volume. Zipping such a folder and pushing it through the
upload path would cap it at the upload limit and copy it twice; here the job
(`import_lstmvis_dir`, cpu queue) converts the directory in place with the same
checks as an upload (`workers.core.lstmvis`), writes the state set once, with its
match index on the way, and is held to the storage quota only.

Two ways in: `manage.py import_lstmvis DIR` (an administrator on the server, any
folder the workers can read) and `POST /api/projects/{slug}/imports/` with
`{"path": ...}` (staff only, and only below one of `STATELAB_IMPORT_ROOTS`: the
path is resolved, symbolic links included, before it is compared, so neither
`..` nor a link leads out; empty roots refuse every such request).

A worker killed half-way leaves its work in `work/import-<job>` and nothing
visible: the state set is renamed into `statesets/<job>` complete, and its row is
created with the job's success. The next attempt of the job (the task is
delivered again, or a starting worker sends it) continues from the import's last
checkpoint, or records a state set that an attempt published but did not record.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check, storage_remaining
from backend.core.storage import store_path, store_root, work_dir
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_detail_set, job_record
from backend.projects.models import Project
from workers.core.errors import ProgressFn

from .corpus import stateset_corpus_ensure
from .models import StateSet

__all__ = ["import_dir_run", "import_dir_start", "import_path_check"]

# How often a running import records its bytes in the job's `detail`.
_BYTES_EVERY_S = 1.0


def import_path_check(path: str) -> Path:
    """The LSTMVis directory at `path` (absolute, below one of
    `STATELAB_IMPORT_ROOTS` once resolved), or an `ApplicationError`: 403 when
    imports from the server are off or the path lies outside every root, 400 when
    it is not an LSTMVis directory."""
    roots = [Path(str(r)) for r in settings.STATELAB_IMPORT_ROOTS if str(r).strip()]
    if not roots:
        raise ApplicationError(
            "Importing directories from the server is switched off: no import roots are "
            "configured (STATELAB_IMPORT_ROOTS). Upload a zip instead, or ask an "
            "administrator to run manage.py import_lstmvis.",
            code="import_roots_unset",
            status_code=403,
        )
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise ApplicationError("Give the path of an LSTMVis directory on the server as 'path'.")
    given = Path(path)
    if not given.is_absolute():
        raise ApplicationError(
            f"'{path}' is not an absolute path; give the full path of the directory on the server."
        )
    # Resolved first (links, '..'), then compared: nothing leads out of a root.
    resolved = given.resolve()
    allowed = [root.resolve() for root in roots]
    if not any(resolved == root or root in resolved.parents for root in allowed):
        raise ApplicationError(
            f"'{path}' is not inside an import root; directories may be imported from "
            f"{', '.join(str(r) for r in allowed)} only.",
            code="path_not_allowed",
            status_code=403,
        )
    if not resolved.is_dir():
        raise ApplicationError(f"There is no directory at '{path}'.", code="not_found")
    if not (resolved / "lstm.yml").is_file():
        raise ApplicationError(
            f"'{path}' has no lstm.yml; give the LSTMVis project directory itself.",
            code="not_lstmvis",
        )
    return resolved


def import_dir_start(
    *, project: Project, user: User | None, path: Path, roots: bool = True
) -> tuple[Job, bool]:
    """Queue the import of the LSTMVis directory at `path` (already checked: by
    `import_path_check` when `roots`, by the caller otherwise; a worker checks it
    again before reading). Identical active requests share one job."""
    path = Path(path)
    return job_create(
        kind="import_lstmvis_dir",
        project=project,
        user=user,
        params={"path": str(path), "name": path.name, "roots": bool(roots)},
        dedupe_key=hashlib.sha256(str(path).encode()).hexdigest(),
    )


class _BytesDetail:
    """The job's `detail` while it copies: `{"bytes_done", "bytes_total"}`, written
    at most every `_BYTES_EVERY_S` seconds (and once at the end)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last < _BYTES_EVERY_S and done < total:
                return
            self.last = now
        job_detail_set(job=self.job, detail={"bytes_done": int(done), "bytes_total": int(total)})


def _part(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * fraction, message)

    return report


def import_dir_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The import_lstmvis_dir job: convert the directory where it lies into a state
    set with its indexes (resuming an earlier attempt's work), record it."""
    from workers.core.indexes import build_indexes
    from workers.core.lstmvis import import_lstmvis_dir

    src = Path(job.params["path"])
    if job.params.get("roots", True):
        src = import_path_check(str(src))  # the roots may have changed since
    elif not (src / "lstm.yml").is_file():
        raise ApplicationError(f"'{src}' has no lstm.yml (or this worker cannot read it).")
    rel = f"statesets/{job.id.hex}"
    final = store_root() / rel
    work = work_dir("import", job.id)
    try:
        if (final / "manifest.json").is_file():
            # An earlier attempt published it and was stopped before recording it.
            progress(0.95, "Found the state set an earlier attempt wrote.")
        else:
            import_lstmvis_dir(
                src,
                final,
                quota_bytes=storage_remaining(job.created_by, project=job.project),
                progress=_part(progress, 0.0, 0.95),
                work_dir=work,
                index=True,
                on_bytes=_BytesDetail(job),
            )
        build_indexes(final, _part(progress, 0.95, 0.99), missing_only=True)
        manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
        size = dir_size(final)
        storage_check(job.created_by, size, project=job.project)
        progress(0.99, "Making a corpus of its text.")
        result = import_record(job, rel, manifest, size, fallback_name=src.name)
    except Exception:
        # A failed or cancelled import starts from nothing if asked again; a killed
        # worker (no exception here) leaves its work for the next attempt.
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result


def import_record(
    job: Job, rel: str, manifest: dict[str, Any], size: int, *, fallback_name: str
) -> dict[str, str]:
    """Record an imported state set (its folder `rel` published, `manifest` its JSON)
    with a corpus of its text where the quota allows, and the job's result; the
    corpus folder goes again if recording fails."""
    extra = manifest.get("extra", {})
    name = str(extra.get("name") or fallback_name or "import")
    length = int(manifest["length"])
    corpus_dir: Path | None = None
    try:
        with transaction.atomic():
            ss = StateSet.objects.create(
                project=job.project,
                name=name[:200],
                description=str(extra.get("description") or "")[:5000],
                origin="lstmvis",
                length=length,
                path=rel,
                manifest=manifest,
                size_bytes=size,
                created_by=job.created_by,
            )
            # Its text, to train on and extract from like an uploaded corpus; over the
            # quota the state set comes in without it ("Use as corpus" later).
            try:
                corpus, _ = stateset_corpus_ensure(ss, job.created_by)
                corpus_dir = store_path(corpus.path)
                text = " and a corpus of its text"
            except ApplicationError:
                text = ""
            result = {"stateset": str(ss.id)}
            job_record(
                job=job,
                result=result,
                message=f"Imported {length:,} tokens{text}.",
                what="state set",
            )
    except BaseException:
        if corpus_dir is not None:
            shutil.rmtree(corpus_dir, ignore_errors=True)
        raise
    return result
