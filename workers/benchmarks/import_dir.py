"""A large LSTMVis directory imported where it lies, and the first match after it
(targets: the import within 2x the time of `cp` of the same files on the same disk,
at most 1 GB of peak memory; the first match right after the import, and the first
after a fresh worker start, within 2x of the warm median).

The directory is generated here: by default the paper's size, 1M tokens and four
sources of 650 cells (float32, about 10 GB of HDF5 in one file, contiguous as
Torch writes it), whose cells are AR(1) processes like real cell states, with a word
sequence and its dictionary. First the files are copied with `cp -r`, and each
file of the copy is fsynced (the copy is then removed); then `manage.py import_lstmvis`'s job,
`import_lstmvis_dir`, runs in a real Celery worker process (prefork, one process,
the broker as in `match_http`: the local Redis when it answers) on a throw-away
SQLite database, timed from the job's creation until it has succeeded: checking
every HDF5 file in its sandbox, the copy with its match index, the search index,
the corpus of its text and the row. Its memory is the pool process's peak resident
set (`VmHWM`, reset just before the import). Both runs see the files in the page
cache, as a directory just written would be.

Then matches of 8 fresh random cells each (threshold 0.3, as a user's first
clicks) go through the REST route (`POST /api/statesets/{id}/matches/`, in this
process, waiting for the worker): the first right after the import, then more
for the warm median; the worker is stopped, a new one started (it warms its
kernels before it takes jobs), and the same again, three times (the median of the
three first matches is compared). The JSON has every figure and the machine.
Everything is generated in a temporary folder and removed; the section refuses to
start without the free space it needs (about 3.6 times the directory: the files,
the copy, the state set and its index).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import (
    broker_choose,
    celery_worker_command,
    log_wait,
    process_start,
    process_stop,
    section_child_main,
    section_child_run,
    section_flags,
)

TARGET_CP_RATIO = 2.0
TARGET_PEAK_MB = 1024.0
TARGET_FIRST_RATIO = 2.0
# Fresh worker starts, each followed by a first match.
RESTARTS = 3
REDIS_URL = "redis://127.0.0.1:6379/13"
SOURCES = ("states1", "output1", "states2", "output2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import-dir-tokens", type=int, default=1_000_000, help="import_dir: tokens"
    )
    parser.add_argument(
        "--import-dir-cells", type=int, default=650, help="import_dir: cells per source"
    )
    parser.add_argument(
        "--import-dir-sources", type=int, default=4, help="import_dir: sources (1 to 4)"
    )
    parser.add_argument(
        "--import-dir-queries", type=int, default=20, help="import_dir: warm matches timed"
    )
    parser.add_argument(
        "--import-dir-broker",
        default="auto",
        help="import_dir: a broker URL, 'filesystem', or 'auto' (local Redis when it answers)",
    )


def generate(folder: Path, n: int, d: int, sources: int, seed: int = 5) -> int:
    """Write an LSTMVis project of ``sources`` float32 matrices ``n x d`` into
    ``folder``; returns the bytes written. Each cell is an AR(1) process with its
    own scale and one of eight coefficients from 0.9 to 0.99, drawn block by
    block."""
    import h5py
    import yaml
    from scipy.signal import lfilter

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    vocab = 10_000
    with h5py.File(folder / "train.h5", "w") as f:
        f.create_dataset("word_ids", data=rng.integers(1, vocab, n).astype(np.int32))
    lines = [f"w{i} {i}" for i in range(1, vocab)]
    (folder / "words.dict").write_text("<unk> 0\n" + "\n".join(lines) + "\n", encoding="utf-8")
    step = 1 << 16
    with h5py.File(folder / "states.h5", "w") as f:
        for name in SOURCES[:sources]:
            ds = f.create_dataset(name, shape=(n, d), dtype="float32")
            group = rng.integers(0, 8, d)
            rhos = np.linspace(0.9, 0.99, 8)
            rho = rhos[group]
            scale = rng.uniform(0.3, 3.0, d) * np.sqrt(1 - rho * rho)
            state = np.zeros(d)
            for a in range(0, n, step):
                b = min(n, a + step)
                noise = rng.standard_normal((b - a, d), dtype=np.float32) * scale
                block = np.empty((b - a, d), dtype=np.float64)
                for g, r in enumerate(rhos):  # the cells of one coefficient at once
                    cols = np.flatnonzero(group == g)
                    block[:, cols], _ = lfilter(
                        [1.0], [1.0, -r], noise[:, cols], axis=0, zi=(r * state[cols])[None, :]
                    )
                state = block[-1].copy()
                ds[a:b] = block.astype(np.float32)
    config = {
        "name": f"benchmark {n:,} x {d} x {sources}",
        "description": "generated by make bench (import_dir)",
        "files": {"states": "states.h5", "train": "train.h5", "words": "words.dict"},
        "word_sequence": {"file": "train", "path": "word_ids", "dict_file": "words"},
        "states": {
            "file": "states",
            "types": [
                {"type": "state", "layer": 1 + i // 2, "path": name}
                for i, name in enumerate(SOURCES[:sources])
            ],
        },
    }
    (folder / "lstm.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return sum(p.stat().st_size for p in folder.iterdir())


def _cp(src: Path, dest: Path) -> dict[str, float]:
    cp = shutil.which("cp") or "/bin/cp"
    os.sync()
    t = time.perf_counter()
    subprocess.run([cp, "-r", str(src), str(dest)], check=True)
    copied = time.perf_counter() - t
    # Durable as the import's output is: each file of the copy fsynced (a sync of
    # the whole machine would also wait for other processes' writes).
    for path in [*dest.rglob("*"), dest]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    total = time.perf_counter() - t
    shutil.rmtree(dest)
    os.sync()
    return {"cp_s": round(copied, 2), "cp_and_fsync_s": round(total, 2)}


def _start_worker(env: dict[str, str], log: Path, name: str) -> subprocess.Popen[bytes]:
    proc = process_start(celery_worker_command(name, loglevel="INFO"), env, log)
    log_wait(log, re.compile(r"@\S+ ready\."), proc, 180)
    return proc


def _pool_pid(main: int) -> int:
    """The worker's pool process (its one child that is a Python process)."""
    for _ in range(100):
        children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("the worker has no pool process")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _warm_line(log: Path) -> str | None:
    found = re.search(r"Kernels warmed: .*", log.read_text(errors="replace"))
    return found.group(0) if found else None


