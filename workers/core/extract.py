"""Extracting the hidden states of a recurrent language model over a corpus.

Interface first; the engine follows in the same module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.core.errors import ProgressFn
from workers.core.rnnlm import RNNLanguageModel
from workers.core.store import Manifest

__all__ = ["ExtractParams", "extract"]


@dataclass(frozen=True)
class ExtractParams:
    """What to extract and how to cut the corpus into parallel streams."""

    values: tuple[str, ...] = ("h", "c")  # any of "h", "c", "gates"
    topk: int = 5  # 0 = no prediction track
    surprisal: bool = True
    streams: int | None = None  # parallel streams; None = chosen from the corpus length
    chunk: int = 35  # time steps per chunk


def extract(
    model: RNNLanguageModel,
    model_vocab: list[str],
    corpus_dir: Path,
    final_dir: Path,
    params: ExtractParams,
    *,
    work_dir: Path,
    progress: ProgressFn,
    device: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Run ``model`` over the corpus at ``corpus_dir`` and publish a state set at ``final_dir``."""
    raise NotImplementedError
