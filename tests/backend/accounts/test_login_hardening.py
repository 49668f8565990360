"""Login limits under attack: each test tries an attack and shows that it fails.

Throttle counts and lockouts live in the cache every web process shares (the real
Redis of the suite, or files on the embedded default); the client address comes from
X-Forwarded-For only behind `STATELAB_TRUSTED_PROXIES` proxies; a lockout holds a
(user name, client address) pair, never a user everywhere. See docs/security.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

pytestmark = pytest.mark.django_db

RIGHT = "a-long-test-password-1"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def login_rate(monkeypatch):
    """Sets the `login` rate (the test settings make it 1000/min)."""

    def set_rate(rate: str) -> None:
        monkeypatch.setattr(
            ScopedRateThrottle,
            "THROTTLE_RATES",
            {"login": rate, "jobs": "1000/min", "matches": "1000/min"},
        )

    return set_rate


def token(username, password, *, addr="198.51.100.1", xff=None):
    extra = {"REMOTE_ADDR": addr}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", **extra
    )


def form_login(client, username, password, *, path="/accounts/login/", addr="198.51.100.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=addr)


def _without_csrf(content: bytes) -> str:
    text = content.decode()
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)
    return re.sub(r'name="csrf-token" content="[^"]*"', "", text)


# X-Forwarded-For


def test_rotating_forwarded_for_does_not_lift_the_token_limits(owner, login_rate, settings):
    """A new X-Forwarded-For on each try used to be a new client: 60 wrong passwords,
    none refused, then the right one worked."""
    settings.STATELAB_TRUSTED_PROXIES = 0  # the default
    login_rate("20/min")
    codes = [token("alice", f"wrong-{i}", xff=f"203.0.113.{i}").status_code for i in range(60)]
    # the 10th failure locks alice at this address (the rate would stop the 21st)
    assert codes[:9] == [400] * 9 and set(codes[9:]) == {429}
    r = token("alice", RIGHT, xff="203.0.113.250")
    assert r.status_code == 429
    assert "token" not in r.json()


def test_rotating_forwarded_for_does_not_lift_the_rate_for_many_names(db, login_rate):
    """The rate alone (every try under another user name, so no lockout counts)."""
    login_rate("5/min")
    codes = [token(f"user{i}", "x", xff=f"203.0.113.{i}").status_code for i in range(8)]
    assert codes == [400] * 5 + [429] * 3


def test_behind_one_trusted_proxy_the_address_it_saw_counts(db, login_rate, settings):
    """Behind one proxy the right-most entry is the one the proxy wrote; entries to its
    left are the client's own and change nothing."""
    settings.STATELAB_TRUSTED_PROXIES = 1
    login_rate("3/min")
    proxy = "10.0.0.2"
    codes = [
        token(f"user{i}", "x", addr=proxy, xff=f"6.6.6.{i}, 192.0.2.50").status_code
        for i in range(5)
    ]
    assert codes == [400, 400, 400, 429, 429]
    # another client behind the same proxy has a budget of its own
    assert token("user9", "x", addr=proxy, xff="6.6.6.6, 192.0.2.51").status_code == 400


@pytest.mark.parametrize(
    ("proxies", "remote", "xff", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),
        (0, "192.0.2.1", None, "192.0.2.1"),
        (1, "10.0.0.2", "6.6.6.6, 192.0.2.50", "192.0.2.50"),
        (1, "10.0.0.2", "192.0.2.50", "192.0.2.50"),
        (1, "10.0.0.2", None, "10.0.0.2"),
        (2, "10.0.0.3", "6.6.6.6, 192.0.2.50, 10.0.0.2", "192.0.2.50"),
        (2, "10.0.0.3", "192.0.2.50", "192.0.2.50"),
        # an entry that is no address (a chain shorter than configured): the peer
        (1, "10.0.0.2", "6.6.6.6, not-an-address", "10.0.0.2"),
        (1, "10.0.0.2", " 2001:DB8::1 ", "2001:db8::1"),
        (0, "::ffff:192.0.2.7", None, "192.0.2.7"),
    ],
)
def test_client_address_rule(settings, proxies, remote, xff, expected):
    from django.test import RequestFactory

    from backend.core.clientip import client_ip

    settings.STATELAB_TRUSTED_PROXIES = proxies
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    request = RequestFactory().post("/api/auth/token/", **extra)
    assert client_ip(request) == expected


