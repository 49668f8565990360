"""A resumable LSTMVis import: killed half-way, it continues from its checkpoint
(without checking unchanged files again) and gives exactly the state set of an
import that was never stopped; a changed file makes it start over; the match
index is written on the way and equals the one built afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import workers.core.lstmvis as lstmvis
from tests.support.lstmvis_builder import build_lstmvis_project
from workers.core.hdf5_guard import ValidatedHdf5
from workers.core.indexes import build_indexes
from workers.core.lstmvis import import_lstmvis_dir
from workers.core.match import MatchQuery, has_match_index, match
from workers.core.match_index import encode
from workers.core.store import StateSet

QUOTA = 1 << 30
N = 3000  # tokens: several blocks of 256 rows each


class Killed(BaseException):
    """What a killed worker looks like to the code it ran: no `except Exception`
    clean-up runs (SIGKILL runs none at all)."""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return build_lstmvis_project(tmp_path / "upload", n=N, d=10)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 256 rows and a checkpoint after every block, so that a small
    project is killed between checkpoints."""
    monkeypatch.setattr(lstmvis, "block_rows", lambda cells: 256)
    monkeypatch.setattr(lstmvis, "_CHECKPOINT_BYTES", 1)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Every .npy under a state set folder, by relative path."""
    return {str(p.relative_to(path)): np.load(p) for p in sorted(path.rglob("*.npy"))}


def _kill_after(copies: int) -> lstmvis.ProgressFn:
    seen = [0]

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Copying") and " of " in message:
            seen[0] += 1
            if seen[0] > copies:
                raise Killed

    return progress


def test_a_killed_import_resumes_where_it_stopped_and_matches_an_unbroken_one(
    project: Path, tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    import_lstmvis_dir(project, reference, quota_bytes=QUOTA)

    dest, work = tmp_path / "store" / "set", tmp_path / "store" / "work"
    with pytest.raises(Killed):
        import_lstmvis_dir(
            project, dest, quota_bytes=QUOTA, work_dir=work, progress=_kill_after(20)
        )
    assert not dest.exists()  # nothing visible under the final name
    checkpoint = json.loads((work / "checkpoint.json").read_text())
    done = checkpoint["rows"]
    assert done and all(r % 256 == 0 or r == N for r in done.values())
    assert sum(done.values()) > 0

    # The second attempt checks no unchanged file again and reads each source from
    # its checkpoint on.
    def no_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file was checked again")

    starts: dict[str, int] = {}
    real_rows_into = ValidatedHdf5.rows_into

    def rows_into(self: ValidatedHdf5, name: str, a: int, b: int, out: np.ndarray) -> np.ndarray:
        starts.setdefault(name, a)
        return real_rows_into(self, name, a, b, out)

    monkeypatch.setattr(lstmvis, "inspect_hdf5", no_check)
    monkeypatch.setattr(ValidatedHdf5, "rows_into", rows_into)
    bytes_seen: list[tuple[int, int]] = []
    import_lstmvis_dir(
        project,
        dest,
        quota_bytes=QUOTA,
        work_dir=work,
        on_bytes=lambda d, t: bytes_seen.append((d, t)),
    )
    ss = StateSet.open(dest)
    for sid, rows in done.items():
        name = ss.source(sid).name.split("::", 1)[1].lstrip("/")
        if rows < N:
            assert starts[name] == rows, (sid, starts)
        else:
            assert name not in starts  # finished before the kill: not read again
    assert bytes_seen[0][0] > 0 and bytes_seen[-1][0] == bytes_seen[-1][1]

    got, want = _arrays(dest), _arrays(reference)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert StateSet.open(dest).manifest.to_json() == StateSet.open(reference).manifest.to_json()


def test_a_changed_file_makes_the_resumed_import_start_over(
    project: Path, tmp_path: Path, small_blocks: None
) -> None:
    dest, work = tmp_path / "store" / "set", tmp_path / "store" / "work"
    with pytest.raises(Killed):
        import_lstmvis_dir(project, dest, quota_bytes=QUOTA, work_dir=work, progress=_kill_after(5))
    with h5py.File(project / "states.hdf5", "a") as f:
        f["states1"][...] = -f["states1"][...]
        expected = np.asarray(f["states1"][()])
    import_lstmvis_dir(project, dest, quota_bytes=QUOTA, work_dir=work)
    ss = StateSet.open(dest)
    sid = ss.manifest.extra["sources_by_address"]["states::states1"]
    np.testing.assert_array_equal(np.asarray(ss.values(sid)), expected)


def test_the_match_index_is_written_on_the_way_and_equals_a_later_build(
    project: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "set"
    import_lstmvis_dir(project, dest, quota_bytes=QUOTA)
    ss = StateSet.open(dest)
    assert all(has_match_index(ss, s) for s in ss.source_ids)
    for sid in ss.source_ids:
        codes = np.load(dest / "index" / "match" / sid / "codes.npy")
        np.testing.assert_array_equal(codes, encode(np.asarray(ss.values(sid))).T)
    built = build_indexes(dest, missing_only=True)
    assert built == ["search"]  # the match indexes were there already

    plain = tmp_path / "plain"
    import_lstmvis_dir(project, plain, quota_bytes=QUOTA, index=False)
    assert not any(has_match_index(StateSet.open(plain), s) for s in ss.source_ids)
    build_indexes(plain)
    for sid in ss.source_ids:
        for name in ("codes.npy", "mins.npy"):
            np.testing.assert_array_equal(
                np.load(dest / "index" / "match" / sid / name),
                np.load(plain / "index" / "match" / sid / name),
            )
    q = MatchQuery(cells=(1, 2, 4), threshold=0.3)
    assert match(ss, "s0", q).to_json() == match(StateSet.open(plain), "s0", q).to_json()


def test_the_quota_counts_the_match_index(project: Path, tmp_path: Path) -> None:
    """What the state set will occupy with its index is charged before anything is
    written: a quota between the two sizes refuses it with the index, not without."""
    n_values = N * (10 + 10 + 13 + 10)  # states1, states2u, states2 (d + 3), output2
    without_index = N * 4 + n_values * 4 + 21 * 8 * 4
    quota = without_index + 1000
    with pytest.raises(lstmvis.InputError, match="would need"):
        import_lstmvis_dir(project, tmp_path / "a", quota_bytes=quota)
    assert not (tmp_path / "a").exists()
    import_lstmvis_dir(project, tmp_path / "b", quota_bytes=quota, index=False)
