"""The browser login, rate-limited per client address and per user name.

Failed attempts are counted in the cache for a window; past the limit the form
answers 429 with a message, whatever the password. A success clears the count.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def _keys(request: HttpRequest) -> list[str]:
    addr = request.META.get("REMOTE_ADDR", "?")
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    return [f"login-fail:addr:{addr}", f"login-fail:user:{username}"]


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limit = settings.STATELAB_LOGIN_FAILURES_ALLOWED
        keys = _keys(request)
        if any((cache.get(k) or 0) >= limit for k in keys):
            response = self.render_to_response(
                {**self.get_context_data(), "rate_limited": True}, status=429
            )
            return response
        response = super().post(request, *args, **kwargs)
        window = settings.STATELAB_LOGIN_FAILURE_WINDOW_S
        if response.status_code == 200:  # the form came back: a failed attempt
            for k in keys:
                cache.add(k, 0, window)
                cache.incr(k)
        else:
            cache.delete_many(keys)
        return response
