"""The OpenAPI document is valid, and real responses match what it promises."""

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec(owner_api):
    r = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    return r.json()


def _resolve(spec, node):
    """Inline every $ref, so one validator sees the whole response schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(spec, target)
        return {k: _resolve(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v) for v in node]
    return node


def check_against_schema(spec, path, method, status, body):
    op = spec["paths"][path][method]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    OAS30Validator(_resolve(spec, schema)).validate(body)


def test_schema_is_valid_openapi(spec):
    validate(spec)
    assert "/api/statesets/{stateset_id}/context/" in spec["paths"]
    assert "/api/v2/context" in spec["paths"]


def test_docs_page_serves_its_own_assets(owner_api):
    r = owner_api.get("/api/docs/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page


def test_responses_match_the_schema(spec, owner_api, project, stateset, owner):
    from backend.jobs.models import Job

    ss = stateset[0]
    job = Job.objects.create(kind="corpus_upload", project=project, created_by=owner)
    cases = [
        ("/api/projects/", "get", "/api/projects/"),
        ("/api/projects/{slug}/", "get", "/api/projects/brackets/"),
        ("/api/projects/{slug}/members/", "get", "/api/projects/brackets/members/"),
        ("/api/projects/{slug}/jobs/", "get", "/api/projects/brackets/jobs/"),
        ("/api/jobs/{job_id}/", "get", f"/api/jobs/{job.id}/"),
        ("/api/statesets/{stateset_id}/", "get", f"/api/statesets/{ss.id}/"),
    ]
    for path, method, url in cases:
        r = getattr(owner_api, method)(url)
        assert r.status_code == 200, url
        check_against_schema(spec, path, method, 200, r.json())
    r = owner_api.post("/api/projects/", {"name": "Other"}, format="json")
    check_against_schema(spec, "/api/projects/", "post", 201, r.json())
    # LSTMVis' info route answers a list of {project, info}, and its schema says so.
    r = owner_api.get("/api/v2/info")
    assert r.status_code == 200 and isinstance(r.json(), list)
    check_against_schema(spec, "/api/v2/info", "get", 200, r.json())
