"""The page shells without a browser: access, boot data, the JSON twin, static files."""

from __future__ import annotations

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
    body = response.content.decode()
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
