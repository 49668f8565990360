"""Celery entry points for ranking and statistics jobs: thin, by job id."""

from celery import shared_task

from backend.jobs.tasks import run_or_retry


@shared_task(bind=True, name="statelab.ranking", acks_late=True)
def ranking(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import ranking_run

    run_or_retry(self, job_id, ranking_run)


@shared_task(bind=True, name="statelab.statistics", acks_late=True)
def statistics(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import statistics_run

    run_or_retry(self, job_id, statistics_run)
