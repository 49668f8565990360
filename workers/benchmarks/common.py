"""What every benchmark section shares: the machine, percentiles, a synthetic state set,
and a Django set-up on a throw-away SQLite database for the HTTP figures."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

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


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "max_ms": round(ms[-1], 3),
        "n": len(ms),
    }


def build_stateset(path: Path, n: int, d: int, seed: int = 1) -> None:
    """A random-walk state set (source ``s0``, a ``depth`` annotation) like real cell states."""
    from workers.core.store import AnnotationInfo, SourceInfo, StateSetWriter

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    ids = rng.integers(0, len(vocab), size=n).astype(np.int32)
    state = np.zeros(d, dtype=np.float32)

    def fill(a: int, b: int) -> np.ndarray:
        nonlocal state
        steps = rng.normal(0, 0.3, size=(b - a, d)).astype(np.float32)
        steps[0] += state
        block = np.cumsum(steps, axis=0, dtype=np.float32)
        block *= 0.999  # keep the walk bounded over a long corpus
        state = block[-1].copy()
        return block

    with StateSetWriter(path) as w:
        w.set_tokens(ids, vocab)
        w.add_source(
            SourceInfo(id="s0", name="states::c1", layer=1, kind="c", cells=d, transform="tanh"),
            n,
            fill,
        )
        w.add_annotation(
            AnnotationInfo(name="depth", kind="scalar"), rng.random(n).astype(np.float32)
        )
        w.commit()


_django_ready: Path | None = None


def django_setup(var: Path) -> None:
    """Configure Django (local settings, SQLite under ``var``) once per process, migrated."""
    global _django_ready
    if _django_ready is not None:
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = "backend.config.settings.local"
    os.environ["STATELAB_VAR_DIR"] = str(var)
    os.environ["STATELAB_STORE_ROOT"] = str(var / "store")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    (var / "static").mkdir(parents=True, exist_ok=True)
    _django_ready = var


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
