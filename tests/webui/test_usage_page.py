"""The usage page's shell: it needs a login, links its JSON twin, offers the projects
whose usage the caller may open (all for staff, the owned ones for anyone else), and
every page links to it."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _client(user=None) -> Client:
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


def _boot(response) -> dict:
    m = re.search(
        rb'<script id="boot-data" type="application/json">(.*?)</script>', response.content
    )
    assert m, "the page has no boot data"
    return json.loads(m.group(1))


def test_the_usage_page_needs_a_login():
    r = _client().get("/usage/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/?next=/usage/")


def test_a_user_is_offered_their_own_projects_only(owner, collaborator, project):
    from backend.projects.services import project_create

    project_create(user=collaborator, name="Bob's", slug="bobs")
    r = _client(owner).get("/usage/")
    assert r.status_code == 200
    body = r.content.decode()
    assert '<link rel="alternate" type="application/json" href="/api/usage/">' in body
    assert "/static/webui/js/pages/usage.js" in body and "d3-7.9.2.min.js" in body
    boot = _boot(r)
    assert boot["api"] == {"usage": "/api/usage/", "tableBase": "/api/usage/"}
    assert (boot["username"], boot["staff"]) == ("alice", False)
    assert boot["projects"] == [{"slug": "brackets", "name": "Brackets"}]
    # bob is a viewer of brackets: not its owner, so only his own project
    assert _boot(_client(collaborator).get("/usage/"))["projects"] == [
        {"slug": "bobs", "name": "Bob's"}
    ]


def test_staff_are_offered_every_project(make_user, project, outsider):
    from backend.projects.services import project_create

    project_create(user=outsider, name="Alone", slug="alone")
    staff = make_user("stella", admin=True)
    boot = _boot(_client(staff).get("/usage/"))
    assert boot["staff"] is True
    assert [p["slug"] for p in boot["projects"]] == ["alone", "brackets"]


def test_every_page_links_to_usage(owner, project):
    for path in ("/", "/p/brackets/"):
        assert 'href="/usage/"' in _client(owner).get(path).content.decode(), path
