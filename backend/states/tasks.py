"""Celery entry points for state-set jobs (and annotation uploads): thin, by job id."""

from celery import shared_task

from backend.jobs.tasks import run_or_retry


@shared_task(bind=True, name="statelab.import_lstmvis", acks_late=True)
def import_lstmvis(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import import_run

    run_or_retry(self, job_id, import_run)


@shared_task(bind=True, name="statelab.import_lstmvis_dir", acks_late=True)
def import_lstmvis_dir(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .directories import import_dir_run

    run_or_retry(self, job_id, import_dir_run)


@shared_task(bind=True, name="statelab.extract", acks_late=True)
def extract(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import extraction_run

    run_or_retry(self, job_id, extraction_run)


@shared_task(bind=True, name="statelab.index", acks_late=True)
def index(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import index_run

    run_or_retry(self, job_id, index_run)


@shared_task(bind=True, name="statelab.annotation_upload", acks_late=True)
def annotation_upload(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .annotations import annotation_upload_run

    run_or_retry(self, job_id, annotation_upload_run)
