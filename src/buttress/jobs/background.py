"""``Background``: what ``AsyncClient.submit``, ``job`` and ``resume`` do, kept out of the client.

It turns a feature call's arguments into a stored job, runs stored jobs through the client's own
``prepare`` and runtime, and answers a job's state with the ledger's record of its call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from buttress.errors import UsageError
from buttress.jobs.queue import Callback, JobQueue
from buttress.jobs.store import Job, JobRecord, JobStore
from buttress.ledger.writer import LedgerWriter
from buttress.runtime.result import Call, CallResult
from buttress.runtime.runtime import Runtime
from buttress.types import Message


class JobClient(Protocol):
    """The slice of ``AsyncClient`` a background job needs."""

    runtime: Runtime
    ledger: LedgerWriter | None

    def prepare(self, feature: str, vars: Mapping[str, Any] | None = None, *,
                messages: Sequence[Message] = (), tags: Sequence[str] = (),
                user_id: str | None = None, session_id: str | None = None,
                parent_id: str | None = None, key_id: str | None = None,
                policy: Mapping[str, Any] | None = None, prompt_version: str | None = None,
                models: Sequence[str] | None = None, **params: Any) -> Call: ...


class Background:
    def __init__(self, client: JobClient, store: JobStore | None, *, workers: int = 4,
                 max_queued: int = 1000, owns_store: bool = False,
                 dsn: str | None = None) -> None:
        self.client = client
        self._store = store
        self.dsn = dsn  # a PostgreSQL ledger's URL, opened on first use
        self._owns_store = owns_store
        self._workers = workers
        self._max_queued = max_queued
        self._queue: JobQueue | None = None

    @property
    def queue(self) -> JobQueue:
        if self._queue is None:
            rt = self.client.runtime
            self._queue = JobQueue(self._open_store(), self._run, workers=self._workers,
                                   max_queued=self._max_queued, clock=rt.clock)
        return self._queue

    async def submit(self, feature: str, vars: Mapping[str, Any] | None, *,
                     callback: Callback | None, **kwargs: Any) -> str:
        self.client.prepare(feature, vars, **kwargs)  # refuse a bad call now, not later
        params = {"vars": dict(vars or {}), **kwargs,
                  "messages": [m.model_dump(mode="json") for m in kwargs.get("messages", ())]}
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"a background call's vars and parameters must be JSON data: "
                             f"{exc}") from None
        return await self.queue.submit(feature, json.loads(json.dumps(params)),
                                       callback=callback)

    async def resume(self) -> list[str]:
        return await self.queue.resume()

    async def job(self, job_id: str, *, wait: bool = False) -> Job:
        queue = self.queue
        if wait:
            await queue.wait(job_id)
        rec = await asyncio.to_thread(queue.store.get, job_id)
        if rec is None:
            raise UsageError(f"no job {job_id!r}")
        record = None
        ledger = self.client.ledger
        if rec.call_id is not None and rec.status in ("done", "failed") and ledger is not None:
            found = await asyncio.to_thread(ledger.store.get_call, rec.call_id)
            if found is None:  # written by the ledger's thread a moment from now
                await asyncio.to_thread(ledger.flush, 5.0)
                found = await asyncio.to_thread(ledger.store.get_call, rec.call_id)
            record = found[0] if found is not None else None
        return Job(job_id=rec.job_id, status=rec.status, feature=rec.feature,
                   call_id=rec.call_id, error=rec.error, created_at=rec.created_at,
                   updated_at=rec.updated_at, record=record, result=queue.results.get(job_id))

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.aclose()
            if self._owns_store:
                self._queue.store.close()

    async def _run(self, job: JobRecord) -> CallResult:
        p = dict(job.params)
        messages = [Message.model_validate(m) for m in p.pop("messages", [])]
        call = self.client.prepare(job.feature, p.pop("vars", None), messages=messages, **p)
        store, rt = self.queue.store, self.client.runtime
        await asyncio.to_thread(store.update, job.job_id, "running", rt.clock.wall(),
                                call_id=call.call_id)
        return await rt.complete(call)

    def _open_store(self) -> JobStore:
        if self._store is not None:
            return self._store
        from buttress.jobs.store import PostgresJobStore, SQLiteJobStore
        from buttress.ledger.sqlite import SQLiteStore

        ledger = self.client.ledger
        if ledger is not None and isinstance(ledger.store, SQLiteStore):
            self._store = SQLiteJobStore(ledger.store.path)
        elif self.dsn is not None:
            self._store = PostgresJobStore(self.dsn)
        else:
            raise UsageError("background calls need a durable job store: a SQLite or "
                             "PostgreSQL ledger, or AsyncClient(jobs=...)")
        self._owns_store = True
        return self._store
