"""Responses and stream chunks validate against OpenAI's published spec; schemathesis fuzzes it.

The spec lives in ``../shared/contracts/openai-openapi.json`` (beside the repository).
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import orjson
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from buttress.testing.fake import Reply
from buttress.types import TokenLogprob, ToolCall, TopLogprob

from .harness import Harness

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "openai-openapi.json"


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())  # type: ignore[no-any-return]


@cache
def validator(component: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:openai", Resource.from_contents(spec(), default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:openai#/components/schemas/{component}"}, registry=registry)


def check(component: str, instance: Any) -> None:
    errors = list(validator(component).iter_errors(instance))
    assert not errors, f"{component}: {errors[0].message} at {list(errors[0].absolute_path)}"


def properties(name: str) -> set[str]:
    """Property names of a component, through ``allOf`` and ``$ref``."""
    schema = spec()["components"]["schemas"][name]
    out = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        if "$ref" in part:
            out |= properties(part["$ref"].rsplit("/", 1)[1])
        out |= set(part.get("properties", {}))
    return out


REQUEST_FIELDS = properties("CreateChatCompletionRequest")


def sse_events(body: bytes) -> list[Any]:
    events = []
    for block in body.decode().split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            events.append(json.loads(data[0]))
    return events


LOGPROBS = (TokenLogprob(token="Hé", logprob=-0.2, top=(TopLogprob(token="Hé", logprob=-0.2),)),)
TOOL = ToolCall(id="call_9", name="lookup", arguments='{"q": 1}')


async def test_responses_and_chunks_validate_against_the_spec(harness: Harness) -> None:
    harness.mock.script = iter([Reply(text="Hé there", logprobs=LOGPROBS),
                                Reply(tool_calls=(TOOL,)),
                                Reply(text="streamed text", chunk_size=3, logprobs=LOGPROBS),
                                Reply(tool_calls=(TOOL,))])
    harness.mock.__post_init__()
    base = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    for extra in ({"logprobs": True}, {"tools": [
            {"type": "function", "function": {"name": "lookup"}}]}):
        response = await harness.http.post("/v1/chat/completions", json={**base, **extra})
        assert response.status_code == 200
        check("CreateChatCompletionResponse", response.json())
    for extra in ({"logprobs": True}, {"tools": [
            {"type": "function", "function": {"name": "lookup"}}]}):
        response = await harness.http.post("/v1/chat/completions", json={
            **base, **extra, "stream": True, "stream_options": {"include_usage": True}})
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.content.endswith(b"data: [DONE]\n\n")
        events = sse_events(response.content)
        assert len(events) >= 2
        for event in events:
            check("CreateChatCompletionStreamResponse", event)
        assert events[-1]["usage"]["total_tokens"] > 0
    models = await harness.http.get("/v1/models")
    check("ListModelsResponse", models.json())
    for status, response in (
            (404, await harness.http.post("/v1/chat/completions",
                                          json={**base, "model": "unknown"})),
            (400, await harness.http.post("/v1/chat/completions", content=b"{")),
    ):
        assert response.status_code == status
        check("ErrorResponse", response.json())


def fuzz(harness: Harness, operation: Any, examples: int) -> list[int]:
    """Run ``examples`` generated cases of ``operation``; returns the statuses seen."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    seen: list[int] = []

    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        if isinstance(case.body, dict) and len(seen) % 2:
            # every other case names a configured model and keeps to the spec's fields, so
            # generated bodies get past routing into the runtime
            case.body = {k: v for k, v in case.body.items() if k in REQUEST_FIELDS}
            case.body["model"] = "gpt"
        response = case.call(app=harness.app)
        seen.append(response.status_code)
        content_type = (response.headers.get("content-type") or [""])[0]
        if content_type.startswith("text/event-stream"):
            # schemathesis cannot read SSE: check each chunk against the spec here
            for event in sse_events(response.content):
                if "error" not in event:
                    check("CreateChatCompletionStreamResponse", event)
            return
        case.validate_response(response, checks=checks)
        if response.status_code >= 400:
            check("ErrorResponse", orjson.loads(response.content))

    run()
    return seen


def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path: Path) -> None:
    import schemathesis

    harness = Harness(tmp_path)
    schema = schemathesis.openapi.from_dict(spec())
    try:
        chat = fuzz(harness, schema.find_operation_by_id("createChatCompletion"), 100)
        models = fuzz(harness, schema.find_operation_by_id("listModels"), 5)
    finally:
        asyncio.run(harness.aclose())
    assert chat
    assert max(chat) < 500
    assert chat.count(200) >= 3, chat  # the success path was exercised too
    assert models
    assert set(models) == {200}


@pytest.mark.parametrize("content", [
    [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
])
async def test_text_content_parts_are_joined(harness: Harness, content: Any) -> None:
    response = await harness.http.post("/v1/chat/completions", json={
        "model": "gpt", "messages": [{"role": "developer", "content": "be brief"},
                                     {"role": "user", "content": content}]})
    assert response.status_code == 200
    sent = harness.mock.requests[0].messages
    assert [m.role for m in sent] == ["system", "user"]
    assert sent[1].content == "ab"
