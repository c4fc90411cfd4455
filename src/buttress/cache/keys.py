"""The normalised request key: what makes two calls the same question.

A key covers the feature, the prompt version, the model chain, the parameters, the messages, the
output schema (``response_format``) and the tools, as canonical JSON (sorted keys, no spaces)
hashed with SHA-256. Ids, tags, users and the policy are left out: they do not change the answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from buttress.runtime.result import Call

KEY_VERSION = 1  # bump when the payload changes shape, so old entries stop matching
_CHECKS = ("output", "confidence", "routing")


def _payload(call: Call) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": KEY_VERSION,
        "feature": call.feature,
        "prompt_version": call.prompt_version,
        "targets": [[t.provider, t.model] for t in call.targets],
        # ``model`` is filled per target by the runtime; the chain above stands for it
        "request": call.request.model_dump(mode="json", exclude={"model"}),
    }
    # The output contract, confidence and routing change what answer is accepted. Read by name:
    # they are optional parts of a Call, each a pydantic value when set.
    for name in _CHECKS:
        check = getattr(call, name, None)
        if isinstance(check, BaseModel):
            payload[name] = check.model_dump(mode="json", exclude={"pydantic_model"})
    return payload


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def request_key(call: Call) -> str:
    """The exact-cache key of ``call``: 64 hex digits."""
    return _digest(_payload(call))


def semantic_scope(call: Call) -> tuple[str, str] | None:
    """``(scope, text)``: the text to embed (the last user message) and a key for everything
    else about the request, so a semantic hit can only differ from the stored call in that one
    message's wording. None when the call has no user message with text."""
    messages = call.request.messages
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user" and messages[i].content:
            payload = _payload(call)
            payload["request"]["messages"][i]["content"] = None  # the part compared by meaning
            payload["semantic_index"] = i
            return _digest(payload), messages[i].content or ""
    return None
