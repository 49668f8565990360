"""Error types and the progress callback shared by the compute core.

The core runs inside Celery workers and, for cheap reads, inside the web
process. Both need to tell a user's mistake (a wrong file, a bad range) apart
from a bug, and both need to cancel a long job. Keeping these few types in one
Django-free module lets the backend map ``InputError`` to a readable JSON error
and lets workers stop a job by raising ``Cancelled`` from the progress callback,
without the core knowing anything about jobs or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Cancelled", "InputError", "ProgressFn"]


class InputError(Exception):
    """Bad user input, explained in a sentence the user understands.

    ``file`` names the user's file the problem was found in (its display name,
    never a server path); ``str()`` then reads ``"<file>: <message>"``.
    """

    def __init__(self, message: str, *, file: str | None = None) -> None:
        self.message = message
        self.file = file
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.file:
            return f"{self.file}: {self.message}"
        return self.message


class Cancelled(Exception):
    """The job was cancelled; raised from a progress callback to stop the work."""


ProgressFn = Callable[[float, str], None]
"""Progress callback: ``fn(fraction, message)`` with fraction in 0..1.

It may raise ``Cancelled``; core functions let that propagate after cleaning up.
"""
