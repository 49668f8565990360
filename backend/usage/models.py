"""UsageEvent: who, when, route, project, status, duration. Append-only.

The user is kept as a plain id and name (no foreign key), so events survive the
user's deletion. Query strings and bodies are never stored: they may carry
passwords or tokens.
"""

from typing import Any

from django.db import models


class AppendOnlyError(Exception):
    pass


class UsageEventQuerySet(models.QuerySet["UsageEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Usage events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Usage events are append-only.")


class UsageEvent(models.Model):
    at = models.DateTimeField(db_index=True)
    user_id = models.BigIntegerField(null=True, db_index=True)
    username = models.CharField(max_length=150, blank=True, default="")
    method = models.CharField(max_length=10)
    route = models.CharField(max_length=200)  # the URL pattern, e.g. api/projects/<slug:slug>/
    path = models.CharField(max_length=500)  # without the query string
    project = models.CharField(max_length=80, blank=True, default="", db_index=True)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()

    objects = UsageEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.method} {self.route} {self.status}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Usage events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Usage events are append-only.")
