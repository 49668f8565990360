"""Errors that no API view answered still come back as the API's JSON error shape;
pages outside /api/ keep their HTML."""

import json

import pytest
from django.test import Client


@pytest.mark.django_db
def test_an_unknown_api_route_answers_json_404(owner_api):
    r = owner_api.get("/api/no-such-route/")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_an_unknown_page_keeps_the_html_404(owner):
    c = Client()
    c.force_login(owner)
    r = c.get("/no-such-page/")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")


def test_an_unexpected_api_failure_answers_json_500(rf):
    from backend.config.errorpages import server_error

    r = server_error(rf.get("/api/projects/"))
    assert r.status_code == 500
    assert r["Content-Type"].startswith("application/json")
    assert "logged" in json.loads(r.content)["error"]["message"]


def test_the_500_page_outside_the_api_is_html(rf):
    from backend.config.errorpages import server_error

    r = server_error(rf.get("/p/x/"))
    assert r.status_code == 500 and r["Content-Type"].startswith("text/html")
