"""The OpenAI Chat Completions wire format, for every server that speaks it.

OpenAI, vLLM, Ollama, llama.cpp server, OpenRouter and Groq differ only in data: the base URL,
whether ``stream_options.include_usage`` is accepted, the name of the max-tokens field, how
structured output is asked for, and any extra finish reasons. Those are constructor arguments.

Unknown finish reasons raise ``MalformedResponse`` naming the value (a server that invents one
can be taught it with ``finish_reasons={"abort": "error"}``). A stream counts as complete only
when it ends with ``data: [DONE]``; anything short of that raises ``MalformedResponse``.
A transport failure mid-stream raises ``ProviderUnavailable``: whether tokens already reached
the caller (and so whether it becomes ``StreamInterrupted``) is the runtime's knowledge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from buttress.errors import BadRequest, MalformedResponse, ProviderError
from buttress.providers.base import Provider
from buttress.providers.http import (
    SHAPE_ERRORS,
    Arrivals,
    OpenBody,
    SSEDecoder,
    SSEEvent,
    arrivals,
    describe_shape_error,
    done_reading,
    error_from_object,
    merge_extra,
    parse_json,
    post_json,
    redact_secret,
    start_stream,
    transport_error,
)
from buttress.providers.text_events import TextEvents
from buttress.trusted import trusted
from buttress.types import (
    CallRequest,
    Completion,
    FinishReason,
    Message,
    ResponseFormat,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the legacy functions API
    "content_filter": "content_filter",
    "error": "error",  # OpenRouter, alongside an error object
}

#: how a server is asked for structured output: OpenAI's ``json_schema``; plain ``json_object``;
#: or ``json_object`` carrying a ``schema`` (llama.cpp server turns it into a grammar)
StructuredMode = Literal["json_schema", "json_object", "json_object_schema"]

class OpenAICompatProvider(Provider):
    """Any endpoint that speaks OpenAI's ``POST /chat/completions``."""

    def __init__(self, name: str, *, base_url: str | None, api_key: str | None,
                 http: httpx.AsyncClient, headers: dict[str, str] | None = None,
                 include_usage: bool = True, max_tokens_field: str = "max_tokens",
                 structured_output: StructuredMode = "json_schema",
                 finish_reasons: Mapping[str, FinishReason] | None = None,
                 path: str = "/chat/completions") -> None:
        self.name = name
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/") + path
        self._http = http
        self._secret = api_key
        self._headers = dict(headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.include_usage = include_usage
        self.max_tokens_field = max_tokens_field
        self.structured_output = structured_output
        self._finish_reasons = {**FINISH_REASONS, **(finish_reasons or {})}

    def __repr__(self) -> str:  # never the key
        return f"OpenAICompatProvider(name={self.name!r}, url={self.url!r})"

    # -- request -------------------------------------------------------------------------------

    def build_payload(self, request: CallRequest, *, stream: bool = False) -> dict[str, Any]:
        """The JSON body for ``request``."""
        payload: dict[str, Any] = {"model": request.model,
                                   "messages": [_message(m) for m in request.messages]}
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.max_tokens is not None:
            payload[self.max_tokens_field] = request.max_tokens
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.tools:
            payload["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in request.tools
            ]
        if request.tool_choice:
            payload["tool_choice"] = _tool_choice(request.tool_choice)
        if request.response_format is not None and request.response_format.type != "text":
            payload["response_format"] = self._response_format(request.response_format)
        if request.logprobs:
            payload["logprobs"] = True
            if request.top_logprobs is not None:
                payload["top_logprobs"] = request.top_logprobs
        if stream:
            payload["stream"] = True
            if self.include_usage:
                payload["stream_options"] = {"include_usage": True}
        if request.extra:
            merge_extra(payload, request.extra)
        return payload

    def _response_format(self, fmt: ResponseFormat) -> dict[str, Any]:
        if fmt.type == "json_object" or self.structured_output == "json_object":
            return {"type": "json_object"}
        if fmt.json_schema is None:
            raise BadRequest("response_format json_schema needs a schema", provider=self.name)
        if self.structured_output == "json_object_schema":
            return {"type": "json_object", "schema": fmt.json_schema}
        return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.json_schema,
                                                       "strict": fmt.strict}}

    # -- complete ------------------------------------------------------------------------------

    async def complete(self, request: CallRequest) -> Completion:
        try:
            data = await post_json(self._http, self.url, self.build_payload(request),
                                   self._headers, provider=self.name, model=request.model)
            return self.parse_completion(data, model=request.model)
        except ProviderError as exc:
            redact_secret(exc, self._secret)
            raise

    def parse_completion(self, data: Any, *, model: str) -> Completion:
        """A ``Completion`` from a decoded chat completion body."""
        if not isinstance(data, dict):
            raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}",
                                    provider=self.name, model=model)
        if data.get("error"):  # some servers answer 200 with an error object
            raise error_from_object(data["error"], provider=self.name, model=model)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content")
            finish = self._finish(choice.get("finish_reason"), model)
            if text is None and message.get("refusal"):
                text, finish = message["refusal"], "content_filter"
            return Completion(
                text=text,
                tool_calls=tuple(
                    ToolCall(id=c["id"], name=c["function"]["name"],
                             arguments=c["function"].get("arguments") or "{}")
                    for c in message.get("tool_calls") or ()
                ),
                finish_reason=finish,
                usage=_usage(data.get("usage")),
                model=data.get("model") or "",
                system_fingerprint=data.get("system_fingerprint"),
                response_id=data.get("id"),
                logprobs=_logprobs(choice.get("logprobs")),
            )
        except SHAPE_ERRORS as exc:
            raise MalformedResponse(f"unreadable chat completion: {describe_shape_error(exc)}",
                                    provider=self.name, model=model) from exc

    def _finish(self, value: Any, model: str) -> FinishReason:
        reason = self._finish_reasons.get(value) if isinstance(value, str) else None
        if reason is None:
            raise MalformedResponse(f"unknown finish_reason {value!r}", provider=self.name,
                                    model=model)
        return reason

    # -- stream --------------------------------------------------------------------------------

    def stream(self, request: CallRequest) -> OpenAIStream:
        return OpenAIStream(self, request)

    def chunk_from(self, obj: Any, data: bytes, *, model: str) -> StreamChunk:
        """A ``StreamChunk`` from a parsed stream event (``data``, its text, for errors)."""
        if not isinstance(obj, dict):
            raise MalformedResponse(f"stream event is not a JSON object: {data[:200]!r}",
                                    provider=self.name, model=model)
        if obj.get("error"):
            raise error_from_object(obj["error"], provider=self.name, model=model)
        try:
            text = ""
            deltas: tuple[ToolCallDelta, ...] = ()
            finish: FinishReason | None = None
            logprobs: tuple[TokenLogprob, ...] = ()
            choices = obj.get("choices")
            if choices:
                choice = choices[0]
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                raw_calls = delta.get("tool_calls")
                if raw_calls:
                    deltas = tuple(_call_delta(i, c) for i, c in enumerate(raw_calls))
                if choice.get("finish_reason") is not None:
                    finish = self._finish(choice["finish_reason"], model)
                if choice.get("logprobs"):
                    logprobs = _logprobs(choice["logprobs"]) or ()
            raw_usage = obj.get("usage")
            # Every chunk of every stream passes here: the fields are checked by hand and the
            # chunk built without pydantic's validation, which would only repeat the checks.
            fields = {"text": text, "tool_calls": deltas, "finish_reason": finish,
                      "usage": _usage(raw_usage) if raw_usage else None,
                      "model": obj.get("model") or None,
                      "system_fingerprint": obj.get("system_fingerprint"),
                      "response_id": obj.get("id"), "logprobs": logprobs}
            for name, wire_name in _CHUNK_STRINGS.items():
                value = fields[name]
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{wire_name} is a {type(value).__name__}, not a string")
            return trusted(StreamChunk, fields)
        except SHAPE_ERRORS as exc:
            raise MalformedResponse(f"unreadable stream chunk: {describe_shape_error(exc)}",
                                    provider=self.name, model=model) from exc


