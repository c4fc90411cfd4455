"""How calls are shown: attempts as a chain or a table, a one-line summary, failures."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from buttress.errors import AllAttemptsFailed, DeadlineExceeded, error_kind
from buttress.runtime.result import Attempt, CallResult


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def attempt_step(attempt: Attempt) -> str:
    outcome = "ok" if attempt.status == "ok" else (attempt.error_kind or attempt.status)
    return f"{attempt.kind}: {outcome}"


def attempt_chain(attempts: Sequence[Attempt]) -> Text:
    """``primary: rate_limited → retry: timeout → fallback: ok``, coloured by status."""
    text = Text()
    for i, attempt in enumerate(attempts):
        if i:
            text.append(" → ", style="dim")
        style = "green" if attempt.status == "ok" else \
            "yellow" if attempt.status == "cancelled" else "red"
        text.append(attempt_step(attempt), style=style)
    return text


def attempts_table(attempts: Sequence[Attempt]) -> Table:
    table = Table(title="attempts", title_justify="left", show_edge=False)
    for column in ("#", "kind", "provider/model", "status"):
        table.add_column(column, overflow="fold")
    table.add_column("error", overflow="fold", min_width=28)
    for column in ("latency", "ttft"):
        table.add_column(column, no_wrap=True, justify="right")
    for a in attempts:
        status = Text(a.status, style="green" if a.status == "ok" else "red")
        error = a.error_kind or ""
        if a.error:
            error = f"{error}: {_short(a.error)}"
        table.add_row(str(a.index + 1), a.kind, f"{a.provider}/{a.model}", status, error,
                      seconds(a.latency_s), seconds(a.ttft_s))
    return table


def summary(result: CallResult) -> Text:
    usage = result.usage
    served = f"{result.provider}/{result.model_served}"
    text = Text()
    text.append("served by ", style="dim").append(served, style="bold")
    text.append(f" · latency {seconds(result.latency_s)} · TTFT {seconds(result.ttft_s)}")
    text.append(f" · tokens {usage.prompt_tokens} prompt / {usage.completion_tokens} completion")
    text.append(f" · {len(result.attempts)} attempt(s)")
    if result.cost_usd is not None:
        text.append(f" · cost ${result.cost_usd:.6f}")
    return text


def failure_lines(exc: BaseException) -> list[str]:
    """The typed error, then each attempt's error for a chain that failed."""
    lines = [f"{error_kind(exc)}: {exc}"]
    causes: Sequence[BaseException] = ()
    if isinstance(exc, AllAttemptsFailed):
        causes = exc.exceptions
    elif isinstance(exc, DeadlineExceeded):
        causes = exc.attempts
    lines.extend(f"  attempt {i}: {error_kind(c)}: {c}" for i, c in enumerate(causes, 1))
    return lines


def _short(message: str, limit: int = 80) -> str:
    # the provider/model prefix repeats the row's own column
    _, sep, rest = message.partition(": ")
    message = rest if sep and "/" in _ else message
    return message if len(message) <= limit else message[: limit - 1] + "…"
