"""Loaded into a test's worker process (``celery worker --include
tests.support.slow_shards``): the engine waits ``STATELAB_TEST_SHARD_DELAY_S`` seconds
before it matches a shard, so that a test sees shards spread over several workers and
can kill a worker while it holds one. Whole (unsharded) matches are not delayed."""

from __future__ import annotations

import os
import time
from typing import Any

from workers.core import match as engine

_match = engine.match


def _slow_match(*args: Any, **kwargs: Any) -> Any:
    if kwargs.get("shard") is not None:
        time.sleep(float(os.environ.get("STATELAB_TEST_SHARD_DELAY_S") or 0))
    return _match(*args, **kwargs)


engine.match = _slow_match  # type: ignore[assignment]
