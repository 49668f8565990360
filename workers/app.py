"""The Celery app. Workers run `celery -A workers.app worker -Q cpu,gpu`.

Configuration comes from Django settings (`CELERY_*`); tasks live beside the
domain they serve (`backend/<app>/tasks.py`) and stay thin. Queues: `cpu`
(import, index, match) and `gpu` (extract, train).
"""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings.local")

app = Celery("statelab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["backend.artifacts", "backend.states", "backend.matching"])


@worker_ready.connect
def _requeue_stale_jobs(sender: object = None, **_: object) -> None:
    """Jobs left behind by a worker that died are sent again when a worker starts, and
    the temporary folders such a worker left (older than a day) are removed."""
    from backend.artifacts.storage import store_sweep
    from backend.jobs.services import jobs_requeue_stale

    jobs_requeue_stale(worker=getattr(sender, "hostname", None))
    store_sweep()
