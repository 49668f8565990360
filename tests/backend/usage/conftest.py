"""Usage fixtures: a staff user."""

from __future__ import annotations

import pytest


@pytest.fixture
def staff(make_user):
    user = make_user("stella")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user
