"""How the backend reaches Celery without importing the Celery app's module.

`backend/config/celery_app.py` makes its app Celery's default when the settings load;
senders here ask for it by this one function (tests replace it to simulate a broker
outage). Tasks are always sent by name, so no sender imports a task module.
"""

from __future__ import annotations

from celery import Celery, current_app


def celery_app() -> Celery:
    """The process's Celery app (the one `backend.config.celery_app` configured)."""
    return current_app
