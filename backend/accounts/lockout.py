"""Login lockouts (django-axes) and the per-address login rate, as StateLab sets them.

Every login (the browser's `/accounts/login/`, the admin's `/admin/login/`, the API's
`POST /api/auth/token/`) goes through `django.contrib.auth.authenticate` with the
request, where axes' backend comes first. Failures are counted in the shared cache
per user name AND client address (`AXES_LOCKOUT_PARAMETERS`): after
`STATELAB_LOGIN_FAILURES_ALLOWED` failures that pair is refused, whatever the
password, for `STATELAB_LOGIN_FAILURE_WINDOW_S` (each refused try starts the wait
again). The same user from another address, and other users from that address, are
not affected, so nobody can lock a user out from everywhere. A success clears the
pair's count.

On top of that every login form POST counts against the client address's `login`
rate (`STATELAB_LOGIN_RATE`), the bucket the token endpoint's throttle uses, so one
address cannot try many user names quickly either.

The functions here are named by the AXES_* settings in `backend/config/settings/base.py`.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from backend.core.clientip import client_ip
from backend.core.errors import error_body
from backend.core.throttles import ClientScopedRateThrottle


def failure_limit(request: HttpRequest | None, credentials: dict[str, Any] | None) -> int:
    """AXES_FAILURE_LIMIT: failed logins of one user from one address before the lock."""
    return int(settings.STATELAB_LOGIN_FAILURES_ALLOWED)


def cool_off(request: HttpRequest | None = None) -> timedelta:
    """AXES_COOLOFF_TIME: how long a locked (user, address) pair stays refused."""
    return timedelta(seconds=int(settings.STATELAB_LOGIN_FAILURE_WINDOW_S))


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """AXES_USERNAME_CALLABLE: the user name as axes keys and logs it.

    Spellings that reach the same account count together (Unicode NFKC as the login
    form applies it, surrounding spaces, letter case). The name comes back quoted as
    a JSON string: axes keys a (user, address) pair by the two values written one
    after the other, and without the closing quote "alice1" from 23.45.67.89 would
    share the key of "alice" from 123.45.67.89.
    """
    if credentials and credentials.get("username") is not None:
        raw: Any = credentials.get("username")
    else:
        data = getattr(request, "data", None) or request.POST
        raw = data.get("username", "")
    name = unicodedata.normalize("NFKC", str(raw)).strip().casefold()[:150]
    return json.dumps(name)


def lockout_ip(request: HttpRequest) -> str:
    """AXES_CLIENT_IP_CALLABLE: the throttles' rule for the client address."""
    return client_ip(request)


def client_str(
    username: str, ip_address: str, user_agent: str, path_info: Any, request: HttpRequest
) -> str:
    """AXES_CLIENT_STR_CALLABLE: how axes names an attempt in the log."""
    if isinstance(path_info, tuple | list):
        path_info = path_info[0] if path_info else ""
    return f"user {username} from {ip_address or '?'} at {path_info}"


def _wait_text(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _refused(request: HttpRequest, *, code: str, message: str, wait_s: float) -> HttpResponse:
    """429 with `message`: the API's error shape under /api/, else the login page."""
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse(error_body(code, message), status=429)
    else:
        context = {
            "form": AuthenticationForm(request),
            "rate_limited": True,
            "rate_limited_message": message,
            "next": request.POST.get("next") or request.GET.get("next", ""),
        }
        response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(max(1, math.ceil(wait_s)))
    return response


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the answer to a login of a locked (user, address) pair.

    The password was not checked, and the answer is the same for a right or wrong one.
    """
    wait = cool_off(request).total_seconds()
    message = (
        "Too many failed attempts to log in as this user from your address. "
        f"Wait {_wait_text(wait)} before trying again."
    )
    return _refused(request, code="locked_out", message=message, wait_s=wait)


class LoginThrottleMiddleware:
    """Counts each POST of the browser and admin login forms against the client
    address's `login` rate, and answers 429 past it. (The token endpoint counts in the
    same bucket through its DRF throttle.) It runs as a view is chosen, after the CSRF
    check, so a foreign page cannot spend a visitor's logins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._paths: frozenset[str] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def _form_paths(self) -> frozenset[str]:
        if self._paths is None:
            self._paths = frozenset({reverse("login"), reverse("admin:login")})
        return self._paths

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if request.method != "POST" or request.path_info not in self._form_paths():
            return None
        throttle = ClientScopedRateThrottle()
        if throttle.allow_request(request, SimpleNamespace(throttle_scope="login")):  # type: ignore[arg-type]
            return None
        wait = throttle.wait() or 60.0
        message = f"Too many login attempts from your address. Wait {_wait_text(wait)} before trying again."
        return _refused(request, code="throttled", message=message, wait_s=wait)
