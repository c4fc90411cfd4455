"""Check every prompt in a store: front matter, template syntax, variables, output schemas, labels.

Lint never stops at the first problem: it reports each one as ``file:line: severity: message``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from buttress.errors import ConfigError
from buttress.prompts.output import resolve_output
from buttress.prompts.prompt import Prompt
from buttress.prompts.store import LABEL_PREFIX, PromptStore

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"

    @classmethod
    def from_error(cls, exc: ConfigError, fallback_source: str) -> Problem:
        message = f"{exc.key}: {exc.problem}" if exc.key else exc.problem
        return cls(exc.source or fallback_source, exc.line, message)


def lint(store: PromptStore, project: Path, *,
         import_module: Callable[[str], ModuleType] = importlib.import_module) -> list[Problem]:
    """Every problem found in ``store``'s prompts and lock file; empty means clean."""
    problems: list[Problem] = []
    for name in store.names():
        try:
            prompt = store.get(name)
        except ConfigError as exc:
            problems.append(Problem.from_error(exc, str(store.path_for(name))))
            continue
        problems.extend(_check_variables(prompt))
        problems.extend(_check_output(prompt, project, import_module))
    problems.extend(_check_labels(store))
    return problems


def _check_variables(prompt: Prompt) -> list[Problem]:
    declared = prompt.front_matter.variables
    try:
        used = prompt.variables_used()
    except ConfigError as exc:
        return [Problem.from_error(exc, prompt.source)]
    if declared is None:
        return []
    problems = [Problem(prompt.source, use.line,
                        f"variable {use.name!r} is used but not declared in 'variables'")
                for use in used if use.name not in declared]
    used_names = {use.name for use in used}
    problems.extend(Problem(prompt.source, _key_line(prompt, "variables"),
                            f"variable {name!r} is declared but never used", "warning")
                    for name in declared if name not in used_names)
    return problems


def _check_output(prompt: Prompt, project: Path,
                  import_module: Callable[[str], ModuleType]) -> list[Problem]:
    ref = prompt.output
    if ref is None:
        return []
    try:
        resolve_output(ref, project, source=prompt.source, import_module=import_module)
    except ConfigError as exc:
        return [Problem(prompt.source, _key_line(prompt, "output"), exc.problem)]
    return []


def _check_labels(store: PromptStore) -> list[Problem]:
    lock = str(store.lock_path)
    try:
        labels = store.labels()
    except ConfigError as exc:
        return [Problem.from_error(exc, lock)]
    names = set(store.names())
    problems = []
    for name, pins in labels.items():
        if name not in names:
            problems.append(Problem(lock, None, f"labels for {name!r}, which has no prompt file",
                                    "warning"))
            continue
        for label in pins:
            try:
                store.get(name, LABEL_PREFIX + label)
            except ConfigError as exc:
                problems.append(Problem.from_error(exc, lock))
    return problems


def _key_line(prompt: Prompt, key: str) -> int | None:
    """The file line of a top-level front-matter key."""
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    for number, line in enumerate(prompt.text.splitlines()[:prompt.body_line - 1], 1):
        if pattern.match(line):
            return number
    return None
