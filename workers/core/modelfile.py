"""Uploaded language models: read weights safely, check them, store them.

A model upload is three things from a user: a weights file, a vocabulary and,
when the weights alone do not say everything, a small JSON config
(:class:`~workers.core.rnnlm.RNNSpec`). All three are hostile until checked.

Weights are recognised by their content, never by their name:

* **safetensors**: the header is parsed and validated here (its length, every
  dtype, shape and byte range) before a single tensor byte is read;
* **PyTorch state dicts** written by ``torch.save`` (zip or legacy format) are
  loaded only with ``torch.load(weights_only=True, map_location="cpu")``, which
  refuses any pickle that names a function or class outside a small allowlist,
  so no code from the file ever runs. TorchScript archives are refused from
  their zip directory before torch sees them (loading them would run their
  code), and so are full-module pickles (``torch.save(model)``).

A checked model is stored as a directory written atomically (temp sibling,
fsync, rename, as in :mod:`workers.core.store`)::

    manifest.json         {"format": "statelab-model", "version": 1,
                           "spec": {...}, "vocab_size": V, "parameters": n,
                           "weights": "weights.safetensors", "meta": {...}}
    spec.json             RNNSpec.to_json()
    vocab.json            list of V strings, index = token id
    weights.safetensors   float32 tensors in the word-language-model layout;
                          a tied model stores ``encoder.weight`` only

Everything the web process imports from here is cheap; torch and safetensors
load inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

__all__ = [
    "MODEL_FORMAT",
    "LoadedModel",
    "ModelInfo",
    "check_shapes",
    "load_model",
    "model_upload",
    "read_vocab",
    "read_weights",
    "recognise_spec",
    "save_model",
]

MODEL_FORMAT = "statelab-model"
MODEL_FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A stored model ready to run: the module is in eval mode on its device."""

    model: RNNLanguageModel
    spec: RNNSpec
    vocab: list[str]
    meta: dict[str, Any]


@dataclass
class ModelInfo:
    """What an upload stored: enough for the database row and the user's answer."""

    spec: RNNSpec
    vocab_size: int
    parameters: int
    source_format: str  # "safetensors", "torch-zip" or "torch-legacy"
    size_bytes: int  # bytes of the stored model directory
    sha256: str  # of the stored weights.safetensors
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "vocab_size": self.vocab_size,
            "parameters": self.parameters,
            "source_format": self.source_format,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "notes": list(self.notes),
        }


def read_weights(
    path: Path, *, max_bytes: int, display_name: str | None = None
) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors or ``torch.save`` file, running no code."""
    raise NotImplementedError


def read_vocab(data: bytes, filename: str) -> list[str]:
    """Parse an uploaded vocabulary (JSON list, one token per line, or LSTMVis ``.dict``)."""
    raise NotImplementedError


def recognise_spec(
    state_dict: dict[str, torch.Tensor], vocab_size: int, *, rnn_type_hint: str | None = None
) -> RNNSpec:
    """Read the architecture off a word-language-model state dict."""
    raise NotImplementedError


def check_shapes(spec: RNNSpec, state_dict: dict[str, torch.Tensor], vocab: list[str]) -> None:
    """Raise one ``InputError`` listing every way the weights disagree with ``spec``."""
    raise NotImplementedError


def save_model(
    final_dir: Path,
    spec: RNNSpec,
    state_dict: dict[str, torch.Tensor],
    vocab: list[str],
    meta: dict[str, Any],
) -> None:
    """Write a model directory atomically (see the module docstring for the layout)."""
    raise NotImplementedError


def load_model(model_dir: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Open a stored model directory and build its module in eval mode on ``device``."""
    raise NotImplementedError


def model_upload(
    weights_path: Path,
    config: dict[str, Any] | None,
    vocab_bytes: bytes,
    vocab_filename: str,
    final_dir: Path,
    *,
    max_bytes: int,
    rnn_type_hint: str | None = None,
    weights_filename: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ModelInfo:
    """Check an uploaded model completely, then store it at ``final_dir``."""
    raise NotImplementedError
