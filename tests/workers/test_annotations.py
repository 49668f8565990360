"""User annotation files: each format parses against the tokens, a mismatch names the
first bad line, and a track is added to a published folder atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.states import make_state_set
from workers.core.annotations import parse_annotation
from workers.core.errors import InputError
from workers.core.store import (
    AnnotationExistsError,
    AnnotationInfo,
    StateSet,
    annotation_put,
    annotation_stage,
    open_corpus,
    write_corpus,
)

VOCAB = ["the", "cat", "sat", "<eos>", "a", "dog"]
# "the cat sat <eos> a dog sat <eos>"
IDS = np.array([0, 1, 2, 3, 4, 5, 2, 3], dtype=np.int32)


def _parse(text: str, kind: str, fmt: str, column: str | None = None, ids=IDS):
    return parse_annotation(
        io.BytesIO(text.encode()),
        name="pos",
        kind=kind,
        fmt=fmt,
        ids=ids,
        vocab=VOCAB,
        column=column,
    )


def test_lines_discrete_labels_are_sorted():
    info, values = _parse("DET\nNOUN\nVERB\nEOS\nDET\nNOUN\nVERB\nEOS\n", "discrete", "lines")
    assert info.labels == ["DET", "EOS", "NOUN", "VERB"]
    assert [info.labels[i] for i in values] == ["DET", "NOUN", "VERB", "EOS"] * 2
    assert values.dtype == np.int32


def test_lines_scalar_with_crlf_and_no_final_newline():
    info, values = _parse("1\r\n2\r\n3\r\n0\r\n1\r\n2.5\r\n3\r\n0", "scalar", "lines")
    np.testing.assert_allclose(values, [1, 2, 3, 0, 1, 2.5, 3, 0])
    assert info.range == [0.0, 3.0] and values.dtype == np.float32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\n2\n", "line 3: the file ends, but expected a value for position 2 (the token 'sat')"),
        ("1\n" * 9, "line 9: expected the end of the file"),
        ("1\n2\nx\n", "line 3: expected a number for a scalar track, found 'x'"),
        ("1\n2\nnan\n", "line 3: expected a finite number"),
    ],
)
def test_lines_refusals_name_the_first_bad_line(text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _parse(text, "scalar", "lines")


def test_tsv_checks_every_token():
    text = "the\tD\ncat\tN\nsat\tV\n<eos>\tE\na\tD\ndog\tN\nsat\tV\n<eos>\tE\n"
    info, values = _parse(text, "discrete", "tsv")
    assert [info.labels[i] for i in values] == list("DNVEDNVE")
    bad = text.replace("a\tD", "the\tD")
    with pytest.raises(InputError) as err:
        _parse(bad, "discrete", "tsv")
    assert str(err.value) == "line 5: expected the token 'a' (position 4), found 'the'"


def test_tsv_escapes_name_a_newline_token():
    vocab = ["a", "\n", "\t"]
    _, values = parse_annotation(
        io.BytesIO(b"a\t1\n\\n\t2\n\\t\t3\n"),
        name="x",
        kind="scalar",
        fmt="tsv",
        ids=np.array([0, 1, 2]),
        vocab=vocab,
    )
    np.testing.assert_allclose(values, [1, 2, 3])


CONLLU = """# sent_id = 1
# text = The cat sat
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_

