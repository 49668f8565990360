"""Celery entry point of the usage record's housekeeping: `statelab.usage_rollup`,
sent hourly by Celery beat (`CELERY_BEAT_SCHEDULE`): the days past that have no final
rollup are rolled up, then raw events older than the retention are deleted."""

from celery import shared_task


@shared_task(name="statelab.usage_rollup", acks_late=True)
def usage_rollup() -> dict[str, int]:
    from .services import usage_housekeeping

    return usage_housekeeping()
