"""Hostile JSON bodies get a 400 that says why, never a 500 (RecursionError)."""

import pytest


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.django_db
def test_deeply_nested_json_to_an_anonymous_route_answers_400(api):
    r = api().post("/api/auth/token/", data=_nested(1000), content_type="application/json")
    assert r.status_code == 400
    assert "nest" in r.json()["error"]["message"]


@pytest.mark.django_db
def test_deeply_nested_json_inside_a_field_answers_400(owner_api, stateset):
    ss, *_ = stateset
    body = b'{"source": "s0", "cells": ' + _nested(5000) + b', "threshold": 0.3}'
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/", data=body, content_type="application/json"
    )
    assert r.status_code == 400
    assert "nest" in r.json()["error"]["message"] or "JSON" in r.json()["error"]["message"]


@pytest.mark.django_db
def test_broken_json_answers_400_naming_the_problem(owner_api, stateset):
    ss, *_ = stateset
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/", data=b'{"source": ', content_type="application/json"
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]["message"]


def test_depth_check_walks_without_recursion():
    from rest_framework.exceptions import ParseError

    from backend.core.parsers import json_depth_check

    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ParseError):
        json_depth_check(value)
    json_depth_check({"a": [1, {"b": [2, 3]}], "c": "x"})  # shallow: fine
