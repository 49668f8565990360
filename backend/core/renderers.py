"""JSON rendering with orjson: a 100-token x 650-cell context window is 65,000 floats,
and the standard library's encoder spends most of the request's time on them."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import Any

import orjson
from django.utils.functional import Promise
from rest_framework.renderers import JSONRenderer


def _default(obj: Any) -> Any:
    if isinstance(obj, Promise):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class FastJSONRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(
            data, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )
