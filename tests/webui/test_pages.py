"""The page shells without a browser: access, boot data, the JSON twin, static files."""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path

import pytest
from django.test import Client

STATIC = Path(__file__).resolve().parents[2] / "webui" / "static" / "webui"


@pytest.fixture
def stateset(owner, project, tmp_path, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from backend.states.models import StateSet
    from backend.states.services import import_start
    from tests.support.lstmvis_builder import build_lstmvis_project, zip_dir

    root = build_lstmvis_project(tmp_path / "src", n=60, d=4)
    upload = SimpleUploadedFile("p.zip", zip_dir(root))
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = import_start(project=project, user=owner, file=upload)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return StateSet.objects.get(id=job.result["stateset"])


def _client(user=None) -> Client:
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


def _boot(response) -> dict:
    m = re.search(
        rb'<script id="boot-data" type="application/json">(.*?)</script>', response.content
    )
    assert m, "the page has no boot data"
    return json.loads(m.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/p/brackets/", f"/statesets/{uuid.uuid4()}/"])
def test_pages_need_a_login(project, path):
    response = _client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
def test_login_page_renders_with_favicon_and_styles():
    body = _client().get("/accounts/login/").content.decode()
    assert 'rel="icon" href="/static/webui/favicon.svg"' in body
    assert "/static/webui/css/app.css" in body
    assert 'name="username"' in body and 'name="password"' in body


@pytest.mark.django_db
def test_home_lists_through_the_api_and_links_its_json_twin(owner):
    response = _client(owner).get("/")
    assert response.status_code == 200
    assert _boot(response)["api"]["projects"] == "/api/projects/"
    assert _boot(response)["api"]["invitations"] == "/api/invitations/"
    body = response.content.decode()
    assert 'id="invitations"' in body
    assert 'href="/api/projects/"' in body
    assert 'action="/accounts/logout/"' in body and 'method="post"' in body
    assert "alice" in body


@pytest.mark.django_db
def test_project_page_boot_data(owner, project):
    response = _client(owner).get("/p/brackets/")
    assert response.status_code == 200
    boot = _boot(response)
    assert boot["slug"] == "brackets"
    assert boot["role"] == "owner"
    assert boot["api"]["jobs"] == "/api/projects/brackets/jobs/"
    assert boot["api"]["members"] == "/api/projects/brackets/members/"
    assert boot["api"]["statesetBase"] == "/api/statesets/"
    assert boot["api"]["corpusBase"] == "/api/corpora/"
    assert boot["username"] == "alice"
    assert boot["homeUrl"] == "/"
    body = response.content.decode()
    assert 'id="import-form"' in body
    assert 'id="members"' in body and 'id="member-form"' in body


@pytest.mark.django_db
def test_viewer_gets_no_upload_forms(collaborator, project):
    response = _client(collaborator).get("/p/brackets/")
    assert response.status_code == 200
    assert _boot(response)["role"] == "viewer"
    body = response.content.decode()
    assert 'id="import-form"' not in body and 'id="corpus-form"' not in body
    assert 'id="members"' in body and 'id="member-form"' not in body


@pytest.mark.django_db
def test_editor_gets_upload_forms_but_no_member_form(collaborator, project):
    from backend.projects.services import membership_set

    membership_set(project=project, username=collaborator.username, role="editor")
    response = _client(collaborator).get("/p/brackets/")
    boot = _boot(response)
    assert boot["role"] == "editor" and boot["username"] == "bob"
    body = response.content.decode()
    assert 'id="import-form"' in body and 'id="corpus-form"' in body
    assert 'id="member-form"' not in body


@pytest.mark.django_db
def test_extract_form_offers_float16_storage(owner, project):
    body = _client(owner).get("/p/brackets/").content.decode()
    at = body.index('id="extract-form"')
    form = body[at : body.index("</form>", at)]
    assert '<select name="dtype">' in form
    assert '<option value="float32" selected>float32</option>' in form
    assert '<option value="float16">float16 (half the disk)</option>' in form


@pytest.mark.django_db
def test_outsider_gets_404_for_the_project_page(outsider, project):
    response = _client(outsider).get("/p/brackets/")
    assert response.status_code == 404
    assert b"Not found" in response.content


@pytest.mark.django_db
def test_missing_project_is_404(owner):
    assert _client(owner).get("/p/nope/").status_code == 404


@pytest.mark.django_db
def test_stateset_page_boot_data(owner, stateset):
    response = _client(owner).get(f"/statesets/{stateset.id}/")
    assert response.status_code == 200
    boot = _boot(response)
    assert boot["id"] == str(stateset.id)
    assert boot["api"]["context"] == f"/api/statesets/{stateset.id}/context/"
    assert boot["api"]["selection"] == f"/api/statesets/{stateset.id}/selection/"
    assert boot["api"]["matches"] == f"/api/statesets/{stateset.id}/matches/"
    assert boot["api"]["search"] == f"/api/statesets/{stateset.id}/search/"
    assert boot["api"]["jobBase"] == "/api/jobs/" and boot["api"]["matchBase"] == "/api/matches/"
    # The description the page starts from is the JSON twin's answer.
    twin = _client(owner).get(f"/api/statesets/{stateset.id}/").json()
    assert boot["stateset"]["sources"] == twin["sources"]
    assert boot["stateset"]["annotations"] == twin["annotations"]
    assert boot["guide"] is None  # only the demo opens on a guided view
    body = response.content.decode()
    assert f'href="/api/statesets/{stateset.id}/"' in body
    assert "/static/webui/vendor/d3-7.9.2.min.js" in body
    for name in ("Range start", "Range end", "Off before", "Off after", "Add cell", "Search"):
        assert f"<span>{name}</span>" in body, name
    assert '<section id="hypothesis-panel" class="panel" hidden></section>' in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("", 0, 59),  # the defaults: pos 0, 100 tokens, cut at the corpus' end (60)
        ("?pos=20&w=10", 20, 29),
        ("?pos=55&w=10", 50, 59),  # clamped so that the window ends at the last token
        ("?pos=-4&w=3", 0, 9),  # at least 10 tokens, from 0
        ("?pos=x&w=", 0, 59),  # unreadable numbers take the defaults
    ],
)
def test_the_first_window_is_named_and_preloaded(owner, stateset, query, start, end):
    """The analysis page names the window it draws first (with the page's own URL
    defaults and limits) and preloads it in its head, packed as the page reads it;
    what the preload fetches is the window the context API answers for it."""
    client = _client(owner)
    response = client.get(f"/statesets/{stateset.id}/{query}")
    boot = _boot(response)
    source = boot["stateset"]["sources"][0]["id"]
    api = f"/api/statesets/{stateset.id}/context/"
    assert boot["firstWindow"] == f"{api}?source={source}&start={start}&end={end}"
    href = html.escape(f"{boot['firstWindow']}&values=f32")
    preload = f'<link rel="preload" href="{href}" as="fetch" crossorigin="anonymous">'
    assert preload in response.content.decode()
    window = client.get(f"{boot['firstWindow']}&values=f32")
    assert window.status_code == 200
    assert window["Content-Type"].startswith("application/")
    other = boot["stateset"]["sources"][-1]["id"]
    named = _boot(client.get(f"/statesets/{stateset.id}/?source={other}&w=10"))
    assert named["firstWindow"] == f"{api}?source={other}&start=0&end=9"
    unknown = _boot(client.get(f"/statesets/{stateset.id}/?source=nope&w=10"))
    assert unknown["firstWindow"] == f"{api}?source={source}&start=0&end=9"


