"""Invitations to join a project, in a real browser, from both sides.

An owner who adds a name they cannot already see invites it: the members panel
marks the row "invited" and says so. The invited user finds the invitation on their
home page and accepts it (the project then shows in their list) or declines it;
an invitation withdrawn meanwhile answers 404 and leaves the list.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, open_page_as

pytestmark = pytest.mark.e2e


def _make_user(username: str):
    from backend.accounts.services import user_create

    return user_create(username=username, password=PASSWORD)


@contextmanager
def _page_as(browser, live_server, user, problems):
    """A page in a browser context of its own, signed in as `user`; what goes wrong
    in it is recorded with the test's other problems."""
    ctx, pg = open_page_as(browser, live_server, user, problems)
    try:
        yield pg
    finally:
        ctx.close()


def _accept_dialogs(page) -> list[str]:
    """Accept every confirm() and keep what it asked."""
    asked: list[str] = []

    def on_dialog(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    return asked


def _home(page):
    page.goto("/")
    expect(page.locator("#invitations")).to_have_attribute("data-ready", "true")
    expect(page.locator("#project-list")).to_have_attribute("data-ready", "true")


def _invite(owner, project, username: str, role: str = "viewer") -> None:
    from backend.projects.services import member_add

    member_add(project=project, username=username, role=role, by=owner)


def test_an_invited_user_accepts_on_the_home_page(
    page, signed_in, project, browser, live_server, problems
):
    bob = _make_user("bob")  # shares no project with ada: she cannot see him

    # Ada invites bob through the members form.
    page.goto(f"/p/{project.slug}/")
    members = page.locator("#members")
    expect(members).to_have_attribute("data-ready", "true")
    form = page.locator("#member-form")
    form.get_by_label("User name").fill("bob")
    form.get_by_label("Role").select_option("editor")
    form.get_by_role("button", name="Save member").click()
    expect(form.locator(".form-status")).to_have_text(
        "Invited bob as editor; they join when they accept."
    )
    row = members.locator('tr[data-username="bob"]')
    expect(row).to_have_attribute("data-invited", "true")
    expect(row.get_by_test_id("invited")).to_have_text("invited")
    expect(row.get_by_role("button", name="Withdraw the invitation of bob")).to_be_visible()

    with _page_as(browser, live_server, bob, problems) as bob_page:
        _home(bob_page)
        panel = bob_page.locator("#invitations-panel")
        expect(panel).to_be_visible()
        expect(panel.get_by_role("heading", name="Invitations")).to_be_visible()
        item = panel.locator(f'li[data-project="{project.slug}"]')
        expect(item).to_have_count(1)
        expect(item).to_contain_text("Brackets")
        expect(item.locator("code")).to_have_text(project.slug)
        expect(item.locator(".meta")).to_contain_text("as editor · invited by ada")
        listed = bob_page.locator("#project-list")
        expect(listed).to_contain_text("You have no projects yet")
        expect(listed.locator(f'[data-slug="{project.slug}"]')).to_have_count(0)

        item.get_by_role("button", name="Accept the invitation to Brackets").click()
        status = bob_page.locator("#invitations-status")
        expect(status).to_have_text("You joined Brackets as editor.")
        expect(status).to_have_class(re.compile(r"\bok\b"))
        expect(panel.locator("#invitations")).to_contain_text("No invitations are waiting for you.")
        expect(bob_page.locator("#invitations")).to_have_attribute("data-ready", "true")
        card = listed.locator(f'[data-slug="{project.slug}"]')
        expect(card).to_be_visible()
        expect(listed).to_have_attribute("data-ready", "true")
        expect(card).to_contain_text("editor")
        assert bob_page.request.get("/api/invitations/").json() == []

        # The link in the message opens the project, as an editor.
        status.get_by_role("link", name="Brackets").click()
        expect(bob_page).to_have_url(f"{live_server.url}/p/{project.slug}/")
        expect(bob_page.locator("#project-role")).to_have_text("editor")
        expect(bob_page.locator("#members")).to_have_attribute("data-ready", "true")

    # Ada's list now shows bob as a member.
    page.reload()
    expect(members).to_have_attribute("data-ready", "true")
    expect(row).to_have_attribute("data-invited", "false")
    expect(row).to_have_attribute("data-role", "editor")
    expect(row.get_by_role("button", name="Remove bob")).to_be_visible()


def test_an_invited_user_declines_one_and_keeps_another(
    page, signed_in, user, project, browser, live_server, problems
):
    from backend.projects.services import project_create

    bob = _make_user("bob")
    grace = _make_user("grace")
    other = project_create(user=grace, name="Optics", slug="optics")
    _invite(user, project, "bob", "viewer")
    _invite(grace, other, "bob", "owner")

    with _page_as(browser, live_server, bob, problems) as bob_page:
        asked = _accept_dialogs(bob_page)
        _home(bob_page)
        items = bob_page.locator("#invitations li")
        expect(items).to_have_count(2)
        optics = items.filter(has_text="Optics")
        expect(optics.locator(".meta")).to_contain_text("as owner · invited by grace")

        bob_page.get_by_role("button", name="Decline the invitation to Brackets").click()
        expect(bob_page.locator("#invitations-status")).to_have_text(
            "You declined the invitation to Brackets."
        )
        expect(items).to_have_count(1)
        expect(items.first).to_have_attribute("data-project", "optics")
        expect(bob_page.locator("#invitations")).to_have_attribute("data-ready", "true")
        assert asked == [
            "Decline the invitation to Brackets? Its owners would have to invite you again."
        ]
        expect(bob_page.locator("#project-list")).to_contain_text("You have no projects yet")
        invitations = bob_page.request.get("/api/invitations/").json()
        assert [i["project"] for i in invitations] == ["optics"]
        assert bob_page.request.get(f"/api/projects/{project.slug}/").status == 404

    # The owner's list no longer shows the invitation.
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    expect(page.locator("#members tbody tr")).to_have_count(1)
    expect(page.locator('#members tr[data-username="bob"]')).to_have_count(0)


def test_no_invitations_no_section(page, signed_in, project):
    _home(page)
    expect(page.locator("#invitations-panel")).to_be_hidden()
    expect(page.locator(f'#project-list [data-slug="{project.slug}"]')).to_be_visible()


def test_an_invitation_withdrawn_meanwhile(
    page, signed_in, user, project, browser, live_server, problems
):
    from backend.projects.services import membership_remove

    problems.expect(r"HTTP 404 \(bob\): POST .*/api/invitations/[^/]+/accept/$")
    problems.expect(r"console error \(bob\): .*status of 404")
    bob = _make_user("bob")
    _invite(user, project, "bob")

    with _page_as(browser, live_server, bob, problems) as bob_page:
        _home(bob_page)
        button = bob_page.get_by_role("button", name="Accept the invitation to Brackets")
        expect(button).to_be_visible()
        membership_remove(project=project, username="bob")
        button.click()
        status = bob_page.locator("#invitations-status")
        expect(status).to_have_class(re.compile(r"\berror\b"))
        expect(status).not_to_be_empty()
        expect(bob_page.locator("#invitations li")).to_have_count(0)
        expect(bob_page.locator("#invitations")).to_have_attribute("data-ready", "true")
        expect(bob_page.locator("#invitations-panel")).to_be_visible()
        expect(bob_page.locator("#project-list")).to_contain_text("You have no projects yet")
    assert page.request.get(f"/api/projects/{project.slug}/members/").json()[0]["username"] == "ada"
