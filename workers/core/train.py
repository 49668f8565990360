"""Training a recurrent language model on a stored corpus.

The loop is the PyTorch word-language-model example's, so a model trained here
behaves like one users trained themselves:

* the training part of the corpus (all but the last ``validation_fraction``)
  is cut into ``batch_size`` parallel *streams*, each a contiguous piece of the
  text, read in chunks of ``seq_len`` tokens; the hidden state is carried from
  one chunk to the next and detached between them (truncated back-propagation
  through time), and starts at zero at the beginning of every epoch;
* chunks are sliced from the memory-mapped token file as they are needed, so
  memory is bounded by ``batch_size x seq_len`` (and the ``x vocabulary`` of the
  logits), not by the corpus length;
* the loss is the mean cross-entropy of predicting each next token;
  perplexity is ``exp(loss)``.

Optimiser: **Adam** (default learning rate 0.002) with gradient-norm clipping.
The example uses plain SGD with a learning rate of 20 and a hand-made decay
schedule; Adam needs no schedule and trains the small and middle-sized models
people build here reliably from its default, which matters more for a service
than the last fraction of perplexity.

Dropout (``dropout``) is applied as in the example: on the embeddings, between
recurrent layers and on the last layer's output, during training only. It adds
no parameters, so the stored model is the plain :class:`RNNLanguageModel`.

Reproducibility: the run forks torch's random state, seeds it with ``seed`` and
asks for deterministic algorithms (``warn_only``), so the same parameters on the
same device and software give bit-identical weights; the process-wide settings
are restored afterwards.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.core.errors import InputError, ProgressFn
from workers.core.modelfile import save_model
from workers.core.store import open_corpus

if TYPE_CHECKING:
    import torch

    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

__all__ = ["MAX_LOGITS", "MAX_PARAMETERS", "TrainParams", "train"]

# One chunk's logits (seq_len x batch x vocabulary) as float32, 1 GiB; with their
# gradient and softmax that is the bulk of the memory a step needs.
MAX_LOGITS = 1 << 28
# 256M parameters (1 GiB of float32, 3 GiB with Adam's two moments).
MAX_PARAMETERS = 1 << 28

# Curve points per run (train split); validation adds one per epoch.
_POINTS = 200
# Progress callbacks at most this often (they may write to a database).
_PROGRESS_EVERY_S = 0.5

# The cell types of workers.core.rnnlm.RNN_TYPES, repeated so that checking
# parameters (in the web process) does not import torch.
RNN_TYPES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")

_LIMITS: dict[str, tuple[int, int]] = {
    "layers": (1, 8),
    "hidden_size": (1, 4096),
    "embedding_size": (1, 4096),
    "epochs": (1, 1000),
    "seq_len": (1, 2048),
    "batch_size": (1, 4096),
    "seed": (0, 2**63 - 1),
    "max_tokens": (2, 2**40),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainParams:
    """What a user chooses for a training run; checked on construction.

    ``embedding_size`` None means the hidden size; ``clip`` 0 turns clipping
    off; ``max_tokens`` None trains on the whole corpus (else its first
    ``max_tokens`` tokens); ``validation_fraction`` of those tokens, at the end,
    is held out for the validation loss (0 for none).
    """

    rnn_type: str = "LSTM"
    layers: int = 2
    hidden_size: int = 200
    embedding_size: int | None = None
    epochs: int = 3
    learning_rate: float = 0.002
    seq_len: int = 35
    batch_size: int = 20
    seed: int = 0
    tied: bool = False
    clip: float = 0.25
    dropout: float = 0.0
    max_tokens: int | None = None
    validation_fraction: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.rnn_type, str):
            object.__setattr__(self, "rnn_type", self.rnn_type.strip().upper())
        if self.rnn_type not in RNN_TYPES:
            raise InputError(
                f"rnn_type must be one of {', '.join(RNN_TYPES)}, not {self.rnn_type!r}"
            )
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if value is None and name in ("embedding_size", "max_tokens"):
                continue
            if not _is_int(value) or not low <= value <= high:
                raise InputError(
                    f"{name} must be a whole number from {low} to {high}, not {value!r}"
                )
        if not isinstance(self.tied, bool):
            raise InputError(f"tied must be true or false, not {self.tied!r}")
        checks: tuple[tuple[str, float, float, bool], ...] = (
            # name, low, high, low is allowed
            ("learning_rate", 0.0, 10.0, False),
            ("clip", 0.0, 1e6, True),
            ("dropout", 0.0, 0.9, True),
            ("validation_fraction", 0.0, 0.5, True),
        )
        for fname, flow, fhigh, low_ok in checks:
            number = getattr(self, fname)
            if (
                not _is_number(number)
                or number > fhigh
                or number < flow
                or (number == flow and not low_ok)
            ):
                bound = "from" if low_ok else "above"
                raise InputError(
                    f"{fname} must be a number {bound} {flow} up to {fhigh}, not {number!r}"
                )
        if self.tied and self.embedding_dim != self.hidden_size:
            raise InputError(
                "tied weights need embedding_size equal to hidden_size "
                f"({self.embedding_dim} != {self.hidden_size}); leave embedding_size empty "
                "to use the hidden size"
            )

    @property
    def embedding_dim(self) -> int:
        return self.embedding_size if self.embedding_size is not None else self.hidden_size

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TrainParams:
        """Parameters from a user's JSON object; keys left out take their defaults."""
        if not isinstance(data, dict):
            raise InputError("the training parameters must be a JSON object")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InputError(
                f"unknown training parameters {', '.join(unknown)}; known are {', '.join(known)}"
            )
        values = dict(data)
        for name in ("learning_rate", "clip", "dropout", "validation_fraction"):
            if _is_int(values.get(name)):
                values[name] = float(values[name])
        return cls(**values)

    def spec(self, vocab_size: int) -> RNNSpec:
        from workers.core.rnnlm import RNNSpec

        return RNNSpec(
            rnn_type=self.rnn_type,
            vocab_size=vocab_size,
            embedding_size=self.embedding_dim,
            hidden_size=self.hidden_size,
            layers=self.layers,
            tied=self.tied,
        )


