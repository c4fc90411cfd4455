"""Detectors find sensitive spans in text; the redactor decides what to do with them.

A detector is anything with a ``label`` and a ``find(text)`` that yields ``(start, end)`` spans.
Built-ins cover API keys and secrets, emails, phone numbers, Luhn-checked card numbers and US
SSNs; ``LiteralDetector`` scrubs known secret values (e.g. provider keys from the environment)
wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

Span = tuple[int, int]


@runtime_checkable
class Detector(Protocol):
    label: str

    def find(self, text: str) -> Iterable[Span]:
        """Spans (start, end) of ``text`` to hide."""
        ...


class RegexDetector:
    """Spans matched by ``pattern`` (or its ``group``), kept when ``check`` accepts the match."""

    def __init__(self, label: str, pattern: str | re.Pattern[str], *, group: int | str = 0,
                 check: Callable[[str], bool] | None = None, hint: str | None = None) -> None:
        self.label = label
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.group = group
        self.check = check
        # A substring every match contains: skipping the regex when it is absent is the
        # cheap path for the common text that holds no secret at all.
        self.hint = hint

    def find(self, text: str) -> Iterator[Span]:
        if self.hint is not None and self.hint not in text:
            return
        for match in self.pattern.finditer(text):
            if self.check is not None and not self.check(match.group(self.group)):
                continue
            start, end = match.span(self.group)
            if end > start:
                yield start, end


class LiteralDetector:
    """Every occurrence of the given secret values, whatever surrounds them."""

    label = "secret"

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(sorted({v for v in values if v}))

    def find(self, text: str) -> Iterator[Span]:
        # Each value is searched on its own (not one alternation regex), so values that overlap
        # in the text are all found and merged, leaving no tail of a secret behind.
        for value in self.values:
            start = text.find(value)
            while start != -1:
                yield start, start + len(value)
                start = text.find(value, start + 1)


def luhn_valid(candidate: str) -> bool:
    digits = [int(ch) for ch in candidate if ch.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_SECRET_PATTERNS = (
    # OpenAI (sk-, sk-proj-...), Anthropic (sk-ant-...) and most "sk-" style keys.
    (r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}", 0, "sk-"),
    (r"AIza[0-9A-Za-z_\-]{35}", 0, "AIza"),
    (r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,}", 0, "_"),
    (r"github_pat_[A-Za-z0-9_]{22,}", 0, "github_pat_"),
    (r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])", 0, "A"),
    (r"xox[abprs]-[A-Za-z0-9\-]{10,}", 0, "xox"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
     0, "PRIVATE KEY"),
    (r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)", 1, None),
    (r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|access[_\-]?key|client[_\-]?secret|"
     r"token|passw(?:or)?d|pwd|auth)\b[\"']?\s*[:=]\s*[\"']?([^\s\"',;&]{6,})", 1, None),
)


def secret_detectors() -> list[Detector]:
    """API keys, tokens, private keys and ``key=value`` style secrets."""
    return [RegexDetector("secret", p, group=g, hint=h) for p, g, h in _SECRET_PATTERNS]


def email_detector() -> Detector:
    return RegexDetector("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
                                  r"\.[A-Za-z]{2,}", hint="@")


def phone_detector() -> Detector:
    # North American numbers with optional +1, and international numbers written with a +.
    return RegexDetector(
        "phone",
        r"(?<![\w+])(?:\+?1[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-]?)\d{3}[\s.\-]?\d{4}(?![\w])"
        r"|(?<![\w+])\+\d{1,3}(?:[\s.\-]?\d){7,12}(?!\w)",
    )


def card_detector() -> Detector:
    return RegexDetector("card", r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])", check=luhn_valid)


def ssn_detector() -> Detector:
    return RegexDetector(
        "ssn", r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])", hint="-")


def pii_detectors() -> list[Detector]:
    """Emails, phone numbers, card numbers and US SSNs. Cards come first: a card number must
    not be half-claimed by the phone pattern."""
    return [card_detector(), ssn_detector(), email_detector(), phone_detector()]
