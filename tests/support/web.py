"""A real web process (gunicorn) on the test database and the test's store, for tests
that must cross a socket: a client that drops its connection, a server killed and
started again. Jobs run in that process (eager), so no worker is needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["WebProcess", "free_port"]

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebProcess:
    """gunicorn (one process, a few threads) on `port`; `start` waits until it answers,
    `kill` ends it at once (SIGKILL to its process group, as a crash would)."""

    def __init__(self, *, store: Path, logs: Path, port: int | None = None) -> None:
        self.store, self.logs = store, logs
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> WebProcess:
        from django.db import connection

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="backend.config.settings.test",
            STATELAB_EAGER="1",
            STATELAB_TEST_WORKER_DB=connection.settings_dict["NAME"],
            STATELAB_STORE_ROOT=str(self.store),
            DATABASE_URL=os.environ.get("DATABASE_URL", ""),
        )
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"web-{self.starts}.log", "w")  # noqa: SIM115
        self.starts += 1
        self.proc = subprocess.Popen(
            [
                GUNICORN,
                "backend.config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "120",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log_tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/"):
                        return self
            except OSError:
                time.sleep(0.1)

    def log_tail(self) -> str:
        logs = sorted(self.logs.glob("web-*.log"))
        return logs[-1].read_text(errors="replace")[-4000:] if logs else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
