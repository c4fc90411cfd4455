"""In-process overhead of one call through the full runtime, and what the ledger adds to it.

Four sides send the same request to the same local mock upstream (the shared gateway harness's
``mock_upstream.py``, 0 ms delay, on its own core) and parse the JSON reply, interleaved in rounds
of 100 so that drift on a busy machine hits all alike:

- a bare ``httpx.AsyncClient``;
- a bare ``PooledTransport`` (buttress's HTTP layer with nothing above it);
- buttress's full runtime with the ledger off: against the bare transport, what the runtime adds
  (building the call, executor policies, hooks, metrics, budgets, adapter, result);
- the same with the ledger on (SQLite, the writer thread): against ledger off, what recording
  adds to a call.

    python bench/bench_runtime.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import jiter
from harness import mock_upstream

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter
from buttress.providers.transport import PooledTransport
from buttress.types import Message

PORT = 9317
CONFIG = f"""
[providers.mock]
type = "openai"
base_url = "http://127.0.0.1:{PORT}/v1"

[models.m]
provider = "mock"
model = "mock-gpt-2024-01-01"

[features.f]
models = ["m"]
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    raise RuntimeError("mock upstream did not start")


async def main(n: int) -> None:
    url = f"http://127.0.0.1:{PORT}/v1/chat/completions"
    messages = [Message.user("Classify: my parcel never arrived")]
    payload = {"model": "mock-gpt-2024-01-01",
               "messages": [{"role": "user", "content": messages[0].content}]}
    writer = LedgerWriter(SQLiteStore(Path(tempfile.mkdtemp()) / "ledger.db"))
    bare_http = httpx.AsyncClient()
    plain = AsyncClient(parse_config(CONFIG))
    recorded = AsyncClient(parse_config(CONFIG), ledger=writer)
    await wait_up(f"http://127.0.0.1:{PORT}/health")
    transport = PooledTransport()
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}

    async def bare() -> None:
        (await bare_http.post(url, json=payload)).json()

    async def pooled() -> None:
        _status, _headers, stream = await transport.post(url, headers, body)
        jiter.from_json(await stream.aread())

    async def off() -> None:
        await plain.call("f", messages=messages)

    async def on() -> None:
        await recorded.call("f", messages=messages)

    sides = {"bare httpx.AsyncClient": bare, "bare PooledTransport": pooled,
             "buttress, ledger off": off, "buttress, ledger on": on}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for warm in (True, False):
        for _ in range(2 if warm else n // 100):
            for name, fn in sides.items():  # rounds of 100, interleaved: drift hits all alike
                for _ in range(100):
                    t = time.perf_counter()
                    await fn()
                    if not warm:
                        times[name].append(time.perf_counter() - t)
    await plain.aclose()
    await recorded.aclose()  # flushes the ledger
    await bare_http.aclose()
    await transport.aclose()

    def us(x: float) -> str:
        return f"{x * 1e6:8.1f} µs"

    med = {name: statistics.median(xs) for name, xs in times.items()}
    p99 = {name: pct(xs, 0.99) for name, xs in times.items()}
    print(f"calls per side: {len(times['bare PooledTransport'])}")
    print(f"{'':24} {'median':>11} {'p99':>11}")
    for name in sides:
        print(f"{name:24} {us(med[name])} {us(p99[name])}")
    for label, a, b in (("runtime adds", "buttress, ledger off", "bare PooledTransport"),
                        ("ledger adds", "buttress, ledger on", "buttress, ledger off"),
                        ("vs bare httpx", "buttress, ledger on", "bare httpx.AsyncClient")):
        print(f"{label:24} {us(med[a] - med[b])} {us(p99[a] - p99[b])}   ratio "
              f"{med[a] / med[b]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with mock_upstream(PORT, delay_ms=0):
        asyncio.run(main(args.n))
