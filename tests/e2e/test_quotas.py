"""Quotas in the browser: an upload over the user's storage quota, or over the limit
for one upload, is refused, and the project page shows the server's message with the
limit and the current use; nothing is stored."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

TEXT = b"the cell state opens a bracket and the gate closes it again\n" * 20  # 1,220 bytes


def _upload_corpus(page, name="words.txt", data=TEXT):
    form = page.locator("#corpus-form")
    form.get_by_label("Text file (UTF-8)").set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": data}]
    )
    form.get_by_role("button", name="Upload corpus").click()
    return form


def _nothing_stored():
    from backend.artifacts.models import Corpus, Upload
    from backend.jobs.models import Job

    assert (Upload.objects.count(), Job.objects.count(), Corpus.objects.count()) == (0, 0, 0)


def test_an_upload_over_the_storage_quota_shows_the_limit_and_the_use(
    page, signed_in, project, user, problems
):
    from backend.artifacts.models import Corpus, Upload
    from backend.jobs.models import Job
    from backend.projects.models import UserQuota

    Corpus.objects.create(
        project=project,
        name="kept",
        tokenization="word",
        length=1,
        vocab_size=1,
        documents=1,
        path="corpora/kept",
        size_bytes=700,
        created_by=user,
    )
    UserQuota.objects.create(user=user, storage_bytes=1500)
    problems.expect(r"HTTP 413: POST .*/api/projects/brackets/uploads/$")
    problems.expect(r"status of 413")

    page.goto(f"/p/{project.slug}/")
    form = _upload_corpus(page)
    status = form.locator(".form-status")
    expect(status).to_contain_text(
        "This needs 1.2 KB more: over your storage quota of 1.5 KB (you use 700 bytes)."
    )
    expect(status).to_have_class(re.compile(r"\berror\b"))
    assert Corpus.objects.count() == 1  # only the one that was there
    assert Upload.objects.count() == Job.objects.count() == 0


def test_an_upload_over_the_limit_for_one_upload_shows_both_sizes(
    page, signed_in, project, user, problems
):
    from backend.projects.models import UserQuota

    UserQuota.objects.create(user=user, upload_bytes=1000)
    problems.expect(r"HTTP 413: POST .*/api/projects/brackets/uploads/$")
    problems.expect(r"status of 413")

    page.goto(f"/p/{project.slug}/")
    form = _upload_corpus(page)
    expect(form.locator(".form-status")).to_contain_text(
        "The uploaded file (1.2 KB) is larger than the limit of 1,000 bytes for one upload."
    )
    _nothing_stored()