def plain_text(obj: Any) -> str | None:
    """The text of a stream event that carries a text delta and nothing else the runtime or
    the gateway reads (no tool calls, finish reason, logprobs, usage or error), else None.
    Most events of a stream are such; ``chunk_from`` would make of one a ``StreamChunk`` with
    this text and every other field empty (the id, model and fingerprint it repeats are taken
    from the stream's first and last events)."""
    if type(obj) is not dict or obj.get("usage") or obj.get("error"):
        return None
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None or \
            choice.get("logprobs"):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or delta.get("tool_calls"):
        return None
    text = delta.get("content")
    return text if type(text) is str and text else None


class OpenAIStream:
    """A streamed chat completion: iterate it for ``StreamChunk``s, or await ``batch()`` for
    everything that arrived together (a relay's way: one wake, one list).

    The request is sent on the first read. A stream is complete only once ``data: [DONE]`` has
    arrived; if the body ends before, the read raises ``MalformedResponse`` (truncated). A
    failure is raised after the events that arrived before it have been read.
    """

    __slots__ = ("_body", "_decoder", "_done", "_ended", "_failure", "_items", "_open_body",
                 "_provider", "_read", "_request", "_texts")

    def __init__(self, provider: OpenAICompatProvider, request: CallRequest) -> None:
        self._provider = provider
        self._request = request
        self._read: Arrivals | None = None
        self._decoder = SSEDecoder()
        self._texts = TextEvents()  # text events recognised by their bytes (relays only)
        self._items: list[StreamChunk | str] = []  # read, not yet handed out by ``__anext__``
        self._ended = False  # [DONE] arrived, or the stream failed: nothing more is read
        self._done = False  # [DONE] arrived
        self._failure: ProviderError | None = None
        self._body: object = None
        self._open_body: OpenBody | None = None  # until closed

    def __aiter__(self) -> OpenAIStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if not self._items:
            self._items = await self.batch(text_only=False)
            if not self._items:
                raise StopAsyncIteration
        # read with text_only=False: chunks only (no ``cast``: a call, on every chunk)
        return self._items.pop(0)  # type: ignore[return-value]

    async def batch(self, *, text_only: bool = True) -> list[StreamChunk | str]:
        """The events that arrived since the last read (waiting for one), as ``StreamChunk``s,
        or with ``text_only`` a ``str`` for each that carries only text (see ``plain_text``:
        most of a stream, for which no ``StreamChunk`` is built).
        An empty list once the stream is over."""
        if self._items or self._failure is not None or self._ended:  # ``_held``'s cases
            return self._held()
        items: list[StreamChunk | str] = []
        try:
            read = self._read or await self._open()
            while not items and not self._ended:
                # an arrival may hold no whole event (half of one, a keep-alive comment)
                self._absorb(await read(), text_only, items)
        except (httpx.HTTPError, ProviderError) as exc:
            self._fail(exc, items)
        return items

    def listen(self, listener: Callable[[], None] | None) -> bool:
        """Push mode, once the stream is open: ``listener`` is called (from the transport's
        protocol callback) whenever something arrives, and reads it with ``poll``. False when
        the body cannot push (not the pooled transport's): read with ``batch`` then."""
        listen = getattr(self._body, "listen", None)
        if listen is None:
            return False
        listen(listener)
        return True

    def poll(self, *, text_only: bool = True) -> list[StreamChunk | str] | None:
        """What ``batch`` returns, without waiting (for push mode, see ``listen``): [] when no
        whole event has arrived since the last read, None once the stream is over."""
        if self._items or self._failure is not None:  # ``_held``'s cases, without a call
            return self._held()
        if self._ended:
            return None
        items: list[StreamChunk | str] = []
        try:
            data = self._body.take()  # type: ignore[attr-defined]  # listen() said it can
            if data != b"":
                self._absorb(data, text_only, items)
        except (httpx.HTTPError, ProviderError) as exc:
            self._fail(exc, items)
        return items

    def _held(self) -> list[StreamChunk | str]:
        """What a read hands out before reading more: events read and not handed out yet (the
        runtime reads a stream's head chunk by chunk, until its first token, then the rest in
        batches), or else the failure that came after them (raised)."""
        if self._items:
            left, self._items = self._items, []
            return left
        if self._failure is not None:
            exc, self._failure = self._failure, None
            try:
                raise exc
            finally:
                del exc  # its traceback holds this frame: no cycle through the local
        return []

    def _absorb(self, data: bytes | None, text_only: bool,
                items: list[StreamChunk | str]) -> None:
        """Decode an arrival (None: the body's end) into ``items``."""
        if data is not None:
            if text_only and self._decoder.idle and (text := self._texts.text(data)) is not None:
                items.append(text)  # one text event, as the stream's others: not parsed
                return
            self._parse(self._decoder.feed(data), text_only, items)
            return
        self._parse(self._decoder.close(), text_only, items)
        if not self._ended:
            raise MalformedResponse("stream ended before data: [DONE] (truncated)",
                                    provider=self._provider.name, model=self._request.model)

    def _parse(self, events: list[SSEEvent], text_only: bool,
               items: list[StreamChunk | str]) -> None:
        provider, model = self._provider, self._request.model
        for event in events:
            data = event.data
            if data == b"[DONE]":
                self._ended = self._done = True
                return  # anything after it is not the completion's
            obj = parse_json(data, provider=provider.name, model=model, what="stream event")
            text = plain_text(obj) if text_only else None
            if text is not None and self._texts.learning:
                self._texts.learn(data, obj, text)
            items.append(text if text is not None else provider.chunk_from(obj, data, model=model))

    def _fail(self, exc: ProviderError | httpx.HTTPError, items: list[StreamChunk | str]
              ) -> None:
        """Raise ``exc`` now or, when ``items`` arrived before it, at the next read."""
        if isinstance(exc, httpx.HTTPError):
            exc = transport_error(exc, provider=self._provider.name, model=self._request.model)
        self._ended = True
        redact_secret(exc, self._provider._secret)
        if not items:
            try:
                raise exc
            finally:
                del exc  # its traceback holds this frame: no cycle through the local
        self._failure = exc

    async def _open(self) -> Arrivals:
        provider = self._provider
        response = await start_stream(
            provider._http, provider.url, provider.build_payload(self._request, stream=True),
            provider._headers, provider=provider.name, model=self._request.model)
        self._body = self._open_body = response
        self._read = arrivals(response)
        return self._read

    async def aclose(self) -> None:
        """Stop reading. The connection goes back to the pool if its body was read to the end,
        or, once ``data: [DONE]`` came, when the body's end follows soon; otherwise it is
        closed (which also tells the upstream to stop generating)."""
        self._ended = True
        body, self._open_body = self._open_body, None
        if body is None:
            return
        if self._done:
            done_reading(body)
        try:
            await body.aclose()
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self._provider.name,
                                  model=self._request.model) from exc


#: the chunk's string fields that come from the wire as they are, by their wire names
_CHUNK_STRINGS = {"text": "delta.content", "model": "model",
                  "system_fingerprint": "system_fingerprint", "response_id": "id"}


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _call_delta(position: int, raw: dict[str, Any]) -> ToolCallDelta:
    function = raw.get("function") or {}
    return ToolCallDelta(index=raw.get("index", position), id=raw.get("id"),
                         name=function.get("name"), arguments=function.get("arguments") or "")


def _usage(raw: Any) -> Usage:
    if not raw:
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=raw.get("prompt_tokens") or 0,
        completion_tokens=raw.get("completion_tokens") or 0,
        cached_tokens=prompt_details.get("cached_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    content = raw.get("content") if raw else None
    if content is None:
        return None
    return tuple(
        TokenLogprob(token=t["token"], logprob=t["logprob"],
                     top=tuple(TopLogprob(token=x["token"], logprob=x["logprob"])
                               for x in t.get("top_logprobs") or ()))
        for t in content
    )

