"""Production settings: secrets from the environment, no defaults, hardened cookies.

Startup refuses a missing, short or placeholder `SECRET_KEY` (`backend.core.secretkey`)
and `DEBUG=True`.
"""

from django.core.exceptions import ImproperlyConfigured

from backend.core.secretkey import secret_key_problem

from .base import *
from .base import env

SECRET_KEY = env.str("SECRET_KEY", default="")
_problem = secret_key_problem(SECRET_KEY)
if _problem is not None:
    raise ImproperlyConfigured(_problem)
if env.bool("DEBUG", default=False):
    raise ImproperlyConfigured("DEBUG must be off in production.")
DEBUG = False

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
