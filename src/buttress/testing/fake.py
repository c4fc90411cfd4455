"""A scripted fake provider: replies, errors and delays, in order, for tests, demos and config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ProviderError
from buttress.providers.base import Provider
from buttress.types import (
    CallRequest,
    Completion,
    FinishReason,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted turn. ``error`` is raised instead of replying (after ``delay_s``)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_size: int = 8
    error: ProviderError | None = None
    usage: Usage | None = None
    model: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    # streams: raise this after ``fail_after_chunks`` content chunks
    stream_error: ProviderError | None = None
    fail_after_chunks: int = 1


Responder = Callable[[CallRequest], "Reply | str"]


def estimate_tokens(text: str) -> int:
    """A cheap, deterministic token estimate (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


@dataclass
class FakeProvider(Provider):
    """Replies from ``script`` in order; then ``respond`` if given, else the script's last reply
    again, else an echo of the last user message.

    Every request is kept in ``requests`` so tests can assert what was sent.
    """

    name: str = "fake"
    script: Iterable[Reply | str | ProviderError] = ()
    respond: Responder | None = None
    model: str | None = None
    clock: Clock = SYSTEM_CLOCK
    requests: list[CallRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script = iter(self.script)
        self._last: Reply | None = None

    def _next(self, request: CallRequest) -> Reply:
        item = next(self._script, None)
        if item is None:
            if self.respond is not None:
                item = self.respond(request)
            elif self._last is not None:
                return self._last
            else:
                return _echo(request)
            reply = _reply(item)
        else:
            reply = self._last = _reply(item)
        return reply

    def _completion(self, request: CallRequest, reply: Reply) -> Completion:
        prompt = sum(estimate_tokens(m.content or "") for m in request.messages)
        usage = reply.usage or Usage(prompt_tokens=prompt,
                                     completion_tokens=estimate_tokens(reply.text))
        finish: FinishReason = reply.finish_reason or ("tool_calls" if reply.tool_calls
                                                       else "stop")
        return Completion(text=reply.text if reply.text or not reply.tool_calls else None,
                          tool_calls=reply.tool_calls, finish_reason=finish, usage=usage,
                          model=reply.model or self.model or request.model,
                          logprobs=reply.logprobs)

    async def _reply(self, request: CallRequest) -> Reply:
        """Record the request, take the next reply, wait its delay, raise its error."""
        self.requests.append(request)
        reply = self._next(request)
        if reply.delay_s:
            await self.clock.sleep(reply.delay_s)
        if reply.error is not None:
            raise _bind(reply.error, self.name, request.model)
        return reply

    async def complete(self, request: CallRequest) -> Completion:
        return self._completion(request, await self._reply(request))

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        reply = await self._reply(request)
        completion = self._completion(request, reply)
        text = reply.text
        pieces = [text[i:i + reply.chunk_size] for i in range(0, len(text), reply.chunk_size)]
        for n, piece in enumerate(pieces):
            if reply.stream_error is not None and n == reply.fail_after_chunks:
                raise _bind(reply.stream_error, self.name, request.model)
            if n and reply.chunk_delay_s:
                await self.clock.sleep(reply.chunk_delay_s)
            yield StreamChunk(text=piece, model=completion.model)
        if reply.stream_error is not None and reply.fail_after_chunks >= len(pieces):
            raise _bind(reply.stream_error, self.name, request.model)
        for i, call in enumerate(reply.tool_calls):
            yield StreamChunk(tool_calls=(ToolCallDelta(index=i, id=call.id, name=call.name,
                                                        arguments=call.arguments),))
        yield StreamChunk(finish_reason=completion.finish_reason, usage=completion.usage,
                          model=completion.model)


def _reply(item: Reply | str | ProviderError) -> Reply:
    if isinstance(item, str):
        return Reply(text=item)
    if isinstance(item, ProviderError):
        return Reply(error=item)
    return item


def _bind(error: ProviderError, provider: str, model: str) -> ProviderError:
    """A fresh copy of a scripted error, naming this provider and model."""
    clone = type(error).__new__(type(error))
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    clone.provider = error.provider or provider
    clone.model = error.model or model
    return clone


def _echo(request: CallRequest) -> Reply:
    last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    return Reply(text=f"echo: {last or ''}")
