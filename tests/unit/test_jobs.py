"""Background calls: submit, fetch by id, callbacks, failures, and surviving a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import UsageError
from buttress.jobs.store import SQLiteJobStore
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter
from buttress.providers.base import Provider
from buttress.runtime.result import CallResult
from buttress.testing.fake import FakeProvider
from buttress.types import CallRequest, Completion, Message

CONFIG = """
[providers.fake]
type = "fake"

[models.m]
provider = "fake"
model = "fake-m"

[features.summarise]
models = ["m"]
policy = { max_retries = 0 }
"""


class Blocked(Provider):
    """Never answers until released: a slow provider, without real waiting."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def complete(self, request: CallRequest) -> Completion:
        self.started.set()
        await self.release.wait()
        return Completion(text="late")


def open_client(path: Path, provider: Provider) -> AsyncClient:
    writer = LedgerWriter(SQLiteStore(path))
    return AsyncClient(parse_config(CONFIG), providers={"fake": provider}, ledger=writer)


async def close(client: AsyncClient) -> None:
    await client.aclose()
    assert client.ledger is not None
    client.ledger.store.close()


async def test_a_submitted_call_runs_and_is_fetched_by_id(tmp_path: Path) -> None:
    client = open_client(tmp_path / "ledger.db", FakeProvider(script=["a summary"]))
    job_id = await client.submit("summarise", messages=[Message.user("long text")],
                                 tags=["batch"], temperature=0.2)
    job = await client.job(job_id, wait=True)
    assert job.status == "done"
    assert job.result is not None
    assert job.result.text == "a summary"
    assert job.record is not None
    assert job.record.call_id == job.call_id == job.result.call_id
    assert job.record.output_text == "a summary"
    assert job.record.tags == ("batch",)
    await close(client)


async def test_a_callback_hears_success_and_failure(tmp_path: Path) -> None:
    heard: list[tuple[str, str | None, str | None]] = []

    async def callback(job_id: str, result: CallResult | None,
                       error: BaseException | None) -> None:
        heard.append((job_id, result.text if result else None, type(error).__name__
                      if error else None))

    from buttress.errors import ProviderUnavailable

    fake = FakeProvider(script=["fine", ProviderUnavailable("down", provider="fake")])
    client = open_client(tmp_path / "ledger.db", fake)
    ok = await client.submit("summarise", messages=[Message.user("one")], callback=callback)
    await client.job(ok, wait=True)
    bad = await client.submit("summarise", messages=[Message.user("two")], callback=callback)
    failed = await client.job(bad, wait=True)
    assert heard == [(ok, "fine", None), (bad, None, "AllAttemptsFailed")]
    assert failed.status == "failed"
    assert failed.error is not None
    assert "down" in failed.error
    assert failed.record is not None  # the failed call is in the ledger too
    assert failed.record.status == "error"
    await close(client)


async def test_a_pending_job_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    blocked = Blocked()
    first = open_client(path, blocked)
    job_id = await first.submit("summarise", {}, messages=[Message.user("text")])
    await blocked.started.wait()
    assert (await first.job(job_id)).status == "running"
    await close(first)  # the process stops with the call in flight

    second = open_client(path, FakeProvider(script=["done at last"]))
    assert await second.resume() == [job_id]
    job = await second.job(job_id, wait=True)
    assert job.status == "done"
    assert job.record is not None
    assert job.record.output_text == "done at last"
    assert await second.resume() == []  # nothing left
    await close(second)


async def test_bad_submissions_are_refused_at_once(tmp_path: Path) -> None:
    client = open_client(tmp_path / "ledger.db", FakeProvider())
    with pytest.raises(UsageError, match="unknown feature"):
        await client.submit("nope", messages=[Message.user("x")])
    with pytest.raises(UsageError, match="JSON data"):
        await client.submit("summarise", messages=[Message.user("x")], extra={"f": object()})
    with pytest.raises(UsageError, match="no job"):
        await client.job("missing")
    await close(client)


async def test_without_a_durable_store_submit_says_what_is_missing() -> None:
    client = AsyncClient(parse_config(CONFIG), providers={"fake": FakeProvider()})
    with pytest.raises(UsageError, match="durable job store"):
        await client.submit("summarise", messages=[Message.user("x")])
    await client.aclose()


async def test_a_store_passed_in_is_used(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    client = AsyncClient(parse_config(CONFIG), providers={"fake": FakeProvider(script=["x"])},
                         jobs=store)
    job = await client.job(await client.submit("summarise", messages=[Message.user("q")]),
                           wait=True)
    assert job.status == "done"
    assert job.record is None  # no ledger to read
    await client.aclose()
    assert store.get(job.job_id) is not None  # still open: the caller's to close
    store.close()
