"""The API's JSON parser: orjson, with the nesting depth bounded before anything
walks the parsed value.

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
from rest_framework.exceptions import ParseError
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


class JSONParser(BaseParser):
    """`application/json` bodies, parsed with orjson and depth-checked."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        json_depth_check(data)
        return data
