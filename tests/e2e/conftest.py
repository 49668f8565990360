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


def write_brackets(
    project, owner, *, n: int = 3000, d: int = 16, seed: int = 5, name: str = "brackets"
):
    """A state set like the demo's, with states *constructed* so that what a range
    selects is known: characters of nested brackets with letters and newlines; in
    source ``l1_h`` (values in [-1, 1], no transform) cell ``k`` (k < 5) is on
    where the nesting depth is at least k + 1, cell 5 inside any bracket, cell 6 on
    letters, the rest noise; ``l1_gate_i`` is a gate (0..1, unsigned) with the
    same cells squashed. Tracks: ``depth`` (scalar 0..5), ``kind`` (discrete),
    ``top_predictions`` (top 3 with weights) and ``surprisal`` (scalar).
    Returns (state set, depth array, tokens)."""
    import numpy as np

    from backend.core.storage import new_dir
    from backend.states.models import StateSet
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(seed)
    tokens: list[str] = []
    depth_now = 0
    while len(tokens) < n:
        r = rng.random()
        if depth_now < 5 and r < 0.32:
            tokens.append("(")
            depth_now += 1
        elif depth_now > 0 and r < 0.55:
            tokens.append(")")
            depth_now -= 1
        elif depth_now == 0 and r < 0.62:
            tokens.append("\n")
        else:
            tokens.append("abcd"[int(rng.integers(0, 4))])
    tokens = tokens[:n]
    vocab = ["(", ")", "\n", "a", "b", "c", "d"]
    index = {t: i for i, t in enumerate(vocab)}
    ids = np.array([index[t] for t in tokens], dtype=np.int32)
    step = np.where(ids == 0, 1, np.where(ids == 1, -1, 0))
    depth = np.cumsum(step).astype(np.float32)
    letters = ids >= 3
    noise = lambda: rng.normal(0, 0.05, n)  # noqa: E731
    h = np.tanh(np.cumsum(rng.normal(0, 0.35, size=(n, d)), axis=0)).astype(np.float64)
    for k in range(5):
        h[:, k] = np.where(depth >= k + 1, 0.8, -0.8) + noise()
    h[:, 5] = np.where(depth > 0, 0.7, -0.7) + noise()
    h[:, 6] = np.where(letters, 0.75, -0.75) + noise()
    h = np.clip(h, -0.999, 0.999).astype(np.float32)
    gate = (1.0 / (1.0 + np.exp(-3.0 * h))).astype(np.float32)
    topk = np.stack([ids, (ids + 1) % len(vocab), (ids + 2) % len(vocab)], axis=1).astype(np.int32)
    weights = np.stack([np.full(n, 0.7), np.full(n, 0.2), np.full(n, 0.1)], axis=1).astype(
        np.float32
    )
    surprisal = (rng.random(n) * 4).astype(np.float32)
    rel, final = new_dir("statesets")
    with StateSetWriter(final) as w:
        w.set_tokens(ids, vocab)
        w.add_source(
            SourceInfo(id="l1_h", name="layer 1 h", layer=1, kind="h", cells=d, transform="none"),
            n,
            lambda a, b: h[a:b],
        )
        w.add_source(
            SourceInfo(
                id="l1_gate_i",
                name="layer 1 gate_i",
                layer=1,
                kind="gate_i",
                cells=d,
                transform="none",
                unsigned=True,
            ),
            n,
            lambda a, b: gate[a:b],
        )
        w.add_annotation(AnnotationInfo(name="depth", kind="scalar", range=[0, 5]), depth)
        w.add_annotation(
            AnnotationInfo(name="kind", kind="discrete", labels=["open", "close", "other"]),
            np.where(ids == 0, 0, np.where(ids == 1, 1, 2)).astype(np.int32),
        )
        w.add_annotation(AnnotationInfo(name="top_predictions", kind="wordvec", k=3), topk, weights)
        w.add_annotation(AnnotationInfo(name="surprisal", kind="scalar"), surprisal)
        w.set_extra({"name": name})
        manifest = w.commit()
    ss = StateSet.objects.create(
        project=project,
        name=name,
        length=n,
        path=rel,
        manifest=manifest.to_json(),
        created_by=owner,
    )
    return ss, depth, tokens


@pytest.fixture
def brackets(user, project):
    """The demo-like state set of :func:`write_brackets`."""
    return write_brackets(project, user)


# --- helpers the browser tests share ---------------------------------------------


def run_at(depth, tokens, level: int = 3, after: int = 40) -> tuple[int, int]:
    """The first range that opens depth `level` with "(" and stays at least that deep."""
    n = len(tokens)
    for a in range(after, n - 1):
        if tokens[a] == "(" and depth[a] == level and depth[a - 1] == level - 1:
            b = a
            while b + 1 < n and depth[b + 1] >= level:
                b += 1
            if 4 <= b - a + 1 <= 30:
                return a, b
    raise AssertionError("no range found")


def api_as(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def selected(user, ss, a, b, **extra) -> list[int]:
    body = {"source": "l1_h", "start": a, "end": b, **extra}
    answer = api_as(user).post(f"/api/statesets/{ss.id}/selection/", body, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["cells"]


def open_page_as(browser, live_server, user, problems):
    """A second browser context signed in as `user`, its problems recorded too."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    ctx = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        reduced_motion="reduce",
        base_url=live_server.url,
        locale="en-GB",
        timezone_id="UTC",
    )
    ctx.set_default_timeout(10_000)
    ctx.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    pg = ctx.new_page()

    def on_console(msg):
        if msg.type == "error":
            problems.add(f"console error ({user}): {msg.text}")

    def on_response(resp):
        if resp.status >= 400:
            problems.add(f"HTTP {resp.status} ({user}): {resp.request.method} {resp.url}")

    pg.on("console", on_console)
    pg.on("response", on_response)
    pg.on("pageerror", lambda err: problems.add(f"page error ({user}): {err}"))
    return ctx, pg
