"""The label lock file, ``prompts/prompts.lock``: which prompt version each environment may run.

It is JSON, one object per prompt mapping a label to a content-hash version, kept sorted so that
diffs in review stay small::

    {
      "triage": {"production": "3f2a9c1b7d4e", "staging": "a0b1c2d3e4f5"}
    }
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from buttress.errors import ConfigError

LOCK_FILE = "prompts.lock"
_LABEL = re.compile(r"^[a-z][a-z0-9_-]*$")
_VERSION = re.compile(r"^[0-9a-f]{4,64}$")

Labels = dict[str, dict[str, str]]


def read_lock(path: Path) -> Labels:
    """The labels in ``path``; a missing file holds no labels."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read lock file: {exc}", source=str(path)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", source=str(path), line=exc.lineno) from exc
    if not isinstance(data, dict):
        raise ConfigError("the lock file must map prompt names to labels", source=str(path))
    labels: Labels = {}
    for name, pins in data.items():
        if not isinstance(pins, dict):
            raise ConfigError("must map labels to versions", source=str(path), key=name)
        for label, version in pins.items():
            check_label(label, source=str(path))
            if not isinstance(version, str) or not _VERSION.match(version):
                raise ConfigError(f"not a version hash: {version!r}", source=str(path),
                                  key=f"{name}.{label}")
        labels[name] = dict(pins)
    return labels


def write_lock(path: Path, labels: Labels) -> None:
    """Write ``labels`` atomically, so a crash never leaves a half-written lock."""
    text = json.dumps({name: dict(sorted(pins.items())) for name, pins in sorted(labels.items())},
                      indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".prompts.lock.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_label(label: object, *, source: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ConfigError(f"not a label name: {label!r} (lowercase letters, digits, '-', '_')",
                          source=source)
    return label
