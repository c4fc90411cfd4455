"""Pricing: table prices come from genai-prices (never hand-written here), overrides and local
models, cached and reasoning tokens, unknown models, and the maximum cost used for budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pydantic
import pytest
from genai_prices.data_snapshot import get_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.costs import Cost, ModelPrice, Pricer, Unpriced
from buttress.types import Usage


class FixedClock:
    def __init__(self, wall: float) -> None:
        self._wall = wall

    def set(self, wall: float) -> None:
        self._wall = wall

    def now(self) -> float:
        return 0.0

    def wall(self) -> float:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        return None


NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC).timestamp()


def table_price(provider_id: str, model: str, usage: Usage, at: float = NOON) -> Decimal:
    calc = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.prompt_tokens, cache_read_tokens=usage.cached_tokens,
                           output_tokens=usage.completion_tokens,
                           output_reasoning_tokens=usage.reasoning_tokens),
        model, provider_id=provider_id, genai_request_timestamp=datetime.fromtimestamp(at, UTC))
    return calc.total_price


def table_rates(provider_id: str, model: str, at: float = NOON) -> genai_prices.types.ModelPrice:
    calc = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id,
                                   genai_request_timestamp=datetime.fromtimestamp(at, UTC))
    return calc.model_price


@pytest.fixture
def pricer() -> Pricer:
    return Pricer(clock=FixedClock(NOON))


USAGE = Usage(prompt_tokens=12_000, completion_tokens=3_000, cached_tokens=4_000,
              reasoning_tokens=1_000)


@pytest.mark.parametrize(("provider", "provider_id", "model"), [
    ("openai", "openai", "gpt-4o-mini"),
    ("anthropic", "anthropic", "claude-sonnet-4-20250514"),
    ("gemini", "google", "gemini-2.5-flash"),
    ("groq", "groq", "llama-3.1-8b-instant"),
    ("openrouter", "openrouter", "openai/gpt-4o"),
    ("openai", "openai", "o3"),
])
def test_price_matches_genai_prices(pricer: Pricer, provider: str, provider_id: str,
                                    model: str) -> None:
    cost = pricer.price(provider, model, USAGE)
    assert cost is not None
    assert cost.source == "genai-prices"
    expected = table_price(provider_id, model, USAGE)
    assert expected > 0
    assert cost.total_usd == pytest.approx(float(expected), rel=1e-12)
    assert cost.input_usd + cost.output_usd == pytest.approx(cost.total_usd, rel=1e-12)


def test_fast_path_agrees_with_the_table_for_every_model(pricer: Pricer) -> None:
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            try:
                expected = table_price(provider.id, model.id, USAGE)
            except (LookupError, ValueError):
                assert pricer.price(provider.id, model.id, USAGE) is None
                continue
            cost = pricer.price(provider.id, model.id, USAGE)
            assert cost is not None, (provider.id, model.id)
            assert cost.total_usd == pytest.approx(float(expected), rel=1e-9, abs=1e-15), \
                (provider.id, model.id)
            checked += 1
    assert checked > 1000


def test_cached_tokens_are_billed_at_the_cache_read_rate(pricer: Pricer) -> None:
    rates = table_rates("openai", "gpt-4o-mini")
    assert rates.cache_read_mtok < rates.input_mtok
    fresh = pricer.price("openai", "gpt-4o-mini", Usage(prompt_tokens=10_000))
    cached = pricer.price("openai", "gpt-4o-mini",
                          Usage(prompt_tokens=10_000, cached_tokens=6_000))
    assert fresh is not None
    assert cached is not None
    saved = (rates.input_mtok - rates.cache_read_mtok) * 6_000 / 1_000_000
    assert fresh.input_usd - cached.input_usd == pytest.approx(float(saved), rel=1e-12)


def test_reasoning_tokens_are_billed_as_output(pricer: Pricer) -> None:
    rates = table_rates("openai", "o3")
    assert rates.output_reasoning_mtok is None  # billed at the output rate
    plain = pricer.price("openai", "o3", Usage(prompt_tokens=100, completion_tokens=5_000))
    thinking = pricer.price("openai", "o3", Usage(prompt_tokens=100, completion_tokens=5_000,
                                                  reasoning_tokens=4_000))
    assert plain is not None
    assert thinking is not None
    assert thinking.output_usd == pytest.approx(plain.output_usd)
    assert thinking.output_usd == pytest.approx(float(rates.output_mtok * 5_000 / 1_000_000))


def test_unknown_model_is_unpriced_not_free(pricer: Pricer) -> None:
    assert pricer.price("openai", "gpt-does-not-exist", USAGE) is None
    quote = pricer.quote("openai", "gpt-does-not-exist", USAGE)
    assert isinstance(quote, Unpriced)
    assert "gpt-does-not-exist" in quote.reason
    reason = pricer.unpriced_reason("vllm-box", "my-model")
    assert reason is not None
    assert "vllm-box" in reason
    assert pricer.unpriced_reason("openai", "gpt-4o-mini") is None
    assert pricer.max_cost("openai", "gpt-does-not-exist", 1000, 1000) == 0.0


def test_local_models_cost_zero_and_overrides_price_custom_models() -> None:
    pricer = Pricer(
        overrides={
            "vllm/my-llama": ModelPrice(input_per_mtok=Decimal("1"), output_per_mtok=Decimal("4"),
                                        cached_per_mtok=Decimal("0.25")),
            "house-model": ModelPrice(input_per_mtok=Decimal("2"), output_per_mtok=Decimal("2")),
            "ollama/paid-local": ModelPrice(input_per_mtok=Decimal("1"),
                                            output_per_mtok=Decimal("1")),
        },
        local_providers={"llamacpp", "ollama"},
    )
    local = pricer.price("llamacpp", "smollm2", USAGE)
    assert local == Cost(input_usd=0, output_usd=0, total_usd=0, source="local",
                         priced_as="smollm2")
    custom = pricer.price("vllm", "my-llama", USAGE)
    assert custom is not None
    assert custom.source == "override"
    assert custom.input_usd == pytest.approx((8_000 * 1 + 4_000 * 0.25) / 1e6)
    assert custom.output_usd == pytest.approx(3_000 * 4 / 1e6)
    by_model = pricer.price("any-provider", "house-model", USAGE)
    assert by_model is not None
    assert by_model.total_usd == pytest.approx(15_000 * 2 / 1e6)
    overridden_local = pricer.price("ollama", "paid-local", USAGE)
    assert overridden_local is not None
    assert overridden_local.source == "override"
    assert overridden_local.total_usd == pytest.approx(15_000 / 1e6)


def test_override_beats_the_table() -> None:
    pricer = Pricer(overrides={"openai/gpt-4o-mini": ModelPrice(
        input_per_mtok=Decimal("0"), output_per_mtok=Decimal("1"))})
    cost = pricer.price("openai", "gpt-4o-mini", Usage(prompt_tokens=10, completion_tokens=1_000))
    assert cost is not None
    assert cost.total_usd == pytest.approx(0.001)


def test_override_prices_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError, match="input_per_mtok"):
        ModelPrice(input_per_mtok=Decimal("-1"), output_per_mtok=Decimal("1"))
    with pytest.raises(pydantic.ValidationError):
        ModelPrice.model_validate({"input_per_mtok": "NaN", "output_per_mtok": "1"})
    parsed = ModelPrice.model_validate({"input_per_mtok": "0.5", "output_per_mtok": 2})
    assert parsed.input_per_mtok == Decimal("0.5")


def test_inconsistent_usage_is_unpriced_with_a_reason(pricer: Pricer) -> None:
    quote = pricer.quote("openai", "gpt-4o-mini", Usage(prompt_tokens=10, cached_tokens=50))
    assert isinstance(quote, Unpriced)
    assert "cached_tokens (50)" in quote.reason


def test_time_dependent_prices_follow_the_injected_clock() -> None:
    peak = datetime(2025, 3, 10, 10, 0, tzinfo=UTC).timestamp()
    off_peak = datetime(2025, 3, 10, 20, 0, tzinfo=UTC).timestamp()
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    at_peak = Pricer(clock=FixedClock(peak)).price("deepseek", "deepseek-chat", usage)
    at_night = Pricer(clock=FixedClock(off_peak)).price("deepseek", "deepseek-chat", usage)
    assert at_peak is not None
    assert at_night is not None
    assert at_peak.total_usd == pytest.approx(float(table_price("deepseek", "deepseek-chat",
                                                                usage, peak)))
    assert at_night.total_usd == pytest.approx(float(table_price("deepseek", "deepseek-chat",
                                                                 usage, off_peak)))
    assert at_peak.total_usd != at_night.total_usd


def test_dated_price_changes_are_picked_up_by_a_warm_cache() -> None:
    clock = FixedClock(NOON)
    pricer = Pricer(clock=clock)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    first_day = table_price("openai", "o3", usage, NOON)
    # find the first day, after NOON, on which the table's price for o3 changes
    day = 86_400.0
    later = next(NOON + n * day for n in range(1, 2_000)
                 if table_price("openai", "o3", usage, NOON + n * day) != first_day)
    before = pricer.price("openai", "o3", usage)
    clock.set(later)
    after = pricer.price("openai", "o3", usage)
    clock.set(NOON)
    again = pricer.price("openai", "o3", usage)
    assert before is not None
    assert after is not None
    assert again is not None
    assert before.total_usd == pytest.approx(float(first_day))
    assert after.total_usd == pytest.approx(float(table_price("openai", "o3", usage, later)))
    assert again.total_usd == before.total_usd


def test_tiered_prices_use_the_table(pricer: Pricer) -> None:
    small = Usage(prompt_tokens=1_000, completion_tokens=100)
    large = Usage(prompt_tokens=300_000, completion_tokens=100)
    for usage in (small, large):
        cost = pricer.price("google", "gemini-2.5-pro", usage)
        assert cost is not None
        assert cost.total_usd == pytest.approx(float(table_price("google", "gemini-2.5-pro",
                                                                 usage)))


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from([("openai", "gpt-4o-mini"), ("openai", "o3"),
                           ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-pro"),
                           ("deepseek", "deepseek-chat")]),
    estimate=st.integers(0, 400_000), max_tokens=st.integers(0, 64_000), data=st.data(),
)
def test_max_cost_bounds_every_usage_within_the_request(
        model: tuple[str, str], estimate: int, max_tokens: int, data: st.DataObject) -> None:
    pricer = Pricer(clock=FixedClock(NOON))
    prompt = data.draw(st.integers(0, estimate))
    completion = data.draw(st.integers(0, max_tokens))
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  cached_tokens=data.draw(st.integers(0, prompt)),
                  reasoning_tokens=data.draw(st.integers(0, completion)))
    cost = pricer.price(*model, usage)
    assert cost is not None
    assert cost.total_usd <= pricer.max_cost(*model, estimate, max_tokens) * (1 + 1e-12)


def test_max_cost_is_the_cost_of_a_full_uncached_request(pricer: Pricer) -> None:
    full = pricer.price("openai", "gpt-4o-mini", Usage(prompt_tokens=2_000, completion_tokens=500))
    assert full is not None
    assert pricer.max_cost("openai", "gpt-4o-mini", 2_000, 500) == pytest.approx(full.total_usd)
