from playwright.sync_api import expect
from tests.conftest import write_stateset
from .test_project_admin import _corpus, _make_user


def test_shot(page, signed_in, project, user, problems):
    problems.expect(r"400")
    from backend.projects.services import membership_set
    _make_user("grace")
    membership_set(project=project, username="grace", role="editor")
    write_stateset(project, user)
    _corpus(project, user, "tiny")
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    form = page.locator("#member-form")
    form.get_by_label("User name").fill("nobody")
    form.get_by_role("button", name="Save member").click()
    expect(form.locator(".form-status")).to_contain_text("no user")
    page.screenshot(path="/tmp/shot.png", full_page=True)