def _match_parts(match_id: str, elapsed: float) -> dict[str, float]:
    """A match's time, split: until a worker started its job, the job, the engine."""
    from backend.jobs.models import Job
    from backend.matching.models import Match

    out = {"total_ms": round(elapsed * 1000, 1)}
    match = Match.objects.filter(id=match_id).first()
    job = Job.objects.filter(kind="match", result__match=match_id).first()
    if job is not None and job.started_at and job.finished_at:
        out["to_start_ms"] = round((job.started_at - job.created_at).total_seconds() * 1000, 1)
        out["job_ms"] = round((job.finished_at - job.started_at).total_seconds() * 1000, 1)
    if match is not None and match.seconds is not None:
        out["engine_ms"] = round(float(match.seconds) * 1000, 1)
    return out


def child(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    """Runs in the child process: generate, copy, import in a worker, match."""
    from workers.benchmarks.common import django_setup, machine, summarise

    n, d, k = args.import_dir_tokens, args.import_dir_cells, args.import_dir_sources
    if not 1 <= k <= len(SOURCES):
        raise SystemExit(f"--import-dir-sources must be 1 to {len(SOURCES)}")
    src_bytes = n * d * k * 4
    need = int(src_bytes * 3.6) + (2 << 30)
    free = shutil.disk_usage(var).free
    if free < need:
        raise SystemExit(
            f"import_dir needs {need / 2**30:.1f} GB free in {var} and has {free / 2**30:.1f} GB; "
            "give fewer --import-dir-tokens"
        )
    broker = broker_choose(args.import_dir_broker, REDIS_URL)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    os.environ["STATELAB_MATCH_RATE"] = "100000/min"
    os.environ["STATELAB_JOB_LEASE_SECONDS"] = "60"
    django_setup(var)
    for sub in ("queue", "processed", "control"):
        (var / "broker" / sub).mkdir(parents=True, exist_ok=True)
    from rest_framework.test import APIClient

    from backend.accounts.services import user_create
    from backend.jobs.models import Job
    from backend.projects.services import project_create
    from backend.states.directories import import_dir_start

    src = var / "lstmvis"
    t = time.perf_counter()
    generate(src, n, d, k)
    generate_s = time.perf_counter() - t
    files_bytes = sum(p.stat().st_size for p in src.iterdir())
    copy = _cp(src, var / "copy")

    user = user_create(username="bench-import", password=os.urandom(16).hex())
    project = project_create(user=user, name="bench import")
    env = dict(os.environ)
    worker = _start_worker(env, var / "worker-1.log", f"bench-import-{os.getpid()}-1@%h")
    workers = [worker]
    try:
        pool = _pool_pid(worker.pid)
        Path(f"/proc/{pool}/clear_refs").write_text("5")  # peak from here on
        rss_before = _status_kib(pool, "VmRSS")
        t = time.perf_counter()
        job, _ = import_dir_start(project=project, user=user, path=src, roots=False)
        while True:
            job = Job.objects.get(id=job.id)
            if job.status not in ("queued", "running"):
                break
            time.sleep(0.05)
        import_s = time.perf_counter() - t
        if job.status != "succeeded":
            raise RuntimeError(f"the import {job.status}: {job.error}")
        peak_kib = _status_kib(pool, "VmHWM")
        ss_id = job.result["stateset"]
        api = APIClient(SERVER_NAME="localhost")
        api.force_authenticate(user)
        rng = np.random.default_rng(17)

        parts: list[dict[str, float]] = []

        def one_match() -> float:
            cells = sorted(int(c) for c in rng.choice(d, 8, replace=False))
            body = {"source": "s0", "cells": cells, "threshold": 0.3, "zero_left": 1}
            t0 = time.perf_counter()
            r = api.post(f"/api/statesets/{ss_id}/matches/", body, format="json")
            if r.status_code == 202:
                job_id = r.json()["job"]["id"]
                while Job.objects.filter(id=job_id, status__in=("queued", "running")).exists():
                    time.sleep(0.002)
                match_id = str(Job.objects.get(id=job_id).result["match"])
            elif r.status_code == 200:
                match_id = str(r.json()["id"])
            else:
                raise RuntimeError(f"match answered {r.status_code}: {r.content[:300]!r}")
            elapsed = time.perf_counter() - t0
            parts.append(_match_parts(match_id, elapsed))
            return elapsed

        # What the browser asks before a first match: the state set's page.
        api.get(f"/api/statesets/{ss_id}/")
        first_after_import = one_match()
        warm = [one_match() for _ in range(args.import_dir_queries)]
        # A fresh worker, three times (one sample each is noisy on a shared machine).
        firsts: list[float] = []
        first_parts: list[dict[str, float]] = []
        warm_again: list[float] = []
        for restart in range(RESTARTS):
            process_stop(worker, 30)
            name = f"bench-import-{os.getpid()}-{restart + 2}@%h"
            worker = _start_worker(env, var / f"worker-{restart + 2}.log", name)
            workers.append(worker)
            api.get(f"/api/statesets/{ss_id}/")
            firsts.append(one_match())
            first_parts.append(parts[-1])
            warm_again += [one_match() for _ in range(args.import_dir_queries // RESTARTS)]
        first_after_start = statistics.median(firsts)
    finally:
        for w in workers:
            process_stop(w, 30)
    ss_dir = var / "store" / "statesets" / job.id.hex
    stored = sum(p.stat().st_size for p in ss_dir.rglob("*") if p.is_file())
    cp_s = copy["cp_and_fsync_s"]
    ratio = import_s / cp_s
    peak_mb = peak_kib / 1024
    warm_med = statistics.median(warm)
    warm_again_med = statistics.median(warm_again)
    first_ratio = first_after_import / warm_med
    restart_ratio = first_after_start / warm_again_med
    return {
        "machine": machine(),
        "directory": {
            "tokens": n,
            "cells": d,
            "sources": k,
            "hdf5_bytes": files_bytes,
            "generate_s": round(generate_s, 1),
        },
        "copy": {**copy, "what": "cp -r of the directory, then fsync of each copied file"},
        "import": {
            "seconds": round(import_s, 2),
            "ratio_to_cp_and_fsync": round(ratio, 2),
            "job_message": job.message,
            "stored_bytes": stored,
            "peak_rss_mb": round(peak_mb, 1),
            "rss_before_mb": round(rss_before / 1024, 1),
            "what": "job import_lstmvis_dir in a Celery prefork worker, creation to success",
        },
        "worker_warm_up": [_warm_line(var / f"worker-{i + 1}.log") for i in range(RESTARTS + 1)],
        "broker": broker.split("://")[0],
        "first_match": {
            "after_import_ms": round(first_after_import * 1000, 1),
            "warm": summarise(warm),
            "after_import_ratio": round(first_ratio, 2),
            "after_worker_start_ms": round(first_after_start * 1000, 1),
            "after_worker_start_each_ms": [round(f * 1000, 1) for f in firsts],
            "warm_after_start": summarise(warm_again),
            "after_worker_start_ratio": round(restart_ratio, 2),
            # Where the time went: waiting for the worker, the job, the engine in it.
            "first_after_import_parts": parts[0],
            "first_after_start_parts": first_parts,
            "warm_parts_median": {
                key: round(statistics.median(p[key] for p in parts[1 : 1 + len(warm)]), 1)
                for key in parts[0]
            },
            "what": "POST /api/statesets/{id}/matches/, 8 fresh random cells, until answered",
        },
        "target": {
            "import_to_cp_ratio": TARGET_CP_RATIO,
            "peak_rss_mb": TARGET_PEAK_MB,
            "first_to_warm_median_ratio": TARGET_FIRST_RATIO,
        },
        "met": ratio <= TARGET_CP_RATIO
        and peak_mb <= TARGET_PEAK_MB
        and first_ratio <= TARGET_FIRST_RATIO
        and restart_ratio <= TARGET_FIRST_RATIO,
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Runs the measurement in a child process with its own settings; returns its JSON."""
    var = tmp / "import-dir-var"
    var.mkdir(parents=True, exist_ok=True)
    flags = section_flags(args, "import_dir", ["tokens", "cells", "sources", "queries", "broker"])
    try:
        out = section_child_run("workers.benchmarks.import_dir", var, flags)
    finally:
        shutil.rmtree(var, ignore_errors=True)
    out.pop("machine", None)  # bench.py records the machine once
    return out


def main(argv: list[str] | None = None) -> int:
    return section_child_main(argv, "import_dir benchmark (child process)", add_arguments, child)


if __name__ == "__main__":
    sys.exit(main())
