"""Celery entry points for artefact jobs: thin, by job id."""

from celery import shared_task

from backend.jobs.runner import run_job


@shared_task(name="statelab.corpus_upload", acks_late=True)
def corpus_upload(job_id: str) -> None:
    from .services import corpus_build

    run_job(job_id, corpus_build)
