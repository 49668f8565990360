"""Writes for state sets: LSTMVis imports, extractions from a model over a corpus,
deleting a state set."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction

from backend.accounts.models import User
from backend.artifacts.models import Corpus, LanguageModel, Upload
from backend.artifacts.services import (
    compute_device,
    consuming_upload,
    upload_job_start,
    upload_store,
)
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check, storage_remaining
from backend.core.storage import new_dir, store_delete_on_commit, store_path, store_root, work_dir
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_record
from backend.projects.models import Project
from workers.core.errors import ProgressFn

from .directories import import_record
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


def import_resumable_check(
    *, project: Project, user: User | None, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The metadata of a resumable LSTMVis zip: nothing besides its file name."""
    return {}


def import_resumable_start(
    *, project: Project, user: User | None, upload: Upload, params: dict[str, Any]
) -> tuple[Job, bool]:
    """The import of a resumable upload that has arrived: as a small upload's."""
    return import_upload_start(project=project, user=user, upload=upload)


def import_limit(*, user: User | None, upload_size: int, project: Project | None = None) -> int:
    """The bytes an uploaded import may declare and occupy, charged before anything is
    written: at most `STATELAB_IMPORT_MAX_EXPANSION` times the upload (a small HDF5 file
    can declare gigabytes of fill values), within the import cap and the storage quotas
    of the user and the project (the upload's own bytes are freed once the import has
    consumed it)."""
    return int(
        min(
            settings.STATELAB_IMPORT_QUOTA_BYTES,
            settings.STATELAB_IMPORT_MAX_EXPANSION * upload_size,
            storage_remaining(user, project=project) + upload_size,
        )
    )


@consuming_upload
def import_run(job: Job, upload: Upload, progress: ProgressFn) -> dict[str, str]:
    """The import_lstmvis job: unpack safely, validate and convert, record atomically."""
    from workers.core.archive import extract_zip_safely
    from workers.core.indexes import build_indexes
    from workers.core.lstmvis import import_lstmvis_dir

    (store_root() / "tmp").mkdir(exist_ok=True)
    unpack = store_root() / "tmp" / f".tmp-unpack-{uuid.uuid4().hex}"
    rel, final = new_dir("statesets")
    try:
        progress(0.02, "Unpacking the archive.")
        project_dir = extract_zip_safely(
            store_path(upload.path),
            unpack,
            max_entries=settings.STATELAB_ZIP_MAX_ENTRIES,
            max_total_bytes=settings.STATELAB_IMPORT_QUOTA_BYTES,
        )

        def sub(fraction: float, message: str) -> None:
            progress(0.05 + 0.75 * fraction, message)

        def index_part(fraction: float, message: str) -> None:
            progress(0.8 + 0.18 * fraction, message)

        limit = import_limit(user=job.created_by, upload_size=int(upload.size), project=job.project)
        manifest = import_lstmvis_dir(project_dir, final, quota_bytes=limit, progress=sub)
        build_indexes(final, index_part)
        size = dir_size(final)
        storage_check(job.created_by, size - upload.size, project=job.project)
        progress(0.99, "Making a corpus of its text.")
        fallback = project_dir.name or str(job.params.get("name") or "")
        result = import_record(job, rel, manifest.to_json(), size, fallback_name=fallback)
        return result
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(unpack, ignore_errors=True)


@transaction.atomic
def stateset_delete(*, stateset: StateSet) -> None:
    stateset.delete()
    store_delete_on_commit(stateset.path)


def index_start(*, stateset: StateSet, user: User | None) -> tuple[Job, bool]:
    """Queue the building of a state set's missing indexes (one active job per state set)."""
    return job_create(
        kind="index",
        project=stateset.project,
        user=user,
        params={"stateset": str(stateset.id)},
        dedupe_key=str(stateset.id),
    )


