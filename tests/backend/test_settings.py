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


PLACEHOLDER = "change-me-to-50-random-characters-from-a-password-generator"


def test_the_old_deploy_placeholder_refuses_to_start():
    r = _run({"SECRET_KEY": PLACEHOLDER, "ALLOWED_HOSTS": "x"})
    assert r.returncode != 0
    assert "placeholder" in r.stderr


def test_every_secret_key_of_the_deploy_example_is_refused():
    from pathlib import Path

    from backend.core.secretkey import secret_key_problem

    example = Path(__file__).resolve().parents[2] / "deploy" / "env.example"
    keys = [
        line.split("=", 1)[1]
        for line in example.read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert keys, "the example names SECRET_KEY"
    for key in keys:
        assert secret_key_problem(key) is not None, key


@pytest.mark.parametrize(
    "key",
    [
        PLACEHOLDER,
        "my_secret_key_" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
        "x" * 60,
        "ab" * 40,
        "django-insecure-" + "abcdefghijklmnopqrstuvwxyz0123456789",
    ],
)
def test_placeholders_and_weak_keys_are_refused(key):
    from backend.core.secretkey import secret_key_problem

    assert secret_key_problem(key) is not None


def test_random_keys_pass():
    from django.core.management.utils import get_random_secret_key

    from backend.core.secretkey import secret_key_problem

    for _ in range(2000):
        assert secret_key_problem(secrets.token_urlsafe(50)) is None
        assert secret_key_problem(get_random_secret_key()) is None
