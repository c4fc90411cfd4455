"""Identifiers for calls, attempts and traces: time-ordered, so stores index them well."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """32 hex digits: 16 of nanoseconds since the epoch, then 16 random."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"
