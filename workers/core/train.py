"""Training a recurrent language model on a stored corpus.

The loop is the PyTorch word-language-model example's: the corpus is cut into
``batch_size`` parallel streams, each a contiguous piece of the text, and read
in chunks of ``seq_len`` tokens with truncated back-propagation (the hidden
state is carried from one chunk to the next and detached between them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.core.errors import ProgressFn

if TYPE_CHECKING:
    import torch

__all__ = ["TrainParams", "train"]


@dataclass(frozen=True)
class TrainParams:
    """What a user chooses for a training run; checked on construction."""

    rnn_type: str = "LSTM"
    layers: int = 2
    hidden_size: int = 200
    embedding_size: int | None = None  # None: the hidden size
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def train(
    corpus_dir: Path,
    final_model_dir: Path,
    params: TrainParams,
    *,
    progress: ProgressFn,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Train a model on the corpus at ``corpus_dir`` and store it at ``final_model_dir``."""
    raise NotImplementedError
