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


WINDOW_MEDIA_TYPE = "application/vnd.statelab.window"


def window_packed(answer: Mapping[str, Any]) -> bytes:
    """A context window as one binary body, for the browser: the values as float32
    rather than 130,000 JSON numbers that take longer to parse than to draw.

    Layout: a little-endian uint32 header length ``n``; ``n`` bytes of JSON (every
    field of the JSON answer but ``values``, plus ``shape``: ``[cells, tokens]``),
    padded with spaces to a multiple of 4; then ``cells x tokens`` little-endian
    float32, row ``i`` being cell ``cells[i]`` (NaN kept).
    """
    import numpy as np

    values = np.ascontiguousarray(answer["values"], dtype="<f4")
    if values.ndim != 2:
        values = values.reshape(len(answer.get("cells") or []), -1)
    header = {k: v for k, v in answer.items() if k != "values"}
    header["shape"] = [int(values.shape[0]), int(values.shape[1])]
    text = orjson.dumps(
        header, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    )
    text += b" " * (-(4 + len(text)) % 4)
    return len(text).to_bytes(4, "little") + text + values.tobytes()
