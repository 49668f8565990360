"""`make run` (backend/config/runlab.py) starts the web server, a worker and Celery
beat, and stops all three; the beat command it builds really starts a scheduler
whose schedule file is under var/, and which stops at once on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.config import runlab


class FakeProc:
    """A started process that ends (as the web server here) when told to, or on its own."""

    def __init__(self, args, ends_after_polls=None):
        self.args = args
        self.pid = 4242
        self.signals: list[int] = []
        self.returncode = None
        self._polls_left = ends_after_polls

    def poll(self):
        if self._polls_left is not None:
            self._polls_left -= 1
            if self._polls_left <= 0:
                self.returncode = 0
        return self.returncode

    def send_signal(self, sig):
        self.signals.append(sig)
        self.returncode = -sig

    def wait(self, timeout=None):
        return self.returncode

    def kill(self):
        self.returncode = -9


def test_the_command_lines(tmp_path):
    bindir = Path("/venv/bin")
    beat = runlab.beat_command(bindir, tmp_path / "var")
    assert beat == [
        "/venv/bin/celery",
        "-A",
        "backend.config.celery_app",
        "beat",
        "--schedule",
        str(tmp_path / "var" / "celerybeat-schedule"),
        "--loglevel",
        "INFO",
    ]
    worker = runlab.worker_command(bindir)
    assert worker[:4] == ["/venv/bin/celery", "-A", "backend.config.celery_app", "worker"]
    assert worker[worker.index("-Q") + 1] == "cpu,gpu"
    assert worker[worker.index("-n") + 1] == "local@%h"
    web = runlab.web_command(bindir, "127.0.0.1", 8123)
    assert web[:2] == ["/venv/bin/gunicorn", "backend.config.wsgi:application"]
    assert web[web.index("--bind") + 1] == "127.0.0.1:8123"


def test_main_starts_worker_beat_and_web_and_stops_them_all(monkeypatch, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    started: list[tuple[FakeProc, dict]] = []

    def popen(args, **kwargs):
        # The web server "stops" on the launcher's second look, which ends the run.
        proc = FakeProc(args, ends_after_polls=2 if "gunicorn" in args[0] else None)
        started.append((proc, kwargs))
        return proc

    monkeypatch.setattr(runlab, "_django", lambda: None)
    monkeypatch.setattr(runlab, "first_start", lambda: "Log in as 'admin'.")
    monkeypatch.setattr("django.core.management.call_command", lambda *a, **k: None)
    monkeypatch.setattr(runlab.subprocess, "Popen", popen)
    monkeypatch.setattr(runlab.time, "sleep", lambda s: None)
    monkeypatch.setattr(runlab.signal, "signal", lambda *a: None)

    assert runlab.main() == 1  # a process that stops by itself stops the others
    by_kind = {
        proc.args[3] if "celery" in proc.args[0] else "web": (proc, kw) for proc, kw in started
    }
    assert set(by_kind) == {"worker", "beat", "web"}
    beat, _ = by_kind["beat"]
    assert beat.args == runlab.beat_command(Path(sys.executable).parent, tmp_path / "var")
    # Beat and the worker run in groups of their own and die with the launcher.
    for kind in ("worker", "beat"):
        proc, kwargs = by_kind[kind]
        assert kwargs["start_new_session"] is True
        assert kwargs["preexec_fn"] is runlab._die_with_parent
        assert proc.signals == [signal.SIGTERM]


def test_the_beat_command_starts_a_scheduler_that_stops_on_sigterm(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="backend.config.settings.test")
    log = tmp_path / "beat.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            runlab.beat_command(Path(sys.executable).parent, var),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not list(var.glob("celerybeat-schedule*")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert "beat: Starting" in log.read_text()
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - stopped < 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not list(Path.cwd().glob("celerybeat.pid"))
