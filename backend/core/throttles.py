"""Throttling shared by the views that start jobs."""

from __future__ import annotations

from typing import Any


class JobSubmissionThrottleMixin:
    """Rate-limits the POSTs of a view that starts jobs (scope `jobs`); its reads are free."""

    throttle_scope = "jobs"

    def get_throttles(self) -> list[Any]:
        if getattr(self, "request", None) is not None and self.request.method == "POST":  # type: ignore[attr-defined]
            return super().get_throttles()  # type: ignore[misc, no-any-return]
        return []
