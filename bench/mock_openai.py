"""A mock OpenAI-compatible upstream for benchmarks: ``POST /v1/chat/completions`` answers the
last user message back after a fixed latency. HTTP/1.1 keep-alive, standard library only.

Run: python bench/mock_openai.py PORT LATENCY_S   (prints "ready" once listening)
"""

from __future__ import annotations

import asyncio
import json
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 latency_s: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = json.loads(body or b"{}")
            messages = request.get("messages") or [{}]
            text = next((m.get("content") for m in reversed(messages)
                         if m.get("role") == "user"), "") or ""
            await asyncio.sleep(latency_s)
            payload = json.dumps({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 0,
                "model": request.get("model", "mock"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
            }).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n"
                         + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, latency_s: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency_s), "127.0.0.1",
                                        port, backlog=256)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
