"""The HTTP server's own cost: a canned chat completion from a bare ASGI app under uvicorn.

Served exactly as ``buttress serve`` serves the gateway (``gateway.server.uvicorn_config``:
uvloop, httptools, no access log), it answers ``POST /v1/chat/completions`` like the harness's
mock upstream: JSON after ``--delay-ms``, or with ``"stream": true`` a role chunk after the delay,
``--chunks`` content chunks ``--chunk-ms`` apart and ``[DONE]``. Whatever CPU it spends a request
is the server's, not buttress's: measured under ``../shared/bench/gateway`` like any gateway
(``bench/bench_gateway.sh`` does, with ``FLOOR_ASGI=1``), it is the part of the gateway's CPU a
request that no change to buttress can remove.

    python bench/asgi_floor.py --port 8190 [--delay-ms 50 --chunks 20 --chunk-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from buttress.gateway.server import uvicorn_config

Scope = dict[str, Any]


def app_for(delay_s: float, chunks: int, chunk_s: float) -> Any:
    completion = orjson.dumps({
        "id": "chatcmpl-floor", "object": "chat.completion", "created": 0, "model": "mock-gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})
    head = b'data: {"id":"chatcmpl-floor","object":"chat.completion.chunk","created":0,' \
           b'"model":"mock-gpt","choices":'

    def event(choices: bytes) -> bytes:
        return head + choices + b"}\n\n"

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (message := await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = b'"stream":true' in body or b'"stream": true' in body
        await asyncio.sleep(delay_s)
        if not stream:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(completion)).encode())]})
            await send({"type": "http.response.body", "body": completion})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "more_body": True, "body": event(
            b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]')})
        for i in range(chunks):
            if i:
                await asyncio.sleep(chunk_s)
            await send({"type": "http.response.body", "more_body": True, "body": event(
                b'[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]')})
        await send({"type": "http.response.body", "more_body": True, "body": event(
            b'[{"index":0,"delta":{},"finish_reason":"stop"}]')})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-ms", type=float, default=10.0)
    args = parser.parse_args()
    app = app_for(args.delay_ms / 1000, args.chunks, args.chunk_ms / 1000)
    uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
