"""Training a language model on a stored corpus: it learns, it is reproducible,
it refuses bad parameters, it stops when cancelled, and what it stores loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from workers.core import rnnlm
from workers.core.corpus import tokenize_text
from workers.core.errors import Cancelled, InputError
from workers.core.modelfile import load_model
from workers.core.store import write_corpus
from workers.core.train import MAX_LOGITS, RNN_TYPES, TrainParams, train

TEXT = "\n".join(
    f"the {a} sat on the {b}." for a in ("cat", "dog", "bird") for b in ("mat", "log", "hat")
)

SMALL = {"hidden_size": 16, "layers": 1, "seq_len": 20, "batch_size": 4}


def _quiet(fraction: float, message: str) -> None:
    assert 0.0 <= fraction <= 1.0 and message


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    ids, vocab, docs = tokenize_text((TEXT + "\n") * 8, "char")
    path = tmp_path / "corpus"
    write_corpus(path, ids, vocab, docs, {})
    return path


def _train(corpus: Path, dest: Path, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    points: list[dict[str, Any]] = []
    params = TrainParams(**{**SMALL, **kw})
    metrics = train(corpus, dest, params, progress=_quiet, on_point=points.append, device="cpu")
    return metrics, points


def test_loss_goes_down_and_the_curve_is_reported(corpus: Path, tmp_path: Path) -> None:
    metrics, points = _train(corpus, tmp_path / "m", epochs=4, learning_rate=0.01)
    train_points = [p for p in points if p["split"] == "train"]
    valid_points = [p for p in points if p["split"] == "valid"]
    assert len(valid_points) == 4
    assert [p["epoch"] for p in valid_points] == [1, 2, 3, 4]
    assert all(set(p) == {"step", "epoch", "tokens", "loss", "perplexity", "split"} for p in points)
    steps = [p["step"] for p in train_points]
    assert steps == sorted(steps) and steps[-1] == metrics["steps"]
    assert train_points[-1]["tokens"] == metrics["tokens"]
    # Uniform guessing over the vocabulary is ln(V); the model must do far better.
    first, last = train_points[0]["loss"], train_points[-1]["loss"]
    assert last < 0.6 * first
    assert valid_points[-1]["loss"] < valid_points[0]["loss"]
    assert metrics["valid_loss"] == valid_points[-1]["loss"]
    assert metrics["train_perplexity"] == pytest.approx(2.718281828 ** metrics["train_loss"])


def test_same_seed_gives_identical_weights(corpus: Path, tmp_path: Path) -> None:
    kw = {"epochs": 2, "layers": 2, "dropout": 0.3, "rnn_type": "GRU"}
    _train(corpus, tmp_path / "a", seed=7, **kw)
    _train(corpus, tmp_path / "b", seed=7, **kw)
    _train(corpus, tmp_path / "c", seed=8, **kw)
    a, b, c = (load_file(str(tmp_path / n / "weights.safetensors")) for n in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_leaves_global_torch_state_alone(corpus: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _train(corpus, tmp_path / "m", epochs=1)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.are_deterministic_algorithms_enabled()


def test_stored_model_loads_with_the_corpus_vocab(corpus: Path, tmp_path: Path) -> None:
    metrics, _ = _train(corpus, tmp_path / "m", epochs=1, tied=True, embedding_size=16)
    loaded = load_model(tmp_path / "m")
    corpus_vocab = json.loads((corpus / "vocab.json").read_text())
    assert loaded.vocab == corpus_vocab
    assert loaded.spec == rnnlm.RNNSpec("LSTM", len(corpus_vocab), 16, 16, 1, True)
    assert not loaded.model.training
    assert loaded.meta["origin"] == "training"
    assert loaded.meta["params"]["tied"] is True
    assert loaded.meta["metrics"]["train_loss"] == metrics["train_loss"]
    logits, _ = loaded.model(torch.zeros(5, 2, dtype=torch.long))
    assert logits.shape == (5, 2, len(corpus_vocab))


def test_max_tokens_and_validation_split(corpus: Path, tmp_path: Path) -> None:
    metrics, _ = _train(corpus, tmp_path / "m", epochs=1, max_tokens=400, validation_fraction=0.1)
    assert metrics["train_tokens"] == 360 and metrics["valid_tokens"] == 40
    # 4 streams of 90 tokens predict 89 next tokens each.
    assert metrics["tokens"] == 4 * 89


def test_no_validation_when_the_fraction_is_zero(corpus: Path, tmp_path: Path) -> None:
    metrics, points = _train(corpus, tmp_path / "m", epochs=1, validation_fraction=0.0)
    assert metrics["valid_loss"] is None and metrics["valid_tokens"] == 0
    assert {p["split"] for p in points} == {"train"}


def test_cancel_stops_the_run_and_stores_nothing(corpus: Path, tmp_path: Path) -> None:
    calls: list[float] = []

    def cancel_at_the_first_epoch_end(fraction: float, message: str) -> None:
        calls.append(fraction)
        if "done" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        train(
            corpus,
            tmp_path / "store" / "m",
            TrainParams(**{**SMALL, "epochs": 3}),
            progress=cancel_at_the_first_epoch_end,
            device="cpu",
        )
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())
    assert not torch.are_deterministic_algorithms_enabled()


def test_corpus_too_short_for_the_batch_is_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="set batch_size to at most"):
        _train(corpus, tmp_path / "m", batch_size=4000)
    assert not (tmp_path / "m").exists()


def test_a_step_too_large_for_memory_is_refused(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    ids, vocab, docs = tokenize_text(words, "word")
    write_corpus(tmp_path / "words", ids, vocab, docs, {})
    assert 2048 * 4096 * len(vocab) > MAX_LOGITS
    with pytest.raises(InputError, match="lower seq_len or batch_size"):
        _train(tmp_path / "words", tmp_path / "m", seq_len=2048, batch_size=4096)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"rnn_type": "TRANSFORMER"}, "rnn_type must be one of"),
        ({"layers": 0}, "layers must be a whole number from 1 to 8"),
        ({"hidden_size": 2.5}, "hidden_size must be a whole number"),
        ({"epochs": True}, "epochs must be a whole number"),
        ({"learning_rate": 0.0}, "learning_rate must be a number above 0.0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a number"),
        ({"dropout": 0.95}, "dropout must be a number from 0.0 up to 0.9"),
        ({"clip": -1.0}, "clip must be a number"),
        ({"validation_fraction": 0.8}, "validation_fraction"),
        ({"max_tokens": 1}, "max_tokens must be a whole number from 2"),
        ({"seq_len": 100_000}, "seq_len"),
        ({"tied": True, "hidden_size": 32, "embedding_size": 16}, "tied weights need"),
        ({"tied": "yes"}, "tied must be true or false"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        TrainParams(**params)


def test_params_from_json() -> None:
    params = TrainParams.from_json({"rnn_type": " gru ", "learning_rate": 1, "epochs": 5})
    assert params.rnn_type == "GRU" and params.learning_rate == 1.0 and params.epochs == 5
    assert TrainParams.from_json(params.to_json()) == params
    assert TrainParams(rnn_type="lstm").rnn_type == "LSTM"
    with pytest.raises(InputError, match="unknown training parameters optimizer"):
        TrainParams.from_json({"optimizer": "sgd"})
    with pytest.raises(InputError, match="JSON object"):
        TrainParams.from_json([1, 2])


def test_cell_types_match_the_model_module() -> None:
    assert RNN_TYPES == rnnlm.RNN_TYPES


@pytest.mark.parametrize("rnn_type", ["GRU", "RNN_TANH", "RNN_RELU"])
def test_other_cell_types_train_and_load(corpus: Path, tmp_path: Path, rnn_type: str) -> None:
    _train(corpus, tmp_path / "m", epochs=1, rnn_type=rnn_type, layers=2, dropout=0.1)
    assert load_model(tmp_path / "m").spec.rnn_type == rnn_type


@pytest.mark.requires_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_is_reproducible_and_loads_on_cpu(corpus: Path, tmp_path: Path) -> None:
    params = TrainParams(**{**SMALL, "epochs": 2, "layers": 2, "dropout": 0.2})
    for name in ("a", "b"):
        metrics = train(corpus, tmp_path / name, params, progress=_quiet, device="cuda")
        assert metrics["device"].startswith("cuda")
    a, b = (load_file(str(tmp_path / n / "weights.safetensors")) for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_model(tmp_path / "a", device="cpu").vocab


def test_progress_speaks_in_the_steps_of_the_curve(corpus: Path, tmp_path: Path) -> None:
    """The job's message counts the steps the learning curve's x axis shows, as a
    sentence; the last step it names is the curve's last point."""
    import re

    messages: list[str] = []
    points: list[dict[str, Any]] = []
    metrics = train(
        corpus,
        tmp_path / "m",
        TrainParams(**{**SMALL, "epochs": 2}),
        progress=lambda _f, m: messages.append(m),
        on_point=points.append,
        device="cpu",
    )
    steps = [re.fullmatch(r"Step ([\d,]+) of ([\d,]+) \(epoch (\d) of 2\)\.", m) for m in messages]
    found = [s for s in steps if s]
    assert found, messages
    totals = {int(s.group(2).replace(",", "")) for s in found}
    assert totals == {metrics["steps"]}
    last = max(int(s.group(1).replace(",", "")) for s in found)
    assert last == metrics["steps"] == max(p["step"] for p in points)
    assert all(m[:1].isupper() and m.endswith(".") for m in messages), messages
