"""Reads and access checks for jobs: a job is seen through its project, and by the
user who started it (a hypothesis shared with someone outside its project lets them
start statistics, whose job they must be able to follow); 404 otherwise."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from backend.core.params import uuid_or_404
from backend.projects.selectors import get_for_user

from .models import Job


def job_for_user(user: Any, job_id: Any) -> Job:
    try:
        return get_for_user(Job.objects.all(), user, job_id, what="job", related=("created_by",))
    except Http404:
        if not getattr(user, "is_authenticated", False):
            raise
        own = (
            Job.objects.select_related("project", "created_by")
            .filter(id=uuid_or_404(job_id), created_by=user)
            .first()
        )
        if own is None:
            raise
        return own
