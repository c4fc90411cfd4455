"""Runtime outcomes of every shape the ledger hook sees, for tests that hold its two ways of
building rows (records, or straight from the outcome) equal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from buttress.errors import AllAttemptsFailed, ProviderTimeout, RateLimited
from buttress.ledger.redaction import Redactor
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Attempt, Call, CallResult, Miss, Target
from buttress.types import (
    CallRequest,
    Completion,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    Usage,
)

T0 = 1_700_000_000.0
WALL = T0 + 500
OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
UPSTREAM_KEY = "upstream-literal-9f8e7d"  # no pattern finds it: only the literal detector
USAGE = Usage(prompt_tokens=12, completion_tokens=3, cached_tokens=2, reasoning_tokens=1)


class Answer(BaseModel):
    name: str
    n: int


def redactor() -> Redactor:
    return Redactor(secrets=[UPSTREAM_KEY],
                    features={"keep": "store", "hashed": "hash", "dropped": "drop"})


def _attempt(i: int, *, kind: str = "primary", status: str = "ok", error: str | None = None,
             error_kind: str | None = None, usage: Usage = USAGE, cost: float | None = 1.25e-05,
             provider: str = "mock", model: str = "mock-gpt", ttft_s: float | None = None,
             served: str | None = "mock-gpt-0613") -> Attempt:
    return Attempt(index=i, kind=kind, provider=provider, model=model, started_at=T0 + i,  # type: ignore[arg-type]
                   latency_s=0.0123 + i, status=status, error=error,  # type: ignore[arg-type]
                   error_kind=error_kind, model_served=served, usage=usage, cost_usd=cost,
                   ttft_s=ttft_s)


class Outcomes:
    """Numbered call ids, so that every outcome is recorded under its own."""

    def __init__(self) -> None:
        self.n = 0

    def call(self, *, messages: tuple[Message, ...] | None = None, feature: str | None = None,
             tags: tuple[str, ...] = (), key_id: str | None = "key_7f3a9c2e",
             params: dict[str, Any] | None = None, model: str = "mock-gpt",
             **fields: Any) -> Call:
        self.n += 1
        call_id = f"{self.n:016x}{'ab' * 8}"
        request = CallRequest(
            model="mock-gpt", messages=messages or (Message.user("Say hello in one sentence."),),
            **({"max_tokens": 64} if params is None else params))
        return Call(request=request, targets=(Target(provider="mock", model=model),),
                    call_id=call_id, trace_id=f"t-{call_id}", environment="production",
                    key_id=key_id, feature=feature, tags=tags,
                    prompt_name="p" if feature else None, prompt_version="v1" if feature else None,
                    **fields)

    def answered(self, text: str | None = "Hello there!", *, tool_calls: tuple[ToolCall, ...] = (),
                 attempts: tuple[Attempt, ...] | None = None, ttft_s: float | None = None,
                 fingerprint: str | None = "fp_mock", result: dict[str, Any] | None = None,
                 **call: Any) -> Outcome:
        c = self.call(**call)
        tries = attempts or (_attempt(0, ttft_s=ttft_s),)
        completion = Completion(text=text, usage=USAGE, model="mock-gpt-0613",
                                system_fingerprint=fingerprint, tool_calls=tool_calls,
                                finish_reason="tool_calls" if tool_calls else "stop")
        answer = CallResult(call_id=c.call_id, trace_id=c.trace_id, completion=completion,
                            provider="mock", model_requested="mock-gpt",
                            model_served="mock-gpt-0613", attempts=tries, latency_s=0.0125,
                            ttft_s=ttft_s, cost_usd=2.5e-05, **(result or {}))
        return Outcome(c, answer, None, tries, 0.0125, ttft_s)

    def failed(self, error: BaseException | None, attempts: tuple[Attempt, ...], *,
               cancelled: bool = False, **call: Any) -> Outcome:
        return Outcome(self.call(**call), None, error, attempts, 0.5, cancelled=cancelled)


def outcomes() -> Iterator[tuple[str, Outcome, bool]]:
    """(name, outcome, whether the hook builds its rows straight from it)."""
    o = Outcomes()
    yield "plain", o.answered(), True
    yield "every field set", o.answered(
        "Fine.", feature="summarise", tags=("t",), ttft_s=0.0042, parent_id="parent",
        user_id="user", session_id="session", prompt_commit="c0ffee", attempts=(
            _attempt(0, ttft_s=0.0041, cost=3.5e-05),), result={"cost_saved_usd": 0.25}), True
    yield "no key, no fingerprint", o.answered(key_id=None, fingerprint=None), True
    yield "tags", o.answered(tags=("team:a", "b", "b")), True
    yield "non-ASCII", o.answered(
        "Héllo ΣΑΣ 中文 🎉 \u212a", messages=(Message.user("Dis bonjour — ΑΣ ünï 😀 ǅ İ"),)), True
    yield "newlines and quotes", o.answered('a "b"\n\tc\\', messages=(
        Message.user('line one\nline "two"\r\n\\end'),)), True
    yield "streamed", o.answered("streamed", ttft_s=0.004), True
    yield "tool calls", o.answered(None, tool_calls=(
        ToolCall(id="t1", name="lookup", arguments='{"q": "plain"}'),
        ToolCall(id="t2", name="get", arguments="{}"))), True
    yield "conversation", o.answered("ok", messages=(
        Message.system("You are a helpful assistant."), Message.user("hi"),
        Message.assistant(None, (ToolCall(id="t1", name="f", arguments="{}"),)),
        Message.tool("t1", "result seven"), Message(role="user", content="x", name="bob"))), True
    yield "parameters", o.answered(params={
        "temperature": 0.2, "top_p": 1.0, "max_tokens": 10, "stop": ("\n", "END"), "seed": 7,
        "tool_choice": "auto", "logprobs": True, "top_logprobs": 2}), True
    yield "zero temperature", o.answered(params={"temperature": 0.0, "logprobs": False}), True
    yield "infinite temperature", o.answered(params={"temperature": float("inf")}), True
    yield "tools and extras", o.answered(params={
        "tools": (Tool(name="f", description="look it up"),),
        "response_format": ResponseFormat(type="json_object"),
        "extra": {"user": "u", "n": [1, 2, {"x": "y"}]}}), True
    yield "cache hit", o.answered("cached", result={"cache_hit": True, "cost_saved_usd": 0.002},
                                  attempts=(_attempt(0, kind="cache", usage=Usage(), cost=None),)
                                  ), True
    yield "retried", o.answered("after retry", attempts=(
        _attempt(0, status="error", error="mock/mock-gpt: rate limited", error_kind="rate_limited"),
        _attempt(1, kind="retry"))), True
    yield "fell back", o.answered("fallback", attempts=(
        _attempt(0, status="error", error="timed out", error_kind="timeout", cost=None),
        _attempt(1, kind="fallback", provider="other", model="m2", served=None))), True
    yield "hedged", o.answered("hedged", attempts=(
        _attempt(0), _attempt(1, kind="hedge", status="cancelled"))), True
    yield "store mode", o.answered("plain text", feature="keep"), True
    yield "email in store mode", o.answered("mail jane@example.com", feature="keep"), True
    # names are checked for secrets only: personal data in them is kept as it is
    yield "email as the user id", o.answered(user_id="jane@example.com",
                                             tags=("415-555-2671",)), True
    # what redaction changes, or may: the records' way
    yield "secret asked", o.answered(
        "ok", messages=(Message.user("my key is " + OPENAI_KEY),)), False
    yield "secret answered", o.answered("your key: " + OPENAI_KEY), False
    yield "literal secret", o.answered("leak " + UPSTREAM_KEY), False
    yield "email", o.answered("mail jane@example.com"), False
    yield "phone and card", o.answered("card 4111 1111 1111 1111", messages=(
        Message.user("call 415-555-2671"),)), False
    yield "a trigger, no secret", o.answered("the token budget is low"), False
    yield "digits, no secret", o.answered("version 1.2.3, 42 items in 2024"), False
    yield "secret in tool call", o.answered(None, tool_calls=(
        ToolCall(id="t1", name="send", arguments='{"to": "jane@example.com"}'),)), False
    yield "secret in an attempt's error", o.answered("ok", attempts=(
        _attempt(0, status="error", error="bad key " + OPENAI_KEY, error_kind="auth"),
        _attempt(1, kind="fallback"))), False
    yield "secret in extras", o.answered(params={"extra": {"auth": "Bearer " + OPENAI_KEY}}), False
    yield "secret as an object key", o.answered(params={"extra": {OPENAI_KEY: "x"}}), False
    yield "secret in the names", o.answered(
        user_id="u-" + OPENAI_KEY, session_id=UPSTREAM_KEY, parent_id="p " + OPENAI_KEY,
        tags=("team", "key:" + UPSTREAM_KEY)), False
    for mode in ("hashed", "dropped"):
        yield f"{mode} content", o.answered("plain text", feature=mode), False
    yield "checked", o.answered('{"name": "a", "n": 1}', feature="summarise", result={
        "value": Answer(name="a", n=1), "validation": "passed", "confidence": 0.9, "tier": 0}
        ), False
    yield "repaired", o.answered("fine", feature="summarise", result={
        "value": {"to": ["x"], "n": 3}, "validation": "repaired",
        "validation_reasons": ("fixed jane@example.com",)}), False
    yield "missed", o.answered("{}", feature="summarise", result={
        "miss": Miss(reasons=("bad shape", "also bad")), "validation": "failed",
        "validation_reasons": ("bad shape", "also bad"), "tier": 1}), False
    e1 = RateLimited("slow down " + OPENAI_KEY, provider="mock", model="mock-gpt", status=429)
    e2 = ProviderTimeout("took too long", provider="mock", model="m2")
    yield "all failed", o.failed(AllAttemptsFailed("all failed", [e1, e2]), (
        _attempt(0, status="error", error=str(e1), error_kind="rate_limited", usage=Usage(),
                 cost=None),
        _attempt(1, kind="fallback", status="error", error=str(e2), error_kind="timeout",
                 usage=Usage(), cost=None, model="m2"))), False
    yield "timed out", o.failed(ProviderTimeout("took too long"), (
        _attempt(0, status="error", error="took too long", error_kind="timeout", cost=0.5),)
        ), False
    yield "cancelled", o.failed(None, (_attempt(0, status="cancelled", usage=Usage(),
                                                cost=None),), cancelled=True), False
    yield "refused", o.failed(ValueError("refused for jane@example.com"), ()), False
    yield "a secret as the model", o.failed(ValueError("no such model"), (),
                                            model=OPENAI_KEY), False
