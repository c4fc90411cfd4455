"""A timeout scope for a task the caller already holds: one timer handle, nothing looked up.

``asyncio.timeout`` finds the running loop and task on entry (on Python 3.11 each lookup of the
running loop is a ``getpid`` system call) and costs about 7 µs a scope. The executor opens two
for every attempt, the call's deadline and the attempt's timeout, so it uses this instead.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Expiry:
    """``with Expiry(loop, task, when):`` raises ``TimeoutError`` out of the block when the loop's
    clock reaches ``when``, as ``asyncio.timeout_at`` does: the timer cancels the task, and the
    scope turns that cancellation, and only that one, into ``TimeoutError``. Synchronous, so it
    also wraps the awaits of an ``async`` block."""

    __slots__ = ("_cancelling", "_handle", "_task", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object],
                 when: float) -> None:
        self._task: asyncio.Task[object] | None = task
        self._cancelling = task.cancelling()
        self.expired = False
        self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.expired = True
        if self._task is not None:
            self._task.cancel()

    def __enter__(self) -> Expiry:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._handle.cancel()
        # a frame that holds the scope may outlive the block in an error's traceback, and a
        # task holds its error: the scope lets go of the task (else a cycle for the collector)
        task, self._task = self._task, None
        # our cancellation, and no one else's: a timeout
        if self.expired and task is not None and task.uncancel() <= self._cancelling and \
                exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


def current(loop: asyncio.AbstractEventLoop) -> asyncio.Task[object]:
    """The running task (the executor runs only inside one)."""
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("the executor must run inside an asyncio task")
    return task
