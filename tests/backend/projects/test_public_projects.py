"""Public projects: every signed-in user reads them with viewer rights; only members write."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def public(project):
    project.public = True
    project.save(update_fields=["public"])
    return project


def test_outsider_lists_a_public_project_flagged_as_such(outsider_api, public, owner):
    from backend.projects.services import project_create

    project_create(user=owner, name="Private one", slug="private-one")
    listed = outsider_api.get("/api/projects/").json()
    assert [(p["slug"], p["public"], p["role"], p["member"]) for p in listed] == [
        ("brackets", True, "viewer", False)
    ]


def test_outsider_reads_a_public_project_and_its_state_sets(outsider_api, public, stateset):
    ss = stateset[0]
    r = outsider_api.get("/api/projects/brackets/")
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert [s["id"] for s in r.json()["statesets"]] == [str(ss.id)]
    assert outsider_api.get(f"/api/statesets/{ss.id}/").status_code == 200
    ctx = outsider_api.get(f"/api/statesets/{ss.id}/context/?source=s0&start=0&end=9")
    assert ctx.status_code == 200 and len(ctx.json()["tokens"]) == 10
    assert outsider_api.get("/api/projects/brackets/members/").status_code == 200


def test_outsider_cannot_write_to_a_public_project(outsider_api, public, stateset):
    ss = stateset[0]
    r = outsider_api.patch("/api/projects/brackets/", {"name": "mine now"}, format="json")
    assert r.status_code == 403
    assert "public" in r.json()["error"]["message"]
    assert outsider_api.delete(f"/api/statesets/{ss.id}/").status_code == 403
    assert outsider_api.post("/api/projects/brackets/corpora/", {}).status_code == 403
    assert (
        outsider_api.post(
            "/api/projects/brackets/members/", {"username": "charlie", "role": "owner"}
        ).status_code
        == 403
    )
    public.refresh_from_db()
    assert public.name == "Brackets" and public.memberships.count() == 2


def test_anonymous_never_sees_a_public_project(api, public):
    assert api().get("/api/projects/brackets/").status_code == 401
    assert api().get("/api/projects/").status_code == 401


def test_only_an_owner_makes_a_project_public(api, owner_api, collaborator, project, outsider_api):
    from backend.projects.services import membership_set

    membership_set(project=project, username=collaborator.username, role="editor")
    editor_api = api(collaborator)
    r = editor_api.patch("/api/projects/brackets/", {"public": True}, format="json")
    assert r.status_code == 403
    assert outsider_api.get("/api/projects/brackets/").status_code == 404

    r = owner_api.patch("/api/projects/brackets/", {"public": True}, format="json")
    assert r.status_code == 200 and r.json()["public"] is True
    assert outsider_api.get("/api/projects/brackets/").status_code == 200

    owner_api.patch("/api/projects/brackets/", {"public": False}, format="json")
    assert outsider_api.get("/api/projects/brackets/").status_code == 404


def test_public_project_page_opens_for_a_signed_in_outsider(client, outsider, public, stateset):
    client.force_login(outsider)
    assert client.get("/p/brackets/").status_code == 200
    assert client.get(f"/statesets/{stateset[0].id}/").status_code == 200
