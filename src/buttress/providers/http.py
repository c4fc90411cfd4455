"""What the HTTP adapters share: one async client, status classification, Retry-After, SSE."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jiter

from buttress.errors import (
    AuthenticationError,
    BadRequest,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from buttress.providers.transport import PooledTransport

ByteStream = httpx.Response | AsyncIterable[bytes]
"""A streamed body: an httpx response, or the pooled transport's raw body."""
OpenBody = httpx.Response | httpx.AsyncByteStream
"""A streamed body as ``start_stream`` opens it: read it as a ``ByteStream``, then ``aclose``
it."""

# One pool for every adapter in a process. Timeouts are the runtime's job (it cancels attempts),
# so the client's own are generous backstops only.
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200,
                              keepalive_expiry=30.0)
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=30.0)


class FastClient(httpx.AsyncClient):
    """An httpx client whose adapters' JSON POSTs skip httpx's per-request machinery (cookies,
    auth, redirects, hooks: ~100 µs a request) and go straight to its ``PooledTransport``.
    Anything else sent through it is ordinary httpx over the same pool."""

    def __init__(self, pooled: PooledTransport) -> None:
        super().__init__(limits=DEFAULT_LIMITS, timeout=DEFAULT_TIMEOUT, transport=pooled)
        self.pooled = pooled


def new_http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client tuned for many concurrent model calls. Pass ``transport`` to mock in tests;
    by default it is a ``FastClient`` over a ``PooledTransport``."""
    if transport is None:
        return FastClient(PooledTransport())
    return httpx.AsyncClient(limits=DEFAULT_LIMITS, timeout=DEFAULT_TIMEOUT, transport=transport)


def _stdlib_encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


_encoder: Callable[[dict[str, Any]], bytes] | None = None


def _encode(payload: dict[str, Any]) -> bytes:
    """JSON bytes for a request body: orjson when installed (the gateway extra brings it; several
    times faster), else the standard library. Chosen on first use, not at import."""
    global _encoder
    if _encoder is None:
        try:
            import orjson
        except ImportError:
            _encoder = _stdlib_encode
        else:
            _encoder = orjson.dumps
    return _encoder(payload)


_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
_SSE = {"Content-Type": "application/json", "Accept": "text/event-stream"}


def parse_retry_after(headers: httpx.Headers, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def error_message(body: bytes) -> str:
    """The provider's own error message from an error body, or the body itself, shortened."""
    try:
        data = jiter.from_json(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or "(empty body)"
    if isinstance(data, list) and data:  # Gemini sometimes wraps errors in a list
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("type")
            if isinstance(msg, str):
                return msg
        elif isinstance(err, str):
            return err
    return body.decode("utf-8", "replace")[:500]


def classify_status(status: int, headers: httpx.Headers, body: bytes, *, provider: str,
                    model: str) -> ProviderError:
    """Turn an HTTP error response into the typed error the runtime reasons about."""
    if status == 400 and b"API_KEY_INVALID" in body:  # Gemini answers a bad key with a 400
        return AuthenticationError(error_message(body), provider=provider, model=model,
                                   status=status)
    retry_after = parse_retry_after(headers)
    if retry_after is None and status in (429, 503):
        retry_after = body_retry_delay(body)
    return error_for_status(status, error_message(body), provider=provider, model=model,
                            retry_after=retry_after)


def error_for_status(status: int, message: str, *, provider: str, model: str,
                     retry_after: float | None = None) -> ProviderError:
    """The typed error for an HTTP status (also used for statuses reported inside a body)."""
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status,
                          "retry_after": retry_after}
    if status == 429:
        return RateLimited(message, **kw)
    if status in (401, 403):
        return AuthenticationError(message, **kw)
    if status in (408, 504):
        return ProviderTimeout(message, **kw)
    if status == 529 or status >= 500:  # 529: Anthropic "overloaded"
        return ProviderUnavailable(message, **kw)
    if status == 409:  # conflicts/locks are transient on the providers that use them
        return ProviderUnavailable(message, **kw)
    return BadRequest(message, **kw)


def body_retry_delay(body: bytes) -> float | None:
    """Google's ``RetryInfo.retryDelay`` (``"37s"``) from an error body, when it carries one."""
    if b"retryDelay" not in body:
        return None
    try:
        data = jiter.from_json(body)
        if isinstance(data, list) and data:
            data = data[0]
        for detail in data["error"]["details"]:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return max(0.0, float(delay[:-1]))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None
    return None


