"""Model uploads: hostile weight files are refused without running anything,
good ones round-trip through the store, vocabularies parse strictly."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from safetensors.torch import save_model as st_save_model
from torch import nn

from workers.core.errors import InputError
from workers.core.modelfile import (
    check_shapes,
    load_model,
    model_upload,
    read_vocab,
    read_weights,
    recognise_spec,
    save_model,
)
from workers.core.rnnlm import RNNSpec

MAX = 64 << 20


class WordLanguageModel(nn.Module):
    """The PyTorch word_language_model example's RNNModel, as users have it."""

    def __init__(
        self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int, tie: bool = False
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn: nn.RNNBase
        dropout = 0.2 if nlayers > 1 else 0.0
        if rnn_type in ("LSTM", "GRU"):
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie:
            self.decoder.weight = self.encoder.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.encoder(ids)))
        return self.decoder(self.drop(out))


def _wlm(rnn_type: str = "LSTM", *, vocab: int = 13, tie: bool = False, layers: int = 2) -> Any:
    torch.manual_seed(1)
    width = 8
    return WordLanguageModel(rnn_type, vocab, width, width if tie else 6, layers, tie).eval()


def _vocab_bytes(n: int) -> bytes:
    return json.dumps([f"w{i}" for i in range(n)]).encode()


def _save(model: nn.Module, path: Path, fmt: str) -> Path:
    if fmt == "zip":
        torch.save(model.state_dict(), path)
    elif fmt == "legacy":
        torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    else:
        st_save_model(model, str(path))
    return path


def _upload(weights: Path, dest: Path, config: dict[str, Any] | None = None, **kw: Any) -> Any:
    vocab = kw.pop("vocab", _vocab_bytes(13))
    name = kw.pop("vocab_filename", "vocab.json")
    return model_upload(weights, config, vocab, name, dest, max_bytes=MAX, **kw)


def _nothing_stored(parent: Path) -> bool:
    return not parent.exists() or not any(parent.iterdir())


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_upload_round_trip_reproduces_the_model(
    tmp_path: Path, rnn_type: str, tie: bool, fmt: str
) -> None:
    model = _wlm(rnn_type, tie=tie)
    weights = _save(model, tmp_path / "upload.bin", fmt)
    config = {"rnn_type": rnn_type} if rnn_type.startswith("RNN_") else None
    info = _upload(weights, tmp_path / "store" / "m1", config)

    assert info.spec == RNNSpec(rnn_type, 13, 8, 8 if tie else 6, 2, tie)
    assert info.source_format == {"zip": "torch-zip", "legacy": "torch-legacy"}.get(
        fmt, "safetensors"
    )
    assert info.parameters == sum(
        p.numel() for p in model.parameters()
    )  # tied weights counted once
    assert len(info.sha256) == 64 and info.size_bytes > 0

    loaded = load_model(tmp_path / "store" / "m1")
    assert not loaded.model.training
    assert loaded.vocab == [f"w{i}" for i in range(13)]
    assert loaded.meta["origin"] == "upload"
    if tie:
        assert loaded.model.decoder.weight is loaded.model.encoder.weight
    ids = torch.randint(0, 13, (7, 3))
    with torch.no_grad():
        expected = model(ids)
        got, _ = loaded.model(ids)
    torch.testing.assert_close(got, expected)


def test_word_language_model_state_dict_is_recognised_without_config(tmp_path: Path) -> None:
    model = _wlm("LSTM", vocab=13, layers=3)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    info = _upload(tmp_path / "model.pt", tmp_path / "m")
    assert info.spec == RNNSpec("LSTM", 13, 8, 6, 3, False)
    assert "the architecture was read from the weights" in info.notes


def test_state_dict_from_data_parallel_loses_its_prefix(tmp_path: Path) -> None:
    model = _wlm("GRU")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pt")
    info = _upload(tmp_path / "dp.pt", tmp_path / "m")
    assert info.spec.rnn_type == "GRU"
    assert any("module." in note for note in info.notes)


def test_checkpoint_wrapping_a_state_dict_is_unwrapped(tmp_path: Path) -> None:
    model = _wlm("LSTM")
    checkpoint = {"epoch": 7, "state_dict": model.state_dict(), "best_loss": 4.2}
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    info = _upload(tmp_path / "ckpt.pt", tmp_path / "m")
    assert info.spec.layers == 2


