"""Reads and access checks for projects.

`project_for_user` is the one access helper: it returns the project and the
caller's role, and raises 404 (never 403) when the caller may not even see it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from backend.config.api import ApplicationError

from .models import ROLE_RANK, Membership, Project, Role


def projects_for_user(user: Any) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct()


def role_of(user: Any, project: Project) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    m = Membership.objects.filter(project=project, user=user).only("role").first()
    return m.role if m else None


def project_for_user(user: Any, slug: str, *, need: str = Role.VIEWER) -> tuple[Project, str]:
    """The project `slug` if `user` is a member with at least role `need`.

    Not a member: 404. A member whose role is too low: 403 with a message, since
    they can see the project exists.
    """
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    return project, require_role(user, project, need=need)


def require_role(user: Any, project: Project, *, need: str = Role.VIEWER) -> str:
    """The caller's role in `project`, checked against `need`.

    Not a member: 404. A member whose role is too low: 403 with a message, since
    they can see the project exists.
    """
    role = role_of(user, project)
    if role is None:
        raise Http404("No such project.")
    if ROLE_RANK[Role(role)] < ROLE_RANK[Role(need)]:
        raise ApplicationError(
            f"This needs the {need} role in project '{project.slug}'; you are a {role}.",
            code="permission_denied",
            status_code=403,
        )
    return role
