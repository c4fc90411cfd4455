"""Output contracts: the shape a feature's answer must have, and how it is checked and repaired.

A contract is a pydantic model (its own validators run) or a JSON schema (checked with the
``jsonschema`` package). It is applied to each attempt's request in one of two ways:

- ``native``: the request carries a ``response_format`` and the provider adapter maps it to its
  own mechanism (OpenAI strict ``json_schema``, Anthropic forced tool, Gemini response schema,
  llama.cpp grammar);
- ``instruct``: for providers without one, the schema goes into the system message and the
  answer is parsed from plain text.

Which one a provider gets is data (``Provider.contract_support``, overridable per provider in
config), never a branch per provider. Validation failures are fed back to the same model at most
``max_repairs`` times (see ``runtime.checked``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from buttress.errors import OutputValidationError, UsageError
from buttress.types import CallRequest, Message, ResponseFormat, Value

ContractMode = Literal["auto", "native", "instruct"]
"""``auto``: what the provider supports; ``native`` / ``instruct``: force one way."""
StructuredSupport = Literal["native", "instruct"]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_MAX_REASONS = 8  # a repair message listing every error of a wild answer helps nobody


class OutputContract(Value):
    """What a call's answer must be. Build one with ``OutputContract.of(Model or schema)``."""

    json_schema: dict[str, Any]
    pydantic_model: type[BaseModel] | None = None
    name: str = "output"
    max_repairs: int = Field(1, ge=0)
    mode: ContractMode = "auto"

    @classmethod
    def of(cls, output: type[BaseModel] | Mapping[str, Any] | OutputContract, *,
           name: str | None = None, max_repairs: int = 1,
           mode: ContractMode = "auto") -> OutputContract:
        """A contract from a pydantic model type or a JSON-schema dict (a contract is kept)."""
        if isinstance(output, OutputContract):
            return output
        if isinstance(output, type) and issubclass(output, BaseModel):
            return cls(json_schema=output.model_json_schema(), pydantic_model=output,
                       name=_tool_name(name or output.__name__), max_repairs=max_repairs,
                       mode=mode)
        if isinstance(output, Mapping):
            schema = dict(output)
            _check_schema(schema)
            return cls(json_schema=schema, name=_tool_name(name or schema.get("title") or
                                                           "output"),
                       max_repairs=max_repairs, mode=mode)
        raise UsageError(f"output must be a pydantic model type or a JSON-schema dict, not "
                         f"{type(output).__name__}")

    @cached_property
    def response_format(self) -> ResponseFormat:
        return ResponseFormat(type="json_schema", json_schema=self.json_schema, name=self.name)

    @cached_property
    def instruction(self) -> str:
        return ("Reply with only a JSON value that satisfies this JSON schema, with no other "
                "text before or after it:\n" + json.dumps(self.json_schema, sort_keys=True))

    def apply(self, request: CallRequest, support: StructuredSupport) -> CallRequest:
        """``request`` asking for this contract's shape, natively or by instruction."""
        native = self.mode == "native" or (self.mode == "auto" and support == "native")
        if native:
            return request.model_copy(update={"response_format": self.response_format})
        messages = list(request.messages)
        # Fold into the first system message: some chat templates take only one.
        if messages and messages[0].role == "system":
            messages[0] = Message.system(f"{messages[0].content or ''}\n\n{self.instruction}")
        else:
            messages.insert(0, Message.system(self.instruction))
        return request.model_copy(update={"messages": tuple(messages),
                                          "response_format": None})

    def repair(self, request: CallRequest, raw: str, reasons: tuple[str, ...]) -> CallRequest:
        """``request`` followed by the rejected answer and what was wrong with it."""
        listed = "\n".join(f"- {r}" for r in reasons[:_MAX_REASONS])
        more = len(reasons) - _MAX_REASONS
        if more > 0:
            listed += f"\n- ... and {more} more"
        feedback = ("Your answer does not satisfy the required JSON schema:\n" + listed +
                    "\nReply again with only the corrected JSON.")
        return request.model_copy(update={"messages": (*request.messages,
                                                       Message.assistant(raw),
                                                       Message.user(feedback))})

    def parse(self, raw: str) -> Any:
        """The validated value (a model instance or plain JSON data), or
        ``OutputValidationError`` with one reason per problem and the raw text."""
        text = _json_text(raw)
        if self.pydantic_model is not None:
            try:
                return self.pydantic_model.model_validate_json(text)
            except ValidationError as exc:
                raise _invalid(raw, [_pydantic_reason(e) for e in exc.errors(
                    include_url=False)]) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _invalid(raw, [f"(root): not valid JSON: {exc.msg} (char "
                                 f"{exc.pos})"]) from None
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise _invalid(raw, [f"{_path(e.absolute_path)}: {e.message}" for e in errors])
        return data

    @cached_property
    def _validator(self) -> Any:
        from jsonschema.validators import validator_for

        return validator_for(self.json_schema)(self.json_schema)


def dump_value(value: Any) -> Any:
    """A parsed value as plain JSON data (for the ledger)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _check_schema(schema: dict[str, Any]) -> None:
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UsageError(f"output schema is not a valid JSON schema: {exc.message} (at "
                         f"{_path(exc.absolute_path)})") from None


def _invalid(raw: str, reasons: list[str]) -> OutputValidationError:
    return OutputValidationError(f"output does not satisfy the contract: {'; '.join(reasons)}",
                                 raw=raw, reasons=reasons)


def _pydantic_reason(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ())) or "(root)"
    return f"{loc}: {error.get('msg', 'invalid')}"


def _path(parts: Any) -> str:
    return "/".join(str(p) for p in parts) or "(root)"


def _json_text(raw: str) -> str:
    text = raw.strip()
    if text.startswith("```"):  # instructed models like fences; the content is what counts
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0].strip()
    return text


def _tool_name(name: str) -> str:
    # Anthropic tool names and OpenAI schema names allow only these characters.
    return _NAME.sub("_", name)[:64] or "output"


__all__ = ["ContractMode", "OutputContract", "StructuredSupport", "dump_value"]
