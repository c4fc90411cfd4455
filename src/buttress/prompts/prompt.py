"""One version of one prompt: its front matter, its compiled body, and its version identity."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

from buttress.errors import ConfigError
from buttress.prompts.frontmatter import FrontMatter, PromptParams, parse_prompt_file
from buttress.prompts.history import GitHistory
from buttress.prompts.template import (
    CompiledPrompt,
    VariableUse,
    make_environment,
    undeclared_variables,
)
from buttress.types import Message

VERSION_LENGTH = 12


def content_version(raw: bytes) -> str:
    """A prompt's version: the first 12 hex digits of the SHA-256 of the file's bytes."""
    return hashlib.sha256(raw).hexdigest()[:VERSION_LENGTH]


class Prompt:
    """One version of one prompt file, parsed and compiled once.

    ``version`` is the content hash; ``git_commit`` is the commit this exact content was last
    committed in, looked up on first access (``None`` outside git or with uncommitted edits).
    """

    def __init__(self, name: str, path: Path, raw: bytes, *,
                 env: ImmutableSandboxedEnvironment | None = None,
                 history: GitHistory | None = None, commit: str | None = None) -> None:
        self.name = name
        self.path = path
        self.raw = raw
        self.version = content_version(raw)
        # A version taken from git history says so in errors; line numbers are that version's.
        self.source = str(path) if commit is None else f"{path}@{self.version}"
        self._history = history
        if commit is not None:
            self.__dict__["git_commit"] = commit  # known already: seed the cached property
        try:
            self.text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                              source=self.source) from exc
        parsed = parse_prompt_file(self.text, self.source)
        self.front_matter: FrontMatter = parsed.front_matter
        self.body = parsed.body
        self.body_line = parsed.body_line
        self._env = env or make_environment()
        self._compiled = CompiledPrompt(self._env, self.body, self.body_line, self.source)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def description(self) -> str:
        return self.front_matter.description

    @property
    def model(self) -> tuple[str, ...]:
        return self.front_matter.model

    @property
    def params(self) -> PromptParams:
        return self.front_matter.params

    @property
    def output(self) -> str | None:
        return self.front_matter.output

    @cached_property
    def git_commit(self) -> str | None:
        if self._history is None:
            return None
        for revision in self._history.revisions(self.path, limit=1):
            if content_version(revision.content) == self.version:
                return revision.short
        return None

    def render(self, variables: Mapping[str, object] | None = None,
               **more: object) -> tuple[Message, ...]:
        """The messages this prompt produces for ``variables`` (and keyword variables)."""
        values: Mapping[str, object] = {**(variables or {}), **more} if more else \
            (variables or {})
        return self._compiled.render(values)

    def variables_used(self) -> tuple[VariableUse, ...]:
        """The variables the template reads from the caller, with the line of first use."""
        return undeclared_variables(self._env, self._compiled.sections, self.source)

    def __repr__(self) -> str:
        return f"Prompt({self.ref!r}, path={str(self.path)!r})"
