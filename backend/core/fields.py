"""Serializer fields shared by the API's request serializers."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class BoundedListField(serializers.ListField):
    """A list whose length is checked before its items are: DRF validates every item
    first and only then `max_length`, so a 1.5M-element list took seconds to refuse."""

    def to_internal_value(self, data: Any) -> Any:
        too_long = self.max_length is not None and len(data) > self.max_length
        if isinstance(data, list | tuple) and too_long:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)
