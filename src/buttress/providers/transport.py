"""A lean HTTP/1.1 keep-alive transport for httpx, for many concurrent model calls.

httpcore's pool rescans every pooled connection (with a socket poll each) on every request and
every state change, so its cost per request grows with the number of connections: at a few hundred
requests per second it spent milliseconds of CPU per request in our gateway. This transport keeps
a LIFO stack of idle connections per origin (O(1) to take and return one). Each connection is an
``asyncio.Protocol`` that feeds arriving bytes straight into ``httptools`` (llhttp, the parser
uvicorn uses), with no stream reader in between: a plain call wakes once for its response and a
streamed one once per arrival. Bodies stream to httpx, which still does everything above the
wire: URLs, headers, JSON, decoding, ``aiter_lines``.

What it does not do: HTTP/2, proxies, read/write timeouts (the runtime's attempt timeout cancels
a stuck call, and a cancelled call's connection is closed, never reused). Connect timeouts are
honoured. A request on a reused connection that the server had already closed (EOF before any
byte of response) is retried once on a new connection, as urllib3 and httpcore do.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httptools
import httpx

Origin = tuple[str, str, int]

#: buffered body bytes at which reading pauses until the consumer catches up
_PAUSE_AT = 256 * 1024
#: what a lingering connection may still receive before its body's end (see ``linger``)
_LINGER_BYTES = 64 * 1024


class _Response:
    """httptools callbacks for one response; body chunks queue up until they are read."""

    __slots__ = ("body", "buffered", "complete", "delimited", "headers", "headers_done",
                 "keep_alive", "parser", "started")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.keep_alive = False
        self.delimited = False  # a Content-Length or chunked body: it ends by itself
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.buffered = 0  # bytes in ``body``
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
        # llhttp resets its state once a message completes, so ask while it is current; then
        # let go of the parser, which holds this response's callbacks: kept, the pair is a
        # reference cycle that only the collector frees (a dozen objects every response, and
        # at the gateway's collector threshold a pause of milliseconds every few thousand)
        parser, self.parser = self.parser, None
        if parser is not None:
            self.keep_alive = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the socket's bytes go straight into the current response's
    parser as they arrive (no stream reader in between), and whoever waits on the response
    is woken (or its listener called, see ``_Body.listen``) once per arrival."""

    __slots__ = ("_linger_timer", "_lingering", "_loop", "_waiter", "eof", "error", "listener",
                 "origin", "parser", "paused", "reused", "state", "transport")

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.state: _Response | None = None  # the response being read, if any
        self.parser: httptools.HttpResponseParser | None = None
        self.eof = False
        self.error: Exception | None = None
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        #: called (instead of waking a reader) when bytes, the end or an error arrive
        self.listener: Callable[[], None] | None = None
        self._lingering: PooledTransport | None = None  # the pool it returns to (``linger``)
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are no subclass

    def data_received(self, data: bytes) -> None:
        state, parser = self.state, self.parser
        if state is None or parser is None or state.complete:
            # bytes nobody asked for (after a response, or on an idle connection): the
            # connection's position in the stream is unknown, so it is not reused
            self.eof = True
            self.close()
        elif self.error is None:
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self.error = httpx.RemoteProtocolError(f"malformed HTTP response: {exc}")
                self.close()
            else:
                if self._lingering is not None:
                    self._linger_on(state)
                elif state.buffered > _PAUSE_AT and not self.paused and self.transport:
                    self.paused = True  # the reader is behind: let TCP push back
                    self.transport.pause_reading()
        if self.listener is not None:  # ``_notify``, without a call: once per arrival
            self.listener()
        else:
            self._notify()

    def eof_received(self) -> bool:
        self.eof = True
        self._stop_lingering()
        self._notify()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = httpx.ReadError(str(exc) or type(exc).__name__)
        self._stop_lingering()
        self._notify()

    # -- lingering -------------------------------------------------------------------------------

    def linger(self, pool: PooledTransport, timeout_s: float) -> None:
        """The reader has all it wants of a body whose end has not arrived yet: an SSE stream's
        ``data: [DONE]`` came, the chunked body's terminator may come in a later packet. Wait
        for that end (at most ``timeout_s`` and ``_LINGER_BYTES``) in the background, then go
        back to ``pool``; otherwise close. Closing would cost the next request a new
        connection, and over TLS a handshake that costs more than the whole stream's relay."""
        self._lingering = pool
        pool._lingering.add(self)
        self._linger_timer = self._loop.call_later(timeout_s, self._stop_lingering)
        self.resume()

    def _linger_on(self, state: _Response) -> None:
        if state.complete:
            pool = self._end_linger()
            state.body = []
            if state.keep_alive and pool is not None:
                pool.release(self)
            else:
                self.close()
        elif state.buffered > _LINGER_BYTES:  # more than an end: the body goes on
            self._stop_lingering()

    def _end_linger(self) -> PooledTransport | None:
        pool, self._lingering = self._lingering, None
        if pool is not None:
            pool._lingering.discard(self)
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        return pool

    def _stop_lingering(self) -> None:
        if self._end_linger() is not None:
            self.close()

    # -- used by the transport -------------------------------------------------------------------

    def _notify(self) -> None:
        listener = self.listener
        if listener is not None:
            listener()
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def resume(self) -> None:
        """Read again: ``data_received`` pauses reading while the reader is behind."""
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def wait(self) -> asyncio.Future[None]:
        """A future done when more bytes, the end of the stream or an error arrive (a plain
        call, not a coroutine: the readers await it once per arrival)."""
        waiter = self._waiter = self._loop.create_future()
        return waiter

    def start(self, payload: bytes) -> _Response:
        """Send a request; its response is read into the returned state."""
        state = self.state = _Response()
        self.parser = state.parser = httptools.HttpResponseParser(state)
        assert self.transport is not None
        self.transport.write(payload)
        return state

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return (self.transport is not None and not self.transport.is_closing()
                and not self.eof and self.error is None)


