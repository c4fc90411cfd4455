"""Typed core values shared by every layer: messages, requests, completions, usage, stream chunks.

These are plain immutable values. Providers turn them into and out of wire formats; the runtime
passes them around; the ledger persists them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from buttress.trusted import trusted

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class Value(BaseModel):
    """Base for immutable values."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(Value):
    """A tool call the model asked for. ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str = "{}"


class Message(Value):
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str | None = None,
                  tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls(role="assistant", content=content, tool_calls=tool_calls)

    @classmethod
    def tool(cls, tool_call_id: str, content: str) -> Message:
        return cls(role="tool", tool_call_id=tool_call_id, content=content)


class Tool(Value):
    """A function the model may call; ``parameters`` is a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object",
                                                                 "properties": {}})


class ResponseFormat(Value):
    """What shape the text output must take. ``json_schema`` carries ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None
    name: str = "output"
    strict: bool = True


class CallRequest(Value):
    """One request to one model. ``model`` is the provider's own model name."""

    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    # Provider-specific parameters passed through untouched (vendor quirks are data).
    extra: dict[str, Any] = Field(default_factory=dict)

    def with_model(self, model: str) -> CallRequest:
        if model == self.model:
            return self
        return trusted(CallRequest, {**self.__dict__, "model": model})


class Usage(Value):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class TopLogprob(Value):
    token: str
    logprob: float


class TokenLogprob(Value):
    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


class Completion(Value):
    """What one provider returned for one request."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()
    model: str = ""  # the model the provider says it served
    system_fingerprint: str | None = None
    response_id: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


class ToolCallDelta(Value):
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class StreamChunk(Value):
    """One event of a streamed completion.

    Text and tool-call fragments arrive in order; ``finish_reason``, ``usage`` and ``model``
    arrive when the provider sends them (usually on the last chunks).
    """

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    model: str | None = None
    system_fingerprint: str | None = None
    response_id: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()

    @property
    def has_content(self) -> bool:
        return bool(self.text or self.tool_calls)
