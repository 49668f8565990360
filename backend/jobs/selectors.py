"""Reads and access checks for jobs: a job is seen through its project (404 otherwise)."""

from __future__ import annotations

from typing import Any

from backend.projects.selectors import get_for_user

from .models import Job


def job_for_user(user: Any, job_id: Any) -> Job:
    return get_for_user(Job.objects.all(), user, job_id, what="job", related=("created_by",))
