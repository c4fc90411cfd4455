"""The gateway's ASGI app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``/health``,
``/metrics``.

``GatewayApp`` answers chat completions itself, as raw ASGI (the hot path: one header scan,
one body read, hand-checked JSON, no per-request logging), and hands every other scope, the
lifespan included, to a small Starlette app.

Routing: ``model`` names a feature or a model alias (or ``provider/model``). A feature runs its
prompt (the request's messages are appended after the prompt's), its chain, policy, output
contract and cache; the body's ``vars`` object (buttress's one extension to the wire format)
holds the prompt's variables. An alias runs the alias with the default policy.
``x-buttress-feature`` selects a feature whatever ``model`` says; if ``model`` is then an alias
it replaces the feature's chain. Other headers: ``x-buttress-tags`` (comma-separated),
``x-buttress-user``, ``x-buttress-session``, ``x-buttress-cache`` (``bypass`` or ``refresh``).

Keys: when any virtual key exists, every request needs one (``Authorization: Bearer sk-bt-...``).
With no keys at all the gateway is open unless ``require_keys`` is set; the server only allows
that on a loopback address (see ``server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson

from buttress.client import AsyncClient
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ButtressError, ConfigError, UsageError
from buttress.gateway.errors import GatewayRefusal, HttpError, http_error
from buttress.gateway.key_budgets import KeyBudgets
from buttress.gateway.keys import KeyRing, KeyStore, VirtualKey
from buttress.gateway.limits import RateLimiter
from buttress.gateway.wire import (
    DONE,
    ChatRequest,
    ChunkWriter,
    WireError,
    completion_body,
    error_body,
    error_event,
    parse_chat_request,
)
from buttress.ids import new_id
from buttress.runtime.hooks import Outcome, run_after
from buttress.runtime.result import CacheMode, Call, CallResult, Target
from buttress.trusted import trusted
from buttress.types import CallRequest, StreamChunk

log = logging.getLogger("buttress.gateway")

Scope = dict[str, Any]
Receive = Any
Send = Any

MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON = (b"content-type", b"application/json")
_CACHE_MODES: dict[bytes, CacheMode] = {b"bypass": "bypass", b"refresh": "refresh",
                                        b"use": "use"}
#: the request headers ``_header`` reads
_META_HEADERS = frozenset({b"x-buttress-feature", b"x-buttress-tags", b"x-buttress-user",
                           b"x-buttress-session", b"x-buttress-cache"})


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


@dataclass(slots=True)
class _Meta:
    """What the ``x-buttress-*`` request headers and the key say about a request."""

    key: VirtualKey | None = None
    feature: str | None = None
    tags: tuple[str, ...] = ()
    user: str | None = None
    session: str | None = None
    cache: CacheMode | None = None


class Gateway:
    """Serves ``client``'s runtime over the OpenAI wire format."""

    def __init__(self, client: AsyncClient, *, keys: KeyRing | None = None,
                 key_store: KeyStore | None = None, key_budgets: KeyBudgets | None = None,
                 limiter: RateLimiter | None = None, require_keys: bool = False,
                 max_body_bytes: int = MAX_BODY_BYTES, clock: Clock = SYSTEM_CLOCK,
                 reload_interval_s: float = 2.0, owns_client: bool = True) -> None:
        self.client = client
        self.config = client.config
        self.runtime = client.runtime
        self.keys = keys or KeyRing()
        self.key_store = key_store
        self.key_budgets = key_budgets
        self.limiter = limiter or RateLimiter(clock)
        self.require_keys = require_keys
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.reload_interval_s = reload_interval_s
        self.owns_client = owns_client
        self._fingerprint: tuple[Any, ...] | None = None
        self._last_reload = float("-inf")
        self._models = self._model_list()
        if key_budgets is not None:
            key_budgets.update(self.keys.keys())

    # -- keys -----------------------------------------------------------------------------------

    async def reload_keys(self, *, force: bool = False) -> None:
        """Re-read the keys if the table changed (another process created or revoked one)."""
        store = self.key_store
        if store is None:
            return
        self._last_reload = self.clock.now()
        fingerprint = await asyncio.to_thread(store.fingerprint)
        if fingerprint == self._fingerprint and not force:
            return
        keys = await asyncio.to_thread(store.list)
        self._fingerprint = fingerprint
        self.keys.replace(keys)
        if self.key_budgets is not None:
            self.key_budgets.update(keys)

    async def _watch_keys(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                await self.reload_keys()
            except Exception:  # a flaky database must not stop the watcher
                log.exception("reloading virtual keys failed")

    async def authenticate(self, authorization: bytes | None) -> VirtualKey | None:
        """The request's key; None when the gateway is open. Raises a 401 refusal."""
        keys = self.keys
        if authorization is not None and (known := keys.verified.get(authorization)) is not None:
            return known
        if keys.empty and not self.require_keys:
            return None
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise GatewayRefusal("missing API key: send 'Authorization: Bearer sk-bt-...'",
                                 status=401, kind="invalid_api_key",
                                 type="invalid_request_error")
        secret = authorization[7:].strip().decode("latin-1")
        key = self.keys.verify(secret)
        if key is None and self.key_store is not None and \
                self.clock.now() - self._last_reload >= 1.0:
            # maybe a key created since the last reload; at most one re-read a second
            await self.reload_keys()
            key = self.keys.verify(secret)
        if key is None:
            raise GatewayRefusal("invalid or revoked API key", status=401,
                                 kind="invalid_api_key", type="invalid_request_error")
        if authorization == b"Bearer " + secret.encode("latin-1"):  # see ``KeyRing.verified``
            keys.verified[authorization] = key
        return key

    # -- routing --------------------------------------------------------------------------------

    def prepare(self, req: ChatRequest, meta: _Meta) -> Call:
        """The runtime ``Call`` for a request, or a refusal (unknown or forbidden model)."""
        config, key = self.config, meta.key
        feature = meta.feature
        if feature is None and req.model in config.features:
            feature = req.model
        if feature is not None:
            if feature not in config.features:
                raise GatewayRefusal(f"unknown feature {feature!r}", status=404,
                                     kind="model_not_found", type="invalid_request_error",
                                     param="x-buttress-feature")
            if key is not None and not key.allows_feature(feature):
                raise _forbidden(f"feature {feature!r}", key)
            models = None
            if req.model != feature and req.model in config.models:
                if key is not None and not key.allows_model(req.model):
                    raise _forbidden(f"model {req.model!r}", key)
                models = (req.model,)
            params = req.params  # the output contract is the client's to apply
            try:
                return self.client.prepare(
                    feature, req.vars, messages=req.messages, tags=meta.tags,
                    user_id=meta.user or req.user, session_id=meta.session,
                    key_id=key.key_id if key else None, models=models,
                    cache=meta.cache or "use", **params)
            except ConfigError as exc:  # e.g. the prompt needs a variable the request lacks
                raise GatewayRefusal(f"feature {feature!r}: {exc} (pass prompt variables as "
                                     "'vars' in the body)", status=400, kind="invalid_vars",
                                     type="invalid_request_error", param="vars") from None
        if req.vars is not None:
            raise GatewayRefusal("'vars' applies only to features", status=400,
                                 kind="invalid_vars", type="invalid_request_error",
                                 param="vars")
        # the wire parser checked every field: the request is built without validating it again
        request = trusted(CallRequest, {"model": "", "messages": req.messages, **req.params})
        try:
            call = self.client.prepare_request(
                req.model, request, tags=meta.tags, user_id=meta.user or req.user,
                session_id=meta.session, key_id=key.key_id if key else None,
                cache=meta.cache or "bypass")
        except UsageError:
            raise GatewayRefusal(
                f"the model {req.model!r} does not exist: not a configured feature, model "
                "alias or provider/model", status=404, kind="model_not_found",
                type="invalid_request_error", param="model") from None
        if key is not None and not key.allows_model(req.model):
            raise _forbidden(f"model {req.model!r}", key)
        return call

    async def record_refusal(self, req: ChatRequest, meta: _Meta, exc: BaseException,
                             call: Call | None = None) -> None:
        """A refusal that reached a model decision is a ledger record like any call."""
        if call is None:
            call_id = new_id()
            call = Call(
                request=CallRequest(model="", messages=req.messages,
                                                    **req.params),
                targets=(Target(provider="", model=req.model, alias=req.model),),
                policy=self.config.policy, call_id=call_id, trace_id=call_id,
                environment=self.config.environment, feature=meta.feature, tags=meta.tags,
                user_id=meta.user or req.user, session_id=meta.session,
                key_id=meta.key.key_id if meta.key else None)
        await run_after(self.runtime.hooks, Outcome(call, None, exc, (), 0.0))

    # -- listing --------------------------------------------------------------------------------

    def _model_list(self) -> list[dict[str, Any]]:
        created = int(time.time())
        out = [{"id": alias, "object": "model", "created": created, "owned_by": m.provider}
               for alias, m in self.config.models.items()]
        out += [{"id": name, "object": "model", "created": created,
                 "owned_by": "buttress-feature"} for name in self.config.features]
        return out

    def models_body(self, key: VirtualKey | None) -> bytes:
        data = self._models
        if key is not None and (key.models or key.features):
            data = [m for m in data if (key.allows_feature(m["id"])
                                        if m["owned_by"] == "buttress-feature"
                                        else key.allows_model(m["id"]))]
        return orjson.dumps({"object": "list", "data": data})


def _forbidden(what: str, key: VirtualKey) -> GatewayRefusal:
    return GatewayRefusal(f"this API key ({key.name}) may not use {what}", status=403,
                          kind="model_not_allowed", type="permission_error", param="model")


# -- HTTP ---------------------------------------------------------------------------------------


def _meta_headers(result: CallResult) -> list[tuple[bytes, bytes]]:
    cost = result.cost_usd
    return [(b"x-buttress-call-id", result.call_id.encode()),
            (b"x-buttress-attempts", str(len(result.attempts)).encode()),
            (b"x-buttress-cache-hit", b"true" if result.cache_hit else b"false"),
            (b"x-buttress-cost-usd", b"unknown" if cost is None else f"{cost:.8f}".encode()),
            (b"x-buttress-model", result.model_served.encode("utf-8", "replace"))]


async def _send(send: Send, status: int, body: bytes,
                headers: list[tuple[bytes, bytes]] | None = None,
                content_type: tuple[bytes, bytes] = _JSON) -> None:
    all_headers = [content_type, (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers += headers
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, err: HttpError,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
    extra = list(headers or ())
    if err.retry_after is not None:
        # whole seconds, rounded up: Retry-After takes no fractions
        extra.append((b"retry-after", str(max(1, -int(-err.retry_after // 1))).encode()))
    await _send(send, err.status, error_body(err.message, err.type, err.code, err.param), extra)


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual request: one message holds it all
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise _too_large(limit)
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


def _too_large(limit: int) -> GatewayRefusal:
    return GatewayRefusal(f"request body larger than {limit} bytes", status=413,
                          kind="request_too_large", type="invalid_request_error")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Gone:
    """Done callback of the disconnect watcher: cancels the streaming task if it is still
    pumping (the watcher also ends, after it, when the response completes)."""

    __slots__ = ("fired", "pumping", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.pumping = True
        self.fired = False

    def __call__(self, watch: asyncio.Future[None]) -> None:
        if self.pumping and not watch.cancelled():
            self.fired = True
            self.task.cancel()


class GatewayApp:
    """The ASGI callable: chat completions here, everything else to Starlette."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.rest = _starlette_app(gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            if scope["method"] == "POST":
                await self.chat(scope, receive, send)
                return
            await _send_error(send, HttpError(405, "use POST for /v1/chat/completions",
                                              "invalid_request_error", "method_not_allowed"))
            return
        await self.rest(scope, receive, send)

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        meta = _Meta()
        # a name sent twice counts as its last value (an SDK sends a dozen headers: one dict
        # and a few lookups, rather than a comparison chain for each)
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        length = headers.get(b"content-length")
        if not _META_HEADERS.isdisjoint(headers):
            try:
                for name, value in scope["headers"]:
                    if name in _META_HEADERS:
                        _header(meta, name, value)
            except GatewayRefusal as exc:
                await _send_error(send, http_error(exc))
                return
        try:
            meta.key = await gw.authenticate(authorization)
            if length is not None and (not length.isdigit() or
                                       int(length) > gw.max_body_bytes):
                raise _too_large(gw.max_body_bytes)
            req = parse_chat_request(await _read_body(receive, gw.max_body_bytes))
        except WireError as exc:
            await _send_error(send, HttpError(400, exc.message, "invalid_request_error",
                                              "invalid_request", exc.param))
            return
        except GatewayRefusal as exc:
            await _send_error(send, http_error(exc))
            return
        except _ClientGone:
            return
        call = None
        try:
            call = gw.prepare(req, meta)
            key = meta.key
            if key is not None and (key.rpm or key.tpm):
                wait = gw.limiter.admit(key.key_id, key.rpm, key.tpm)
                if wait is not None:
                    raise GatewayRefusal(
                        f"rate limit reached for this API key ({key.name}): "
                        f"{key.rpm or '-'} requests and {key.tpm or '-'} tokens a minute; "
                        f"retry in {wait:.1f}s", status=429, kind="key_rate_limited",
                        type="rate_limit_error", retry_after=wait)
        except ButtressError as exc:
            await gw.record_refusal(req, meta, exc, call)
            await _send_error(send, http_error(exc))
            return
        if req.stream:
            await self.stream(call, req, meta, receive, send)
        else:
            await self.complete(call, req, meta, send)

    async def complete(self, call: Call, req: ChatRequest, meta: _Meta, send: Send) -> None:
        gw = self.gateway
        try:
            result = await gw.runtime.complete(call)
        except ButtressError as exc:  # recorded by the runtime's hooks
            await _send_error(send, http_error(exc),
                              [(b"x-buttress-call-id", call.call_id.encode())])
            return
        except Exception:
            log.exception("call %s failed inside the gateway", call.call_id)
            await _send_error(send, http_error(RuntimeError()))
            return
        key = meta.key
        if key is not None and key.tpm:
            gw.limiter.charge_tokens(key.key_id, key.tpm, result.total_usage.total_tokens)
        body = completion_body(result, req.model, int(time.time()))
        await _send(send, 200, body, _meta_headers(result))

    async def stream(self, call: Call, req: ChatRequest, meta: _Meta, receive: Receive,
                     send: Send) -> None:
        """Pump the stream in this task while a second one waits for the client to go away,
        and then cancels the pump (which records the call as cancelled)."""
        task = asyncio.current_task()
        assert task is not None
        watch = task.get_loop().create_task(_until_disconnect(receive))
        gone = _Gone(task)
        watch.add_done_callback(gone)
        try:
            await self._pump(call, req, meta, send)
        except asyncio.CancelledError:
            # ours, and no one else's: the client left; anyone else's cancellation goes on
            if not gone.fired or task.uncancel() > 0:
                raise
        finally:
            gone.pumping = False  # a disconnect noticed from here on cancels nothing
            watch.cancel()

    async def _pump(self, call: Call, req: ChatRequest, meta: _Meta, send: Send) -> None:
        gw = self.gateway
        stream = gw.runtime.stream(call)
        try:
            await stream.open()  # retries and fallbacks happen before the first byte is sent
        except ButtressError as exc:
            await _send_error(send, http_error(exc),
                              [(b"x-buttress-call-id", call.call_id.encode())])
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
            (b"x-buttress-call-id", call.call_id.encode())]})
        writer = ChunkWriter(call.call_id, req.model, int(time.time()), req.include_usage)

        def write(batch: list[StreamChunk | str]) -> Awaitable[None] | None:
            body = writer.events(batch)
            if not body:
                return None
            return _send_now(send, {"type": "http.response.body", "body": body,
                                    "more_body": True})

        try:
            await stream.relay(write)
        except ButtressError as exc:  # after the first byte: an SSE error event ends it
            err = http_error(exc)
            await send({"type": "http.response.body", "more_body": False,
                        "body": error_event(err.message, err.type, err.code)})
            return
        finally:
            # a relay that read records and closes the stream itself, however it ends: this
            # closes one that failed before reading (as ``async with stream`` would)
            await stream.aclose()
        result = stream.result
        tail = DONE
        if result is not None:
            key = meta.key
            if key is not None and key.tpm:
                gw.limiter.charge_tokens(key.key_id, key.tpm, result.total_usage.total_tokens)
            if req.include_usage:
                tail = writer.usage(result.usage) + DONE
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _send_now(send: Send, message: dict[str, Any]) -> Awaitable[None] | None:
    """``await send(message)`` run to its end now, outside any task, when it does not have to
    wait (uvicorn's sends wait only while the client's socket is full); otherwise an awaitable
    that finishes it. ``CallStream.relay`` writes from the transport's callback with it."""
    sending = send(message)
    step = getattr(sending, "send", None)
    if step is None:  # an awaitable but no coroutine (ASGI allows any): awaited as it is
        return cast(Awaitable[None], sending)
    try:
        waiting_on = step(None)
    except StopIteration:
        return None
    return _Sending(sending, waiting_on)


class _Sending:
    """The rest of a send that had to wait: awaiting it waits for what the send waits on (the
    future it yielded to ``_send_now``), then runs it on."""

    __slots__ = ("sending", "waiting_on")

    def __init__(self, sending: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self.sending = sending
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, None]:
        try:
            yield self.waiting_on  # the awaiting task waits on it as the send would have
        except BaseException:
            self.sending.close()
            raise
        return (yield from self.sending.__await__())


def _header(meta: _Meta, name: bytes, value: bytes) -> None:
    text = value.decode("utf-8", "replace").strip()
    if name == b"x-buttress-feature":
        meta.feature = text or None
    elif name == b"x-buttress-tags":
        meta.tags = tuple(t for t in (p.strip() for p in text.split(",")) if t)
    elif name == b"x-buttress-user":
        meta.user = text or None
    elif name == b"x-buttress-session":
        meta.session = text or None
    elif name == b"x-buttress-cache":
        mode = _CACHE_MODES.get(value.strip().lower())
        if mode is None:
            raise GatewayRefusal("x-buttress-cache must be bypass, refresh or use", status=400,
                                 kind="invalid_header", type="invalid_request_error",
                                 param="x-buttress-cache")
        meta.cache = mode


def _starlette_app(gw: Gateway) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def models(request: Request) -> Response:
        try:
            key = await gw.authenticate(request.headers.get("authorization", "").encode())
        except GatewayRefusal as exc:
            err = http_error(exc)
            return Response(error_body(err.message, err.type, err.code), err.status,
                            media_type="application/json")
        return Response(gw.models_body(key), media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(gw.client.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return Response(error_body(f"no route for {request.method} {request.url.path}",
                                   "invalid_request_error", "not_found"), status,
                        media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        watcher = None
        if gw.key_store is not None:
            await gw.reload_keys(force=True)
            watcher = asyncio.ensure_future(gw._watch_keys())
        # Load every feature's prompt (file read, git lookup of its commit) now, off the loop,
        # rather than on the event loop during the first request that needs it.
        await asyncio.to_thread(gw.client.load_prompts)
        try:
            with serving_collector():
                yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if gw.owns_client:
                await gw.client.aclose()  # flushes every queued ledger record
            if gw.key_store is not None:
                gw.key_store.close()

    return Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                             Route("/health", health, methods=["GET"]),
                             Route("/metrics", metrics, methods=["GET"])],
                     exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)


@contextlib.contextmanager
def serving_collector() -> Iterator[None]:
    """The cyclic collector's settings while the gateway serves (``bench/icount_gateway.py``
    counts under them too), from when everything it needs is loaded.

    Everything loaded so far (modules, config, price tables) lives as long as the server: it is
    moved out of the collector's reach (``gc.freeze``), so full collections stay short and stop
    showing up as latency spikes. A request allocates some hundreds of containers, nearly all
    freed by reference counting when it ends. At the default threshold (700) the young
    generation is collected every request or two, each time walking every in-flight request's
    objects (perf: 6% of the samples in the collector itself; the change measured 19% less CPU
    a request at 500 req/s). Every 20,000 allocations is enough: no request served, failed call
    (hedged or not) or stream ended mid-way leaves a cycle behind (the tests named
    ``*leaves_nothing_for_the_collector`` and ``*freed_without_the_collector``), so a young
    collection finds little and is short. Before, at 500 req/s, one ran every 2.5 s over
    ~13,000 dead objects, up to 15 ms (with the upstream down: every second, up to 100 ms)."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def build_app(gateway: Gateway) -> GatewayApp:
    return GatewayApp(gateway)
