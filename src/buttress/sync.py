"""Derive a blocking client from an async one, in one place.

Each public coroutine method becomes a method that runs it on a private event loop in a
background thread (started on first use); each method returning an async stream returns a
blocking iterator over it. Signatures are copied, and a test pins that they match.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from buttress.runtime.result import CallResult
from buttress.runtime.streaming import CallStream
from buttress.types import StreamChunk

T = TypeVar("T")


class Portal:
    """An event loop on a daemon thread that sync code submits coroutines to."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="buttress-sync",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure()).result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


class SyncStream:
    """A blocking view of a ``CallStream``: iterate for chunks, then read ``result``."""

    def __init__(self, portal: Portal, stream: CallStream) -> None:
        self._portal = portal
        self._stream = stream
        self._iter = stream.__aiter__()

    @property
    def result(self) -> CallResult | None:
        return self._stream.result

    def __iter__(self) -> Iterator[StreamChunk]:
        while True:
            try:
                yield self._portal.run(_next(self._iter))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._portal.run(self._stream.aclose())

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def _next(it: Any) -> StreamChunk:
    chunk: StreamChunk = await it.__anext__()
    return chunk


def _public(cls: type) -> list[str]:
    return [n for n, v in vars(cls).items()
            if not n.startswith("_") and callable(v) and n != "from_config"]


def derive_sync_client(async_cls: Any) -> Any:
    """A class whose instances wrap an ``async_cls`` instance and block on each method."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self._portal = Portal()
        self._async = async_cls(*args, **kwargs)

    def from_config(cls: Any, *args: Any, **kwargs: Any) -> Any:
        self = cls.__new__(cls)
        self._portal = Portal()
        self._async = async_cls.from_config(*args, **kwargs)
        return self

    def close(self: Any) -> None:
        self._portal.run(self._async.aclose())
        self._portal.close()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self: Any, *exc: object) -> None:
        close(self)

    namespace: dict[str, Any] = {
        "__init__": functools.wraps(async_cls.__init__)(__init__),
        "from_config": classmethod(functools.wraps(async_cls.from_config)(from_config)),
        "close": close, "__enter__": __enter__, "__exit__": __exit__,
        "__doc__": f"Blocking twin of ``{async_cls.__name__}``.",
    }
    for name in _public(async_cls):
        fn = getattr(async_cls, name)
        if name in ("aclose",):
            continue
        namespace[name] = _blocking(name, fn)
    return type(async_cls.__name__.removeprefix("Async") or "Client", (), namespace)


def _blocking(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    returns_stream = inspect.signature(fn).return_annotation in ("CallStream", CallStream)
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            coro: Coroutine[Any, Any, Any] = getattr(self._async, name)(*args, **kwargs)
            return self._portal.run(coro)
        return call
    if returns_stream:
        @functools.wraps(fn)
        def stream(self: Any, *args: Any, **kwargs: Any) -> SyncStream:
            return SyncStream(self._portal, getattr(self._async, name)(*args, **kwargs))
        return stream

    @functools.wraps(fn)
    def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._async, name)(*args, **kwargs)
    return plain
