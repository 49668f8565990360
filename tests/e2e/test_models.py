"""Models in, states out, in a real browser: upload a model through the form, extract
its states over a corpus, open the state set (stream starts marked); train a model
and watch its learning curve. Everything the page shows is checked against the API.

Models and corpora are tiny, so the jobs (run in-process after commit) take a
second or two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.support.lm import corpus_create, safetensors_bytes, tiny_model

pytestmark = pytest.mark.e2e

VOCAB = ["(", ")", "a", "b", "\n"]
TIMES = "\u00d7"  # the page writes layers x cells with a multiplication sign


def _corpus(project, user, n=300, name="brackets text"):
    rng = np.random.default_rng(5)
    return corpus_create(project, user, rng.integers(0, len(VOCAB), size=n), VOCAB, name=name)


def _files(form, label, name, data, mime="application/octet-stream"):
    form.get_by_label(label, exact=True).set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def test_upload_a_model_extract_and_open_the_state_set(page, signed_in, project, user):
    _corpus(project, user)
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#models")).to_contain_text("No models yet")

    form = page.locator("#model-form")
    _files(form, "Weights", "tiny.safetensors", safetensors_bytes(tiny_model(vocab_size=5)))
    _files(form, "Vocabulary", "vocab.json", json.dumps(VOCAB).encode(), "application/json")
    form.get_by_label("Model name").fill("tiny lstm")
    form.get_by_role("button", name="Upload model").click()
    # 202 with the job that checks the weights on a worker, listed under Jobs
    expect(form.locator(".form-status")).to_have_text(
        "Uploaded tiny.safetensors; the check runs below (and under Jobs)."
    )
    check = form.locator('.form-job .job[data-status="succeeded"]')
    expect(check.locator(".job-kind")).to_have_text("Model upload")
    row = page.locator("#models tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("tiny lstm")
    expect(row.locator("td").nth(2)).to_have_text(f"2 {TIMES} 7 · embedding 5")
    model = page.request.get(f"/api/projects/{project.slug}/").json()["models"][0]
    assert (model["name"], model["spec"]["hidden_size"], model["origin"]) == (
        "tiny lstm",
        7,
        "upload",
    )

    ex = page.locator("#extract-form")
    expect(ex.get_by_label("Model")).to_have_value(model["id"])
    ex.get_by_label("Top-k predictions").fill("3")
    ex.get_by_label("State set name").fill("tiny states")
    ex.get_by_role("button", name="Start extraction").click()
    job = ex.locator('.form-job .job[data-status="succeeded"]')
    expect(job).to_contain_text("State extraction", timeout=60_000)
    link = job.get_by_role("link", name="open the state set")
    expect(link).to_be_visible()
    expect(page.locator("#statesets tbody tr")).to_have_count(1)
    expect(page.locator("#statesets tbody tr td").nth(3)).to_have_text("extraction")

    link.click()
    expect(page.locator("h1")).to_have_text("tiny states")
    figure = page.locator("#figure")
    expect(figure).to_have_attribute("data-ready", "true")
    ss_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    info = page.request.get(f"/api/statesets/{ss_id}/").json()
    assert info["origin"] == "extraction" and info["stream_starts"][0] == 0
    shown = [s for s in info["stream_starts"] if s < 100]  # the default window
    marks = page.locator("#lineplot .stream-mark")
    expect(marks).to_have_count(len(shown))
    assert [int(m.get_attribute("data-pos")) for m in marks.all()] == shown
    expect(marks.first.locator("title")).to_have_text(
        "stream start at position 0: state is zero here"
    )
    first = page.locator('#tokens .token[data-pos="0"]')
    expect(first).to_have_class("token is-stream-start")
    assert "stream start: state is zero here" in first.get_attribute("title")
    kinds = {(s["layer"], s["kind"]) for s in info["sources"]}
    assert {k for _, k in kinds} >= {"h", "c"}


def test_stream_starts_are_marked_where_they_fall_in_the_window(page, signed_in, project, user):
    from backend.states.models import StateSet
    from tests.conftest import write_stateset

    ss, *_ = write_stateset(project, user, n=300, name="streams")
    manifest = dict(ss.manifest, stream_starts=[0, 40, 77, 150])
    StateSet.objects.filter(id=ss.id).update(origin="extraction", manifest=manifest)
    page.goto(f"/statesets/{ss.id}/?pos=30&w=60")
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    marks = page.locator("#lineplot .stream-mark")
    expect(marks).to_have_count(2)
    assert [m.get_attribute("data-pos") for m in marks.all()] == ["40", "77"]
    expect(page.locator("#tokens .token.is-stream-start")).to_have_count(2)
    # moving the window right shows the next start
    page.get_by_role("button", name="Right ▶").click()
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    expect(page.locator("#lineplot .stream-mark")).to_have_count(1)
    assert page.locator("#lineplot .stream-mark").get_attribute("data-pos") == "77"


def test_imported_state_sets_show_no_stream_starts(page, signed_in, stateset):
    page.goto(f"/statesets/{stateset.id}/")
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    assert page.request.get(f"/api/statesets/{stateset.id}/").json()["stream_starts"] == []
    expect(page.locator("#lineplot .stream-mark")).to_have_count(0)


def test_a_refused_model_shows_the_servers_message(page, signed_in, project):
    page.goto(f"/p/{project.slug}/")
    form = page.locator("#model-form")
    _files(form, "Weights", "broken.pt", b"not a model at all" * 10)
    _files(form, "Vocabulary", "vocab.json", json.dumps(VOCAB).encode(), "application/json")
    form.get_by_role("button", name="Upload model").click()
    # the upload is taken (202); the job that checks it refuses the file and says why
    refusal = form.locator('.form-job .job[data-status="failed"] [data-testid="job-error"]')
    expect(refusal).to_contain_text("broken.pt")
    expect(page.locator("#models")).to_contain_text("No models yet")
    assert page.request.get(f"/api/projects/{project.slug}/").json()["models"] == []


@pytest.mark.parametrize("answered", ["queued", "succeeded"])
def test_a_model_upload_answered_with_a_job_lists_the_model_when_it_is_done(
    page, signed_in, project, user, answered
):
    """The finished upload names the job that checks the weights: the job shows under
    Jobs and the model list follows it. The real upload runs (its job, in-process in
    the tests, is done before the answer); the upload's description is replaced by one
    naming a job made here, queued as behind a busy worker (the list refreshes when it succeeds)
    or already done (the list refreshes at once)."""
    from rest_framework.renderers import JSONRenderer

    from backend.jobs.api import JobSerializer
    from backend.jobs.models import Job

    made: list[Job] = []

    def as_job(route):
        # The form sends the files resumably; the weights' upload, once finished,
        # names the job it started (GET /api/uploads/{id}/).
        if route.request.method != "GET":
            route.continue_()
            return
        real = route.fetch()
        upload = real.json()
        if upload["kind"] != "model":
            route.fulfill(response=real)
            return
        model = {"id": Job.objects.get(id=upload["job"]["id"]).result["model"]}
        job = Job.objects.create(
            kind="model_upload",
            project=project,
            created_by=user,
            status=answered,
            progress=1.0 if answered == "succeeded" else 0.0,
            result={"model": model["id"]} if answered == "succeeded" else {},
        )
        made.append(job)
        body = JSONRenderer().render({**upload, "job": JobSerializer(job).data})
        route.fulfill(status=200, content_type="application/json", body=body)

    page.route("**/api/uploads/*/", as_job)
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#models")).to_contain_text("No models yet")
    form = page.locator("#model-form")
    _files(form, "Weights", "tiny.safetensors", safetensors_bytes(tiny_model(vocab_size=5)))
    _files(form, "Vocabulary", "vocab.json", json.dumps(VOCAB).encode(), "application/json")
    form.get_by_role("button", name="Upload model").click()
    expect(form.locator(".form-status")).to_have_text(
        "Uploaded tiny.safetensors; the check runs below (and under Jobs)."
    )
    expect(form.locator(".form-status")).to_have_class("form-status ok")
    (job,) = made
    row = page.locator(f'#jobs .job[data-job-id="{job.id}"]')
    expect(row).to_have_attribute("data-status", answered)
    expect(row.locator(".job-kind")).to_have_text("Model upload")
    if answered == "queued":
        expect(page.locator("#models")).to_contain_text("No models yet")
        model_id = page.request.get(f"/api/projects/{project.slug}/").json()["models"][0]["id"]
        Job.objects.filter(id=job.id).update(
            status="succeeded", progress=1.0, result={"model": model_id}
        )
        expect(row).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#models tbody tr")).to_have_count(1)
    expect(row).to_contain_text("see it under Models")
    listed = page.request.get(f"/api/projects/{project.slug}/").json()["models"]
    expect(page.locator("#extract-form").get_by_label("Model")).to_have_value(listed[0]["id"])


def test_training_shows_the_learning_curve(page, signed_in, project, user):
    corpus = _corpus(project, user, n=600, name="train text")
    page.goto(f"/p/{project.slug}/")
    form = page.locator("#train-form")
    expect(form.get_by_label("Training corpus")).to_have_value(str(corpus.id))
    form.get_by_label("Trained model name").fill("little")
    form.get_by_label("Layers").fill("1")
    form.get_by_label("Hidden size").fill("8")
    form.get_by_label("Epochs").fill("2")
    form.get_by_label("Sequence length").fill("10")
    form.get_by_label("Batch size").fill("4")
    form.get_by_role("button", name="Start training").click()

    job = form.locator('.form-job .job[data-status="succeeded"]')
    expect(job).to_contain_text("Training", timeout=60_000)  # the job runs within the request
    curve = job.get_by_test_id("training-curve")
    expect(curve).to_have_attribute("data-ready", "true")
    api_job = page.request.get(f"/api/projects/{project.slug}/jobs/").json()[0]
    points = api_job["detail"]["curve"]
    assert {p["split"] for p in points} == {"train", "valid"}
    drawn = [p for p in points if p["loss"] is not None]
    expect(curve).to_have_attribute("data-points", str(len(drawn)))
    valid = [p for p in drawn if p["split"] == "valid"]
    expect(curve.locator(".series-valid circle")).to_have_count(len(valid))
    assert curve.locator(".series-train path").get_attribute("d").startswith("M")
    last_valid = valid[-1]["perplexity"]
    expect(curve.locator('.key[data-split="valid"]')).to_contain_text(
        f"perplexity {last_valid:.2f}" if last_valid < 100 else f"perplexity {last_valid:.0f}"
    )
    expect(page.locator("#models tbody tr")).to_have_count(1)
    expect(page.locator("#models tbody tr td").nth(4)).to_have_text("trained here")
    model_id = api_job["result"]["model"]
    assert page.request.get(f"/api/models/{model_id}/").json()["origin"] == "training"
