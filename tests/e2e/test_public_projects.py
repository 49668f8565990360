"""A public project in a real browser: listed for every signed-in user with a flag,
readable, with no forms to change it for someone who is not a member."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import write_stateset

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e


def test_public_project_is_listed_flagged_and_read_only(page, signed_in):
    from backend.accounts.services import user_create
    from backend.projects.services import project_create

    grace = user_create(username="grace", password=PASSWORD)
    demo = project_create(user=grace, name="Demo", slug="demo", public=True)
    project_create(user=grace, name="Private", slug="private")
    write_stateset(demo, grace, name="demo states")

    page.goto("/")
    cards = page.locator(".project-card")
    expect(cards).to_have_count(1)
    expect(cards.get_by_test_id("public")).to_have_text("public")
    expect(cards).to_contain_text("viewer")

    cards.get_by_role("link", name="Demo").click()
    expect(page.locator("#project-role")).to_have_text("viewer")
    expect(page.locator("#statesets tbody tr")).to_have_count(1)
    for form in ("#model-form", "#extract-form", "#train-form", "#corpus-form", "#member-form"):
        expect(page.locator(form)).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    page.get_by_role("link", name="demo states").click()
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