def test_half_precision_weights_are_stored_as_float32(tmp_path: Path) -> None:
    model = _wlm("LSTM").half()
    torch.save(model.state_dict(), tmp_path / "half.pt")
    _upload(tmp_path / "half.pt", tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.model.encoder.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.model.encoder.weight, model.encoder.weight.float())


def test_partial_config_fills_in_from_the_weights(tmp_path: Path) -> None:
    torch.save(_wlm("RNN_RELU").state_dict(), tmp_path / "r.pt")
    info = _upload(tmp_path / "r.pt", tmp_path / "m", {"rnn_type": "rnn_relu", "layers": 2})
    assert info.spec == RNNSpec("RNN_RELU", 13, 8, 6, 2, False)


def test_rnn_type_hint_parameter_serves_instead_of_a_config(tmp_path: Path) -> None:
    torch.save(_wlm("RNN_TANH").state_dict(), tmp_path / "r.pt")
    info = _upload(tmp_path / "r.pt", tmp_path / "m", rnn_type_hint="RNN_TANH")
    assert info.spec.rnn_type == "RNN_TANH"


# --------------------------------------------------------------------------- #
# Hostile and wrong weight files
# --------------------------------------------------------------------------- #


class _RunsCommand:
    """Unpickling this would create the marker file."""

    marker: Path

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _CreatesFile:
    """The same without a shell: unpickling calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload", [_RunsCommand, _CreatesFile])
@pytest.mark.parametrize("how", ["zip", "legacy", "plain-pickle", "checkpoint"])
def test_pickle_that_runs_code_is_refused_and_nothing_runs(
    tmp_path: Path, how: str, payload: type
) -> None:
    marker = tmp_path / "pwned"
    evil = payload(marker)
    path = tmp_path / "weights.pt"
    good = _wlm().state_dict()
    if how == "zip":
        torch.save({**good, "extra": evil}, path)
    elif how == "legacy":
        torch.save({**good, "extra": evil}, path, _use_new_zipfile_serialization=False)
    elif how == "checkpoint":
        torch.save({"state_dict": good, "args": evil}, path)
    else:
        path.write_bytes(pickle.dumps({"w": evil}, protocol=4))
    # Proof that the payload works when unpickled carelessly is not needed; the
    # marker must simply never appear.
    dest = tmp_path / "store" / "m"
    with pytest.raises(InputError) as err:
        _upload(path, dest, weights_filename="weights.pt")
    message = str(err.value)
    assert message.startswith("weights.pt: ")
    assert "would call" in message and ("system" in message or "open" in message)
    assert "save model.state_dict() with torch.save, or save it as safetensors" in message
    assert not marker.exists()
    assert _nothing_stored(tmp_path / "store")


def test_the_marker_payload_really_runs_when_unpickled_carelessly(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_CreatesFile(marker)))  # noqa: S301 - the point of the test
    assert marker.exists()


def test_full_module_pickle_is_refused_with_a_hint(tmp_path: Path) -> None:
    torch.save(_wlm(), tmp_path / "whole.pt")
    with pytest.raises(InputError, match=r"whole model saved with torch.save\(model\)") as err:
        read_weights(tmp_path / "whole.pt", max_bytes=MAX)
    assert "model.state_dict()" in str(err.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused_before_loading(tmp_path: Path) -> None:
    torch.jit.save(torch.jit.script(nn.Linear(3, 2)), tmp_path / "script.pt")
    with pytest.raises(InputError, match="TorchScript") as err:
        read_weights(tmp_path / "script.pt", max_bytes=MAX)
    assert "state_dict()" in str(err.value)


def test_torchscript_detection_needs_no_torch_loader(tmp_path: Path) -> None:
    # A zip that only looks like TorchScript (and would be garbage to torch) is
    # refused for being TorchScript: the directory decides, before any parser.
    path = tmp_path / "fake.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"not a pickle")
        zf.writestr("archive/code/__torch__/m.py", b"def forward(self): ...")
    with pytest.raises(InputError, match="TorchScript"):
        read_weights(path, max_bytes=MAX)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file_is_refused_as_damaged(tmp_path: Path, fmt: str, keep: float) -> None:
    full = _save(_wlm(), tmp_path / "full", fmt).read_bytes()
    cut = tmp_path / "cut"
    cut.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(InputError, match="damaged or incomplete"):
        read_weights(cut, max_bytes=MAX)


@pytest.mark.parametrize("numel", [10**9, 2**40, 2**61])
def test_legacy_file_declaring_a_huge_storage_is_refused(tmp_path: Path, numel: int) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(7)}, buf, _use_new_zipfile_serialization=False)
    # The storage's persistent id ends in its element count (BININT1 7); make it lie.
    count = numel.to_bytes((numel.bit_length() + 8) // 8, "little", signed=True)
    data = buf.getvalue().replace(
        b"cpuq\x06K\x07N", b"cpuq\x06\x8a" + bytes([len(count)]) + count + b"N", 1
    )
    assert data != buf.getvalue()
    (tmp_path / "w.pt").write_bytes(data)
    with pytest.raises(InputError, match="damaged or incomplete"):
        read_weights(tmp_path / "w.pt", max_bytes=MAX)


def test_zip_that_unpacks_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
        zf.writestr("archive/data/0", b"\0" * (8 << 20))
    assert path.stat().st_size < 100_000
    with pytest.raises(InputError, match=r"would unpack to 8.0 MiB"):
        read_weights(path, max_bytes=1 << 20)


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = _save(_wlm(), tmp_path / "w.pt", "zip")
    with pytest.raises(InputError, match=r"at most 0.0 MiB may be uploaded"):
        read_weights(path, max_bytes=1000)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"a": 1, "b": "text"}, r"not tensors: a \(int\), b \(str\)"),
        ({"model": {"encoder.weight": 3}}, r"'model' entry holds values that are not tensors"),
        ([torch.zeros(2)], "holds a list"),
        (torch.zeros(3), "single tensor"),
        ({}, "empty dict"),
    ],
)
def test_non_tensor_content_is_refused(tmp_path: Path, content: Any, match: str) -> None:
    torch.save(content, tmp_path / "w.pt")
    with pytest.raises(InputError, match=match):
        read_weights(tmp_path / "w.pt", max_bytes=MAX)


def test_sparse_tensors_are_refused(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.eye(3).to_sparse()}, tmp_path / "w.pt")
    with pytest.raises(InputError, match="sparse"):
        read_weights(tmp_path / "w.pt", max_bytes=MAX)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "HDF5"),
        (b'{"rnn_type": "LSTM"}', "JSON"),
        (b"hello world, not weights at all", "neither safetensors nor a torch.save file"),
        (b"", "empty"),
    ],
)
def test_other_files_are_refused_with_what_they_are(
    tmp_path: Path, data: bytes, match: str
) -> None:
    (tmp_path / "w").write_bytes(data)
    with pytest.raises(InputError, match=match):
        read_weights(tmp_path / "w", max_bytes=MAX)


# -- safetensors headers ------------------------------------------------------


def _safetensors(header: dict[str, Any], data: bytes, *, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


@pytest.mark.parametrize(
    ("header", "data", "length", "match"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, 1 << 62,
         "headers are at most"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, 10_000,
         "only"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None,
         "ends at byte 16 but the file has only 8 bytes"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 8, None,
         "takes 4 bytes"),
        ({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16, None,
         "unknown dtype 'F128'"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None,
         "overlap"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None,
         "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, b"\0" * 8, None,
         "out of order"),
        ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None,
         "needs exactly dtype, shape and data_offsets"),
        ({"__metadata__": {"format": "pt"}}, b"", None, "holds no tensors"),
    ],
)  # fmt: skip
def test_bad_safetensors_headers_are_refused(
    tmp_path: Path, header: dict[str, Any], data: bytes, length: int | None, match: str
) -> None:
    (tmp_path / "w").write_bytes(_safetensors(header, data, length=length))
    with pytest.raises(InputError, match=match):
        read_weights(tmp_path / "w", max_bytes=MAX)


def test_safetensors_header_with_a_repeated_name_is_refused(tmp_path: Path) -> None:
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    raw = f'{{"a": {entry}, "a": {entry}}}'.encode()
    (tmp_path / "w").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    with pytest.raises(InputError, match="appears twice"):
        read_weights(tmp_path / "w", max_bytes=MAX)


def test_safetensors_values_are_read_exactly(tmp_path: Path) -> None:
    tensors = {
        "a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        "c": torch.tensor([7], dtype=torch.int64),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, str(tmp_path / "w"))
    got = read_weights(tmp_path / "w", max_bytes=MAX)
    assert set(got) == set(tensors)
    for name, t in tensors.items():
        assert got[name].dtype == t.dtype
        torch.testing.assert_close(got[name], t)


# --------------------------------------------------------------------------- #
# Architecture checks
# --------------------------------------------------------------------------- #


def test_plain_rnn_without_type_is_refused_and_says_what_to_give(tmp_path: Path) -> None:
    torch.save(_wlm("RNN_TANH").state_dict(), tmp_path / "r.pt")
    with pytest.raises(InputError, match=r"tanh or relu.*RNN_TANH.*RNN_RELU"):
        _upload(tmp_path / "r.pt", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_recognise_spec_reads_gru_and_refuses_a_contradicting_hint() -> None:
    sd = _wlm("GRU").state_dict()
    assert recognise_spec(sd, 13) == RNNSpec("GRU", 13, 8, 6, 2, False)
    with pytest.raises(InputError, match=r"weights are those of a GRU.*given is LSTM"):
        recognise_spec(sd, 13, rnn_type_hint="LSTM")


def test_unrecognised_layout_names_the_expected_parameters() -> None:
    sd = {"embed.weight": torch.zeros(3, 2), "lstm.weight_hh_l0": torch.zeros(8, 2)}
    with pytest.raises(InputError, match=r"word-language-model layout.*embed\.weight"):
        recognise_spec(sd, 3)


def test_check_shapes_lists_every_problem_at_once() -> None:
    spec = RNNSpec("LSTM", 13, 8, 6, 2, False)
    sd = dict(_wlm("LSTM").state_dict())
    del sd["rnn.bias_hh_l1"]
    sd["rnn.weight_hh_l0"] = torch.zeros(24, 5)
    sd["extra.thing"] = torch.zeros(1)
    sd["decoder.bias"] = torch.zeros(13, dtype=torch.int64)
    sd["decoder.weight"] = torch.full((13, 6), float("nan"))
    with pytest.raises(InputError) as err:
        check_shapes(spec, sd, [f"w{i}" for i in range(12)])
    message = str(err.value)
    for part in (
        "the vocabulary has 12 tokens but the model is declared with 13",
        "encoder.weight has 13 rows (one per token id) but the vocabulary has 12 tokens",
        "missing rnn.bias_hh_l1",
        "unexpected extra.thing",
        "rnn.weight_hh_l0 is (24, 5), expected (24, 6)",
        "decoder.bias (int64)",
        "NaN or infinite values: decoder.weight",
    ):
        assert part in message


def test_config_that_contradicts_the_weights_is_refused_with_details(tmp_path: Path) -> None:
    torch.save(_wlm("LSTM").state_dict(), tmp_path / "w.pt")
    config = {"rnn_type": "GRU", "embedding_size": 8, "hidden_size": 6, "layers": 2}
    with pytest.raises(InputError) as err:
        _upload(tmp_path / "w.pt", tmp_path / "store" / "m", config)
    message = str(err.value)
    assert "look like an LSTM but the model is declared GRU" in message
    assert "rnn.weight_ih_l0 is (24, 8), expected (18, 8)" in message
    assert _nothing_stored(tmp_path / "store")


def test_config_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    torch.save(_wlm("LSTM").state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError, match="unknown keys dropout"):
        _upload(tmp_path / "w.pt", tmp_path / "m", {"dropout": 0.5})


def test_vocab_that_does_not_fit_the_encoder_is_refused(tmp_path: Path) -> None:
    torch.save(_wlm("LSTM").state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError, match="upload the vocabulary the model was trained with"):
        _upload(tmp_path / "w.pt", tmp_path / "m", vocab=_vocab_bytes(20))
    assert not (tmp_path / "m").exists()


def test_integer_weights_are_refused(tmp_path: Path) -> None:
    sd = {k: (v * 100).to(torch.int32) for k, v in _wlm("GRU").state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(InputError, match="must be floating point"):
        _upload(tmp_path / "w.pt", tmp_path / "m")


def test_tied_config_with_a_different_decoder_is_refused() -> None:
    spec = RNNSpec("LSTM", 13, 8, 8, 1, True)
    model = WordLanguageModel("LSTM", 13, 8, 8, 1, tie=False)
    sd = dict(model.state_dict())
    with pytest.raises(InputError, match=r"declared tied but decoder.weight differs"):
        check_shapes(spec, sd, [f"w{i}" for i in range(13)])


# --------------------------------------------------------------------------- #
# The store
# --------------------------------------------------------------------------- #


def test_save_model_refuses_an_existing_directory_and_bad_meta(tmp_path: Path) -> None:
    spec = RNNSpec("GRU", 13, 8, 6, 2, False)
    sd = _wlm("GRU").state_dict()
    vocab = [f"w{i}" for i in range(13)]
    (tmp_path / "store").mkdir()
    with pytest.raises(ValueError, match="not JSON compliant"):
        save_model(tmp_path / "store" / "m", spec, sd, vocab, {"loss": float("nan")})
    assert _nothing_stored(tmp_path / "store")
    save_model(tmp_path / "store" / "m", spec, sd, vocab, {"note": "first"})
    with pytest.raises(FileExistsError):
        save_model(tmp_path / "store" / "m", spec, sd, vocab, {"note": "second"})
    assert load_model(tmp_path / "store" / "m").meta == {"note": "first"}
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["m"]
    manifest = json.loads((tmp_path / "store" / "m" / "manifest.json").read_text())
    assert manifest["format"] == "statelab-model" and manifest["version"] == 1


def test_load_model_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text('{"format": "statelab-corpus", "version": 1}')
    with pytest.raises(InputError, match="not a StateLab model"):
        load_model(tmp_path / "x")


# --------------------------------------------------------------------------- #
# Vocabularies
# --------------------------------------------------------------------------- #


def test_character_vocab_with_space_and_newline_as_json() -> None:
    data = json.dumps(["a", " ", "\n", "b", ""]).encode()
    assert read_vocab(data, "chars.json") == ["a", " ", "\n", "b", ""]


def test_json_token_to_id_map() -> None:
    assert read_vocab(b'{"b": 1, "a": 0, " ": 2}', "vocab.json") == ["a", "b", " "]


def test_one_token_per_line_with_windows_line_endings() -> None:
    assert read_vocab(b"the\r\ncat\r\n<eos>\r\n", "vocab.txt") == ["the", "cat", "<eos>"]


def test_utf8_bom_is_dropped() -> None:
    assert read_vocab("\ufeffé\nü\n".encode(), "vocab") == ["é", "ü"]


def test_lstmvis_dict_with_the_space_line() -> None:
    data = b"a 0\n 1\nb 3\nc 2\n"
    assert read_vocab(data, "train.dict") == ["a", " ", "c", "b"]


def test_txt_holding_token_id_pairs_is_read_as_a_dictionary() -> None:
    assert read_vocab(b"x 1\ny 0\n", "words.txt") == ["y", "x"]


def test_a_line_vocab_that_starts_with_a_bracket_is_not_json() -> None:
    assert read_vocab(b"[\n]\nx\n", "chars.txt") == ["[", "]", "x"]


@pytest.mark.parametrize(
    ("data", "filename", "match"),
    [
        (b"", "v.txt", "empty"),
        (b"\n \n", "v.txt", "empty"),
        (b"[]", "v.json", "empty"),
        (b"a\nb\na\n", "v.txt", r"appear twice: 'a' \(ids 0 and 2\)"),
        (b'["x", "y", "x"]', "v.json", "appear twice"),
        (b"a 0\nb 2\n", "v.dict", "1 is missing"),
        (b"a 0\nb 0\n", "v.dict", r"given twice: 0 \(line 1 and line 2\)"),
        (b"a 0\nb x\n", "v.dict", "not an id"),
        (b"a 0\na 1\n", "v.dict", "appear twice"),
        (b"\xff\xfe\x00a", "v.txt", "not UTF-8 text: the byte 0xff at offset 0"),
        (b"a\n\nb\n", "v.txt", "line 2 is empty or only whitespace.*JSON list"),
        (b"a\n b\n", "v.txt", "spaces around its token"),
        (b'["a", 3]', "v.json", "items at 1 are not"),
        (b'{"a": 0, "b": 5}', "v.json", "missing"),
        (b"[broken", "v.json", "not valid JSON"),
    ],
)
def test_bad_vocabularies_are_refused(data: bytes, filename: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as err:
        read_vocab(data, filename)
    assert err.value.file == filename


def test_upload_with_a_bad_vocab_stores_nothing(tmp_path: Path) -> None:
    torch.save(_wlm().state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError, match="appear twice"):
        _upload(
            tmp_path / "w.pt", tmp_path / "store" / "m", vocab=b"a\na\n", vocab_filename="v.txt"
        )
    assert _nothing_stored(tmp_path / "store")
