"""What every benchmark section shares: the machine, percentiles, a synthetic state set,
a Django set-up on a throw-away SQLite database for the HTTP figures, and the plumbing
of the sections that run real processes (a section re-launched in a child process of
its own, a Celery worker or gunicorn started with a log file, waited for, stopped)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def missed(
    what: str, measured: float | None, limit: float, unit: str, *, at_least: bool = False
) -> list[str]:
    """``[]`` when ``measured`` meets ``limit`` (at most, or ``at_least``), else one line
    that says by how much it missed, for the bench's report and its JSON (``missed``)."""
    if measured is None:
        return [f"{what}: not measured (target {'>=' if at_least else '<='} {limit:g} {unit})"]
    ok = measured >= limit if at_least else measured <= limit
    if ok:
        return []
    gap = abs(measured - limit)
    share = f" ({100 * gap / limit:.0f}%)" if limit else ""
    side = "short" if at_least else "over"
    sign = ">=" if at_least else "<="
    return [
        f"{what}: {measured:g} {unit} against {sign} {limit:g} {unit}: {gap:.3g} {unit}{share} {side}"
    ]


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "max_ms": round(ms[-1], 3),
        "n": len(ms),
    }


FEATURE_LABELS = ["out", "open", "in", "close"]


def feature_states(
    n: int, cells: int, seed: int, amplitude: float = 2.0, rho: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """A latent on/off feature and ``cells`` cells that show it, like a group of real
    cells that switch on together (inside brackets, inside a quote).

    The feature alternates stretches off (mean 60 tokens) and on (mean 20), both
    geometric. Each cell is ``amplitude`` (on) or ``-amplitude`` (off) plus its own
    AR(1) noise of unit variance (``x_t = rho x_(t-1) + e_t``), so the cells jump
    together where the feature switches and dip below a threshold now and then
    inside a stretch. Returns ``(values, labels)``: float32 (n, cells) and int32 (n,)
    ids into :data:`FEATURE_LABELS` (``open``: the first token of an on stretch,
    ``close``: the first token after one), 5% of the labels replaced at random.
    """
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    lengths: list[np.ndarray] = []
    total = 0
    while total < n:  # pairs of (off, on) stretches
        part = np.empty(2 * (n // 80 + 16), dtype=np.int64)
        part[0::2] = rng.geometric(1 / 60, part.size // 2)
        part[1::2] = rng.geometric(1 / 20, part.size // 2)
        lengths.append(part)
        total += int(part.sum())
    runs = np.concatenate(lengths)
    on = np.repeat(np.tile(np.array([False, True]), runs.size // 2), runs)[:n]
    before = np.concatenate([[False], on[:-1]])
    labels = np.where(on, 2, 0).astype(np.int32)
    labels[on & ~before] = 1
    labels[~on & before] = 3
    noisy = rng.random(n) < 0.05
    labels[noisy] = rng.integers(0, len(FEATURE_LABELS), int(noisy.sum()))
    noise = rng.standard_normal((n, cells)) * math.sqrt(1.0 - rho * rho)
    start = rng.standard_normal((1, cells)) * rho
    ar = lfilter([1.0], [1.0, -rho], noise, axis=0, zi=start)[0]
    values = (np.where(on, amplitude, -amplitude)[:, None] + ar).astype(np.float32)
    return values, labels


def build_stateset(
    path: Path,
    n: int,
    d: int,
    seed: int = 1,
    *,
    track_cell: int | None = None,
    feature_cells: tuple[int, ...] = (),
) -> None:
    """A random-walk state set (source ``s0``, a ``depth`` annotation) like real cell states.

    With ``track_cell``, a discrete track ``pos`` (labels ``lo``, ``mid``, ``hi``,
    ``top``) follows that cell (``min(track_cell, d - 1)``): its value plus N(0, 2)
    noise, cut at -2, 0 and 2. With ``feature_cells``, those cells show a latent
    feature instead of the walk (:func:`feature_states`) and a discrete track
    ``phase`` (:data:`FEATURE_LABELS`) says where it is. Neither option changes the
    other cells: the walk draws the same random numbers either way.
    """
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    ids = rng.integers(0, len(vocab), size=n).astype(np.int32)
    state = np.zeros(d, dtype=np.float32)
    labels = np.empty(n if track_cell is not None else 0, dtype=np.int32)
    feature = list(feature_cells)
    if feature:
        shown, phase = feature_states(n, len(feature), seed + 1000)

    def fill(a: int, b: int) -> np.ndarray:
        nonlocal state
        steps = rng.normal(0, 0.3, size=(b - a, d)).astype(np.float32)
        steps[0] += state
        block = np.cumsum(steps, axis=0, dtype=np.float32)
        block *= 0.999  # keep the walk bounded over a long corpus
        state = block[-1].copy()
        if track_cell is not None:
            noisy = block[:, min(track_cell, d - 1)] + rng.normal(0, 2.0, b - a)
            labels[a:b] = np.digitize(noisy, [-2.0, 0.0, 2.0]).astype(np.int32)
        if feature:
            block[:, feature] = shown[a:b]
        return block

    with StateSetWriter(path) as w:
        w.set_tokens(ids, vocab)
        w.add_source(
            SourceInfo(id="s0", name="states::c1", layer=1, kind="c", cells=d, transform="tanh"),
            n,
            fill,
        )
        if track_cell is not None:
            w.add_annotation(
                AnnotationInfo(name="pos", kind="discrete", labels=["lo", "mid", "hi", "top"]),
                labels,
            )
        if feature:
            w.add_annotation(
                AnnotationInfo(name="phase", kind="discrete", labels=FEATURE_LABELS), phase
            )
        w.add_annotation(
            AnnotationInfo(name="depth", kind="scalar"), rng.random(n).astype(np.float32)
        )
        w.commit()


_django_ready: Path | None = None


def django_setup(var: Path, database_url: str | None = None) -> None:
    """Configure Django (local settings; SQLite under ``var``, or ``database_url``)
    once per process, migrated."""
    global _django_ready
    if _django_ready is not None:
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = "backend.config.settings.local"
    os.environ["STATELAB_VAR_DIR"] = str(var)
    os.environ["STATELAB_STORE_ROOT"] = str(var / "store")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    (var / "static").mkdir(parents=True, exist_ok=True)
    _django_ready = var


@contextlib.contextmanager
def temporary_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (its URL) on the server of `admin_url`, dropped after
    the block; raises when that server does not answer."""
    import psycopg

    parsed = urlparse(admin_url)
    admin = psycopg.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or None,
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        autocommit=True,
        connect_timeout=3,
    )
    name = f"{prefix}_{os.getpid()}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunparse(parsed._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``); 0 where absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_memory() -> None:
    """Restart the kernel's high-water mark ``VmHWM`` from the current resident set.

    ``ru_maxrss`` cannot be used for a child's own peak: Linux carries the parent's
    peak across ``fork``/``exec``.
    """
    Path("/proc/self/clear_refs").write_text("5")


LOCAL_REDIS = ("127.0.0.1", 6379)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts a TCP connection on `host:port` within a second."""
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def broker_choose(choice: str, redis_url: str) -> str:
    """The broker a benchmark's worker uses: `redis_url` for "auto" when the local Redis
    answers, else kombu's filesystem transport; "filesystem"; or a URL as given."""
    if choice == "auto":
        return redis_url if port_answers(LOCAL_REDIS[1], LOCAL_REDIS[0]) else "filesystem://"
    return "filesystem://" if choice == "filesystem" else choice


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `cmd` in a session of its own (so :func:`process_stop` ends its children
    too), its stdout and stderr written to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def process_stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a process started in a session of its own (and its children): TERM, then
    KILL after `timeout` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def log_wait(
    log: Path, word: str | re.Pattern[str], proc: subprocess.Popen[bytes], seconds: float
) -> None:
    """Wait until `word` (a string, or a pattern searched for) stands in `log`; raise
    with the log's end if `proc` stops first or `seconds` pass."""
    deadline = time.monotonic() + seconds

    def seen() -> bool:
        text = log.read_text(errors="replace")
        return bool(word.search(text)) if isinstance(word, re.Pattern) else word in text

    while not seen():
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name} stopped:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: not ready in {seconds} s")
        time.sleep(0.2)


def celery_worker_command(
    name: str, *, concurrency: int = 1, loglevel: str = "WARNING", options: Sequence[str] = ()
) -> list[str]:
    """A Celery worker of this environment on both queues (`cpu`, `gpu`) under node
    `name`, without gossip and mingle (nothing to learn from other nodes in a bench)."""
    return [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "backend.config.celery_app",
        "worker",
        "-Q",
        "cpu,gpu",
        "--concurrency",
        str(concurrency),
        *options,
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]


def celery_workers_wait(
    procs: Sequence[subprocess.Popen[bytes]], logs: Sequence[Path], seconds: float
) -> None:
    """Wait until as many workers answer a ping as `procs` were started (at
    ``--loglevel WARNING`` a worker says nothing when it is ready); raise with the end
    of each log if one stops first or `seconds` pass."""
    from backend.config.celery_app import app

    deadline = time.monotonic() + seconds
    while len(app.control.ping(timeout=0.5) or []) < len(procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            chars = max(1500, 3000 // max(len(logs), 1))
            tails = "".join(log.read_text(errors="replace")[-chars:] for log in logs)
            raise RuntimeError(f"the workers did not start:\n{tails}")


def gunicorn_command(
    port: int, *, workers: int = 1, threads: int = 4, options: Sequence[str] = ()
) -> list[str]:
    """gunicorn of this environment serving the project on the loopback at `port`."""
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        "backend.config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        *options,
    ]


def section_flags(args: argparse.Namespace, prefix: str, names: Sequence[str]) -> list[str]:
    """The command-line flags ``--<prefix>-<name> VALUE`` that pass a section's own
    options (``args.<prefix>_<name>``) on to its child process."""
    flags: list[str] = []
    for name in names:
        attr = f"{prefix}_{name}"
        flags += [f"--{attr.replace('_', '-')}", str(getattr(args, attr))]
    return flags


def section_child_run(
    module: str, var: Path, flags: Sequence[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run benchmark `module` (``python -m``) in a child process with ``--var var`` and
    `flags`, on a clean Django setting (the child chooses its own) plus `env`; returns
    the JSON of its last line of output, or raises with the end of its stderr."""
    argv = [sys.executable, "-m", module, "--var", str(var), *flags]
    child_env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    child_env.update(env or {})
    proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        section = module.rsplit(".", 1)[-1]
        raise RuntimeError(f"the {section} benchmark failed:\n{proc.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def section_child_main(
    argv: list[str] | None,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    child: Callable[[argparse.Namespace, Path], dict[str, Any]],
) -> int:
    """The child process's side of :func:`section_child_run`: parse ``--var`` and the
    section's options, run `child`, print its result as one JSON line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--var", type=Path, required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    print(json.dumps(child(args, args.var)))
    return 0