# Error ``type``/``status`` names the providers put in error objects (inside a stream or a 200
# body), mapped to the HTTP status they stand for. Unknown names are treated as a server fault.
_ERROR_TYPE_STATUS = {
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "resource_exhausted": 429,
    "authentication_error": 401, "unauthenticated": 401, "invalid_api_key": 401,
    "permission_error": 403, "permission_denied": 403,
    "invalid_request_error": 400, "invalid_argument": 400, "failed_precondition": 400,
    "not_found_error": 404, "not_found": 404, "request_too_large": 413,
    "context_length_exceeded": 400,
    "timeout": 504, "deadline_exceeded": 504,
    "overloaded_error": 529, "api_error": 500, "server_error": 500, "internal": 500,
    "unavailable": 503,
}


def error_from_object(error: Any, *, provider: str, model: str) -> ProviderError:
    """The typed error for an error object a provider sent as data rather than as a status.

    Reads a numeric ``code``/``status`` first, then a ``type``/``status``/``code`` name; an
    error the provider did not classify is treated as a retryable server fault.
    """
    if not isinstance(error, dict):
        return ProviderUnavailable(f"provider reported an error: {str(error)[:500]}",
                                   provider=provider, model=model)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = str(error)[:500]
    status: int | None = None
    for key in ("code", "status"):
        value = error.get(key)
        if isinstance(value, int) and 400 <= value <= 599:
            status = value
            break
    if status is None:
        for key in ("type", "status", "code"):
            value = error.get(key)
            if isinstance(value, str) and value.lower() in _ERROR_TYPE_STATUS:
                status = _ERROR_TYPE_STATUS[value.lower()]
                break
    if status is None:
        return ProviderUnavailable(message, provider=provider, model=model)
    err = error_for_status(status, message, provider=provider, model=model)
    err.status = None  # the HTTP status of the response itself was not an error
    return err


def merge_extra(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``CallRequest.extra`` into a payload; nested dicts merge one level deep, so that
    ``{"generationConfig": {...}}`` adds to the config the adapter built instead of replacing it."""
    for key, value in extra.items():
        current = payload.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            payload[key] = {**current, **value}
        else:
            payload[key] = value


def redact_secret(exc: ProviderError, secret: str | None) -> None:
    """Remove an API key from an error's message in place, should a provider echo it back."""
    if secret and secret in exc.message:
        exc.message = exc.message.replace(secret, "[REDACTED]")
        exc.args = (exc.message,)


def transport_error(exc: httpx.HTTPError, *, provider: str, model: str) -> ProviderError:
    """Translate an httpx transport failure into a typed, retryable provider error."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{type(exc).__name__}: {exc}", provider=provider, model=model)
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponse(f"undecodable body: {exc}", provider=provider, model=model)
    return ProviderUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                               provider=provider, model=model)


def parse_json(body: bytes, *, provider: str, model: str, what: str = "response") -> Any:
    try:
        return jiter.from_json(body)
    except ValueError as exc:
        snippet = body[:200].decode("utf-8", "replace")
        raise MalformedResponse(f"{what} is not JSON ({exc}): {snippet!r}", provider=provider,
                                model=model) from exc


async def post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any],
                    headers: dict[str, str], *, provider: str, model: str) -> Any:
    """POST JSON and return the decoded JSON body, raising typed errors on any failure."""
    try:
        if isinstance(client, FastClient):
            status, raw, stream = await client.pooled.post(url, headers, _encode(payload),
                                                           _JSON)
            body = await stream.aread()
            response_headers: httpx.Headers | None = None
        else:
            response = await client.post(url, json=payload, headers=headers)
            status, body, response_headers = response.status_code, response.content, \
                response.headers
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider=provider, model=model) from exc
    if status >= 400:
        raise classify_status(status, response_headers or httpx.Headers(raw), body,
                              provider=provider, model=model)
    return parse_json(body, provider=provider, model=model)


async def start_stream(client: httpx.AsyncClient, url: str, payload: dict[str, Any],
                       headers: dict[str, str], *, provider: str, model: str) -> OpenBody:
    """POST and open a streamed response, raising typed errors for error statuses. The caller
    closes the body (``aclose``; its ``httpx`` errors are the caller's to translate).
    ``open_stream`` is this as a context manager; a stream read per arrival (OpenAI's) holds
    the body itself rather than pay a context manager's calls on every stream."""
    try:
        if isinstance(client, FastClient):
            status, raw, stream = await client.pooled.post(url, headers, _encode(payload),
                                                           _SSE)
            if status < 400:
                return stream
            try:
                raise classify_status(status, httpx.Headers(raw), await stream.aread(),
                                      provider=provider, model=model)
            finally:
                await stream.aclose()
        response = await client.send(
            client.build_request("POST", url, json=payload, headers=headers), stream=True)
        if response.status_code < 400:
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        raise classify_status(response.status_code, response.headers, body, provider=provider,
                              model=model)
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider=provider, model=model) from exc


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, url: str, payload: dict[str, Any],
                      headers: dict[str, str], *, provider: str,
                      model: str) -> AsyncIterator[OpenBody]:
    """``start_stream`` for ``async with``: the body is closed on leaving, and ``httpx`` errors
    inside (reading it) become typed errors."""
    stream = await start_stream(client, url, payload, headers, provider=provider, model=model)
    try:
        try:
            yield stream
        finally:
            await stream.aclose()
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider=provider, model=model) from exc


