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


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, op


def test_every_operation_declares_its_error_answers(spec):
    """The error statuses each operation can answer are in the schema, each with the
    error envelope: 401 wherever a caller authenticates, 400/413/415 wherever a body is
    read, 404 wherever an object is named, 403 on every change, 429 where throttled."""
    envelope = {"$ref": "#/components/schemas/Error"}
    missing = []
    for path, method, op in _operations(spec):
        codes = set(op["responses"])
        where = {p["in"] for p in op.get("parameters", [])}
        want = set()
        if op.get("security") != [{}]:
            want |= {"401"}
        if method != "get" and op.get("security") != [{}]:
            want |= {"400", "403"}
        if "requestBody" in op:
            want |= {"400", "413", "415"}
        if "path" in where:
            want |= {"404"}
        if want - codes:
            missing.append(f"{method.upper()} {path}: {sorted(want - codes)}")
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == envelope, (path, code)
    assert not missing, "\n".join(missing)
    # Throttled and job-starting operations say so.
    assert "429" in spec["paths"]["/api/auth/token/"]["post"]["responses"]
    imports = spec["paths"]["/api/projects/{slug}/imports/"]["post"]["responses"]
    assert {"409", "429"} <= set(imports)
    assert "Retry-After" in imports["429"]["headers"]
    assert "503" in spec["paths"]["/api/v2/match"]["get"]["responses"]
    assert "409" in spec["paths"]["/api/jobs/{job_id}/cancel/"]["post"]["responses"]
    # Reads of a list name nothing: no 404 promised there.
    assert "404" not in spec["paths"]["/api/projects/"]["get"]["responses"]


def test_the_extra_errors_name_real_operations(spec):
    from backend.config.openapi import EXTRA_ERRORS

    for path, method in EXTRA_ERRORS:
        assert method.lower() in spec["paths"].get(path, {}), (path, method)


def test_error_answers_match_the_schema(
    spec, api, owner_api, collaborator_api, project, owner, settings, monkeypatch
):
    from rest_framework.throttling import ScopedRateThrottle

    from backend.jobs.models import Job

    def check(path, method, response, status):
        assert response.status_code == status, response.content
        check_against_schema(spec, path, method, status, response.json())

    check("/api/projects/", "get", api().get("/api/projects/"), 401)
    check("/api/projects/{slug}/", "get", owner_api.get("/api/projects/nope/"), 404)
    check("/api/projects/", "post", owner_api.post("/api/projects/", {}, format="json"), 400)
    r = collaborator_api.patch("/api/projects/brackets/", {"name": "x"}, format="json")
    check("/api/projects/{slug}/", "patch", r, 403)
    r = owner_api.post("/api/projects/", "name=x", content_type="text/plain")
    check("/api/projects/", "post", r, 415)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = owner_api.post("/api/projects/", {"name": "x" * 2000}, format="json")
    check("/api/projects/", "post", r, 413)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20 << 20
    job = Job.objects.create(
        kind="corpus_upload", project=project, created_by=owner, status="succeeded"
    )
    check("/api/jobs/{job_id}/cancel/", "post", owner_api.post(f"/api/jobs/{job.id}/cancel/"), 409)
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"jobs": "1/min"})
    url = "/api/projects/brackets/corpora/"
    owner_api.post(url, {}, format="multipart")
    r = owner_api.post(url, {}, format="multipart")
    check("/api/projects/{slug}/corpora/", "post", r, 429)
    assert int(r.headers["Retry-After"]) > 0
