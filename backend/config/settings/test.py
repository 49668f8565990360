"""Settings for the test suite.

PostgreSQL and Redis are used over real connections: `DATABASE_URL` defaults to the
loopback PostgreSQL and `CELERY_BROKER_URL` to the loopback Redis. Outside CI a
missing PostgreSQL falls back to SQLite with a warning; under `CI=true` the suite
refuses to start without both servers.
"""

import os
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
if not os.environ.get("STATELAB_VAR_DIR"):
    os.environ["STATELAB_VAR_DIR"] = tempfile.mkdtemp(prefix="statelab-test-")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


_missing = []
if os.environ["DATABASE_URL"].startswith("postgres") and not _reachable(
    os.environ["DATABASE_URL"], 5432
):
    _missing.append(f"PostgreSQL at {os.environ['DATABASE_URL']}")
if os.environ["CELERY_BROKER_URL"].startswith("redis") and not _reachable(
    os.environ["CELERY_BROKER_URL"], 6379
):
    _missing.append(f"Redis at {os.environ['CELERY_BROKER_URL']}")
if _missing:
    if IN_CI:
        raise ImproperlyConfigured(
            "CI=true needs real servers; unreachable: " + ", ".join(_missing)
        )
    print(
        "WARNING: unreachable: " + ", ".join(_missing) + "; falling back to SQLite and "
        "the filesystem broker (set CI=true to refuse).",
        file=sys.stderr,
    )
    if any(m.startswith("PostgreSQL") for m in _missing):
        os.environ["DATABASE_URL"] = ""
    if any(m.startswith("Redis") for m in _missing):
        os.environ["CELERY_BROKER_URL"] = "filesystem://"

from backend.core.cache import cache_settings  # noqa: E402

from .base import *  # noqa: E402
from .base import CELERY_BROKER_URL, DATABASES, REST_FRAMEWORK, VAR_DIR  # noqa: E402

SECRET_KEY = "test-only-secret-key-not-for-deployment"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATELAB_STORE_ROOT = Path(os.environ.get("STATELAB_STORE_ROOT") or Path(VAR_DIR) / "store")
(Path(VAR_DIR) / "static").mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, so that a worker process can see what the tests commit.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(VAR_DIR) / "test.sqlite3")}
else:
    # One database per test run, so that runs side by side do not drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_statelab_{os.getpid()}"}
# A worker process started by the integration tests connects to the test database itself.
if os.environ.get("STATELAB_TEST_WORKER_DB"):
    DATABASES["default"]["NAME"] = os.environ["STATELAB_TEST_WORKER_DB"]

# Unit tests run job tasks in-process right after commit; integration tests
# switch this off and drive a real worker process through the real broker.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("STATELAB_EAGER", "1") == "1"
# Matches go through their jobs unless a test answers them in the request
# (tests/backend/matching/test_match_inline.py sets the size it allows).
STATELAB_MATCH_INLINE_TOKENS = int(os.environ.get("STATELAB_MATCH_INLINE_TOKENS", "0"))
CELERY_TASK_EAGER_PROPAGATES = False

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"login": "1000/min", "jobs": "1000/min", "matches": "1000/min"},
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The shared cache as deployed (the broker's Redis, or files under the run's var/), its
# keys under a prefix of this run's own: runs side by side on one Redis keep their
# throttle counts and lockouts apart, and `cache.clear()` (tests/conftest.py, before
# every test) removes only this run's keys.
CACHES = cache_settings(
    url=os.environ.get("STATELAB_CACHE_URL", ""),
    broker_url=CELERY_BROKER_URL,
    var_dir=Path(VAR_DIR),
    prefix=os.environ.get("STATELAB_CACHE_PREFIX") or f"statelab-test-{os.getpid()}",
)
