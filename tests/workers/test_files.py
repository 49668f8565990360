"""Sizes and digests of stored files, as the quota and the model records use them."""

import hashlib

from workers.core.files import dir_size, sha256_file


def test_dir_size_counts_every_file_below_and_nothing_else(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    (tmp_path / "sub" / "deeper" / "c").write_bytes(b"")
    assert dir_size(tmp_path) == 15
    assert dir_size(tmp_path / "sub" / "deeper") == 0


def test_sha256_file_reads_in_blocks_and_equals_hashlib(tmp_path):
    data = bytes(range(256)) * 9000  # more than one 1 MiB block
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
