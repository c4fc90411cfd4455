"""The Google Gemini API (``POST {base}/v1beta/models/{model}:generateContent``).

Structured output uses Gemini's native mechanism: ``responseMimeType: application/json`` plus a
schema. By default (``schema_dialect="openapi"``) the schema goes in ``responseSchema``, which
takes an OpenAPI subset, so it is converted: local ``$ref``s are inlined, ``["x", "null"]`` types
and null ``anyOf`` branches become ``nullable``, ``const`` becomes a one-value ``enum``, and keys
Gemini does not know (``$schema``, ``additionalProperties``, ``title``...) are dropped. Tool
parameters go through the same conversion. With ``schema_dialect="json_schema"`` schemas are sent
untouched as ``responseJsonSchema`` / ``parametersJsonSchema`` (newer models accept JSON Schema).

Tool results go back as ``functionResponse`` parts named after the call they answer: a result
that is a JSON object is sent as the response, anything else as ``{"result": <text>}``.
Usage: ``completion_tokens`` counts candidates plus thoughts (as OpenAI counts reasoning);
``reasoning_tokens`` is ``thoughtsTokenCount``, ``cached_tokens`` ``cachedContentTokenCount``.
Thought parts are not part of the text. A candidate that stopped with ``STOP`` after function
calls finishes as ``tool_calls``. Unknown finish reasons raise ``MalformedResponse`` naming the
value; a stream that ends without a finish reason is truncated and raises ``MalformedResponse``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Literal

import httpx
import jiter

from buttress.errors import BadRequest, MalformedResponse, ProviderError
from buttress.providers.base import Provider
from buttress.providers.http import (
    SHAPE_ERRORS,
    describe_shape_error,
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
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

FINISH_REASONS: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "error",
    "OTHER": "error",
    "IMAGE_OTHER": "error",
    "NO_IMAGE": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "FINISH_REASON_UNSPECIFIED": "error",
}

SchemaDialect = Literal["openapi", "json_schema"]


class GeminiProvider(Provider):
    """Gemini models through the Generative Language API."""

    def __init__(self, name: str, *, base_url: str | None, api_key: str | None,
                 http: httpx.AsyncClient, headers: dict[str, str] | None = None,
                 api_version: str = "v1beta", schema_dialect: SchemaDialect = "openapi",
                 finish_reasons: Mapping[str, FinishReason] | None = None) -> None:
        self.name = name
        self.base = f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/{api_version}/models/"
        self._http = http
        self._secret = api_key
        self._headers = dict(headers or {})
        if api_key:
            self._headers["x-goog-api-key"] = api_key
        self.schema_dialect = schema_dialect
        self._finish_reasons = {**FINISH_REASONS, **(finish_reasons or {})}

    def __repr__(self) -> str:  # never the key
        return f"GeminiProvider(name={self.name!r}, base={self.base!r})"

    def url(self, model: str, *, stream: bool = False) -> str:
        model = model.removeprefix("models/")
        if stream:
            return f"{self.base}{model}:streamGenerateContent?alt=sse"
        return f"{self.base}{model}:generateContent"

    # -- request -------------------------------------------------------------------------------

    def build_payload(self, request: CallRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (the same for streamed and plain calls)."""
        system, contents = self._contents(request.messages)
        payload: dict[str, Any] = {"contents": contents}
        if system:
            payload["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.top_p is not None:
            config["topP"] = request.top_p
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if request.seed is not None:
            config["seed"] = request.seed
        if request.logprobs:
            config["responseLogprobs"] = True
            if request.top_logprobs is not None:
                config["logprobs"] = request.top_logprobs
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            config["responseMimeType"] = "application/json"
            if fmt.type == "json_schema" and fmt.json_schema is not None:
                if self.schema_dialect == "json_schema":
                    config["responseJsonSchema"] = fmt.json_schema
                else:
                    config["responseSchema"] = openapi_schema(fmt.json_schema)
        if config:
            payload["generationConfig"] = config
        if request.tools:
            payload["tools"] = [{"functionDeclarations": [self._declaration(t)
                                                          for t in request.tools]}]
        if request.tool_choice:
            payload["toolConfig"] = {"functionCallingConfig": _tool_choice(request.tool_choice)}
        if request.extra:
            merge_extra(payload, request.extra)
        return payload

    def _declaration(self, tool: Tool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if self.schema_dialect == "json_schema":
            out["parametersJsonSchema"] = tool.parameters
        elif tool.parameters.get("properties"):  # Gemini rejects an object with no properties
            out["parameters"] = openapi_schema(tool.parameters)
        return out

    def _contents(self, messages: tuple[Message, ...]) -> tuple[list[str], list[dict[str, Any]]]:
        system: list[str] = []
        contents: list[dict[str, Any]] = []
        call_names: dict[str, str] = {}  # tool call id -> function name, for functionResponse
        for m in messages:
            if m.role == "system":
                system.append(m.content or "")
            elif m.role == "tool":
                name = call_names.get(m.tool_call_id or "") or m.name
                if not name:
                    raise BadRequest(f"tool message for call {m.tool_call_id!r} names no function "
                                     "and answers no earlier tool call", provider=self.name)
                part = {"functionResponse": {"name": name, "response": _tool_response(m.content)}}
                last = contents[-1] if contents else None
                # the responses to one model turn go back together, in one user turn
                if last is not None and last["role"] == "user" and "functionResponse" in \
                        last["parts"][-1]:
                    last["parts"].append(part)
                else:
                    contents.append({"role": "user", "parts": [part]})
            elif m.role == "assistant":
                parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
                for call in m.tool_calls:
                    call_names[call.id] = call.name
                    parts.append({"functionCall": {"name": call.name,
                                                   "args": self._arguments(call)}})
                contents.append({"role": "model", "parts": parts or [{"text": ""}]})
            else:
                contents.append({"role": "user", "parts": [{"text": m.content or ""}]})
        return system, contents

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
        model = request.model
        try:
            data = await post_json(self._http, self.url(model), self.build_payload(request),
                                   self._headers, provider=self.name, model=model)
            chunk = self._parse(data, model, calls_before=0)
            if chunk.finish_reason is None:
                raise MalformedResponse("response has no finishReason", provider=self.name,
                                        model=model)
            calls = tuple(ToolCall(id=d.id or f"call_{d.index}", name=d.name or "",
                                   arguments=d.arguments) for d in chunk.tool_calls)
            return Completion(text=chunk.text if chunk.text or not calls else None,
                              tool_calls=calls, finish_reason=chunk.finish_reason,
                              usage=chunk.usage or Usage(), model=chunk.model or "",
                              response_id=chunk.response_id, logprobs=chunk.logprobs or None)
        except ProviderError as exc:
            redact_secret(exc, self._secret)
            raise

    # -- stream --------------------------------------------------------------------------------

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        model = request.model
        calls = 0
        finished = False
        try:
            async with open_stream(self._http, self.url(model, stream=True),
                                   self.build_payload(request), self._headers,
                                   provider=self.name, model=model) as response, \
                    aclosing(iter_sse(response, provider=self.name, model=model)) as events:
                async for event in events:
                    data = parse_json(event.data, provider=self.name, model=model,
                                      what="stream event")
                    chunk = self._parse(data, model, calls_before=calls)
                    calls += len(chunk.tool_calls)
                    finished = finished or chunk.finish_reason is not None
                    yield chunk
            if not finished:
                raise MalformedResponse("stream ended without a finishReason (truncated)",
                                        provider=self.name, model=model)
        except ProviderError as exc:
            redact_secret(exc, self._secret)
            raise

    # -- response ------------------------------------------------------------------------------

    def _parse(self, data: Any, model: str, *, calls_before: int) -> StreamChunk:
        """One GenerateContentResponse (a whole reply, or one event of a stream) as a chunk.

        ``calls_before`` counts the function calls earlier chunks carried, so that streamed calls
        get distinct indexes; a STOP after any function call finishes as ``tool_calls``.
        """
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}",
                                    provider=self.name, model=model)
        if data.get("error"):
            raise error_from_object(data["error"], provider=self.name, model=model)
        try:
            usage = _usage(data["usageMetadata"]) if data.get("usageMetadata") else None
            served = data.get("modelVersion") or None
            response_id = data.get("responseId")
            candidates = data.get("candidates")
            if not candidates:
                block = (data.get("promptFeedback") or {}).get("blockReason")
                if block is None and usage is None:
                    raise MalformedResponse("response has no candidates", provider=self.name,
                                            model=model)
                return StreamChunk(finish_reason="content_filter" if block else None,
                                   usage=usage, model=served, response_id=response_id)
            candidate = candidates[0]
            texts: list[str] = []
            deltas: list[ToolCallDelta] = []
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    call = part["functionCall"]
                    index = calls_before + len(deltas)
                    deltas.append(ToolCallDelta(
                        index=index, id=call.get("id") or f"call_{index}", name=call["name"],
                        arguments=json.dumps(call.get("args") or {}, ensure_ascii=False)))
                elif "text" in part and not part.get("thought"):
                    texts.append(part["text"])
            finish: FinishReason | None = None
            raw_finish = candidate.get("finishReason")
            if raw_finish is not None:
                finish = self._finish(raw_finish, model)
                if finish == "stop" and (deltas or calls_before):
                    finish = "tool_calls"
            return StreamChunk(text="".join(texts), tool_calls=tuple(deltas), finish_reason=finish,
                               usage=usage, model=served, response_id=response_id,
                               logprobs=_logprobs(candidate.get("logprobsResult")))
        except SHAPE_ERRORS as exc:
            raise MalformedResponse(f"unreadable response: {describe_shape_error(exc)}",
                                    provider=self.name, model=model) from exc

    def _finish(self, value: Any, model: str) -> FinishReason:
        reason = self._finish_reasons.get(value) if isinstance(value, str) else None
        if reason is None:
            raise MalformedResponse(f"unknown finishReason {value!r}", provider=self.name,
                                    model=model)
        return reason


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    return {"mode": "ANY", "allowedFunctionNames": [choice]}


