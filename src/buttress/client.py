"""``AsyncClient``: features and models called through the runtime. ``Client`` is its sync twin.

The runtime and its hooks are assembled here, in ``build_runtime``: the one place that says what
wraps a call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import Config, load_config
from buttress.costs.alerts import AlertSink, FanOutAlertSink, LogAlertSink, WebhookAlertSink
from buttress.costs.budgets import BudgetBook, SpendQuery, SpendSource
from buttress.costs.hook import BudgetHook, CallPricing
from buttress.costs.runaway import RunawayDetector
from buttress.errors import ButtressError, ConfigError, OutputValidationError, UsageError
from buttress.ids import new_id
from buttress.jobs.background import Background
from buttress.jobs.queue import Callback
from buttress.jobs.store import Job, JobStore
from buttress.ledger.hook import LedgerHook
from buttress.ledger.metrics import CallMetrics
from buttress.ledger.store import LedgerStore
from buttress.ledger.writer import LedgerWriter
from buttress.providers.base import Provider
from buttress.providers.http import new_http_client
from buttress.providers.registry import build_providers
from buttress.runtime.confidence import ConfidenceSpec
from buttress.runtime.hooks import CallCache, CallHook
from buttress.runtime.policy import Policy
from buttress.runtime.result import CacheMode, Call, CallResult, PriceFn, Target
from buttress.runtime.routing import Routing
from buttress.runtime.runtime import Runtime
from buttress.runtime.streaming import CallStream
from buttress.runtime.structured import OutputContract
from buttress.trusted import trusted
from buttress.types import CallRequest, Message, ResponseFormat, Tool

log = logging.getLogger("buttress")

OutputArg = type[BaseModel] | Mapping[str, Any] | OutputContract
"""A per-call output contract: a pydantic model type, a JSON-schema dict, or a contract."""

_PARAMS = ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice", "logprobs",
           "top_logprobs")


def build_runtime(config: Config, providers: Mapping[str, Provider], *,
                  hooks: Sequence[CallHook] = (), ledger: LedgerWriter | None = None,
                  clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None,
                  price: PriceFn | None = None, alert_sink: AlertSink | None = None,
                  cache: CallCache | None = None) -> tuple[Runtime, CallMetrics]:
    """The runtime for ``config``: providers, their concurrency limits and the call hooks.

    Hook order: budgets (which may refuse a call before dispatch, and watch for runaways), the
    caller's hooks, metrics, then the ledger (which records refused calls too).
    """
    concurrency = {name: p.max_concurrency for name, p in config.providers.items()
                   if p.max_concurrency}
    pricing = CallPricing({name: p.type for name, p in config.providers.items()})
    price = price or pricing.price
    alert_sink = alert_sink or LogAlertSink()
    book = BudgetBook(config.budgets, spend_source=ledger_spend(ledger.store) if ledger else None,
                      clock=clock, alert_sink=alert_sink) if config.budgets else None
    budgets = BudgetHook(book, pricing.max_cost,
                         runaway=RunawayDetector(config.runaway, clock=clock,
                                                 alert_sink=alert_sink))
    metrics = CallMetrics(queue_stats=(lambda: ledger.stats) if ledger is not None else None)
    all_hooks: list[CallHook] = [budgets, *hooks, metrics]
    if ledger is not None:
        all_hooks.append(LedgerHook(ledger, clock=clock))
    runtime = Runtime(providers, concurrency=concurrency, hooks=all_hooks, clock=clock, rng=rng,
                      price=price, cache=cache,
                      contract_support={name: p.contract_support
                                        for name, p in config.providers.items()
                                        if p.contract_support})
    return runtime, metrics


def build_cache(config: Config, project_dir: Path, *, clock: Clock = SYSTEM_CLOCK) -> Any:
    """The ``CacheLayer`` for the features that declare ``cache``, on the ``[cache]`` backend;
    None when no feature caches (nothing is opened or imported then)."""
    from buttress.cache.layer import CacheLayer, CachePolicy

    policies = {name: CachePolicy(ttl_s=f.cache.ttl_s,
                                  semantic_threshold=f.cache.semantic.threshold
                                  if f.cache.semantic is not None else None)
                for name, f in config.features.items() if f.cache is not None}
    if not policies:
        return None
    c = config.cache
    backend: Any
    if c.backend == "memory":
        from buttress.cache.memory import MemoryBackend

        backend = MemoryBackend(max_entries=c.max_entries, clock=clock)
    elif c.backend == "sqlite":
        from buttress.cache.sqlite import SQLiteBackend

        url = c.url or "sqlite:///.buttress/cache.db"
        if not url.startswith("sqlite:///"):
            raise ConfigError("a sqlite cache url looks like sqlite:///PATH", key="cache.url")
        path = Path(url.removeprefix("sqlite:///"))
        backend = SQLiteBackend(path if path.is_absolute() else project_dir / path,
                                namespace=c.namespace, clock=clock)
    else:
        from buttress.cache.redis import RedisBackend

        backend = RedisBackend(c.url or "redis://127.0.0.1:6379/0", namespace=c.namespace)
    return CacheLayer(backend, policies, clock=clock)


def ledger_spend(store: LedgerStore) -> SpendSource:
    """What a budget's scope already spent in a period, read from the ledger off the loop."""

    async def spend(q: SpendQuery) -> float:
        scope = {q.scope: q.target} if q.scope in ("feature", "key", "tag") else {}
        return await asyncio.to_thread(store.spend, q.start.timestamp(), q.end.timestamp(),
                                       **scope)

    return spend


