"""The API's JSON parser: orjson, with the size of the body and its nesting depth
bounded before anything walks the parsed value.

A body over `DATA_UPLOAD_MAX_MEMORY_SIZE` answers 413 (not 400), and is never read
past that limit.

The standard library's decoder recurses once per nesting level, so a 2 KB body of
1,000 nested brackets ended in a RecursionError (a 500 with a logged traceback)
on any JSON route, anonymous ones included. orjson refuses nesting past 1,024
levels itself; the iterative walk here refuses anything deeper than
`MAX_DEPTH`, far beyond what any request of this API holds, with a 400 that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

MAX_DEPTH = 32


def json_depth_check(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ParseError when lists or objects in `value` nest deeper than `max_depth`
    (walked with an explicit stack: no recursion, whatever the input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, Mapping | list):
            continue
        if depth > max_depth:
            raise ParseError(f"The JSON body nests deeper than {max_depth} levels.")
        children = item.values() if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1) for child in children)


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def body_limit() -> int:
    """The largest JSON body accepted, in bytes (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`)."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def read_bounded(stream: Any, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it is longer than `limit` bytes (whatever
    Content-Length said): never more than `limit + 1` bytes are read."""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge(
            f"The JSON body is larger than the limit of {limit / (1 << 20):.0f} MB; "
            "send large data as a file upload."
        )
    return bytes(raw)


class JSONParser(BaseParser):
    """`application/json` bodies, parsed with orjson, bounded in size (413) and depth."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = read_bounded(stream, body_limit()) if stream is not None else b""
        if not raw:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        json_depth_check(data)
        return data
