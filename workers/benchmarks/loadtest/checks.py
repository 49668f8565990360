"""What the runner and the simulated users both need to agree on an answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def hits_digest(hits: list[dict[str, Any]]) -> str:
    """What must not change between two answers of the same stored match."""
    key = [(h["position"], h["length"], h["intersection"]) for h in hits]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
