"""The error tree. Every error buttress raises is a ``ButtressError``.

::

    ButtressError
    ├── ConfigError                 bad config, prompt file or dataset (names file, key, problem)
    ├── UsageError                  the caller misused the API
    ├── ProviderError               one attempt against one provider failed (adapters raise these)
    │   ├── RateLimited             429; retryable, may carry retry_after
    │   ├── ProviderTimeout         attempt or time-to-first-token timeout; retryable
    │   ├── ProviderUnavailable     5xx, connection refused or reset; retryable
    │   ├── MalformedResponse       a body or stream the adapter cannot read; retryable
    │   ├── StreamInterrupted       a stream broke after its first token; not retried
    │   ├── AuthenticationError     401/403; not retryable
    │   └── BadRequest              400/404/422, context too long...; not retryable
    ├── CircuitOpen                 the breaker for a provider/model refused the attempt
    ├── BudgetExceeded              a hard budget refused the call before dispatch
    ├── DeadlineExceeded            the call's overall deadline ran out
    ├── AllAttemptsFailed           (also an ExceptionGroup) every attempt down the chain failed
    └── OutputError
        ├── OutputValidationError   the output did not satisfy the feature's contract
        ├── LowConfidence           a cascade tier answered below the feature's min_confidence
        └── GuardRejected           a guard refused the input or output

Adapters classify (``retryable``, ``retry_after``); only the runtime decides what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class ButtressError(Exception):
    """Root of every error buttress raises."""


class ConfigError(ButtressError):
    """Invalid configuration: names the file, the key and the problem."""

    def __init__(self, problem: str, *, source: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.key = key
        self.line = line
        where = source or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {problem}")


class UsageError(ButtressError):
    """The API was used in a way it does not support."""


class ProviderError(ButtressError):
    """One attempt against one provider failed.

    ``retryable`` says whether the same request may succeed if tried again;
    ``retry_after`` is the provider's own hint in seconds, when it gave one.
    """

    retryable: bool = False
    #: whether another provider or model may succeed where this one failed. Retryable errors
    #: and credential errors fall back; a bad request would be just as bad elsewhere.
    fallback: bool | None = None
    kind: str = "provider_error"

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 status: int | None = None, retry_after: float | None = None,
                 retryable: bool | None = None) -> None:
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)

    @property
    def falls_back(self) -> bool:
        return self.retryable if self.fallback is None else self.fallback

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}: {self.message}{status}" if where else f"{self.message}{status}"


class RateLimited(ProviderError):
    retryable = True
    kind = "rate_limited"


class ProviderTimeout(ProviderError):
    retryable = True
    kind = "timeout"


class ProviderUnavailable(ProviderError):
    retryable = True
    kind = "unavailable"


class MalformedResponse(ProviderError):
    retryable = True
    kind = "malformed_response"


class StreamInterrupted(ProviderError):
    """The stream failed after tokens had reached the caller.

    Tokens already delivered cannot be taken back, so buttress does not retry or fall back
    mid-stream; ``partial_text`` holds what was delivered.
    """

    retryable = False
    kind = "stream_interrupted"

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: object) -> None:
        self.partial_text = partial_text
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class AuthenticationError(ProviderError):
    retryable = False
    fallback = True
    kind = "auth"


class BadRequest(ProviderError):
    retryable = False
    kind = "bad_request"


class CircuitOpen(ButtressError):
    """The circuit breaker for ``provider``/``model`` is open; the attempt was not made."""

    retryable = True
    kind = "circuit_open"

    def __init__(self, provider: str, model: str, reopens_in: float) -> None:
        self.provider = provider
        self.model = model
        self.reopens_in = reopens_in
        super().__init__(f"{provider}/{model}: circuit open, half-opens in {reopens_in:.2f}s")


class BudgetExceeded(ButtressError):
    """A hard budget limit refused the call before it was dispatched."""

    kind = "budget_exceeded"

    def __init__(self, budget: str, limit: float, spent: float, requested: float) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.requested = requested
        super().__init__(
            f"budget {budget!r} exhausted: limit ${limit:.6f}, spent or reserved ${spent:.6f}, "
            f"this call may cost up to ${requested:.6f}"
        )


class DeadlineExceeded(ButtressError):
    """The call's overall deadline ran out."""

    kind = "deadline_exceeded"

    def __init__(self, deadline_s: float, attempts: Sequence[BaseException] = ()) -> None:
        self.deadline_s = deadline_s
        self.attempts = tuple(attempts)
        super().__init__(f"deadline of {deadline_s:.3f}s exceeded after {len(self.attempts)} "
                         "failed attempt(s)")


class AllAttemptsFailed(ButtressError, ExceptionGroup):
    """Every attempt down the fallback chain failed; ``exceptions`` holds them in order."""

    kind = "all_attempts_failed"

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> AllAttemptsFailed:
        return super().__new__(cls, message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> AllAttemptsFailed:  # type: ignore[override]
        return AllAttemptsFailed(self.message, excs)


class OutputError(ButtressError):
    """The model answered, but the answer cannot be used.

    Inside a call an output error is not retried on the same model; when ``falls_back`` the
    runtime moves on to the next model of the chain (a cascade escalates).
    """

    retryable = False
    retry_after: float | None = None
    falls_back = False


class OutputValidationError(OutputError):
    """The output failed the feature's output contract."""

    kind = "validation"
    falls_back = True

    def __init__(self, message: str, *, raw: str = "", reasons: Sequence[str] = (),
                 falls_back: bool = True) -> None:
        self.raw = raw
        self.reasons = tuple(reasons)
        self.falls_back = falls_back
        super().__init__(message)


class LowConfidence(OutputError):
    """A tier of a cascade answered with a confidence under the feature's threshold."""

    kind = "low_confidence"
    falls_back = True

    def __init__(self, confidence: float, threshold: float, *, raw: str = "") -> None:
        self.confidence = confidence
        self.threshold = threshold
        self.raw = raw
        self.reasons: tuple[str, ...] = (f"confidence {confidence:.3f} is below "
                                         f"{threshold:.3f}",)
        super().__init__(self.reasons[0])


class GuardRejected(OutputError):
    """A guard refused the input or the output."""

    kind = "guard_rejected"


def error_kind(exc: BaseException) -> str:
    """The short, stable name of an error's kind, as recorded in the ledger and metrics."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    return type(exc).__name__
