"""The pages in a real browser: login, projects, uploads with live jobs, the state-set view.

Each test drives the UI as a user would and then checks through the JSON API or
the database that the UI told the truth.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e


def test_login_shows_errors_then_logs_in_and_out(page, live_server, user):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("correct username and password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_test_id("username")).to_have_text("ada")
    expect(page.locator("#project-list")).to_have_attribute("data-ready", "true")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_create_project_from_the_list_page(page, signed_in):
    page.goto("/")
    expect(page.locator("#project-list")).to_have_attribute("data-ready", "true")
    expect(page.locator("#project-list")).to_contain_text("no projects yet")
    form = page.locator("#new-project")
    form.get_by_label("Name").fill("Children's books")
    form.get_by_label("Description").fill("word model, two layers")
    form.get_by_role("button", name="Create project").click()

    expect(page).to_have_url(re.compile(r"/p/childrens-books/$"))
    expect(page.locator("h1")).to_have_text("Children's books")
    expect(page.locator("#statesets")).to_have_attribute("data-ready", "true")

    listed = page.request.get("/api/projects/").json()
    assert [(p["slug"], p["role"]) for p in listed] == [("childrens-books", "owner")]

    page.goto("/")
    expect(page.locator(".project-card")).to_have_count(1)
    expect(page.locator(".project-card a")).to_have_attribute("href", "/p/childrens-books/")


def test_create_project_shows_the_servers_error(page, signed_in, project, problems):
    problems.expect(r"HTTP 400: POST .*/api/projects/$")
    problems.expect(r"status of 400")
    page.goto("/")
    form = page.locator("#new-project")
    form.get_by_label("Name").fill("Again")
    form.get_by_label("Slug").fill("brackets")
    form.get_by_role("button", name="Create project").click()
    expect(form.locator(".form-status")).to_have_text(
        "The slug 'brackets' is taken; choose another."
    )


def test_corpus_upload_runs_a_job_and_lists_the_corpus(page, signed_in, project):
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#jobs")).to_have_attribute("data-ready", "true")
    expect(page.locator("#corpora")).to_contain_text("No corpora yet")

    form = page.locator("#corpus-form")
    form.get_by_label("Text file (UTF-8)").set_input_files(
        files=[{"name": "tiny.txt", "mimeType": "text/plain", "buffer": b"(a (b) c)\n(d)\n"}]
    )
    form.get_by_label("characters").check()
    form.get_by_role("button", name="Upload corpus").click()

    # The job's progress shows in the form that started it, and under Jobs.
    job = form.locator(".form-job .job")
    expect(job).to_have_attribute("data-status", "succeeded")
    expect(job.locator(".progress")).to_have_attribute("aria-valuenow", "100")
    job_id = job.get_attribute("data-job-id")
    expect(page.locator(f'#jobs .job[data-job-id="{job_id}"]')).to_have_attribute(
        "data-status", "succeeded"
    )
    expect(page.locator("#jobs-active")).to_be_hidden()
    row = page.locator("#corpora tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("tiny")
    expect(row.locator("td").nth(2)).to_have_text("char")

    corpora = page.request.get(f"/api/projects/{project.slug}/").json()["corpora"]
    assert [(c["name"], c["tokenization"]) for c in corpora] == [("tiny", "char")]


def test_bad_zip_import_shows_the_jobs_error(page, signed_in, project):
    page.goto(f"/p/{project.slug}/")
    form = page.locator("#import-form")
    form.get_by_label("Zip file").set_input_files(
        files=[{"name": "broken.zip", "mimeType": "application/zip", "buffer": b"this is no zip"}]
    )
    form.get_by_role("button", name="Upload and import").click()

    job = form.locator(".form-job .job")
    expect(job).to_have_attribute("data-status", "failed")
    error = job.get_by_test_id("job-error")
    expect(error).not_to_be_empty()
    jobs = page.request.get(f"/api/projects/{project.slug}/jobs/").json()
    assert jobs[0]["status"] == "failed"
    expect(error).to_have_text(jobs[0]["error"])
    expect(job.get_by_role("button", name="Cancel")).to_have_count(0)


def test_empty_upload_shows_the_servers_message(page, signed_in, project, problems):
    problems.expect(r"HTTP 400: POST .*/uploads/$")
    problems.expect(r"status of 400")
    page.goto(f"/p/{project.slug}/")
    form = page.locator("#import-form")
    form.get_by_label("Zip file").set_input_files(
        files=[{"name": "empty.zip", "mimeType": "application/zip", "buffer": b""}]
    )
    form.get_by_role("button", name="Upload and import").click()
    expect(form.locator(".form-status")).to_have_text("The uploaded file is empty.")
    expect(page.locator(".job")).to_have_count(0)


def test_jobs_update_live_and_can_be_cancelled(page, signed_in, project, user):
    from backend.jobs.models import Job

    job = Job.objects.create(
        kind="import_lstmvis",
        project=project,
        created_by=user,
        status="running",
        progress=0.25,
        message="Reading states",
    )
    page.goto(f"/p/{project.slug}/")
    row = page.locator(f'#jobs .job[data-job-id="{job.id}"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "25")
    expect(row).to_contain_text("Reading states")

    Job.objects.filter(id=job.id).update(progress=0.8, message="Converting states2")
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "80")
    expect(row).to_contain_text("Converting states2")

    row.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-status", "cancelled")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_stateset_listed_on_its_project_page(page, signed_in, project, stateset):
    page.goto(f"/p/{project.slug}/")
    link = page.locator("#statesets td:first-child a")
    expect(link).to_have_text(stateset.name)
    link.click()
    expect(page).to_have_url(re.compile(rf"/statesets/{stateset.id}/$"))
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")


def _painted(page, selector: str) -> dict[str, int]:
    """Sampled pixels of a canvas: how many are drawn, and how many distinct colours."""
    return page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let drawn = 0; const colours = new Set();
            for (let i = 0; i < d.length; i += 4 * 7) {
                if (d[i + 3] > 0 && !(d[i] > 250 && d[i + 1] > 250 && d[i + 2] > 250)) drawn++;
                colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
            }
            return {drawn, colours: colours.size, width: c.width, height: c.height};
        }""",
        selector,
    )


