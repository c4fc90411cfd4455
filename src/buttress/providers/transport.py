"""A lean HTTP/1.1 keep-alive transport for httpx, for many concurrent model calls.

httpcore's pool rescans every pooled connection (with a socket poll each) on every request and
every state change, so its cost per request grows with the number of connections: at a few hundred
requests per second it spent milliseconds of CPU per request in our gateway. This transport keeps
a LIFO stack of idle connections per origin (O(1) to take and return one), parses responses with
``httptools`` (llhttp, the parser uvicorn uses) and streams bodies to httpx, which still does
everything above the wire: URLs, headers, JSON, decoding, ``aiter_lines``.

What it does not do: HTTP/2, proxies, read/write timeouts (the runtime's attempt timeout cancels
a stuck call, and a cancelled call's connection is closed, never reused). Connect timeouts are
honoured. A request on a reused connection that the server had already closed (EOF before any
byte of response) is retried once on a new connection, as urllib3 and httpcore do.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

Origin = tuple[str, str, int]

_READ = 65536


class _Response:
    """httptools callbacks for one response; body chunks queue up until they are read."""

    __slots__ = ("body", "complete", "delimited", "headers", "headers_done", "keep_alive",
                 "parser", "started")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.keep_alive = False
        self.delimited = False  # a Content-Length or chunked body: it ends by itself
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.started = False
        self.headers_done = False
        self.complete = False

    def on_message_begin(self) -> None:
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # llhttp resets its state once a message completes, so ask while it is current
        if self.parser is not None:
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    __slots__ = ("origin", "reader", "reused", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        self.writer.close()

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()


class _Body(httpx.AsyncByteStream):
    """The rest of a response body, read from the socket as httpx asks for it."""

    def __init__(self, transport: PooledTransport, conn: _Connection,
                 parser: httptools.HttpResponseParser, state: _Response) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._parser = parser
        self._state = state

    async def __aiter__(self) -> AsyncIterator[bytes]:
        state = self._state
        try:
            while True:
                if state.body:
                    chunks, state.body = state.body, []
                    for chunk in chunks:
                        yield chunk
                if state.complete:
                    break
                conn = self._conn
                if conn is None:
                    raise httpx.StreamClosed()
                try:
                    data = await conn.reader.read(_READ)
                except OSError as exc:
                    raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
                if not data:
                    _feed_eof(self._parser, state)
                    if not state.complete:
                        raise httpx.RemoteProtocolError("connection closed mid-body")
                    continue
                _feed(self._parser, data)
        finally:
            await self.aclose()

    async def aread(self) -> bytes:
        state = self._state
        if state.complete:  # the usual case: the whole body came with the headers
            body = b"".join(state.body)
            state.body = []
            await self.aclose()
            return body
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._state.complete and self._state.keep_alive:
            self._transport.release(conn)
        else:  # unread or cut short: the connection's position in the stream is unknown
            conn.close()


def _feed(parser: httptools.HttpResponseParser, data: bytes) -> None:
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as exc:
        raise httpx.RemoteProtocolError(f"malformed HTTP response: {exc}") from exc


def _feed_eof(parser: httptools.HttpResponseParser, state: _Response) -> None:
    # A body delimited by the connection's end (no length, not chunked) completes at EOF;
    # llhttp has no end-of-input call, so that case is decided here.
    if state.headers_done and not state.complete and not state.delimited:
        state.complete = True
        state.keep_alive = False


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with a LIFO keep-alive pool per origin. ``max_idle`` per origin are kept."""

    def __init__(self, *, max_idle: int = 256, ssl_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 30.0) -> None:
        self.max_idle = max_idle
        self.connect_timeout_s = connect_timeout_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self.opened = 0  # connections opened so far (tests and metrics read it)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _connect(self, origin: Origin, connect_s: float | None) -> _Connection:
        scheme, host, port = origin
        ssl_ctx = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_ctx, server_hostname=host if ssl_ctx else None,
                    limit=_READ * 4)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        self.opened += 1
        return _Connection(origin, reader, writer)

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable:
                conn.reused = True
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if conn.usable and len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}")
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        body = await request.aread()
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        status, headers, stream = await self.send(
            origin, b"".join(head) + body, timeouts.get("connect", self.connect_timeout_s))
        return httpx.Response(status, headers=headers, stream=stream,
                              extensions={"http_version": b"HTTP/1.1"})

    async def post(self, url: str, headers: dict[str, str],
                   body: bytes) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        """POST ``body`` without httpx's request machinery: the providers' hot path."""
        origin, target, host = _target(url)
        head = [b"POST ", target, b" HTTP/1.1\r\nHost: ", host,
                b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers.items():
            head += (name.encode(), b": ", value.encode(), b"\r\n")
        head.append(b"\r\n")
        return await self.send(origin, b"".join(head) + body, self.connect_timeout_s)

    async def send(self, origin: Origin, payload: bytes, connect_timeout: float | None
                   ) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        """Send a serialised request; the status, headers and a body stream come back."""
        conn = self._take(origin)
        for _ in range(2):
            if conn is None:
                conn = await self._connect(origin, connect_timeout)
            try:
                return await self._exchange(conn, payload)
            except _StaleConnection:
                conn.close()
                conn = None  # the server closed it while idle: once more, on a new one
        raise httpx.RemoteProtocolError("server closed the connection without a response")

    async def _exchange(self, conn: _Connection, payload: bytes
                        ) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        state = _Response()
        parser = state.parser = httptools.HttpResponseParser(state)
        try:
            conn.writer.write(payload)
            while not state.headers_done:
                data = await conn.reader.read(_READ)
                if not data:
                    if conn.reused and not state.started:
                        raise _StaleConnection()
                    raise httpx.RemoteProtocolError("connection closed before the response")
                _feed(parser, data)
        except _StaleConnection:
            raise
        except httpx.HTTPError:
            conn.close()
            raise
        except ConnectionResetError as exc:
            if conn.reused and not state.started:
                raise _StaleConnection() from exc
            conn.close()
            raise httpx.ReadError(f"connection reset: {exc}") from exc
        except OSError as exc:
            conn.close()
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.close()  # cancelled mid-exchange: never reuse a half-read connection
            raise
        return parser.get_status_code(), state.headers, _Body(self, conn, parser, state)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class _StaleConnection(Exception):
    pass


@functools.lru_cache(maxsize=256)
def _target(url: str) -> tuple[Origin, bytes, bytes]:
    """The origin, request target and Host header of ``url`` (parsed once per URL)."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported scheme {parsed.scheme!r}")
    default = 443 if parsed.scheme == "https" else 80
    port = parsed.port or default
    host = parsed.host.encode("idna") if parsed.port is None else \
        f"{parsed.host}:{port}".encode("idna")
    return (parsed.scheme, parsed.host, port), parsed.raw_path, host
