"""Recognising a stream's text events by their bytes, without parsing them.

Most events of an OpenAI-style stream carry a text delta and nothing else, and differ from one
another only in that text: the id, model, timestamps and every other field repeat. Once one such
event has been parsed, its bytes around the text's JSON string literal are a template: an
arrival that is the template with some other string literal in that place means the same thing
with that text, which costs a prefix and suffix comparison and the decoding of one short string
instead of SSE framing, a JSON document and a walk over its fields. Relaying a stream, that is
most of the work per event.

Why it is exact: JSON's grammar lets any string literal stand where another stood without
changing the document's structure, so a candidate arrival qualifies exactly when what lies
between the prefix and the suffix decodes, on its own, as one JSON string. The template is
taken only after checking that replacing the literal changes the parsed event in that one
field: the text of ``choices[0].delta.content``, not some other ``"content"`` key. Anything
else (a second event in the arrival, a field that changed, other framing) falls back to the
full parse.
"""

from __future__ import annotations

from typing import Any

import orjson

from buttress.providers.http import parse_json

_KEY = b'"content":'
_PROBE = "\u2603 probe \\ \"text\""
#: events parsed before giving up on a stream whose text events do not repeat their bytes
_TRIES = 3


class TextEvents:
    """One stream's template of a text-only event, once learned (``learn``)."""

    __slots__ = ("_prefix", "_suffix", "_tries")

    def __init__(self) -> None:
        self._prefix = b""
        self._suffix = b""
        self._tries = _TRIES

    @property
    def learning(self) -> bool:
        return not self._prefix and self._tries > 0

    def text(self, arrival: bytes) -> str | None:
        """The text of ``arrival`` when it is exactly one text event of the template's shape,
        as ``data: <event>\\n\\n``; else None."""
        prefix, suffix = self._prefix, self._suffix
        if not prefix or not arrival.startswith(prefix) or not arrival.endswith(suffix):
            return None
        literal = arrival[len(prefix):len(arrival) - len(suffix)]
        if len(literal) < 2:  # also when prefix and suffix overlap
            return None
        try:
            text = orjson.loads(literal)
        except orjson.JSONDecodeError:
            return None  # not one JSON value: more than the text changed
        return text if type(text) is str and text else None

    def learn(self, event: bytes, parsed: Any, text: str) -> None:
        """Take ``event`` (an event's data, which ``parsed`` is and whose only field is the
        text ``text``, see ``plain_text``) as the template, if it qualifies."""
        self._tries -= 1
        start = event.find(_KEY)
        while start != -1:
            literal = start + len(_KEY)
            while event[literal:literal + 1] in (b" ", b"\t"):
                literal += 1
            end = _string_end(event, literal)
            if end != -1 and _only_text_differs(event[:literal], event[end:], parsed, text):
                self._prefix = b"data: " + event[:literal]
                self._suffix = event[end:] + b"\n\n"
                return
            start = event.find(_KEY, start + 1)


def _string_end(data: bytes, start: int) -> int:
    """The index just past the JSON string literal that opens at ``start``; -1 if none does."""
    if data[start:start + 1] != b'"':
        return -1
    at = start + 1
    while (quote := data.find(b'"', at)) != -1:
        escapes = 0
        while data[quote - 1 - escapes] == 0x5C:  # backslashes before the quote
            escapes += 1
        if escapes % 2 == 0:
            return quote + 1
        at = quote + 1
    return -1


def _only_text_differs(head: bytes, tail: bytes, parsed: Any, text: str) -> bool:
    """Whether the document ``head`` + a probe string + ``tail`` is ``parsed`` with the probe
    as its text (and nothing else changed)."""
    try:
        probe = parse_json(head + orjson.dumps(_PROBE) + tail, provider="", model="")
        delta = probe["choices"][0]["delta"]
        if delta["content"] != _PROBE:
            return False
        delta["content"] = text
    except Exception:  # any other shape: not the text's place
        return False
    return bool(probe == parsed)
