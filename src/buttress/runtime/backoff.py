"""Exponential backoff with full jitter, honouring a provider's Retry-After."""

from __future__ import annotations

import random

from buttress.runtime.policy import Policy


def retry_delay(retry: int, policy: Policy, rng: random.Random,
                retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    Full jitter (uniform in [0, min(max, base * 2**retry)]) spreads synchronized clients apart;
    a Retry-After from the provider is a floor, since retrying sooner only earns another 429.
    """
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * (2.0 ** retry))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