def index_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The index job: build the indexes a state set lacks (each one atomically, beside
    its data), then record its new size with the job's success."""
    from workers.core.indexes import build_indexes

    ss = StateSet.objects.filter(id=job.params.get("stateset")).first()
    if ss is None:
        raise ApplicationError("The state set was deleted before it was indexed.")
    path = store_path(ss.path)
    built = build_indexes(path, progress, missing_only=True)
    with transaction.atomic():
        StateSet.objects.filter(id=ss.id).update(size_bytes=dir_size(path))
        result = {"stateset": str(ss.id)}
        message = f"Built {len(built)} indexes" if built else "Every index was already built"
        job_record(job=job, result=result, message=message, what="index")
    return result


# --------------------------------------------------------------------------- #
# Extraction: a model run over a corpus becomes a state set (job kind "extract",
# gpu queue). The job's working folder is the same for every attempt, so a
# worker killed half-way leaves work that the next attempt resumes.
# --------------------------------------------------------------------------- #


def default_extraction_name(model: str, corpus: str) -> str:
    """The name "<model> on <corpus>", unless the model's name says the corpus already (a model
    trained here is called "LSTM on <corpus>"): no "LSTM on X on X"."""
    if model.endswith(f" on {corpus}") or model == corpus:
        return model
    return f"{model} on {corpus}"


def extraction_start(
    *,
    project: Project,
    user: User | None,
    model: LanguageModel,
    corpus: Corpus,
    values: list[str] | tuple[str, ...] = ("h", "c"),
    topk: int | None = None,
    surprisal: bool = True,
    streams: int | None = None,
    dtype: str = "float32",
    name: str = "",
) -> tuple[Job, bool]:
    """Queue the extraction of `model`'s states over `corpus`; both must belong to
    `project`. Parameters are checked now, so a bad request is a 400, not a failed
    job; `topk` None keeps 5 predictions (fewer for a smaller vocabulary). Identical
    active requests share one job."""
    for item, what in ((model, "model"), (corpus, "corpus")):
        if item.project_id != project.id:
            raise ApplicationError(
                f"The {what} '{item.name}' is not in project '{project.slug}'.",
                code=f"unknown_{what}",
            )
    extract_json = extraction_params_check(
        rnn_type=model.rnn_type,
        vocab_size=model.vocab_size,
        values=values,
        topk=min(DEFAULT_TOPK, model.vocab_size) if topk is None else topk,
        surprisal=surprisal,
        streams=streams,
        dtype=dtype,
    )
    display = (name.strip() or default_extraction_name(model.name, corpus.name))[:200]
    key = hashlib.sha256(
        json.dumps([str(model.id), str(corpus.id), display, extract_json]).encode()
    ).hexdigest()
    return job_create(
        kind="extract",
        project=project,
        user=user,
        params={
            "model": str(model.id),
            "corpus": str(corpus.id),
            "name": display,
            "extract": extract_json,
        },
        dedupe_key=key,
    )


VALUE_KINDS = ("h", "c", "gates")
# What each kind of model has; asking for more is allowed (the default, h and c,
# suits every model) and the extraction notes what it skipped.
VALUES_BY_RNN = {
    "LSTM": ("h", "c", "gates"),
    "GRU": ("h", "gates"),
    "RNN_TANH": ("h",),
    "RNN_RELU": ("h",),
}
MAX_TOPK = 100
DEFAULT_TOPK = 5
MAX_STREAMS = 4096
# How the states are stored: float32, or float16 for half the disk (see docs/extraction.md).
STORE_DTYPES = ("float32", "float16")


