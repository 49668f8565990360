"""Helpers the artefact services share (uploads, models, training): turning a
refusal of the compute core into the API's error, and where a worker runs a model.
Kept apart so that no service module imports another's private names."""

from __future__ import annotations

from backend.core.errors import ApplicationError
from workers.core.errors import InputError


def input_refusal(exc: InputError, code: str = "invalid_model") -> ApplicationError:
    """The user-facing error for an input the compute core refused, with its message."""
    return ApplicationError(str(exc), code=code)


def compute_device() -> str:
    """Where a worker runs a model: the GPU when this worker has one. Worker side only:
    it imports torch."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
