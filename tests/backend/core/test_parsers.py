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


@pytest.mark.django_db
def test_a_json_body_over_the_limit_answers_413_and_is_not_read_whole(owner_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"name": "' + b"x" * 5000 + b'"}'
    r = owner_api.post("/api/projects/", data=body, content_type="application/json")
    assert r.status_code == 413
    assert "larger than the limit" in r.json()["error"]["message"]


def test_read_bounded_stops_after_the_limit():
    import io

    from backend.core.parsers import BodyTooLarge, read_bounded

    class Counting(io.BytesIO):
        asked: list[int] = []

        def read(self, n=-1):
            self.asked.append(n)
            return super().read(n)

    stream = Counting(b"x" * 10_000)
    with pytest.raises(BodyTooLarge):
        read_bounded(stream, 100)
    assert stream.asked == [101]
    assert read_bounded(io.BytesIO(b"abc"), 100) == b"abc"


@pytest.mark.django_db
def test_a_huge_cells_list_is_refused_by_its_length_before_its_items(owner_api, stateset):
    """1.5M items are not validated one by one (that took about 3 s): the length is
    checked first, so even items that are not numbers are not looked at."""
    ss, *_ = stateset
    body = (
        b'{"source": "s0", "threshold": 0.3, "cells": [' + b",".join([b'"x"'] * 1_500_000) + b"]}"
    )
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/", data=body, content_type="application/json"
    )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("cells:") and "100000" in message, message
