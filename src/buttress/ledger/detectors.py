"""Detectors find sensitive spans in text; the redactor decides what to do with them.

A detector is anything with a ``label`` and a ``find(text)`` that yields ``(start, end)`` spans.
Built-ins cover API keys and secrets, emails, phone numbers, Luhn-checked card numbers and US
SSNs; ``LiteralDetector`` scrubs known secret values (e.g. provider keys from the environment)
wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

Span = tuple[int, int]


@runtime_checkable
class Detector(Protocol):
    label: str

    def find(self, text: str) -> Iterable[Span]:
        """Spans (start, end) of ``text`` to hide."""
        ...


# A trigger meaning "three digits in a row" (every phone, card and SSN has them).
DIGITS = "\x00digits"
DIGIT_RUN = re.compile(r"\d\d\d")


class RegexDetector:
    """Spans matched by ``pattern`` (or its ``group``), kept when ``check`` accepts the match.

    ``triggers`` are lowercase substrings (or ``DIGITS``) of which every match contains one. The
    redactor runs the regex only on text holding a trigger: most text holds no secret, and
    skipping the regex then keeps redaction cheap enough for the writer thread.
    """

    def __init__(self, label: str, pattern: str | re.Pattern[str], *, group: int | str = 0,
                 check: Callable[[str, int, int], bool] | None = None,
                 triggers: tuple[str, ...] = ()) -> None:
        self.label = label
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.group = group
        self.check = check
        self.triggers = triggers

    def find(self, text: str) -> Iterable[Span]:
        spans = []
        for match in self.pattern.finditer(text):
            start, end = match.span(self.group)
            if end > start and (self.check is None or self.check(text, start, end)):
                spans.append((start, end))
        return spans


class LiteralDetector:
    """Every occurrence of the given secret values, whatever surrounds them."""

    label = "secret"

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(sorted({v for v in values if v}))

    def find(self, text: str) -> Iterable[Span]:
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


def _isolated(chars: str) -> Callable[[str, int, int], bool]:
    """A check that the span is not glued to more of ``chars`` on either side (cheaper than a
    leading look-behind, which would stop the regex engine from skipping ahead)."""

    def check(text: str, start: int, end: int) -> bool:
        return ((start == 0 or text[start - 1] not in chars)
                and (end == len(text) or text[end] not in chars))

    return check


_DIGITS = "0123456789"

_SECRET_PATTERNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    # OpenAI (sk-, sk-proj-...), Anthropic (sk-ant-...) and most "sk-" style keys.
    (r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}", 0, ("sk-",)),
    (r"AIza[0-9A-Za-z_\-]{35}", 0, ("aiza",)),
    (r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,}", 0, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    (r"github_pat_[A-Za-z0-9_]{22,}", 0, ("github_pat_",)),
    (r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])", 0, ("akia", "asia")),
    (r"xox[abprs]-[A-Za-z0-9\-]{10,}", 0, ("xox",)),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
     0, ("private key",)),
    (r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)", 1, ("bearer",)),
    (r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|access[_\-]?key|client[_\-]?secret|"
     r"token|passw(?:or)?d|pwd|auth)\b[\"']?\s*[:=]\s*[\"']?([^\s\"',;&]{6,})", 1,
     ("key", "secret", "token", "passw", "pwd", "auth")),
)


def secret_detectors() -> list[Detector]:
    """API keys, tokens, private keys and ``key=value`` style secrets."""
    return [RegexDetector("secret", p, group=g, triggers=t) for p, g, t in _SECRET_PATTERNS]


def email_detector() -> Detector:
    return RegexDetector("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
                                  r"\.[A-Za-z]{2,}", triggers=("@",))


def phone_detector() -> Detector:
    # North American numbers with optional +1, and international numbers written with a +.
    return RegexDetector(
        "phone",
        r"(?<![\w+])(?:\+?1[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-]?)\d{3}[\s.\-]?\d{4}(?![\w])"
        r"|(?<![\w+])\+\d{1,3}(?:[\s.\-]?\d){7,12}(?!\w)",
        triggers=(DIGITS,),
    )


class CardDetector:
    """Card numbers: 13 to 19 digits, in groups or not, that pass the Luhn check.

    A run of digit groups is split into windows of whole groups, so a card followed by more
    numbers ("4111111111111111 12/25") is still found, while a random number that fails Luhn
    is left alone.
    """

    label = "card"
    triggers = (DIGITS,)
    _run = re.compile(r"\d(?:[ \-]?\d){12,}")
    _group = re.compile(r"\d+")

    def find(self, text: str) -> Iterable[Span]:
        spans: list[Span] = []
        for run in self._run.finditer(text):
            base = run.start()
            groups = [(base + m.start(), base + m.end()) for m in self._group.finditer(run[0])]
            i = 0
            while i < len(groups):
                best, digits = -1, 0
                for j in range(i, len(groups)):
                    digits += groups[j][1] - groups[j][0]
                    if digits > 19:
                        break
                    if digits >= 13 and luhn_valid(text[groups[i][0]:groups[j][1]]):
                        best = j
                if best >= 0:
                    spans.append((groups[i][0], groups[best][1]))
                    i = best + 1
                else:
                    i += 1
        return spans


def card_detector() -> Detector:
    return CardDetector()


def ssn_detector() -> Detector:
    return RegexDetector("ssn", r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}",
                         triggers=(DIGITS,), check=_isolated(_DIGITS + "-"))


def pii_detectors() -> list[Detector]:
    """Emails, phone numbers, card numbers and US SSNs. Cards come first: a card number must
    not be half-claimed by the phone pattern."""
    return [card_detector(), ssn_detector(), email_detector(), phone_detector()]
