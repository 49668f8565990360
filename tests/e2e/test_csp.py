"""The Content-Security-Policy in a real browser: every page works under it.

Each page is loaded with a listener for `securitypolicyviolation` in place before
its first script, and the page fixture fails on console errors (which is where
Chromium reports a blocked script or style as well). A page must also have drawn
what it draws, so that a blocked script cannot pass as an empty page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} in ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def csp_page(context, page):
    context.add_init_script(RECORD_VIOLATIONS)
    return page


def _violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def _has_policy(response) -> None:
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy


def test_pages_run_under_the_policy(csp_page, live_server, user, project, stateset):
    page = csp_page
    _has_policy(page.goto("/accounts/login/"))
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("#project-list")).to_have_attribute("data-ready", "true")
    expect(page.locator(".project-card")).to_have_count(1)
    assert _violations(page) == []

    _has_policy(page.goto(f"/p/{project.slug}/"))
    expect(page.locator("#statesets td:first-child a")).to_have_text(stateset.name)
    expect(page.locator("#members")).to_have_attribute("data-ready", "true")
    expect(page.locator("#jobs")).to_have_attribute("data-ready", "true")
    assert _violations(page) == []

    _has_policy(page.goto(f"/statesets/{stateset.id}/"))
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    expect(page.locator(".token").first).to_be_visible()
    assert _violations(page) == []


def test_api_docs_run_under_their_policy(csp_page, signed_in):
    page = csp_page
    response = page.goto("/api/docs/")
    policy = response.headers["content-security-policy"]
    # The docs page widens styles by one hash and images by data:, nothing else.
    assert "script-src 'self';" in policy + ";" and "unsafe" not in policy, policy
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("StateLab API")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() > 20
    # An operation opens and shows its responses, the error envelope among them.
    page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/projects/$")).first.click()
    expect(page.locator(".responses-table").first).to_contain_text("401")
    assert _violations(page) == []


def test_admin_runs_under_the_policy(csp_page, live_server, project, problems):
    from backend.accounts.services import user_create

    # The admin's pages name no icon, so the browser asks for /favicon.ico: a 404.
    problems.expect(r"/favicon\.ico$")

    user_create(username="root", password=PASSWORD, admin=True)
    page = csp_page
    _has_policy(page.goto("/admin/"))
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    assert _violations(page) == []

    page.goto("/admin/projects/project/")
    expect(page.locator("#result_list")).to_contain_text(project.slug)
    page.locator("#result_list a", has_text=project.slug).first.click()
    expect(page.locator("input[name=name]")).to_have_value(project.name)
    assert _violations(page) == []

    page.goto("/admin/accounts/user/add/")
    expect(page.locator("input[name=username]")).to_be_visible()
    assert _violations(page) == []
