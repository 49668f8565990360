"""`GET /healthz`: whether this installation can do its work, for a load balancer or a
monitor, and for staff who want to know why not.

It answers JSON with one entry per part: the database (`SELECT 1`), the broker (a
ping, `jobs.health.broker_check`), the workers (each one's last heartbeat and
queues, `jobs.health.workers_check`) and the store's free disk, with 200 when every
part is fine and 503 otherwise. It costs a few milliseconds: two small queries, one
Redis ping (or a look at the filesystem broker's folders) and one `statvfs`, so it
may be polled every second.

`HealthCheckMiddleware` comes first in `MIDDLEWARE` and answers before anything
else runs: no session, no login redirect, no HTTPS redirect, no host check (a load
balancer asks by address), no Content-Security-Policy (the answer is JSON, never
rendered), no usage event. It needs no authentication and tells nothing secret: no
path, address or credential, only states, sizes, worker names and queues.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from backend.core.errors import error_body
from backend.core.storage import store_root
from backend.jobs.health import broker_check, workers_check

HEALTH_PATHS = ("/healthz", "/healthz/")


class HealthCheckMiddleware:
    """Answers `/healthz` itself, before every other middleware (see the module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in HEALTH_PATHS:
            return healthz(request)
        return self.get_response(request)


def healthz(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        body = error_body("method_not_allowed", "GET /healthz only.")
        return JsonResponse(body, status=405, headers={"Allow": "GET, HEAD"})
    checks = health_checks()
    ok = all(check["ok"] for check in checks.values())
    response = JsonResponse({"status": "ok" if ok else "failing", "checks": checks})
    response.status_code = 200 if ok else 503
    response["Cache-Control"] = "no-store"
    return response


def health_checks() -> dict[str, dict[str, Any]]:
    database = database_check()
    if database["ok"]:
        workers = _guarded(workers_check)
    else:
        workers = {"ok": False, "error": "the database does not answer"}
    return {
        "database": database,
        "broker": _guarded(broker_check),
        "workers": workers,
        "disk": _guarded(disk_check),
    }


def _guarded(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return check()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def database_check() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        # A broken connection is not reused by the next poll.
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__}
    ms = round((time.perf_counter() - started) * 1000, 2)
    return {"ok": True, "vendor": connection.vendor, "ms": ms}


def disk_check() -> dict[str, Any]:
    """Free and total bytes of the disk under the store; fine while at least
    `STATELAB_HEALTH_MIN_FREE_BYTES` are free."""
    usage = shutil.disk_usage(store_root())
    minimum = int(settings.STATELAB_HEALTH_MIN_FREE_BYTES)
    return {
        "ok": usage.free >= minimum,
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "min_free_bytes": minimum,
    }
