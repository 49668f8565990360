"""Records every API call by a signed-in user (or a valid token) as a UsageEvent, and
writes the research events a request emitted once its answer is known.

Research events (`backend.core.events`) emitted while any request runs, a page or an
API call, are held until the response exists: a request answered below 400 writes
them in one insert, a refused or failed one drops them. Recording never breaks the
request it records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from backend.core.events import events_collect, events_write

from .models import UsageEvent
from .services import records_insert

log = logging.getLogger(__name__)


# The project of a state set never changes: its slug is read once per process (the
# lookup was a query on every request to the analysis routes).
_STATESET_PROJECTS: dict[str, str] = {}
_STATESET_PROJECTS_MAX = 4096


def _stateset_project(stateset_id: str) -> str:
    slug = _STATESET_PROJECTS.get(stateset_id)
    if slug is not None:
        return slug
    from backend.states.models import StateSet

    ss = StateSet.objects.filter(id=stateset_id).select_related("project").first()
    if ss is None:
        return ""
    if len(_STATESET_PROJECTS) >= _STATESET_PROJECTS_MAX:
        _STATESET_PROJECTS.clear()
    _STATESET_PROJECTS[stateset_id] = ss.project.slug
    return ss.project.slug


def _project_of(kwargs: dict[str, object], request: HttpRequest) -> str:
    if kwargs.get("slug"):
        return str(kwargs["slug"])[:80]
    if request.GET.get("project"):
        return request.GET["project"].split("/")[0][:80]
    try:
        if kwargs.get("stateset_id"):
            return _stateset_project(str(kwargs["stateset_id"]))
        if kwargs.get("job_id"):
            from backend.jobs.models import Job

            job = Job.objects.filter(id=str(kwargs["job_id"])).select_related("project").first()
            return job.project.slug if job else ""
    except Exception:
        # A malformed id in the URL: the view answered 404, there is no project to name.
        return ""
    return ""


class UsageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with events_collect() as emitted:
            response = self.get_response(request)
        duration = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            emitted = []  # a refused or failed request did nothing to record
        logged = None
        # DRF authenticates tokens inside the view and sets the user on this request too.
        user: Any = getattr(request, "user", None)
        if request.path.startswith("/api/") and getattr(user, "is_authenticated", False):
            match = getattr(request, "resolver_match", None)
            route = match.route if match is not None else ""
            kwargs = match.kwargs if match is not None else {}
            logged = UsageEvent(
                at=timezone.now(),
                user_id=user.pk,
                username=user.get_username(),
                method=request.method or "",
                route=route[:200],
                path=request.path[:500],
                project=_project_of(kwargs, request),
                status=response.status_code,
                duration_ms=round(duration, 3),
            )
        events_write(emitted)  # never raises
        if logged is not None:
            try:
                records_insert([logged])
            except Exception:
                # Recording usage must never break the call it records.
                log.exception("could not record a usage event")
        return response
