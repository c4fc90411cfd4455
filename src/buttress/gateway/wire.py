"""OpenAI chat-completions wire format: strict request parsing, hand-built responses and chunks.

The hot path never validates a whole body with pydantic: ``parse_chat_request`` checks each field
by hand (every problem is a ``WireError`` naming the parameter, answered with a 400) and the
responses are plain dicts serialised with orjson. Core values (``Message``, ``Tool``) are built
with the models' own constructors (pydantic-core validates them in about a microsecond;
its ``model_construct`` is slower, as it fills defaults in Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from buttress.runtime.result import CallResult
from buttress.trusted import trusted
from buttress.types import (
    Completion,
    Message,
    ResponseFormat,
    StreamChunk,
    TokenLogprob,
    Tool,
    ToolCall,
    Usage,
)

#: request fields the spec defines that buttress forwards to the provider untouched
PASSTHROUGH = frozenset({
    "frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls", "metadata",
    "store", "service_tier", "reasoning_effort", "modalities", "prediction", "audio",
    "web_search_options", "verbosity", "prompt_cache_key", "safety_identifier",
    "prompt_cache_retention", "prompt_cache_options", "moderation",
})
_HANDLED = frozenset({
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "tools", "tool_choice", "response_format",
    "logprobs", "top_logprobs", "n", "user", "functions", "function_call", "vars",
})
_KNOWN = _HANDLED | PASSTHROUGH
#: the fields most requests stop at: a body with no others skips ``_options``
_COMMON = frozenset({"model", "messages", "stream", "stream_options", "user", "vars"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class WireError(ValueError):
    """A request that does not follow the wire format; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(message)


