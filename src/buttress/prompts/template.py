"""Compile a prompt body into role sections and render them, sandboxed, into messages.

Lines that are exactly ``[system]``, ``[user]`` or ``[assistant]`` start a message of that role;
a body without markers is one user message. Sections are split *before* rendering, so a variable's
value can never forge a role marker. Each section is compiled on its own, padded with newlines so
that Jinja's line numbers are the prompt file's line numbers. Text before the first marker is an
error (a ``{# comment #}`` is fine); a section that renders empty is dropped.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from buttress.errors import ConfigError
from buttress.types import Message, Role

ROLE_MARKERS: dict[str, Role] = {"[system]": "system", "[user]": "user",
                                 "[assistant]": "assistant"}
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


MAX_REPEAT = 100_000  # longest string or list that ``*`` may build; as Jinja's MAX_RANGE
MAX_EXPONENT = 1_000


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing ``*`` and ``**`` that would build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(count, int) \
                        and len(sequence) * count > MAX_REPEAT:
                    raise SecurityError(f"repetition would build more than {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def make_environment() -> ImmutableSandboxedEnvironment:
    """The Jinja environment prompts render in: sandboxed, undefined variables are errors."""
    return PromptEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                             lstrip_blocks=True)


@dataclass(frozen=True, slots=True)
class Section:
    """One role section of a body; ``source`` is padded so its line numbers are file lines."""

    role: Role
    source: str
    line: int


def split_sections(body: str, body_line: int, source: str) -> tuple[Section, ...]:
    """Split a body (whose first line is file line ``body_line``) at its role markers."""
    lines = body.splitlines(keepends=True)
    starts: list[tuple[int, Role]] = []
    for index, text in enumerate(lines):
        role = ROLE_MARKERS.get(text.rstrip())
        if role is not None:
            starts.append((index, role))
    if not starts:
        return (Section("user", "\n" * (body_line - 1) + body, body_line),)
    preamble = _COMMENT.sub("", "".join(lines[:starts[0][0]]))
    if preamble.strip():
        offset = next(i for i, text in enumerate(lines) if text.strip())
        raise ConfigError("text before the first role marker ([system], [user] or "
                          "[assistant])", source=source, line=body_line + offset)
    sections = []
    for number, (index, role) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(lines)
        first_line = body_line + index + 1
        text = "".join(lines[index + 1:end])
        sections.append(Section(role, "\n" * (first_line - 1) + text, first_line))
    return tuple(sections)


class CompiledPrompt:
    """A prompt body compiled once; ``render`` is the hot path."""

    __slots__ = ("_templates", "sections", "source")

    def __init__(self, env: ImmutableSandboxedEnvironment, body: str, body_line: int,
                 source: str) -> None:
        self.source = source
        self.sections = split_sections(body, body_line, source)
        self._templates: tuple[tuple[Role, Template], ...] = tuple(
            (section.role, _compile(env, section.source, source)) for section in self.sections
        )

    def render(self, variables: Mapping[str, object]) -> tuple[Message, ...]:
        """Render every section; sections that render empty are dropped."""
        messages = []
        for role, template in self._templates:
            try:
                content = template.render(variables)
            except Exception as exc:  # a template's own failure, translated at the boundary
                raise ConfigError(f"cannot render: {_describe(exc)}", source=self.source,
                                  line=_template_line(exc, template)) from exc
            content = content.strip()
            if content:
                messages.append(Message(role=role, content=content))
        return tuple(messages)


def _compile(env: ImmutableSandboxedEnvironment, padded: str, source: str) -> Template:
    try:
        code = env.compile(padded, name=source, filename=source)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"template syntax error: {exc.message}", source=source,
                          line=exc.lineno) from exc
    return env.template_class.from_code(env, code, env.make_globals(None))


def _describe(exc: BaseException) -> str:
    message = str(exc)
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {message}"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _template_line(exc: BaseException, template: Template) -> int | None:
    """The template line an error was raised on: Jinja rewrites tracebacks onto template lines."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@dataclass(frozen=True, slots=True)
class VariableUse:
    """A variable the template reads without defining it, and the first file line using it."""

    name: str
    line: int


def undeclared_variables(env: ImmutableSandboxedEnvironment, sections: tuple[Section, ...],
                         source: str) -> tuple[VariableUse, ...]:
    """Variables every section needs from the caller, sorted by first use."""
    first_use: dict[str, int] = {}
    for section in sections:
        try:
            tree = env.parse(section.source, name=source, filename=source)
        except TemplateSyntaxError as exc:
            raise ConfigError(f"template syntax error: {exc.message}", source=source,
                              line=exc.lineno) from exc
        needed = meta.find_undeclared_variables(tree)
        for node in tree.find_all(nodes.Name):
            if node.ctx == "load" and node.name in needed:
                first_use.setdefault(node.name, node.lineno)
                first_use[node.name] = min(first_use[node.name], node.lineno)
    return tuple(sorted((VariableUse(name, line) for name, line in first_use.items()),
                        key=lambda use: (use.line, use.name)))
