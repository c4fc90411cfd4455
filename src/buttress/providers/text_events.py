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

OpenAI pads every stream event with an ``obfuscation`` string of random characters and length
(a defence against reading the text from packet sizes, on unless the request turns it off): its
events differ in that string too. When the template's event carries one at its top level after
the text, as OpenAI's do, its literal is a second place that may hold any string; the padding
means nothing to the stream and is dropped, as the full parse drops it.
"""

from __future__ import annotations

from typing import Any

import orjson

from buttress.providers.http import parse_json

_KEY = b'"content":'
_PAD_KEY = b'"obfuscation":'
_PROBE = "\u2603 probe \\ \"text\""
_PAD_PROBE = "probe"
#: events parsed before giving up on a stream whose text events do not repeat their bytes
_TRIES = 3


class TextEvents:
    """One stream's template of a text-only event, once learned (``learn``)."""

    __slots__ = ("_middle", "_prefix", "_suffix", "_tries")

    def __init__(self) -> None:
        self._prefix = b""
        self._middle = b""  # between the text's literal and the padding's (when there is one)
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
        end = len(arrival) - len(suffix)
        middle = self._middle
        if middle:
            # a valid text literal holds no bare quote, so it ends where the middle starts
            cut = arrival.find(middle, len(prefix), end)
            if cut == -1:
                return None
            try:
                if type(orjson.loads(arrival[cut + len(middle):end])) is not str:
                    return None
            except orjson.JSONDecodeError:
                return None  # not one JSON value: more than the padding changed
            end = cut
        literal = arrival[len(prefix):end]
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
            if end != -1 and self._take(event[:literal], event[end:], parsed, text):
                return
            start = event.find(_KEY, start + 1)

    def _take(self, head: bytes, after: bytes, parsed: Any, text: str) -> bool:
        """Take the template of the event ``head`` + the text's literal + ``after``: with the
        padding's literal as a second place when there is one, else as it is."""
        pad = _padding(after)
        if pad is not None:
            middle, tail = after[:pad[0]], after[pad[1]:]
            if _only_text_differs(parsed, text, head, middle, tail):
                self._prefix, self._middle = b"data: " + head, middle
                self._suffix = tail + b"\n\n"
                return True
        if _only_text_differs(parsed, text, head, after):
            self._prefix, self._suffix = b"data: " + head, after + b"\n\n"
            return True
        return False


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


def _padding(after: bytes) -> tuple[int, int] | None:
    """Where the last padding literal in ``after`` (the bytes after the text) lies, or None."""
    key = after.rfind(_PAD_KEY)
    if key == -1:
        return None
    start = key + len(_PAD_KEY)
    while after[start:start + 1] in (b" ", b"\t"):
        start += 1
    end = _string_end(after, start)
    return None if end == -1 else (start, end)


def _only_text_differs(parsed: Any, text: str, head: bytes, middle: bytes,
                       tail: bytes | None = None) -> bool:
    """Whether the document ``head`` + a probe text + ``middle`` (+ a probe padding + ``tail``,
    when given) is ``parsed`` with the probe as its text (and the probe as its top-level
    padding), nothing else changed."""
    try:
        document = head + orjson.dumps(_PROBE) + middle
        if tail is not None:
            document += orjson.dumps(_PAD_PROBE) + tail
        probe = parse_json(document, provider="", model="")
        delta = probe["choices"][0]["delta"]
        if delta["content"] != _PROBE:
            return False
        delta["content"] = text
        if tail is not None:
            if probe["obfuscation"] != _PAD_PROBE:
                return False
            probe["obfuscation"] = parsed["obfuscation"]
    except Exception:  # any other shape: not the text's (or the padding's) place
        return False
    return bool(probe == parsed)