def test_stateset_page_draws_and_keeps_its_view_in_the_url(page, signed_in, stateset):
    url = f"/statesets/{stateset.id}/"
    page.goto(url)
    figure = page.locator("#figure")
    expect(figure).to_have_attribute("data-ready", "true")

    info = page.request.get(f"/api/statesets/{stateset.id}/").json()
    first = info["sources"][0]
    expect(page.locator("#source option")).to_have_count(len(info["sources"]))
    expect(page.locator(".token")).to_have_count(100)
    expect(page.locator(".token").first).to_have_attribute("data-pos", "0")

    lines = _painted(page, "#lineplot canvas")
    heat = _painted(page, "#heatmap canvas")
    assert lines["drawn"] > 200, lines
    assert heat["drawn"] > 200 and heat["colours"] > 20, heat
    expect(page.locator("#lineplot canvas")).to_have_attribute("role", "img")
    expect(page.locator("#heatmap canvas")).to_have_attribute(
        "aria-label", re.compile(rf"^Heatmap of {first['cells']} cells by 100 tokens")
    )

    # The tokens shown are the corpus tokens the API answers for that window.
    ctx = page.request.get(
        f"/api/statesets/{stateset.id}/context/?source={first['id']}&start=0&end=99"
    ).json()
    shown = page.locator(".token").evaluate_all("els => els.map((e) => e.dataset.token)")
    assert shown == ctx["tokens"]

    # Move right: the window and the URL follow; back and reload restore views.
    page.get_by_role("button", name="Right ▶").click()
    expect(page).to_have_url(re.compile(r"\?pos=50$"))
    expect(figure).to_have_attribute("data-ready", "true")
    expect(page.locator(".token").first).to_have_attribute("data-pos", "50")

    page.get_by_role("spinbutton", name="Position").fill("120")
    page.get_by_role("spinbutton", name="Threshold").fill("0.5")
    page.get_by_role("button", name="Go").click()
    expect(page).to_have_url(re.compile(r"\?pos=120&threshold=0.5$"))
    expect(page.locator(".token").first).to_have_attribute("data-pos", "120")
    expect(page.locator(".token")).to_have_count(100)

    # Select a cell by clicking its heatmap row; it shows as a chip and in the URL.
    page.locator("#heatmap").scroll_into_view_if_needed()
    box = page.locator("#heatmap svg .hit").bounding_box()
    rows = first["cells"]
    page.mouse.click(box["x"] + 30, box["y"] + box["height"] * 2.5 / rows)
    expect(page).to_have_url(re.compile(r"cells=2$"))
    expect(page.locator(".chip")).to_have_text(re.compile(r"cell 2"))
    expect(page.locator("#heatmap svg rect.sel")).to_have_count(1)

    page.reload()
    expect(figure).to_have_attribute("data-ready", "true")
    expect(page.locator(".token").first).to_have_attribute("data-pos", "120")
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.5")
    expect(page.locator(".chip")).to_have_count(1)

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?pos=120&threshold=0.5$"))
    expect(page.locator(".chip")).to_have_count(0)
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?pos=50$"))
    expect(page.locator(".token").first).to_have_attribute("data-pos", "50")

    # The keyboard cursor reads out token, cell and value.
    figure.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#readout")).to_have_text(
        re.compile(r"^Position 51, token .*, cell \d+: [+\u2212]\d\.\d{3}$")
    )


