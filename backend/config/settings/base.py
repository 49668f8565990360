"""Settings shared by every StateLab deployment.

Configuration comes from the environment (django-environ). The embedded default
(SQLite + kombu's filesystem broker under `var/`) needs no server; setting
`DATABASE_URL` and `CELERY_BROKER_URL` switches to PostgreSQL and Redis with no
other change. Secrets and CI switches live in the environment-specific modules.
"""

import contextlib
from pathlib import Path

import django_stubs_ext
import environ

from backend.core.cache import cache_settings

# Lets admin and queryset classes be subscripted for type checking at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = Path(environ.Env().str("STATELAB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "backend.accounts",
    "backend.projects",
    "backend.jobs",
    "backend.artifacts",
    "backend.states",
    "backend.matching",
    "backend.hypotheses",
    "backend.usage",
    "backend.compat",
    "webui",
]

MIDDLEWARE = [
    # /healthz is answered before anything else runs (backend/config/health.py).
    "backend.config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backend.usage.middleware.UsageMiddleware",
    # Login limits (backend/accounts/lockout.py); axes' middleware stays last.
    "backend.accounts.lockout.LoginThrottleMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "backend.config.urls"
WSGI_APPLICATION = "backend.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_env(default_sqlite: Path) -> dict[str, object]:
    """The default database: `DATABASE_URL` when set, else SQLite in WAL mode under var/."""
    url = env.str("DATABASE_URL", default="")
    if url:
        db: dict[str, object] = env.db_url_config(url)
        db.setdefault("CONN_MAX_AGE", 60)
        db["CONN_HEALTH_CHECKS"] = True
        return db
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(default_sqlite),
        "OPTIONS": {
            # The worker writes job progress while the web process reads it.
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": database_from_env(VAR_DIR / "statelab.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Where uploads wait for their job, and where state sets and corpora live.
STATELAB_STORE_ROOT = Path(env.str("STATELAB_STORE_ROOT", default=str(VAR_DIR / "store")))
STATELAB_UPLOAD_MAX_BYTES = env.int("STATELAB_UPLOAD_MAX_BYTES", default=2 << 30)
STATELAB_IMPORT_QUOTA_BYTES = env.int("STATELAB_IMPORT_QUOTA_BYTES", default=16 << 30)
# Resumable (tus) uploads: an upload untouched for this long is removed with its bytes,
# and the browser sends its files in pieces of this size (docs/api.md, "Resumable uploads").
STATELAB_RESUMABLE_EXPIRE_S = env.int("STATELAB_RESUMABLE_EXPIRE_S", default=24 * 3600)
STATELAB_RESUMABLE_CHUNK_BYTES = env.int("STATELAB_RESUMABLE_CHUNK_BYTES", default=8 << 20)
# An uploaded import may occupy at most this many times the bytes uploaded: HDF5 fill
# values (a dataset never written) and filters let a few KB declare gigabytes.
STATELAB_IMPORT_MAX_EXPANSION = env.int("STATELAB_IMPORT_MAX_EXPANSION", default=32)
STATELAB_USER_STORAGE_QUOTA_BYTES = env.int("STATELAB_USER_STORAGE_QUOTA_BYTES", default=100 << 30)
# Quotas are rows staff edit in the admin (docs/administration.md); these settings
# are the lab's defaults where no row sets a limit. A project's quota counts what all
# its members store in it.
STATELAB_PROJECT_STORAGE_QUOTA_BYTES = env.int(
    "STATELAB_PROJECT_STORAGE_QUOTA_BYTES", default=500 << 30
)
STATELAB_ZIP_MAX_ENTRIES = env.int("STATELAB_ZIP_MAX_ENTRIES", default=10_000)
# Folders on the server whose LSTMVis directories staff may import through the API
# (POST /api/projects/{slug}/imports/ with {"path": ...}), separated by commas; none
# by default, and then such imports are refused. `manage.py import_lstmvis` reads any.
STATELAB_IMPORT_ROOTS = env.list("STATELAB_IMPORT_ROOTS", default=[])
STATELAB_JOB_MAX_ATTEMPTS = env.int("STATELAB_JOB_MAX_ATTEMPTS", default=3)
STATELAB_JOB_LEASE_SECONDS = env.int("STATELAB_JOB_LEASE_SECONDS", default=60)
# Every worker sends again, every STATELAB_JOB_SWEEP_S seconds (0: never), the jobs no
# broker holds: never delivered (the broker was down), queued for longer than
# STATELAB_JOB_RESEND_AFTER_S (a broker restarted without persistence), or running
# under an expired lease.
STATELAB_JOB_SWEEP_S = env.float("STATELAB_JOB_SWEEP_S", default=15.0)
STATELAB_JOB_RESEND_AFTER_S = env.float("STATELAB_JOB_RESEND_AFTER_S", default=900.0)
STATELAB_MAX_ACTIVE_JOBS_PER_USER = env.int("STATELAB_MAX_ACTIVE_JOBS_PER_USER", default=20)
# Every worker records a heartbeat (name, pid, queues) every STATELAB_WORKER_HEARTBEAT_S
# seconds; /healthz counts a worker gone once its heartbeat is older than
# STATELAB_WORKER_GONE_S, and answers 503 while a queue of STATELAB_HEALTH_QUEUES has no
# live worker or the store has less than STATELAB_HEALTH_MIN_FREE_BYTES free.
STATELAB_WORKER_HEARTBEAT_S = env.float("STATELAB_WORKER_HEARTBEAT_S", default=5.0)
STATELAB_WORKER_GONE_S = env.float("STATELAB_WORKER_GONE_S", default=30.0)
# Every worker compiles the compute core's kernels when it starts, before it takes
# jobs (a second or two with numba's cache filled; workers.core.warmup).
STATELAB_WORKER_WARM_UP = env.bool("STATELAB_WORKER_WARM_UP", default=True)
STATELAB_HEALTH_QUEUES = env.list("STATELAB_HEALTH_QUEUES", default=["cpu", "gpu"])
STATELAB_HEALTH_MIN_FREE_BYTES = env.int("STATELAB_HEALTH_MIN_FREE_BYTES", default=1 << 30)
STATELAB_LOGIN_FAILURES_ALLOWED = env.int("STATELAB_LOGIN_FAILURES_ALLOWED", default=10)
STATELAB_LOGIN_FAILURE_WINDOW_S = env.int("STATELAB_LOGIN_FAILURE_WINDOW_S", default=900)
# How many proxies in front of the web server append the client's address to
# X-Forwarded-For (deploy/nginx.conf.example is one). Rate limits and login lockouts
# believe that header only this far (backend/core/clientip.py); 0 ignores it.
STATELAB_TRUSTED_PROXIES = env.int("STATELAB_TRUSTED_PROXIES", default=0)
STATELAB_CONTEXT_MAX_TOKENS = env.int("STATELAB_CONTEXT_MAX_TOKENS", default=5_000)
# Matching: how long `POST /matches/` waits for its job before answering 202; the
# state-set length above which a match is split into shards run as a Celery group;
# the length from which shards go to the gpu queue (0: never); how long `/api/v2/match`
# (which LSTMVis' client waits for) waits before answering 503. Every match runs in a
# worker, never in the web process (docs/matching.md, "Where a match runs").
STATELAB_MATCH_WAIT_S = env.float("STATELAB_MATCH_WAIT_S", default=3.0)
STATELAB_MATCH_SHARD_TOKENS = env.int("STATELAB_MATCH_SHARD_TOKENS", default=4_000_000)
STATELAB_MATCH_GPU_TOKENS = env.int("STATELAB_MATCH_GPU_TOKENS", default=0)
# Matches of state sets up to this many tokens (and at most the shard size) are
# computed by the web process itself, at most STATELAB_MATCH_INLINE_SLOTS at once per
# process, instead of going through a job (backend/matching/inline.py); 0: never.
STATELAB_MATCH_INLINE_TOKENS = env.int("STATELAB_MATCH_INLINE_TOKENS", default=4_000_000)
STATELAB_MATCH_INLINE_SLOTS = env.int("STATELAB_MATCH_INLINE_SLOTS", default=2)
STATELAB_V2_MATCH_WAIT_S = env.float("STATELAB_V2_MATCH_WAIT_S", default=120.0)
# Housekeeping of the match store (docs/matching.md): a stored result no saved
# hypothesis pins goes when unused for STATELAB_MATCH_KEEP_DAYS, and the least recently
# used go first while all results together exceed STATELAB_MATCH_STORE_BUDGET_MB (0
# turns either rule off). A worker that records a match sweeps at most every
# STATELAB_MATCH_EVICT_EVERY_S (0: only `manage.py evict_matches` and Celery beat do).
STATELAB_MATCH_KEEP_DAYS = env.float("STATELAB_MATCH_KEEP_DAYS", default=30.0)
STATELAB_MATCH_STORE_BUDGET_MB = env.float("STATELAB_MATCH_STORE_BUDGET_MB", default=512.0)
STATELAB_MATCH_EVICT_EVERY_S = env.float("STATELAB_MATCH_EVICT_EVERY_S", default=600.0)
# The largest state slice one export writes (tokens x cells).
STATELAB_EXPORT_MAX_VALUES = env.int("STATELAB_EXPORT_MAX_VALUES", default=200_000_000)
# Raw usage events (requests and research events) are deleted once older than this many
# days and rolled up into daily figures (docs/usage.md); 0 keeps them for ever.
STATELAB_USAGE_RETENTION_DAYS = env.int("STATELAB_USAGE_RETENTION_DAYS", default=400)

# Uploads go to disk, never into memory beyond 2.5 MB; the cap is checked before the job exists.
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 << 20
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so that an anonymous call answers 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "backend.core.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "backend.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "backend.config.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "backend.core.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["backend.core.throttles.ClientScopedRateThrottle"],
    "NUM_PROXIES": STATELAB_TRUSTED_PROXIES,
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("STATELAB_LOGIN_RATE", default="20/min"),
        "jobs": env.str("STATELAB_JOB_RATE", default="60/min"),
        "matches": env.str("STATELAB_MATCH_RATE", default="600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "StateLab API",
    "DESCRIPTION": (
        "Hidden-state analysis for recurrent networks: projects, jobs, LSTMVis imports, "
        "corpora, state sets, context windows and hypothesis selection."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProjectRoleEnum": "backend.projects.models.Role",
        "HypothesisRoleEnum": ["owner", "editor", "viewer"],
        "ShareRoleEnum": "backend.hypotheses.models.ShareRole",
    },
    # Swagger UI served from our own static files: the docs work on a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Content-Security-Policy on every answer (django-csp; docs/security.md). Pages run
# only scripts and styles served from /static/ (boot data is JSON, never executed);
# no inline script, inline style attribute, eval or foreign origin. The API docs page
# widens this for itself alone (backend/config/apidocs.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Celery: the job row is the source of truth; Celery only carries job ids.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        # A job waits up to one poll before a worker sees it: 50 ms keeps a match
        # click quick (0.2 s made every match wait ~0.2 s) at about 0.4 % of a core
        # while idle (1 % at 20 ms).
        "polling_interval": 0.05,
        "store_processed": False,
    }
else:
    # Redis hands a message nobody acknowledged (its worker died) to another worker
    # after this many seconds. It must exceed the longest task, or a task still running
    # is delivered twice; the shards of a match whose worker died are sent again much
    # sooner by the workers' sweep (docs/jobs.md, "Shards").
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("STATELAB_BROKER_VISIBILITY_TIMEOUT_S", default=3600)
    }
# Chords (the shards of a long match) need a result backend: the broker's Redis in a
# lab, files under var/ on the embedded default (Celery polls those once a second).
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="")
if not CELERY_RESULT_BACKEND:
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        CELERY_RESULT_BACKEND = CELERY_BROKER_URL
    else:
        CELERY_RESULT_BACKEND = "file://" + str(VAR_DIR / "results")
