"""The state store: round trips, atomic publication, damaged stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.lstmvis_builder import temp_leftovers
from workers.core.errors import InputError
from workers.core.store import (
    AnnotationInfo,
    Manifest,
    SourceInfo,
    StateSet,
    StateSetWriter,
    UnknownNameError,
    open_corpus,
    remove_stale_temp_dirs,
    write_corpus,
)

REPO = Path(__file__).resolve().parents[2]


def _write_small(dest: Path, n: int = 50, d: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, d)).astype(np.float32)
    ids = rng.integers(0, 5, size=n)
    with StateSetWriter(dest) as w:
        w.set_tokens(ids, ["a", "b", "c", " ", "<eos>"])
        w.add_source(SourceInfo("s0", "layer 1 c", 1, "c", d, "tanh"), n, lambda a, b: values[a:b])
        w.add_annotation(AnnotationInfo("depth", "scalar"), np.arange(n, dtype=np.float64))
        w.add_annotation(AnnotationInfo("pos", "discrete", labels=["NN", "", "VB"]), ids % 3)
        w.add_annotation(
            AnnotationInfo("topk", "wordvec"),
            np.stack([ids, (ids + 1) % 5], axis=1),
            np.full((n, 2), 0.5),
        )
        w.set_embedding(np.ones((5, 3)))
        w.set_streams([0, 25], [0, 10, 30])
        w.set_extra({"name": "demo"})
        w.commit()
    return values, ids


def test_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "sets" / "one"
    values, ids = _write_small(dest)
    ss = StateSet.open(dest)
    assert ss.length == 50
    assert ss.vocab == ["a", "b", "c", " ", "<eos>"]
    np.testing.assert_array_equal(ss.tokens, ids)
    assert ss.tokens.dtype == np.int32
    np.testing.assert_array_equal(ss.values("s0"), values)
    assert isinstance(ss.values("s0"), np.memmap)
    assert ss.source("s0").transform == "tanh"
    depth, w = ss.annotation("depth")
    assert depth.dtype == np.float32
    assert w is None
    topk, weights = ss.annotation("topk")
    assert topk.shape == (50, 2)
    assert weights is not None
    assert weights.dtype == np.float32
    assert ss.manifest.annotations[2].k == 2
    assert ss.manifest.stream_starts == [0, 25]
    assert ss.manifest.doc_starts == [0, 10, 30]
    assert ss.manifest.extra == {"name": "demo"}
    emb = ss.embedding()
    assert emb is not None
    assert emb.shape == (5, 3)
    assert temp_leftovers(dest.parent) == []


def test_manifest_json_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    _write_small(dest)
    text = (dest / "manifest.json").read_text()
    m = Manifest.from_json(text)
    assert m.to_json() == json.loads(text)
    assert Manifest.from_json(m.to_json()) == m
    assert m.format == "statelab-stateset"
    assert m.version == 1


def test_unknown_source_is_input_and_key_error(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    _write_small(dest)
    ss = StateSet.open(dest)
    with pytest.raises(KeyError):
        ss.source("nope")
    with pytest.raises(InputError, match="no source 'nope'"):
        ss.values("nope")
    with pytest.raises(UnknownNameError):
        ss.annotation("nope")


def test_exception_mid_write_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "sets" / "broken"
    calls = []

    def fill(a: int, b: int) -> np.ndarray:
        calls.append(a)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return np.zeros((b - a, 4096), dtype=np.float32)

    def write() -> None:
        with StateSetWriter(dest) as w:
            w.set_tokens(np.zeros(3000, dtype=np.int32), ["x"])
            w.add_source(SourceInfo("s0", "big", 1, "h", 4096, "none"), 3000, fill)
            w.commit()

    with pytest.raises(RuntimeError, match="disk on fire"):
        write()
    assert len(calls) == 2  # it really was written in slices
    assert not dest.exists()
    assert temp_leftovers(dest.parent) == []


def test_not_committed_is_aborted(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    with StateSetWriter(dest) as w:
        w.set_tokens(np.zeros(3, dtype=np.int32), ["x"])
    assert not dest.exists()
    assert temp_leftovers(tmp_path) == []


def test_commit_checks_lengths(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    w = StateSetWriter(dest)
    w.set_tokens(np.zeros(10, dtype=np.int32), ["x"])
    w.add_source(SourceInfo("s0", "x", 1, "h", 2, "none"), 9, lambda a, b: np.zeros((b - a, 2)))
    with pytest.raises(ValueError, match="rows"):
        w.commit()
    assert not dest.exists()
    assert temp_leftovers(tmp_path) == []


def test_commit_refuses_existing_target(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    _write_small(dest)
    with pytest.raises(FileExistsError):
        StateSetWriter(dest)
    w = StateSetWriter(tmp_path / "t")
    w.set_tokens(np.zeros(3, dtype=np.int32), ["x"])
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "someone-else").write_text("first")
    with pytest.raises(OSError, match=r"exists|not empty"):
        w.commit()
    assert (tmp_path / "t" / "someone-else").read_text() == "first"
    assert temp_leftovers(tmp_path) == []


def test_bad_names_and_inputs_are_refused(tmp_path: Path) -> None:
    with StateSetWriter(tmp_path / "s") as w:
        w.set_tokens(np.zeros(3, dtype=np.int32), ["x"])
        for bad in ("../x", ".hidden", "a/b", ""):
            with pytest.raises(ValueError, match="source id"):
                w.add_source(
                    SourceInfo(bad, "x", 1, "h", 1, "none"), 3, lambda a, b: np.zeros((b - a, 1))
                )
        with pytest.raises(ValueError, match="transform"):
            w.add_source(
                SourceInfo("s0", "x", 1, "h", 1, "sigmoid"), 3, lambda a, b: np.zeros((b - a, 1))
            )
        with pytest.raises(ValueError, match="shape"):
            w.add_source(
                SourceInfo("s1", "x", 1, "h", 2, "none"), 3, lambda a, b: np.zeros((b - a, 1))
            )
        with pytest.raises(ValueError, match="lie in"):
            w.set_tokens(np.array([0, 1]), ["x"])
    assert temp_leftovers(tmp_path) == []


def test_damaged_manifest_is_an_input_error(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    _write_small(dest)
    (dest / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="damaged"):
        StateSet.open(dest)
    (dest / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a StateLab state set"):
        StateSet.open(dest)
    with pytest.raises(InputError, match="no manifest"):
        StateSet.open(tmp_path)


def test_corpus_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "corpora" / "c1"
    ids = np.array([0, 1, 2, 0, 1], dtype=np.int64)
    write_corpus(dest, ids, ["a", "b", "<eos>"], [0, 3], {"mode": "word"})
    c = open_corpus(dest)
    np.testing.assert_array_equal(c.ids, ids)
    assert c.ids.dtype == np.int32
    assert c.vocab == ["a", "b", "<eos>"]
    assert c.doc_starts == [0, 3]
    assert c.extra == {"mode": "word"}
    assert c.length == 5
    assert json.loads((dest / "manifest.json").read_text())["format"] == "statelab-corpus"
    with pytest.raises(FileExistsError):
        write_corpus(dest, ids, ["a", "b", "<eos>"], [0], {})
    with pytest.raises(ValueError, match="document starts"):
        write_corpus(tmp_path / "c2", ids, ["a", "b", "<eos>"], [1], {})
    assert temp_leftovers(dest.parent) == []
    assert not (tmp_path / "c2").exists()
    with pytest.raises(InputError, match="not a StateLab corpus"):
        open_corpus(_a_state_set(tmp_path))


def _a_state_set(tmp_path: Path) -> Path:
    dest = tmp_path / "a-state-set"
    _write_small(dest)
    return dest


def test_sigkill_mid_write_leaves_no_visible_output(tmp_path: Path) -> None:
    dest = tmp_path / "sets" / "killed"
    marker = tmp_path / "writing"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        import numpy as np
        from workers.core.store import SourceInfo, StateSetWriter

        def fill(a, b):
            if a > 0:
                Path({str(marker)!r}).write_text("half")
                time.sleep(60)
            return np.zeros((b - a, 4096), dtype=np.float32)

        with StateSetWriter(Path({str(dest)!r})) as w:
            w.set_tokens(np.zeros(5000, dtype=np.int32), ["x"])
            w.add_source(SourceInfo("s0", "x", 1, "h", 4096, "none"), 5000, fill)
            w.commit()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not dest.exists()
    stale = temp_leftovers(dest.parent)
    assert len(stale) == 1
    assert remove_stale_temp_dirs(dest.parent, older_than_s=3600) == []
    removed = remove_stale_temp_dirs(dest.parent, older_than_s=-1)
    assert [p.name for p in removed] == stale
    assert temp_leftovers(dest.parent) == []
