"""Every answer carries the Content-Security-Policy: pages, API answers (errors too),
the admin and the API docs, whose policy adds only what its Swagger UI needs."""

import base64
import hashlib
import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    directives = (part.strip().partition(" ") for part in header.split(";") if part.strip())
    return {name: value for name, _, value in directives}


@pytest.fixture
def browser(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_pages_api_and_admin_answer_the_strict_policy(browser, owner_api, api, project, stateset):
    ss = stateset[0]
    answers = {
        "login page": Client().get("/accounts/login/"),
        "home page": browser.get("/"),
        "project page": browser.get(f"/p/{project.slug}/"),
        "state-set page": browser.get(f"/statesets/{ss.id}/"),
        "missing page": browser.get("/no-such-page/"),
        "API list": owner_api.get("/api/projects/"),
        "API object": owner_api.get(f"/api/statesets/{ss.id}/"),
        "API 401": api().get("/api/projects/"),
        "API 404": owner_api.get("/api/no-such-route/"),
        "API schema": owner_api.get("/api/schema/"),
        "admin login": Client().get("/admin/login/"),
    }
    for what, response in answers.items():
        assert response.status_code in (200, 401, 404), (what, response.status_code)
        assert _policy(response) == STRICT, what


def test_pages_hold_no_inline_script_or_style(browser, project, stateset):
    """What the strict policy would block: inline scripts (boot data is JSON, which the
    browser never runs), style elements and style attributes."""
    ss = stateset[0]
    for url in ("/", f"/p/{project.slug}/", f"/statesets/{ss.id}/", "/accounts/login/"):
        page = browser.get(url).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert "<style" not in page and " style=" not in page, url
        assert not re.search(r"\son[a-z]+=", page), url


def test_api_docs_widen_the_policy_for_themselves_only(browser):
    page = browser.get("/api/docs/")
    assert page.status_code == 200
    policy = _policy(page)
    html = page.content.decode()
    # The start-up script is a file of its own, so no inline script runs.
    assert policy["script-src"] == "'self'"
    assert not re.search(r"<script>", html)
    # Its one inline style block is allowed by its hash, not by 'unsafe-inline'.
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert policy["style-src"] == f"'self' 'sha256-{digest}'"
    assert policy["img-src"] == "'self' data:"
    rest = {k: v for k, v in policy.items() if k not in ("style-src", "img-src")}
    assert rest == {k: v for k, v in STRICT.items() if k not in ("style-src", "img-src")}

    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', html).group(1)
    script = browser.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("application/javascript")
    assert script.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "SwaggerUIBundle(" in script.content.decode()
