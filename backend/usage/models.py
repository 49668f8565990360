"""The usage record: raw events, append-only, and the daily rollups the dashboard reads.

- `UsageEvent`: every API call by a signed-in user (route, project, status, duration),
  written by the usage middleware.
- `ResearchEvent`: what a researcher did (project opened, match run, hypothesis saved,
  job finished, ...; `backend.core.events.KINDS`), with a small summary of the
  parameters.

Both keep the user as a plain id and name (no foreign key), so events survive the
user's deletion. Query strings, bodies and file contents are never stored: they may
carry passwords or tokens. Neither may be changed or deleted through the ORM; on
PostgreSQL a trigger refuses it too (migrations 0002 and 0003). The one way to delete
is retention (`services.usage_events_expire`): raw events older than
`STATELAB_USAGE_RETENTION_DAYS`, once their day is rolled up.

- `RollupDay`, `DailyActivity`, `DailyRollup`: what `services.usage_rollup_day`
  aggregates from a day's raw events, so that the dashboard reads a few rows per day
  whatever the number of events; `RollupMonth`, `MonthlyRollup`: the daily figures
  a range merges (histograms, hypotheses) merged once per closed month
  (docs/usage.md).
"""

from typing import Any

from django.db import models


class AppendOnlyError(Exception):
    pass


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Usage events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Usage events are append-only.")


class UsageEventQuerySet(AppendOnlyQuerySet):
    pass


class AppendOnlyModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Usage events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Usage events are append-only.")


class UsageEvent(AppendOnlyModel):
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


class ResearchEvent(AppendOnlyModel):
    at = models.DateTimeField(db_index=True)
    user_id = models.BigIntegerField(null=True)
    username = models.CharField(max_length=150, blank=True, default="")
    project = models.CharField(max_length=80, blank=True, default="")  # the project's slug
    kind = models.CharField(max_length=40)  # backend.core.events.KINDS
    object_id = models.CharField(max_length=64, blank=True, default="")
    summary = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        # Read by time only (a day at a time): one index keeps recording cheap.
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.kind} {self.project}"


class RollupDay(models.Model):
    """A day whose events are rolled up. `final` once rolled after the day ended: the
    dashboard reads a final day from the rollups, any other day from raw events."""

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField()
    final = models.BooleanField(default=False)
    events = models.PositiveIntegerField(default=0)  # research events of the day
    requests = models.PositiveIntegerField(default=0)  # request events of the day read

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} ({'final' if self.final else 'partial'}, {self.events} events)"


class DailyActivity(models.Model):
    """A user's actions in a project on a day (system events, such as a job ending in
    a worker, not counted): active users, the most used projects, the most active users."""

    day = models.DateField()
    user_id = models.BigIntegerField()
    username = models.CharField(max_length=150, blank=True, default="")
    project = models.CharField(max_length=80, blank=True, default="")
    actions = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user_id", "project"],
                include=["actions"],  # covering on PostgreSQL: sums read from the index
                name="usage_activity_one_per_day",
            )
        ]
        indexes = [
            models.Index(fields=["user_id", "day"], name="usage_activity_user_day"),
            models.Index(fields=["project", "day"], name="usage_activity_project_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.username} {self.project}: {self.actions}"


class Scope(models.TextChoices):
    LAB = "lab"  # key ""
    USER = "user"  # key: the user's id
    PROJECT = "project"  # key: the project's slug


class Family(models.TextChoices):
    KIND = "kind"  # series: an event kind; count
    LATENCY = "latency"  # series: match, context; count, total, p50, p95, hist (ms)
    MATCH = "match"  # series: cached, computed, pending; count
    JOB = "job"  # series: <job kind>:<finished|failed|cancelled>; duration (s)
    HYPOTHESIS = "hypothesis"  # series: a hypothesis id; count of its events


class DailyRollup(models.Model):
    """One figure of one day, for the whole lab, one user or one project.

    `hist` counts values in log-spaced buckets (`services.bucket_of`, 8 per doubling)
    so that percentiles over several days can be merged; `p50` and `p95` are the
    day's own, exact."""

    day = models.DateField()
    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=150, blank=True, default="")
    family = models.CharField(max_length=12, choices=Family.choices)
    series = models.CharField(max_length=80)
    count = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0.0)
    p50 = models.FloatField(null=True, blank=True)
    p95 = models.FloatField(null=True, blank=True)
    hist = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key", "family", "series", "day"],
                name="usage_rollup_one_per_day",
            )
        ]
        indexes = [
            # Covering on PostgreSQL: a range's per-day figures are read from the index
            # alone (rows are wide with their histograms, and scattered over days).
            models.Index(
                fields=["scope", "key", "family", "day"],
                include=["series", "count", "total", "p50", "p95"],
                name="usage_rollup_scope_day",
            ),
            models.Index(fields=["day"], name="usage_rollup_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.scope}:{self.key} {self.family}:{self.series} = {self.count}"


class RollupMonth(models.Model):
    """A closed month whose days' histograms and hypotheses are merged."""

    month = models.DateField(primary_key=True)  # its first day
    rolled_at = models.DateTimeField()

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}"


MONTH_FAMILIES = (Family.LATENCY, Family.JOB, Family.HYPOTHESIS)


class MonthlyRollup(models.Model):
    """The daily rollups of a closed month in the families a range merges
    (`MONTH_FAMILIES`): a year's summary reads 12 rows per series, not 365."""

    month = models.DateField()
    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=150, blank=True, default="")
    family = models.CharField(max_length=12, choices=Family.choices)
    series = models.CharField(max_length=80)
    count = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0.0)
    hist = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key", "family", "series", "month"],
                name="usage_monthly_one_per_month",
            )
        ]
        indexes = [
            models.Index(
                fields=["scope", "key", "family", "month"],
                include=["series", "count"],
                name="usage_monthly_scope_month",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.scope}:{self.key} {self.family}:{self.series}"
