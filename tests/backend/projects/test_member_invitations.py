"""Adding a member by user name tells no one whether the name exists.

Any signed-in user can create a project and so own one; if adding a member answered
"there is no user named x", every user could test names. A name the owner can already
see (a member of a project the owner may read) is added at once; every other name,
whether it belongs to someone or not, is invited: the answer, the member list and
every later answer are the same for both, and only the named user can accept.
"""

import pytest

from backend.projects.models import Invitation, Membership
from tests.support.people import acquaint

pytestmark = pytest.mark.django_db

MEMBERS = "/api/projects/brackets/members/"


def _add(client, username, role="viewer"):
    return client.post(MEMBERS, {"username": username, "role": role}, format="json")


def _without_name_and_time(row):
    return {k: v for k, v in row.items() if k not in ("username", "created_at")}


def test_an_existing_name_and_a_missing_one_answer_alike(owner_api, project, outsider):
    """charlie exists but shares no project with alice; nobody does not exist."""
    real, missing = _add(owner_api, "charlie", "editor"), _add(owner_api, "nobody", "editor")
    assert real.status_code == missing.status_code == 202
    assert real.json()["username"] == "charlie" and missing.json()["username"] == "nobody"
    assert _without_name_and_time(real.json()) == _without_name_and_time(missing.json())
    assert _without_name_and_time(real.json()) == {"role": "editor", "invited": True}

    rows = {m["username"]: m for m in owner_api.get(MEMBERS).json()}
    assert _without_name_and_time(rows["charlie"]) == _without_name_and_time(rows["nobody"])

    # Changing the role and withdrawing answer alike as well.
    for name in ("charlie", "nobody"):
        again = _add(owner_api, name, "viewer")
        assert (again.status_code, again.json()["role"]) == (202, "viewer")
    for name in ("charlie", "nobody"):
        gone = owner_api.delete(MEMBERS, {"username": name}, format="json")
        assert gone.status_code == 204
    assert not Invitation.objects.exists()
    assert not Membership.objects.filter(user=outsider).exists()


def test_invitations_do_not_count_as_owners(owner_api, project, outsider):
    """Were an invited owner counted, stepping down would succeed for a real name and
    fail for a missing one."""
    for name in ("charlie", "nobody"):
        assert _add(owner_api, name, "owner").status_code == 202
        r = _add(owner_api, "alice", "viewer")
        assert r.status_code == 400 and r.json()["error"]["code"] == "last_owner"
        owner_api.delete(MEMBERS, {"username": name}, format="json")


def test_only_owners_see_invitations(owner_api, collaborator_api, project, outsider):
    _add(owner_api, "charlie")
    _add(owner_api, "nobody")
    assert {m["username"] for m in owner_api.get(MEMBERS).json()} == {
        "alice",
        "bob",
        "charlie",
        "nobody",
    }
    listed = collaborator_api.get(MEMBERS).json()
    assert [(m["username"], m["invited"]) for m in listed] == [("alice", False), ("bob", False)]


def test_a_user_the_owner_can_see_is_added_at_once(owner_api, api, project, owner, outsider):
    acquaint(owner, outsider)  # alice and charlie share another project
    r = _add(owner_api, "charlie", "editor")
    assert r.status_code == 201
    assert _without_name_and_time(r.json()) == {"role": "editor", "invited": False}
    assert api(outsider).get("/api/projects/brackets/").json()["role"] == "editor"


def test_members_of_a_public_project_are_seen_by_everyone(
    owner_api, api, make_user, project, outsider
):
    from backend.projects.services import project_create

    erin = make_user("erin")
    lobby = project_create(user=erin, name="Lobby", slug="lobby", public=True)
    assert lobby.public
    # erin's membership is listed to every signed-in user, so naming her tells nothing.
    assert api(outsider).get("/api/projects/lobby/members/").status_code == 200
    assert _add(owner_api, "erin").status_code == 201


def test_the_invited_user_accepts_and_joins(owner_api, api, project, outsider):
    _add(owner_api, "charlie", "editor")
    charlie = api(outsider)
    assert charlie.get("/api/projects/brackets/").status_code == 404
    invitations = charlie.get("/api/invitations/").json()
    assert [(i["project"], i["project_name"], i["role"], i["invited_by"]) for i in invitations] == [
        ("brackets", "Brackets", "editor", "alice")
    ]
    r = charlie.post(f"/api/invitations/{invitations[0]['id']}/accept/")
    assert r.status_code == 201, r.content
    assert (r.json()["slug"], r.json()["role"], r.json()["member"]) == ("brackets", "editor", True)
    assert charlie.get("/api/invitations/").json() == []
    rows = {m["username"]: (m["role"], m["invited"]) for m in owner_api.get(MEMBERS).json()}
    assert rows["charlie"] == ("editor", False)
    assert charlie.post(f"/api/invitations/{invitations[0]['id']}/accept/").status_code == 404


def test_the_invited_user_declines(owner_api, api, project, outsider):
    _add(owner_api, "charlie")
    charlie = api(outsider)
    [invitation] = charlie.get("/api/invitations/").json()
    assert charlie.delete(f"/api/invitations/{invitation['id']}/").status_code == 204
    assert "charlie" not in {m["username"] for m in owner_api.get(MEMBERS).json()}
    assert charlie.get("/api/projects/brackets/").status_code == 404


def test_no_one_else_sees_or_uses_an_invitation(owner_api, collaborator_api, project, outsider):
    _add(owner_api, "charlie")
    invitation = Invitation.objects.get()
    missing = collaborator_api.post("/api/invitations/00000000-0000-0000-0000-000000000000/accept/")
    for client in (owner_api, collaborator_api):
        assert client.get("/api/invitations/").json() == []
        r = client.post(f"/api/invitations/{invitation.id}/accept/")
        assert (r.status_code, r.json()) == (404, missing.json())
        assert client.delete(f"/api/invitations/{invitation.id}/").status_code == 404
    assert collaborator_api.post("/api/invitations/not-an-id/accept/").status_code == 404
    assert Invitation.objects.filter(id=invitation.id).exists()


def test_an_account_made_after_the_invitation_cannot_take_it(owner_api, api, make_user, project):
    """An invitation belongs to the account its name had when the owner sent it."""
    _add(owner_api, "newcomer", "editor")
    newcomer = api(make_user("newcomer"))
    assert newcomer.get("/api/invitations/").json() == []
    invitation = Invitation.objects.get()
    assert newcomer.post(f"/api/invitations/{invitation.id}/accept/").status_code == 404
    # Sent again by the owner, it reaches the account that now has the name.
    assert _add(owner_api, "newcomer", "editor").status_code == 202
    [mine] = newcomer.get("/api/invitations/").json()
    assert newcomer.post(f"/api/invitations/{mine['id']}/accept/").status_code == 201


def test_adding_an_invited_user_one_can_now_see_replaces_the_invitation(
    owner_api, project, owner, outsider
):
    _add(owner_api, "charlie")
    acquaint(owner, outsider)
    assert _add(owner_api, "charlie", "editor").status_code == 201
    assert not Invitation.objects.exists()
    assert Membership.objects.get(project=project, user=outsider).role == "editor"
