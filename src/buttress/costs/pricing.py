"""The price of a call, from the maintained ``genai-prices`` table plus local overrides.

Usage conventions (the OpenAI ones; adapters normalise to them): ``prompt_tokens`` includes
``cached_tokens`` and ``completion_tokens`` includes ``reasoning_tokens``. genai-prices uses the
same nesting (``cache_read_tokens`` is part of ``input_tokens``, ``output_reasoning_tokens`` part
of ``output_tokens``), so cached tokens are billed at the cache-read rate and reasoning tokens at
the output rate unless the table gives them a rate of their own.

Money is computed in ``Decimal`` and handed out as float USD (what the ledger stores).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.types import Usage, Value

if TYPE_CHECKING:
    import genai_prices
    from genai_prices.types import PriceCalculation

#: buttress provider types whose genai-prices id differs; anything else is passed through as is.
GENAI_PROVIDER_IDS: Mapping[str, str] = {
    "gemini": "google",
    "vertex": "google",
    "vertexai": "google",
    "xai": "x-ai",
    "grok": "x-ai",
    "bedrock": "aws",
    "azure_openai": "azure",
    "mistralai": "mistral",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}

#: providers that run on your own hardware: free unless an override says otherwise.
DEFAULT_LOCAL_PROVIDERS: frozenset[str] = frozenset({"llamacpp", "local", "ollama"})

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
# Bound on cached (provider, model) entries, so arbitrary model names from a gateway cannot grow it.
_CACHE_LIMIT = 4096

CostSource = Literal["genai-prices", "override", "local"]


class Cost(Value):
    """What one call cost, in USD. ``input_usd + output_usd`` may be less than ``total_usd`` when
    the table charges a per-request fee."""

    input_usd: float
    output_usd: float
    total_usd: float
    source: CostSource
    #: the genai-prices model id the name matched, or the override key
    priced_as: str = ""


class Unpriced(Value):
    """Why a call could not be priced (unknown provider or model, or unusable usage numbers)."""

    provider: str
    model: str
    reason: str


class ModelPrice(Value):
    """A local price for a custom or self-hosted model, USD per million tokens.

    Cached tokens default to the input rate and reasoning tokens to the output rate.
    """

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_per_mtok: Decimal | None = Field(default=None, ge=0)
    reasoning_per_mtok: Decimal | None = Field(default=None, ge=0)
    per_request: Decimal = Field(default=_ZERO, ge=0)

    @model_validator(mode="after")
    def _finite(self) -> ModelPrice:
        for name in ("input_per_mtok", "output_per_mtok", "cached_per_mtok",
                     "reasoning_per_mtok", "per_request"):
            value = getattr(self, name)
            if value is not None and not value.is_finite():
                raise ValueError(f"{name} must be a finite number")
        return self


@dataclass(frozen=True, slots=True)
class _Rates:
    """Linear USD-per-token rates: the fast path, priced without calling into genai-prices."""

    source: CostSource
    priced_as: str
    input: Decimal
    cached: Decimal
    output: Decimal
    reasoning: Decimal
    per_request: Decimal
    # Table prices with start dates hold only between two dates (wall-clock epoch seconds).
    valid_from: float = -math.inf
    valid_until: float = math.inf

    @property
    def dated(self) -> bool:
        return self.valid_from != -math.inf or self.valid_until != math.inf

    def cost(self, usage: Usage) -> Cost:
        input_usd = ((usage.prompt_tokens - usage.cached_tokens) * self.input
                     + usage.cached_tokens * self.cached)
        output_usd = ((usage.completion_tokens - usage.reasoning_tokens) * self.output
                      + usage.reasoning_tokens * self.reasoning)
        return Cost(input_usd=float(input_usd), output_usd=float(output_usd),
                    total_usd=float(input_usd + output_usd + self.per_request),
                    source=self.source, priced_as=self.priced_as)

    def max_cost(self, prompt_tokens: int, max_tokens: int) -> float:
        worst_in = max(self.input, self.cached)
        worst_out = max(self.output, self.reasoning)
        return float(prompt_tokens * worst_in + max_tokens * worst_out + self.per_request)


@dataclass(frozen=True, slots=True)
class _Table:
    """A table model whose price is not linear (tiers, time-of-day prices): each call is priced
    by genai-prices itself, which is slower (tens of µs) but exact."""

    provider_id: str
    model: str
    priced_as: str


_Entry = _Rates | _Table | Unpriced


class Pricer:
    """Prices calls. Lookups are cached per (provider, model); linear table prices are turned
    into per-token rates once, so pricing a call is a few Decimal multiplications.

    ``overrides`` are keyed ``"provider/model"`` or ``"model"`` (checked in that order) and win
    over the table. Models of ``local_providers`` cost 0 unless overridden; their tokens are
    still counted by the ledger. ``provider_ids`` adds or replaces entries of
    ``GENAI_PROVIDER_IDS``.
    """

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None,
                 local_providers: Set[str] = DEFAULT_LOCAL_PROVIDERS, *,
                 provider_ids: Mapping[str, str] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._overrides = {key: _override_rates(key, price)
                           for key, price in (overrides or {}).items()}
        self._local = frozenset(p.lower() for p in local_providers)
        self._provider_ids = {**GENAI_PROVIDER_IDS, **(provider_ids or {})}
        self._clock = clock
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def quote(self, provider: str, model: str, usage: Usage) -> Cost | Unpriced:
        """The cost of a call, or why it has none."""
        entry = self._entry(provider, model)
        if isinstance(entry, Unpriced):
            return entry
        if usage.cached_tokens > usage.prompt_tokens or \
                usage.reasoning_tokens > usage.completion_tokens:
            return Unpriced(provider=provider, model=model, reason=(
                f"usage is inconsistent: cached_tokens ({usage.cached_tokens}) must not exceed "
                f"prompt_tokens ({usage.prompt_tokens}) and reasoning_tokens "
                f"({usage.reasoning_tokens}) must not exceed completion_tokens "
                f"({usage.completion_tokens})"))
        if isinstance(entry, _Rates):
            return entry.cost(usage)
        try:
            calc = self._calc(entry, _table_usage(usage.prompt_tokens, usage.cached_tokens,
                                                  usage.completion_tokens,
                                                  usage.reasoning_tokens))
        except (LookupError, ValueError) as exc:
            return Unpriced(provider=provider, model=model, reason=f"genai-prices: {exc}")
        return Cost(input_usd=float(calc.input_price), output_usd=float(calc.output_price),
                    total_usd=float(calc.total_price), source="genai-prices",
                    priced_as=entry.priced_as)

    def price(self, provider: str, model: str, usage: Usage) -> Cost | None:
        """The cost of a call; ``None`` (never 0) when it cannot be priced: see ``quote``."""
        result = self.quote(provider, model, usage)
        return result if isinstance(result, Cost) else None

    def unpriced_reason(self, provider: str, model: str) -> str | None:
        """Why calls to this model cannot be priced, or ``None`` when they can."""
        entry = self._entry(provider, model)
        return entry.reason if isinstance(entry, Unpriced) else None

    def max_cost(self, provider: str, model: str, prompt_tokens_estimate: int,
                 max_tokens: int) -> float:
        """The most a request can cost, to reserve against budgets before dispatch.

        Prompt tokens are taken at the dearer of the input and cache-read rates, output tokens
        at the dearer of the output and reasoning rates. An unpriced model gives 0.0: its calls
        will record no cost either (check ``unpriced_reason`` to refuse such models instead).
        """
        prompt_tokens_estimate = max(0, prompt_tokens_estimate)
        max_tokens = max(0, max_tokens)
        entry = self._entry(provider, model)
        if isinstance(entry, Unpriced):
            return 0.0
        if isinstance(entry, _Rates):
            return entry.max_cost(prompt_tokens_estimate, max_tokens)
        try:
            calc = self._calc(entry, _table_usage(prompt_tokens_estimate, 0, max_tokens, 0))
        except (LookupError, ValueError):
            return 0.0
        return float(calc.total_price)

    def clear_cache(self) -> None:
        """Forget cached lookups (after genai-prices' table was updated)."""
        with self._lock:
            self._cache.clear()

    def _entry(self, provider: str, model: str) -> _Entry:
        key = (provider, model)
        entry = self._cache.get(key)
        if entry is None or (isinstance(entry, _Rates) and entry.dated
                             and not entry.valid_from <= self._clock.wall() < entry.valid_until):
            entry = self._lookup(provider, model)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = entry
        return entry

    def _lookup(self, provider: str, model: str) -> _Entry:
        override = self._overrides.get(f"{provider}/{model}") or self._overrides.get(model)
        if override is not None:
            return override
        if provider.lower() in self._local:
            return _Rates("local", model, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO)
        provider_id = self._provider_ids.get(provider.lower(), provider)
        try:
            return self._table_entry(provider_id, model)
        except (LookupError, ValueError) as exc:
            return Unpriced(provider=provider, model=model, reason=f"genai-prices: {exc}")

    def _table_entry(self, provider_id: str, model: str) -> _Rates | _Table:
        from genai_prices.types import StartDateConstraint, TieredPrices

        table = _Table(provider_id, model, "")
        wall = self._clock.wall()
        base = self._calc(table, _table_usage(0, 0, 0, 0))
        info = base.model
        table = _Table(provider_id, model, info.id)
        valid_from, valid_until = -math.inf, math.inf
        if isinstance(info.prices, list):
            # Prices that change on given dates are flat between those dates; time-of-day
            # prices are not, and stay on the slow path.
            if any(c.constraint is not None and not isinstance(c.constraint, StartDateConstraint)
                   for c in info.prices):
                return table
            for conditional in info.prices:
                constraint = conditional.constraint
                if not isinstance(constraint, StartDateConstraint):
                    continue
                start = datetime.combine(constraint.start_date, time(), UTC).timestamp()
                if start <= wall:
                    valid_from = max(valid_from, start)
                else:
                    valid_until = min(valid_until, start)
        if any(isinstance(v, TieredPrices) for v in vars(base.model_price).values()):
            return table
        # A flat price is linear in each token kind: probe one million of each through
        # genai-prices itself, so the table's own rules (what nests in what) decide the rates.
        fee = base.total_price

        def rate(prompt: int, cached: int, completion: int, reasoning: int) -> Decimal:
            calc = self._calc(table, _table_usage(prompt, cached, completion, reasoning))
            return (calc.total_price - fee) / _MTOK

        million = 1_000_000
        return _Rates("genai-prices", info.id,
                      input=rate(million, 0, 0, 0), cached=rate(million, million, 0, 0),
                      output=rate(0, 0, million, 0), reasoning=rate(0, 0, million, million),
                      per_request=fee, valid_from=valid_from, valid_until=valid_until)

    def _calc(self, entry: _Table, usage: genai_prices.Usage) -> PriceCalculation:
        from genai_prices import calc_price

        when = datetime.fromtimestamp(self._clock.wall(), UTC)
        return calc_price(usage, entry.model, provider_id=entry.provider_id,
                          genai_request_timestamp=when)


def _table_usage(prompt: int, cached: int, completion: int, reasoning: int) -> genai_prices.Usage:
    from genai_prices import Usage as TableUsage

    return TableUsage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion,
                      output_reasoning_tokens=reasoning)


def _override_rates(key: str, price: ModelPrice) -> _Rates:
    cached = price.input_per_mtok if price.cached_per_mtok is None else price.cached_per_mtok
    reasoning = (price.output_per_mtok if price.reasoning_per_mtok is None
                 else price.reasoning_per_mtok)
    return _Rates("override", key, input=price.input_per_mtok / _MTOK, cached=cached / _MTOK,
                  output=price.output_per_mtok / _MTOK, reasoning=reasoning / _MTOK,
                  per_request=price.per_request)
