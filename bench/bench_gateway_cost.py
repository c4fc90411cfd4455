"""Where a gateway request's CPU goes, without the HTTP server: the gateway's ASGI app driven
in-process, against the shared harness's mock upstream (50 ms, its own core).

The CPU of this process (all threads: the event loop and the ledger writer) per request, for
plain and streamed requests, with the ledger off and on, in interleaved rounds so that drift on a
busy machine hits every side alike. With an open loop of ``--concurrency`` requests in flight it
is what ``buttress serve`` spends a request minus what uvicorn spends (``bench/asgi_floor.py``
measures that under the harness). Every request carries a virtual key with RPM/TPM limits and a
budget, as in ``bench/bench_gateway.sh``.

    python bench/bench_gateway_cost.py [--n 3000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import GATEWAY_TOML, mock_upstream

from buttress.gateway.app import GatewayApp
from buttress.gateway.keys import open_key_store
from buttress.gateway.server import build_gateway

PORT = 9318


def config_text(*, ledger: bool) -> str:
    """``bench/gateway.toml`` on this benchmark's own mock port, the ledger on or off."""
    text = GATEWAY_TOML.read_text().replace("127.0.0.1:9000", f"127.0.0.1:{PORT}")
    return text.replace("[ledger]\n", f"[ledger]\nenabled = {'true' if ledger else 'false'}\n")


MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
BODIES = {
    "plain": orjson.dumps({"model": "mock-gpt", "messages": MESSAGES}),
    "stream": orjson.dumps({"model": "mock-gpt", "messages": MESSAGES, "stream": True,
                            "stream_options": {"include_usage": True}}),
}


def project(root: Path, *, ledger: bool) -> tuple[Path, str]:
    """A project directory with one virtual key; returns its config path and the key."""
    root.mkdir(parents=True)
    config = root / "buttress.toml"
    config.write_text(config_text(ledger=ledger))
    store = open_key_store("sqlite:///ledger.db", base_dir=root)
    try:
        _key, secret = store.create("bench", rpm=10_000_000, tpm=1_000_000_000,
                                    budget_daily_usd=1_000_000.0)
    finally:
        store.close()
    return config, secret


async def request(app: GatewayApp, body: bytes, secret: str) -> None:
    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST",
             "headers": [(b"authorization", b"Bearer " + secret.encode()),
                         (b"content-length", str(len(body)).encode())]}
    done = asyncio.Event()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # a client that stays connected until its answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    done.set()
    if status != 200:
        raise RuntimeError(f"gateway answered {status}")


async def cpu_per_request(app: GatewayApp, body: bytes, secret: str, n: int,
                          concurrency: int) -> float:
    async def worker(k: int) -> None:
        for _ in range(k):
            await request(app, body, secret)

    start = time.process_time()
    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    return (time.process_time() - start) / (n // concurrency * concurrency)


async def main(n: int, concurrency: int, rounds: int) -> None:
    os.environ.setdefault("BENCH_UPSTREAM_KEY", "sk-mock-upstream")
    root = Path(tempfile.mkdtemp())
    gateways = {}
    for name, ledger in (("ledger off", False), ("ledger on", True)):
        config, secret = project(root / name.replace(" ", "-"), ledger=ledger)
        gw = build_gateway(config)
        await gw.reload_keys(force=True)
        gw.client.load_prompts()
        gateways[name] = (GatewayApp(gw), gw, secret)
    async with httpx.AsyncClient() as probe:
        for _ in range(100):
            try:
                await probe.get(f"http://127.0.0.1:{PORT}/health")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    results: dict[tuple[str, str], list[float]] = {}
    for warm in (True, False):
        for _ in range(1 if warm else rounds):
            for kind, body in BODIES.items():
                count = n if kind == "plain" else max(concurrency, n // 10)
                for name, (app, gw, secret) in gateways.items():
                    cpu = await cpu_per_request(app, body, secret, 200 if warm else count,
                                                concurrency)
                    if gw.client.ledger is not None:  # its writer's share is this side's
                        start = time.process_time()
                        await asyncio.to_thread(gw.client.ledger.flush)
                        cpu += (time.process_time() - start) / count
                    if not warm:
                        results.setdefault((kind, name), []).append(cpu)
    for _app, gw, _secret in gateways.values():
        await gw.client.aclose()
    print(f"CPU per request of the gateway app (no HTTP server), {concurrency} in flight, "
          f"median of {rounds} rounds:")
    for kind in BODIES:
        off = statistics.median(results[(kind, "ledger off")])
        on = statistics.median(results[(kind, "ledger on")])
        print(f"  {kind:6}  ledger off {off * 1e6:7.0f} µs   ledger on {on * 1e6:7.0f} µs   "
              f"the ledger's share {(on - off) * 1e6:6.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with mock_upstream(PORT, delay_ms=50):
        import uvloop

        uvloop.run(main(args.n, args.concurrency, args.rounds))
