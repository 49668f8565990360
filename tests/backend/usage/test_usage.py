"""Usage events: every API call by a user is recorded, append-only, without secrets,
and survives the user's deletion."""

import pytest
from rest_framework.test import APIClient

from backend.usage.models import AppendOnlyError, UsageEvent

pytestmark = pytest.mark.django_db


def test_calls_are_recorded_with_route_project_status_duration(owner_api, project):
    owner_api.get("/api/projects/brackets/")
    owner_api.get("/api/projects/nope/")
    events = list(UsageEvent.objects.order_by("at"))
    assert [(e.username, e.method, e.route, e.project, e.status) for e in events] == [
        ("alice", "GET", "api/projects/<slug:slug>/", "brackets", 200),
        ("alice", "GET", "api/projects/<slug:slug>/", "nope", 404),
    ]
    assert all(e.duration_ms > 0 for e in events)


def test_successful_write_recorded_exactly_once(owner_api, project):
    r = owner_api.post("/api/projects/", {"name": "Second"}, format="json")
    assert r.status_code == 201
    writes = UsageEvent.objects.filter(method="POST", route="api/projects/")
    assert writes.count() == 1 and writes.get().status == 201


def test_state_set_routes_record_their_project(owner_api, stateset):
    ss = stateset[0]
    owner_api.get(f"/api/statesets/{ss.id}/")
    assert UsageEvent.objects.get().project == "brackets"


def test_token_and_password_never_stored(owner, project):
    c = APIClient()
    r = c.post(
        "/api/auth/token/",
        {"username": "alice", "password": "a-long-test-password-1"},
        format="json",
    )
    token = r.json()["token"]
    c.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    c.get(f"/api/projects/?token={token}")
    events = UsageEvent.objects.all()
    assert events.count() == 1  # the token request itself is anonymous
    for e in events:
        blob = " ".join(str(v) for v in e.__dict__.values())
        assert token not in blob and "a-long-test-password-1" not in blob


def test_anonymous_calls_are_not_user_events():
    APIClient().get("/api/projects/")
    assert UsageEvent.objects.count() == 0


def test_append_only(owner_api, project):
    owner_api.get("/api/projects/")
    event = UsageEvent.objects.get()
    event.status = 500
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        UsageEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        UsageEvent.objects.update(status=1)


def test_survives_user_deletion(owner_api, owner, project):
    owner_api.get("/api/projects/")
    owner.delete()
    event = UsageEvent.objects.get()
    assert event.username == "alice" and event.user_id is not None


def test_database_refuses_changes_on_postgresql(owner_api, project):
    from django.db import DatabaseError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    owner_api.get("/api/projects/")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("UPDATE usage_usageevent SET status = 500")
