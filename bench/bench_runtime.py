"""In-process overhead of one call through the full runtime, against a bare httpx client.

Three sides send the same request to the same local mock upstream (the shared gateway harness's
``mock_upstream.py``, 0 ms delay, on its own core) and parse the JSON reply: a bare
``httpx.AsyncClient``; a bare ``PooledTransport`` (the HTTP layer buttress uses, with nothing
above it); and buttress's full runtime. Against the bare transport, the difference is what
buttress adds: building the call, the executor (deadline, fallback, retry, breaker, limit,
timeout), the hooks, the adapter's payload and parsing, the result, and, with ``--ledger``,
queueing the ledger records. Against bare httpx it is what a user switching to buttress sees.

    python bench/bench_runtime.py [--n 3000] [--ledger]

Prints median and p99 for each side and the added latency, interleaving the two sides in rounds
so that drift on a busy machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jiter

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.providers.transport import PooledTransport
from buttress.types import Message

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "gateway"
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


async def main(n: int, ledger: bool) -> None:
    url = f"http://127.0.0.1:{PORT}/v1/chat/completions"
    messages = [Message.user("Classify: my parcel never arrived")]
    payload = {"model": "mock-gpt-2024-01-01",
               "messages": [{"role": "user", "content": messages[0].content}]}
    hooks = []
    writer = None
    if ledger:
        from buttress.ledger.hook import LedgerHook
        from buttress.ledger.sqlite import SQLiteStore
        from buttress.ledger.writer import LedgerWriter

        tmp = tempfile.mkdtemp()
        writer = LedgerWriter(SQLiteStore(Path(tmp) / "ledger.db"))
        hooks.append(LedgerHook(writer))
    bare_http = httpx.AsyncClient()
    client = AsyncClient(parse_config(CONFIG), hooks=hooks)
    await wait_up(f"http://127.0.0.1:{PORT}/health")

    bare: list[float] = []
    pooled: list[float] = []
    full: list[float] = []
    transport = PooledTransport()
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}

    async def one_bare() -> None:
        t = time.perf_counter()
        r = await bare_http.post(url, json=payload)
        r.json()
        bare.append(time.perf_counter() - t)

    async def one_pooled() -> None:
        t = time.perf_counter()
        _status, _headers, stream = await transport.post(url, headers, body)
        jiter.from_json(await stream.aread())
        pooled.append(time.perf_counter() - t)

    async def one_full() -> None:
        t = time.perf_counter()
        await client.call("f", messages=messages)
        full.append(time.perf_counter() - t)

    for _ in range(200):  # warm every pool
        await one_bare()
        await one_pooled()
        await one_full()
    bare.clear()
    pooled.clear()
    full.clear()
    for _ in range(n // 100):
        for _ in range(100):
            await one_bare()
        for _ in range(100):
            await one_pooled()
        for _ in range(100):
            await one_full()
    await client.aclose()
    await bare_http.aclose()
    await transport.aclose()
    if writer is not None:
        writer.close()

    def us(x: float) -> str:
        return f"{x * 1e6:8.1f} µs"

    print(f"calls per side: {len(bare)}   ledger: {'on' if ledger else 'off'}")
    print(f"{'':22} {'median':>11} {'p99':>11}")
    for name, xs in (("bare httpx.AsyncClient", bare), ("bare PooledTransport", pooled),
                     ("buttress full runtime", full)):
        print(f"{name:22} {us(statistics.median(xs))} {us(pct(xs, 0.99))}")
    for name, xs in (("vs bare httpx", bare), ("vs bare pooled", pooled)):
        print(f"added {name:16} {us(statistics.median(full) - statistics.median(xs))} "
              f"{us(pct(full, 0.99) - pct(xs, 0.99))}   ratio "
              f"{statistics.median(full) / statistics.median(xs):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--ledger", action="store_true")
    args = parser.parse_args()
    mock = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(HARNESS / "mock_upstream.py"), "--port",
         str(PORT), "--delay-ms", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(0, {1})
        asyncio.run(main(args.n, args.ledger))
    finally:
        mock.terminate()
        mock.wait()
