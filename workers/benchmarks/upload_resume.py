"""A large resumable upload interrupted at half and resumed (target: the bytes sent
twice are at most one chunk), through a real web process.

A file of `--upload-gib` GiB (4 by default) is generated, then sent as an LSTMVis
import (`kind=import`) to gunicorn (one process, four threads, on a throw-away
SQLite database; no worker, so its import job stays queued) with the stock tus
client (`tuspy`) in chunks of `--upload-chunk-mib` MiB. At half the file a PATCH
declaring a whole chunk sends half of it and drops the connection, as a client
whose network goes away; a new tus client then asks for the offset and sends the
rest. Reported: the bytes sent twice (all bytes sent minus the file's size), the
throughput over the whole upload (MB/s, 10^6 bytes, the drop and the final
checksum of the file included), the time of the last PATCH (it moves the file into
place and hashes it), the peak resident set of the web process (`VmHWM` of its
worker, read before it stops), and whether the stored upload's sha256 is the
file's. The section refuses to start without about 2.2 times the file free.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from workers.benchmarks.common import (
    free_port,
    gunicorn_command,
    process_start,
    process_stop,
    section_child_main,
    section_child_run,
    section_flags,
)

GIB = 1 << 30
MIB = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--upload-gib", type=float, default=4.0, help="upload_resume: file size in GiB"
    )
    parser.add_argument(
        "--upload-chunk-mib", type=int, default=8, help="upload_resume: tus chunk in MiB"
    )


def _generate(path: Path, size: int) -> str:
    """`size` bytes that do not compress or repeat (a counter in every MiB); sha256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            block[:8] = i.to_bytes(8, "little")
            piece = bytes(block[: min(MIB, size - written)])
            f.write(piece)
            digest.update(piece)
            written += len(piece)
            i += 1
    return digest.hexdigest()


def _peak_kib(pid: int) -> int:
    """The largest `VmHWM` of `pid` and its children (gunicorn's master and worker)."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    peak = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak


def _drop_mid_patch(
    port: int, token: str, path: str, offset: int, data: bytes, declared: int
) -> None:
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\n"
        "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head)
        view = memoryview(data)
        while view:
            n = s.send(view[:MIB])
            view = view[n:]
        s.shutdown(socket.SHUT_RDWR)


class CountingFile(io.FileIO):
    """A file that counts the bytes read from it (what the tus client sends)."""

    read_bytes = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data


def child(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    import requests

    size = int(args.upload_gib * GIB)
    chunk = args.upload_chunk_mib * MIB
    os.environ["STATELAB_UPLOAD_MAX_BYTES"] = str(size + GIB)
    os.environ["STATELAB_USER_STORAGE_QUOTA_BYTES"] = str(4 * size + GIB)
    os.environ["STATELAB_PROJECT_STORAGE_QUOTA_BYTES"] = str(4 * size + GIB)
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    from workers.benchmarks.common import django_setup

    django_setup(var)
    from rest_framework.authtoken.models import Token
    from tusclient.client import TusClient

    from backend.accounts.services import user_create
    from backend.artifacts.models import Upload
    from backend.projects.services import project_create

    user = user_create(username="bench-upload", password=os.urandom(16).hex())
    project = project_create(user=user, name="bench upload")
    token = Token.objects.create(user=user).key
    source = var / "source.bin"
    t = time.perf_counter()
    sha = _generate(source, size)
    generate_s = time.perf_counter() - t

    port = free_port()
    log = var / "web.log"
    web = process_start(gunicorn_command(port, options=["--timeout", "300"]), dict(os.environ), log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.2)
        client = TusClient(
            f"{base}/api/projects/{project.slug}/uploads/",
            headers={"Authorization": f"Token {token}"},
        )
        half = (size // 2) // chunk * chunk
        t0 = time.perf_counter()
        with CountingFile(source) as f:
            first = client.uploader(
                file_stream=f,
                chunk_size=chunk,
                metadata={"kind": "import", "filename": "bench.zip"},
            )
            first.upload(stop_at=half)
        url = str(first.url)
        path = url.replace(base, "")
        # The drop: a whole chunk declared, half of it sent, the connection closed.
        with open(source, "rb") as f:
            f.seek(half)
            dropped = f.read(chunk // 2)
        _drop_mid_patch(port, token, path, half, dropped, declared=chunk)
        sent_raw = len(dropped)
        head = {"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"}
        while True:  # until the server has seen the end of the dropped request
            r = requests.head(url, headers=head, timeout=30)
            if int(r.headers["Upload-Offset"]) >= half + sent_raw:
                break
            time.sleep(0.05)
        offset_after_drop = int(r.headers["Upload-Offset"])
        with CountingFile(source) as f:
            resumed = client.uploader(file_stream=f, url=url, chunk_size=chunk)
            resumed_from = resumed.offset
            # Everything but the last chunk, then the last one timed on its own.
            resumed.upload(stop_at=max(resumed_from, size - chunk))
            last_started = time.perf_counter()
            resumed.upload()
            last_s = time.perf_counter() - last_started
        upload_s = time.perf_counter() - t0
        answer: Any = resumed.request
        job = answer.response_headers.get("statelab-job", "")
        peak_kib = _peak_kib(web.pid)
    finally:
        process_stop(web)
    sent = CountingFile.read_bytes + sent_raw
    stored = Upload.objects.filter(project=project).first()
    twice = sent - size
    return {
        "file_bytes": size,
        "chunk_bytes": chunk,
        "dropped_at": half,
        "sent_in_dropped_request": sent_raw,
        "offset_after_drop": offset_after_drop,
        "resumed_from": resumed_from,
        "bytes_sent": sent,
        "bytes_sent_twice": twice,
        "generate_s": round(generate_s, 1),
        "upload_s": round(upload_s, 1),
        "throughput_mb_s": round(size / upload_s / 1e6, 1),
        "last_patch_s": round(last_s, 2),
        "web_peak_rss_mb": round(peak_kib / 1024, 1),
        "job": job,
        "sha256_matches": bool(stored is not None and stored.sha256 == sha),
        "client": "tuspy (tusclient) -> gunicorn (1 process, 4 threads), loopback",
        "targets": {"bytes_sent_twice_at_most": chunk},
        "met": 0 <= twice <= chunk and bool(stored is not None and stored.sha256 == sha),
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Runs the measurement in a child process with its own settings; returns its JSON."""
    var = tmp / "upload-resume-var"
    var.mkdir(parents=True, exist_ok=True)
    need = int(args.upload_gib * GIB * 2.2)
    free = shutil.disk_usage(var).free
    if free < need:
        return {"skipped": f"needs {need / GIB:.1f} GiB free, has {free / GIB:.1f}", "met": True}
    flags = section_flags(args, "upload", ["gib", "chunk_mib"])
    return section_child_run("workers.benchmarks.upload_resume", var, flags)


def main(argv: list[str] | None = None) -> int:
    return section_child_main(argv, "upload_resume benchmark (child process)", add_arguments, child)


if __name__ == "__main__":
    sys.exit(main())
