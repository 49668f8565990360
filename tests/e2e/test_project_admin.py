"""The project page's administration in a real browser: members, deleting data.

Owners manage members; owners and editors delete state sets and corpora after a
confirmation; viewers see all of it read-only. Every change is checked afterwards
through the JSON API.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import write_stateset

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e


def _make_user(username: str):
    from backend.accounts.services import user_create

    return user_create(username=username, password=PASSWORD)


def _corpus(project, owner, name: str):
    """A corpus uploaded through the API; its job runs in-process."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from backend.artifacts.models import Corpus

    client = APIClient()
    client.force_authenticate(owner)
    answer = client.post(
        f"/api/projects/{project.slug}/corpora/",
        {"file": SimpleUploadedFile(f"{name}.txt", b"(a (b) c)\n(d)\n"), "name": name},
        format="multipart",
    )
    assert answer.status_code == 202, answer.content
    job = client.get(f"/api/jobs/{answer.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    return Corpus.objects.get(id=job["result"]["corpus"])


def _accept_dialogs(page) -> list[str]:
    """Accept every confirm() and keep what it asked."""
    asked: list[str] = []

    def on_dialog(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    return asked


def _members(page, slug: str) -> dict[str, str]:
    answer = page.request.get(f"/api/projects/{slug}/members/")
    assert answer.ok
    return {m["username"]: m["role"] for m in answer.json()}


def _invited(page, slug: str) -> dict[str, bool]:
    answer = page.request.get(f"/api/projects/{slug}/members/")
    assert answer.ok
    return {m["username"]: m["invited"] for m in answer.json()}


def test_owner_adds_changes_and_removes_a_member(page, signed_in, project, problems):
    from backend.projects.services import membership_set, project_create

    problems.expect(r"HTTP 400: POST .*/api/projects/brackets/members/$")
    problems.expect(r"status of 400")
    # grace shares a project with ada, so ada can already see her: she is added at once.
    grace = _make_user("grace")
    membership_set(
        project=project_create(user=grace, name="Lab", slug="lab"), username="ada", role="viewer"
    )
    asked = _accept_dialogs(page)
    page.goto(f"/p/{project.slug}/")
    members = page.locator("#members")
    expect(members).to_have_attribute("data-ready", "true")
    expect(members.locator("tbody tr")).to_have_count(1)
    expect(members.locator('tr[data-username="ada"]')).to_have_attribute("data-role", "owner")

    # Add a user ada can see as viewer.
    form = page.locator("#member-form")
    form.get_by_label("User name").fill("grace")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Save member").click()
    expect(form.locator(".form-status")).to_have_text("grace is now viewer.")
    row = members.locator('tr[data-username="grace"]')
    expect(row).to_have_attribute("data-role", "viewer")
    expect(row).to_have_attribute("data-invited", "false")
    expect(row.get_by_label("Role of grace")).to_have_value("viewer")
    expect(form.get_by_label("User name")).to_have_value("")
    assert _members(page, project.slug) == {"ada": "owner", "grace": "viewer"}

    # Change the role from the row's select.
    row.get_by_label("Role of grace").select_option("editor")
    expect(row).to_have_attribute("data-role", "editor")
    expect(page.locator("#members-status")).to_have_text("grace is now editor.")
    assert _members(page, project.slug) == {"ada": "owner", "grace": "editor"}

    # A name ada cannot see is invited, whether or not it belongs to anyone: the page
    # cannot tell a missing user from a real one.
    form.get_by_label("User name").fill("nobody")
    form.get_by_role("button", name="Save member").click()
    expect(form.locator(".form-status")).to_have_text(
        "Invited nobody as viewer; they join when they accept."
    )
    invited = members.locator('tr[data-username="nobody"]')
    expect(invited).to_have_attribute("data-invited", "true")
    expect(invited).to_have_attribute("data-role", "viewer")
    expect(invited.get_by_test_id("invited")).to_have_text("invited")
    expect(invited.get_by_role("button", name="Remove nobody")).to_have_count(0)
    assert _invited(page, project.slug) == {"ada": False, "grace": False, "nobody": True}

    # The invitation's role changes from its row; it stays an invitation.
    invited.get_by_label("Role of nobody").select_option("editor")
    expect(page.locator("#members-status")).to_have_text(
        "Invited nobody as editor; they join when they accept."
    )
    expect(invited).to_have_attribute("data-role", "editor")
    expect(invited).to_have_attribute("data-invited", "true")

    # The last owner cannot step down; the select shows the real role again.
    own = members.locator('tr[data-username="ada"]')
    own.get_by_label("Role of ada").select_option("viewer")
    expect(page.locator("#members-status")).to_have_text(
        "A project needs at least one owner; make someone else owner first."
    )
    expect(members).to_have_attribute("data-ready", "true")
    expect(own.get_by_label("Role of ada")).to_have_value("owner")

    # Remove a member and withdraw an invitation, after confirming each.
    row.get_by_role("button", name="Remove grace").click()
    expect(row).to_have_count(0)
    expect(page.locator("#members-status")).to_have_text("grace was removed.")
    invited.get_by_role("button", name="Withdraw the invitation of nobody").click()
    expect(invited).to_have_count(0)
    expect(page.locator("#members-status")).to_have_text("The invitation of nobody was withdrawn.")
    expect(members).to_have_attribute("data-ready", "true")
    assert asked == ["Remove grace from this project?", "Withdraw the invitation of nobody?"]
    assert _invited(page, project.slug) == {"ada": False}


def test_owner_stepping_down_or_leaving_updates_the_page(page, signed_in, project, live_server):
    from backend.projects.services import membership_set

    _make_user("grace")
    membership_set(project=project, username="grace", role="owner")
    asked = _accept_dialogs(page)
    page.goto(f"/p/{project.slug}/")
    members = page.locator("#members")
    expect(members).to_have_attribute("data-ready", "true")

    # With another owner in place, stepping down works and the page reloads as editor.
    members.locator('tr[data-username="ada"]').get_by_label("Role of ada").select_option("editor")
    expect(page.locator("#project-role")).to_have_text("editor")
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    expect(page.locator("#member-form")).to_have_count(0)
    expect(page.locator("#members select")).to_have_count(0)
    assert _members(page, project.slug) == {"ada": "editor", "grace": "owner"}

    # Back to owner through the API; leaving goes to the project list.
    membership_set(project=project, username="ada", role="owner")
    page.reload()
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Remove ada").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("#project-list")).to_have_attribute("data-ready", "true")
    assert asked == ["Leave this project? You will no longer see it."]
    assert page.request.get(f"/api/projects/{project.slug}/").status == 404


def test_viewer_sees_members_and_data_read_only(page, signed_in, user):
    from backend.projects.services import member_add, membership_set, project_create

    grace = _make_user("grace")
    project = project_create(user=grace, name="Shared", slug="shared")
    membership_set(project=project, username=user.username, role="viewer")
    write_stateset(project, grace)
    _corpus(project, grace, "tiny")
    member_add(project=project, username="zoe", role="viewer", by=grace)  # owners only see it

    page.goto(f"/p/{project.slug}/")
    for view in ("#members", "#statesets", "#corpora"):
        expect(page.locator(view)).to_have_attribute("data-ready", "true")
    members = page.locator("#members")
    expect(members.locator("tbody tr")).to_have_count(2)
    expect(members.locator('tr[data-username="grace"] td').nth(1)).to_have_text("owner")
    expect(members.locator('tr[data-username="ada"] td').nth(1)).to_have_text("viewer")
    expect(page.locator("#statesets tbody tr")).to_have_count(1)
    expect(page.locator("#corpora tbody tr")).to_have_count(1)

    expect(page.locator("#member-form")).to_have_count(0)
    expect(page.locator("#members select")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove grace")).to_have_count(0)
    expect(page.locator('[data-action="delete"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)


def test_editor_gets_delete_buttons_but_no_member_form(page, signed_in, user):
    from backend.projects.services import membership_set, project_create

    grace = _make_user("grace")
    project = project_create(user=grace, name="Shared", slug="shared")
    membership_set(project=project, username=user.username, role="editor")
    write_stateset(project, grace)

    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    expect(page.locator("#statesets")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("button", name="Delete state set synthetic")).to_be_visible()
    expect(page.locator("#member-form")).to_have_count(0)
    expect(page.locator("#members select")).to_have_count(0)


def test_owner_deletes_a_corpus_and_a_state_set(page, signed_in, project, user):
    ss, *_ = write_stateset(project, user, name="to-go")
    write_stateset(project, user, name="to-keep", seed=8)
    corpus = _corpus(project, user, "tiny")
    asked = _accept_dialogs(page)

    page.goto(f"/p/{project.slug}/")
    statesets, corpora = page.locator("#statesets"), page.locator("#corpora")
    expect(statesets.locator("tbody tr")).to_have_count(2)
    expect(corpora.locator("tbody tr")).to_have_count(1)

    corpora.get_by_role("button", name="Delete corpus tiny").click()
    expect(corpora).to_contain_text("No corpora yet")
    expect(corpora).to_have_attribute("data-ready", "true")
    assert page.request.get(f"/api/projects/{project.slug}/").json()["corpora"] == []
    assert page.request.get(f"/api/corpora/{corpus.id}/").status == 404

    statesets.get_by_role("button", name="Delete state set to-go").click()
    expect(statesets.locator("tbody tr")).to_have_count(1)
    expect(statesets.locator(f'tr[data-id="{ss.id}"]')).to_have_count(0)
    expect(statesets).to_have_attribute("data-ready", "true")
    listed = page.request.get(f"/api/projects/{project.slug}/").json()["statesets"]
    assert [s["name"] for s in listed] == ["to-keep"]
    assert page.request.get(f"/api/statesets/{ss.id}/").status == 404

    assert asked == [
        'Delete the corpus "tiny"? This cannot be undone.',
        'Delete the state set "to-go"? This cannot be undone.',
    ]


def test_dismissing_the_confirmation_keeps_the_state_set(page, signed_in, project, user):
    ss, *_ = write_stateset(project, user)
    asked: list[str] = []

    def on_dialog(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"/p/{project.slug}/")
    statesets = page.locator("#statesets")
    expect(statesets).to_have_attribute("data-ready", "true")
    button = statesets.get_by_role("button", name="Delete state set synthetic")
    button.click()
    expect(button).to_be_enabled()
    assert asked == ['Delete the state set "synthetic"? This cannot be undone.']
    expect(statesets.locator("tbody tr")).to_have_count(1)
    assert page.request.get(f"/api/statesets/{ss.id}/").ok


def test_deleting_shows_the_servers_error(page, signed_in, project, user, problems):
    problems.expect(r"HTTP 404: DELETE .*/api/statesets/")
    problems.expect(r"status of 404")
    from backend.states.models import StateSet

    ss, *_ = write_stateset(project, user)
    _accept_dialogs(page)
    page.goto(f"/p/{project.slug}/")
    statesets = page.locator("#statesets")
    expect(statesets.locator("tbody tr")).to_have_count(1)

    # Someone else deleted it meanwhile: the server's message shows, the list refreshes.
    StateSet.objects.filter(id=ss.id).delete()
    statesets.get_by_role("button", name="Delete state set synthetic").click()
    error = page.locator("#statesets-error")
    expect(error).to_be_visible()
    expect(statesets).to_contain_text("No state sets yet")
    gone = page.request.get(f"/api/statesets/{ss.id}/")
    assert gone.status == 404
    expect(error).to_have_text(gone.json()["error"]["message"])