def _parameter_count(spec: RNNSpec) -> int:
    gates = {"LSTM": 4, "GRU": 3}.get(spec.rnn_type, 1)
    v, e, h = spec.vocab_size, spec.embedding_size, spec.hidden_size
    rnn = sum(gates * h * ((e if k == 0 else h) + h + 2) for k in range(spec.layers))
    decoder = v + (0 if spec.tied else v * h)
    return v * e + rnn + decoder


class _Streams:
    """``B`` contiguous streams of ``L`` tokens over a 1-D id array (no copy).

    ``chunk(i, s)`` is the time-major ``(s, B)`` int64 block of positions
    ``i .. i+s-1`` of every stream, the only part copied to the device.
    """

    def __init__(self, ids: np.ndarray, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.length = int(ids.shape[0]) // batch
        self.rows = ids[: self.length * batch].reshape(batch, self.length)
        self.device = device

    def chunk(self, start: int, size: int) -> torch.Tensor:
        import torch

        block = np.ascontiguousarray(self.rows[:, start : start + size].T, dtype=np.int64)
        return torch.from_numpy(block).to(self.device, non_blocking=True)

    def starts(self, seq_len: int) -> range:
        """Chunk starts; each chunk predicts up to ``seq_len`` next tokens."""
        return range(0, self.length - 1, seq_len)


def _detach(
    hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if isinstance(hidden, tuple):
        return (hidden[0].detach(), hidden[1].detach())
    return hidden.detach()


def _forward(
    model: RNNLanguageModel,
    ids: torch.Tensor,
    hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    dropout: float,
) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """The model's forward pass with the example's dropout (active in train mode)."""
    import torch.nn.functional as F

    emb = F.dropout(model.encoder(ids), dropout, model.training)
    out, hidden = model.rnn(emb, hidden)
    out = F.dropout(out, dropout, model.training)
    logits: torch.Tensor = model.decoder(out)
    return logits, hidden


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))


@contextmanager
def _deterministic(device: torch.device, seed: int) -> Iterator[None]:
    """Seeded, forked random state and deterministic kernels, restored on exit."""
    import torch

    cuda = device.type == "cuda"
    if cuda:
        # cuBLAS reads this when its handle is created; harmless when already set.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    was_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    )
    with torch.random.fork_rng(devices=devices):
        try:
            torch.manual_seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            yield
        finally:
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = was_cudnn


