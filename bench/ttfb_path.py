"""Where a streamed request's added time to first byte goes: the gateway's ASGI app driven
in-process (no HTTP server), one stream at a time, against the shared harness's mock upstream
(50 ms, its own core).

The added time to first byte is the gateway's work on the way in (request received to upstream
request written) plus its work on the way out (the upstream's first bytes received to the first
body bytes handed to the server). Both are timed here, per stream, from marks set by wrapping
the pooled transport's ``start`` (the request's write) and ``data_received`` (its first
arrival) and the ASGI ``send``; the upstream's own wait is left out. Streams are spaced
``--gap-ms`` apart (50: one stream at a time at 20 a second, as the harness's slow rate), so a
stream finds the caches as it would at that rate.

At that rate this is the gateway's cold path: a request's code runs several times slower than
when it runs back to back, so what a change saves shows best here, and it drifts with the
machine. Two revisions are compared in alternating rounds (each a fresh process over its own
``src``), which the drift hits alike:

    python bench/ttfb_path.py [--n 200] [--gap-ms 50]               # the working tree
    python bench/ttfb_path.py REV_A REV_B [--rounds 4] [--n 150]    # A/B (WORKTREE: the tree)
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
from typing import Any

from bench_gateway_cost import BODIES, PORT, project
from harness import mock_upstream

_marks: dict[str, float] = {}


def _instrument() -> None:
    from buttress.providers import transport

    start, received = transport._Connection.start, transport._Connection.data_received

    def timed_start(self: Any, payload: bytes) -> Any:
        out = start(self, payload)
        _marks.setdefault("written", time.perf_counter())
        return out

    def timed_received(self: Any, data: bytes) -> None:
        _marks.setdefault("arrived", time.perf_counter())
        received(self, data)

    transport._Connection.start = timed_start  # type: ignore[method-assign]
    transport._Connection.data_received = timed_received  # type: ignore[method-assign]


async def one(app: Any, body: bytes, secret: str) -> tuple[float, float]:
    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST",
             "headers": [(b"authorization", b"Bearer " + secret.encode()),
                         (b"content-length", str(len(body)).encode())]}
    done = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message.get("body"):
            _marks.setdefault("first_body", time.perf_counter())

    _marks.clear()
    begun = time.perf_counter()
    await app(scope, receive, send)
    done.set()
    return _marks["written"] - begun, _marks["first_body"] - _marks["arrived"]


async def measure(n: int, gap_s: float) -> dict[str, list[float]]:
    """Seconds on the way in and on the way out, per stream."""
    from buttress.gateway.app import GatewayApp
    from buttress.gateway.server import build_gateway

    os.environ.setdefault("BENCH_UPSTREAM_KEY", "sk-mock-upstream")
    config, secret = project(Path(tempfile.mkdtemp()) / "p", ledger=True)
    gw = build_gateway(config)
    await gw.reload_keys(force=True)
    gw.client.load_prompts()
    app = GatewayApp(gw)
    _instrument()
    for _ in range(100):  # until the mock answers
        try:
            await one(app, BODIES["stream"], secret)
            break
        except (KeyError, OSError):
            await asyncio.sleep(0.05)
    ins, outs = [], []
    for i in range(n + 20):
        await asyncio.sleep(gap_s)
        way_in, way_out = await one(app, BODIES["stream"], secret)
        if i >= 20:
            ins.append(way_in)
            outs.append(way_out)
    await gw.client.aclose()
    return {"in": ins, "out": outs, "sum": [a + b for a, b in zip(ins, outs, strict=True)]}


PARTS = (("in", "in  (request -> upstream write)"), ("out", "out (upstream bytes -> first body)"),
         ("sum", "sum"))


def run_here(n: int, gap_s: float) -> dict[str, list[float]]:
    import uvloop

    return uvloop.run(measure(n, gap_s))


def ab(args: argparse.Namespace) -> None:
    from icount_gateway import sources

    here = os.path.dirname(os.path.abspath(__file__))
    p50s: dict[tuple[str, str], list[float]] = {}
    with sources(args.revs) as srcs, mock_upstream(PORT, delay_ms=50):
        for r in range(args.rounds):
            for rev, src in zip(args.revs, srcs, strict=True):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", "--n", str(args.n), "--gap-ms",
                     str(args.gap_ms)], capture_output=True, text=True, check=True,
                    env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{here}"}).stdout
                got = json.loads(out.strip().splitlines()[-1])
                for part, _ in PARTS:
                    p50s.setdefault((rev, part), []).append(statistics.median(got[part]))
                print(f"round {r + 1} {rev[:14]:14} " + "  ".join(
                    f"{part} {statistics.median(got[part]) * 1e6:5.0f}" for part, _ in PARTS),
                    flush=True)
    a, b = args.revs
    print(f"median of {args.rounds} rounds' p50, µs:   {a[:14]:>14} {b[:14]:>14}   B / A")
    for part, name in PARTS:
        ma, mb = statistics.median(p50s[(a, part)]), statistics.median(p50s[(b, part)])
        print(f"  {name:36} {ma * 1e6:14.0f} {mb * 1e6:14.0f}   {mb / ma:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("revs", nargs="*", metavar="REV")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one round of an A/B: the mock runs already; the results as JSON
        os.sched_setaffinity(0, {1})
        print(json.dumps(run_here(args.n, args.gap_ms / 1000)))
    elif args.revs:
        if len(args.revs) != 2:
            parser.error("give two revisions, or none")
        ab(args)
    else:
        with mock_upstream(PORT, delay_ms=50):
            got = run_here(args.n, args.gap_ms / 1000)
        print(f"{args.n} streams, {args.gap_ms:.0f} ms apart; µs p50 / p90:")
        for part, name in PARTS:
            xs = got[part]
            print(f"  {name:36} {statistics.median(xs) * 1e6:7.0f} "
                  f"{statistics.quantiles(xs, n=10)[8] * 1e6:7.0f}")


if __name__ == "__main__":
    main()
