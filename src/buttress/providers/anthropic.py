"""The Anthropic Messages API (``POST {base}/v1/messages``).

Structured output: Anthropic's native mechanism here is a forced tool call. A ``response_format``
adds a tool named ``response_format.name`` whose ``input_schema`` is the schema (``{"type":
"object"}`` for ``json_object``) and forces ``tool_choice`` to it; the tool's input comes back as
the completion's ``text`` (a JSON string), with finish reason ``stop``, never as a tool call.
Streamed, its ``input_json_delta`` fragments arrive as text. Forcing a tool cannot be combined
with extended thinking; Anthropic answers that with a 400.

Usage: ``prompt_tokens`` counts every input token (``input_tokens`` plus cache reads and cache
writes, as OpenAI counts them); ``cached_tokens`` is ``cache_read_input_tokens``.
Unknown stop reasons raise ``MalformedResponse`` naming the value; a stream without
``message_stop`` is truncated and raises ``MalformedResponse``. ``seed`` and ``logprobs`` have
no Anthropic equivalent and are not sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import httpx
import jiter

from buttress.errors import BadRequest, MalformedResponse, ProviderError
from buttress.providers.base import Provider
from buttress.providers.http import (
    SHAPE_ERRORS,
    describe_shape_error,
    done_reading,
    error_from_object,
    iter_sse,
    merge_extra,
    open_stream,
    parse_json,
    post_json,
    redact_secret,
)
from buttress.types import (
    CallRequest,
    Completion,
    FinishReason,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",  # a long server-tool turn was paused: the answer is incomplete
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider(Provider):
    """Claude models through the Messages API."""

    def __init__(self, name: str, *, base_url: str | None, api_key: str | None,
                 http: httpx.AsyncClient, headers: dict[str, str] | None = None,
                 default_max_tokens: int = 1024, version: str = API_VERSION,
                 stop_reasons: Mapping[str, FinishReason] | None = None) -> None:
        self.name = name
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        self._http = http
        self._secret = api_key
        self._headers = {"anthropic-version": version, **(headers or {})}
        if api_key:
            self._headers["x-api-key"] = api_key
        # the API requires max_tokens; this is sent when the request does not set one
        self.default_max_tokens = default_max_tokens
        self._stop_reasons = {**STOP_REASONS, **(stop_reasons or {})}

    def __repr__(self) -> str:  # never the key
        return f"AnthropicProvider(name={self.name!r}, url={self.url!r})"

    # -- request -------------------------------------------------------------------------------

    def build_payload(self, request: CallRequest, *, stream: bool = False) -> dict[str, Any]:
        """The JSON body for ``request``."""
        system, messages = self._messages(request.messages)
        payload: dict[str, Any] = {"model": request.model,
                                   "max_tokens": request.max_tokens or self.default_max_tokens,
                                   "messages": messages}
        if system:
            payload["system"] = system
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop_sequences"] = list(request.stop)
        tools = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                 for t in request.tools]
        if request.tool_choice:
            payload["tool_choice"] = _tool_choice(request.tool_choice)
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            schema = fmt.json_schema if fmt.type == "json_schema" else None
            tools.append({"name": fmt.name, "description": "Reply with the answer as input "
                          "to this tool.", "input_schema": schema or {"type": "object"}})
            payload["tool_choice"] = {"type": "tool", "name": fmt.name}
        if tools:
            payload["tools"] = tools
        if stream:
            payload["stream"] = True
        if request.extra:
            merge_extra(payload, request.extra)
        return payload

    def _messages(self, messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
        system: list[str] = []
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                system.append(m.content or "")
            elif m.role == "tool":
                block = {"type": "tool_result", "tool_use_id": m.tool_call_id,
                         "content": m.content or ""}
                last = out[-1] if out else None
                # results of one assistant turn go back together, in one user message
                if last is not None and last["role"] == "user" and isinstance(last["content"],
                                                                                list):
                    last["content"].append(block)
                else:
                    out.append({"role": "user", "content": [block]})
            elif m.tool_calls:
                blocks: list[dict[str, Any]] = []
                if m.content:
                    blocks.append({"type": "text", "text": m.content})
                blocks.extend({"type": "tool_use", "id": c.id, "name": c.name,
                               "input": self._arguments(c)} for c in m.tool_calls)
                out.append({"role": "assistant", "content": blocks})
            else:
                out.append({"role": m.role, "content": m.content or ""})
        return "\n\n".join(system), out

    def _arguments(self, call: ToolCall) -> Any:
        try:
            value = jiter.from_json(call.arguments.encode())
        except ValueError as exc:
            raise BadRequest(f"tool call {call.id!r} arguments are not JSON: {exc}",
                             provider=self.name) from exc
        if not isinstance(value, dict):
            raise BadRequest(f"tool call {call.id!r} arguments must be a JSON object",
                             provider=self.name)
        return value

    # -- complete ------------------------------------------------------------------------------

    async def complete(self, request: CallRequest) -> Completion:
        try:
            data = await post_json(self._http, self.url, self.build_payload(request),
                                   self._headers, provider=self.name, model=request.model)
            return self.parse_message(data, model=request.model,
                                      output_tool=_output_tool_name(request))
        except ProviderError as exc:
            redact_secret(exc, self._secret)
            raise

    def parse_message(self, data: Any, *, model: str, output_tool: str | None = None) -> Completion:
        """A ``Completion`` from a decoded Message body."""
        if not isinstance(data, dict):
            raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}",
                                    provider=self.name, model=model)
        if data.get("type") == "error":
            raise error_from_object(data.get("error"), provider=self.name, model=model)
        try:
            texts: list[str] = []
            calls: list[ToolCall] = []
            structured: str | None = None
            for block in data["content"]:
                kind = block["type"]
                if kind == "text":
                    texts.append(block["text"])
                elif kind == "tool_use":
                    arguments = json.dumps(block["input"], ensure_ascii=False)
                    if block["name"] == output_tool:
                        structured = arguments
                    else:
                        calls.append(ToolCall(id=block["id"], name=block["name"],
                                              arguments=arguments))
                # thinking, redacted_thinking and server-tool blocks are not the answer
            finish = self._finish(data.get("stop_reason"), model)
            if structured is not None:
                text: str | None = structured
                if finish == "tool_calls":
                    finish = "stop"
            else:
                text = "".join(texts) if texts or not calls else None
            return Completion(text=text, tool_calls=tuple(calls), finish_reason=finish,
                              usage=_usage(data.get("usage") or {}), model=data.get("model") or "",
                              response_id=data.get("id"))
        except SHAPE_ERRORS as exc:
            raise MalformedResponse(f"unreadable message: {describe_shape_error(exc)}",
                                    provider=self.name, model=model) from exc

    def _finish(self, value: Any, model: str) -> FinishReason:
        reason = self._stop_reasons.get(value) if isinstance(value, str) else None
        if reason is None:
            raise MalformedResponse(f"unknown stop_reason {value!r}", provider=self.name,
                                    model=model)
        return reason

    # -- stream --------------------------------------------------------------------------------

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        model = request.model
        state = _StreamState(_output_tool_name(request))
        try:
            async with open_stream(self._http, self.url, self.build_payload(request, stream=True),
                                   self._headers, provider=self.name, model=model) as response, \
                    aclosing(iter_sse(response, provider=self.name, model=model)) as events:
                async for event in events:
                    data = parse_json(event.data, provider=self.name, model=model,
                                      what="stream event")
                    try:
                        chunk = self._event(data, state, model)
                    except SHAPE_ERRORS as exc:
                        raise MalformedResponse(
                            f"unreadable stream event: {describe_shape_error(exc)}",
                            provider=self.name, model=model) from exc
                    if state.stopped:  # the last event: the body's end may come later
                        done_reading(response)
                    if chunk is not None:
                        yield chunk
                    if state.stopped:
                        break
            if not state.stopped:
                raise MalformedResponse("stream ended before message_stop (truncated)",
                                        provider=self.name, model=model)
        except ProviderError as exc:
            redact_secret(exc, self._secret)
            raise

    def _event(self, data: Any, state: _StreamState, model: str) -> StreamChunk | None:
        kind = data["type"]
        if kind == "content_block_delta":
            delta = data["delta"]
            dtype = delta["type"]
            if dtype == "text_delta":
                return StreamChunk(text=delta["text"])
            if dtype == "input_json_delta":
                index = data["index"]
                if index == state.output_block:
                    return StreamChunk(text=delta["partial_json"])
                return StreamChunk(tool_calls=(ToolCallDelta(
                    index=state.tool_index[index], arguments=delta["partial_json"]),))
            return None  # thinking, signature and citation deltas are not the answer
        if kind == "content_block_start":
            block = data["content_block"]
            if block["type"] != "tool_use":
                return None
            if block["name"] == state.output_tool:
                state.output_block = data["index"]
                return None
            position = len(state.tool_index)
            state.tool_index[data["index"]] = position
            return StreamChunk(tool_calls=(ToolCallDelta(index=position, id=block["id"],
                                                         name=block["name"]),))
        if kind == "message_start":
            message = data["message"]
            state.usage.update(message.get("usage") or {})
            return StreamChunk(model=message.get("model") or None, response_id=message.get("id"))
        if kind == "message_delta":
            state.usage.update(data.get("usage") or {})
            finish: FinishReason | None = None
            stop_reason = data["delta"].get("stop_reason")
            if stop_reason is not None:
                finish = self._finish(stop_reason, model)
                state.finished = True
                if finish == "tool_calls" and state.output_block is not None:
                    finish = "stop"
            return StreamChunk(finish_reason=finish, usage=_usage(state.usage))
        if kind == "message_stop":
            if not state.finished:
                raise MalformedResponse("message_stop without a stop_reason", provider=self.name,
                                        model=model)
            state.stopped = True
            return None
        if kind == "error":
            raise error_from_object(data.get("error"), provider=self.name, model=model)
        return None  # ping, content_block_stop, and event types added later


class _StreamState:
    __slots__ = ("finished", "output_block", "output_tool", "stopped", "tool_index", "usage")

    def __init__(self, output_tool: str | None) -> None:
        self.output_tool = output_tool
        self.output_block: int | None = None
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.usage: dict[str, Any] = {}
        self.finished = False
        self.stopped = False


def _output_tool_name(request: CallRequest) -> str | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    return fmt.name


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def _usage(raw: dict[str, Any]) -> Usage:
    cache_read = raw.get("cache_read_input_tokens") or 0
    return Usage(
        prompt_tokens=(raw.get("input_tokens") or 0) + cache_read
        + (raw.get("cache_creation_input_tokens") or 0),
        completion_tokens=raw.get("output_tokens") or 0,
        cached_tokens=cache_read,
    )
