"""Redaction applied to every record before it is persisted (or spilled to disk).

The policy is per feature, for content (request messages, output text and parsed value):

- ``store``: keep content; secrets are still scrubbed.
- ``redact``: scrub secrets and personal data (emails, phones, cards, SSNs) found by detectors.
- ``hash``: replace content by ``sha256:<hex>`` of it, so identical content can still be matched.
- ``drop``: keep no content at all.

Secrets (built-in key patterns and the literal values given, such as provider keys read from the
environment) are scrubbed from every string in every mode, including parameters, error messages,
feedback comments, the keys of nested objects and what callers name a call by (user and session
ids, parent id, tags, the model asked for): no policy can persist a secret. Those names are
scrubbed of secrets only, never of personal data: an email address used as a user id is how
the app tells its users apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, cast

from buttress.errors import ConfigError
from buttress.ledger.detectors import (
    DIGIT_RUN,
    DIGITS,
    Detector,
    LiteralDetector,
    pii_detectors,
    secret_detectors,
)
from buttress.ledger.records import AttemptRecord, CallRecord, FeedbackRecord, Validation

Mode = Literal["store", "redact", "hash", "drop"]
MODES: tuple[str, ...] = ("store", "redact", "hash", "drop")

_Text = Callable[[str], str | None]


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_ASCII_DIGIT_RUN = re.compile(DIGIT_RUN.pattern, re.ASCII)


class _Gate:
    """Tells in one call whether a lowercased text holds any trigger of any gated detector.

    The words go in one regex whose alternatives all start with a letter, so the engine skips
    along the text to those letters; with the digit run among them it would try every
    alternative at every position, three times slower. The digit run is a second search.
    """

    def __init__(self, words: re.Pattern[str] | None, digits: bool) -> None:
        self.words = words
        self.digits = digits

    def search(self, low: str) -> object | None:
        found = self.words.search(low) if self.words is not None else None
        if found is None and self.digits:
            # in ASCII text a digit is 0-9, which the ASCII regex checks faster
            return (_ASCII_DIGIT_RUN if low.isascii() else DIGIT_RUN).search(low)
        return found


def _gate(gated: Sequence[tuple[Detector, Sequence[str]]]) -> _Gate | None:
    """The gate for every trigger of the gated detectors; None when none has a trigger."""
    words: set[str] = set()
    for _, triggers in gated:
        words.update(triggers)
    if not words:
        return None
    parts = sorted(re.escape(w) for w in words if w is not DIGITS)
    return _Gate(re.compile("|".join(parts)) if parts else None, DIGITS in words)


def _only_literals(ungated: Sequence[tuple[Detector, Sequence[str]]],
                   ) -> list[LiteralDetector] | None:
    """The literal detectors among those that run on every text; None if any other does."""
    if any(type(d) is not LiteralDetector for d, _ in ungated):
        return None
    return [cast(LiteralDetector, d) for d, _ in ungated]


def _clean(joined: str, gate: _Gate | None, literals: list[LiteralDetector]) -> bool:
    """Whether ``joined`` holds no trigger of ``gate`` and none of the ``literals``."""
    if gate is not None and gate.search(joined.lower()) is not None:
        return False
    return not any(value in joined for detector in literals for value in detector.values)


def _texts(value: Any, out: list[str]) -> bool:
    """Adds to ``out`` every string ``_walk`` would visit in ``value``. False when ``value``
    holds a container ``_walk`` would rebuild as another type (a named tuple becomes a list),
    whose stored JSON could then differ from the original's."""
    kind = type(value)
    if kind is str:
        out.append(value)
        return True
    if kind is dict:
        for key in value:
            if type(key) is str:
                out.append(key)
        value = value.values()
    elif kind is not list and kind is not tuple:
        return not isinstance(value, str | dict | list | tuple)
    for item in value:
        if type(item) is str:
            out.append(item)
        elif not _texts(item, out):
            return False
    return True


def _request_texts(request: dict[str, Any], out: list[str]) -> bool:
    """``_texts`` of a stored request, but for its own field names and its messages' (the
    ledger's words, which ``Redactor._request`` leaves as they are: "max_tokens" would meet
    the gate's "token" in every call)."""
    for key, value in request.items():
        if key == "messages" and isinstance(value, list | tuple):
            for message in value:
                if type(message) is not dict:
                    if not _texts(message, out):
                        return False
                    continue
                for item in message.values():
                    if not _texts(item, out):
                        return False
        elif not _texts(value, out):
            return False
    return True


