"""The bounded in-process queue that runs submitted calls on N workers.

A job is written to the store (``pending``) before it is queued, marked ``running`` when a
worker takes it and ``done`` or ``failed`` after, so a process that stops leaves every unfinished
job in the store; the next queue on that store ``adopt``s them (``resume``). Delivery is at least
once: a job that was running when its process died runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import UsageError
from buttress.ids import new_id
from buttress.jobs.store import JobRecord, JobStore
from buttress.runtime.result import CallResult

log = logging.getLogger("buttress.jobs")

RunFn = Callable[[JobRecord], Awaitable[CallResult]]
Callback = Callable[[str, CallResult | None, BaseException | None], Awaitable[None] | None]
"""(job id, result or None, error or None), called once a job ends."""


class JobQueue:
    def __init__(self, store: JobStore, run: RunFn, *, workers: int = 4, max_queued: int = 1000,
                 clock: Clock = SYSTEM_CLOCK, ids: Callable[[], str] = new_id,
                 callback: Callback | None = None) -> None:
        if workers < 1 or max_queued < 1:
            raise UsageError("a job queue needs at least one worker and one slot")
        self.store = store
        self.run = run
        self.workers = workers
        self.clock = clock
        self.ids = ids
        self.callback = callback
        self.owner = new_id()  # this queue, as the store knows it
        self.results: dict[str, CallResult] = {}  # finished here, for ``AsyncClient.job``
        self._queue: asyncio.Queue[tuple[JobRecord, Callback | None]] = asyncio.Queue(
            max_queued)
        self._tasks: list[asyncio.Task[None]] = []
        self._done: dict[str, asyncio.Event] = {}

    async def submit(self, feature: str, params: dict[str, Any], *,
                     callback: Callback | None = None) -> str:
        """Store the job, then queue it (waiting for a slot when the queue is full)."""
        now = self.clock.wall()
        job = JobRecord(job_id=self.ids(), status="pending", feature=feature, params=params,
                        owner=self.owner, created_at=now, updated_at=now)
        await asyncio.to_thread(self.store.add, job)
        await self._enqueue(job, callback)
        return job.job_id

    async def resume(self) -> list[str]:
        """Queue the jobs other queues left unfinished on this store. Returns their ids."""
        jobs = await asyncio.to_thread(self.store.adopt, self.owner, self.clock.wall())
        for job in jobs:
            await self._enqueue(job, None)
        return [j.job_id for j in jobs]

    async def wait(self, job_id: str) -> None:
        """Until a job queued here has ended."""
        event = self._done.get(job_id)
        if event is None:
            raise UsageError(f"job {job_id} is not queued in this process")
        await event.wait()

    async def aclose(self) -> None:
        """Stop the workers. Unfinished jobs stay in the store for the next ``resume``."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _enqueue(self, job: JobRecord, callback: Callback | None) -> None:
        self._start()
        self._done[job.job_id] = asyncio.Event()
        await self._queue.put((job, callback))

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"buttress-job-worker-{i}")
                           for i in range(self.workers)]

    async def _work(self) -> None:
        while True:
            job, callback = await self._queue.get()
            try:
                await self._run_one(job, callback or self.callback)
            finally:
                self._queue.task_done()

    async def _run_one(self, job: JobRecord, callback: Callback | None) -> None:
        await asyncio.to_thread(self.store.update, job.job_id, "running", self.clock.wall())
        result: CallResult | None = None
        error: Exception | None = None
        try:
            result = await self.run(job)
        except Exception as exc:  # the job's outcome, not the worker's
            error = exc
        if result is not None:
            self.results[job.job_id] = result
            await asyncio.to_thread(self.store.update, job.job_id, "done", self.clock.wall(),
                                    call_id=result.call_id)
        else:
            await asyncio.to_thread(self.store.update, job.job_id, "failed", self.clock.wall(),
                                    error=_describe(error))
        self._done[job.job_id].set()
        if callback is not None:
            try:
                outcome = callback(job.job_id, result, error)
                if outcome is not None:
                    await outcome
            except Exception:
                log.exception("callback for job %s failed", job.job_id)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, BaseExceptionGroup):  # every attempt's reason, not just the count
        inner = "; ".join(_describe(e) for e in error.exceptions)
        return f"{type(error).__name__}: {error.message}: {inner}"
    return f"{type(error).__name__}: {error}"