# sent_id = 2
1-2\tadog\t_\t_\t_\t_\t_\t_\t_\t_
1\ta\ta\tDET\tDT\t_\t2\tdet\t_\t_
1.1\tx\tx\tX\tX\t_\t_\t_\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_
"""


def test_conllu_with_an_eos_token_per_sentence():
    info, values = _parse(CONLLU, "discrete", "conllu", "UPOS")
    got = [info.labels[i] for i in values]
    assert got == ["DET", "NOUN", "VERB", "<eos>", "DET", "NOUN", "VERB", "<eos>"]
    info, values = _parse(CONLLU, "scalar", "conllu", "7")  # HEAD
    np.testing.assert_allclose(values, [2, 3, 0, 0, 2, 3, 0, 0])


def test_conllu_one_token_per_word():
    ids = np.array([0, 1, 2, 4, 5, 2], dtype=np.int32)
    info, values = _parse(CONLLU, "discrete", "conllu", "deprel", ids=ids)
    assert [info.labels[i] for i in values] == ["det", "nsubj", "root"] * 2


def test_conllu_count_and_sentence_end_mismatches_are_refused():
    with pytest.raises(InputError, match="6 words in 2 sentences; the tokens number 7"):
        _parse(CONLLU, "discrete", "conllu", "UPOS", ids=IDS[:7])
    ids = IDS.copy()
    ids[7] = 0  # the second sentence ends on 'the', not '<eos>'
    with pytest.raises(InputError, match="line 13: expected the end of sentence 2"):
        _parse(CONLLU, "discrete", "conllu", "UPOS", ids=ids)
    with pytest.raises(InputError, match="line 3: expected a CoNLL-U word line"):
        _parse("# c\n\n1\tThe\n", "discrete", "conllu", "UPOS")
    with pytest.raises(InputError, match="CoNLL-U column"):
        _parse(CONLLU, "discrete", "conllu", "POS")


def _stateset(tmp_path: Path) -> StateSet:
    return make_state_set(
        tmp_path / "ss",
        np.zeros((len(IDS), 3), dtype=np.float32),
        tokens=IDS,
        vocab=VOCAB,
        annotations=[(AnnotationInfo(name="depth", kind="scalar"), np.ones(len(IDS)), None)],
    )


def test_a_track_is_added_then_replaced(tmp_path):
    ss = _stateset(tmp_path)
    info, values = _parse("DET\nNOUN\nVERB\nEOS\nDET\nNOUN\nVERB\nEOS\n", "discrete", "lines")
    manifest = annotation_put(ss.path, info, values)
    assert [a["name"] for a in manifest["annotations"]] == ["depth", "pos"]
    again = StateSet.open(ss.path)
    np.testing.assert_array_equal(again.annotation("pos")[0], values)
    assert again.annotation_info("pos").labels == info.labels
    with pytest.raises(AnnotationExistsError):
        annotation_put(ss.path, info, values)
    scalar = AnnotationInfo(name="pos", kind="scalar", range=[0, 1])
    manifest = annotation_put(ss.path, scalar, np.zeros(len(IDS)), replace=True)
    assert [a["name"] for a in manifest["annotations"]] == ["depth", "pos"]
    assert StateSet.open(ss.path).annotation_info("pos").kind == "scalar"
    assert not [p for p in (ss.path / "annotations").iterdir() if p.name.startswith(".tmp-")]


def test_a_refused_track_leaves_the_folder_as_it_was(tmp_path):
    ss = _stateset(tmp_path)
    before = (ss.path / "manifest.json").read_bytes()
    files = sorted((ss.path / "annotations").iterdir())
    with pytest.raises(InputError, match="has 3 values; the tokens number 8"):
        annotation_stage(ss.path, AnnotationInfo(name="x", kind="scalar"), np.zeros(3))
    depth = AnnotationInfo(name="depth", kind="scalar")
    with pytest.raises(AnnotationExistsError):
        annotation_put(ss.path, depth, np.zeros(len(IDS)))
    assert (ss.path / "manifest.json").read_bytes() == before
    assert sorted((ss.path / "annotations").iterdir()) == files
    np.testing.assert_array_equal(StateSet.open(ss.path).annotation("depth")[0], 1)


def test_a_corpus_gets_a_track(tmp_path):
    write_corpus(tmp_path / "c", IDS, VOCAB, [0], {})
    info, values = _parse("1\n2\n3\n0\n1\n2\n3\n0\n", "scalar", "lines")
    annotation_put(tmp_path / "c", info, values)
    corpus = open_corpus(tmp_path / "c")
    assert [a.name for a in corpus.annotations] == ["pos"]
    np.testing.assert_allclose(corpus.annotation(corpus.annotations[0])[0], values)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["format"] == (
        "statelab-corpus"
    )
