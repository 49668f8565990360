"""Settings for `make run` on one machine: the embedded default, debug off, a local key.

The secret key is generated once and kept under var/ so sessions survive restarts;
production settings refuse such a key.
"""

import secrets

from .base import *
from .base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=False)


def _local_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()