def open_ledger(config: Config, project_dir: Path, env: Mapping[str, str]) -> LedgerWriter:
    """The ledger writer ``config`` describes. Every provider key in ``env`` is scrubbed."""
    from buttress.ledger.open import open_store
    from buttress.ledger.redaction import Redactor

    ledger = config.ledger
    secrets = [env[p.api_key_env] for p in config.providers.values()
               if p.api_key_env and env.get(p.api_key_env)]
    redactor = Redactor(default=ledger.redact, secrets=secrets,
                        features={n: f.redact for n, f in config.features.items() if f.redact})
    spill_dir = Path(ledger.spill_dir)
    return LedgerWriter(open_store(ledger.url, base_dir=project_dir), max_queue=ledger.max_queue,
                        batch_size=ledger.batch_size, flush_interval_s=ledger.flush_interval_s,
                        on_full=ledger.on_full, redactor=redactor,
                        spill_dir=spill_dir if spill_dir.is_absolute() else
                        project_dir / spill_dir)


class AsyncClient:
    """Calls features (prompt + models + policy, declared in config) and models.

    >>> client = AsyncClient.from_config("buttress.toml")        # doctest: +SKIP
    >>> result = await client.call("triage", {"ticket": "..."})   # doctest: +SKIP
    """

    def __init__(self, config: Config, *, project_dir: str | Path = ".",
                 env: Mapping[str, str] | None = None,
                 providers: Mapping[str, Provider] | None = None,
                 http: httpx.AsyncClient | None = None, hooks: Sequence[CallHook] = (),
                 ledger: LedgerWriter | None = None, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, price: PriceFn | None = None,
                 alert_sink: AlertSink | None = None,
                 ids: Callable[[], str] = new_id, cache: CallCache | None = None,
                 jobs: JobStore | None = None, job_workers: int = 4) -> None:
        self.config = config
        self.ledger = ledger
        self.project_dir = Path(project_dir)
        self._owns_http = http is None
        self._owns_store = False  # from_config opens (and so closes) the ledger's store
        self._http = http or new_http_client()
        built = build_providers(config.providers, env or {}, self._http, clock, providers)
        # a cache passed in is the caller's to close; one built from config is ours
        self._owned_cache = None if cache is not None else build_cache(
            config, self.project_dir, clock=clock)
        self.runtime, self.metrics = build_runtime(config, built, hooks=hooks, ledger=ledger,
                                                   clock=clock, rng=rng, price=price,
                                                   alert_sink=alert_sink,
                                                   cache=cache or self._owned_cache)
        self._ids = ids
        # submit(): a store passed in is the caller's; else the ledger's database, on first use
        self.background = Background(self, jobs, workers=job_workers)
        self._prompts: Any = None
        self._rendered: dict[tuple[str, str | None], Any] = {}
        self._targets: dict[tuple[str, ...], tuple[Target, ...]] = {}
        self._contracts: dict[tuple[str, Any], OutputContract | None] = {}
        self._routes: dict[str, Routing | None] = {}

    @classmethod
    def from_config(cls, path: str | Path = "buttress.toml", *,
                    env: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncClient:
        """Load ``path``; provider keys come from ``env`` (default: the process environment).

        The ledger the config names is opened (and closed with the client) unless a ``ledger``
        is passed.
        """
        import os

        path = Path(path)
        config = load_config(path)
        for warning in config.pinning_warnings():
            log.warning("%s: %s", path, warning)
        env = os.environ if env is None else env
        owned_http = owned_ledger = False
        if "alert_sink" not in kwargs and config.alerts.webhook_url_env:
            url = env.get(config.alerts.webhook_url_env)
            if not url:
                raise ConfigError(f"environment variable {config.alerts.webhook_url_env} is "
                                  "not set", source=str(path), key="alerts.webhook_url_env")
            if "http" not in kwargs:
                kwargs["http"], owned_http = new_http_client(), True
            kwargs["alert_sink"] = FanOutAlertSink(LogAlertSink(),
                                                   WebhookAlertSink(url, kwargs["http"]))
        if "ledger" not in kwargs and config.ledger.enabled:
            kwargs["ledger"], owned_ledger = open_ledger(config, path.parent, env), True
        client = cls(config, project_dir=path.parent, env=env, **kwargs)
        client._owns_http = client._owns_http or owned_http
        client._owns_store = owned_ledger
        if owned_ledger and config.ledger.url.startswith(("postgresql://", "postgres://")):
            client.background.dsn = config.ledger.url
        return client

    def record_feedback(self, call_id: str, signal: str, value: float | None = None,
                        comment: str | None = None) -> None:
        """Attach a downstream signal (accepted, edited, retried, rejected, score) to a call."""
        if self.ledger is None:
            raise UsageError("this client has no ledger to record feedback in")
        self.ledger.record_feedback(call_id, signal, value, comment)

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, feature: str, vars: Mapping[str, Any] | None = None, *,
                   messages: Sequence[Message] = (), tags: Sequence[str] = (),
                   user_id: str | None = None, session_id: str | None = None,
                   parent_id: str | None = None, policy: Mapping[str, Any] | None = None,
                   prompt_version: str | None = None, models: Sequence[str] | None = None,
                   cache: CacheMode = "use", output: OutputArg | None = None,
                   confidence: ConfidenceSpec | None = None, raise_on_miss: bool = False,
                   **params: Any) -> CallResult:
        """Call a feature: render its prompt with ``vars`` and run it down its model chain.

        ``prompt_version`` runs another version of the prompt (a content hash or commit prefix,
        or ``label:NAME``); ``models`` replaces the feature's chain of aliases; ``cache`` is
        ``use``, ``bypass`` (neither read nor write) or ``refresh`` (write, do not read).
        ``output`` replaces the feature's output contract; a call with a contract returns the
        validated ``value`` or a typed ``miss`` (raised as ``OutputValidationError`` when
        ``raise_on_miss``).
        """
        result = await self.runtime.complete(self.prepare(
            feature, vars, messages=messages, tags=tags, user_id=user_id, session_id=session_id,
            parent_id=parent_id, policy=policy, prompt_version=prompt_version, models=models,
            cache=cache, output=output, confidence=confidence, **params))
        return _raise_on_miss(result) if raise_on_miss else result

    def stream(self, feature: str, vars: Mapping[str, Any] | None = None, *,
               messages: Sequence[Message] = (), tags: Sequence[str] = (),
               user_id: str | None = None, session_id: str | None = None,
               parent_id: str | None = None, policy: Mapping[str, Any] | None = None,
               prompt_version: str | None = None, models: Sequence[str] | None = None,
               cache: CacheMode = "use", output: OutputArg | None = None,
               **params: Any) -> CallStream:
        """Stream a feature call: ``async with client.stream(...) as s: async for chunk in s``.

        With an output contract the request asks for its shape and ``result`` ends with the
        validated ``value`` or a typed ``miss`` (a stream is never repaired).
        """
        return self.runtime.stream(self.prepare(
            feature, vars, messages=messages, tags=tags, user_id=user_id, session_id=session_id,
            parent_id=parent_id, policy=policy, prompt_version=prompt_version, models=models,
            cache=cache, output=output, **params))

    async def complete(self, model: str, messages: Sequence[Message], *,
                       tools: Sequence[Tool] = (), response_format: ResponseFormat | None = None,
                       tags: Sequence[str] = (), parent_id: str | None = None,
                       policy: Mapping[str, Any] | None = None, cache: CacheMode = "bypass",
                       output: OutputArg | None = None, raise_on_miss: bool = False,
                       **params: Any) -> CallResult:
        """Call a model alias (or ``provider/model``) directly, with the default policy."""
        result = await self.runtime.complete(self.prepare_model(
            model, messages, tools=tools, response_format=response_format, tags=tags,
            parent_id=parent_id, policy=policy, cache=cache, output=output, **params))
        return _raise_on_miss(result) if raise_on_miss else result

    def stream_complete(self, model: str, messages: Sequence[Message], *,
                        tools: Sequence[Tool] = (),
                        response_format: ResponseFormat | None = None,
                        tags: Sequence[str] = (), parent_id: str | None = None,
                        policy: Mapping[str, Any] | None = None, cache: CacheMode = "bypass",
                        output: OutputArg | None = None, **params: Any) -> CallStream:
        """Stream a model alias (or ``provider/model``) directly."""
        return self.runtime.stream(self.prepare_model(
            model, messages, tools=tools, response_format=response_format, tags=tags,
            parent_id=parent_id, policy=policy, cache=cache, output=output, **params))

    async def submit(self, feature: str, vars: Mapping[str, Any] | None = None, *,
                     messages: Sequence[Message] = (), tags: Sequence[str] = (),
                     user_id: str | None = None, session_id: str | None = None,
                     parent_id: str | None = None, policy: Mapping[str, Any] | None = None,
                     prompt_version: str | None = None, models: Sequence[str] | None = None,
                     cache: CacheMode = "use", callback: Callback | None = None,
                     **params: Any) -> str:
        """Run a feature call in the background; returns a job id at once.

        The job is stored (durably, next to the ledger) before it is queued, so it survives a
        restart: a later client's ``resume()`` runs what was left. ``callback(job_id, result,
        error)`` is called when it ends; or read it with ``job(job_id)``. ``vars`` and
        ``params`` must be JSON data.
        """
        return await self.background.submit(
            feature, vars, callback=callback, messages=messages, tags=list(tags),
            user_id=user_id, session_id=session_id, parent_id=parent_id,
            policy=dict(policy) if policy else None, prompt_version=prompt_version,
            models=list(models) if models else None, cache=cache, **params)

    async def job(self, job_id: str, *, wait: bool = False) -> Job:
        """A background call's status and, once done, the ledger's record of it (``wait``: until
        a job queued in this process has ended)."""
        return await self.background.job(job_id, wait=wait)

    async def resume(self) -> list[str]:
        """Queue the background calls a stopped client left unfinished; returns their ids."""
        return await self.background.resume()

    async def aclose(self) -> None:
        """Close providers, the HTTP pool and the ledger (flushing every queued record)."""
        await self.background.aclose()  # unfinished jobs stay stored for a later resume()
        for provider in self.runtime.providers.values():
            await provider.aclose()
        if self._owns_http:
            await self._http.aclose()
        if self._owned_cache is not None:
            await self._owned_cache.aclose()
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
            if self._owns_store:
                self.ledger.store.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # -- building calls ------------------------------------------------------------------------

    def targets(self, aliases: Sequence[str]) -> tuple[Target, ...]:
        """The chain of targets ``aliases`` name (aliases or ``provider/model``), cached:
        chains repeat on every call, and a gateway's are client-chosen, so the cache is
        bounded."""
        key = tuple(aliases)
        cached = self._targets.get(key)
        if cached is None:
            cached = self._resolve_targets(key)
            if len(self._targets) < 1024:
                self._targets[key] = cached
        return cached

    def _resolve_targets(self, aliases: Sequence[str]) -> tuple[Target, ...]:
        out = []
        for alias in aliases:
            model = self.config.models.get(alias)
            if model is not None:
                out.append(Target(provider=model.provider, model=model.model, alias=alias,
                                  expected_latency_s=model.expected_latency_s))
                continue
            provider, sep, name = alias.partition("/")
            if sep and provider in self.config.providers:
                out.append(Target(provider=provider, model=name, alias=alias))
                continue
            raise UsageError(f"unknown model {alias!r}: not an alias in [models] nor "
                             f"PROVIDER/MODEL with a configured provider")
        return tuple(out)

    def load_prompts(self) -> None:
        """Resolve every feature's prompt and its git commit now (blocking I/O: a server does
        this at start-up, in a thread); calls then find them cached. A prompt that cannot load
        is logged and left for its calls to report, so one bad file stops no other feature."""
        for name, feature in self.config.features.items():
            if feature.prompt:
                try:
                    _ = self.prompt(feature.prompt).git_commit
                except ButtressError as exc:
                    log.warning("feature %s: %s", name, exc)

    def prompt(self, name: str, version: str | None = None) -> Any:
        """The prompt a feature runs: this environment's (labels honoured), or ``version``."""
        if self._prompts is None:
            from buttress.prompts import PromptStore

            self._prompts = PromptStore(self.project_dir / "prompts")
        key = (name, version)
        prompt = self._rendered.get(key)
        if prompt is None:
            prompt = (self._prompts.get(name, version) if version is not None else
                      self._prompts.resolve(name, self.config.environment))
            self._rendered[key] = prompt
        return prompt

    def prepare(self, feature: str, vars: Mapping[str, Any] | None = None, *,
                messages: Sequence[Message] = (), tags: Sequence[str] = (),
                user_id: str | None = None, session_id: str | None = None,
                parent_id: str | None = None, key_id: str | None = None,
                policy: Mapping[str, Any] | None = None, prompt_version: str | None = None,
                models: Sequence[str] | None = None, cache: CacheMode = "use",
                output: OutputArg | None = None, confidence: ConfidenceSpec | None = None,
                **params: Any) -> Call:
        """The ``Call`` a feature call would run (for ``runtime.complete``/``stream``).

        Parameters merge prompt < feature < call; policies merge defaults < feature < call.
        The output contract is ``output``, else the feature's ``output``, else its prompt's.
        """
        spec = self.config.features.get(feature)
        if spec is None:
            raise UsageError(f"unknown feature {feature!r}; configured: "
                             f"{', '.join(sorted(self.config.features)) or 'none'}")
        merged: dict[str, Any] = {}
        prompt_name = prompt_version_used = prompt_commit = None
        rendered: tuple[Message, ...] = ()
        prompt = None
        if spec.prompt:
            prompt = self.prompt(spec.prompt, prompt_version)
            prompt_name, prompt_version_used = prompt.name, prompt.version
            prompt_commit = prompt.git_commit  # looked up once per prompt, then cached
            rendered = prompt.render(vars or {})
            p = prompt.params
            merged.update({k: v for k, v in p.model_dump(exclude={"extra"}).items()
                           if v not in (None, ())})
            if p.extra:
                merged["extra"] = dict(p.extra)
        elif vars or prompt_version:
            raise UsageError(f"feature {feature!r} has no prompt, so vars and prompt_version "
                             "cannot be used")
        merged.update(spec.params)
        merged.update(params)
        all_messages = rendered + tuple(messages)
        if not all_messages:
            raise UsageError(f"feature {feature!r} has no prompt: pass messages")
        request = _request(all_messages, merged)
        call_policy = self.config.feature_policy(feature).merged(dict(policy or {}))
        return self._call(request, self.targets(models or spec.models), call_policy,
                          feature=feature, prompt_name=prompt_name,
                          prompt_version=prompt_version_used, prompt_commit=prompt_commit,
                          tags=tuple(tags), user_id=user_id, session_id=session_id,
                          parent_id=parent_id, key_id=key_id, cache=cache,
                          output=self._contract(feature, prompt, output),
                          confidence=confidence or spec.confidence,
                          routing=self._routing(feature))

    def _contract(self, feature: str, prompt: Any, output: OutputArg | None
                  ) -> OutputContract | None:
        """The feature's output contract, resolved once per prompt version (or per model
        type passed per call)."""
        spec = self.config.features[feature]
        if isinstance(output, OutputContract):
            return output
        key = (feature, output if output is not None else
               (prompt.version if prompt is not None else None))
        if not isinstance(key[1], Mapping) and key in self._contracts:
            return self._contracts[key]
        options: dict[str, Any] = {"max_repairs": spec.max_repairs, "mode": spec.output_mode}
        contract: OutputContract | None = None
        if output is not None:
            contract = OutputContract.of(output, name=feature, **options)
        else:
            ref = spec.output or (prompt.output if prompt is not None else None)
            if ref is not None:
                from buttress.prompts import resolve_output

                source = str(prompt.path) if spec.output is None and prompt is not None else \
                    f"features.{feature}"
                try:
                    contract = OutputContract.of(
                        resolve_output(ref, self.project_dir, source=source),
                        name=prompt.name if prompt is not None else feature, **options)
                except UsageError as exc:
                    raise ConfigError(str(exc), source=source, key="output") from None
        if not isinstance(key[1], Mapping):
            self._contracts[key] = contract
        return contract

    def _routing(self, feature: str) -> Routing | None:
        if feature not in self._routes:
            spec = self.config.features[feature]
            esc = spec.escalate
            self._routes[feature] = None if esc is None and spec.latency_budget_s is None else \
                Routing(on_invalid=esc.on_invalid if esc is not None else True,
                        min_confidence=esc.min_confidence if esc is not None else None,
                        latency_budget_s=spec.latency_budget_s)
        return self._routes[feature]

    def prepare_model(self, model: str, messages: Sequence[Message], *,
                      tools: Sequence[Tool] = (), response_format: ResponseFormat | None = None,
                      tags: Sequence[str] = (), user_id: str | None = None,
                      session_id: str | None = None, parent_id: str | None = None,
                      key_id: str | None = None, policy: Mapping[str, Any] | None = None,
                      cache: CacheMode = "bypass", output: OutputArg | None = None,
                      **params: Any) -> Call:
        """The ``Call`` a direct model call would run."""
        merged = dict(params)
        if tools:
            merged["tools"] = tuple(tools)
        if response_format is not None:
            merged["response_format"] = response_format
        request = _request(tuple(messages), merged)
        return self._call(request, self.targets([model]),
                          self.config.policy.merged(dict(policy or {})), tags=tuple(tags),
                          user_id=user_id, session_id=session_id, parent_id=parent_id,
                          key_id=key_id, cache=cache,
                          output=None if output is None else OutputContract.of(output))

    def prepare_request(self, model: str, request: CallRequest, *, tags: tuple[str, ...] = (),
                        user_id: str | None = None, session_id: str | None = None,
                        key_id: str | None = None, cache: CacheMode = "bypass") -> Call:
        """The ``Call`` for a request that is already built and checked field by field (the
        gateway's: its wire parser checks every field), which is not validated again."""
        return self._call(request, self.targets([model]), self.config.policy, checked=True,
                          tags=tags, user_id=user_id, session_id=session_id, key_id=key_id,
                          cache=cache)

    def _call(self, request: CallRequest, targets: tuple[Target, ...], policy: Policy, *,
              checked: bool = False, **fields: Any) -> Call:
        call_id = self._ids()
        values = {"request": request, "targets": targets, "policy": policy, "call_id": call_id,
                  "trace_id": call_id, "environment": self.config.environment, **fields}
        return trusted(Call, values) if checked else Call(**values)


def _raise_on_miss(result: CallResult) -> CallResult:
    if result.miss is not None:
        raise OutputValidationError(
            f"call {result.call_id}: no answer satisfied the output contract: "
            f"{'; '.join(result.miss.reasons)}", raw=result.miss.raw or "",
            reasons=result.miss.reasons)
    return result


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