class _Body(httpx.AsyncByteStream):
    """The rest of a response body, handed to httpx as it arrives."""

    def __init__(self, transport: PooledTransport, conn: _Connection, state: _Response) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._state = state
        self._done_reading = False

    def done_reading(self) -> None:
        """The reader has what it wanted of the body (an SSE stream's ``data: [DONE]``): if the
        body's end has not arrived when it is closed, its connection waits for it briefly
        (``_Connection.linger``) instead of being closed."""
        self._done_reading = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while (data := await self.arrival()) is not None:
                yield data
        finally:
            self.close()

    async def arrival(self) -> bytes | None:
        """Every body byte that has arrived and not been read yet, waiting for some; None once
        the body is complete (its connection then goes back to the pool)."""
        while (data := self.take()) == b"":
            assert self._conn is not None  # ``take`` raises once the connection is gone
            await self._conn.wait()
        return data

    def take(self) -> bytes | None:
        """What ``arrival`` returns, without waiting: b"" when nothing new has arrived."""
        state = self._state
        # bytes keep arriving while the reader holds a chunk: drain before asking whether the
        # body is complete, or its last chunks would be left behind
        while not state.body:
            if state.complete:
                self.close()
                return None
            conn = self._conn
            if conn is None or conn.error is not None or conn.eof:
                _ended(conn, state)  # raises, unless the connection's end completes the body
                continue
            return b""
        chunks, state.body, state.buffered = state.body, [], 0
        conn = self._conn
        if conn is not None and conn.paused:  # ``resume``'s test, without a call a chunk
            conn.resume()  # the reader caught up
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Push mode: the connection calls ``listener`` (from its protocol callback, in the
        event loop, with no task around it) whenever bytes, the body's end or an error arrive,
        instead of waking a reader; ``listener`` reads them with ``take``. None ends it.

        A relay that forwards what arrives at once (the gateway) saves the wake of its task and
        the resumption of every coroutine between the socket and the client: about a sixth of
        the instructions the gateway spent on a chunk (``bench/icount_gateway.py``)."""
        conn = self._conn
        if conn is not None:
            conn.listener = listener

    async def aread(self) -> bytes:
        state = self._state
        if state.complete:  # the usual case: the whole body came with the headers
            body = b"".join(state.body)
            state.body = []
            self.close()
            return body
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """``aclose``, which never waits: the connection goes back to the pool (or lingers for
        the body's end, see ``done_reading``) or is closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.listener = None  # the connection outlives this body: never call a stale reader
        state = self._state
        if state.complete and state.keep_alive:
            self._transport.release(conn)
        elif self._done_reading and state.keep_alive and conn.usable:
            conn.linger(self._transport, self._transport.linger_s)
        else:  # unread or cut short: the connection's position in the stream is unknown
            conn.close()


def _ended(conn: _Connection | None, state: _Response) -> None:
    """A body's connection is gone (closed by the reader, failed, or at EOF): raise what that
    means for the body, unless EOF is the body's own end."""
    if conn is None:
        raise httpx.StreamClosed()
    if conn.error is not None:
        raise conn.error
    _end_at_eof(state)
    if not state.complete:
        raise httpx.RemoteProtocolError("connection closed mid-body")


def _end_at_eof(state: _Response) -> None:
    # A body delimited by the connection's end (no length, not chunked) completes at EOF;
    # llhttp has no end-of-input call, so that case is decided here.
    if state.headers_done and not state.complete and not state.delimited:
        state.complete = True
        state.keep_alive = False


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with a LIFO keep-alive pool per origin. ``max_idle`` per origin are kept."""

    def __init__(self, *, max_idle: int = 256, ssl_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 30.0, linger_s: float = 2.0) -> None:
        self.max_idle = max_idle
        #: how long a connection waits for the end of a body its reader is done with
        self.linger_s = linger_s
        self._lingering: set[_Connection] = set()
        #: encoded header lines per headers dict (``_header_block``)
        self._blocks: dict[tuple[int, int], tuple[dict[str, str], dict[str, str] | None,
                                                  dict[str, str], bytes]] = {}
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
        loop = asyncio.get_running_loop()
        conn = _Connection(origin, loop)
        try:
            async with asyncio.timeout(connect_s):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=ssl_ctx,
                    server_hostname=host if ssl_ctx else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        self.opened += 1
        return conn

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
            # a body that came whole may have paused reading on its last bytes (nobody had
            # read them yet): the next response must be read
            conn.resume()
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

    async def post(self, url: str, headers: dict[str, str], body: bytes,
                   defaults: dict[str, str] | None = None,
                   ) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        """POST ``body`` without httpx's request machinery: the providers' hot path.
        ``headers`` go out over ``defaults`` (a name in both is sent once, as in
        ``headers``)."""
        origin, target, host = _target(url)
        return await self.send(origin, b"".join((
            b"POST ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\nContent-Length: ",
            str(len(body)).encode(), b"\r\n", self._header_block(headers, defaults),
            b"\r\n", body)), self.connect_timeout_s)

    def _header_block(self, headers: dict[str, str], defaults: dict[str, str] | None) -> bytes:
        """The encoded header lines. A provider sends the same headers on every request, so
        the block is kept per headers dict, and used while that dict still holds the same."""
        key = (id(headers), id(defaults))
        kept = self._blocks.get(key)
        if kept is not None and kept[0] is headers and kept[1] is defaults and \
                kept[2] == headers:
            return kept[3]
        merged = {**defaults, **headers} if defaults else headers
        block = b"".join([b"%s: %s\r\n" % (name.encode(), value.encode())
                          for name, value in merged.items()])
        if len(self._blocks) >= 256:  # many throwaway dicts: start over
            self._blocks.clear()
        self._blocks[key] = (headers, defaults, dict(headers), block)
        return block

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
        try:
            state = conn.start(payload)
            while not state.headers_done:
                if conn.eof or conn.error is not None:
                    if conn.reused and not state.started and \
                            not isinstance(conn.error, httpx.RemoteProtocolError):
                        raise _StaleConnection()  # closed or reset while it sat idle
                    raise conn.error or httpx.RemoteProtocolError(
                        "connection closed before the response")
                await conn.wait()
        except _StaleConnection:
            raise
        except httpx.HTTPError:
            conn.close()
            raise
        except OSError as exc:  # a write to a socket the peer already reset
            if conn.reused and not state.started:
                raise _StaleConnection() from exc
            conn.close()
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.close()  # cancelled mid-exchange: never reuse a half-read connection
            raise
        assert conn.parser is not None
        return conn.parser.get_status_code(), state.headers, _Body(self, conn, state)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._lingering):
            conn._stop_lingering()


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
