"""``AsyncClient``: features and models called through the runtime. ``Client`` is its sync twin.

The runtime and its hooks are assembled here, in ``build_runtime``: the one place that says what
wraps a call.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import Config, load_config
from buttress.errors import UsageError
from buttress.ids import new_id
from buttress.providers.base import Provider
from buttress.providers.http import new_http_client
from buttress.providers.registry import build_provider
from buttress.runtime.hooks import CallHook
from buttress.runtime.policy import Policy
from buttress.runtime.result import Call, CallResult, Target
from buttress.runtime.runtime import PriceFn, Runtime
from buttress.runtime.streaming import CallStream
from buttress.types import CallRequest, Message, ResponseFormat, Tool

_PARAMS = ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice", "logprobs",
           "top_logprobs")


def build_runtime(config: Config, providers: Mapping[str, Provider], *,
                  hooks: Sequence[CallHook] = (), clock: Clock = SYSTEM_CLOCK,
                  rng: random.Random | None = None, price: PriceFn | None = None) -> Runtime:
    """The runtime for ``config``: providers, their concurrency limits and the call hooks."""
    concurrency = {name: p.max_concurrency for name, p in config.providers.items()
                   if p.max_concurrency}
    return Runtime(providers, concurrency=concurrency, hooks=hooks, clock=clock, rng=rng,
                   price=price)


class AsyncClient:
    """Calls features (prompt + models + policy, declared in config) and models.

    >>> client = AsyncClient.from_config("buttress.toml")        # doctest: +SKIP
    >>> result = await client.call("triage", {"ticket": "..."})   # doctest: +SKIP
    """

    def __init__(self, config: Config, *, project_dir: str | Path = ".",
                 env: Mapping[str, str] | None = None,
                 providers: Mapping[str, Provider] | None = None,
                 http: httpx.AsyncClient | None = None, hooks: Sequence[CallHook] = (),
                 clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None,
                 price: PriceFn | None = None, ids: Callable[[], str] = new_id) -> None:
        self.config = config
        self.project_dir = Path(project_dir)
        self._owns_http = http is None
        self._http = http or new_http_client()
        built = dict(providers or {})
        for name, cfg in config.providers.items():
            if name not in built:
                built[name] = build_provider(name, cfg, env or {}, self._http, clock)
        self.runtime = build_runtime(config, built, hooks=hooks, clock=clock, rng=rng,
                                     price=price)
        self._ids = ids
        self._prompts: Any = None
        self._rendered: dict[str, Any] = {}

    @classmethod
    def from_config(cls, path: str | Path = "buttress.toml", *,
                    env: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncClient:
        """Load ``path``; provider keys come from ``env`` (default: the process environment)."""
        import os

        path = Path(path)
        return cls(load_config(path), project_dir=path.parent,
                   env=os.environ if env is None else env, **kwargs)

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, feature: str, vars: Mapping[str, Any] | None = None, *,
                   messages: Sequence[Message] = (), tags: Sequence[str] = (),
                   user_id: str | None = None, session_id: str | None = None,
                   policy: Mapping[str, Any] | None = None, **params: Any) -> CallResult:
        """Call a feature: render its prompt with ``vars`` and run it down its model chain."""
        return await self.runtime.complete(self._feature_call(
            feature, vars, messages, tags, user_id, session_id, policy, params))

    def stream(self, feature: str, vars: Mapping[str, Any] | None = None, *,
               messages: Sequence[Message] = (), tags: Sequence[str] = (),
               user_id: str | None = None, session_id: str | None = None,
               policy: Mapping[str, Any] | None = None, **params: Any) -> CallStream:
        """Stream a feature call: ``async with client.stream(...) as s: async for chunk in s``."""
        return self.runtime.stream(self._feature_call(
            feature, vars, messages, tags, user_id, session_id, policy, params))

    async def complete(self, model: str, messages: Sequence[Message], *,
                       tools: Sequence[Tool] = (), response_format: ResponseFormat | None = None,
                       tags: Sequence[str] = (), policy: Mapping[str, Any] | None = None,
                       **params: Any) -> CallResult:
        """Call a model alias (or ``provider/model``) directly, with the default policy."""
        return await self.runtime.complete(
            self._model_call(model, messages, tools, response_format, tags, policy, params))

    def stream_complete(self, model: str, messages: Sequence[Message], *,
                        tools: Sequence[Tool] = (),
                        response_format: ResponseFormat | None = None,
                        tags: Sequence[str] = (), policy: Mapping[str, Any] | None = None,
                        **params: Any) -> CallStream:
        """Stream a model alias (or ``provider/model``) directly."""
        return self.runtime.stream(
            self._model_call(model, messages, tools, response_format, tags, policy, params))

    async def aclose(self) -> None:
        for provider in self.runtime.providers.values():
            await provider.aclose()
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # -- building calls ------------------------------------------------------------------------

    def targets(self, aliases: Sequence[str]) -> tuple[Target, ...]:
        out = []
        for alias in aliases:
            model = self.config.models.get(alias)
            if model is not None:
                out.append(Target(provider=model.provider, model=model.model, alias=alias))
                continue
            provider, sep, name = alias.partition("/")
            if sep and provider in self.config.providers:
                out.append(Target(provider=provider, model=name, alias=alias))
                continue
            raise UsageError(f"unknown model {alias!r}: not an alias in [models] nor "
                             f"PROVIDER/MODEL with a configured provider")
        return tuple(out)

    def prompt(self, name: str) -> Any:
        """The prompt a feature runs in this environment (labels are honoured)."""
        if self._prompts is None:
            from buttress.prompts import PromptStore

            self._prompts = PromptStore(self.project_dir / "prompts")
        prompt = self._rendered.get(name)
        if prompt is None:
            prompt = self._prompts.resolve(name, self.config.environment)
            self._rendered[name] = prompt
        return prompt

    def _feature_call(self, feature: str, vars: Mapping[str, Any] | None,
                      messages: Sequence[Message], tags: Sequence[str], user_id: str | None,
                      session_id: str | None, policy: Mapping[str, Any] | None,
                      params: dict[str, Any]) -> Call:
        spec = self.config.features.get(feature)
        if spec is None:
            raise UsageError(f"unknown feature {feature!r}; configured: "
                             f"{', '.join(sorted(self.config.features)) or 'none'}")
        merged: dict[str, Any] = {}
        prompt_name = prompt_version = None
        rendered: tuple[Message, ...] = ()
        if spec.prompt:
            prompt = self.prompt(spec.prompt)
            prompt_name, prompt_version = prompt.name, prompt.version
            rendered = prompt.render(vars or {})
            p = prompt.params
            merged.update({k: v for k, v in p.model_dump(exclude={"extra"}).items()
                           if v not in (None, ())})
            if p.extra:
                merged["extra"] = dict(p.extra)
        elif vars:
            raise UsageError(f"feature {feature!r} has no prompt, so vars cannot be used")
        merged.update(spec.params)
        merged.update(params)
        all_messages = rendered + tuple(messages)
        if not all_messages:
            raise UsageError(f"feature {feature!r} has no prompt: pass messages")
        request = _request(all_messages, merged)
        call_policy = self.config.feature_policy(feature).merged(dict(policy or {}))
        return self._call(request, self.targets(spec.models), call_policy, feature=feature,
                          prompt_name=prompt_name, prompt_version=prompt_version, tags=tags,
                          user_id=user_id, session_id=session_id)

    def _model_call(self, model: str, messages: Sequence[Message], tools: Sequence[Tool],
                    response_format: ResponseFormat | None, tags: Sequence[str],
                    policy: Mapping[str, Any] | None, params: dict[str, Any]) -> Call:
        merged = dict(params)
        if tools:
            merged["tools"] = tuple(tools)
        if response_format is not None:
            merged["response_format"] = response_format
        request = _request(tuple(messages), merged)
        return self._call(request, self.targets([model]),
                          self.config.policy.merged(dict(policy or {})), tags=tags)

    def _call(self, request: CallRequest, targets: tuple[Target, ...], policy: Policy,
              **fields: Any) -> Call:
        call_id = self._ids()
        return Call(request=request, targets=targets, policy=policy, call_id=call_id,
                    trace_id=call_id, environment=self.config.environment,
                    tags=tuple(fields.pop("tags", ())), **fields)


def _request(messages: tuple[Message, ...], params: dict[str, Any]) -> CallRequest:
    known = {k: params.pop(k) for k in (*_PARAMS, "tools", "response_format", "extra")
             if k in params}
    if "stop" in known and isinstance(known["stop"], str):
        known["stop"] = (known["stop"],)
    extra = {**known.pop("extra", {}), **params}  # anything else goes to the provider as is
    return CallRequest(model="", messages=messages, extra=extra, **known)


from buttress.sync import derive_sync_client  # noqa: E402  (derived from the class above)

Client = derive_sync_client(AsyncClient)
"""The synchronous client: every public method of ``AsyncClient``, blocking."""
