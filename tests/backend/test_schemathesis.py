"""Property-based calls over the whole OpenAPI schema: no input makes the server fail
(5xx), and every answer is one the schema declares, in status, media type and body.

Schemathesis generates requests for every operation from the schema and sends
them, signed in as a project owner, to the WSGI application in-process; the
project, a state set and a job exist, so generated ids sometimes hit real objects.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_input_makes_the_server_fail(owner, project, stateset):
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.authtoken.models import Token

    from backend.core.renderers import FastJSONRenderer

    spec = json.loads(FastJSONRenderer().render(SchemaGenerator().get_schema(public=True)))
    schema = schemathesis.openapi.from_dict(spec)
    app = get_wsgi_application()
    headers = {"Authorization": f"Token {Token.objects.get_or_create(user=owner)[0].key}"}
    seen = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/projects/{slug}/" and operation.method.upper() == "DELETE":
            continue  # would delete the project the other operations are meant to hit

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call(app=app, headers=headers)
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        check()
        seen.append(f"{operation.method.upper()} {operation.path}")
    assert len(seen) >= 20, seen
    assert len(statuses) >= 10 * len(seen)  # the calls really happened
    assert any(s < 300 for s in statuses)  # and some got through validation