def extraction_params_check(
    *,
    rnn_type: str,
    vocab_size: int,
    values: Any,
    topk: int,
    surprisal: bool,
    streams: int | None,
    dtype: str = "float32",
) -> dict[str, Any]:
    """The extraction parameters as the job keeps them, or a 400 that says what is
    wrong. Checked here, with the core's rules, so that a request never imports
    torch into the web process."""
    chosen = list(dict.fromkeys(str(v) for v in values))
    unknown = [v for v in chosen if v not in VALUE_KINDS]
    if not chosen or unknown:
        raise ApplicationError(f"Choose what to extract from {', '.join(VALUE_KINDS)}.")
    has = VALUES_BY_RNN.get(rnn_type, ("h",))
    if not any(v in has for v in chosen):
        raise ApplicationError(
            f"A {rnn_type} model has none of {', '.join(chosen)}; choose {' or '.join(has)}."
        )
    top = min(MAX_TOPK, vocab_size)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 0 <= topk <= top:
        raise ApplicationError(f"topk must be a whole number from 0 to {top}.")
    if streams is not None and (
        isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= MAX_STREAMS
    ):
        raise ApplicationError(f"streams must be a whole number from 1 to {MAX_STREAMS}.")
    if dtype not in STORE_DTYPES:
        raise ApplicationError(
            f"dtype must be float32 or float16 (half the disk), not {str(dtype)[:40]!r}."
        )
    out = {"values": chosen, "topk": topk, "surprisal": bool(surprisal), "streams": streams}
    if dtype != "float32":
        out["dtype"] = dtype  # absent: float32, as for jobs queued before float16
    return out


def _sub(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * fraction, message)

    return report


def extraction_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The extract job: load the model, extract into a new state-set folder, build
    the match and search indexes, record the state set with the job's success."""
    from workers.core.extract import ExtractParams, extract
    from workers.core.indexes import build_indexes
    from workers.core.modelfile import load_model

    model = LanguageModel.objects.filter(id=job.params["model"]).first()
    corpus = Corpus.objects.filter(id=job.params["corpus"]).first()
    if model is None or corpus is None:
        raise ApplicationError(
            f"The {'model' if model is None else 'corpus'} was deleted before the "
            "extraction started."
        )
    p = job.params["extract"]
    params = ExtractParams(
        values=tuple(p["values"]),
        topk=p["topk"],
        surprisal=p["surprisal"],
        streams=p["streams"],
        dtype=p.get("dtype", "float32"),
    )
    device = compute_device()
    progress(0.0, f"Loading the model on the {device.upper()}.")
    loaded = load_model(store_path(model.path), device=device)
    work = work_dir("extract", job.id)
    (store_root() / "statesets").mkdir(parents=True, exist_ok=True)
    # One folder per job: an attempt that published it but died before recording it
    # is found there by the next attempt (the core checks it is this very extraction).
    rel = f"statesets/{job.id.hex}"
    final = store_root() / rel
    try:
        extract(
            loaded.model,
            loaded.vocab,
            store_path(corpus.path),
            final,
            params,
            work_dir=work,
            progress=_sub(progress, 0.02, 0.9),
            device=device,
            extra={
                "name": job.params["name"],
                "model": {"id": str(model.id), "name": model.name, "spec": model.spec},
                "corpus": {"id": str(corpus.id), "name": corpus.name},
            },
        )
        build_indexes(final, _sub(progress, 0.9, 0.99))
        manifest = json.loads((final / "manifest.json").read_text())
        size = dir_size(final)
        storage_check(job.created_by, size, project=job.project)
        with transaction.atomic():
            ss = StateSet.objects.create(
                project=job.project,
                name=job.params["name"],
                description=f"States of {model.name} over {corpus.name}",
                origin="extraction",
                corpus=corpus,
                length=int(manifest["length"]),
                path=rel,
                manifest=manifest,
                size_bytes=size,
                created_by=job.created_by,
            )
            result = {"stateset": str(ss.id)}
            job_record(
                job=job,
                result=result,
                message=f"Extracted the states of {int(manifest['length']):,} tokens.",
                what="state set",
            )
    except Exception:
        # A failed or cancelled job starts from scratch if asked again; a killed
        # worker (no exception here) leaves its work for the next attempt.
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result