@pytest.mark.django_db
def test_outsider_gets_404_for_the_stateset_page(outsider, stateset):
    assert _client(outsider).get(f"/statesets/{stateset.id}/").status_code == 404


@pytest.mark.django_db
def test_unknown_stateset_is_404(owner):
    assert _client(owner).get(f"/statesets/{uuid.uuid4()}/").status_code == 404


def test_boot_data_cannot_break_out_of_its_script():
    from django.template.loader import render_to_string

    html = render_to_string(
        "webui/base.html", {"boot": {"name": "</script><script>alert(1)</script>"}}
    )
    assert "</script><script>alert(1)" not in html
    assert "\\u003C/script\\u003E" in html


def test_static_files_are_in_place():
    for rel in [
        "favicon.svg",
        "css/app.css",
        "vendor/d3-7.9.2.min.js",
        "vendor/d3-LICENSE.txt",
        "js/lib/d3.js",
        "js/core/api.js",
        "js/core/urlstate.js",
        "js/pages/home.js",
        "js/pages/project.js",
        "js/pages/stateset.js",
        "js/pages/analysis-state.js",
        "js/core/drag.js",
        "js/views/tracks.js",
        "js/views/matches.js",
        "js/views/histogram.js",
        "js/views/overview.js",
    ]:
        assert (STATIC / rel).is_file(), rel
    assert "Copyright" in (STATIC / "vendor" / "d3-LICENSE.txt").read_text()