def done_reading(response: object) -> None:
    """The reader has the stream's last event (OpenAI's ``data: [DONE]``, Anthropic's
    ``message_stop``) and will read no more: the pooled transport's body then keeps its
    connection for the next request if the body's end follows soon, rather than closing it
    (``_Body.done_reading``). Other bodies are closed as usual."""
    done = getattr(response, "done_reading", None)
    if done is not None:
        done()


class SSEEvent:
    """One server-sent event. ``data`` stays bytes: every adapter hands it straight to the JSON
    parser, so decoding it here would only be undone there."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: bytes) -> None:
        self.event = event
        self.data = data


class SSEDecoder:
    """Incremental server-sent events decoding (text/event-stream framing): ``feed`` it the body
    as it arrives and it returns the events completed so far; ``close`` returns the last one.

    Lines end in LF, CRLF or CR, as the SSE grammar allows, and may be split across reads.
    """

    __slots__ = ("_data", "_event", "_pending", "idle")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[bytes] = []
        self._pending = b""
        #: whether the next byte starts a new event (nothing of one is held)
        self.idle = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._pending and not self._data and chunk.startswith(b"data: ") and \
                chunk.endswith(b"\n\n") and chunk.count(b"\n") == 2 and chunk.find(b"\r") == -1:
            # the usual read: exactly one event of one data line
            event, self._event = self._event, ""
            self.idle = True
            return [SSEEvent(event or "message", chunk[6:-2])]
        pending = self._pending + chunk
        if pending.find(b"\r") != -1:  # (``in`` raises and clears a TypeError first)
            # a trailing CR may be the first half of a CRLF: keep it until the next chunk
            held = b"\r" if pending.endswith(b"\r") else b""
            text = pending[:-1] if held else pending
            *lines, rest = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            self._pending = rest + held
        else:
            *lines, self._pending = pending.split(b"\n")
        events = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event or "message", b"\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        self.idle = not self._pending and not self._data and not self._event
        return events

    def close(self) -> list[SSEEvent]:
        """The body ended: the last event, if it lacked its blank line (or even its newline)."""
        return self.feed(b"\n\n")


async def iter_sse(response: ByteStream, *, provider: str,
                   model: str) -> AsyncGenerator[SSEEvent, None]:
    """Server-sent events from a streamed response, as ``SSEDecoder`` reads them."""
    chunks = response.aiter_bytes() if isinstance(response, httpx.Response) else response
    decoder = SSEDecoder()
    try:
        async for chunk in chunks:
            for event in decoder.feed(chunk):
                yield event
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider=provider, model=model) from exc
    for event in decoder.close():
        yield event


Arrivals = Callable[[], Awaitable[bytes | None]]
"""Reads a streamed body arrival by arrival: each await returns the bytes that came in since the
last one (waiting for some), and None once the body is over."""


def arrivals(response: ByteStream) -> Arrivals:
    """How to read ``response`` arrival by arrival. The pooled transport's body hands over every
    buffered byte at once (one event-loop wake, one read, however many events it holds)."""
    arrival: Arrivals | None = getattr(response, "arrival", None)
    if arrival is not None:
        return arrival
    chunks = (response.aiter_bytes() if isinstance(response, httpx.Response)
              else response).__aiter__()

    async def read() -> bytes | None:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None

    return read


# Adapters read wire bodies directly (no schema validation on the hot path); any shape they do
# not expect surfaces as one of these, which they turn into ``MalformedResponse``.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def describe_shape_error(exc: Exception) -> str:
    """A short account of why a body could not be read, for a ``MalformedResponse``."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, IndexError):
        return "an empty list where an item was expected"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"
