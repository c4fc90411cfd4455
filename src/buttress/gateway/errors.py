"""Refusals the gateway makes itself, and how every error maps to an OpenAI error response.

OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``. Statuses follow the
OpenAI SDKs' mapping (400 bad request, 401 authentication, 402/403 permission, 404 not found,
413 body too large, 429 rate limit, 5xx upstream), so each SDK raises its matching exception.
Budgets answer 402, not 429, because the SDKs retry 429 and a spent budget will not come back
within a retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from buttress.errors import (
    AllAttemptsFailed,
    BadRequest,
    BudgetExceeded,
    ButtressError,
    CircuitOpen,
    DeadlineExceeded,
    OutputError,
    ProviderError,
    RateLimited,
    UsageError,
)


class GatewayRefusal(ButtressError):
    """The gateway refused a request before it reached a model (recorded in the ledger)."""

    def __init__(self, message: str, *, status: int, kind: str, type: str,
                 param: str | None = None, retry_after: float | None = None) -> None:
        self.message = message
        self.status = status
        self.kind = kind
        self.type = type
        self.param = param
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HttpError:
    """An error response: status, OpenAI error fields and an optional Retry-After."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None


def http_error(exc: BaseException) -> HttpError:
    """The response an error that ended a call becomes."""
    if isinstance(exc, GatewayRefusal):
        return HttpError(exc.status, exc.message, exc.type, exc.kind, exc.param, exc.retry_after)
    if isinstance(exc, BudgetExceeded):
        return HttpError(402, str(exc), "insufficient_quota", "budget_exceeded")
    if isinstance(exc, UsageError):
        return HttpError(400, str(exc), "invalid_request_error", "invalid_request")
    if isinstance(exc, DeadlineExceeded):
        return HttpError(504, str(exc), "upstream_error", exc.kind)
    if isinstance(exc, AllAttemptsFailed):
        errors = exc.exceptions
        if errors and all(isinstance(e, BadRequest) for e in errors):
            return HttpError(400, _attempts_message(exc), "invalid_request_error",
                             "upstream_bad_request")
        if errors and all(isinstance(e, RateLimited) for e in errors):
            hints = [e.retry_after for e in errors
                     if isinstance(e, RateLimited) and e.retry_after is not None]
            return HttpError(429, _attempts_message(exc), "rate_limit_error",
                             "upstream_rate_limited", retry_after=max(hints, default=1.0))
        return HttpError(502, _attempts_message(exc), "upstream_error", exc.kind)
    if isinstance(exc, BadRequest):
        return HttpError(400, str(exc), "invalid_request_error", exc.kind)
    if isinstance(exc, RateLimited):
        return HttpError(429, str(exc), "rate_limit_error", exc.kind,
                         retry_after=exc.retry_after or 1.0)
    if isinstance(exc, ProviderError):
        return HttpError(502, str(exc), "upstream_error", exc.kind)
    if isinstance(exc, CircuitOpen):
        return HttpError(503, str(exc), "upstream_error", exc.kind,
                         retry_after=max(exc.reopens_in, 0.0))
    if isinstance(exc, OutputError):
        return HttpError(502, str(exc), "upstream_error", getattr(exc, "kind", "output_error"))
    return HttpError(500, "internal error in the gateway", "server_error", "internal_error")


def _attempts_message(exc: AllAttemptsFailed) -> str:
    inner = "; ".join(str(e) for e in exc.exceptions)
    return f"{exc.message}: {inner}" if inner else exc.message
