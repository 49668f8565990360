"""Browser fixtures for the end-to-end tests: Debian's Chromium driven by Playwright.

Playwright's sync API keeps an event loop running in the test thread, so Django's
guard against ORM calls from async code must be switched off here (and only here).
Every page records console errors, page errors, failed requests and HTTP answers
>= 400 from before its first navigation; a test that provokes one on purpose says
so with `problems.expect(...)`, and whatever is left fails the test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
PASSWORD = "a-long-test-password-1"


@dataclass
class Problems:
    """What went wrong in the page, minus what the test said it expects."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.seen.append(text)

    def expect(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.seen if not any(e.search(p) for e in self.expected)]

    def assert_none(self) -> None:
        left = self.unexpected()
        assert not left, "problems in the page:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def context(transactional_db, browser, live_server):
    # Asking for the database first means it is flushed only after the browser has
    # closed, so no page is still polling the live server during the flush.
    ctx = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        reduced_motion="reduce",
        base_url=live_server.url,
        locale="en-GB",
        timezone_id="UTC",
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, problems):
    """A page whose problems are collected from the start and checked at the end."""
    pg = context.new_page()

    def on_console(msg):
        if msg.type == "error":
            problems.add(f"console error: {msg.text} @ {msg.location.get('url', '')}")

    def on_request_failed(req):
        failure = req.failure or ""
        # A read cancelled on purpose (a newer view replaced it, or the page left).
        if "ERR_ABORTED" in failure:
            return
        problems.add(f"request failed: {req.method} {req.url}: {failure}")

    def on_response(resp):
        if resp.status >= 400:
            problems.add(f"HTTP {resp.status}: {resp.request.method} {resp.url}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda err: problems.add(f"page error: {err}"))
    pg.on("requestfailed", on_request_failed)
    pg.on("response", on_response)
    yield pg
    pg.close()
    problems.assert_none()


@pytest.fixture
def user(transactional_db):
    from backend.accounts.services import user_create

    return user_create(username="ada", password=PASSWORD)


@pytest.fixture
def signed_in(context, live_server, user):
    """Give the browser context a session for `user` without going through the form."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    return user


@pytest.fixture
def project(user):
    from backend.projects.services import project_create

    return project_create(user=user, name="Brackets", slug="brackets", description="nesting depth")


@pytest.fixture
def stateset(user, project, tmp_path):
    """A state set imported from a small LSTMVis project made by the builder."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from backend.states.models import StateSet
    from backend.states.services import import_start
    from tests.support.lstmvis_builder import build_lstmvis_project, zip_dir

    root = build_lstmvis_project(tmp_path / "src", n=240, d=12)
    job, _ = import_start(
        project=project, user=user, file=SimpleUploadedFile("brackets.zip", zip_dir(root))
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return StateSet.objects.get(id=job.result["stateset"])
