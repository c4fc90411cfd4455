"""The gateway's SSE chunk writer: a batch of arrivals, text events written without a chunk."""

from __future__ import annotations

import orjson
import pytest

from buttress.gateway.wire import ChunkWriter
from buttress.types import StreamChunk, ToolCallDelta, Usage


def writer() -> ChunkWriter:
    return ChunkWriter("c1", "gpt", 1700000000, include_usage=True)


def events(body: bytes) -> list[dict[str, object]]:
    assert body.endswith(b"\n\n")
    return [orjson.loads(e.removeprefix(b"data: ")) for e in body[:-2].split(b"\n\n")]


@pytest.mark.parametrize("text", ["Hello", 'say "hi"\n', "naïve ✓ 🚀", "\\", "</script>"])
def test_a_text_event_is_written_as_its_chunk_would_be(text: str) -> None:
    fast, slow = writer(), writer()
    fast.events([StreamChunk(text="first")])
    slow.chunk(StreamChunk(text="first"))
    assert fast.events([text]) == slow.chunk(StreamChunk(text=text))


def test_a_batch_keeps_order_role_first_and_leaves_out_what_shows_nothing() -> None:
    w = writer()
    batch: list[StreamChunk | str] = [
        "Hel",  # the first event, even as text alone, carries the role
        StreamChunk(usage=Usage(prompt_tokens=3)),  # usage alone: it goes out at the end
        "lo",
        StreamChunk(tool_calls=(ToolCallDelta(index=0, id="call_1", name="f"),)),
        StreamChunk(finish_reason="stop"),
    ]
    out = events(w.events(batch))
    assert [e["choices"][0]["delta"] for e in out] == [  # type: ignore[index]
        {"role": "assistant", "content": "Hel"}, {"content": "lo"},
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                         "function": {"arguments": "", "name": "f"}}]}, {}]
    assert [e["choices"][0]["finish_reason"] for e in out] == [  # type: ignore[index]
        None, None, None, "stop"]
    assert {e["id"] for e in out} == {"chatcmpl-c1"}
    assert w.events([StreamChunk(usage=Usage(prompt_tokens=3))]) == b""
