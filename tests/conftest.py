"""Fixtures shared by the whole suite: the three personas and API clients for them.

owner (owns the project), collaborator (a viewer or editor of it), outsider (must
see nothing of it).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def make_user(db):
    from backend.accounts.services import user_create

    def make(username: str, password: str = "a-long-test-password-1", admin: bool = False):
        return user_create(username=username, password=password, admin=admin)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("alice")


@pytest.fixture
def collaborator(make_user):
    return make_user("bob")


@pytest.fixture
def outsider(make_user):
    return make_user("charlie")


@pytest.fixture
def project(owner, collaborator):
    from backend.projects.services import membership_set, project_create

    p = project_create(user=owner, name="Brackets", slug="brackets", description="nesting")
    membership_set(project=p, username=collaborator.username, role="viewer")
    return p


def _client(user=None) -> APIClient:
    c = APIClient()
    if user is not None:
        c.force_authenticate(user)
    return c


@pytest.fixture
def api():
    return _client


@pytest.fixture
def owner_api(owner):
    return _client(owner)


@pytest.fixture
def collaborator_api(collaborator):
    return _client(collaborator)


@pytest.fixture
def outsider_api(outsider):
    return _client(outsider)
