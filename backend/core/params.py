"""Query-parameter parsing shared by the API's views: typed values or a 400 that says
which parameter is wrong and why, and ids that answer 404 when malformed."""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.http import Http404

from .errors import ApplicationError


def str_list(raw: str | None) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    return [x.strip() for x in (raw or "").split(",") if x.strip()]


def int_list(raw: str | None, name: str) -> list[int]:
    try:
        return [int(x) for x in str_list(raw)]
    except ValueError as exc:
        raise ApplicationError(f"{name} must be a comma-separated list of integers.") from exc


def int_param(raw: Any, name: str, default: int | None = None) -> int:
    if raw is None or raw == "":
        if default is None:
            raise ApplicationError(f"The parameter '{name}' is required.")
        return default
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"{name} must be an integer, not '{raw}'.") from exc


def float_param(raw: Any, name: str, default: float | None = None) -> float | None:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"{name} must be a number, not '{raw}'.") from exc
    if not math.isfinite(value):
        raise ApplicationError(f"{name} must be a finite number, not '{raw}'.")
    return value


def transform_param(raw: Any) -> str | None:
    """`tanh`, `none`, or None for the source's own transform."""
    if raw in (None, ""):
        return None
    if raw not in ("tanh", "none"):
        raise ApplicationError("transform must be 'tanh' or 'none'.")
    return str(raw)


def uuid_or_404(value: Any) -> uuid.UUID:
    """A malformed id names nothing: 404, like a missing object."""
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Http404("Not found.") from exc
