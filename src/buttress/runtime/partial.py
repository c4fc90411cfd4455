"""Partial objects from partial JSON, as a structured answer streams in.

``PartialParser.feed(text)`` takes the next piece of a JSON document and returns a ``Partial``
holding everything known so far, or ``None`` when the piece added nothing visible. ``finish()``
parses the whole document once with jiter and validates it fully.

What a partial shows is always consistent with the final document: a key appears only once its
name is complete; a number, ``true``, ``false`` or ``null`` only once it is complete; a string
grows as a prefix of its final value; arrays grow as prefixes. A top-level field is *complete*
(and validated, alone, against its declared type) once its value has closed.

Cost. A small scanner, O(1) amortised per character (regexes skip whitespace and string runs),
tracks the open path of containers. Each complete scalar is decoded once by jiter; containers are
built in place as their members complete, so nothing is ever re-parsed. The open string is
decoded incrementally: only a tail of at most 12 characters (an escape or a surrogate pair being
cut) is re-decoded per feed, with jiter's ``trailing-strings`` partial mode. So the parsing work
over a whole stream is O(n) in the document's length; the one extra term is materialising the
open string as a fresh ``str`` on each feed that changes it (a memory copy of its length so far).
``finish()`` adds one full jiter parse, which makes the final value exactly jiter's.

``Partial.value`` is the parser's live object: later feeds keep filling the same dicts and lists
(copying them on every token would make the total quadratic). Copy it to keep a snapshot.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jiter
from pydantic import BaseModel, ValidationError

from buttress.errors import ConfigError
from buttress.types import StreamChunk

#: something a partial can be validated against: a pydantic model or a JSON schema
Schema = type[BaseModel] | Mapping[str, Any]

_WS = re.compile(r"[ \t\n\r]*")
_STRING_STOP = re.compile(r'["\\]')
_SCALAR_END = re.compile(r"[ \t\n\r,\]}]")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
#: an unfinished tail this long holds at most one escape or surrogate pair (``\\ud83d\\ude00``)
_ESCAPE_SPAN = 12

# what the scanner expects next, outside a token
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _COMMA_OR_CLOSE, _DONE = range(7)


@dataclass(frozen=True, slots=True)
class Partial:
    """What is known so far of a streamed JSON answer.

    ``value`` is the live root (see the module doc). ``complete_fields`` names the top-level
    fields whose values have closed; ``errors`` maps a field (or ``"$"``, the whole document) to
    why it failed validation. ``final`` is set on the last one, from ``finish()``, whose
    ``value`` is the fully parsed document (``None`` if it was not valid JSON).
    """

    value: Any
    complete_fields: frozenset[str] = frozenset()
    errors: Mapping[str, str] = field(default_factory=dict)
    final: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class _Frame:
    obj: dict[str, Any] | list[Any]
    key: str = ""


class _Checks:
    """Per-field validators and a whole-document validator, built from a ``Schema``."""

    def __init__(self, schema: Schema | None) -> None:
        self.fields: dict[str, Callable[[Any], str | None]] = {}
        self.whole: Callable[[Any], str | None] = lambda _value: None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._from_model(schema)
        elif schema is not None:
            self._from_json_schema(schema)

    def _from_model(self, model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            self.fields[alias or info.alias or name] = _model_field_check(model, alias or
                                                                          info.alias or name)
        self.whole = _pydantic_check(model.model_validate)

    def _from_json_schema(self, schema: Mapping[str, Any]) -> None:
        try:
            import jsonschema
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError("validating against a JSON schema needs the 'jsonschema' package",
                              key="schema") from exc
        defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                if isinstance(sub, Mapping):
                    self.fields[name] = _schema_check(jsonschema, {**sub, **defs})
        self.whole = _schema_check(jsonschema, dict(schema))


def _pydantic_check(validate: Callable[[Any], Any]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        try:
            validate(value)
        except ValidationError as exc:
            return "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}"
                             for e in exc.errors())
        return None
    return check


def _model_field_check(model: type[BaseModel], key: str) -> Callable[[Any], str | None]:
    """Validate one field through the model itself, so its own field validators run too; the
    other fields are absent, and their errors are not this field's."""
    def check(value: Any) -> str | None:
        try:
            model.model_validate({key: value})
        except ValidationError as exc:
            mine = [e for e in exc.errors() if e["loc"][:1] == (key,)]
            return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in mine) or None
        return None
    return check


