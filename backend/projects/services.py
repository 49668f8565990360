"""Writes for projects, memberships and invitations.

An owner adds a member by user name (`member_add`). A user the owner can already see
(`selectors.user_visible_to`) becomes a member at once; any other name, whether it
belongs to someone or not, gets an invitation that answers and lists exactly alike,
and that only the named user, if there is one, can accept (docs/security.md, "User
names"). `membership_set` adds a known user directly, for administration and imports.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from backend.accounts.models import User
from backend.core.errors import ApplicationError

from .models import Invitation, Membership, Project, Role
from .selectors import user_visible_to


@transaction.atomic
def project_create(
    *, user: User, name: str, slug: str = "", description: str = "", public: bool = False
) -> Project:
    slug = slug or slugify(name)[:80]
    if not slug:
        raise ApplicationError("A project needs a name with letters or digits.")
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"The slug '{slug}' is taken; choose another.", code="exists")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                slug=slug, name=name, description=description, public=public, created_by=user
            )
    except IntegrityError as exc:
        raise ApplicationError(
            f"The slug '{slug}' is taken; choose another.", code="exists"
        ) from exc
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    description: str | None = None,
    public: bool | None = None,
) -> Project:
    """Change a project's name, description or visibility (the caller's role is
    checked by the view: editors rename, only owners change `public`)."""
    if name is not None:
        project.name = name
    if description is not None:
        project.description = description
    if public is not None:
        project.public = public
    project.save(update_fields=["name", "description", "public"])
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    project.delete()


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'; use owner, editor or viewer.")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ApplicationError(f"There is no user named '{username}'.", code="unknown_user")
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        if membership.role == Role.OWNER and role != Role.OWNER:
            _ensure_another_owner(project, user)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_add(*, project: Project, username: str, role: str, by: User) -> Membership | Invitation:
    """What an owner's "add `username` as `role`" does: changes the role of a member,
    adds a user `by` can already see, and invites any other name (see the module)."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'; use owner, editor or viewer.")
    member = (
        Membership.objects.filter(project=project, user__username=username)
        .select_related("user")
        .first()
    )
    user = member.user if member is not None else user_visible_to(by, username)
    if user is not None:
        Invitation.objects.filter(project=project, username=username).delete()
        return membership_set(project=project, username=user.username, role=role)
    named = User.objects.filter(username=username, is_active=True).first()
    invitation, created = Invitation.objects.select_for_update().get_or_create(
        project=project,
        username=username,
        defaults={"role": role, "user": named, "invited_by": by},
    )
    if not created:
        invitation.role = role
        invitation.user = named
        invitation.invited_by = by
        invitation.save(update_fields=["role", "user", "invited_by"])
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """The invited user joins with the invitation's role (a member already keeps the
    role they have); the invitation is used up."""
    locked = Invitation.objects.select_for_update().filter(id=invitation.id, user=user).first()
    if locked is None:
        raise ApplicationError(
            "This invitation was withdrawn.", code="not_invited", status_code=404
        )
    membership, _ = Membership.objects.get_or_create(
        project=locked.project, user=user, defaults={"role": locked.role}
    )
    locked.delete()
    return membership


def invitation_decline(*, invitation: Invitation) -> None:
    invitation.delete()


@transaction.atomic
def membership_remove(*, project: Project, username: str) -> None:
    """Remove a member, or withdraw the invitation of a name."""
    membership = (
        Membership.objects.select_for_update()
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        withdrawn, _ = Invitation.objects.filter(project=project, username=username).delete()
        if withdrawn:
            return
        raise ApplicationError(
            f"'{username}' is neither a member nor invited.", code="not_member", status_code=404
        )
    if membership.role == Role.OWNER:
        _ensure_another_owner(project, membership.user)
    membership.delete()


def _ensure_another_owner(project: Project, user: User) -> None:
    others = Membership.objects.filter(project=project, role=Role.OWNER).exclude(user=user)
    if not others.exists():
        raise ApplicationError(
            "A project needs at least one owner; make someone else owner first.",
            code="last_owner",
        )


def project_ensure(*, slug: str, owner: User) -> Project:
    """The project `slug`, created with `owner` as owner when missing (for import commands)."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        return project_create(user=owner, name=slug, slug=slug)
    Membership.objects.get_or_create(project=project, user=owner, defaults={"role": Role.OWNER})
    return project
