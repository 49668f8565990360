"""What a lab learns about its cells: rankings, saved hypotheses and their statistics.

A ranking ranks every cell of a source against an annotation track. A
hypothesis is saved as a row that says who owns and who may see it, and numbered
immutable versions that say what it claims (see ``HypothesisVersion``); shares,
comments and statistics hang off it.

A ranking is computed once per (state set, source,
annotation, label) by a job and kept as long as its state set: deleting the
state set deletes its rankings. A state set changes only when an annotation track
is added or replaced, which bumps its ``revision``; a ranking records the revision
it was computed on and is reused only while the state set still has it.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models


class Ranking(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stateset = models.ForeignKey(
        "states.StateSet", on_delete=models.CASCADE, related_name="rankings"
    )
    source = models.CharField(max_length=128)
    annotation = models.CharField(max_length=128)
    # The label of a discrete track; "" for a scalar track (the API says null).
    label = models.CharField(max_length=1000, blank=True, default="")
    revision = models.PositiveIntegerField(default=0)
    measure = models.CharField(max_length=16)  # "auroc" (discrete) or "pearson" (scalar)
    # {"cells": [{"cell", "auroc"} | {"cell", "pearson", "spearman"}, ...]}, best first,
    # as `workers.core.ranking.Ranking.cells`.
    result = models.JSONField(default=dict)
    n = models.BigIntegerField(default=0)
    error_bound = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["stateset", "source", "annotation", "label"])]

    def __str__(self) -> str:
        label = f"={self.label}" if self.label else ""
        return f"ranking {self.id}: {self.source} vs {self.annotation}{label}"


class Visibility(models.TextChoices):
    """Who may open a hypothesis besides its owner and the users it is shared with."""

    PRIVATE = "private"  # nobody else
    PROJECT = "project"  # whoever may read its project
    LINK = "link"  # also anyone signed in who has its link
    PUBLIC = "public"  # every user of the installation


class ShareRole(models.TextChoices):
    VIEWER = "viewer"
    EDITOR = "editor"


def new_link_token() -> str:
    return secrets.token_urlsafe(24)


class Hypothesis(models.Model):
    """A saved hypothesis: who owns it, who may see it, where it came from.

    What it says lives in its versions (``HypothesisVersion``), numbered from 1 and
    never changed once written; ``version`` is the newest number. A hypothesis
    belongs to the project of its state set and goes when the state set goes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stateset = models.ForeignKey(
        "states.StateSet", on_delete=models.CASCADE, related_name="hypotheses"
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="hypotheses"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hypotheses"
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    # The secret of a `link` hypothesis: `?link=<token>` opens it for anyone signed in.
    link_token = models.CharField(max_length=64, unique=True, default=new_link_token)
    version = models.PositiveIntegerField(default=1)
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    forked_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["project", "-updated_at"]),
            models.Index(fields=["owner", "-updated_at"]),
            models.Index(fields=["visibility"]),
        ]
        verbose_name_plural = "hypotheses"

    def __str__(self) -> str:
        return f"hypothesis {self.id} v{self.version}"


class HypothesisVersion(models.Model):
    """One immutable version of a hypothesis: everything a match and a reader need.

    ``cells`` is the final set (the range's selection plus ``cells_added`` minus
    ``cells_excluded``), fixed when the version is written so that opening it years
    later gives exactly what was saved. ``match`` is the stored match result of the
    version; a match a version pins is never evicted from the match store.
    """

    id = models.BigAutoField(primary_key=True)
    hypothesis = models.ForeignKey(Hypothesis, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True, default="")
    tags = models.JSONField(default=list)
    source = models.CharField(max_length=128)
    start = models.BigIntegerField(null=True, blank=True)
    end = models.BigIntegerField(null=True, blank=True)
    threshold = models.FloatField()
    zero_left = models.PositiveIntegerField(default=1)
    zero_right = models.PositiveIntegerField(default=0)
    min_length = models.PositiveIntegerField(null=True, blank=True, default=2)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    limit = models.PositiveIntegerField(default=50)  # hits kept in the match result
    transform = models.CharField(max_length=16, blank=True, default="")  # "": the source's own
    cells_added = models.JSONField(default=list)
    cells_excluded = models.JSONField(default=list)
    cells = models.JSONField(default=list)
    match = models.ForeignKey(
        "matching.Match",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pinned_by",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["hypothesis", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["hypothesis", "number"], name="one_hypothesis_version_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hypothesis_id} v{self.number}"


class HypothesisShare(models.Model):
    """A hypothesis shared with one user, as viewer or editor."""

    hypothesis = models.ForeignKey(Hypothesis, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hypothesis_shares"
    )
    role = models.CharField(max_length=10, choices=ShareRole.choices, default=ShareRole.VIEWER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["hypothesis", "user"], name="one_share_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.hypothesis_id} -> {self.user_id} ({self.role})"


class Comment(models.Model):
    """A comment on a hypothesis (optionally on one version), editable by its author."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hypothesis = models.ForeignKey(Hypothesis, on_delete=models.CASCADE, related_name="comments")
    version = models.PositiveIntegerField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["hypothesis", "created_at"])]

    def __str__(self) -> str:
        return f"comment {self.id} on {self.hypothesis_id}"


class Statistics(models.Model):
    """Statistics of one hypothesis version against an annotation track
    (``workers.core.stats.hypothesis_statistics``), kept with the version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(
        HypothesisVersion, on_delete=models.CASCADE, related_name="statistics"
    )
    annotation = models.CharField(max_length=128)
    label = models.CharField(max_length=1000, blank=True, default="")
    scalar_threshold = models.FloatField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["version", "annotation", "label"])]
        verbose_name_plural = "statistics"

    def __str__(self) -> str:
        return f"statistics {self.id} of {self.version}"
