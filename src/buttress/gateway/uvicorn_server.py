"""The uvicorn server the gateway runs on: uvicorn's own, minus its idle wake-ups.

uvicorn's main loop wakes ten times a second to look at its exit flag and refresh its default
headers. On a quiet gateway those wakes are most of its CPU: about 2 ms of CPU a second here,
0.1 ms a stream at 20 streams a second. ``GatewayServer`` waits for the flag instead: setting
``should_exit`` (a signal handler, a test, the demo) wakes it at once, and it still looks every
``tick_s`` (1 s) for anything else that ends it. The gateway's default headers hold no date
(``date_header=False``), so refreshing them less often changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

import uvicorn


class GatewayServer(uvicorn.Server):
    #: how often the server looks at its exit flag without being told to
    tick_s = 1.0
    _wake: Callable[[], object] | None = None
    _exiting = False

    @property  # uvicorn's is a plain attribute
    def should_exit(self) -> bool:
        return self._exiting

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exiting = value
        wake = self._wake
        if value and wake is not None:
            wake()  # thread-safe: signal handlers and other threads set the flag too

    async def main_loop(self) -> None:
        flag = asyncio.Event()
        self._wake = functools.partial(asyncio.get_running_loop().call_soon_threadsafe,
                                       flag.set)
        try:
            # on_tick(0) does uvicorn's once-a-second work (default headers, notify) each time
            while not await self.on_tick(0):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tick_s):
                        await flag.wait()
        finally:
            self._wake = None
