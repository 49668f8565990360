"""Exact phrase search against a brute-force scan, with and without the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workers.core.search as search_module
from workers.core.errors import Cancelled
from workers.core.search import (
    PhraseSearcher,
    SearchIndex,
    build_search_index,
    has_search_index,
    phrase_count,
    phrase_search,
    search_index_dir,
    split_query,
    vocab_is_characters,
    vocab_lookup,
)
from workers.core.store import StateSet, StateSetWriter

VOCAB = ["a", "b", "c", "a", ""]  # "a" twice (ids 0 and 3), an unused gap at 4


def brute(tokens: list[int], vocab: list[str], phrase: list[str], limit: int) -> list[int]:
    words = [vocab[t] for t in tokens]
    hits = [
        i
        for i in range(len(words) - len(phrase) + 1)
        if phrase and words[i : i + len(phrase)] == phrase and "" not in phrase
    ]
    return hits[: max(limit, 0)]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=60),
    st.lists(st.sampled_from(["a", "b", "c", "zz", ""]), min_size=0, max_size=4),
    st.integers(-1, 8),
)
def test_matches_brute_force(tokens: list[int], phrase: list[str], limit: int) -> None:
    arr = np.array(tokens, dtype=np.int32)
    assert phrase_search(arr, VOCAB, phrase, limit) == brute(tokens, VOCAB, phrase, limit)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=80), st.integers(1, 3), st.integers(1, 30))
def test_block_boundaries(tokens: list[int], length: int, limit: int) -> None:
    arr = np.array(tokens, dtype=np.int32)
    phrase = [VOCAB[t] for t in tokens[:length]]
    old = search_module._BLOCK
    search_module._BLOCK = 4  # force matches that straddle blocks
    try:
        got = phrase_search(arr, VOCAB, phrase, limit)
    finally:
        search_module._BLOCK = old
    assert got == brute(tokens, VOCAB, phrase, limit)


def test_examples() -> None:
    tokens = np.array([0, 1, 2, 3, 1, 2, 0, 1], dtype=np.int32)
    assert phrase_search(tokens, VOCAB, ["a", "b"], 10) == [0, 3, 6]
    assert phrase_search(tokens, VOCAB, ["a", "b", "c"], 10) == [0, 3]
    assert phrase_search(tokens, VOCAB, ["a", "b"], 2) == [0, 3]
    assert phrase_search(tokens, VOCAB, ["nope"], 10) == []
    assert phrase_search(tokens, VOCAB, [], 10) == []
    assert phrase_search(tokens, VOCAB, ["b", "a", "b", "c", "a", "b", "c", "a", "b"], 10) == []


# --------------------------------------------------------------------------- #
# The index gives the scan's answer
# --------------------------------------------------------------------------- #


def index_for(tokens: np.ndarray, v: int) -> SearchIndex:
    out = np.empty(tokens.shape[0], dtype=np.int32)
    offsets = search_module._fill_index(tokens, v, out)
    return SearchIndex(out, offsets)


def small_blocks() -> dict[str, int]:
    """Tiny build slices and query blocks, so slice merging and block edges are hit."""
    old = {k: getattr(search_module, k) for k in ("_BUILD_SLICE", "_FIRST_BLOCK", "_MAX_BLOCK")}
    search_module._BUILD_SLICE = 5
    search_module._FIRST_BLOCK = 1
    search_module._MAX_BLOCK = 3
    return old


def restore(old: dict[str, int]) -> None:
    for k, v in old.items():
        setattr(search_module, k, v)


@st.composite
def corpus_and_phrase(draw: st.DrawFn) -> tuple[list[int], list[str]]:
    tokens = draw(st.lists(st.integers(0, 4), min_size=1, max_size=70))
    words = [VOCAB[t] for t in tokens]
    kind = draw(st.sampled_from(["slice", "start", "end", "free"]))
    length = draw(st.integers(1, 5))
    if kind == "free":
        phrase = draw(st.lists(st.sampled_from(["a", "b", "c", "zz", ""]), max_size=5))
    elif kind == "start":
        phrase = words[:length]
    elif kind == "end":
        phrase = words[-length:]
    else:
        i = draw(st.integers(0, len(words) - 1))
        phrase = words[i : i + length]
    return tokens, phrase


@settings(max_examples=500, deadline=None)
@given(corpus_and_phrase(), st.integers(-1, 9), st.booleans())
def test_index_matches_scan(case: tuple[list[int], list[str]], limit: int, tiny: bool) -> None:
    tokens, phrase = case
    arr = np.array(tokens, dtype=np.int32)
    old = small_blocks() if tiny else {}
    try:
        index = index_for(arr, len(VOCAB))
        lookup = vocab_lookup(VOCAB)
        scan = phrase_search(arr, VOCAB, phrase, limit)
        assert phrase_search(arr, VOCAB, phrase, limit, index=index) == scan
        assert phrase_search(arr, VOCAB, phrase, limit, index=index, lookup=lookup) == scan
        every = brute(tokens, VOCAB, phrase, len(tokens) + 1)
        assert scan == every[: max(limit, 0)]
        assert phrase_count(arr, VOCAB, phrase, index=index, lookup=lookup) == len(every)
        assert phrase_count(arr, VOCAB, phrase) == len(every)
    finally:
        restore(old)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=120), st.booleans())
def test_index_lists_every_position_once_ascending(tokens: list[int], tiny: bool) -> None:
    arr = np.array(tokens, dtype=np.int32)
    old = small_blocks() if tiny else {}
    try:
        index = index_for(arr, len(VOCAB))
    finally:
        restore(old)
    assert sorted(index.positions.tolist()) == list(range(len(tokens)))
    for t in range(len(VOCAB)):
        assert index.postings(t).tolist() == [i for i, x in enumerate(tokens) if x == t]


def test_overlapping_and_repeated_tokens() -> None:
    # "a" is ids 0 and 3; overlapping runs of it are all found
    tokens = np.array([0, 3, 0, 0, 1, 3, 3], dtype=np.int32)
    index = index_for(tokens, len(VOCAB))
    for ix in (None, index):
        assert phrase_search(tokens, VOCAB, ["a", "a"], 10, index=ix) == [0, 1, 2, 5]
        assert phrase_search(tokens, VOCAB, ["a", "a", "a"], 10, index=ix) == [0, 1]
        assert phrase_search(tokens, VOCAB, ["a", "b", "a", "a"], 10, index=ix) == [3]
        assert phrase_search(tokens, VOCAB, ["a", "a"], 2, index=ix) == [0, 1]
        assert phrase_count(tokens, VOCAB, ["a", "a"], index=ix) == 4
        assert phrase_search(tokens, VOCAB, ["a", "zz"], 10, index=ix) == []
        assert phrase_search(tokens, VOCAB, ["", "a"], 10, index=ix) == []
        assert phrase_count(tokens, VOCAB, ["c"], index=ix) == 0


# --------------------------------------------------------------------------- #
# Query text
# --------------------------------------------------------------------------- #


def test_character_vocab_is_split_into_characters() -> None:
    chars = ["t", "h", "e", " ", "\n", "<eos>", "<unk>", ""]
    assert vocab_is_characters(chars)
    assert not vocab_is_characters(["the", "cat", " "])
    assert not vocab_is_characters(["<eos>"])
    assert split_query("the  h\n", chars) == ["t", "h", "e", " ", " ", "h", "\n"]
    assert split_query("e<eos>t", chars) == ["e", "<eos>", "t"]
    # a bracket that does not spell a marker of the vocab is a character
    assert split_query("<e>", [*chars, "<"]) == ["<", "e", ">"]
    assert split_query(" the  cat ", ["the", "cat"]) == ["the", "cat"]


# --------------------------------------------------------------------------- #
# The index on disk
# --------------------------------------------------------------------------- #


def write_tokens(path: Path, tokens: np.ndarray, vocab: list[str]) -> Path:
    with StateSetWriter(path) as w:
        w.set_tokens(tokens, vocab)
        w.commit()
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, np.ndarray, list[str]]:
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(40)] + ["w1"]  # "w1" also as id 40
    p = 1.0 / np.arange(1, len(vocab) + 1)
    tokens = rng.choice(len(vocab), size=5000, p=p / p.sum()).astype(np.int32)
    return write_tokens(tmp_path / "ss", tokens, vocab), tokens, vocab


def leftovers(ss: Path) -> list[str]:
    parent = ss / "index"
    return sorted(e.name for e in parent.iterdir()) if parent.exists() else []


def test_build_writes_an_index_the_searcher_uses(corpus) -> None:
    ss_path, tokens, vocab = corpus
    searcher = PhraseSearcher(StateSet.open(ss_path))
    assert searcher.index is None  # scans until the index exists
    rng = np.random.default_rng(4)
    phrases = [
        [vocab[t] for t in tokens[i : i + k]]
        for i, k in zip(rng.integers(0, 4990, 60), rng.integers(1, 5, 60), strict=True)
    ]
    before = [searcher.search(p, 7) for p in phrases]
    assert not has_search_index(ss_path)

    calls: list[float] = []
    build_search_index(ss_path, lambda f, _m: calls.append(f))
    assert has_search_index(ss_path)
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)
    assert leftovers(ss_path) == ["search"]
    d = search_index_dir(ss_path)
    info = json.loads((d / "version.json").read_text())
    assert info["length"] == 5000 and info["vocab_size"] == len(vocab)
    assert np.load(d / "positions.npy").dtype == np.int32
    assert np.load(d / "offsets.npy").dtype == np.int64

    assert searcher.index is not None
    assert [searcher.search(p, 7) for p in phrases] == before
    for p in phrases[:20]:
        assert searcher.count(p) == len(phrase_search(tokens, vocab, p, 10_000))
    # "w1" is spelt by two ids; both count
    assert searcher.count(["w1"]) == int(np.isin(tokens, [1, 40]).sum())


def test_build_is_idempotent(corpus) -> None:
    ss_path, _tokens, _vocab = corpus
    build_search_index(ss_path)
    version = search_index_dir(ss_path) / "version.json"
    inode = version.stat().st_ino
    calls: list[float] = []
    build_search_index(ss_path, lambda f, _m: calls.append(f))
    assert version.stat().st_ino == inode and calls == []


def test_a_cancelled_build_leaves_no_index(corpus, monkeypatch) -> None:
    ss_path, _tokens, _vocab = corpus
    monkeypatch.setattr(search_module, "_BUILD_SLICE", 1000)

    def cancel(fraction: float, _message: str) -> None:
        if fraction > 0.5:
            raise Cancelled()

    with pytest.raises(Cancelled):
        build_search_index(ss_path, cancel)
    assert not has_search_index(ss_path)
    assert leftovers(ss_path) == []


def test_a_failed_write_leaves_no_index(corpus, monkeypatch) -> None:
    ss_path, _tokens, _vocab = corpus

    def disk_full(path: Path, arr: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(search_module, "save_npy_synced", disk_full)
    with pytest.raises(OSError, match="No space"):
        build_search_index(ss_path)
    assert not has_search_index(ss_path)
    assert leftovers(ss_path) == []


def test_an_index_of_another_version_is_replaced(corpus) -> None:
    ss_path, tokens, vocab = corpus
    d = search_index_dir(ss_path)
    d.mkdir(parents=True)
    (d / "version.json").write_text(json.dumps({"format": "statelab-search-index", "version": 0}))
    (d / "positions.npy").write_bytes(b"old")
    assert not has_search_index(ss_path)
    build_search_index(ss_path)
    assert has_search_index(ss_path)
    assert leftovers(ss_path) == ["search"]
    index = SearchIndex.open(ss_path, length=tokens.size, vocab_size=len(vocab))
    assert index.postings(5).tolist() == np.flatnonzero(tokens == 5).tolist()


def test_a_build_that_loses_the_race_keeps_the_winner(corpus, monkeypatch) -> None:
    ss_path, _tokens, _vocab = corpus
    real_write = search_module._write_index
    winner: list[int] = []

    def racing(*args, **kwargs):  # another worker publishes while this one writes
        real_write(*args, **kwargs)
        if not winner:
            winner.append(1)
            build_search_index(ss_path)
            winner.append((search_index_dir(ss_path) / "version.json").stat().st_ino)

    monkeypatch.setattr(search_module, "_write_index", racing)
    build_search_index(ss_path)
    assert has_search_index(ss_path)
    assert (search_index_dir(ss_path) / "version.json").stat().st_ino == winner[1]
    assert leftovers(ss_path) == ["search"]


def test_an_index_that_does_not_fit_is_not_used(corpus) -> None:
    ss_path, tokens, vocab = corpus
    build_search_index(ss_path)
    with pytest.raises(Exception, match="does not fit"):
        SearchIndex.open(ss_path, length=tokens.size + 1, vocab_size=len(vocab))
