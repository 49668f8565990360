"""What `/healthz` asks of the job system: does the broker answer, which workers are
alive and which queues have one.

Both are cheap enough for a load balancer that polls every second: the broker is
pinged over one pooled connection (Redis) or its folders looked at (the embedded
filesystem broker), never through a Celery broadcast that waits for replies; the
workers are read from their heartbeat rows (`WorkerHeartbeat`), which each worker
writes every `STATELAB_WORKER_HEARTBEAT_S` seconds.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .models import WorkerHeartbeat
from .queue import celery_app

_REDIS_CLIENTS: dict[str, Any] = {}
_REDIS_LOCK = threading.Lock()


def _redis_client(url: str) -> Any:
    """One client (with its connection pool) per broker URL for the process's life."""
    import redis

    with _REDIS_LOCK:
        client = _REDIS_CLIENTS.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
            _REDIS_CLIENTS[url] = client
        return client


def broker_check() -> dict[str, Any]:
    """`{"ok", "transport", "ms"}` (and `"error"`, the kind of failure, never the URL)."""
    app = celery_app()
    url = str(app.conf.broker_write_url or "")  # where jobs are sent
    transport = url.split("://", 1)[0] or "unknown"
    started = time.perf_counter()
    try:
        if transport in ("redis", "rediss"):
            _redis_client(url).ping()
        elif transport == "filesystem":
            options = app.conf.broker_transport_options or {}
            keys = ("data_folder_in", "data_folder_out")
            for folder in {str(options[k]) for k in keys if options.get(k)}:
                if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                    return _failed(transport, started, "the broker's folder is not writable")
        else:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=1)
    except Exception as exc:
        return _failed(transport, started, type(exc).__name__)
    return {"ok": True, "transport": transport, "ms": _ms(started)}


def _failed(transport: str, started: float, error: str) -> dict[str, Any]:
    return {"ok": False, "transport": transport, "ms": _ms(started), "error": error}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def workers_check() -> dict[str, Any]:
    """The workers seen in the last day, each alive or gone, and for each queue of
    `STATELAB_HEALTH_QUEUES` the live workers that serve it. Fine when every one of
    those queues has at least one."""
    now = timezone.now()
    gone_after = timedelta(seconds=float(settings.STATELAB_WORKER_GONE_S))
    workers = []
    serving: dict[str, list[str]] = {q: [] for q in settings.STATELAB_HEALTH_QUEUES}
    for beat in WorkerHeartbeat.objects.all():
        alive = beat.alive_at(now)
        workers.append(
            {
                "name": beat.name,
                "pid": beat.pid,
                "queues": list(beat.queues),
                "last_heartbeat": beat.seen_at.isoformat(),
                "age_s": round((now - beat.seen_at).total_seconds(), 1),
                "alive": alive,
                "stopped": beat.stopped_at is not None,
            }
        )
        if alive:
            for queue in beat.queues:
                serving.setdefault(queue, []).append(beat.name)
    missing = [q for q in settings.STATELAB_HEALTH_QUEUES if not serving.get(q)]
    return {
        "ok": not missing,
        "queues": serving,
        "queues_without_worker": missing,
        "gone_after_s": gone_after.total_seconds(),
        "workers": workers,
    }
