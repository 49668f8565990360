"""The HDF5 check: every way an HDF5 file can reach outside itself or break the reader."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.lstmvis_builder import (
    make_bad_filter_hdf5,
    make_external_link_hdf5,
    make_external_storage_hdf5,
    make_virtual_dataset_hdf5,
    truncate_file,
)
from workers.core.errors import InputError
from workers.core.hdf5_guard import DatasetInfo, ValidatedHdf5, inspect_hdf5, read_dataset_rows

QUOTA = 1 << 30


def _inspect(path: Path, **kw: object) -> dict[str, DatasetInfo]:
    return inspect_hdf5(path, display_name="user.h5", quota_bytes=kw.pop("quota", QUOTA), **kw)  # type: ignore[arg-type]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.arange(100, dtype=np.int64))
        f.create_dataset(
            "g/states", data=np.ones((100, 5), ">f4"), compression="gzip", shuffle=True
        )
        f.create_dataset("lzf", data=np.ones((10, 5)), compression="lzf", fletcher32=True)
        f.create_dataset("so", data=np.ones(10), scaleoffset=2)
        f.create_dataset("empty", shape=(0, 3), dtype="f4")
        f["alias"] = h5py.SoftLink("/g/states")
        f["g"].attrs["note"] = "attributes are never read"
    return path


def test_good_file_lists_datasets(good: Path) -> None:
    infos = _inspect(good)
    assert infos["ids"] == DatasetInfo((100,), "int64")
    assert infos["g/states"] == DatasetInfo((100, 5), "float32")
    assert infos["alias"] == infos["g/states"]
    assert infos["empty"] == DatasetInfo((0, 3), "float32")
    assert set(infos) == {"ids", "g/states", "lzf", "so", "empty", "alias"}


def test_rows_are_read_through_hard_and_checked_soft_links(good: Path) -> None:
    np.testing.assert_array_equal(read_dataset_rows(good, "/ids", 3, 6), [3, 4, 5])
    assert read_dataset_rows(good, "alias", 0, 2).shape == (2, 5)
    with (
        ValidatedHdf5(good, display_name="user.h5") as h5,
        pytest.raises(InputError, match=r"user\.h5: there is no dataset 'g'"),
    ):
        h5.dataset("g")


def _expect_refused(path: Path, pattern: str, **kw: object) -> InputError:
    with pytest.raises(InputError, match=pattern) as info:
        _inspect(path, **kw)
    assert info.value.file == "user.h5"
    assert str(info.value).startswith("user.h5: ")
    assert str(path) not in str(info.value)
    return info.value


def test_external_link_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["secret"] = np.arange(3)
    path = tmp_path / "x.h5"
    make_external_link_hdf5(path, secret)
    _expect_refused(path, "external link")


def test_virtual_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    make_virtual_dataset_hdf5(path, tmp_path / "src.h5", dataset="states1", shape=(10, 4))
    _expect_refused(path, "virtual dataset")


def test_external_raw_storage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    make_external_storage_hdf5(path, tmp_path / "raw.bin", dataset="states1", shape=(10, 4))
    _expect_refused(path, "external files")


@pytest.mark.parametrize(("filter_id", "label"), [(5, "nbit"), (32013, "32013")])
def test_filters_outside_the_list_are_refused(tmp_path: Path, filter_id: int, label: str) -> None:
    path = tmp_path / "x.h5"
    make_bad_filter_hdf5(path, dataset="states1", data=np.ones((20, 3)), filter_id=filter_id)
    _expect_refused(path, f"filter .*{label}")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (np.array([b"a", b"b"]), "data type"),
        (np.zeros(3, dtype=[("a", "i4"), ("b", "f4")]), "data type"),
        (np.zeros(3, dtype=np.complex64), "data type"),
        (np.zeros((2, 2, 2), dtype="f4"), "3 dimensions"),
    ],
)
def test_wrong_dtype_or_rank_is_refused(tmp_path: Path, data: np.ndarray, pattern: str) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("bad", data=data)
    _expect_refused(path, pattern)


def test_variable_length_strings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("words", data=["a", "bb"], dtype=h5py.string_dtype())
    _expect_refused(path, "data type")


def test_object_references_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["target"] = np.arange(3)
        refs = f.create_dataset("refs", (1,), dtype=h5py.ref_dtype)
        refs[0] = f["target"].ref
    _expect_refused(path, "'refs' has the data type")


def test_declared_size_over_quota_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        # 8 GB declared, almost nothing stored: chunks are allocated lazily.
        f.create_dataset("huge", shape=(1 << 20, 2048), dtype="f4", chunks=(1024, 64))
    _expect_refused(path, "declare 8,589,934,592 bytes", quota=1 << 30)


def test_truncated_file_is_refused(good: Path) -> None:
    truncate_file(good, keep=0.5)
    _expect_refused(good, "damaged|truncated|could not be read safely")


def test_corrupt_chunk_is_found_by_reading(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    data = np.random.default_rng(0).normal(size=(4000, 50)).astype("f4")
    with h5py.File(path, "w") as f:
        f.create_dataset("states", data=data, compression="gzip", chunks=(500, 50))
        offset = f["states"].id.get_chunk_info(3).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    _expect_refused(path, "'states' is damaged or truncated")


def test_not_hdf5_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    path.write_bytes(b"PK\x03\x04 this is a zip, not HDF5" * 40)
    _expect_refused(path, "not an HDF5 file")


def test_dangling_soft_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["real"] = np.arange(3)
        f["alias"] = h5py.SoftLink("/nowhere")
    _expect_refused(path, "link to '/nowhere'")


def test_soft_link_through_an_external_link_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["secret/data"] = np.arange(3)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["ext"] = h5py.ExternalLink(str(secret), "/secret")
        f["alias"] = h5py.SoftLink("/ext/data")
    _expect_refused(path, "external link")


def test_child_out_of_memory_is_reported_not_crashing(good: Path) -> None:
    err = _expect_refused(good, "could not be read safely", memory_bytes=64 << 20)
    assert "HDF5 reader" in err.message


def test_timeout_is_reported(good: Path) -> None:
    _expect_refused(good, "could not be read safely: checking it took longer", timeout_s=0.001)


def test_missing_file(tmp_path: Path) -> None:
    _expect_refused(tmp_path / "none.h5", "the file is missing")


def test_huge_chunks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("states", shape=(1 << 16, 512), dtype="f4", chunks=(1 << 16, 512))
    _expect_refused(path, "chunks of 134217728 bytes")
