"""Reads and access checks for projects.

`project_for_user` is the one access helper: it returns the project and the
caller's role, and raises 404 (never 403) when the caller may not even see it.

A project is seen by its members (owner, editor, viewer) and, when it is public
inside the installation, by every signed-in user, who then has viewer rights.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from backend.config.api import ApplicationError

from .models import ROLE_RANK, Membership, Project, Role


def projects_for_user(user: Any) -> QuerySet[Project]:
    """Projects the caller may read: their memberships and the public projects."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    member_of = Membership.objects.filter(user=user).values("project_id")
    return Project.objects.filter(Q(id__in=member_of) | Q(public=True))


def membership_role(user: Any, project: Project) -> str | None:
    """The caller's membership role in `project`, or None when not a member."""
    if not getattr(user, "is_authenticated", False):
        return None
    m = Membership.objects.filter(project=project, user=user).only("role").first()
    return m.role if m else None


def role_of(user: Any, project: Project) -> str | None:
    """The caller's effective role: their membership, else viewer on a public project."""
    role = membership_role(user, project)
    if role is None and project.public and getattr(user, "is_authenticated", False):
        return str(Role.VIEWER)
    return role


def project_for_user(user: Any, slug: str, *, need: str = Role.VIEWER) -> tuple[Project, str]:
    """The project `slug` if `user` may act on it with at least role `need`.

    Not visible to the caller: 404. Visible but the role is too low: 403 with a
    message, since they can see the project exists.
    """
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    return project, require_role(user, project, need=need)


def require_role(user: Any, project: Project, *, need: str = Role.VIEWER) -> str:
    """The caller's role in `project`, checked against `need`.

    Not visible to the caller: 404. Visible but the role is too low: 403 with a
    message, since they can see the project exists.
    """
    role = role_of(user, project)
    if role is None:
        raise Http404("No such project.")
    if ROLE_RANK[Role(role)] < ROLE_RANK[Role(need)]:
        member = membership_role(user, project) is not None
        raise ApplicationError(
            f"This needs the {need} role in project '{project.slug}'; "
            + (f"you are a {role}." if member else "it is public, so you may only read it."),
            code="permission_denied",
            status_code=403,
        )
    return role
