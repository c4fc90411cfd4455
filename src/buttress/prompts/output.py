"""Resolve a prompt's ``output`` reference to the schema the answer must satisfy.

Two forms: a JSON-schema file relative to the project (``schemas/triage.json``), or a pydantic
model (``python:package.module:Class``), imported only when resolved.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from buttress.errors import ConfigError

PYTHON_PREFIX = "python:"

OutputSchema = dict[str, Any] | type[BaseModel]


def resolve_output(ref: str, project: Path, *, source: str | None = None,
                   import_module: Callable[[str], ModuleType] = importlib.import_module,
                   ) -> OutputSchema:
    """The JSON schema (a dict) or pydantic model ``ref`` names; ``source`` is the referrer."""
    where = source or ref
    if ref.startswith(PYTHON_PREFIX):
        return _python_model(ref, where, import_module)
    return _schema_file(ref, project, where)


def _python_model(ref: str, where: str,
                  import_module: Callable[[str], ModuleType]) -> type[BaseModel]:
    _, module_name, attribute = ref.split(":", 2)
    try:
        module = import_module(module_name)
    except Exception as exc:  # any import failure makes the reference dangling
        raise ConfigError(f"output {ref!r}: cannot import {module_name!r}: {exc}",
                          source=where, key="output") from exc
    model = getattr(module, attribute, None)
    if model is None:
        raise ConfigError(f"output {ref!r}: {module_name!r} has no {attribute!r}",
                          source=where, key="output")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"output {ref!r} is not a pydantic model", source=where, key="output")
    return model


def _schema_file(ref: str, project: Path, where: str) -> dict[str, Any]:
    relative = Path(ref)
    if relative.is_absolute():
        raise ConfigError(f"output {ref!r} must be a path relative to the project",
                          source=where, key="output")
    path = project / relative
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"output schema {ref!r} does not exist (looked for {path})",
                          source=where, key="output") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"output schema {ref!r} cannot be read: {exc}", source=where,
                          key="output") from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"output schema {ref!r} is not valid JSON: {exc.msg} (line "
                          f"{exc.lineno})", source=where, key="output") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"output schema {ref!r} must be a JSON object", source=where,
                          key="output")
    return schema