if CELERY_RESULT_BACKEND.startswith("file://"):
    # Celery checks that this folder exists and is writable when it first uses it.
    with contextlib.suppress(OSError):
        Path(CELERY_RESULT_BACKEND[len("file://") :]).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_EXPIRES = 24 * 3600
# A broker or result store that does not answer is noticed within about a second:
# a request that enqueues a job must not hang on it (the job stays queued and says so).
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1.0
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("STATELAB_TASK_SOFT_TIME_LIMIT", default=3 * 3600)
CELERY_TASK_TIME_LIMIT = env.int("STATELAB_TASK_TIME_LIMIT", default=3 * 3600 + 300)
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# For a deployment that runs `celery beat`: the match store's housekeeping, hourly (it
# also runs without beat, after matches are recorded; see STATELAB_MATCH_EVICT_EVERY_S).
CELERY_BEAT_SCHEDULE = {
    "match-store-evict": {
        "task": "statelab.match_evict",
        "schedule": 3600.0,
        "options": {"queue": "cpu", "expires": 3000},
    },
    # Usage rollups of the days past, then retention of raw events (docs/usage.md).
    "usage-rollup": {
        "task": "statelab.usage_rollup",
        "schedule": 3600.0,
        "options": {"queue": "cpu", "expires": 3000},
    },
}

