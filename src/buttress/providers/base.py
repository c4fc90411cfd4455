"""The provider seam: complete a request (streaming optional)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable
from typing import Literal

from buttress.errors import MalformedResponse
from buttress.types import (
    CallRequest,
    Completion,
    FinishReason,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    Usage,
)


class Provider(abc.ABC):
    """An endpoint with credentials that can complete a ``CallRequest``.

    Subclasses implement ``complete``; those that can stream override ``stream``. Both raise only
    ``ProviderError`` subclasses, classified as retryable or not.
    """

    #: the name of this provider instance in config (``openai``, ``local``...)
    name: str = "provider"
    #: how an output contract reaches the model: ``native`` maps ``response_format`` to the
    #: wire format's own mechanism; ``instruct`` means it has none, so the runtime puts the
    #: schema in the prompt instead (config may override per provider)
    contract_support: Literal["native", "instruct"] = "native"

    @abc.abstractmethod
    async def complete(self, request: CallRequest) -> Completion: ...

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        """Stream a completion. The default completes and yields the result as one chunk."""
        completion = await self.complete(request)
        yield completion_chunk(completion)

    async def aclose(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Release resources the provider owns (not a shared HTTP client it was given)."""


def completion_chunk(completion: Completion) -> StreamChunk:
    """A whole completion as a single stream chunk."""
    from buttress.types import ToolCallDelta

    return StreamChunk(
        text=completion.text or "",
        tool_calls=tuple(
            ToolCallDelta(index=i, id=c.id, name=c.name, arguments=c.arguments)
            for i, c in enumerate(completion.tool_calls)
        ),
        finish_reason=completion.finish_reason,
        usage=completion.usage,
        model=completion.model,
        system_fingerprint=completion.system_fingerprint,
        response_id=completion.response_id,
        logprobs=completion.logprobs or (),
    )


class StreamAssembler:
    """Accumulates stream chunks into the ``Completion`` they add up to."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, str]] = {}
        self._logprobs: list[TokenLogprob] = []
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.model = ""
        self.system_fingerprint: str | None = None
        self.response_id: str | None = None

    def add(self, chunk: StreamChunk) -> None:
        if chunk.text:
            self._text.append(chunk.text)
        for delta in chunk.tool_calls:
            call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.name:
                call["name"] = delta.name
            call["arguments"] += delta.arguments
        self._logprobs.extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.model:
            self.model = chunk.model
        if chunk.system_fingerprint:
            self.system_fingerprint = chunk.system_fingerprint
        if chunk.response_id:
            self.response_id = chunk.response_id

    def extend(self, items: Iterable[StreamChunk | str]) -> None:
        """Add what arrived together: chunks, and plain text deltas as ``str``."""
        for item in items:
            if isinstance(item, str):
                self._text.append(item)
            else:
                self.add(item)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def completion(self, *, require_finish: bool = True) -> Completion:
        """The assembled completion. A stream that ended without a finish reason was truncated."""
        if self.finish_reason is None and require_finish:
            raise MalformedResponse("stream ended without a finish reason (truncated stream)")
        calls = tuple(
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self._calls.items())
        )
        return Completion(
            text="".join(self._text) if self._text or not calls else None,
            tool_calls=calls,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage or Usage(),
            model=self.model,
            system_fingerprint=self.system_fingerprint,
            response_id=self.response_id,
            logprobs=tuple(self._logprobs) or None,
        )


async def assemble_stream(chunks: AsyncIterator[StreamChunk] | Iterable[StreamChunk]) -> Completion:
    """Drain a stream into one ``Completion``."""
    assembler = StreamAssembler()
    if isinstance(chunks, AsyncIterator):
        async for chunk in chunks:
            assembler.add(chunk)
    else:
        for chunk in chunks:
            assembler.add(chunk)
    return assembler.completion()
