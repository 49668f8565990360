"""`make run`: migrate, first-start set-up, then the web server, a Celery worker and
Celery beat (the periodic tasks: the match store's housekeeping, usage rollups).

On the embedded default (SQLite + kombu's filesystem broker under var/) nothing
needs installing; with `DATABASE_URL` and `CELERY_BROKER_URL` set the same
command uses PostgreSQL and Redis. Ctrl-C stops the three processes cleanly.
"""

from __future__ import annotations

import contextlib
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


def _die_with_parent() -> None:
    """In the worker, before exec: ask Linux to stop it when this launcher dies, since
    it runs in a process group of its own and would not get the terminal's signals."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
        if os.environ.get("STATELAB_DEMO", "1") == "1":
            from backend.states.demo import demo_create

            demo_create(owner=admin)
    if login_file.exists():
        username, password = login_file.read_text().split()
        return f"Log in as '{username}' with password '{password}' (kept in {login_file})."
    return "Log in with an administrator account (manage.py adduser NAME --admin)."


def worker_command(bindir: Path) -> list[str]:
    """The Celery worker: both queues, one process, a node name that stays the same
    across restarts (a job it was running is taken up again when it next starts)."""
    return [
        str(bindir / "celery"),
        "-A",
        "backend.config.celery_app",
        "worker",
        "-Q",
        "cpu,gpu",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "-n",
        "local@%h",
    ]


def beat_command(bindir: Path, var_dir: Path) -> list[str]:
    """Celery beat, which sends the periodic tasks of `CELERY_BEAT_SCHEDULE`; its
    schedule file lives under var/ (no pid file: a launcher stopped hard leaves none
    behind to block the next start)."""
    return [
        str(bindir / "celery"),
        "-A",
        "backend.config.celery_app",
        "beat",
        "--schedule",
        str(Path(var_dir) / "celerybeat-schedule"),
        "--loglevel",
        "INFO",
    ]


def web_command(bindir: Path, host: str, port: int) -> list[str]:
    return [
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
        # A script that reuses its connection after a pause of a few seconds must
        # not find it closed under a POST (clients resend only idempotent calls).
        "--keep-alive",
        "10",
        "--access-logfile",
        "-",
    ]


def _stop_group(proc: subprocess.Popen[bytes], wait_s: float) -> None:
    """Wait `wait_s` seconds for a process that leads its own group (and was sent
    SIGTERM) to end, then SIGKILL the whole group."""
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


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
    # The worker and beat get a process group each, so that each stops with its children.
    worker = subprocess.Popen(
        worker_command(bindir), env=env, start_new_session=True, preexec_fn=_die_with_parent
    )
    beat = subprocess.Popen(
        beat_command(bindir, Path(settings.VAR_DIR)),
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    web = subprocess.Popen(web_command(bindir, host, port), env=env)
    banner = "\n".join(
        [
            "",
            "=" * 72,
            f"StateLab is running at http://{host}:{port}/",
            login,
            f"Database: {str(settings.DATABASES['default']['ENGINE']).rsplit('.', 1)[-1]}; "
            f"broker: {settings.CELERY_BROKER_URL.split('://')[0]}; a worker and beat. "
            "Press Ctrl-C to stop.",
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
        for name, proc in (("web server", web), ("worker", worker), ("beat scheduler", beat)):
            if proc.poll() is not None:
                print(f"The {name} stopped (exit code {proc.returncode}); stopping.", flush=True)
                stopping, code = True, 1
        time.sleep(0.5)
    for proc in (web, worker, beat):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    # Celery's own shutdown takes several seconds even when idle; stopping the worker
    # hard is safe: a job it was running is taken up again when it next starts (same
    # node name, so that job's lease is ended then) and its outputs were never visible
    # under a final name. Beat saves its schedule on SIGTERM and is gone at once.
    _stop_group(worker, 1)
    _stop_group(beat, 2)
    try:
        web.wait(timeout=10)
    except subprocess.TimeoutExpired:
        web.kill()
    print("StateLab stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
