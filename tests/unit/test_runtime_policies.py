"""Retry, Retry-After, breaker, fallback, deadline and hedging, with fakes and a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import pytest

from buttress.errors import (
    AllAttemptsFailed,
    AuthenticationError,
    BadRequest,
    CircuitOpen,
    DeadlineExceeded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from buttress.runtime import Call, Policy, Runtime, Target
from buttress.runtime.backoff import retry_delay
from buttress.testing import FakeProvider, ManualClock, Reply
from buttress.types import CallRequest, Message

REQUEST = CallRequest(model="", messages=(Message.user("hello"),))


def make_call(*targets: tuple[str, str], n: int = 0, **policy: object) -> Call:
    return Call(request=REQUEST, targets=tuple(Target(provider=p, model=m) for p, m in targets),
                policy=Policy(**policy), call_id=f"call-{n}", trace_id=f"trace-{n}")


async def test_retry_after_is_honoured_with_a_manual_clock() -> None:
    clock = ManualClock()
    fake = FakeProvider(name="a", clock=clock,
                        script=[RateLimited("slow down", retry_after=7.5), "ok"])
    runtime = Runtime({"a": fake}, clock=clock, rng=random.Random(0))

    result = await runtime.complete(make_call(("a", "m"), backoff_base_s=0.1,
                                              backoff_max_s=0.2))

    assert result.text == "ok"
    assert clock.sleeps == [7.5]  # the provider's hint, not the 0.1-0.2 s backoff
    assert [a.kind for a in result.attempts] == ["primary", "retry"]
    assert result.attempts[0].error_kind == "rate_limited"


async def test_retry_after_longer_than_the_cap_falls_back_instead_of_waiting() -> None:
    clock = ManualClock()
    a = FakeProvider(name="a", clock=clock, script=[RateLimited("later", retry_after=120)])
    b = FakeProvider(name="b", clock=clock, script=["from b"])
    runtime = Runtime({"a": a, "b": b}, clock=clock)

    result = await runtime.complete(make_call(("a", "m"), ("b", "m"), retry_after_max_s=30))

    assert result.text == "from b"
    assert clock.sleeps == []
    assert [a.kind for a in result.attempts] == ["primary", "fallback"]


def test_backoff_is_full_jitter_within_exponential_bounds() -> None:
    policy = Policy(backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [retry_delay(retry, policy, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed step
        assert min(delays) < ceiling * 0.2


async def test_a_failed_call_leaves_nothing_for_the_collector(errors_in_cycles: Any) -> None:
    # the errors caught down the chain hold the executor's frame in their tracebacks: while the
    # frame held them in turn, every failed call (an upstream outage: every call) left a
    # reference cycle of some hundred objects that only the collector could free
    clock = ManualClock()
    a = FakeProvider(name="a", clock=clock, script=[ProviderUnavailable("down")])
    b = FakeProvider(name="b", clock=clock, script=[RateLimited("busy")])
    runtime = Runtime({"a": a, "b": b}, clock=clock)
    with errors_in_cycles() as left:
        for n in range(3):
            with contextlib.suppress(AllAttemptsFailed):
                await runtime.complete(make_call(("a", "m"), ("b", "m"), n=n, max_retries=1,
                                                 breaker_failures=100))
    assert left == []
    assert len(a.requests) == len(b.requests) == 6  # each call retried each model, in vain


async def test_breaker_opens_after_failures_and_half_opens_after_cooldown() -> None:
    clock = ManualClock()
    failing = FakeProvider(name="a", clock=clock, script=[ProviderUnavailable("down")])
    runtime = Runtime({"a": failing}, clock=clock)
    call = make_call(("a", "m"), max_retries=0, breaker_failures=3, breaker_cooldown_s=10)
    breaker = runtime.breakers.get("a", "m", failures=3, cooldown_s=10)

    for _ in range(3):
        with pytest.raises(AllAttemptsFailed):
            await runtime.complete(call)
    assert breaker.state == "open"
    sent = len(failing.requests)

    with pytest.raises(AllAttemptsFailed) as info:
        await runtime.complete(call)
    assert isinstance(info.value.exceptions[0], CircuitOpen)
    assert len(failing.requests) == sent  # refused without touching the provider

    clock.advance(10)
    assert breaker.state == "half_open"
    failing.script = iter(["recovered"])
    failing.__post_init__()
    result = await runtime.complete(call)  # the probe
    assert result.text == "recovered"
    assert breaker.state == "closed"


async def test_failed_half_open_probe_reopens_the_breaker() -> None:
    clock = ManualClock()
    failing = FakeProvider(name="a", clock=clock, script=[ProviderUnavailable("down")])
    runtime = Runtime({"a": failing}, clock=clock)
    call = make_call(("a", "m"), max_retries=0, breaker_failures=1, breaker_cooldown_s=5)
    with pytest.raises(AllAttemptsFailed):
        await runtime.complete(call)
    clock.advance(5)
    with pytest.raises(AllAttemptsFailed) as info:
        await runtime.complete(call)  # the probe fails
    assert isinstance(info.value.exceptions[0], ProviderUnavailable)
    breaker = runtime.breakers.get("a", "m", failures=1, cooldown_s=5)
    assert breaker.state == "open"
    clock.advance(4.9)
    assert breaker.state == "open"


async def test_open_breaker_falls_back_to_the_next_model() -> None:
    clock = ManualClock()
    a = FakeProvider(name="a", clock=clock, script=[ProviderUnavailable("down")])
    b = FakeProvider(name="b", clock=clock, script=["b answers"])
    runtime = Runtime({"a": a, "b": b}, clock=clock)
    call = make_call(("a", "m"), ("b", "m"), max_retries=0, breaker_failures=1)
    await runtime.complete(call)  # opens a's breaker, b answers
    result = await runtime.complete(call)
    assert result.provider == "b"
    assert result.attempts[0].error_kind == "circuit_open"
    assert len(a.requests) == 1


async def test_bad_request_is_not_retried_nor_sent_elsewhere() -> None:
    a = FakeProvider(name="a", script=[BadRequest("context too long", status=400)])
    b = FakeProvider(name="b")
    runtime = Runtime({"a": a, "b": b})
    with pytest.raises(BadRequest):
        await runtime.complete(make_call(("a", "m"), ("b", "m")))
    assert len(a.requests) == 1
    assert b.requests == []


async def test_auth_error_is_not_retried_but_falls_back() -> None:
    a = FakeProvider(name="a", script=[AuthenticationError("bad key", status=401)])
    b = FakeProvider(name="b", script=["b"])
    runtime = Runtime({"a": a, "b": b})
    result = await runtime.complete(make_call(("a", "m"), ("b", "m"), max_retries=3))
    assert len(a.requests) == 1
    assert result.provider == "b"


async def test_attempt_timeout_is_a_retryable_provider_timeout() -> None:
    slow = FakeProvider(name="a", script=[Reply(text="late", delay_s=5), "fast"])
    runtime = Runtime({"a": slow})
    result = await runtime.complete(make_call(("a", "m"), attempt_timeout_s=0.02,
                                              backoff_base_s=0, backoff_max_s=0))
    assert result.text == "fast"
    assert result.attempts[0].error_kind == "timeout"
    assert result.attempts[0].latency_s < 1


async def test_deadline_bounds_the_whole_call() -> None:
    slow = FakeProvider(name="a", script=[Reply(text="never", delay_s=5)])
    runtime = Runtime({"a": slow})
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(DeadlineExceeded) as info:
        await runtime.complete(make_call(("a", "m"), deadline_s=0.1, attempt_timeout_s=0.04,
                                         backoff_base_s=0, backoff_max_s=0, max_retries=10))
    elapsed = loop.time() - start
    assert 0.1 <= elapsed < 0.15
    assert all(isinstance(e, ProviderTimeout) for e in info.value.attempts)


async def test_hedge_returns_the_faster_attempt_and_cancels_the_other() -> None:
    cancelled = asyncio.Event()

    class Slow(FakeProvider):
        async def complete(self, request: CallRequest):  # type: ignore[no-untyped-def]
            if not self.requests:
                self.requests.append(request)
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            return await super().complete(request)

    provider = Slow(name="a", script=["hedged answer"])
    runtime = Runtime({"a": provider})
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await runtime.complete(make_call(("a", "m"), hedge_after_s=0.05))
    assert loop.time() - start < 1
    assert result.text == "hedged answer"
    assert cancelled.is_set()
    kinds = {(a.kind, a.status) for a in result.attempts}
    assert kinds == {("primary", "cancelled"), ("hedge", "ok")}


@pytest.mark.parametrize("beside", [False, True])  # fails before the hedge starts, or beside it
async def test_a_failed_hedged_call_leaves_nothing_for_the_collector(
        beside: bool, errors_in_cycles: Any) -> None:
    # the attempts' futures hold their failures, whose tracebacks hold the hedging frame: while
    # that frame held the futures, each failed hedged call was a cycle for the collector
    waiting: list[asyncio.Event] = []

    class Failing(FakeProvider):
        async def complete(self, request: CallRequest):  # type: ignore[no-untyped-def]
            self.requests.append(request)
            if beside:
                if not waiting:  # the first attempt: it fails once the hedge has started
                    waiting.append(asyncio.Event())
                    await waiting[0].wait()
                else:  # the hedge
                    waiting.pop().set()
            raise ProviderUnavailable("down")

    provider = Failing(name="a")
    runtime = Runtime({"a": provider})

    async def call(n: int) -> None:
        with contextlib.suppress(ProviderUnavailable, AllAttemptsFailed):
            await runtime.complete(make_call(("a", "m"), n=n, hedge_after_s=0.01,
                                             max_retries=0, breaker_failures=100))

    await call(0)
    with errors_in_cycles() as left:
        for n in range(1, 4):
            await call(n)
    assert left == []
    assert len(provider.requests) == (8 if beside else 4)  # each call hedged, or not


async def test_hedge_is_not_started_when_the_first_attempt_is_fast() -> None:
    provider = FakeProvider(name="a", script=["quick"])
    runtime = Runtime({"a": provider})
    result = await runtime.complete(make_call(("a", "m"), hedge_after_s=1))
    assert len(provider.requests) == 1
    assert [a.kind for a in result.attempts] == ["primary"]


async def test_concurrency_limit_per_provider() -> None:
    running = 0
    peak = 0

    class Counting(FakeProvider):
        async def complete(self, request: CallRequest):  # type: ignore[no-untyped-def]
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.005)
            running -= 1
            return await super().complete(request)

    runtime = Runtime({"a": Counting(name="a")}, concurrency={"a": 3})
    await asyncio.gather(*(runtime.complete(make_call(("a", "m"), n=i)) for i in range(20)))
    assert peak == 3


async def test_served_model_is_kept_on_the_result() -> None:
    fake = FakeProvider(name="a", model="gpt-4o-2024-08-06")
    result = await Runtime({"a": fake}).complete(make_call(("a", "gpt-4o")))
    assert result.model_requested == "gpt-4o"
    assert result.model_served == "gpt-4o-2024-08-06"
