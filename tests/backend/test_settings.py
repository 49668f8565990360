"""Production settings refuse unsafe configuration and pass Django's deploy checks."""

import os
import secrets
import subprocess
import sys

import pytest

MANAGE = [sys.executable, "manage.py"]


def _run(env_extra):
    drop = ("SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(DJANGO_SETTINGS_MODULE="backend.config.settings.production", **env_extra)
    return subprocess.run(
        [*MANAGE, "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean():
    r = _run({"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "lab.example.org"})
    assert r.returncode == 0, r.stderr + r.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_HOSTS": "x"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short", "ALLOWED_HOSTS": "x"}, "SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "x" * 50, "ALLOWED_HOSTS": "x"}, "SECRET_KEY"),
        ({"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "x", "DEBUG": "true"}, "DEBUG"),
    ],
)
def test_unsafe_production_settings_refuse_to_start(env, message):
    r = _run(env)
    assert r.returncode != 0
    assert message in r.stderr
