"""How sure the model was of a classification-like answer (an enum, a boolean, a short label).

Two methods, chosen per feature (``confidence = {method = ..., field = ...}``):

- ``logprobs``: the request asks for token logprobs; the confidence is the probability the model
  gave the tokens that spell the chosen value, ``exp(sum of their logprobs)``, each conditioned
  on what precedes it. For a label decided by its first token this is the probability mass of
  that label; the continuation tokens of a multi-token label are usually near 1 and multiply
  in. It needs a provider that returns logprobs (OpenAI-compatible servers; llama.cpp with
  ``logits_all``); when none come back the confidence is unknown (``None``).
- ``self_consistency``: ``samples`` answers at a temperature above zero; the confidence is the
  share of them that agree with the majority answer, and the majority answer is returned.

``field`` names the property of a JSON answer that is the label; by default the first property
of the output schema that is an enum or a boolean, or the whole answer for plain text.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from buttress.types import TokenLogprob, Value

ConfidenceMethod = Literal["logprobs", "self_consistency"]


class ConfidenceSpec(Value):
    method: ConfidenceMethod
    samples: int = Field(5, ge=2, le=50, description="self_consistency: answers to compare")
    field: str | None = Field(None, description="the label property of a JSON answer")
    top_logprobs: int = Field(5, ge=0, le=20, description="logprobs: alternatives per token")
    temperature: float = Field(0.7, gt=0, description="self_consistency: when the call has "
                                                      "none or zero")


def classification_field(schema: Mapping[str, Any] | None) -> str | None:
    """The first property of an object schema that is an enum or a boolean, if any."""
    if not schema:
        return None
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, Mapping) and ("enum" in prop or prop.get("type") == "boolean"):
            return str(name)
    return None


def label_of(value: Any, field: str | None) -> Any:
    """The part of an answer that is compared and scored."""
    if field is not None:
        if isinstance(value, BaseModel):
            return getattr(value, field, None)
        if isinstance(value, Mapping):
            return value.get(field)
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, str):
        return value.strip().casefold()
    return value


def answer_key(value: Any, field: str | None) -> str:
    """A canonical string for majority voting (equal answers, equal keys)."""
    label = label_of(value, field)
    if isinstance(label, str):
        return label
    return json.dumps(label, sort_keys=True, default=str)


def agreement(keys: Sequence[str | None]) -> tuple[str | None, float]:
    """The majority key and the share of ``keys`` equal to it (``None`` keys never agree)."""
    counts = Counter(k for k in keys if k is not None)
    if not counts or not keys:
        return None, 0.0
    key, n = counts.most_common(1)[0]
    return key, n / len(keys)


def label_span(raw: str, field: str | None) -> tuple[int, int] | None:
    """Where the label's characters are in ``raw``: inside the quotes of a string value,
    the literal of a boolean or number, or the stripped text of a plain answer."""
    if field is None:
        start = len(raw) - len(raw.lstrip())
        end = len(raw.rstrip())
        return (start, end) if end > start else None
    found = re.search('"' + re.escape(field) + r'"\s*:\s*', raw)
    if found is None:
        return None
    at = found.end()
    try:
        _, end = json.JSONDecoder().raw_decode(raw, at)
    except json.JSONDecodeError:
        return None
    if raw.startswith('"', at):
        at, end = at + 1, end - 1
    return (at, end) if end > at else None


def logprob_confidence(raw: str, logprobs: Iterable[TokenLogprob],
                       span: tuple[int, int]) -> float | None:
    """``exp`` of the summed logprobs of the tokens overlapping ``span`` of ``raw``.

    ``None`` when the tokens cannot be aligned with the text (they must spell it, possibly
    with text around it that the provider trimmed).
    """
    tokens = list(logprobs)
    joined = "".join(t.token for t in tokens)
    offset = 0 if joined == raw else joined.find(raw)
    if offset < 0 or not raw:
        return None
    start, end = span[0] + offset, span[1] + offset
    total, hit, pos = 0.0, False, 0
    for token in tokens:
        nxt = pos + len(token.token)
        if pos < end and nxt > start:
            total += token.logprob
            hit = True
        if nxt >= end:
            break
        pos = nxt
    return min(1.0, math.exp(total)) if hit else None


__all__ = ["ConfidenceMethod", "ConfidenceSpec", "agreement", "answer_key",
           "classification_field", "label_of", "label_span", "logprob_confidence"]
