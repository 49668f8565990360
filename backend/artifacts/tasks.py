"""Celery entry points for artefact jobs: thin, by job id."""

from celery import shared_task

from backend.jobs.tasks import run_or_retry


@shared_task(bind=True, name="statelab.corpus_upload", acks_late=True)
def corpus_upload(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import corpus_build

    run_or_retry(self, job_id, corpus_build)


@shared_task(bind=True, name="statelab.model_upload", acks_late=True)
def model_upload(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import model_upload_run

    run_or_retry(self, job_id, model_upload_run)


@shared_task(bind=True, name="statelab.train", acks_late=True)
def train(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import training_run

    run_or_retry(self, job_id, training_run)
