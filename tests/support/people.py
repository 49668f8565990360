"""Users who know each other.

A user name typed into the API (a member to add, a user to share with) is found only
among the users the caller can already see: members of a project the caller may read
(docs/security.md, "User names"). Tests that name someone outside the project at hand
first put the people concerned in a project of their own with `acquaint`.
"""

from __future__ import annotations

import uuid
from typing import Any


def acquaint(*users: Any) -> Any:
    """A private project whose members are `users` (the first one owns it): afterwards
    each of them can name the others. Returns the project."""
    from backend.projects.services import membership_set, project_create

    first, *others = users
    project = project_create(
        user=first, name="Colleagues", slug=f"colleagues-{uuid.uuid4().hex[:8]}"
    )
    for user in others:
        membership_set(project=project, username=user.username, role="viewer")
    return project