# The cache every web process shares (backend/core/cache.py): throttle counts and login
# lockouts must not be counted per process. STATELAB_CACHE_URL (redis://, rediss://,
# file:///path) when set, else the broker's Redis, else files under var/cache/.
CACHES = cache_settings(
    url=env.str("STATELAB_CACHE_URL", default=""),
    broker_url=CELERY_BROKER_URL,
    var_dir=VAR_DIR,
    prefix=env.str("STATELAB_CACHE_PREFIX", default="statelab"),
)

# Login lockouts (django-axes; backend/accounts/lockout.py): failures are counted per
# user name AND client address in the shared cache; STATELAB_LOGIN_FAILURES_ALLOWED
# failures lock that pair for STATELAB_LOGIN_FAILURE_WINDOW_S, whatever the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = "backend.accounts.lockout.failure_limit"
AXES_COOLOFF_TIME = "backend.accounts.lockout.cool_off"
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "backend.accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "backend.accounts.lockout.lockout_ip"
AXES_CLIENT_STR_CALLABLE = "backend.accounts.lockout.client_str"
AXES_LOCKOUT_CALLABLE = "backend.accounts.lockout.lockout_response"
# Attempts are in the cache, not in axes' tables: their admin pages would stay empty.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False  # no banner at each start; failures and lockouts are still logged

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.server": {"level": "WARNING"}},
}
