"""Split a prompt file into YAML front matter and a template body; validate the front matter.

A prompt file looks like::

    ---
    description: Classify a support ticket
    model: [small, large]
    params: {temperature: 0.2, max_tokens: 200}
    output: schemas/triage.json
    variables: {ticket: the ticket text}
    ---
    [system]
    You triage tickets.
    [user]
    {{ ticket }}

A file that does not start with ``---`` has no front matter and is all body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from buttress.errors import ConfigError

if TYPE_CHECKING:
    import yaml

FENCE = "---"


class PromptParams(BaseModel):
    """Sampling parameters the prompt asks for; the caller's per-call values override them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Provider-specific parameters, passed through as CallRequest.extra.
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value


class FrontMatter(BaseModel):
    """The validated front matter of one prompt file. Unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    # Model hints: one alias or an ordered preference list.
    model: tuple[str, ...] = ()
    params: PromptParams = PromptParams()
    # ``schemas/x.json`` (relative to the project) or ``python:module:Class``.
    output: str | None = None
    # Declared variable names with descriptions; ``None`` means "not declared".
    variables: dict[str, str] | None = None

    @field_validator("model", mode="before")
    @classmethod
    def _one_model(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("variables", mode="before")
    @classmethod
    def _variable_list(cls, value: object) -> object:
        # Accept a bare list of names, and names whose description is left empty.
        if isinstance(value, list):
            return dict.fromkeys(value, "")
        if isinstance(value, dict):
            return {k: ("" if v is None else v) for k, v in value.items()}
        return value

    @field_validator("output")
    @classmethod
    def _output_ref(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("python:"):
            parts = value.split(":")
            if len(parts) != 3 or not all(parts[1:]):
                raise ValueError("a python output reference is 'python:module:Class'")
        elif not value.strip():
            raise ValueError("an output reference cannot be empty")
        return value


class ParsedFile:
    """A prompt file split in two: ``front_matter`` and ``body``, which starts at ``body_line``."""

    __slots__ = ("body", "body_line", "front_matter")

    def __init__(self, front_matter: FrontMatter, body: str, body_line: int) -> None:
        self.front_matter = front_matter
        self.body = body
        self.body_line = body_line


def parse_prompt_file(text: str, source: str) -> ParsedFile:
    """Parse a prompt file's text; ``source`` names the file in errors."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").rstrip() != FENCE:
        return ParsedFile(FrontMatter(), text, 1)
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n").rstrip() == FENCE:
            closing = index
            break
    else:
        raise ConfigError("front matter opened with '---' on line 1 is never closed",
                          source=source, line=1)
    yaml_text = "".join(lines[1:closing])
    front_matter = _validate(yaml_text, source)
    # Body lines are numbered as in the file: closing fence is line closing+1.
    return ParsedFile(front_matter, "".join(lines[closing + 1:]), closing + 2)


def _validate(yaml_text: str, source: str) -> FrontMatter:
    import yaml  # here, not at the top: `buttress serve` with no prompt files never needs it

    try:
        node = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML front matter: {problem}", source=source,
                          line=line) from exc
    if data is None:
        return FrontMatter()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError("front matter must be a mapping of keys to values", source=source,
                          line=2)
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.value in seen:
            raise ConfigError("duplicate key", source=source, key=str(key_node.value),
                              line=key_node.start_mark.line + 2)
        seen.add(key_node.value)
    try:
        return FrontMatter.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        key = ".".join(str(part) for part in loc) or None
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        line = _line_of(node, loc)
        raise ConfigError(problem, source=source, key=key,
                          line=line + 2 if line is not None else None) from exc


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 0-based line in the YAML text of the value at ``loc`` (or its deepest known parent)."""
    import yaml

    line = node.start_mark.line if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            return line
    return line
