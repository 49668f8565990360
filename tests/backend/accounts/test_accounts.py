"""Accounts: tokens for scripts, the adduser command, browser login and logout."""

import io
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_token_for_script_then_use_it(owner, project):
    c = APIClient()
    r = c.post(
        "/api/auth/token/",
        {"username": "alice", "password": "a-long-test-password-1"},
        format="json",
    )
    assert r.status_code == 200
    token = r.json()["token"]
    c.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [p["slug"] for p in c.get("/api/projects/").json()] == ["brackets"]


def test_wrong_password_gets_no_token(owner):
    r = APIClient().post(
        "/api/auth/token/", {"username": "alice", "password": "nope"}, format="json"
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Unknown user name or wrong password."
    assert "token" not in r.json()


def test_bad_token_is_401(project):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION="Token deadbeef")
    assert c.get("/api/projects/").status_code == 401


def test_anonymous_is_401():
    assert APIClient().get("/api/projects/").status_code == 401


def test_adduser_from_environment(monkeypatch):
    from backend.accounts.models import User

    monkeypatch.setitem(os.environ, "STATELAB_PASSWORD", "correct-horse-battery")
    out = io.StringIO()
    call_command("adduser", "dora", "--admin", stdout=out)
    assert "Created administrator 'dora'" in out.getvalue()
    user = User.objects.get(username="dora")
    assert user.is_superuser and user.is_staff and user.check_password("correct-horse-battery")
    with pytest.raises(CommandError, match="already exists"):
        call_command("adduser", "dora", stdout=out)


def test_adduser_refuses_weak_password(monkeypatch):
    monkeypatch.setitem(os.environ, "STATELAB_PASSWORD", "123")
    with pytest.raises(CommandError, match="too short"):
        call_command("adduser", "eve")


def test_browser_login_and_logout(client, owner):
    r = client.post("/accounts/login/", {"username": "alice", "password": "a-long-test-password-1"})
    assert r.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_session_writes_need_csrf(owner):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    r = c.post("/api/projects/", {"name": "x"}, content_type="application/json")
    assert r.status_code == 403
    assert "CSRF" in r.json()["error"]["message"]


def test_browser_login_is_rate_limited(client, owner, settings):
    from django.core.cache import cache

    cache.clear()
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    codes = [
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]  # the third failure locks
    r = client.post("/accounts/login/", {"username": "alice", "password": "a-long-test-password-1"})
    assert r.status_code == 429
    assert b"Too many failed attempts" in r.content
    assert client.get("/").status_code == 302  # still not logged in
    cache.clear()
    r = client.post("/accounts/login/", {"username": "alice", "password": "a-long-test-password-1"})
    assert r.status_code == 302


def test_token_endpoint_is_rate_limited(owner, settings):
    from django.core.cache import cache

    cache.clear()
    from rest_framework.throttling import ScopedRateThrottle

    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {"login": "2/min", "jobs": "100/min"}
    try:
        c = APIClient()
        codes = [
            c.post(
                "/api/auth/token/", {"username": "alice", "password": "x"}, format="json"
            ).status_code
            for _ in range(3)
        ]
        assert codes == [400, 400, 429]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
        cache.clear()


def test_staff_admin_pages_open(client, make_user, stateset):
    admin = make_user("root", admin=True)
    client.force_login(admin)
    for url in (
        "/admin/",
        "/admin/projects/project/",
        "/admin/jobs/job/",
        "/admin/states/stateset/",
        "/admin/artifacts/corpus/",
        "/admin/artifacts/upload/",
        "/admin/usage/usageevent/",
        f"/admin/states/stateset/{stateset[0].id}/change/",
    ):
        assert client.get(url).status_code == 200, url


def test_non_staff_cannot_open_admin(client, owner):
    client.force_login(owner)
    assert client.get("/admin/").status_code == 302
