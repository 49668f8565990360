"""Fixtures for the Django-free worker core tests.

These tests run without Django (``pytest tests/workers -p no:django``), so the
suite-wide autouse fixture that points Django's settings at a temporary store
is replaced here by a no-op: the core takes its paths as arguments.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.lstmvis_builder import build_lstmvis_project


@pytest.fixture(autouse=True)
def _isolated_store() -> None:
    return None


@pytest.fixture
def lstmvis_project(tmp_path: Path) -> Path:
    """A complete LSTMVis project folder (see ``build_lstmvis_project``)."""
    return build_lstmvis_project(tmp_path / "upload")
