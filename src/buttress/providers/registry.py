"""Build providers from config. Built-in types go through the same factory table a plugin would."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import AuthenticationError
from buttress.providers.base import Provider
from buttress.types import CallRequest, Completion

if TYPE_CHECKING:
    from buttress.config import ProviderConfig

Factory = Callable[[str, "ProviderConfig", "str | None", httpx.AsyncClient, Clock], Provider]


def _openai(name: str, cfg: ProviderConfig, key: str | None, http: httpx.AsyncClient,
            clock: Clock) -> Provider:
    from buttress.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(name, base_url=cfg.base_url, api_key=key, http=http,
                                headers=dict(cfg.headers), include_usage=cfg.stream_usage)


def _anthropic(name: str, cfg: ProviderConfig, key: str | None, http: httpx.AsyncClient,
               clock: Clock) -> Provider:
    from buttress.providers.anthropic import AnthropicProvider

    return AnthropicProvider(name, base_url=cfg.base_url, api_key=key, http=http,
                             headers=dict(cfg.headers))


def _gemini(name: str, cfg: ProviderConfig, key: str | None, http: httpx.AsyncClient,
            clock: Clock) -> Provider:
    from buttress.providers.gemini import GeminiProvider

    return GeminiProvider(name, base_url=cfg.base_url, api_key=key, http=http,
                          headers=dict(cfg.headers))


def _local(name: str, cfg: ProviderConfig, key: str | None, http: httpx.AsyncClient,
           clock: Clock) -> Provider:
    from buttress.providers.llamacpp import LlamaCppProvider

    return LlamaCppProvider(name, model_path=cfg.model_path, n_ctx=cfg.n_ctx,
                            n_threads=cfg.n_threads, logits_all=cfg.logits_all)


def _fake(name: str, cfg: ProviderConfig, key: str | None, http: httpx.AsyncClient,
          clock: Clock) -> Provider:
    from buttress.errors import (
        AuthenticationError,
        BadRequest,
        ProviderError,
        ProviderTimeout,
        ProviderUnavailable,
        RateLimited,
    )
    from buttress.testing.fake import FakeProvider, Reply

    errors: dict[str, Callable[[], ProviderError]] = {
        "rate_limit": lambda: RateLimited("fake: rate limited", status=429, retry_after=0.01),
        "server_error": lambda: ProviderUnavailable("fake: server error", status=500),
        "timeout": lambda: ProviderTimeout("fake: timeout"),
        "auth": lambda: AuthenticationError("fake: bad key", status=401),
        "bad_request": lambda: BadRequest("fake: bad request", status=400),
    }
    script = [Reply(text=r.text, delay_s=r.delay_ms / 1000,
                    error=errors[r.error]() if r.error else None) for r in cfg.replies]
    return FakeProvider(name=name, script=script, clock=clock)


FACTORIES: Mapping[str, Factory] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "local": _local,
    "fake": _fake,
}


class MissingCredentials(Provider):
    """Stands in for a provider whose key variable is unset, so the rest still works."""

    def __init__(self, name: str, variable: str) -> None:
        self.name = name
        self.variable = variable

    async def complete(self, request: CallRequest) -> Completion:
        raise AuthenticationError(f"environment variable {self.variable} is not set",
                                  provider=self.name, model=request.model)


def build_provider(name: str, cfg: ProviderConfig, env: Mapping[str, str],
                   http: httpx.AsyncClient, clock: Clock = SYSTEM_CLOCK,
                   engine: Provider | None = None) -> Provider:
    """The provider ``cfg`` describes (or ``engine``, an equal one already built), wrapped in
    chaos when configured."""
    key = None
    if cfg.api_key_env:
        key = env.get(cfg.api_key_env) or None
        if key is None:
            return MissingCredentials(name, cfg.api_key_env)
    provider = engine or FACTORIES[cfg.type](name, cfg, key, http, clock)
    if cfg.chaos is not None:
        from buttress.testing.chaos import ChaosProvider

        provider = ChaosProvider(provider, cfg.chaos, clock=clock)
        provider.name = name  # injected errors name this provider, not a shared engine
    return provider


def build_providers(configs: Mapping[str, ProviderConfig], env: Mapping[str, str],
                    http: httpx.AsyncClient, clock: Clock = SYSTEM_CLOCK,
                    built: Mapping[str, Provider] | None = None) -> dict[str, Provider]:
    """Every configured provider not already in ``built``.

    Local providers that differ only in their chaos settings share one loaded model: the demo's
    flaky "primary" and its healthy fallback must not load the same GGUF twice.
    """
    out = dict(built or {})
    engines: dict[tuple[str | None, int, int | None, bool], Provider] = {}
    for name, cfg in configs.items():
        if name in out:
            continue
        if cfg.type != "local":
            out[name] = build_provider(name, cfg, env, http, clock)
            continue
        key = (cfg.model_path, cfg.n_ctx, cfg.n_threads, cfg.logits_all)
        engine = engines.get(key)
        if engine is None:
            engine = engines[key] = FACTORIES["local"](name, cfg, None, http, clock)
        out[name] = build_provider(name, cfg, env, http, clock, engine=engine)
    return out
