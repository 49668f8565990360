"""Research events and request events written straight into the usage record, at
chosen times, for the dashboard and rollup tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any


def at_day(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def record(
    user: Any,
    kind: str,
    *,
    project: str = "brackets",
    at: datetime | None = None,
    object_id: str = "",
    **summary: Any,
) -> Any:
    """One research event of `user` (a user, or None for none) as the writer stores it."""
    from django.utils import timezone

    from backend.usage.models import ResearchEvent

    return ResearchEvent.objects.create(
        at=at or timezone.now(),
        user_id=user.pk if user is not None else None,
        username=user.username if user is not None else "",
        project=project,
        kind=kind,
        object_id=object_id,
        summary=summary,
    )


def request_event(user: Any, duration_ms: float, *, at: datetime, project: str = "brackets"):
    """A context-window request in the request log."""
    from backend.usage.models import UsageEvent

    return UsageEvent.objects.create(
        at=at,
        user_id=user.pk,
        username=user.username,
        method="GET",
        route="api/statesets/<str:stateset_id>/context/",
        path="/api/statesets/x/context/",
        project=project,
        status=200,
        duration_ms=duration_ms,
    )


def days_ago(n: int) -> date:
    from django.utils import timezone

    return timezone.now().date() - timedelta(days=n)
