"""The Celery app, where Django projects keep it. Workers run
`celery -A backend.config.celery_app worker -Q cpu,gpu`.

Configuration comes from Django settings (`CELERY_*`); tasks live beside the domain
they serve (`backend/<app>/tasks.py`, found through INSTALLED_APPS) and stay thin.
Queues: `cpu` (import, index, match) and `gpu` (extract, train).

The app makes itself Celery's default app: the backend sends tasks by name through
`backend.jobs.queue`, which asks Celery for the current app, so that no app of the
backend imports this module (it sits on the top floor, with the settings and URLs).
`backend/config/__init__.py` imports it, so every process that loads the settings
has it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings.local")

app = Celery("statelab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.set_default()
