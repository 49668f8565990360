"""Tokenising uploaded text: word and char modes, documents, decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.corpus import EOS, decode_upload, tokenize_text
from workers.core.errors import InputError


def _tokens(ids: np.ndarray, vocab: list[str]) -> list[str]:
    return [vocab[i] for i in ids]


def test_word_mode_adds_eos_per_nonempty_line() -> None:
    ids, vocab, docs = tokenize_text("the cat  sat\n\tthe dog\n", "word")
    assert ids.dtype == np.int32
    assert _tokens(ids, vocab) == ["the", "cat", "sat", EOS, "the", "dog", EOS]
    assert vocab == ["the", "cat", "sat", EOS, "dog"]  # first appearance
    assert docs == [0]


def test_word_mode_documents_are_split_by_blank_lines() -> None:
    text = "\n\na b\nc\n\n  \n\nd e\n\nf\n"
    ids, vocab, docs = tokenize_text(text, "word")
    toks = _tokens(ids, vocab)
    assert toks == ["a", "b", EOS, "c", EOS, "d", "e", EOS, "f", EOS]
    assert docs == [0, 5, 8]


def test_char_mode_keeps_every_character() -> None:
    ids, vocab, docs = tokenize_text("ab a\r\n\nba\n", "char")
    assert "".join(_tokens(ids, vocab)) == "ab a\n\nba\n"
    assert vocab == ["a", "b", " ", "\n"]
    assert docs == [0, 6]


def test_char_mode_leading_blank_lines_belong_to_first_document() -> None:
    _, _, docs = tokenize_text("\n\nab\n\ncd", "char")
    assert docs == [0, 6]


@pytest.mark.parametrize("text", ["", "   \n\n\t\n"])
def test_empty_corpus_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        tokenize_text(text, "word")


def test_unknown_mode() -> None:
    with pytest.raises(InputError, match="'word' or 'char'"):
        tokenize_text("abc", "bpe")


@given(st.text(alphabet="ab \n\r\t\u00e9\U0001f600", max_size=60))
def test_char_mode_round_trips(text: str) -> None:
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    if not normal:
        return
    ids, vocab, docs = tokenize_text(text, "char")
    assert "".join(_tokens(ids, vocab)) == normal
    assert len(set(vocab)) == len(vocab)
    # vocab order is order of first appearance
    firsts = [normal.index(v) for v in vocab]
    assert firsts == sorted(firsts)
    assert docs[0] == 0
    assert docs == sorted(set(docs))


@given(st.text(alphabet="ab \n", max_size=60))
def test_word_mode_matches_reference(text: str) -> None:
    expected: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            expected += [*words, EOS]
    if not expected:
        with pytest.raises(InputError):
            tokenize_text(text, "word")
        return
    ids, vocab, docs = tokenize_text(text, "word")
    assert _tokens(ids, vocab) == expected
    assert all(0 <= d < len(ids) for d in docs)


def test_decode_upload() -> None:
    assert decode_upload("h\u00e9llo".encode()) == "h\u00e9llo"
    assert decode_upload(b"\xef\xbb\xbfabc") == "abc"
    with pytest.raises(InputError, match=r"corpus\.txt: .*0xff at offset 3") as info:
        decode_upload(b"abc\xffdef", file="corpus.txt")
    assert info.value.file == "corpus.txt"
