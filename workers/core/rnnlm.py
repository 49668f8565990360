"""The recurrent language model StateLab loads, trains and extracts from.

Its parameter names are those of the PyTorch word-language-model example
(``encoder.weight``, ``rnn.weight_ih_l0`` ..., ``decoder.weight``,
``decoder.bias``), so a state dict saved by that example loads as it is. The
architecture is an :class:`RNNSpec`: the small JSON config users may upload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from workers.core.errors import InputError

__all__ = ["RNN_TYPES", "RNNLanguageModel", "RNNSpec"]

RNN_TYPES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")

# Generous upper bounds: a spec from a user must not allocate the machine away.
_MAX_VOCAB = 2_000_000
_MAX_WIDTH = 16_384
_MAX_LAYERS = 16


@dataclass(frozen=True)
class RNNSpec:
    """Architecture of a recurrent language model."""

    rnn_type: str
    vocab_size: int
    embedding_size: int
    hidden_size: int
    layers: int
    tied: bool = False

    def __post_init__(self) -> None:
        if self.rnn_type not in RNN_TYPES:
            raise InputError(
                f"the rnn type must be one of {', '.join(RNN_TYPES)}, not {self.rnn_type!r}"
            )
        for name, value, top in (
            ("vocabulary size", self.vocab_size, _MAX_VOCAB),
            ("embedding size", self.embedding_size, _MAX_WIDTH),
            ("hidden size", self.hidden_size, _MAX_WIDTH),
            ("number of layers", self.layers, _MAX_LAYERS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise InputError(
                    f"the {name} must be a whole number from 1 to {top}, not {value!r}"
                )
        if self.tied and self.embedding_size != self.hidden_size:
            raise InputError(
                "a tied decoder needs the embedding size to equal the hidden size "
                f"({self.embedding_size} != {self.hidden_size})"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        """Gate names in PyTorch's weight order: ``i f g o`` (LSTM), ``r z n`` (GRU)."""
        if self.rnn_type == "LSTM":
            return ("i", "f", "g", "o")
        if self.rnn_type == "GRU":
            return ("r", "z", "n")
        return ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RNNSpec:
        """Parse a user's config (keys as in :meth:`to_json`); bad input is an ``InputError``."""
        if not isinstance(data, dict):
            raise InputError("the model config must be a JSON object")
        known = {"rnn_type", "vocab_size", "embedding_size", "hidden_size", "layers", "tied"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"the model config has unknown keys {', '.join(unknown)}; "
                f"it may have {', '.join(sorted(known))}"
            )
        missing = sorted(known - {"tied"} - set(data))
        if missing:
            raise InputError(f"the model config is missing {', '.join(missing)}")
        tied = data.get("tied", False)
        if not isinstance(tied, bool):
            raise InputError("'tied' in the model config must be true or false")
        return cls(
            rnn_type=str(data["rnn_type"]).upper(),
            vocab_size=data["vocab_size"],
            embedding_size=data["embedding_size"],
            hidden_size=data["hidden_size"],
            layers=data["layers"],
            tied=tied,
        )


class RNNLanguageModel(nn.Module):
    """Embedding, a stack of recurrent layers, a linear decoder over the vocabulary.

    Inputs are time-major, ``(T, B)`` token ids, as in the word-language-model
    example; ``forward`` returns logits ``(T, B, V)`` and the final hidden state.
    """

    def __init__(self, spec: RNNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = nn.Embedding(spec.vocab_size, spec.embedding_size)
        rnn: nn.RNNBase
        if spec.rnn_type == "LSTM":
            rnn = nn.LSTM(spec.embedding_size, spec.hidden_size, spec.layers)
        elif spec.rnn_type == "GRU":
            rnn = nn.GRU(spec.embedding_size, spec.hidden_size, spec.layers)
        else:
            nonlinearity = "tanh" if spec.rnn_type == "RNN_TANH" else "relu"
            rnn = nn.RNN(
                spec.embedding_size, spec.hidden_size, spec.layers, nonlinearity=nonlinearity
            )
        self.rnn = rnn
        self.decoder = nn.Linear(spec.hidden_size, spec.vocab_size)
        if spec.tied:
            self.decoder.weight = self.encoder.weight

    def init_hidden(
        self, batch: int, device: torch.device | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The zero state for ``batch`` streams: ``h`` or ``(h, c)`` for an LSTM."""
        weight = self.encoder.weight
        shape = (self.spec.layers, batch, self.spec.hidden_size)
        h = torch.zeros(shape, dtype=weight.dtype, device=device or weight.device)
        if self.spec.rnn_type == "LSTM":
            return (h, torch.zeros_like(h))
        return h

    def forward(
        self,
        ids: torch.Tensor,
        hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        emb = self.encoder(ids)
        if hidden is None:
            hidden = self.init_hidden(ids.shape[1], ids.device)
        out, hidden = self.rnn(emb, hidden)
        return self.decoder(out), hidden
