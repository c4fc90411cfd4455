"""Budgets (hard limits before dispatch, soft alerts once per period), alert sinks and runaway
detection, all on an injected clock."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pydantic
import pytest

from buttress.costs import (
    Alert,
    Budget,
    BudgetBook,
    CallScopes,
    LogAlertSink,
    RunawayDetector,
    RunawayPolicy,
    SpendQuery,
    WebhookAlertSink,
)
from buttress.errors import BudgetExceeded, ConfigError, ProviderUnavailable, UsageError


class ManualClock:
    def __init__(self, wall: float) -> None:
        self.t = wall

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at(2025, 1, 31, 23, 0))


@pytest.fixture
def sink() -> Collect:
    return Collect()


def spent(book: BudgetBook, name: str) -> tuple[float, float]:
    status = {s.budget: s for s in book.status()}[name]
    return status.spent_usd, status.reserved_usd


# --- budget definitions ---------------------------------------------------------------------

def test_budget_definitions_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs a target"):
        Budget(scope="feature", limit_usd=1)
    with pytest.raises(pydantic.ValidationError, match="takes no target"):
        Budget(target="x", limit_usd=1)
    with pytest.raises(pydantic.ValidationError, match="not both"):
        Budget(limit_usd=1, soft_fraction=0.5, soft_usd=0.2)
    with pytest.raises(pydantic.ValidationError):
        Budget(limit_usd=-1)
    with pytest.raises(pydantic.ValidationError):
        Budget(limit_usd=1, period="weekly")  # type: ignore[arg-type]
    assert Budget(scope="tag", target="beta", period="monthly", limit_usd=3).name == \
        "tag:beta/monthly"
    assert Budget(limit_usd=10, soft_fraction=0.8).soft_threshold == pytest.approx(8)


def test_duplicate_budget_names_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="global/daily"):
        BudgetBook([Budget(limit_usd=1), Budget(limit_usd=2)])


# --- hard limits ----------------------------------------------------------------------------

def test_applicable_budgets_follow_the_call_scopes(clock: ManualClock) -> None:
    book = BudgetBook([
        Budget(limit_usd=100),
        Budget(scope="feature", target="triage", limit_usd=10),
        Budget(scope="key", target="k1", limit_usd=10),
        Budget(scope="tag", target="beta", limit_usd=10),
        Budget(scope="feature", target="other", limit_usd=10),
    ], clock=clock)
    names = [b.name for b in book.applicable(
        CallScopes(feature="triage", key="k1", tags=("beta", "beta", "nobudget")))]
    assert names == ["global/daily", "feature:triage/daily", "key:k1/daily", "tag:beta/daily"]
    reservation = book.reserve(CallScopes(feature="triage", tags=("beta", "beta")), 1.0)
    assert spent(book, "tag:beta/daily") == (0.0, 1.0)  # a repeated tag is charged once
    assert spent(book, "feature:other/daily") == (0.0, 0.0)
    reservation.settle(0.25)
    assert spent(book, "tag:beta/daily") == (0.25, 0.0)
    assert spent(book, "global/daily") == (0.25, 0.0)
    assert spent(book, "key:k1/daily") == (0.0, 0.0)


def test_reserve_refuses_before_the_limit_and_holds_nothing(clock: ManualClock,
                                                            sink: Collect) -> None:
    book = BudgetBook([Budget(limit_usd=10),
                       Budget(scope="feature", target="triage", limit_usd=1.0)],
                      clock=clock, alert_sink=sink)
    first = book.reserve(CallScopes(feature="triage"), 0.6)
    with pytest.raises(BudgetExceeded) as refused:
        book.reserve(CallScopes(feature="triage"), 0.5)
    assert refused.value.budget == "feature:triage/daily"
    assert refused.value.limit == 1.0
    assert refused.value.spent == pytest.approx(0.6)
    assert refused.value.requested == 0.5
    assert spent(book, "global/daily") == (0.0, pytest.approx(0.6))  # nothing held on refusal
    book.reserve(CallScopes(feature="other"), 0.5).settle(0.5)  # other features are unaffected
    first.settle(0.1)
    book.reserve(CallScopes(feature="triage"), 0.5).settle(0.5)  # room again after settling
    assert spent(book, "feature:triage/daily") == (pytest.approx(0.6), 0.0)
    hard = [a for a in sink.alerts if a.kind == "hard_limit"]
    assert len(hard) == 1
    assert hard[0].budget == "feature:triage/daily"


def test_release_charges_only_the_partial_cost(clock: ManualClock) -> None:
    book = BudgetBook([Budget(limit_usd=1)], clock=clock)
    book.reserve(CallScopes(), 0.5).release()
    book.reserve(CallScopes(), 0.5).release(0.125)
    book.reserve(CallScopes(), 0.5).settle(None)  # unpriced: nothing to charge
    assert spent(book, "global/daily") == (0.125, 0.0)


def test_a_reservation_finishes_once(clock: ManualClock) -> None:
    book = BudgetBook([Budget(limit_usd=1)], clock=clock)
    reservation = book.reserve(CallScopes(), 0.5)
    reservation.settle(0.2)
    with pytest.raises(UsageError, match="already"):
        reservation.release()
    assert spent(book, "global/daily") == (pytest.approx(0.2), 0.0)


def test_bad_amounts_are_usage_errors_that_leak_no_reservation(clock: ManualClock) -> None:
    book = BudgetBook([Budget(limit_usd=1)], clock=clock)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="max_cost"):
            book.reserve(CallScopes(), bad)
    reservation = book.reserve(CallScopes(), 0.5)
    with pytest.raises(UsageError, match="actual_cost"):
        reservation.settle(float("nan"))
    assert spent(book, "global/daily") == (0.0, 0.0)


async def test_200_concurrent_calls_never_overspend_by_more_than_one_max_cost(
        clock: ManualClock) -> None:
    rng = random.Random(20250131)
    max_cost = 0.02
    limit = 0.7
    book = BudgetBook([Budget(limit_usd=5),
                       Budget(scope="feature", target="triage", limit_usd=limit)],
                      clock=clock, alert_sink=Collect())

    async def fake_provider() -> float:
        for _ in range(rng.randint(1, 6)):
            await asyncio.sleep(0)
        if rng.random() < 0.1:
            raise ProviderUnavailable("down", provider="fake", model="m")
        return rng.uniform(0, max_cost)

    async def call() -> float | None:
        for _ in range(rng.randint(0, 8)):  # arrive at different times
            await asyncio.sleep(0)
        reservation = book.reserve(CallScopes(feature="triage"), max_cost)
        try:
            actual = await fake_provider()
        except ProviderUnavailable:
            reservation.release(0.0)
            return 0.0
        reservation.settle(actual)
        return actual

    results = await asyncio.gather(*(call() for _ in range(200)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    charged = [r for r in results if isinstance(r, float)]
    assert len(refused) + len(charged) == 200  # nothing else went wrong
    assert refused, "the budget must have refused the calls beyond it"
    assert len(charged) > limit / max_cost  # settled calls freed room for later ones
    feature_spent, feature_reserved = spent(book, "feature:triage/daily")
    assert feature_reserved == pytest.approx(0.0, abs=1e-12)
    assert feature_spent == pytest.approx(sum(charged))
    assert feature_spent <= limit + max_cost
    assert feature_spent <= limit + 1e-9  # actual <= reserved maximum, so no overspend at all
    assert spent(book, "global/daily")[0] == pytest.approx(feature_spent)


def test_threads_share_one_book_safely(clock: ManualClock) -> None:
    limit, max_cost = 3.0, 0.01
    book = BudgetBook([Budget(limit_usd=limit)], clock=clock)
    charged: list[float] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            try:
                reservation = book.reserve(CallScopes(feature="f"), max_cost)
            except BudgetExceeded:
                continue
            actual = rng.uniform(0, max_cost)
            reservation.settle(actual)
            with lock:
                charged.append(actual)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    total, reserved = spent(book, "global/daily")
    assert reserved == pytest.approx(0.0, abs=1e-9)
    assert total == pytest.approx(sum(charged))
    assert total <= limit + 1e-9
    assert len(charged) < 8 * 400  # the limit did bind


# --- periods and soft thresholds ------------------------------------------------------------

def test_soft_threshold_alerts_once_per_period_across_a_day_boundary(clock: ManualClock,
                                                                     sink: Collect) -> None:
    book = BudgetBook([Budget(scope="feature", target="triage", limit_usd=1.0,
                              soft_fraction=0.5),
                       Budget(name="month", period="monthly", limit_usd=100, soft_usd=0.8)],
                      clock=clock, alert_sink=sink)
    scopes = CallScopes(feature="triage")
    for _ in range(3):  # 23:00 on Jan 31: crosses 0.5 once, and the month's 0.8
        book.reserve(scopes, 0.3).settle(0.3)
    assert [(a.kind, a.budget, a.period) for a in sink.alerts] == [
        ("soft_limit", "feature:triage/daily", "2025-01-31"), ("soft_limit", "month", "2025-01")]
    assert sink.alerts[0].value == pytest.approx(0.6)
    assert sink.alerts[0].threshold == pytest.approx(0.5)
    assert sink.alerts[0].scope == "feature:triage"
    with pytest.raises(BudgetExceeded):
        book.reserve(scopes, 0.2)

    clock.t = at(2025, 2, 1, 0, 30)  # a new UTC day, and a new month
    assert spent(book, "feature:triage/daily") == (0.0, 0.0)
    book.reserve(scopes, 0.3).settle(0.3)
    assert len([a for a in sink.alerts if a.kind == "soft_limit"]) == 2
    book.reserve(scopes, 0.3).settle(0.3)
    book.reserve(scopes, 0.3).settle(0.3)
    soft = [(a.budget, a.period) for a in sink.alerts if a.kind == "soft_limit"]
    assert soft == [("feature:triage/daily", "2025-01-31"), ("month", "2025-01"),
                    ("feature:triage/daily", "2025-02-01"), ("month", "2025-02")]
    assert {s.budget: s.period for s in book.status()} == {"feature:triage/daily": "2025-02-01",
                                                           "month": "2025-02"}


def test_a_call_spanning_midnight_is_charged_to_the_day_it_started(clock: ManualClock) -> None:
    book = BudgetBook([Budget(limit_usd=1.0)], clock=clock)
    reservation = book.reserve(CallScopes(), 0.9)
    clock.t = at(2025, 2, 1, 0, 0)
    book.reserve(CallScopes(), 0.9).settle(0.4)  # the new day does not see yesterday's hold
    reservation.settle(0.5)
    assert spent(book, "global/daily") == (pytest.approx(0.4), 0.0)


async def test_sync_loads_spend_from_the_ledger(clock: ManualClock, sink: Collect) -> None:
    queries: list[SpendQuery] = []

    async def from_ledger(query: SpendQuery) -> float:
        queries.append(query)
        return 0.85 if query.scope == "key" else 0.0

    book = BudgetBook([Budget(scope="key", target="k1", limit_usd=1.0, soft_fraction=0.8),
                       Budget(period="monthly", limit_usd=50)],
                      from_ledger, clock=clock, alert_sink=sink)
    await book.sync()
    assert [(q.budget, q.scope, q.target, q.start, q.end) for q in queries] == [
        ("key:k1/daily", "key", "k1", datetime(2025, 1, 31, tzinfo=UTC),
         datetime(2025, 2, 1, tzinfo=UTC)),
        ("global/monthly", "global", None, datetime(2025, 1, 1, tzinfo=UTC),
         datetime(2025, 2, 1, tzinfo=UTC)),
    ]
    assert [a.kind for a in sink.alerts] == ["soft_limit"]
    with pytest.raises(BudgetExceeded):
        book.reserve(CallScopes(key="k1"), 0.2)
    book.reserve(CallScopes(key="k1"), 0.1).settle(0.1)
    await book.sync()  # the store lags what this process knows: keep the larger
    assert spent(book, "key:k1/daily")[0] == pytest.approx(0.95)
    assert len(sink.alerts) == 2  # plus the hard-limit refusal; soft stayed once


async def test_sync_rejects_a_nonsense_amount(clock: ManualClock) -> None:
    async def broken(query: SpendQuery) -> float:
        return -3.0

    book = BudgetBook([Budget(limit_usd=1)], broken, clock=clock)
    with pytest.raises(UsageError, match="global/daily"):
        await book.sync()


# --- alert sinks ----------------------------------------------------------------------------

ALERT = Alert(kind="soft_limit", scope="feature:triage", period="2025-01-31", value=0.6,
              threshold=0.5, budget="feature:triage/daily")


def test_log_sink_writes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="buttress.costs.alerts"):
        LogAlertSink().send(ALERT)
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "\n" not in line
    assert "soft_limit" in line
    assert "feature:triage/daily" in line


SECRET_URL = "https://hooks.example.com/services/T000/B000/sekrit-token"


async def test_webhook_posts_json_without_blocking_the_caller() -> None:
    received: list[dict[str, object]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookAlertSink(SECRET_URL, client)
        sink.send(ALERT)
        assert received == []  # scheduled, not awaited
        await sink.drain()
    assert received == [ALERT.model_dump(mode="json")]


@pytest.mark.parametrize("failure", ["status", "exception"])
async def test_webhook_failures_are_logged_not_raised(
        failure: str, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if failure == "exception":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookAlertSink(SECRET_URL, client)
        with caplog.at_level(logging.WARNING, logger="buttress.costs.alerts"):
            sink.send(ALERT)
            await sink.drain()
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "hooks.example.com" in message
    assert "sekrit" not in caplog.text
    assert ("503" in message) if failure == "status" else ("ConnectError" in message)


def test_webhook_without_an_event_loop_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with caplog.at_level(logging.WARNING, logger="buttress.costs.alerts"):
        WebhookAlertSink(SECRET_URL, client).send(ALERT)
    assert "dropped" in caplog.text
    assert "sekrit" not in caplog.text


async def test_webhook_from_a_worker_thread_is_delivered_on_its_loop() -> None:
    received: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content)["kind"])
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookAlertSink(SECRET_URL, client, loop=asyncio.get_running_loop())
        await asyncio.to_thread(sink.send, ALERT)
        for _ in range(5):  # let call_soon_threadsafe run, then drain what it scheduled
            await asyncio.sleep(0)
        await sink.drain()
    assert received == ["soft_limit"]


# --- runaway detection ----------------------------------------------------------------------

POLICY = RunawayPolicy(window_minutes=5, baseline_minutes=60, factor=4,
                       min_window_spend_usd=0.5, min_window_calls=20, cooldown_s=600)


def steady(detector: RunawayDetector, clock: ManualClock, minutes: int, calls_per_minute: int,
           cost: float, feature: str = "triage") -> None:
    for _ in range(minutes):
        for _ in range(calls_per_minute):
            detector.observe(feature, cost)
            clock.advance(60 / calls_per_minute)


def test_steady_traffic_does_not_alert(clock: ManualClock, sink: Collect) -> None:
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    rng = random.Random(3)
    for _ in range(180):
        for _ in range(rng.randint(40, 60)):  # ±20% jitter around 50 calls a minute
            detector.observe("triage", rng.uniform(0.01, 0.03))
        clock.advance(60)
    assert sink.alerts == []


def test_a_spend_spike_alerts_once_per_cooldown(clock: ManualClock, sink: Collect) -> None:
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    steady(detector, clock, minutes=70, calls_per_minute=10, cost=0.02)  # $1 per 5 minutes
    assert sink.alerts == []
    for _ in range(30):  # a loop: same call rate, but each call now costs 20x
        detector.observe("triage", 0.4)
        clock.advance(6)
    spend = [a for a in sink.alerts if a.metric == "spend_usd"]
    assert len(spend) == 1
    alert = spend[0]
    assert alert.kind == "runaway"
    assert alert.scope == "feature:triage"
    assert alert.period == "last 5m"
    assert alert.threshold == pytest.approx(4 * 1.0, rel=0.05)
    assert alert.value > alert.threshold
    assert [a for a in sink.alerts if a.metric == "calls"] == []
    steady(detector, clock, minutes=6, calls_per_minute=10, cost=0.4)  # still inside cooldown
    assert len([a for a in sink.alerts if a.metric == "spend_usd"]) == 1
    steady(detector, clock, minutes=5, calls_per_minute=10, cost=0.4)  # the loop goes on
    spend = [a for a in sink.alerts if a.metric == "spend_usd"]
    assert len(spend) == 2
    assert spend[1].at - spend[0].at >= POLICY.cooldown_s


def test_a_call_rate_spike_alerts(clock: ManualClock, sink: Collect) -> None:
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    steady(detector, clock, minutes=65, calls_per_minute=10, cost=0.0)
    assert sink.alerts == []
    for _ in range(300):  # a retry storm: 300 calls in under a minute
        detector.observe("triage", 0.0)
        clock.advance(0.1)
    calls = [a for a in sink.alerts if a.metric == "calls"]
    assert len(calls) == 1
    assert calls[0].threshold == pytest.approx(4 * 50, rel=0.05)
    assert "triage" in calls[0].describe()


def test_the_floor_stops_alerts_on_tiny_numbers(clock: ManualClock, sink: Collect) -> None:
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    steady(detector, clock, minutes=65, calls_per_minute=1, cost=0.0001)
    for _ in range(15):  # 15x the call rate and 100x the spend, but still tiny
        detector.observe("triage", 0.01)
        clock.advance(1)
    assert sink.alerts == []


def test_features_are_watched_separately(clock: ManualClock, sink: Collect) -> None:
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    for _ in range(65 * 10):
        detector.observe("busy", 0.5)
        detector.observe("quiet", 0.001)
        clock.advance(6)
    assert sink.alerts == []
    for _ in range(100):
        detector.observe("quiet", 0.1)
    assert {a.scope for a in sink.alerts} == {"feature:quiet"}


def test_policy_windows_must_be_whole_buckets() -> None:
    with pytest.raises(pydantic.ValidationError, match="whole number"):
        RunawayPolicy(window_minutes=1.5, bucket_s=60)
    assert RunawayPolicy(window_minutes=1.5, bucket_s=30).window_buckets == 3


def test_no_alerts_while_warming_up(sink: Collect) -> None:
    clock = ManualClock(at(2025, 1, 31, 12, 0) + 59)  # first seen one second before a minute ends
    detector = RunawayDetector(POLICY, clock=clock, alert_sink=sink)
    detector.observe("triage", 0.05)
    clock.advance(1)
    steady(detector, clock, minutes=80, calls_per_minute=30, cost=0.05)  # busy from the start
    assert sink.alerts == []
    for _ in range(60):
        detector.observe("triage", 1.0)
    assert [a.metric for a in sink.alerts] == ["spend_usd"]