def _tool_response(content: str | None) -> dict[str, Any]:
    if content and content.lstrip().startswith("{"):
        try:
            value = jiter.from_json(content.encode())
        except ValueError:
            pass
        else:
            if isinstance(value, dict):
                return value
    return {"result": content or ""}


def _usage(raw: dict[str, Any]) -> Usage:
    thoughts = raw.get("thoughtsTokenCount") or 0
    return Usage(prompt_tokens=raw.get("promptTokenCount") or 0,
                 completion_tokens=(raw.get("candidatesTokenCount") or 0) + thoughts,
                 cached_tokens=raw.get("cachedContentTokenCount") or 0,
                 reasoning_tokens=thoughts)


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...]:
    if not raw:
        return ()
    tops = raw.get("topCandidates") or ()
    out = []
    for i, chosen in enumerate(raw.get("chosenCandidates") or ()):
        top = (tops[i].get("candidates") or ()) if i < len(tops) else ()
        out.append(TokenLogprob(
            token=chosen.get("token", ""), logprob=chosen["logProbability"],
            top=tuple(TopLogprob(token=t.get("token", ""), logprob=t["logProbability"])
                      for t in top)))
    return tuple(out)


# The OpenAPI subset Gemini's ``responseSchema`` and ``parameters`` accept.
_OPENAPI_KEYS = frozenset({
    "type", "format", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
})
_MAX_SCHEMA_DEPTH = 32


def openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema converted to the OpenAPI subset of Gemini's ``Schema`` (see module doc)."""
    return _convert(schema, schema, 0)


def _convert(schema: dict[str, Any], root: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth > _MAX_SCHEMA_DEPTH:
        raise BadRequest("schema is nested too deeply or refers to itself; Gemini's "
                         "responseSchema cannot express recursion (use schema_dialect="
                         "'json_schema')")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = {**_resolve(ref, root), **{k: v for k, v in schema.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _convert(sub, root, depth + 1) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = _convert(value, root, depth + 1)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            variants = [v for v in value if v != {"type": "null"}]
            if len(variants) < len(value):
                out["nullable"] = True
            converted = [_convert(v, root, depth + 1) for v in variants]
            if len(converted) == 1:
                out.update(converted[0])
            elif converted:
                out["anyOf"] = converted
        elif key in _OPENAPI_KEYS:
            out[key] = value
    return out


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    target: Any = root
    if ref.startswith("#/"):
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict) or not ref.startswith("#"):
        raise BadRequest(f"schema $ref {ref!r} does not point inside the schema")
    return target
