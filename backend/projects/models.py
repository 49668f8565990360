"""Projects, memberships (owner, editor, viewer) and invitations to join."""

import uuid

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class Project(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Public inside the installation: every signed-in user reads it as a viewer;
    # only members write. Never visible to anonymous callers.
    public = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.project_id}:{self.role}"


class Invitation(models.Model):
    """An owner's invitation of a user name to a project, waiting for that user to
    accept it (it then becomes a membership) or decline it.

    Adding a user the owner cannot already see (docs/security.md, "User names") makes
    one, whether or not the name belongs to anyone: `user` is the account the name
    belonged to when invited, or None, and only that account can accept. Owners see
    their project's invitations; an invitation for a name no one holds stays pending,
    so the owner learns nothing about the name.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="project_invitations",
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "username"], name="one_invitation_per_username"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.project_id}:{self.role} (invited)"


class LabQuota(models.Model):
    """The lab's default limits, one row (id 1) that staff edit in the admin. A blank
    field means the setting named in its help text; a user's or a project's own row
    overrides it (`projects.selectors.quota_user_limits`)."""

    user_storage_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes each user may store (blank: STATELAB_USER_STORAGE_QUOTA_BYTES).",
    )
    project_storage_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes each project may store (blank: STATELAB_PROJECT_STORAGE_QUOTA_BYTES).",
    )
    active_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Jobs each user may have queued or running at once "
        "(blank: STATELAB_MAX_ACTIVE_JOBS_PER_USER).",
    )
    upload_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes in one uploaded file (blank: STATELAB_UPLOAD_MAX_BYTES).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "lab quota"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="one_lab_quota"),
        ]

    def __str__(self) -> str:
        return "the lab's default limits"

    def save(self, *args: object, **kwargs: object) -> None:
        self.pk = 1
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class UserQuota(models.Model):
    """One user's own limits; a blank field means the lab's default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    storage_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes this user may store (blank: the lab's default)."
    )
    active_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Jobs queued or running at once (blank: the lab's default).",
    )
    upload_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes in one uploaded file (blank: the lab's default)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"limits of {self.user}"


class ProjectQuota(models.Model):
    """One project's own storage limit; blank means the lab's default."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="quota")
    storage_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes the project's state sets, corpora, models and waiting uploads "
        "may take, whoever made them (blank: the lab's default).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"limit of {self.project}"
