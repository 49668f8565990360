"""Throttling: the API's rate class, and the mixin of the views that start jobs.

Throttle counts live in the default cache, which every web process shares (Redis, or
files under var/ on the embedded default: `backend.core.cache`), so a limit holds
however many processes serve the requests.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from .clientip import client_ip

log = logging.getLogger(__name__)


class ClientScopedRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, counting per user for signed-in callers and per client
    address for anonymous ones, the address as `client_ip` finds it (X-Forwarded-For
    only behind `STATELAB_TRUSTED_PROXIES` proxies)."""

    def get_ident(self, request: Request) -> str:
        return client_ip(request)

    def allow_request(self, request: Request, view: Any) -> bool:
        # A cache that does not answer lets the request through, as the broker being
        # down lets a job be queued: job submission and matches go on. Logins stay
        # guarded by their lockout, which refuses while it cannot count.
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            log.warning("Rate limit not checked, the cache did not answer: %s", exc)
            return True


class JobSubmissionThrottleMixin:
    """Rate-limits the POSTs of a view that starts jobs (scope `jobs`); its reads are free."""

    throttle_scope = "jobs"

    def get_throttles(self) -> list[Any]:
        if getattr(self, "request", None) is not None and self.request.method == "POST":  # type: ignore[attr-defined]
            return super().get_throttles()  # type: ignore[misc, no-any-return]
        return []
