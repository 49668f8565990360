"""Who sees which usage, on every usage route: a user sees their own, a project's owner
their project (other members folded into one row), staff everything; nobody else's
events otherwise. Bad parameters are 400s that say what is wrong."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from backend.usage.selectors import TABLES
from tests.support.usage import at_day, days_ago, record, request_event

pytestmark = pytest.mark.django_db

ROUTES = ["/api/usage/", *(f"/api/usage/{name}/" for name in TABLES)]


def _as(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def events(project, owner, collaborator, outsider):
    """alice and bob work in brackets, charlie in a project of his own."""
    from backend.projects.services import project_create

    project_create(user=outsider, name="Secret", slug="secret-garden")
    day = days_ago(1)
    record(owner, "project.opened", at=at_day(day, 9))
    record(owner, "match.run", at=at_day(day, 10), cells=3, latency_ms=40.0, cached=False)
    record(owner, "hypothesis.saved", at=at_day(day, 11), object_id="h-1", hypothesis="h-1")
    record(collaborator, "project.opened", at=at_day(day, 12))
    record(collaborator, "hypothesis.commented", at=at_day(day, 13), hypothesis="h-1")
    record(outsider, "project.opened", project="secret-garden", at=at_day(day, 14))
    record(outsider, "match.run", project="secret-garden", at=at_day(day, 15), latency_ms=9.0)
    request_event(owner, 12.0, at=at_day(day, 10))
    request_event(outsider, 30.0, at=at_day(day, 10), project="secret-garden")


def _kinds(answer):
    return answer["totals"]["by_kind"]


def test_a_user_sees_only_their_own_usage(events, owner):
    answer = _as(owner).get("/api/usage/").json()
    assert answer["scope"] == {
        "scope": "user",
        "label": "user alice",
        "project": None,
        "user": "alice",
    }
    assert _kinds(answer) == {"project.opened": 1, "match.run": 1, "hypothesis.saved": 1}
    assert [r["user"] for r in answer["tables"]["users"]] == ["alice"]
    assert answer["totals"]["latency"]["context"]["count"] == 1
    assert answer["totals"]["active_users"] == 1


@pytest.mark.parametrize("route", ROUTES)
def test_no_usage_route_shows_another_users_events(route, events, collaborator, outsider):
    """bob asks for alice's usage (403) and charlie sees only his own, on every route,
    as JSON and as CSV."""
    for fmt in ("", "?format=csv") if route != "/api/usage/" else ("",):
        r = _as(collaborator).get(route + (fmt or "?") + "&user=alice")
        assert r.status_code == 403, (route, r.status_code)
        assert "staff" in r.json()["error"]["message"]
        r = _as(outsider).get(route + fmt)
        assert r.status_code == 200, (route, r.content[:200])
        body = b"".join(r.streaming_content) if r.streaming else r.content
        text = body.decode()
        for other in ("alice", "bob", "brackets", "h-1"):
            assert other not in text, (route, fmt, other)


@pytest.mark.parametrize("route", ROUTES)
def test_every_usage_route_checks_the_project(route, events, owner, collaborator, outsider):
    """?project=: the owner gets it, a viewer member 403, an outsider 404 (as for a
    missing project), anonymous callers 401."""
    url = route + "?project=brackets"
    assert _as(owner).get(url).status_code == 200
    r = _as(collaborator).get(url)
    assert r.status_code == 403 and "owner" in r.json()["error"]["message"]
    r = _as(outsider).get(url)
    assert r.status_code == 404 and "brackets" not in r.content.decode()
    assert _as(outsider).get(route + "?project=nope").status_code == 404
    assert APIClient().get(url).status_code == 401


def test_a_project_owner_sees_the_project_with_other_members_folded(events, owner):
    answer = _as(owner).get("/api/usage/?project=brackets").json()
    assert answer["scope"]["scope"] == "project"
    assert _kinds(answer) == {
        "project.opened": 2,
        "match.run": 1,
        "hypothesis.saved": 1,
        "hypothesis.commented": 1,
    }
    assert answer["totals"]["active_users"] == 2
    assert answer["tables"]["users"] == [
        {"user": "alice", "actions": 3, "active_days": 1, "projects": 1},
        {"user": "(other users)", "actions": 2, "active_days": None, "projects": 1},
    ]
    assert "bob" not in str(answer)
    assert answer["tables"]["hypotheses"][0]["hypothesis"] == "h-1"
    assert answer["tables"]["hypotheses"][0]["events"] == 2


def test_staff_see_the_whole_lab_and_anyone_in_it(events, staff, owner):
    c = _as(staff)
    lab = c.get("/api/usage/").json()
    assert lab["scope"]["scope"] == "lab"
    assert sum(_kinds(lab).values()) == 7
    assert {r["user"] for r in lab["tables"]["users"]} == {"alice", "bob", "charlie"}
    assert {r["project"] for r in lab["tables"]["projects"]} == {"brackets", "secret-garden"}
    assert lab["totals"]["latency"]["context"]["count"] == 2
    alice = c.get("/api/usage/?user=alice").json()
    assert alice["scope"]["user"] == "alice" and sum(_kinds(alice).values()) == 3
    garden = c.get("/api/usage/?project=secret-garden").json()
    assert _kinds(garden) == {"project.opened": 1, "match.run": 1}
    assert [r["user"] for r in garden["tables"]["users"]] == ["charlie"]
    assert c.get("/api/usage/?user=nobody").status_code == 404
    # a deleted user's events keep their name, and staff still find them by it
    owner.delete()
    gone = c.get("/api/usage/?user=alice").json()
    assert sum(_kinds(gone).values()) == 3


def test_a_user_may_name_themself(events, collaborator):
    answer = _as(collaborator).get("/api/usage/?user=bob").json()
    assert answer["scope"]["user"] == "bob"
    assert _kinds(answer) == {"project.opened": 1, "hypothesis.commented": 1}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2024-13-01", "from must be a date as YYYY-MM-DD, not '2024-13-01'."),
        ("to=yesterday", "to must be a date as YYYY-MM-DD, not 'yesterday'."),
        ("from=2024-05-02&to=2024-05-01", "from (2024-05-02) must not be after to (2024-05-01)."),
        ("from=2020-01-01&to=2024-01-01", "A range holds at most 1000 days; this one has 1462."),
        ("from=1999-12-31&to=2000-01-02", "from must be a day between 2000-01-01 and 2999-12-31."),
        ("project=brackets&user=alice", "Give either project or user, not both."),
    ],
)
def test_bad_parameters_are_400s_that_say_why(query, message, events, owner):
    for route in ("/api/usage/", "/api/usage/actions/"):
        r = _as(owner).get(f"{route}?{query}")
        assert r.status_code == 400, (route, r.content)
        assert r.json()["error"]["message"] == message


def test_table_route_format_and_name_are_checked(events, owner):
    r = _as(owner).get("/api/usage/actions/?format=xlsx")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "format must be json or csv, not 'xlsx'."
    assert _as(owner).get("/api/usage/nothing_here/").status_code == 404


def test_every_table_downloads_as_csv_with_its_columns(events, staff):
    day = days_ago(1).isoformat()
    for name, (columns, _) in TABLES.items():
        r = _as(staff).get(f"/api/usage/{name}/?format=csv&from={day}&to={day}")
        assert r.status_code == 200, name
        assert r["Content-Type"].startswith("text/csv")
        assert f"usage-{name}-lab-{day}-{day}.csv" in r["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
        assert rows[0] == columns
        as_json = _as(staff).get(f"/api/usage/{name}/?from={day}&to={day}").json()
        assert as_json["columns"] == columns
        assert len(rows) - 1 == len(as_json["rows"]), name
    actions = _as(staff).get(f"/api/usage/actions/?format=csv&from={day}&to={day}")
    lines = b"".join(actions.streaming_content).decode().splitlines()
    assert f"{day},match.run,2" in lines and f"{day},project.opened,3" in lines


def test_the_range_bounds_what_is_counted(events, owner):
    before = days_ago(3).isoformat()
    answer = _as(owner).get(f"/api/usage/?from={before}&to={before}").json()
    assert answer["range"] == {"from": before, "to": before}
    assert _kinds(answer) == {}
    assert answer["tables"]["daily_active"] == [{"day": before, "users": 0}]