def _schema_check(jsonschema: Any, schema: dict[str, Any]) -> Callable[[Any], str | None]:
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON schema: {exc.message}", key="schema") from exc

    def check(value: Any) -> str | None:
        problems = [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
                    for e in validator.iter_errors(value)]
        return "; ".join(problems) or None
    return check


class PartialParser:
    """Feed the text of one JSON document piece by piece; read partial values as it grows."""

    def __init__(self, schema: Schema | None = None) -> None:
        self._checks = _Checks(schema)
        self._chunks: list[str] = []
        self._frames: list[_Frame] = []
        self._root: Any = None
        self._expect = _VALUE
        self._broken: str | None = None
        self._dirty = False
        # the token being read: a string (key or value) or a bare scalar
        self._in_string = False
        self._is_key = False
        self._raw: list[str] = []  # raw string text since ``_raw_base``
        self._raw_base = 0  # offsets count raw characters from the string's opening quote
        self._raw_len = 0
        self._escapes = (-1, -1)  # the last two escape starts (previous, last)
        self._escape_open = False  # the raw text ends in a lone backslash
        self._decoded = ""  # the string decoded up to ``_raw_base``
        self._tip: str | None = None  # the open string as last shown
        self._tip_placed = False
        self._scalar: list[str] | None = None
        # top-level fields
        self._complete: frozenset[str] = frozenset()
        self._errors: dict[str, str] = {}

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def feed(self, text: str) -> Partial | None:
        """Take the next piece of the document; the partial value, or ``None`` if unchanged."""
        if not text:
            return None
        self._chunks.append(text)
        if self._broken is not None:
            return None
        try:
            self._scan(text)
            self._show_open_string()
        except ValueError as exc:  # jiter's and the scanner's complaints about bad JSON
            self._broken = str(exc)
            return None
        if not self._dirty:
            return None
        self._dirty = False
        return Partial(self._root, self._complete, self._errors)

    def finish(self) -> Partial:
        """Parse the whole document once and validate it fully; the last, ``final`` partial."""
        text = self.text
        try:
            value = jiter.from_json(text.encode())
        except ValueError as exc:
            return Partial(None, self._complete, {"$": f"invalid JSON: {exc}"}, final=True)
        problem = self._checks.whole(value)
        errors = {"$": problem} if problem else {}
        fields = frozenset(value) if isinstance(value, dict) else frozenset()
        return Partial(value, fields, errors, final=True)

    # -- scanning ---------------------------------------------------------------------------

    def _scan(self, s: str) -> None:
        i, n = 0, len(s)
        while i < n:
            if self._in_string:
                i = self._scan_string(s, i)
            elif self._scalar is not None:
                m = _SCALAR_END.search(s, i)
                end = n if m is None else m.start()
                self._scalar.append(s[i:end])
                i = end
                if m is not None:
                    self._end_scalar()
            else:
                c = s[i]
                if c in " \t\n\r":
                    i = _WS.match(s, i).end()  # type: ignore[union-attr]
                    continue
                self._structural(c, i)
                i += 1

    def _structural(self, c: str, at: int) -> None:
        expect = self._expect
        if c == '"' and expect in (_KEY, _KEY_OR_CLOSE):
            self._open_string(is_key=True)
        elif expect in (_VALUE, _VALUE_OR_CLOSE) and c not in "]}:,":
            if c == '"':
                self._open_string(is_key=False)
            elif c in "{[":
                obj: dict[str, Any] | list[Any] = {} if c == "{" else []
                self._place(obj)
                self._frames.append(_Frame(obj))
                self._expect = _KEY_OR_CLOSE if c == "{" else _VALUE_OR_CLOSE
            else:
                self._scalar = [c]
        elif c == ":" and expect == _COLON:
            self._expect = _VALUE
        elif c == "," and expect == _COMMA_OR_CLOSE:
            self._expect = _KEY if isinstance(self._frames[-1].obj, dict) else _VALUE
        elif c in "]}" and (expect == _COMMA_OR_CLOSE or (
                expect == _KEY_OR_CLOSE and c == "}") or (expect == _VALUE_OR_CLOSE and c == "]")):
            if (c == "}") != isinstance(self._frames[-1].obj, dict):
                raise ValueError(f"mismatched {c!r}")
            self._completed(self._frames.pop().obj, placed=True)
        else:
            raise ValueError(f"unexpected {c!r}")

    def _open_string(self, *, is_key: bool) -> None:
        self._in_string, self._is_key = True, is_key
        self._raw, self._raw_base, self._raw_len = [], 0, 0
        self._escapes, self._escape_open = (-1, -1), False
        self._decoded, self._tip, self._tip_placed = "", None, False

    def _scan_string(self, s: str, i: int) -> int:
        n = len(s)
        if self._escape_open:  # the escaped character arrives in this piece
            self._escape_open = False
            self._raw.append(s[i])
            self._raw_len += 1
            i += 1
        while True:
            m = _STRING_STOP.search(s, i)
            if m is None:
                self._raw.append(s[i:])
                self._raw_len += n - i
                return n
            j = m.start()
            if s[j] == '"':
                self._raw.append(s[i:j])
                self._raw_len += j - i
                self._close_string()
                return j + 1
            self._escapes = (self._escapes[1], self._raw_base + self._raw_len + j - i)
            end = min(j + 2, n)
            self._escape_open = end == n and j + 1 == n
            self._raw.append(s[i:end])
            self._raw_len += end - i
            i = end
            if i >= n:
                return n

    def _close_string(self) -> None:
        self._in_string = False
        value = self._decoded + _decode("".join(self._raw))
        self._raw = []
        if self._is_key:
            self._frames[-1].key = value
            self._expect = _COLON
        else:
            self._completed(value, placed=False)

    def _show_open_string(self) -> None:
        """Decode the open string up to a cut that splits no escape; show it in its parent."""
        if not self._in_string or self._is_key:
            return
        end = self._raw_base + self._raw_len
        previous, last = self._escapes
        cut = end
        if self._escape_open or (last >= 0 and last > end - _ESCAPE_SPAN):
            cut = previous if previous == last - 6 else last
        cut = max(cut, self._raw_base)
        raw = "".join(self._raw)
        if cut > self._raw_base:
            self._decoded += _decode(raw[:cut - self._raw_base])
            raw = raw[cut - self._raw_base:]
            self._raw, self._raw_len, self._raw_base = [raw], len(raw), cut
        tail = jiter.from_json(f'"{raw}'.encode(), partial_mode="trailing-strings") if raw else ""
        value = self._decoded + tail if tail else self._decoded
        # a partial string only grows, so an equal length is the same string (and is cheap)
        if self._tip is None or len(value) != len(self._tip) or not self._tip_placed:
            self._tip = value
            self._place(value, tip=True)

    def _end_scalar(self) -> None:
        assert self._scalar is not None
        token = "".join(self._scalar)
        self._scalar = None
        value = _LITERALS[token] if token in _LITERALS else jiter.from_json(token.encode())
        if not isinstance(value, int | float) and token not in _LITERALS:
            raise ValueError(f"unexpected token {token!r}")
        self._completed(value, placed=False)

    # -- building ---------------------------------------------------------------------------

    def _place(self, value: Any, *, tip: bool = False) -> None:
        """Put a value (new or grown) where the open member goes."""
        self._dirty = True
        if not self._frames:
            self._root = value
        else:
            frame = self._frames[-1]
            if isinstance(frame.obj, dict):
                frame.obj[frame.key] = value
            elif self._tip_placed:
                frame.obj[-1] = value
            else:
                frame.obj.append(value)
        self._tip_placed = tip

    def _completed(self, value: Any, *, placed: bool) -> None:
        if not placed:
            self._place(value)
        self._tip_placed = False
        self._dirty = True
        if not self._frames:
            self._expect = _DONE
            return
        self._expect = _COMMA_OR_CLOSE
        if len(self._frames) == 1 and isinstance(self._root, dict):
            name = self._frames[0].key
            self._complete = self._complete | {name}
            check = self._checks.fields.get(name)
            problem = check(value) if check is not None else None
            if problem is not None:
                self._errors = {**self._errors, name: problem}


def _decode(raw: str) -> str:
    value = jiter.from_json(f'"{raw}"'.encode())
    assert isinstance(value, str)
    return value


async def stream_partials(texts: AsyncIterable[str],
                          schema: Schema | None = None) -> AsyncIterator[Partial]:
    """Partials of a JSON answer as its text arrives; the last one is ``final``."""
    parser = PartialParser(schema)
    async for text in texts:
        partial = parser.feed(text)
        if partial is not None:
            yield partial
    yield parser.finish()


async def chunk_texts(chunks: AsyncIterable[StreamChunk]) -> AsyncIterator[str]:
    """The JSON text of each chunk: its text, or else the arguments of its first tool call
    (providers whose structured output is a forced tool call stream the JSON there)."""
    async for chunk in chunks:
        text = chunk.text or "".join(d.arguments for d in chunk.tool_calls if d.index == 0)
        if text:
            yield text