def _pick_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _evaluate(model: RNNLanguageModel, streams: _Streams, seq_len: int, vocab_size: int) -> float:
    """Mean next-token cross-entropy over every position of ``streams``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=streams.device)
    count = 0
    with torch.no_grad():
        hidden = model.init_hidden(streams.batch, streams.device)
        for start in streams.starts(seq_len):
            size = min(seq_len, streams.length - 1 - start)
            x = streams.chunk(start, size)
            y = streams.chunk(start + 1, size)
            logits, hidden = _forward(model, x, hidden, 0.0)
            total += F.cross_entropy(
                logits.reshape(-1, vocab_size), y.reshape(-1), reduction="sum"
            ).double()
            count += y.numel()
    return float(total.item()) / max(count, 1)


def _split_sizes(length: int, params: TrainParams) -> tuple[int, int, int]:
    """``(n, n_train, n_valid)``: the tokens used, and how many train and validate."""
    n = length if params.max_tokens is None else min(length, params.max_tokens)
    n_valid = 0
    if params.validation_fraction > 0:
        n_valid = max(2, round(n * params.validation_fraction))
    return n, n - n_valid, n_valid


def _check_size(params: TrainParams, spec: RNNSpec, n_train: int) -> int:
    """Refuse a run that would not fit (logits, parameters, streams); returns the
    parameter count."""
    logit_count = params.seq_len * params.batch_size * spec.vocab_size
    if logit_count > MAX_LOGITS:
        raise InputError(
            f"seq_len x batch_size x vocabulary size is {logit_count}, above the {MAX_LOGITS} "
            "a training step may hold: lower seq_len or batch_size"
        )
    n_params = _parameter_count(spec)
    if n_params > MAX_PARAMETERS:
        raise InputError(
            f"the model would have {n_params} parameters, more than the {MAX_PARAMETERS} "
            "that can be trained here: lower hidden_size, embedding_size or layers"
        )
    batch = params.batch_size
    if n_train // batch < 2:
        most = max(1, n_train // 2)
        raise InputError(
            f"the corpus gives {n_train} tokens for training, too few for {batch} parallel "
            f"streams of at least 2 tokens: set batch_size to at most {most}, or train on a "
            "longer corpus"
        )
    return n_params


@dataclass
class _Curve:
    """The loss curve handed to ``on_point``; a loss that is not a number stops the run."""

    on_point: Callable[[dict[str, Any]], None] | None

    def point(self, step: int, epoch: int, tokens: int, loss: float, split: str) -> None:
        if not math.isfinite(loss):
            raise InputError(
                f"training diverged at step {step} (the {split} loss is not a number): "
                "lower the learning rate or set clip above 0"
            )
        if self.on_point is not None:
            self.on_point(
                {
                    "step": step,
                    "epoch": epoch,
                    "tokens": tokens,
                    "loss": loss,
                    "perplexity": _perplexity(loss),
                    "split": split,
                }
            )


@dataclass
class _Loop:
    """The training steps of one run, epoch by epoch, with the counts they carry."""

    model: RNNLanguageModel
    optimizer: torch.optim.Optimizer
    params: TrainParams
    streams: _Streams
    curve: _Curve
    progress: ProgressFn
    step: int = 0
    tokens: int = 0
    last_report: float = 0.0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.streams.starts(self.params.seq_len))

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.params.epochs

    def epoch(self, epoch: int) -> float:
        """Train one epoch (1-based); returns its mean training loss."""
        import torch
        import torch.nn.functional as F

        model, params, streams = self.model, self.params, self.streams
        seq_len, vocab_size = params.seq_len, model.spec.vocab_size
        steps_per_epoch, total_steps = self.steps_per_epoch, self.total_steps
        interval = max(1, math.ceil(total_steps / _POINTS))
        model.train()
        model.rnn.dropout = params.dropout if model.spec.layers > 1 else 0.0
        hidden = model.init_hidden(streams.batch, streams.device)
        since = torch.zeros((), dtype=torch.float64, device=streams.device)
        since_steps = 0
        epoch_sum = torch.zeros((), dtype=torch.float64, device=streams.device)
        for k, start in enumerate(streams.starts(seq_len), start=1):
            size = min(seq_len, streams.length - 1 - start)
            x = streams.chunk(start, size)
            y = streams.chunk(start + 1, size)
            hidden = _detach(hidden)
            logits, hidden = _forward(model, x, hidden, params.dropout)
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            if params.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.clip)
            self.optimizer.step()
            self.step += 1
            self.tokens += y.numel()
            value = loss.detach().double()
            since += value
            epoch_sum += value
            since_steps += 1
            if self.step % interval == 0 or self.step == total_steps:
                self.curve.point(
                    self.step, epoch, self.tokens, float(since.item()) / since_steps, "train"
                )
                since.zero_()
                since_steps = 0
            now = time.monotonic()
            if now - self.last_report >= _PROGRESS_EVERY_S or k == steps_per_epoch:
                self.last_report = now
                self.progress(
                    0.95 * self.step / total_steps,
                    f"Step {self.step:,} of {total_steps:,} (epoch {epoch} of {params.epochs}).",
                )
        model.rnn.dropout = 0.0
        return float(epoch_sum.item()) / steps_per_epoch


def train(
    corpus_dir: Path,
    final_model_dir: Path,
    params: TrainParams,
    *,
    progress: ProgressFn,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Train a model on the corpus at ``corpus_dir`` and store it at ``final_model_dir``.

    ``progress(fraction, message)`` is called at least every half second and at
    each epoch's end; it may raise ``Cancelled``, which stops the run with
    nothing stored. ``on_point`` receives the loss curve:
    ``{"step", "epoch", "tokens", "loss", "perplexity", "split"}`` with split
    ``"train"`` (the mean loss since the previous point, about 200 points per
    run) or ``"valid"`` (once per epoch); ``epoch`` is 1-based, ``tokens`` the
    training tokens consumed so far. ``device`` None means CUDA when available.

    The model is stored with :func:`~workers.core.modelfile.save_model`; its
    vocabulary is the corpus vocabulary (token id = corpus id) and its meta
    holds the parameters and the metrics. Returns the metrics.
    """
    import torch

    from workers.core.rnnlm import RNNLanguageModel

    started = time.monotonic()
    corpus = open_corpus(Path(corpus_dir))
    vocab = corpus.vocab
    n, n_train, n_valid = _split_sizes(corpus.length, params)
    spec = params.spec(len(vocab))
    n_params = _check_size(params, spec, n_train)
    batch = params.batch_size
    dev = _pick_device(device)
    progress(0.0, f"Training a {spec.rnn_type} on {n_train:,} tokens ({dev.type.upper()}).")

    ids = corpus.ids
    train_streams = _Streams(ids[:n_train], batch, dev)
    valid_streams = (
        _Streams(ids[n_train:n], max(1, min(batch, n_valid // 2)), dev) if n_valid else None
    )
    curve = _Curve(on_point)
    train_loss = float("nan")
    valid_loss: float | None = None
    with _deterministic(dev, params.seed):
        model = RNNLanguageModel(spec).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
        loop = _Loop(model, optimizer, params, train_streams, curve, progress)
        for epoch in range(1, params.epochs + 1):
            train_loss = loop.epoch(epoch)
            if valid_streams is not None:
                valid_loss = _evaluate(model, valid_streams, params.seq_len, spec.vocab_size)
                curve.point(loop.step, epoch, loop.tokens, valid_loss, "valid")
            progress(
                0.95 * loop.step / loop.total_steps,
                f"Epoch {epoch} of {params.epochs} done at step {loop.step:,}: "
                f"training loss {train_loss:.3f}"
                + (f", validation loss {valid_loss:.3f}" if valid_loss is not None else "")
                + ".",
            )
        if not math.isfinite(train_loss):
            raise InputError(
                "training diverged (the loss is not a number): lower the learning rate"
            )
    metrics = _metrics(loop, train_loss, valid_loss, n_train, n_valid, n_params, dev, started)
    progress(0.97, "Storing the model.")
    meta = {
        "origin": "training",
        "params": params.to_json(),
        "metrics": metrics,
        "corpus": {"length": corpus.length, "vocab_size": len(vocab), "tokens_used": n},
        "vocab": "corpus",
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_model(Path(final_model_dir), spec, state, vocab, meta)
    progress(1.0, "Training done.")
    return metrics


def _metrics(
    loop: _Loop,
    train_loss: float,
    valid_loss: float | None,
    n_train: int,
    n_valid: int,
    n_params: int,
    dev: torch.device,
    started: float,
) -> dict[str, Any]:
    """What a finished run reports (and stores in the model's meta)."""
    seconds = time.monotonic() - started
    return {
        "train_loss": train_loss,
        "train_perplexity": _perplexity(train_loss),
        "valid_loss": valid_loss,
        "valid_perplexity": _perplexity(valid_loss) if valid_loss is not None else None,
        "epochs": loop.params.epochs,
        "steps": loop.step,
        "tokens": loop.tokens,
        "train_tokens": n_train,
        "valid_tokens": n_valid,
        "parameters": n_params,
        "device": str(dev),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(loop.tokens / seconds, 1) if seconds > 0 else None,
    }
