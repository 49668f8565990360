"""Unpacking zips of LSTMVis projects: the good case and every refused trick."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.support.lstmvis_builder import (
    zip_bomb,
    zip_dir,
    zip_with_encrypted_entry,
    zip_with_entries,
    zip_with_lying_size,
    zip_with_symlink,
    zip_with_traversal,
)
from workers.core.archive import extract_zip_safely
from workers.core.errors import InputError
from workers.core.lstmvis import import_lstmvis_dir
from workers.core.store import StateSet

CAP = 200 << 20


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


def test_project_in_a_top_level_folder(lstmvis_project: Path, tmp_path: Path) -> None:
    zpath = _write(tmp_path, zip_dir(lstmvis_project))
    dest = tmp_path / "x"
    proj = extract_zip_safely(zpath, dest, max_total_bytes=CAP)
    assert proj == dest / "proj"
    assert (proj / "sub" / "other.h5").is_file()
    ss_dir = tmp_path / "set"
    import_lstmvis_dir(proj, ss_dir, quota_bytes=CAP)
    assert StateSet.open(ss_dir).length == 200


def test_project_at_the_root_and_macos_folder_ignored(tmp_path: Path) -> None:
    data = zip_with_entries(
        {"lstm.yml": b"name: x\n", "__MACOSX/._lstm.yml": b"junk", "__MACOSX/proj/lstm.yml": b"x"}
    )
    dest = tmp_path / "x"
    assert extract_zip_safely(_write(tmp_path, data), dest, max_total_bytes=CAP) == dest
    assert not (dest / "__MACOSX").exists()


def _refused(tmp_path: Path, data: bytes, pattern: str, **kw: object) -> None:
    dest = tmp_path / "x"
    with pytest.raises(InputError, match=pattern) as info:
        extract_zip_safely(_write(tmp_path, data), dest, **{"max_total_bytes": CAP, **kw})  # type: ignore[arg-type]
    assert info.value.file == "upload.bin"
    assert not dest.exists()
    assert not (tmp_path / "evil").exists()


def test_traversal_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, zip_with_traversal(), "points outside")


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("/etc/evil", "absolute path"),
        ("proj/../../evil", "points outside"),
        ("..\\evil", "backslash"),
        ("C:/evil", "drive letter"),
        ("proj//evil", "empty or '.'"),
        ("proj/./evil", "empty or '.'"),
        ("proj/ev\x01il", "control characters"),
    ],
)
def test_unsafe_names_are_refused(tmp_path: Path, name: str, pattern: str) -> None:
    _refused(tmp_path, zip_with_entries({"proj/lstm.yml": b"x", name: b"evil"}), pattern)


def test_symlink_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, zip_with_symlink(), "symbolic link")


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, zip_bomb(20 << 20), "compressed more than 200 times")


def test_total_size_cap(tmp_path: Path) -> None:
    data = zip_with_entries({"proj/lstm.yml": b"x", "proj/a.h5": b"1" * 5000})
    _refused(tmp_path, data, "more than 4000 bytes", max_total_bytes=4000)


def test_lying_sizes_are_caught(tmp_path: Path) -> None:
    _refused(tmp_path, zip_with_lying_size(), "not a readable zip|more bytes than it declares")


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, zip_with_encrypted_entry(), "encrypted")


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO(zip_with_entries({"proj/lstm.yml": b"x"}))
    with zipfile.ZipFile(buf, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("proj/lstm.yml", b"y")
    _refused(tmp_path, buf.getvalue(), "more than once")


def test_too_many_entries(tmp_path: Path) -> None:
    data = zip_with_entries({f"proj/f{i}": b"" for i in range(20)})
    _refused(tmp_path, data, "21 entries|20 entries", max_entries=10)


def test_not_a_zip(tmp_path: Path) -> None:
    _refused(tmp_path, b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "not a readable zip")


def test_truncated_zip(lstmvis_project: Path, tmp_path: Path) -> None:
    data = zip_dir(lstmvis_project)
    _refused(tmp_path, data[: len(data) // 2], "not a readable zip")


def test_no_project_file(tmp_path: Path) -> None:
    _refused(tmp_path, zip_with_entries({"proj/readme.txt": b"x"}), "has no lstm.yml")


def test_several_projects(tmp_path: Path) -> None:
    data = zip_with_entries({"a/lstm.yml": b"x", "b/lstm.yml": b"x"})
    _refused(tmp_path, data, r"several projects \(a, b\)")


def test_existing_destination_is_kept_empty_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "x"
    dest.mkdir()
    with pytest.raises(InputError):
        extract_zip_safely(_write(tmp_path, zip_with_traversal()), dest, max_total_bytes=CAP)
    assert dest.is_dir()
    assert list(dest.iterdir()) == []