def test_modules_import_only_relative_paths():
    """No bare specifiers: without a bundler the browser cannot resolve them."""
    for js in (STATIC / "js").rglob("*.js"):
        for spec in re.findall(r'^import .*? from "([^"]+)";', js.read_text(), flags=re.M):
            assert spec.startswith("../") or spec.startswith("./"), f"{js.name}: {spec}"


@pytest.mark.django_db(transaction=True)
def test_a_hypothesis_link_opens_the_analysis_page_for_its_readers(
    client, owner, collaborator, outsider, project
):
    """/h/<id>/: a reader of the state set goes on to its analysis page with the
    hypothesis open; a reader of the hypothesis only gets the page over the
    hypothesis' routes (and a link token kept in the session, so that the page's
    requests work without it); anyone else, and a withdrawn link, 404."""
    from rest_framework.test import APIClient

    from tests.conftest import write_stateset

    ss = write_stateset(project, owner)[0]
    alice = APIClient()
    alice.force_authenticate(owner)
    r = alice.post(
        "/api/hypotheses/",
        {"stateset": str(ss.id), "source": "s0", "title": "T", "threshold": 0.3,
         "cells_added": [1, 2], "visibility": "project"},
        format="json",
    )  # fmt: skip
    assert r.status_code == 201, r.content
    hid = r.json()["id"]
    page = f"/h/{hid}/"
    client.force_login(collaborator)  # a viewer of the project
    r = client.get(page + "?v=1")
    assert r.status_code == 302 and r["Location"] == f"/statesets/{ss.id}/?h={hid}&v=1"
    client.force_login(outsider)
    assert client.get(page).status_code == 404
    token = alice.patch(f"/api/hypotheses/{hid}/", {"visibility": "link"}, format="json").json()[
        "link"
    ]
    r = client.get(page + f"?link={token}")
    assert r.status_code == 200
    boot = _boot(r)
    assert boot["hypothesis"] == {"id": hid, "version": None, "reader": True}
    assert boot["api"]["context"] == f"/api/hypotheses/{hid}/context/"
    assert [x["id"] for x in boot["stateset"]["sources"]] == ["s0"]
    # the page's own requests carry no token: the session has it
    assert client.get(f"/api/hypotheses/{hid}/context/?start=0&end=3").status_code == 200
    assert (
        client.post(
            f"/api/hypotheses/{hid}/selection/",
            {"start": 0, "end": 3},
            content_type="application/json",
        ).status_code
        == 200
    )
    m = client.post(
        f"/api/hypotheses/{hid}/matches/", {"cells": [1, 2], "threshold": 0.3},
        content_type="application/json",
    )  # fmt: skip
    assert m.status_code == 200, m.content
    assert client.get(f"/api/hypotheses/{hid}/matches/{m.json()['id']}/").status_code == 200
    assert client.get(f"/api/hypotheses/{hid}/search/?q=a").status_code == 200
    # the state set itself stays closed to them
    assert client.get(f"/api/statesets/{ss.id}/context/?start=0&end=3").status_code == 404
    assert client.get(f"/api/matches/{m.json()['id']}/").status_code == 404
    # the owner withdraws the link: the session's token opens nothing any more
    alice.patch(f"/api/hypotheses/{hid}/", {"rotate_link": True}, format="json")
    assert client.get(f"/api/hypotheses/{hid}/context/?start=0&end=3").status_code == 404
    assert client.get(page).status_code == 404


@pytest.mark.django_db
def test_every_page_links_the_api_documentation(owner, project):
    for path in ("/", "/p/brackets/"):
        body = _client(owner).get(path).content.decode()
        assert 'href="/api/docs/">API documentation</a>' in body, path
