"""A small JSON Schema (draft 2020-12 subset) validator for the ``json_schema`` scorer.

Supported: type, enum, const, properties, required, additionalProperties (bool or schema),
items, minItems/maxItems, minLength/maxLength, pattern, minimum/maximum, anyOf/oneOf/allOf.
Unknown keywords are ignored, as the specification asks. Returns every problem with its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "null": (type(None),), "number": (int, float), "integer": (int,),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def validate(value: Any, schema: Mapping[str, Any] | bool, path: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema``; empty when it is valid."""
    if schema is True:
        return []
    if schema is False:
        return [f"{path}: not allowed"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        names = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, n) for n in names):
            return [f"{path}: expected {'/'.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: expected {schema['const']!r}")
    if isinstance(value, dict):
        problems += _object(value, schema, path)
    if isinstance(value, list):
        if "items" in schema:
            for i, item in enumerate(value):
                problems += validate(item, schema["items"], f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            problems.append(f"{path}: does not match {schema['pattern']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: above {schema['maximum']}")
    for sub in schema.get("allOf", ()):
        problems += validate(value, sub, path)
    if "anyOf" in schema and all(validate(value, s, path) for s in schema["anyOf"]):
        problems.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema and sum(not validate(value, s, path) for s in schema["oneOf"]) != 1:
        problems.append(f"{path}: does not match exactly one of oneOf")
    return problems


def _object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    problems = [f"{path}: missing required field {name!r}"
                for name in schema.get("required", ()) if name not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problems += validate(item, properties[name], f"{path}.{name}")
        elif extra is not True:
            problems += validate(item, extra, f"{path}.{name}") if extra is not False else \
                [f"{path}: unexpected field {name!r}"]
    return problems
