"""Celery entry points for state-set jobs: thin, by job id."""

from celery import shared_task

from backend.jobs.runner import run_job


@shared_task(name="statelab.import_lstmvis", acks_late=True)
def import_lstmvis(job_id: str) -> None:
    from .services import import_run

    run_job(job_id, import_run)
