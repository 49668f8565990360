"""A corpus uploaded through the project page in pieces (tus): the connection is lost
part-way, the page is reloaded, the same file is chosen again, and the upload
continues where the server stopped -- no byte before that point is sent again --
and the corpus job starts and succeeds. Pieces are made small through the setting."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import expect

from tests.support.texts import word_text

pytestmark = pytest.mark.e2e

PIECE = 64 << 10
WORDS = [b"open", b"close", b"(", b")", b"a", b"b", b"\n"]


def _text(size: int) -> bytes:
    return word_text(size, WORDS, a=5, b=3)


def test_upload_resumes_after_a_lost_connection_and_a_reload(
    page, signed_in, project, problems, settings, tmp_path
):
    from backend.artifacts.models import Corpus, ResumableUpload, Upload
    from backend.jobs.models import Job

    settings.STATELAB_RESUMABLE_CHUNK_BYTES = PIECE
    data = _text(10 * PIECE + 999)
    path = tmp_path / "brackets.txt"
    path.write_bytes(data)

    patches: list[int] = []
    page.on(
        "request",
        lambda req: (
            patches.append(int(req.headers["upload-offset"])) if req.method == "PATCH" else None
        ),
    )

    def drop_after_three(route):
        if route.request.method == "PATCH" and len(patches) > 3:
            route.abort()  # the connection goes, as on a train entering a tunnel
        else:
            route.continue_()

    problems.expect(r"request failed: PATCH .*/api/uploads/")
    problems.expect(r"console error: Failed to load resource")
    page.route("**/api/uploads/*/", drop_after_three)
    page.goto(f"/p/{project.slug}/")
    form = page.locator("#corpus-form")
    form.get_by_label("Text file (UTF-8)").set_input_files(str(path))
    form.get_by_role("button", name="Upload corpus").click()
    expect(form.locator(".form-status")).to_contain_text("The connection was lost")
    bar = form.locator(".upload-progress")
    expect(bar).to_have_attribute("data-sent", str(3 * PIECE))
    expect(bar).to_contain_text("192.0 KB of 641.0 KB")
    upload = ResumableUpload.objects.get()
    assert upload.offset == 3 * PIECE and upload.state == "receiving"

    page.unroute("**/api/uploads/*/")
    page.reload()
    before = len(patches)
    form = page.locator("#corpus-form")
    form.get_by_label("Text file (UTF-8)").set_input_files(str(path))
    expect(form.locator(".form-status")).to_contain_text("continues where it stopped")
    form.get_by_role("button", name="Upload corpus").click()
    expect(form.locator(".form-status")).to_have_text(
        "Uploaded brackets.txt; its progress shows below."
    )
    expect(form.locator(".upload-progress")).to_contain_text("(resumed)")
    job_view = form.locator('.form-job .job[data-status="succeeded"]')
    expect(job_view).to_be_visible()

    # The second page sent the rest only, from where the server stood.
    assert patches[before] == 3 * PIECE
    assert patches[before:] == list(range(3 * PIECE, len(data), PIECE))
    assert ResumableUpload.objects.count() == 1
    job = Job.objects.get(id=ResumableUpload.objects.get().job_id)
    assert job.status == "succeeded", job.error
    assert Upload.objects.get(id=job.params["upload"]).sha256 == hashlib.sha256(data).hexdigest()
    assert Corpus.objects.get(id=job.result["corpus"]).name == "brackets"
    expect(page.locator("#corpora tbody tr")).to_have_count(1)
