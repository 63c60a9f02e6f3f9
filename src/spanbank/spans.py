"""A span's attributes as stored: canonical JSON text, and back (pure)."""

from __future__ import annotations

import json


def attributes_json(attrs: dict | None) -> str | None:
    """Canonical JSON of a span's attributes (sorted keys) or None when it has none."""
    return json.dumps(attrs, sort_keys=True, ensure_ascii=False) if attrs else None


def parse_attributes(value) -> dict:
    if value is None or (isinstance(value, float) and value != value):
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)
