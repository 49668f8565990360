"""The OpenAPI schema's error answers, declared once for every operation.

Every error leaves the API as `{"error": {"code", "message", "details"}}`
(`backend.core.errors`). Which statuses an operation can answer follows mostly from
what it is, so `AutoSchema` derives them instead of each view listing them:

| status | declared on |
| --- | --- |
| 400 | operations that take a body, query parameters, or change something (a refusal in a sentence) |
| 401 | operations that authenticate (no credentials, or an unknown token) |
| 403 | changes (a role too low, a session call without its CSRF token) and reads of one object (a role too low) |
| 404 | operations that name an object: in the path, the query or by id in the body |
| 409, 429 | requests that start a job: an identical one colliding, too many active jobs |
| 413, 415 | operations that read a body: too large, a media type not read |
| 429 | throttled operations (with `Retry-After`) |

`EXTRA_ERRORS` adds what a few operations answer beyond that. Statuses an operation
declares itself are kept as they are.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance, is_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.throttling import ScopedRateThrottle

from backend.core.throttles import JobSubmissionThrottleMixin


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="What went wrong, for programs: invalid, not_found, throttled, busy, …"
    )
    message = serializers.CharField(help_text="What went wrong, in a sentence for the user.")
    details = serializers.DictField(
        help_text="More about it: the fields in error for `invalid`, the job of a failed match."
    )


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorBodySerializer()


UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

DESCRIPTIONS = {
    400: "Invalid request: the message says what is wrong; `details` names fields in error.",
    401: "Not signed in, or an unknown token.",
    403: "Not allowed: a role too low (the message names the one needed), or a session "
    "call without its CSRF token.",
    404: "No such object, or one the caller may not see (the two answer alike).",
    409: "Conflicts with the current state: an identical request being recorded, or "
    "something that exists already.",
    413: "The body, or what it would store, is larger than allowed.",
    415: "A media type this operation does not read.",
    422: "The computation failed; `details.job` names its job.",
    429: "Too many requests, or too many active jobs: try again later (see `Retry-After`).",
    503: "The answer is still being computed; ask again later.",
}

# What an operation answers beyond the rules above: (path, method) -> {status: why}.
EXTRA_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("/api/jobs/{job_id}/cancel/", "POST"): {409: "The job has ended; it cannot be cancelled."},
    ("/api/matches/{match_id}/export/", "GET"): {409: "The match has not finished yet."},
    ("/api/statesets/{stateset_id}/matches/", "POST"): {
        409: "The match was cancelled, or its result is no longer stored: ask again.",
        422: DESCRIPTIONS[422],
    },
    ("/api/hypotheses/{hypothesis_id}/matches/", "POST"): {
        409: "The match was cancelled, or its result is no longer stored: ask again.",
        422: DESCRIPTIONS[422],
    },
    ("/api/usage/", "GET"): {
        403: "Not allowed: another user's usage (staff only), or a project the caller "
        "does not own.",
    },
    ("/api/v2/match", "GET"): {
        409: "The match was cancelled, or its result is no longer stored: ask again.",
        422: DESCRIPTIONS[422],
        503: "The match is still running after the wait LSTMVis' client allows; ask again.",
    },
}

HEADERS = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "How to authenticate: `Token`.",
        }
    },
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds to wait before the next request (rate limits).",
        }
    },
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema with the error answers of every operation."""

    _declared_only = False

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        for status, description in self.error_statuses(operation).items():
            responses.setdefault(str(status), self._error_response(status, description))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> dict[int, str]:
        """The error statuses of this operation, each with what it means here."""
        where = {p["in"] for p in operation.get("parameters", [])}
        body = operation.get("requestBody")
        unsafe = self.method in UNSAFE
        authenticates = bool(self.view.get_authenticators())
        signed_in_only = not all(isinstance(p, AllowAny) for p in self.view.get_permissions())
        starts_jobs = isinstance(self.view, JobSubmissionThrottleMixin) and self.method == "POST"
        codes: set[int] = set()
        if body or "query" in where or unsafe:
            codes.add(400)
        if authenticates:
            codes.add(401)
        if signed_in_only and (unsafe or "path" in where):
            codes.add(403)
        if "path" in where or "query" in where or (body and self._names_an_object()):
            codes.add(404)
        if body:
            codes |= {413, 415}
        if self._throttled():
            codes.add(429)
        if starts_jobs:
            codes |= {409, 429}
        statuses = {code: DESCRIPTIONS[code] for code in codes}
        statuses.update(EXTRA_ERRORS.get((self.path, self.method), {}))
        return statuses

    def _names_an_object(self) -> bool:
        """Whether the request body names an object by id (a uuid field), which may be
        missing or hidden from the caller."""
        declared = self._declared_request()
        candidates = declared.values() if isinstance(declared, dict) else [declared]
        for candidate in candidates:
            if not is_serializer(candidate):
                continue
            fields = force_instance(candidate).fields  # type: ignore[no-untyped-call]
            for field in fields.values():
                schema = self._map_serializer_field(field, "request")  # type: ignore[no-untyped-call]
                if schema.get("format") == "uuid":
                    return True
        return False

    def _throttled(self) -> bool:
        """Whether a rate limit applies (a scoped throttle only to a view with a scope)."""
        scoped = getattr(self.view, "throttle_scope", None) is not None
        return any(
            scoped or not isinstance(throttle, ScopedRateThrottle)
            for throttle in self.view.get_throttles()
        )

    def _declared_request(self) -> Any:
        """The request serializer the view declares, without guessing one."""
        self._declared_only = True
        try:
            return self.get_request_serializer()
        finally:
            self._declared_only = False

    def _get_serializer(self) -> Any:
        if self._declared_only:
            return None
        return super()._get_serializer()  # type: ignore[no-untyped-call]

    def _error_response(self, status: int, description: str) -> dict[str, Any]:
        component = self.resolve_serializer(ErrorSerializer, "response")
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": component.ref}},
        }
        if status in HEADERS:
            response["headers"] = HEADERS[status]
        return response

    def _get_request_body(self, direction: str = "request") -> Any:
        """Also the body a DELETE declares (`extend_schema(request=…)`): removing a member
        or a share names the user in one."""
        if self.method != "DELETE":
            return super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        if self._declared_request() is None:
            return None
        self.method = "POST"
        try:
            return super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        finally:
            self.method = "DELETE"
