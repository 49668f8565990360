"""Settings, URL routing, the Celery app and the WSGI entry point: the top floor.

The Celery app is imported here so that it exists (and is Celery's default app) in
every process that loads the settings: web, worker, shell and tests.
"""

from .celery_app import app as celery_app

__all__ = ["celery_app"]
