"""Importing LSTMVis project folders: every feature of the format, and every attack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from tests.support.lstmvis_builder import (
    POS_LABELS,
    SPACE_ID,
    make_bad_filter_hdf5,
    make_external_link_hdf5,
    make_external_storage_hdf5,
    make_length_mismatch,
    make_virtual_dataset_hdf5,
    make_yaml_python_tag,
    project_config,
    temp_leftovers,
    truncate_file,
)
from workers.core.errors import Cancelled, InputError
from workers.core.lstmvis import import_lstmvis_dir, parse_dictionary
from workers.core.store import StateSet

QUOTA = 1 << 30


def _h5(project: Path, name: str, path: str) -> np.ndarray:
    with h5py.File(project / name, "r") as f:
        return np.asarray(f[path][()])


def _dict(project: Path, name: str) -> dict[int, str]:
    out = {}
    for line in (project / name).read_text().splitlines():
        if line.startswith(" "):
            out[int(line.strip())] = " "
        elif line:
            token, idx = line.rsplit(" ", 1)
            out[int(idx)] = token
    return out


def _import(project: Path, dest: Path, **kw: Any) -> StateSet:
    import_lstmvis_dir(project, dest, quota_bytes=kw.pop("quota_bytes", QUOTA), **kw)
    return StateSet.open(dest)


def test_full_project_imports_with_exact_values(lstmvis_project: Path, tmp_path: Path) -> None:
    p = lstmvis_project
    steps: list[tuple[float, str]] = []
    ss = _import(p, tmp_path / "out" / "set", progress=lambda f, m: steps.append((f, m)))

    # Word sequence and dictionary (1-based ids, the space token, a gap at 0).
    words = _dict(p, "train.dict")
    word_ids = _h5(p, "train.hdf5", "word_ids")
    assert ss.length == len(word_ids) == 200
    np.testing.assert_array_equal(ss.tokens, word_ids)
    assert ss.vocab[0] == ""
    assert ss.vocab[SPACE_ID] == " "
    assert [ss.vocab[i] for i in ss.tokens[:20]] == [words[i] for i in word_ids[:20]]
    assert ss.tokens[100] == SPACE_ID

    # Sources: generated ids, LSTMVis addresses, raw values stored, transforms recorded.
    srcs = {s.name: s for s in ss.manifest.sources}
    assert [s.id for s in ss.manifest.sources] == ["s0", "s1", "s2", "s3"]
    assert set(srcs) == {
        "states::states1",
        "other::states2",
        "states::states2u",
        "states::/group/output2",
    }
    assert srcs["states::states1"].transform == "tanh"
    assert srcs["states::states1"].layer == 1
    assert srcs["other::states2"].cells == 15
    assert srcs["states::states2u"].unsigned is True
    assert srcs["states::/group/output2"].transform == "none"
    assert srcs["states::/group/output2"].kind == "output"
    expected = {
        "states::states1": _h5(p, "states.hdf5", "states1"),
        "other::states2": _h5(p, "sub/other.h5", "states2"),
        "states::states2u": _h5(p, "states.hdf5", "states2u"),
        "states::/group/output2": _h5(p, "states.hdf5", "group/output2"),
    }
    for name, raw in expected.items():
        stored = ss.values(srcs[name].id)
        assert stored.dtype == np.float32
        np.testing.assert_allclose(stored, raw.astype(np.float32), rtol=0, atol=0)

    # Annotations of every kind.
    infos = {a.name: a for a in ss.manifest.annotations}
    assert infos["part_of_speech"].kind == "discrete"
    assert infos["part_of_speech"].labels == POS_LABELS
    pos, _ = ss.annotation("part_of_speech")
    np.testing.assert_array_equal(pos, _h5(p, "pos.h5", "pos"))
    assert infos["surprise"].kind == "scalar"
    assert infos["surprise"].range == [0.0, 1.0]
    surprise, _ = ss.annotation("surprise")
    np.testing.assert_allclose(surprise, _h5(p, "scores.h5", "surprisal"), rtol=1e-6)
    topk, weights = ss.annotation("top_predictions")
    assert infos["top_predictions"].kind == "wordvec"
    assert infos["top_predictions"].k == 3
    assert infos["top_predictions"].labels is None  # the words' own dictionary
    np.testing.assert_array_equal(topk, _h5(p, "topk.h5", "ids").astype(np.int64))
    assert weights is not None
    np.testing.assert_allclose(weights, _h5(p, "topk.h5", "probs"))
    freq, _ = ss.annotation("word_frequency")
    np.testing.assert_allclose(freq, _h5(p, "scores.h5", "freq_by_word")[word_ids])

    emb = ss.embedding()
    assert emb is not None
    np.testing.assert_allclose(emb, _h5(p, "emb.h5", "emb"))

    extra = ss.manifest.extra
    assert extra["name"] == "children books"
    assert extra["description"] == "Synthetic children book texts"
    assert extra["lstmvis_config"] == project_config()
    assert extra["sources_by_address"]["other::states2"] == "s1"

    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert any("Copying other::states2" in m for _, m in steps)
    assert temp_leftovers(tmp_path / "out") == []


def test_description_defaults_to_name_and_name_to_folder(
    lstmvis_project: Path, tmp_path: Path
) -> None:
    cfg = project_config()
    del cfg["description"]
    del cfg["name"]
    (lstmvis_project / "lstm.yml").write_text(yaml.safe_dump(cfg))
    ss = _import(lstmvis_project, tmp_path / "set")
    assert ss.manifest.extra["name"] == "proj"
    assert ss.manifest.extra["description"] == "proj"


def test_minimal_project_without_meta_or_embedding(lstmvis_project: Path, tmp_path: Path) -> None:
    cfg = project_config()
    del cfg["meta"], cfg["word_embedding"]
    cfg["states"]["types"] = [{"type": "state", "layer": 1, "path": "states1"}]
    (lstmvis_project / "lstm.yml").write_text(yaml.safe_dump(cfg))
    ss = _import(lstmvis_project, tmp_path / "set")
    assert ss.manifest.annotations == []
    assert ss.embedding() is None
    assert [s.id for s in ss.manifest.sources] == ["s0"]


def test_meta_type_from_top_level_and_discrete_without_dict(
    lstmvis_project: Path, tmp_path: Path
) -> None:
    cfg = project_config()
    cfg["meta"] = {"pos_ids": {"type": "discrete", "file": "pos", "path": "pos"}}
    (lstmvis_project / "lstm.yml").write_text(yaml.safe_dump(cfg))
    ss = _import(lstmvis_project, tmp_path / "set")
    info = ss.manifest.annotations[0]
    assert (info.kind, info.labels) == ("discrete", None)


def test_dictionary_parsing() -> None:
    vocab = parse_dictionary(b"the 1\n 3\n<eos> 2\nNew York 5\n\n", display_name="w.dict")
    assert vocab == ["", "the", "<eos>", " ", "", "New York"]
    with pytest.raises(InputError, match=r"w\.dict: line 1 ends in 'x'"):
        parse_dictionary(b"a x\n", display_name="w.dict")
    with pytest.raises(InputError, match=r"w\.dict: line 2 is 'lonely'"):
        parse_dictionary(b"a 1\nlonely\n", display_name="w.dict")
    with pytest.raises(InputError, match="ids must lie between"):
        parse_dictionary(b"a 99999999999\n", display_name="w.dict")
    with pytest.raises(InputError, match="empty"):
        parse_dictionary(b"\n\n", display_name="w.dict")


# --------------------------------------------------------------------------- #
# Hostile and broken projects: each must fail with a message naming the file,
# and leave nothing at the destination.
# --------------------------------------------------------------------------- #


def _edit_config(project: Path, change: Callable[[dict[str, Any]], None]) -> None:
    cfg = project_config()
    change(cfg)
    (project / "lstm.yml").write_text(yaml.safe_dump(cfg))


def _expect_failure(project: Path, tmp_path: Path, file: str, pattern: str) -> InputError:
    dest = tmp_path / "store" / "set"
    with pytest.raises(InputError, match=pattern) as info:
        import_lstmvis_dir(project, dest, quota_bytes=QUOTA)
    err = info.value
    assert err.file == file, str(err)
    assert str(err).startswith(f"{file}: ")
    assert str(tmp_path) not in str(err)
    assert not dest.exists()
    assert temp_leftovers(dest.parent) == []
    return err


def test_yaml_python_tag_is_refused_and_not_run(lstmvis_project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    make_yaml_python_tag(lstmvis_project, marker)
    _expect_failure(lstmvis_project, tmp_path, "lstm.yml", "python/object/apply")
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused(lstmvis_project: Path, tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]" for i in range(1, 9)]
    text = (lstmvis_project / "lstm.yml").read_text() + "\n".join(lines) + "\n"
    (lstmvis_project / "lstm.yml").write_text(text)
    _expect_failure(lstmvis_project, tmp_path, "lstm.yml", "too complex")


def test_yaml_syntax_error(lstmvis_project: Path, tmp_path: Path) -> None:
    (lstmvis_project / "lstm.yml").write_text("files: {states: [unclosed\n")
    _expect_failure(lstmvis_project, tmp_path, "lstm.yml", "not plain YAML at line")


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("external_link", "external link"),
        ("virtual", "virtual dataset"),
        ("external_storage", "external files"),
        ("filter", "filter 5 .nbit."),
        ("truncated", "damaged|truncated|could not be read safely"),
    ],
)
def test_hostile_state_files_are_refused(
    lstmvis_project: Path, tmp_path: Path, kind: str, pattern: str
) -> None:
    target = lstmvis_project / "states.hdf5"
    shape = (200, 12)
    if kind == "truncated":
        truncate_file(target, keep=0.5)
    else:
        target.unlink()
        if kind == "external_link":
            make_external_link_hdf5(target, tmp_path / "secret.h5")
        elif kind == "virtual":
            make_virtual_dataset_hdf5(target, tmp_path / "src.h5", dataset="states1", shape=shape)
        elif kind == "external_storage":
            make_external_storage_hdf5(target, tmp_path / "raw.bin", dataset="states1", shape=shape)
        else:
            make_bad_filter_hdf5(target, dataset="states1", data=np.ones(shape))
    _expect_failure(lstmvis_project, tmp_path, "states.hdf5", pattern)


def test_length_mismatch_names_file_and_counts(lstmvis_project: Path, tmp_path: Path) -> None:
    make_length_mismatch(lstmvis_project)
    err = _expect_failure(lstmvis_project, tmp_path, "states.hdf5", "mismatch|rows")
    assert err.message == "dataset 'states1' has 205 rows but the word sequence has 200 tokens"


@pytest.mark.parametrize(
    ("change", "file", "pattern"),
    [
        (lambda c: c["files"].update(states="../outside.h5"), "lstm.yml", "without '..'"),
        (lambda c: c["files"].update(states="/etc/passwd.h5"), "lstm.yml", "relative paths"),
        (lambda c: c["files"].update(states="C:\\x.h5"), "lstm.yml", "relative paths"),
        (
            lambda c: c["files"].update(states="nothere.h5"),
            "lstm.yml",
            "'nothere.h5', which is not in the project",
        ),
        (lambda c: c["files"].update(states="train.dict"), "lstm.yml", "needs an HDF5 file"),
        (lambda c: c.pop("files"), "lstm.yml", "'files' section is missing"),
        (lambda c: c.pop("word_sequence"), "lstm.yml", "'word_sequence' section is missing"),
        (lambda c: c["word_sequence"].pop("dict_file"), "lstm.yml", "no 'dict_file'"),
        (lambda c: c["states"].update(file="nope"), "lstm.yml", "alias 'nope'"),
        (lambda c: c["states"].update(types=[]), "lstm.yml", "non-empty list"),
        (lambda c: c["word_sequence"].pop("path"), "lstm.yml", r"word_sequence\.path is missing"),
        (
            lambda c: c["states"]["types"][0].update(path="states9"),
            "states.hdf5",
            "no dataset 'states9'",
        ),
        (
            lambda c: c["states"]["types"][0].update(transform="sigmoid"),
            "lstm.yml",
            "'tanh' or 'none'",
        ),
        (
            lambda c: c["states"]["types"][0].update(path="/group/output2"),
            "lstm.yml",
            "repeats the source",
        ),
        (
            lambda c: c["word_sequence"].update(path="states1", file="states"),
            "states.hdf5",
            "one id per token",
        ),
        (
            lambda c: c["meta"]["surprise"].update(path="freq_by_word"),
            "scores.h5",
            "21 rows but the word sequence has 200",
        ),
        (lambda c: c["meta"]["word_frequency"].update(path="surprisal", file="scores"), None, None),
        (
            lambda c: c["meta"]["top_predictions"].update(
                weights_path="surprisal", file="scores", path="surprisal"
            ),
            "scores.h5",
            r"'surprisal' \(meta top_predictions\) holds .* at row 0, which is not a whole",
        ),
        (
            lambda c: c["meta"]["surprise"]["vis"].update(type="colour"),
            "lstm.yml",
            "discrete, scalar or wordvec",
        ),
        (lambda c: c["meta"]["surprise"].update(index="nowhere"), "lstm.yml", "index is 'nowhere'"),
        (
            lambda c: c["meta"].update({"bad name": c["meta"]["surprise"]}),
            "lstm.yml",
            "only letters",
        ),
        (lambda c: c["word_embedding"].update(path="surprisal", file="scores"), "scores.h5", "2-D"),
    ],
)
def test_broken_configs_are_refused(
    lstmvis_project: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    file: str | None,
    pattern: str | None,
) -> None:
    _edit_config(lstmvis_project, change)
    if file is None:
        # An index lookup whose table is long enough is fine even if odd.
        assert _import(lstmvis_project, tmp_path / "ok").length == 200
        return
    _expect_failure(lstmvis_project, tmp_path, file, pattern or "")


def test_index_lookup_table_too_short(lstmvis_project: Path, tmp_path: Path) -> None:
    with h5py.File(lstmvis_project / "scores.h5", "a") as f:
        del f["freq_by_word"]
        f["freq_by_word"] = np.zeros(5, dtype="f4")
    err = _expect_failure(lstmvis_project, tmp_path, "scores.h5", "indexed by word_sequence")
    assert "has 5 rows but must have one for every id up to" in err.message


def test_word_id_outside_dictionary(lstmvis_project: Path, tmp_path: Path) -> None:
    with h5py.File(lstmvis_project / "train.hdf5", "a") as f:
        f["word_ids"][7] = 0  # id 0 is a gap in the dictionary
    err = _expect_failure(lstmvis_project, tmp_path, "train.hdf5", "word id 0 at position 7")
    assert "train.dict" in err.message


def test_fractional_word_ids(lstmvis_project: Path, tmp_path: Path) -> None:
    with h5py.File(lstmvis_project / "train.hdf5", "a") as f:
        ids = f["word_ids"][()].astype("f8")
        ids[3] = 2.5
        del f["word_ids"]
        f["word_ids"] = ids
    _expect_failure(
        lstmvis_project, tmp_path, "train.hdf5", r"holds 2\.5 at row 3, which is not a whole number"
    )


def test_discrete_value_without_label(lstmvis_project: Path, tmp_path: Path) -> None:
    with h5py.File(lstmvis_project / "pos.h5", "a") as f:
        f["pos"][10] = 9
    _expect_failure(lstmvis_project, tmp_path, "pos.h5", "id 9")


def test_wordvec_weights_shape_mismatch(lstmvis_project: Path, tmp_path: Path) -> None:
    with h5py.File(lstmvis_project / "topk.h5", "a") as f:
        del f["probs"]
        f["probs"] = np.zeros((200, 2), dtype="f4")
    _expect_failure(
        lstmvis_project,
        tmp_path,
        "topk.h5",
        r"weights of meta top_predictions\) has shape \(200, 2\)",
    )


def test_symlinked_file_is_refused(lstmvis_project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.hdf5"
    shutil.move(lstmvis_project / "states.hdf5", outside)
    os.symlink(outside, lstmvis_project / "states.hdf5")
    _expect_failure(lstmvis_project, tmp_path, "lstm.yml", "symbolic link")


def test_symlinked_folder_is_refused(lstmvis_project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.move(lstmvis_project / "sub", outside)
    os.symlink(outside, lstmvis_project / "sub")
    _expect_failure(lstmvis_project, tmp_path, "lstm.yml", "symbolic link")


def test_non_utf8_dictionary(lstmvis_project: Path, tmp_path: Path) -> None:
    (lstmvis_project / "train.dict").write_bytes(b"the 1\n\xff\xfe 2\n")
    _expect_failure(lstmvis_project, tmp_path, "train.dict", "offset 6")


def test_quota_applies(lstmvis_project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "set"
    with pytest.raises(InputError, match="bytes allowed"):
        import_lstmvis_dir(lstmvis_project, dest, quota_bytes=20_000)
    assert not dest.exists()
    assert temp_leftovers(tmp_path) == []


def test_cancel_mid_copy_leaves_nothing(lstmvis_project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "set"

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Copying states::states2u"):
            raise Cancelled

    with pytest.raises(Cancelled):
        import_lstmvis_dir(lstmvis_project, dest, quota_bytes=QUOTA, progress=progress)
    assert not dest.exists()
    assert temp_leftovers(tmp_path) == []


def test_existing_destination_is_not_touched(lstmvis_project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "set"
    dest.mkdir()
    (dest / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        import_lstmvis_dir(lstmvis_project, dest, quota_bytes=QUOTA)
    assert (dest / "keep").read_text() == "mine"
