"""Projects and members through the API: roles decide what each persona may do."""

import pytest

pytestmark = pytest.mark.django_db


def test_owner_creates_project_and_is_owner(owner_api):
    r = owner_api.post("/api/projects/", {"name": "Char models", "description": "d"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["slug"] == "char-models"
    assert r.json()["role"] == "owner"
    listing = owner_api.get("/api/projects/").json()
    assert [p["slug"] for p in listing] == ["char-models"]


def test_duplicate_slug_is_a_clear_error(owner_api, project):
    r = owner_api.post("/api/projects/", {"name": "x", "slug": "brackets"}, format="json")
    assert r.status_code == 400
    assert "taken" in r.json()["error"]["message"]


def test_project_detail_lists_statesets_corpora_models(owner_api, project):
    body = owner_api.get("/api/projects/brackets/").json()
    assert body["slug"] == "brackets"
    assert body["statesets"] == [] and body["corpora"] == [] and body["models"] == []


def test_collaborator_sees_but_cannot_edit(collaborator_api, project):
    assert collaborator_api.get("/api/projects/brackets/").status_code == 200
    r = collaborator_api.patch("/api/projects/brackets/", {"name": "new"}, format="json")
    assert r.status_code == 403
    assert "editor" in r.json()["error"]["message"]


def test_outsider_gets_404(outsider_api, project):
    assert outsider_api.get("/api/projects/brackets/").status_code == 404
    assert outsider_api.get("/api/projects/").json() == []
    assert outsider_api.get("/api/projects/brackets/members/").status_code == 404
    assert outsider_api.delete("/api/projects/brackets/").status_code == 404


def test_missing_and_hidden_projects_answer_alike(outsider_api, project):
    hidden = outsider_api.get("/api/projects/brackets/")
    missing = outsider_api.get("/api/projects/no-such-project/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_owner_manages_members(owner_api, project, outsider):
    # charlie shares no project with alice: he is invited, and joins when he accepts.
    r = owner_api.post(
        "/api/projects/brackets/members/", {"username": "charlie", "role": "editor"}, format="json"
    )
    assert r.status_code == 202
    rows = {
        m["username"]: (m["role"], m["invited"])
        for m in owner_api.get("/api/projects/brackets/members/").json()
    }
    assert rows == {
        "alice": ("owner", False),
        "bob": ("viewer", False),
        "charlie": ("editor", True),
    }
    r = owner_api.post(
        "/api/projects/brackets/members/", {"username": "bob", "role": "editor"}, format="json"
    )
    assert r.status_code == 201 and r.json()["invited"] is False
    r = owner_api.delete("/api/projects/brackets/members/", {"username": "charlie"}, format="json")
    assert r.status_code == 204
    r = owner_api.delete("/api/projects/brackets/members/", {"username": "bob"}, format="json")
    assert r.status_code == 204
    members = owner_api.get("/api/projects/brackets/members/").json()
    assert [m["username"] for m in members] == ["alice"]


def test_last_owner_cannot_leave(owner_api, project):
    r = owner_api.delete("/api/projects/brackets/members/", {"username": "alice"}, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "last_owner"


def test_unknown_role_is_a_clear_error(owner_api, project):
    r = owner_api.post(
        "/api/projects/brackets/members/", {"username": "bob", "role": "god"}, format="json"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"


def test_owner_deletes_project(owner_api, project):
    assert owner_api.delete("/api/projects/brackets/").status_code == 204
    assert owner_api.get("/api/projects/brackets/").status_code == 404
