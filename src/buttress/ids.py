"""Identifiers for calls, attempts and traces: time-ordered, so stores index them well."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """32 hex digits: 16 of nanoseconds since the epoch, then 16 random (``os.urandom``, which
    ``secrets.token_hex`` reads through three Python calls)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"
