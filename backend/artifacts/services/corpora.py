"""Writes for corpora: an uploaded text becomes a `corpus_upload` job, which decodes
and tokenises it into a corpus folder and records the row; deletion."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check
from backend.core.storage import new_dir, store_delete_on_commit, store_path
from backend.jobs.models import Job
from backend.jobs.services import job_record
from backend.projects.models import Project
from workers.core.errors import ProgressFn

from ..models import Corpus, Tokenization, Upload
from .uploads import consuming_upload, upload_job_start, upload_store


def corpus_upload_start(
    *, project: Project, user: User, file: Any, tokenization: str, name: str = ""
) -> tuple[Job, bool]:
    if tokenization not in Tokenization.values:
        raise ApplicationError("tokenization must be 'word' or 'char'.")
    upload = upload_store(project=project, user=user, kind="text", file=file, suffix=".txt")
    return corpus_job_start(
        project=project, user=user, upload=upload, tokenization=tokenization, name=name
    )


def corpus_job_start(
    *, project: Project, user: User | None, upload: Upload, tokenization: str, name: str = ""
) -> tuple[Job, bool]:
    """Queue the corpus_upload job of a stored text (a small upload's or a resumable
    one's). Identical active uploads share a job."""
    display = name or Path(upload.original_name).stem or "corpus"
    return upload_job_start(
        kind="corpus_upload",
        project=project,
        user=user,
        upload=upload,
        params={"tokenization": tokenization, "name": display},
        dedupe_key=f"{upload.sha256}:{tokenization}:{display}",
    )


@consuming_upload
def corpus_build(job: Job, upload: Upload, progress: ProgressFn) -> dict[str, str]:
    """The corpus_upload job: decode, tokenise, write the corpus folder, record the row."""
    from workers.core.corpus import decode_upload, tokenize_text
    from workers.core.store import write_corpus

    progress(0.05, "Reading the text.")
    text = decode_upload(store_path(upload.path).read_bytes())
    progress(0.3, "Tokenising.")
    ids, vocab, doc_starts = tokenize_text(text, job.params["tokenization"])
    rel, final = new_dir("corpora")
    progress(0.7, f"Writing {len(ids):,} tokens.")
    write_corpus(
        final,
        ids,
        vocab,
        doc_starts,
        {"name": job.params["name"], "tokenization": job.params["tokenization"]},
    )
    try:
        size = dir_size(final)
        storage_check(job.created_by, size - upload.size, project=job.project)
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
            job_record(
                job=job,
                result=result,
                message=f"Made a corpus of {len(ids):,} tokens.",
                what="corpus",
            )
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return result


@transaction.atomic
def corpus_delete(*, corpus: Corpus) -> None:
    """Delete a corpus row now and its folder once the deletion has committed."""
    corpus.delete()
    store_delete_on_commit(corpus.path)
