"""`GET /healthz`: the database, the broker, the workers' heartbeats and the store's free
disk, 200 when all are fine and 503 otherwise; answered to anyone, with any Host,
before any redirect, and cheaply. With a real worker process: 503 once it is
stopped, 200 again once one is back."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from backend.jobs.models import WorkerHeartbeat


def _health(**extra):
    r = Client().get("/healthz", **extra)
    return r.status_code, r.json()


def _beat(name="cpu@node1", queues=("cpu", "gpu"), age_s=0.0, stopped=False):
    seen = timezone.now() - timedelta(seconds=age_s)
    return WorkerHeartbeat.objects.create(
        name=name,
        pid=1234,
        queues=list(queues),
        started_at=seen,
        seen_at=seen,
        stopped_at=seen if stopped else None,
    )


@pytest.mark.django_db
def test_all_parts_fine_answers_200_to_anyone(settings):
    _beat()
    status, body = _health()
    assert status == 200, body
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == {"database", "broker", "workers", "disk"}
    assert all(part["ok"] for part in checks.values())
    assert checks["broker"]["transport"] in ("redis", "filesystem")
    worker = checks["workers"]["workers"][0]
    assert (worker["name"], worker["pid"], worker["queues"], worker["alive"]) == (
        "cpu@node1",
        1234,
        ["cpu", "gpu"],
        True,
    )
    assert worker["last_heartbeat"]
    assert checks["workers"]["queues"] == {"cpu": ["cpu@node1"], "gpu": ["cpu@node1"]}
    assert checks["disk"]["free_bytes"] > 0


@pytest.mark.django_db
def test_no_login_redirect_host_check_or_page_policy(settings):
    """A load balancer asks by address, over plain HTTP, without a session."""
    settings.SECURE_SSL_REDIRECT = True
    _beat()
    r = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    assert r["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in r.headers
    assert Client().get("/healthz/").status_code == 200
    assert Client().post("/healthz").status_code == 405


@pytest.mark.django_db
def test_a_queue_without_a_live_worker_answers_503():
    status, body = _health()
    assert status == 503
    assert body["status"] == "failing"
    workers = body["checks"]["workers"]
    assert workers["ok"] is False
    assert workers["queues_without_worker"] == ["cpu", "gpu"]

    _beat(name="cpu@node1", queues=("cpu",))
    status, body = _health()
    assert status == 503
    assert body["checks"]["workers"]["queues_without_worker"] == ["gpu"]
    _beat(name="gpu@node2", queues=("gpu",))
    assert _health()[0] == 200


@pytest.mark.django_db
def test_an_old_or_stopped_heartbeat_is_a_gone_worker(settings):
    settings.STATELAB_WORKER_GONE_S = 30
    _beat(name="old@node1", age_s=31)
    _beat(name="stopped@node2", stopped=True)
    status, body = _health()
    assert status == 503
    shown = {w["name"]: (w["alive"], w["stopped"]) for w in body["checks"]["workers"]["workers"]}
    assert shown == {"old@node1": (False, False), "stopped@node2": (False, True)}
    _beat(name="fresh@node3", age_s=29)
    assert _health()[0] == 200


@pytest.mark.django_db
def test_too_little_free_disk_answers_503(settings):
    _beat()
    settings.STATELAB_HEALTH_MIN_FREE_BYTES = 1 << 62
    status, body = _health()
    assert status == 503
    disk = body["checks"]["disk"]
    assert disk["ok"] is False and disk["min_free_bytes"] == 1 << 62
    assert all(body["checks"][p]["ok"] for p in ("database", "broker", "workers"))


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_answers_503_at_once(monkeypatch):
    _beat()
    # Where jobs are sent; Celery lets the environment win over its configuration.
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://127.0.0.1:1/0")
    started = time.monotonic()
    status, body = _health()
    assert time.monotonic() - started < 2.5
    assert status == 503
    broker = body["checks"]["broker"]
    assert broker["ok"] is False and broker["transport"] == "redis"
    assert "127.0.0.1" not in str(body)  # no address or credential in the answer


@pytest.mark.django_db
def test_a_database_that_does_not_answer_answers_503(monkeypatch):
    from backend.config import health

    def broken():
        raise RuntimeError("down")

    monkeypatch.setattr(health.connection, "cursor", broken)
    status, body = _health()
    assert status == 503
    assert body["checks"]["database"] == {
        "ok": False,
        "vendor": health.connection.vendor,
        "error": "RuntimeError",
    }
    assert body["checks"]["workers"]["ok"] is False


@pytest.mark.django_db
def test_it_is_cheap_enough_to_poll_every_second():
    _beat()
    Client().get("/healthz")  # connections warm
    times = []
    for _ in range(20):
        started = time.perf_counter()
        assert Client().get("/healthz").status_code == 200
        times.append(time.perf_counter() - started)
    times.sort()
    assert times[len(times) // 2] < 0.05, times  # the median, in seconds


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_healthz_follows_a_real_worker_stopping_and_coming_back(start_worker, settings):
    settings.STATELAB_WORKER_GONE_S = 3
    fast = {"STATELAB_WORKER_HEARTBEAT_S": "0.5"}

    def wait_for(code, seconds=30):
        deadline = time.monotonic() + seconds
        while True:
            status, body = _health()
            if status == code:
                return body
            assert time.monotonic() < deadline, (code, body)
            time.sleep(0.2)

    proc = start_worker(extra_env=fast)
    body = wait_for(200)
    (first,) = [w for w in body["checks"]["workers"]["workers"] if w["alive"]]
    assert first["queues"] == ["cpu", "gpu"] and first["pid"] == proc.pid

    # Killed: no clean shutdown, so the heartbeat has to age past STATELAB_WORKER_GONE_S.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = time.monotonic()
    body = wait_for(503)
    assert time.monotonic() - killed_at >= 2
    assert body["checks"]["workers"]["queues_without_worker"] == ["cpu", "gpu"]
    assert [w["alive"] for w in body["checks"]["workers"]["workers"]] == [False]

    second = start_worker(extra_env=fast)
    body = wait_for(200)
    alive = [w["pid"] for w in body["checks"]["workers"]["workers"] if w["alive"]]
    assert alive == [second.pid]

    # Stopped cleanly: gone at once, without waiting for the heartbeat to age.
    os.killpg(second.pid, signal.SIGTERM)
    second.wait(timeout=30)
    status, body = _health()
    assert status == 503
    assert [w["stopped"] for w in body["checks"]["workers"]["workers"]] == [False, True]
