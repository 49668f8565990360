"""Helpers the artefact services share (uploads, models, training): turning a
refusal of the compute core into the API's error, hashing a stored file, and where a
worker runs a model. Kept apart so no service module imports another's private names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from backend.core.errors import ApplicationError
from workers.core.errors import InputError


def input_refusal(exc: InputError, code: str = "invalid_model") -> ApplicationError:
    """The user-facing error for an input the compute core refused, with its message."""
    return ApplicationError(str(exc), code=code)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_device() -> str:
    """Where a worker runs a model: the GPU when this worker has one. Worker side only:
    it imports torch."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
