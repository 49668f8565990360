"""Celery entry points for match jobs: thin, by job id.

`statelab.match` runs a match job (or fans it out); `statelab.match_shard` matches
one token range and keeps its result in the result backend for the chord;
`statelab.match_merge` is the chord callback that merges and records;
`statelab.match_evict` is the match store's housekeeping (`services.match_store_evict`),
sent after a match is recorded when it is due and hourly by Celery beat where one runs.
Every worker's sweep also sends again the shards whose worker died
(`services.match_shards_resend`).
"""

from typing import Any

from celery import shared_task
from celery.signals import celeryd_after_setup
from django.dispatch import receiver

from backend.jobs.signals import sweep
from backend.jobs.tasks import run_or_retry


@celeryd_after_setup.connect
def services_load(**_: object) -> None:
    """Import what a match job runs when the worker starts, before its pool forks,
    so that the first match does not wait for the import (tens of milliseconds;
    the kernels are warmed by `backend.jobs.tasks.kernels_warm`)."""
    from . import services  # noqa: F401


@shared_task(bind=True, name="statelab.match", acks_late=True)
def match(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from .services import match_run

    run_or_retry(self, job_id, match_run)


@receiver(sweep)
def shards_resend(**_: object) -> int:
    from .services import match_shards_resend

    return match_shards_resend()


@shared_task(
    bind=True,
    name="statelab.match_shard",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=False,
)
def match_shard(  # type: ignore[no-untyped-def]
    self, job_id: str, index: int, start: int, end: int, accelerate: bool = False
) -> dict[str, Any]:
    from .services import match_shard_run

    return match_shard_run(
        job_id=job_id,
        index=index,
        start=start,
        end=end,
        accelerate=accelerate,
        worker=self.request.hostname,
        group_id=self.request.group,
        chord=self.request.chord,
    )


@shared_task(name="statelab.match_merge", acks_late=True)
def match_merge(parts: list[dict[str, Any]], job_id: str) -> None:
    from .services import match_merge_run

    match_merge_run(job_id=job_id, parts=parts)


@shared_task(name="statelab.match_evict", acks_late=True)
def match_evict() -> dict[str, int]:
    from .services import match_store_evict

    return match_store_evict()
