"""`make run`: migrate, first-start set-up, then the web server and a Celery worker.

On the embedded default (SQLite + kombu's filesystem broker under var/) nothing
needs installing; with `DATABASE_URL` and `CELERY_BROKER_URL` set the same
command uses PostgreSQL and Redis. Ctrl-C stops both processes cleanly.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings.local")
    import django

    django.setup()


def first_start() -> str:
    """Create the admin login on first start; returns the line that tells it."""
    from django.conf import settings

    from backend.accounts.models import User
    from backend.accounts.services import user_create

    login_file = Path(settings.VAR_DIR) / "admin-login.txt"
    if not User.objects.filter(is_superuser=True).exists():
        password = os.environ.get("STATELAB_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        admin = user_create(username="admin", password=password, admin=True)
        login_file.write_text(f"admin {password}\n")
        login_file.chmod(0o600)
        if os.environ.get("STATELAB_SAMPLE", "1") == "1":
            from backend.states.sample import sample_create

            sample_create(owner=admin)
    if login_file.exists():
        username, password = login_file.read_text().split()
        return f"Log in as '{username}' with password '{password}' (kept in {login_file})."
    return "Log in with an administrator account (manage.py adduser NAME --admin)."


def main() -> int:
    _django()
    from django.conf import settings
    from django.core.management import call_command

    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    for sub in ("queue", "processed", "control"):
        Path(settings.VAR_DIR, "broker", sub).mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    login = first_start()

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings.local")
    bindir = Path(sys.executable).parent
    worker = subprocess.Popen(
        [
            str(bindir / "celery"),
            "-A",
            "workers.app",
            "worker",
            "-Q",
            "cpu,gpu",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "-n",
            "local@%h",
        ],
        env=env,
    )
    web = subprocess.Popen(
        [
            str(bindir / "gunicorn"),
            "backend.config.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--timeout",
            "120",
            "--access-logfile",
            "-",
        ],
        env=env,
    )
    banner = "\n".join(
        [
            "",
            "=" * 72,
            f"StateLab is running at http://{host}:{port}/",
            login,
            f"Database: {str(settings.DATABASES['default']['ENGINE']).rsplit('.', 1)[-1]}; "
            f"broker: {settings.CELERY_BROKER_URL.split('://')[0]}. Press Ctrl-C to stop.",
            "=" * 72,
            "",
        ]
    )
    print(banner, flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in (("web server", web), ("worker", worker)):
            if proc.poll() is not None:
                print(f"The {name} stopped (exit code {proc.returncode}); stopping.", flush=True)
                stopping, code = True, 1
        time.sleep(0.5)
    for proc in (web, worker):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in (web, worker):
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
    print("StateLab stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
