"""Reads and access checks for projects.

`project_for_user` returns a project and the caller's role, and raises 404 (never
403) when the caller may not even see it. `get_for_user` is the one generic access
helper that every other resource's `<noun>_for_user` selector is built on: an object
is visible through the project it belongs to.

A project is seen by its members (owner, editor, viewer) and, when it is public
inside the installation, by every signed-in user, who then has viewer rights.

`user_visible_to` is how a user name typed by a caller is looked up: only among the
users the caller can already see, so that no answer tells whether a name exists
(docs/security.md, "User names").

`quota_user_limits` and `quota_project_storage` read the limits staff set in the
admin (a user's or a project's own row, else the lab's row, else the settings);
`backend.core.quota` reads them through these (registered in `ProjectsConfig.ready`).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.params import uuid_or_404
from backend.core.quota import UserLimits, default_user_limits

from .models import (
    ROLE_RANK,
    Invitation,
    LabQuota,
    Membership,
    Project,
    ProjectQuota,
    Role,
    UserQuota,
)

M = TypeVar("M", bound=Model)


def projects_for_user(user: Any) -> QuerySet[Project]:
    """Projects the caller may read: their memberships and the public projects."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    member_of = Membership.objects.filter(user=user).values("project_id")
    return Project.objects.filter(Q(id__in=member_of) | Q(public=True))


def user_visible_to(caller: Any, username: str) -> User | None:
    """The active user named `username` if `caller` can already see them: a member of
    a project the caller may read (whose member list the caller can open), or the
    caller themself. Anyone else, existing or not, is None alike."""
    if not getattr(caller, "is_authenticated", False):
        return None
    if username == caller.get_username() and caller.is_active:
        return caller  # type: ignore[no-any-return]
    readable = projects_for_user(caller).values("id")
    members = Membership.objects.filter(project_id__in=readable).values("user_id")
    return User.objects.filter(username=username, is_active=True, id__in=members).first()


def invitations_for(user: Any) -> QuerySet[Invitation]:
    """The invitations `user` may accept or decline, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Invitation.objects.none()
    return (
        Invitation.objects.filter(user=user)
        .select_related("project", "invited_by")
        .order_by("-created_at")
    )


def invitation_for_user(user: Any, invitation_id: Any) -> Invitation:
    """One of `user`'s invitations; anyone else's, a malformed id and a missing one all
    answer the same 404."""
    invitation = invitations_for(user).filter(id=uuid_or_404(invitation_id)).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


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


def get_for_user(
    queryset: QuerySet[M],
    user: Any,
    object_id: Any,
    *,
    what: str,
    need: str = Role.VIEWER,
    project_field: str = "project",
    related: tuple[str, ...] = (),
) -> M:
    """The object `object_id` of `queryset` if `user` may act on it with role `need`.

    The object belongs to the project reached by `project_field` (a lookup path such
    as `"stateset__project"`). A malformed id, a missing object and an object in a
    project the caller may not see all answer the same 404 ("No such <what>."); a
    visible object with too low a role answers 403 through `require_role`.
    """
    obj = (
        queryset.select_related(project_field, *related)
        .filter(id=uuid_or_404(object_id), **{f"{project_field}__in": projects_for_user(user)})
        .first()
    )
    if obj is None:
        raise Http404(f"No such {what}.")
    if need != Role.VIEWER:
        project: Project = attrgetter(project_field.replace("__", "."))(obj)
        require_role(user, project, need=need)
    return obj


def _first_set(*values: int | None) -> int:
    return int(next(v for v in values if v is not None))


def quota_user_limits(user: Any | None) -> UserLimits:
    """The limits of `user`: each from the user's own row where set, else from the
    lab's row, else from the settings. Two indexed reads."""
    lab = LabQuota.objects.filter(id=1).first() or LabQuota()
    own = None
    if user is not None and getattr(user, "pk", None) is not None:
        own = UserQuota.objects.filter(user_id=user.pk).first()
    own = own or UserQuota()
    base = default_user_limits()
    return UserLimits(
        storage_bytes=_first_set(own.storage_bytes, lab.user_storage_bytes, base.storage_bytes),
        active_jobs=_first_set(own.active_jobs, lab.active_jobs, base.active_jobs),
        upload_bytes=_first_set(own.upload_bytes, lab.upload_bytes, base.upload_bytes),
    )


def quota_project_storage(project: Project) -> int:
    """The bytes `project` may store: its own row where set, else the lab's, else the
    setting."""
    own = ProjectQuota.objects.filter(project_id=project.pk).first() or ProjectQuota()
    lab = LabQuota.objects.filter(id=1).first() or LabQuota()
    return _first_set(
        own.storage_bytes,
        lab.project_storage_bytes,
        int(settings.STATELAB_PROJECT_STORAGE_QUOTA_BYTES),
    )
