"""Values built from already-typed fields, without validating them again."""

from __future__ import annotations

import pytest

from buttress.runtime.result import Attempt
from buttress.trusted import trusted
from buttress.types import Usage


def test_trusted_values_fill_defaults_and_refuse_unknown_or_missing_fields() -> None:
    attempt = trusted(Attempt, {"index": 0, "kind": "primary", "provider": "p", "model": "m",
                                "started_at": 1.0, "latency_s": 0.5, "status": "ok"})
    assert attempt.usage == Usage()
    assert attempt.cost_usd is None
    assert attempt.error is None
    assert attempt == Attempt(index=0, kind="primary", provider="p", model="m", started_at=1.0,
                              latency_s=0.5, status="ok")
    with pytest.raises(ValueError, match="nonsense"):
        trusted(Attempt, {"index": 0, "kind": "primary", "provider": "p", "model": "m",
                          "started_at": 1.0, "latency_s": 0.5, "status": "ok", "nonsense": 1})
    with pytest.raises(ValueError, match="latency_s"):
        trusted(Attempt, {"index": 0, "kind": "primary", "provider": "p", "model": "m",
                          "started_at": 1.0, "status": "ok"})