@dataclass(slots=True)
class ChatRequest:
    """A parsed ``POST /v1/chat/completions`` body."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    #: buttress's one extension: a feature's prompt variables (``extra_body={"vars": ...}``)
    vars: dict[str, Any] | None = None
    #: the runtime's parameters: temperature, tools, response_format, extra...
    params: dict[str, Any] = field(default_factory=dict)


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and check a request body; raises ``WireError`` for anything malformed."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("the body must be a JSON object")
    names = data.keys()
    if not names <= _KNOWN:
        name = next(n for n in data if n not in _KNOWN)
        raise WireError(f"unrecognized request argument supplied: {name}", name)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a non-empty string", "model")
    raw_messages = data.get("messages")
    # with 'vars' a feature's prompt supplies the messages, so the list may be empty
    if not isinstance(raw_messages, list) or not (raw_messages or data.get("vars")):
        raise WireError("'messages' is required and must be a non-empty array", "messages")
    messages = tuple([_message(m, i) for i, m in enumerate(raw_messages)])
    params: dict[str, Any] = {}
    if not names <= _COMMON:  # most requests set nothing but these
        _options(data, params)
    stream = _opt_bool(data, "stream") or False
    include_usage = False
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise WireError("'stream_options' must be an object", "stream_options")
        if not stream:
            raise WireError("'stream_options' is only allowed when 'stream' is true",
                            "stream_options")
        include_usage = _opt_bool(options, "include_usage", "stream_options.") or False
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise WireError("'user' must be a string", "user")
    variables = data.get("vars")
    if variables is not None and not isinstance(variables, dict):
        raise WireError("'vars' (a feature's prompt variables) must be an object", "vars")
    return ChatRequest(model=model, messages=messages, stream=stream,
                       include_usage=include_usage, user=user, vars=variables,
                       params=params)


def _options(data: dict[str, Any], params: dict[str, Any]) -> None:
    """The sampling, tool, format and pass-through fields of a body, checked into ``params``
    (the runtime's parameters)."""
    if "functions" in data or "function_call" in data:
        raise WireError("'functions' and 'function_call' are deprecated; use 'tools'",
                        "functions" if "functions" in data else "function_call")
    n = data.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise WireError("only n = 1 is supported", "n")
    _number(data, "temperature", 0.0, 2.0, params)
    _number(data, "top_p", 0.0, 1.0, params)
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        which = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
        if not _is_int(max_tokens) or max_tokens < 1:
            raise WireError(f"'{which}' must be an integer >= 1", which)
        params["max_tokens"] = max_tokens
    seed = data.get("seed")
    if seed is not None:
        if not _is_int(seed):
            raise WireError("'seed' must be an integer", "seed")
        params["seed"] = seed
    stop = data.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            params["stop"] = (stop,)
        elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
            if stop:
                params["stop"] = tuple(stop)
        else:
            raise WireError("'stop' must be a string or an array of at most 4 strings", "stop")
    if data.get("tools") is not None:
        params["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(data["tool_choice"])
    if data.get("response_format") is not None:
        fmt = _response_format(data["response_format"])
        if fmt is not None:
            params["response_format"] = fmt
    if _opt_bool(data, "logprobs"):
        params["logprobs"] = True
    top = data.get("top_logprobs")
    if top is not None:
        if not _is_int(top) or not 0 <= top <= 20:
            raise WireError("'top_logprobs' must be an integer from 0 to 20", "top_logprobs")
        params["top_logprobs"] = top
    extra = {k: v for k, v in data.items() if k in PASSTHROUGH and v is not None}
    if extra:
        params["extra"] = extra


# -- request pieces ------------------------------------------------------------------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_bool(data: Mapping[str, Any], name: str, prefix: str = "") -> bool | None:
    v = data.get(name)
    if v is not None and not isinstance(v, bool):
        raise WireError(f"'{prefix}{name}' must be a boolean", prefix + name)
    return v


def _number(data: Mapping[str, Any], name: str, low: float, high: float,
            out: dict[str, Any]) -> None:
    v = data.get(name)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
        raise WireError(f"'{name}' must be a number from {low:g} to {high:g}", name)
    out[name] = float(v)


def _text(content: Any, where: str) -> str | None:
    """Message content: a string, null or an array of text parts (joined)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise WireError(f"{where}[{j}]: only text content parts are supported",
                                f"{where}[{j}]")
            text = part.get("text")
            if not isinstance(text, str):
                raise WireError(f"{where}[{j}].text must be a string", f"{where}[{j}].text")
            parts.append(text)
        return "".join(parts)
    raise WireError(f"{where} must be a string or an array of content parts", where)


def _message(raw: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(raw, dict):
        raise WireError(f"{where} must be an object", where)
    role = raw.get("role")
    if role not in _ROLES:
        raise WireError(f"{where}.role must be one of system, developer, user, assistant, tool",
                        f"{where}.role")
    content = _text(raw.get("content"), f"{where}.content")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise WireError(f"{where}.name must be a string", f"{where}.name")
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id = None
    if role == "assistant":
        raw_calls = raw.get("tool_calls")
        if raw_calls is not None:
            tool_calls = _tool_calls(raw_calls, f"{where}.tool_calls")
        if content is None and not tool_calls:
            raise WireError(f"{where}: an assistant message needs content or tool_calls",
                            f"{where}.content")
    elif role == "tool":
        tool_call_id = raw.get("tool_call_id")
        if not isinstance(tool_call_id, str):
            raise WireError(f"{where}.tool_call_id is required for a tool message",
                            f"{where}.tool_call_id")
    elif content is None:
        raise WireError(f"{where}.content is required", f"{where}.content")
    # every field was checked above: build the message without validating it again
    return trusted(Message, {"role": "system" if role == "developer" else role,
                             "content": content, "tool_calls": tool_calls,
                             "tool_call_id": tool_call_id, "name": name})


def _tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(raw, list):
        raise WireError(f"{where} must be an array", where)
    out = []
    for j, call in enumerate(raw):
        here = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
            raise WireError(f"{here} needs an id and a function", here)
        name, args = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str) or not isinstance(args, str):
            raise WireError(f"{here}.function needs string name and arguments",
                            f"{here}.function")
        out.append(ToolCall(id=call["id"], name=name, arguments=args))
    return tuple(out)


def _tools(raw: Any) -> tuple[Tool, ...]:
    if not isinstance(raw, list):
        raise WireError("'tools' must be an array", "tools")
    out = []
    for j, tool in enumerate(raw):
        where = f"tools[{j}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise WireError(f"{where}: only tools of type 'function' are supported", where)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise WireError(f"{where}.function.name is required", f"{where}.function.name")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise WireError(f"{where}.function.description must be a string",
                            f"{where}.function.description")
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise WireError(f"{where}.function.parameters must be an object",
                            f"{where}.function.parameters")
        out.append(Tool(name=fn["name"], description=description,
                                        parameters=parameters))
    return tuple(out)


def _tool_choice(raw: Any) -> str:
    if raw in ("none", "auto", "required"):
        return str(raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = raw.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    raise WireError("'tool_choice' must be none, auto, required or "
                    '{"type": "function", "function": {"name": ...}}', "tool_choice")


def _response_format(raw: Any) -> ResponseFormat | None:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(type="json_object", json_schema=None,
                                              name="output", strict=True)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise WireError("response_format.json_schema needs a name",
                            "response_format.json_schema")
        schema = spec.get("schema", {})
        strict = spec.get("strict")
        if not isinstance(schema, dict) or (strict is not None and not isinstance(strict, bool)):
            raise WireError("response_format.json_schema.schema must be an object and strict a "
                            "boolean", "response_format.json_schema")
        return ResponseFormat(type="json_schema", json_schema=schema,
                                              name=spec["name"], strict=bool(strict))
    raise WireError("response_format.type must be text, json_object or json_schema",
                    "response_format")


# -- responses -----------------------------------------------------------------------------------


def usage_dict(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens,
                           "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def logprobs_dict(logprobs: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    if not logprobs:
        return None
    return {"content": [{"token": t.token, "logprob": t.logprob,
                         "bytes": list(t.token.encode()),
                         "top_logprobs": [{"token": x.token, "logprob": x.logprob,
                                           "bytes": list(x.token.encode())} for x in t.top]}
                        for t in logprobs],
            "refusal": None}


def completion_body(result: CallResult, model: str, created: int) -> bytes:
    """The ``chat.completion`` JSON for a finished call."""
    c: Completion = result.completion
    message: dict[str, Any] = {"role": "assistant", "content": c.text, "refusal": None}
    if c.tool_calls:
        message["tool_calls"] = [{"id": t.id, "type": "function",
                                  "function": {"name": t.name, "arguments": t.arguments}}
                                 for t in c.tool_calls]
    body: dict[str, Any] = {
        "id": f"chatcmpl-{result.call_id}", "object": "chat.completion", "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs_dict(c.logprobs),
                     "finish_reason": _finish(c.finish_reason)}],
        "usage": usage_dict(c.usage),
    }
    if c.system_fingerprint:
        body["system_fingerprint"] = c.system_fingerprint
    return orjson.dumps(body)


def _finish(reason: str | None) -> str | None:
    # "error" is buttress's own; the wire has no such reason and an errored call has no body
    return "stop" if reason == "error" else reason


class ChunkWriter:
    """Turns a call's ``StreamChunk``s into SSE ``chat.completion.chunk`` events."""

    __slots__ = ("_first", "_prefix", "_text_prefix", "include_usage")

    def __init__(self, call_id: str, model: str, created: int, include_usage: bool) -> None:
        head = orjson.dumps({"id": f"chatcmpl-{call_id}", "object": "chat.completion.chunk",
                             "created": created, "model": model})
        # every chunk shares id/object/created/model: serialise them once
        self._prefix = b"data: " + head[:-1] + b',"choices":'
        self._text_prefix = self._prefix + b'[{"index":0,"delta":{"content":'
        self._first = True
        self.include_usage = include_usage

    def events(self, batch: list[StreamChunk | str]) -> bytes:
        """The events for what arrived together (``CallStream.batches``); a ``str`` is a chunk
        of text alone. A chunk with nothing to show (e.g. usage alone: usage goes out at the
        end) is left out, except the first, which carries the role."""
        out = []
        for item in batch:
            if isinstance(item, str):
                if not self._first:  # the usual event, serialised as ``chunk`` would
                    out.append(self._text_prefix + orjson.dumps(item) + _TEXT_END)
                    continue
                item = StreamChunk(text=item)
            if self._first or item.has_content or item.finish_reason is not None or \
                    item.logprobs:
                out.append(self.chunk(item))
        return b"".join(out)

    def chunk(self, chunk: StreamChunk) -> bytes:
        delta: dict[str, Any] = {}
        if self._first:
            delta["role"] = "assistant"
            self._first = False
        if chunk.text or "role" in delta:
            delta["content"] = chunk.text
        if chunk.tool_calls:
            calls = []
            for d in chunk.tool_calls:
                call: dict[str, Any] = {"index": d.index}
                if d.id:
                    call["id"] = d.id
                    call["type"] = "function"
                fn: dict[str, Any] = {"arguments": d.arguments}
                if d.name:
                    fn["name"] = d.name
                call["function"] = fn
                calls.append(call)
            delta["tool_calls"] = calls
        choice: dict[str, Any] = {"index": 0, "delta": delta,
                                  "finish_reason": _finish(chunk.finish_reason)}
        if chunk.logprobs:
            choice["logprobs"] = logprobs_dict(chunk.logprobs)
        return self._prefix + orjson.dumps([choice]) + b"}\n\n"

    def usage(self, usage: Usage) -> bytes:
        return (self._prefix + b'[],"usage":' + orjson.dumps(usage_dict(usage)) + b"}\n\n")


_TEXT_END = b'},"finish_reason":null}]}\n\n'
DONE = b"data: [DONE]\n\n"


def error_body(message: str, type: str, code: str | None = None,
               param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param,
                                   "code": code}})


def error_event(message: str, type: str, code: str | None = None) -> bytes:
    """A failure after the stream started: an SSE ``error`` event the OpenAI SDKs raise as
    ``APIError`` (they check ``data.error`` on every event), after which the stream ends."""
    return b"event: error\ndata: " + error_body(message, type, code) + b"\n\n"
