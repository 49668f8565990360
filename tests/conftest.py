"""Fixtures shared by the whole suite: the three personas and API clients for them.

owner (owns the project), collaborator (a viewer or editor of it), outsider (must
see nothing of it).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with no throttle counts, login lockouts or other cached marks,
    and leaves none: they live in the shared cache (Redis), under this run's key
    prefix (backend/config/settings/test.py)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _isolated_store(settings, tmp_path):
    """Each test gets its own state store, so leftovers are attributable to it."""
    settings.STATELAB_STORE_ROOT = tmp_path / "store"
    return settings.STATELAB_STORE_ROOT


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


def _client(user=None):
    from rest_framework.test import APIClient

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


def write_stateset(
    project, owner, *, n: int = 300, d: int = 16, seed: int = 7, name: str = "synthetic"
):
    """A small state set written straight through the store writer, with its row."""
    import numpy as np

    from backend.core.storage import new_dir
    from backend.states.models import StateSet
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(seed)
    vocab = ["(", ")", "a", "b", " "]
    ids = rng.integers(0, len(vocab), size=n).astype(np.int32)
    values = np.cumsum(rng.normal(0, 0.4, size=(n, d)), axis=0).astype(np.float32)
    depth = np.cumsum(np.where(ids == 0, 1, np.where(ids == 1, -1, 0))).astype(np.float32)
    rel, final = new_dir("statesets")
    with StateSetWriter(final) as w:
        w.set_tokens(ids, vocab)
        w.add_source(
            SourceInfo(
                id="s0", name="states::states1", layer=1, kind="state", cells=d, transform="tanh"
            ),
            n,
            lambda a, b: values[a:b],
        )
        w.add_annotation(AnnotationInfo(name="depth", kind="scalar"), depth)
        w.add_annotation(
            AnnotationInfo(name="kind", kind="discrete", labels=["open", "close", "other"]),
            np.where(ids == 0, 0, np.where(ids == 1, 1, 2)).astype(np.int32),
        )
        w.set_extra({"name": name})
        manifest = w.commit()
    ss = StateSet.objects.create(
        project=project,
        name=name,
        length=n,
        path=rel,
        manifest=manifest.to_json(),
        created_by=owner,
    )
    return ss, values, ids, vocab


@pytest.fixture
def stateset(project, owner):
    return write_stateset(project, owner)