def _walk(value: Any, fn: _Text, key: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it and ``key`` to every object key."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {key(k) if isinstance(k, str) else k: _walk(v, fn, key)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, fn, key) for v in value]
    return value


#: the strings a caller names a call by (besides its tags), scrubbed of secrets only
IDENTITY_FIELDS = ("user_id", "session_id", "parent_id", "model_requested", "model_served")


class Redactor:
    """Applies detectors and the per-feature content policy to records.

    ``detectors`` are the personal-data detectors used by ``redact`` (default: emails, phones,
    cards, SSNs); ``secrets`` are literal values always scrubbed; ``secret_detectors`` the
    always-on key patterns (default: the built-ins).
    """

    def __init__(self, *, default: Mode = "redact", features: Mapping[str, Mode] | None = None,
                 detectors: Sequence[Detector] | None = None, secrets: Iterable[str] = (),
                 secret_patterns: Sequence[Detector] | None = None) -> None:
        features = dict(features or {})
        for name, mode in {"<default>": default, **features}.items():
            if mode not in MODES:
                raise ConfigError(f"unknown redaction mode {mode!r}; "
                                  f"choose one of {', '.join(MODES)}", source="redaction",
                                  key=name)
        self.default: Mode = default
        self.features = features
        self._secret: list[Detector] = [LiteralDetector(secrets),
                                        *(secret_detectors() if secret_patterns is None
                                          else secret_patterns)]
        self._all: list[Detector] = [*self._secret,
                                     *(pii_detectors() if detectors is None else detectors)]
        self._gated_secret = [(d, getattr(d, "triggers", ()) or ()) for d in self._secret]
        self._gated_all = [(d, getattr(d, "triggers", ()) or ()) for d in self._all]
        self._gate_secret = _gate(self._gated_secret)
        self._gate_all = _gate(self._gated_all)
        # what still runs on text that holds no trigger at all
        self._ungated_secret = [(d, t) for d, t in self._gated_secret if not t]
        self._ungated_all = [(d, t) for d, t in self._gated_all if not t]
        # the literal detectors that run on every text, when they are the only ones that do
        self._literal_secret = _only_literals(self._ungated_secret)
        self._literal_all = _only_literals(self._ungated_all)

    def mode_for(self, feature: str) -> Mode:
        return self.features.get(feature, self.default)

    # -- text -------------------------------------------------------------------------------

    def scrub(self, text: str, *, personal: bool = True) -> str:
        """``text`` with secret spans (and personal data when ``personal``) replaced by
        ``[REDACTED:<label>]``."""
        gated, gate = ((self._gated_all, self._gate_all) if personal else
                       (self._gated_secret, self._gate_secret))
        spans: list[tuple[int, int, str]] = []
        low: str | None = None
        digits: bool | None = None
        if gate is not None:
            # Most text holds no trigger at all: one search then rules out every gated detector.
            low = text.lower()
            if gate.search(low) is None:
                gated = self._ungated_all if personal else self._ungated_secret
        for detector, triggers in gated:
            if triggers:  # run the detector only on text holding one of its triggers
                if low is None:
                    low = text.lower()
                for word in triggers:
                    if word is DIGITS:
                        if digits is None:
                            digits = DIGIT_RUN.search(text) is not None
                        if digits:
                            break
                    elif word in low:
                        break
                else:
                    continue
            for s, e in detector.find(text):
                spans.append((s, e, detector.label))
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        cur_start, cur_end, cur_label = spans[0]
        for start, end, label in spans[1:]:
            if start < cur_end:  # overlapping: merge, keeping the first label
                cur_end = max(cur_end, end)
                continue
            out += [text[pos:cur_start], f"[REDACTED:{cur_label}]"]
            pos = cur_end
            cur_start, cur_end, cur_label = start, end, label
        out += [text[pos:cur_start], f"[REDACTED:{cur_label}]", text[cur_end:]]
        return "".join(out)

    def _content_fn(self, mode: Mode) -> _Text:
        if mode == "store":
            return lambda t: self.scrub(t, personal=False)
        if mode == "redact":
            return self.scrub
        if mode == "hash":
            return _sha256
        return lambda t: None

    def _meta_fn(self, mode: Mode) -> _Text:
        # Parameters and error text are not "content", but may quote it.
        return (lambda t: self.scrub(t, personal=False)) if mode == "store" else self.scrub

    # -- records ----------------------------------------------------------------------------

    def call(self, record: CallRecord) -> CallRecord:
        v = record.validation
        if self.keeps(record.feature, record.request, record.output_value,
                      (record.output_text, record.error_message, *(v.reasons if v else ())),
                      (*[getattr(record, name) for name in IDENTITY_FIELDS], *record.tags)):
            return record
        return self._scrubbed(record, self.mode_for(record.feature))

    def keeps(self, feature: str, request: dict[str, Any], output_value: Any = None,
              texts: Iterable[str | None] = (), names: Iterable[str | None] = ()) -> bool:
        """Whether redaction keeps as they are a call of ``feature`` with this request, parsed
        value and other texts (output text, error messages, validation reasons; None for
        none), and the names it goes by (``IDENTITY_FIELDS`` and tags, checked for secrets
        only), told by one gate search over each: the usual call holds no trigger of any
        detector, and scrubbing it field by field, at three times the cost, would only copy it.

        True only for ``redact`` and ``store`` (hashing and dropping change content whatever it
        holds), where one scrub serves every text, and only when every detector that ignores
        triggers is a literal one: a literal found nowhere in the joined text is in none of its
        parts. The texts are joined by newlines, which no trigger holds, so the join hides no
        match; one it adds only sends the record the slow way.
        """
        mode = self.mode_for(feature)
        if mode == "redact":
            gate, literals = self._gate_all, self._literal_all
        elif mode == "store":
            gate, literals = self._gate_secret, self._literal_secret
        else:
            return False
        if gate is None or literals is None:
            return False
        found: list[str] = []
        if not _request_texts(request, found):
            return False
        if output_value is not None and not _texts(output_value, found):
            return False
        for text in texts:
            if text is not None:
                if not isinstance(text, str):
                    return False
                found.append(text)
        if not _clean("\n".join(found), gate, literals):
            return False
        named = [name for name in names if name is not None]
        if named:
            if self._literal_secret is None or any(type(n) is not str for n in named):
                return False
            return _clean("\n".join(named), self._gate_secret, self._literal_secret)
        return True

    def _scrubbed(self, record: CallRecord, mode: Mode) -> CallRecord:
        """``record`` with every text scrubbed, hashed or dropped, field by field."""
        content, meta, secrets = self._content_fn(mode), self._meta_fn(mode), self._secrets
        update: dict[str, Any] = {
            "request": self._request(record.request, content, meta),
            "tags": tuple([secrets(t) for t in record.tags]),
            **{name: secrets(value) for name in IDENTITY_FIELDS
               if (value := getattr(record, name)) is not None}}
        if record.output_text is not None:
            update["output_text"] = content(record.output_text)
        if record.output_value is not None:
            update["output_value"] = self._value(record.output_value, mode, content)
        if record.error_message is not None:
            update["error_message"] = meta(record.error_message)
        if record.validation is not None and record.validation.reasons:
            update["validation"] = Validation(
                outcome=record.validation.outcome,
                reasons=tuple(meta(r) or "" for r in record.validation.reasons))
        return record.evolve(update)

    def attempt(self, record: AttemptRecord, feature: str = "") -> AttemptRecord:
        if record.error_message is None:
            return record
        message = self._meta_fn(self.mode_for(feature))(record.error_message)
        return record.evolve({"error_message": message})

    def attempts(self, records: tuple[AttemptRecord, ...],
                 feature: str = "") -> tuple[AttemptRecord, ...]:
        """``attempt`` of each record: the same tuple when none holds an error message, as in
        the usual call."""
        for record in records:
            if record.error_message is not None:
                return tuple([self.attempt(a, feature) for a in records])
        return records

    def feedback(self, record: FeedbackRecord) -> FeedbackRecord:
        if record.comment is None:
            return record
        comment = self._content_fn(self.default)(record.comment)
        return record.evolve({"comment": comment})

    def _secrets(self, text: str) -> str:
        return self.scrub(text, personal=False)

    def _request(self, request: dict[str, Any], content: _Text, meta: _Text) -> dict[str, Any]:
        # the top level's keys are the request's field names (the ledger's own)
        out: dict[str, Any] = {}
        for key, value in request.items():
            if key == "messages" and isinstance(value, list | tuple):
                out[key] = [self._message(m, content, meta) for m in value]
            else:
                out[key] = _walk(value, meta, self._secrets)
        return out

    def _message(self, message: Any, content: _Text, meta: _Text) -> Any:
        if not isinstance(message, dict):
            return _walk(message, content, self._secrets)
        # the keys are a message's field names; the role is one of a few fixed words
        return {k: v if k == "role" and isinstance(v, str) else
                _walk(v, content if k in ("content", "tool_calls") else meta, self._secrets)
                for k, v in message.items()}

    def _value(self, value: Any, mode: Mode, content: _Text) -> Any:
        if mode == "hash":
            return _sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))
        if mode == "drop":
            return None
        return _walk(value, content, self._secrets)