def test_drf_counts_proxies_as_the_setting_says(settings):
    """DRF's own rule (NUM_PROXIES, for any throttle that keeps DRF's get_ident) is set
    from the same setting; None would make the whole header the client's identity."""
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == settings.STATELAB_TRUSTED_PROXIES == 0


# One count for all web processes


@pytest.fixture
def embedded_cache(settings, tmp_path):
    """The embedded default's cache (files under var/cache/), in a folder of this test."""
    from axes.handlers.proxy import AxesProxyHandler

    folder = tmp_path / "cache"
    settings.CACHES = {
        "default": {
            "BACKEND": "backend.core.cache.FileCache",
            "LOCATION": str(folder),
            "KEY_PREFIX": "statelab-embedded",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
    AxesProxyHandler.get_implementation(force=True)  # it holds the cache it started with
    yield f"file://{folder}", "statelab-embedded"
    AxesProxyHandler.implementation = None  # taken again from the restored settings


def _other_process(cache_url: str, prefix: str, script: str) -> list[int]:
    """Runs `script` in a separate Python process on the same settings, database and
    cache (location and key prefix); it prints a JSON list of status codes."""
    from django.db import connection

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="backend.config.settings.test",
        STATELAB_CACHE_URL=cache_url,
        STATELAB_CACHE_PREFIX=prefix,
        STATELAB_TEST_WORKER_DB=str(connection.settings_dict["NAME"]),
        STATELAB_LOGIN_FAILURES_ALLOWED="3",
    )
    head = textwrap.dedent(
        """
        import json, django
        django.setup()
        from django.test.utils import setup_test_environment
        setup_test_environment()
        from rest_framework.test import APIClient
        from rest_framework.throttling import ScopedRateThrottle
        ScopedRateThrottle.THROTTLE_RATES = {"login": "4/min", "jobs": "9/min", "matches": "9/min"}
        def token(username, password, addr):
            return APIClient().post("/api/auth/token/", {"username": username,
                "password": password}, format="json", REMOTE_ADDR=addr).status_code
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", head + textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("store", ["redis", "embedded"])
def test_another_web_process_sees_the_same_counts(request, owner, settings, login_rate, store):
    """Each web process used to count on its own (35 of 60 tries through at 20/min)."""
    from django.core.cache import caches

    if store == "embedded":
        url, prefix = request.getfixturevalue("embedded_cache")
    else:
        if not settings.CELERY_BROKER_URL.startswith("redis"):
            pytest.skip("no Redis: the suite fell back to the embedded default")
        conf = settings.CACHES["default"]
        url = conf.get("LOCATION") or settings.CELERY_BROKER_URL
        prefix = conf.get("KEY_PREFIX", "")
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    login_rate("4/min")
    # the other process: alice's address is locked after 3 wrong passwords, and a
    # second address spends 3 of its 4 logins a minute
    codes = _other_process(
        url,
        prefix,
        """
        codes = [token("alice", "wrong", "198.51.100.7") for _ in range(3)]
        codes += [token(f"user{i}", "x", "198.51.100.8") for i in range(3)]
        print(json.dumps(codes))
        """,
    )
    # this process sees the other's rate count: one login left for that address
    assert [token(f"other{i}", "x", addr="198.51.100.8").status_code for i in range(2)] == [
        400,
        429,
    ]
    # and its lockout
    assert codes == [400, 400, 429, 400, 400, 400]
    r = token("alice", RIGHT, addr="198.51.100.7")
    assert r.status_code == 429 and "token" not in r.json()
    # and alice from elsewhere is not locked
    assert token("alice", RIGHT, addr="198.51.100.9").status_code == 200
    assert type(caches["default"]).__name__ in ("RedisCache", "FileCache")


def test_file_cache_counts_every_increment_across_processes(tmp_path):
    """The embedded default's cache adds and increments atomically across processes
    (Django's file cache reads and rewrites, and loses counts under concurrency)."""
    from backend.core.cache import FileCache

    folder = str(tmp_path / "cache")
    cache = FileCache(folder, {})
    assert cache.add("n", 0, 60)
    assert not cache.add("n", 5, 60)
    script = textwrap.dedent(
        f"""
        from backend.core.cache import FileCache
        c = FileCache({folder!r}, {{}})
        for _ in range(150):
            c.add("n", 0, 60)
            c.incr("n")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    assert cache.get("n") == 600
    # an increment keeps the key's expiry
    cache.set("t", 1, 2)
    cache.incr("t")
    time.sleep(2.2)
    assert cache.get("t") is None


def test_redis_cache_clear_keeps_keys_not_its_own(settings):
    """The cache may share the broker's Redis database: clearing it drops only its own
    keys, never the queues."""
    from django.core.cache import cache

    conf = settings.CACHES["default"]
    if conf["BACKEND"] != "backend.core.cache.RedisCache":
        pytest.skip("no Redis: the suite fell back to the embedded default")
    client = cache._cache.get_client(None, write=True)
    foreign = f"not-the-cache-{os.getpid()}"
    client.set(foreign, "queued job", ex=60)
    try:
        cache.set("mine", 1, 60)
        cache.clear()
        assert cache.get("mine") is None
        assert client.get(foreign) == b"queued job"
    finally:
        client.delete(foreign)


def test_settings_never_count_inside_one_process(tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from backend.core.cache import cache_settings

    def backend(url, broker):
        conf = cache_settings(url=url, broker_url=broker, var_dir=tmp_path, prefix="p")
        return conf["default"]["BACKEND"], conf["default"]["LOCATION"]

    assert backend("", "filesystem://") == ("backend.core.cache.FileCache", str(tmp_path / "cache"))
    assert backend("", "redis://h:6379/3") == ("backend.core.cache.RedisCache", "redis://h:6379/3")
    assert backend("redis://c:6379/1", "redis://h:6379/3")[1] == "redis://c:6379/1"
    assert backend("file:///srv/cache", "redis://h:6379/3") == (
        "backend.core.cache.FileCache",
        "/srv/cache",
    )
    for bad in ("locmem://", "memcached://h", "file://relative"):
        with pytest.raises(ImproperlyConfigured):
            backend(bad, "filesystem://")


def test_throttles_let_requests_through_when_the_cache_is_down(settings):
    """As a job is queued while the broker is down, a rate limit whose store does not
    answer does not refuse the request (logins stay guarded by their lockout)."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from backend.core.throttles import ClientScopedRateThrottle

    settings.CACHES = {
        "default": {
            "BACKEND": "backend.core.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
    request = Request(RequestFactory().post("/api/projects/", REMOTE_ADDR="192.0.2.1"))

    class View:
        throttle_scope = "jobs"

    t = time.monotonic()
    assert ClientScopedRateThrottle().allow_request(request, View())
    assert time.monotonic() - t < 5


# The admin login


def test_admin_login_locks_after_the_allowed_failures(make_user, settings):
    """/admin/login/ had no limit at all: 50 wrong passwords, then in."""
    make_user("root", admin=True)
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    c = Client()
    codes = [
        form_login(c, "root", f"wrong-{i}", path="/admin/login/").status_code for i in range(3)
    ]
    assert codes == [200, 200, 429]
    r = form_login(c, "root", RIGHT, path="/admin/login/")
    assert r.status_code == 429
    assert b"Wait 15 minutes before trying again" in r.content
    assert c.get("/admin/").status_code == 302  # not signed in
    # from another address the administrator still gets in
    other = Client()
    assert (
        form_login(other, "root", RIGHT, path="/admin/login/", addr="192.0.2.99").status_code == 302
    )
    assert other.get("/admin/").status_code == 200


# Locking someone else out


def test_a_lockout_holds_one_user_at_one_address(owner, collaborator, settings):
    """20 wrong logins for a user used to lock her out everywhere for 15 minutes."""
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    attacker = Client()
    codes = [
        form_login(attacker, "alice", "wrong", addr="203.0.113.66").status_code for _ in range(20)
    ]
    assert codes[:2] == [200, 200] and set(codes[2:]) == {429}
    # alice from her own address
    alice = Client()
    assert form_login(alice, "alice", RIGHT, addr="192.0.2.10").status_code == 302
    assert alice.get("/").status_code == 200
    # her API token from her address too
    assert token("alice", RIGHT, addr="192.0.2.10").status_code == 200
    # bob from the attacker's address
    bob = Client()
    assert form_login(bob, "bob", RIGHT, addr="203.0.113.66").status_code == 302
    # the attacker's address stays refused for alice
    assert form_login(Client(), "alice", RIGHT, addr="203.0.113.66").status_code == 429


def test_a_name_and_an_address_cannot_be_combined_into_another_pair(owner, settings):
    """ "alice1" from 23.45.67.89 is not "alice" from 123.45.67.89."""
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    for _ in range(4):
        token("alice1", "wrong", addr="23.45.67.89")
    assert token("alice", RIGHT, addr="123.45.67.89").status_code == 200


def test_spellings_of_one_name_count_together(owner, settings):
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    codes = [token(name, "wrong").status_code for name in ("alice", " Alice", "ALICE ")]
    assert codes == [400, 400, 429]
    assert token("alice", RIGHT).status_code == 429


# After a lockout


def test_the_right_password_is_refused_alike_until_the_cool_off_ends(owner, settings):
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    settings.STATELAB_LOGIN_FAILURE_WINDOW_S = 2
    assert [token("alice", "wrong").status_code for _ in range(3)] == [400, 400, 429]
    right, wrong = token("alice", RIGHT), token("alice", "wrong")
    assert right.status_code == wrong.status_code == 429
    assert right.json() == wrong.json()
    assert right.json()["error"]["code"] == "locked_out"
    assert "Wait 2 seconds" in right.json()["error"]["message"]
    assert right["Retry-After"] == wrong["Retry-After"] == "2"
    # a user that does not exist is locked out in the same words
    for _ in range(3):
        nobody = token("nobody", "wrong")
    assert nobody.status_code == 429 and nobody.json() == right.json()
    time.sleep(2.3)
    r = token("alice", RIGHT)
    assert r.status_code == 200 and r.json()["token"]


def test_the_locked_login_page_is_the_same_for_a_right_password(owner, settings):
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    c = Client()
    for _ in range(3):
        form_login(c, "alice", "wrong")
    right, wrong = form_login(c, "alice", RIGHT), form_login(c, "alice", "wrong")
    assert right.status_code == wrong.status_code == 429
    assert _without_csrf(right.content) == _without_csrf(wrong.content)
    assert b"Too many failed attempts" in right.content
    assert b"Wait 15 minutes before trying again" in right.content
    assert right["Retry-After"] == "900"
    assert c.get("/").status_code == 302


def test_a_success_clears_the_count(owner, settings):
    settings.STATELAB_LOGIN_FAILURES_ALLOWED = 3
    for _ in range(2):
        assert token("alice", "wrong").status_code == 400
    assert token("alice", RIGHT).status_code == 200
    assert [token("alice", "wrong").status_code for _ in range(3)] == [400, 400, 429]


# One address, many names


def test_login_forms_share_the_address_rate_with_the_token_endpoint(db, login_rate):
    login_rate("3/min")
    c = Client()
    assert form_login(c, "u1", "x").status_code == 200
    assert form_login(c, "u2", "x", path="/admin/login/").status_code == 200
    assert token("u3", "x").status_code == 400
    r = form_login(c, "u4", "x")
    assert r.status_code == 429
    assert b"Too many login attempts from your address" in r.content
    assert int(r["Retry-After"]) > 0
    assert form_login(c, "u5", "x", path="/admin/login/").status_code == 429
    assert token("u6", "x").status_code == 429
    # a new X-Forwarded-For does not make a new client; another address is one
    assert (
        c.post(
            "/accounts/login/",
            {"username": "u7", "password": "x"},
            REMOTE_ADDR="198.51.100.1",
            HTTP_X_FORWARDED_FOR="192.0.2.200",
        ).status_code
        == 429
    )
    assert form_login(c, "u8", "x", addr="192.0.2.200").status_code == 200


def test_a_foreign_page_cannot_spend_a_visitors_logins(db, login_rate):
    """A form on another site posting to the login page fails the CSRF check before
    it is counted."""
    login_rate("3/min")
    foreign = Client(enforce_csrf_checks=True)
    assert {form_login(foreign, f"u{i}", "x").status_code for i in range(5)} == {403}
    assert form_login(Client(), "u9", "x").status_code == 200