def test_stateset_url_values_are_parsed_strictly(page, signed_in, stateset):
    page.goto(f"/statesets/{stateset.id}/?pos=007&w=30&threshold=abc&cells=1,x")
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    expect(page).to_have_url(re.compile(rf"/statesets/{stateset.id}/\?w=30$"))
    expect(page.locator(".token")).to_have_count(30)
    expect(page.locator(".token").first).to_have_attribute("data-pos", "0")
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.3")


def test_url_codecs_in_the_browser(page, signed_in):
    page.goto("/")
    result = page.evaluate(
        """async () => {
            const { codecs } = await import("/static/webui/js/core/urlstate.js");
            return {
                int007: codecs.int.parse("007") ?? null,
                int42: codecs.int.parse("42"),
                intNeg: codecs.int.parse("-3"),
                intFloat: codecs.int.parse("1.5") ?? null,
                float: codecs.float.parse("0.25"),
                floatBad: codecs.float.parse("1e3") ?? null,
                list: codecs.intList.parse("3,1,2"),
                listBad: codecs.intList.parse("1,,2") ?? null,
                listEmpty: codecs.intList.parse(""),
            };
        }"""
    )
    assert result == {
        "int007": None,
        "int42": 42,
        "intNeg": -3,
        "intFloat": None,
        "float": 0.25,
        "floatBad": None,
        "list": [3, 1, 2],
        "listBad": None,
        "listEmpty": [],
    }


def test_an_imported_state_sets_text_becomes_a_corpus(page, signed_in, project, user):
    from .conftest import write_brackets

    ss, _depth, _tokens = write_brackets(project, user, n=400, name="imported text")
    page.goto(f"/p/{project.slug}/")
    row = page.locator(f'#statesets tr[data-id="{ss.id}"]')
    expect(row).to_contain_text("LSTMVis import")
    row.get_by_role("button", name="Use the text of imported text as a corpus").click()
    expect(page.locator("#corpora tbody tr")).to_have_count(1)
    expect(page.locator("#corpora tbody tr td").first).to_have_text("imported text")
    expect(row.get_by_role("link", name="imported text")).to_have_count(2)  # state set, corpus
    corpus = page.request.get(f"/api/projects/{project.slug}/").json()["corpora"][0]
    assert corpus["length"] == 400
    for form in ("#train-form", "#extract-form"):
        options = page.locator(f"{form} select[name=corpus] option")
        expect(options.filter(has_text="imported text")).to_have_count(1)
