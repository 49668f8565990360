"""The atomic writers of ``workers.core.atomic``: complete or nothing, no temp left behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from workers.core.atomic import (
    TEMP_PREFIX,
    atomic_dir,
    atomic_file,
    make_temp_dir,
    remove_stale_temp_dirs,
    temp_sibling,
    write_bytes_atomic,
    write_json_atomic,
)


class Refused(Exception):
    pass


def test_atomic_file_writes_a_stream_of_chunks(tmp_path: Path) -> None:
    final = tmp_path / "upload.bin"
    with atomic_file(final) as fh:
        for i in range(5):
            fh.write(bytes([i]) * 1000)
        assert not final.exists()  # nothing under the final name until the end
    assert final.read_bytes() == b"".join(bytes([i]) * 1000 for i in range(5))
    assert os.listdir(tmp_path) == ["upload.bin"]


def test_a_writer_that_raises_half_way_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "upload.bin"
    with pytest.raises(Refused), atomic_file(final) as fh:
        fh.write(b"x" * 4096)
        raise Refused("too large")
    assert os.listdir(tmp_path) == []


def test_a_failed_replacement_keeps_the_old_file(tmp_path: Path) -> None:
    final = tmp_path / "checkpoint.npz"
    write_bytes_atomic(final, b"old")
    with pytest.raises(KeyboardInterrupt), atomic_file(final, unique_temp=False) as fh:
        fh.write(b"new")
        raise KeyboardInterrupt
    assert final.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    write_bytes_atomic(final, b"newer")
    assert final.read_bytes() == b"newer"


def test_text_mode_and_json(tmp_path: Path) -> None:
    with atomic_file(tmp_path / "a.txt", "w") as fh:
        fh.write("déjà vu")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "déjà vu"
    write_json_atomic(tmp_path / "b.json", {"w": "é", "n": [1, 2]})
    assert json.loads((tmp_path / "b.json").read_text(encoding="utf-8")) == {"w": "é", "n": [1, 2]}
    with pytest.raises(ValueError, match=r"NaN|Out of range"):
        write_json_atomic(tmp_path / "c.json", {"x": float("nan")})
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json"]
    with pytest.raises(ValueError, match="mode"):
        atomic_file(tmp_path / "d", "ab")  # type: ignore[call-overload]


def test_temp_names_start_with_the_prefix(tmp_path: Path) -> None:
    final = tmp_path / "thing"
    assert temp_sibling(final).name.startswith(f"{TEMP_PREFIX}thing-")
    assert temp_sibling(final, unique=False).name == f"{TEMP_PREFIX}thing"
    tmp = make_temp_dir(tmp_path / "deeper" / "set")
    assert tmp.is_dir() and tmp.parent == tmp_path / "deeper"
    assert tmp.name.startswith(".tmp-set-")


def test_atomic_dir_publishes_or_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "set"
    with pytest.raises(Refused), atomic_dir(final) as tmp:
        (tmp / "a").write_bytes(b"1")
        raise Refused
    assert os.listdir(tmp_path) == []
    with atomic_dir(final) as tmp:
        (tmp / "a").write_bytes(b"1")
    assert (final / "a").read_bytes() == b"1"
    assert os.listdir(tmp_path) == ["set"]
    with pytest.raises(FileExistsError), atomic_dir(final) as tmp:
        pass
    assert os.listdir(tmp_path) == ["set"]


def test_sweeping_removes_only_old_temp_folders(tmp_path: Path) -> None:
    old, new = tmp_path / ".tmp-a-1", tmp_path / ".tmp-b-2"
    keep, loose = tmp_path / "c", tmp_path / ".tmp-file"
    for d in (old, new, keep):
        d.mkdir()
    loose.write_bytes(b"")
    past = time.time() - 2 * 24 * 3600
    for p in (old, keep, loose):
        os.utime(p, (past, past))
    assert remove_stale_temp_dirs(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-b-2", ".tmp-file", "c"]
