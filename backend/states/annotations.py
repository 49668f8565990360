"""Writes for user annotation tracks: a file uploaded for a state set or a corpus
becomes an `annotation_upload` job (cpu queue) that parses it against the tokens
(`workers.core.annotations.parse_annotation`) and adds the track to the folder
(`workers.core.store.annotation_stage` / `annotation_publish`).

Both targets live here, in the lowest app that knows both state sets and corpora, so
that the two routes share one service and one job kind. A corpus' tracks are copied
into every later extraction from it (`workers.core.extract`); state sets extracted
before keep what they had.

Request time checks what is cheap (the parameters, the name against the tracks there
are); the job checks the file, and checks the name again under the folder's lock, so
two uploads of one name cannot both add it. The track is published in the same
transaction that bumps the state set's `revision` (the key of the web processes'
cache of opened stores), updates its `manifest` and `size_bytes` and records the job's
success.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.db.models import F

from backend.accounts.models import User
from backend.artifacts.models import Corpus, Upload
from backend.artifacts.services import consuming_upload, upload_job_start, upload_store
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check
from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.jobs.services import job_record
from workers.core.annotations import (
    FORMATS,
    KINDS,
    annotation_name_check,
    conllu_column_index,
    parse_annotation,
)
from workers.core.errors import InputError, ProgressFn
from workers.core.store import (
    AnnotationExistsError,
    annotation_discard,
    annotation_publish,
    annotation_stage,
    open_corpus,
    read_manifest_json,
)

from .models import StateSet

# What an extraction names its own tracks; a corpus track of such a name would be
# renamed in every extraction, so a corpus may not take them.
EXTRACTION_TRACKS = ("surprisal", "top_predictions")


def _exists_refusal(name: str) -> ApplicationError:
    return ApplicationError(
        f"There is already an annotation named '{name}'; choose another name, or send "
        "replace=true to replace it.",
        code="annotation_exists",
        status_code=409,
    )


def annotation_upload_start(
    *,
    user: User | None,
    file: Any,
    name: str,
    kind: str,
    fmt: str,
    column: str | None = None,
    replace: bool = False,
    stateset: StateSet | None = None,
    corpus: Corpus | None = None,
) -> tuple[Job, bool]:
    """Check an annotation upload for `stateset` or `corpus` (exactly one), store the
    file and queue its `annotation_upload` job. Identical active uploads share a job."""
    if (stateset is None) == (corpus is None):
        raise ValueError("give a state set or a corpus")
    if kind not in KINDS:
        raise ApplicationError(f"kind must be one of {', '.join(KINDS)}.")
    if fmt not in FORMATS:
        raise ApplicationError(f"format must be one of {', '.join(FORMATS)}.")
    try:
        annotation_name_check(name)
        col = conllu_column_index(column) + 1 if fmt == "conllu" else None
    except InputError as exc:
        raise ApplicationError(exc.message[:1].upper() + exc.message[1:] + ".") from None
    if stateset is not None:
        target, target_id, project = "stateset", stateset.id, stateset.project
        names = [a.get("name") for a in stateset.manifest.get("annotations", [])]
    else:
        assert corpus is not None
        target, target_id, project = "corpus", corpus.id, corpus.project
        if name in EXTRACTION_TRACKS:
            raise ApplicationError(
                f"'{name}' is the name of a track every extraction makes; choose another."
            )
        names = [a.get("name") for a in _corpus_manifest(corpus).get("annotations") or []]
    if name in names and not replace:
        raise _exists_refusal(name)
    upload = upload_store(
        project=project, user=user, kind="annotation", file=file, suffix=".txt",
        what="annotation file",
    )  # fmt: skip
    params = {
        "target": target,
        "id": str(target_id),
        "name": name,
        "kind": kind,
        "format": fmt,
        "column": col,
        "replace": bool(replace),
    }
    key = hashlib.sha256(json.dumps([upload.sha256, params]).encode()).hexdigest()
    return upload_job_start(
        kind="annotation_upload",
        project=project,
        user=user,
        upload=upload,
        params=params,
        dedupe_key=key,
    )


def _corpus_manifest(corpus: Corpus) -> dict[str, Any]:
    try:
        return read_manifest_json(store_path(corpus.path))
    except InputError:
        return {}


@consuming_upload
def annotation_upload_run(job: Job, upload: Upload, progress: ProgressFn) -> dict[str, str]:
    """The annotation_upload job: parse the file against the target's tokens, stage the
    track, then publish it and record it (module doc)."""
    p = job.params
    row: StateSet | Corpus | None
    if p["target"] == "stateset":
        row = StateSet.objects.filter(id=p["id"]).first()
    else:
        row = Corpus.objects.filter(id=p["id"]).first()
    what = "state set" if p["target"] == "stateset" else "corpus"
    if row is None:
        raise ApplicationError(f"The {what} was deleted before the annotation was added.")
    folder = store_path(row.path)
    progress(0.05, "Reading the tokens.")
    if isinstance(row, StateSet):
        from workers.core.store import StateSet as StoreStateSet

        store = StoreStateSet.open(folder)
        ids, vocab = store.tokens, store.vocab
    else:
        data = open_corpus(folder)
        ids, vocab = data.ids, data.vocab
    progress(0.1, "Reading the annotations.")
    with open(store_path(upload.path), "rb") as fh:
        try:
            info, values = parse_annotation(
                fh,
                name=p["name"],
                kind=p["kind"],
                fmt=p["format"],
                ids=ids,
                vocab=vocab,
                column=p.get("column"),
            )
        except InputError as exc:
            raise InputError(exc.message, file=upload.original_name or None) from None
    storage_check(job.created_by, max(int(values.nbytes) - upload.size, 0), project=job.project)
    progress(0.8, "Writing the track.")
    staged = annotation_stage(folder, info, values)
    try:
        with transaction.atomic():
            result = {"annotation": info.name}
            # Recorded first, so a job cancelled meanwhile changes nothing on disk.
            job_record(
                job=job, result=result, message=f"Added the annotation '{info.name}'.",
                what="annotation",
            )  # fmt: skip
            if isinstance(row, StateSet):
                # Locks the row: concurrent uploads for one state set take turns.
                StateSet.objects.filter(id=row.id).update(revision=F("revision") + 1)
            try:
                manifest = annotation_publish(staged, replace=bool(p["replace"]))
            except AnnotationExistsError:
                raise _exists_refusal(info.name) from None
            size = dir_size(folder)
            if isinstance(row, StateSet):
                StateSet.objects.filter(id=row.id).update(manifest=manifest, size_bytes=size)
            else:
                Corpus.objects.filter(id=row.id).update(size_bytes=size)
    finally:
        annotation_discard(staged)
    return result
