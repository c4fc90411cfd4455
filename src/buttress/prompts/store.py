"""The prompt store: the prompts under a directory, their git history and their labels.

``PromptStore(root).get("triage")`` is the current file; ``get("triage", "3f2a9c")`` any version
that is current or committed (by content-hash or commit prefix); ``get("triage",
"label:production")`` the labelled version. ``resolve(name, environment)`` is what the runtime
calls: in ``development`` the current file runs, in any other environment only the version the
lock file labels for it.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

from buttress.errors import ConfigError
from buttress.prompts.history import GitHistory
from buttress.prompts.lock import LOCK_FILE, Labels, check_label, read_lock, write_lock
from buttress.prompts.prompt import Prompt, content_version
from buttress.prompts.template import make_environment

SUFFIX = ".md"
DEVELOPMENT = "development"
LABEL_PREFIX = "label:"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``NAME@VERSION`` into its parts; a bare ``NAME`` has no version.

    A version that is not hexadecimal is a label: ``triage@production`` is
    ``triage@label:production``.
    """
    name, at, version = ref.rpartition("@")
    if not at:
        return ref, None
    if not version:
        raise ConfigError(f"empty version in {ref!r}", source=ref)
    if version.startswith(LABEL_PREFIX) or _HEX.match(version):
        return name, version
    return name, LABEL_PREFIX + version


class PromptStore:
    """Prompts loaded from ``root`` (usually ``<project>/prompts``), parsed and compiled once."""

    def __init__(self, root: Path, *, history: GitHistory | None = None,
                 env: ImmutableSandboxedEnvironment | None = None) -> None:
        self.root = root
        self.lock_path = root / LOCK_FILE
        self._history = history if history is not None else GitHistory()
        self._env = env if env is not None else make_environment()
        self._current: dict[str, tuple[tuple[int, int], Prompt]] = {}
        self._versions: dict[tuple[str, str], Prompt] = {}

    def names(self) -> list[str]:
        """Every prompt name under the root, sorted (``sub/name`` for nested files)."""
        if not self.root.is_dir():
            return []
        return sorted(path.relative_to(self.root).with_suffix("").as_posix()
                      for path in self.root.rglob(f"*{SUFFIX}") if path.is_file())

    def path_for(self, name: str) -> Path:
        if not _NAME.match(name) or ".." in name.split("/"):
            raise ConfigError(f"not a prompt name: {name!r}", source=str(self.root))
        return self.root / f"{name}{SUFFIX}"

    def get(self, name: str, version: str | None = None) -> Prompt:
        """The current file, a version by hash or commit prefix, or ``label:NAME``."""
        if version is None:
            return self._load_current(name)
        if version.startswith(LABEL_PREFIX):
            label = check_label(version.removeprefix(LABEL_PREFIX), source=str(self.lock_path))
            return self._labelled(name, label)
        if not _HEX.match(version):
            raise ConfigError(f"not a version: {version!r} (a content hash or commit prefix of "
                              "at least 4 hex digits, or label:NAME)", source=str(self.root),
                              key=name)
        found = self._find_version(name, version)
        if found is None:
            raise ConfigError(f"prompt {name!r} has no version {version!r}: it is neither the "
                              "current file nor in the file's git history",
                              source=str(self.path_for(name)))
        return found

    def resolve(self, name: str, environment: str = DEVELOPMENT) -> Prompt:
        """The version ``environment`` may run: the current file in development, else its label."""
        if environment == DEVELOPMENT:
            return self._load_current(name)
        return self._labelled(name, check_label(environment, source=str(self.lock_path)))

    async def aresolve(self, name: str, environment: str = DEVELOPMENT) -> Prompt:
        """``resolve`` off the event loop: it may read files and run git."""
        return await asyncio.to_thread(self.resolve, name, environment)

    def labels(self) -> Labels:
        return read_lock(self.lock_path)

    def label(self, name: str, label: str, version: str | None = None) -> Prompt:
        """Pin ``label`` of ``name`` to ``version`` (default: the current file) in the lock."""
        check_label(label, source=str(self.lock_path))
        prompt = self.get(name, version)
        labels = self.labels()
        labels.setdefault(name, {})[label] = prompt.version
        write_lock(self.lock_path, labels)
        return prompt

    def history(self, name: str) -> list[tuple[str, str]]:
        """``(version, commit)`` of every committed version of ``name``, newest first."""
        return [(content_version(revision.content), revision.short)
                for revision in self._history.revisions(self.path_for(name))]

    def _load_current(self, name: str) -> Prompt:
        path = self.path_for(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ConfigError(f"no prompt named {name!r} (expected {path})",
                              source=str(self.root)) from None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._current.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read prompt: {exc}", source=str(path)) from exc
        # An edit that is reverted finds the already compiled version again.
        prompt = self._versions.get((name, content_version(raw)))
        if prompt is None or prompt.source != str(path):
            prompt = Prompt(name, path, raw, env=self._env, history=self._history)
            self._versions[(name, prompt.version)] = prompt
        self._current[name] = (key, prompt)
        return prompt

    def _find_version(self, name: str, version: str) -> Prompt | None:
        path = self.path_for(name)
        if path.is_file():
            current = self._load_current(name)
            if current.version.startswith(version):
                return current
        for (known_name, known_version), prompt in self._versions.items():
            if known_name == name and known_version.startswith(version):
                return prompt
        for revision in self._history.revisions(path):
            if content_version(revision.content).startswith(version) or \
                    revision.commit.startswith(version):
                prompt = Prompt(name, path, revision.content, env=self._env,
                                commit=revision.short)
                return self._versions.setdefault((name, prompt.version), prompt)
        return None

    def _labelled(self, name: str, label: str) -> Prompt:
        pinned = self.labels().get(name, {}).get(label)
        if pinned is None:
            raise ConfigError(
                f"prompt {name!r} has no {label!r} label, so it cannot run there; pin a "
                f"version with `buttress prompts label {name} {label}`",
                source=str(self.lock_path), line=self._lock_line(name))
        found = self._find_version(name, pinned)
        if found is None:
            raise ConfigError(
                f"prompt {name!r} is labelled {label}={pinned}, but that version is neither the "
                "current file nor in its git history (is the repository available?)",
                source=str(self.lock_path), key=f"{name}.{label}", line=self._lock_line(name))
        return found

    def _lock_line(self, name: str) -> int | None:
        """The lock-file line of ``name``'s entry, for errors about its labels."""
        try:
            lines = self.lock_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        needle = json.dumps(name) + ":"
        return next((number for number, line in enumerate(lines, 1) if needle in line), None)
