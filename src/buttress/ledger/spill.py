"""Spill files: JSON lines of already-redacted ledger entries that could not be queued or written.

Each writer appends to its own ``ledger-spill-<pid>-<random>.jsonl`` and holds an exclusive
``flock`` on it while open, so a writer starting beside it never replays a file still being
appended to. Replay is idempotent (records are keyed by id), so replaying a file twice after a
crash is harmless; a line torn by a crash is skipped and counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from buttress.ledger.records import AttemptRecord, CallRecord, FeedbackRecord

log = logging.getLogger("buttress.ledger")

CallEntry = tuple[CallRecord, tuple[AttemptRecord, ...]]
Entry = CallEntry | FeedbackRecord

PREFIX = "ledger-spill-"


def entry_json(entry: Entry) -> str:
    if isinstance(entry, FeedbackRecord):
        doc: dict[str, Any] = {"type": "feedback", "feedback": entry.model_dump(mode="json")}
    else:
        call, attempts = entry
        doc = {"type": "call", "call": call.model_dump(mode="json"),
               "attempts": [a.model_dump(mode="json") for a in attempts]}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_from_json(line: str) -> Entry:
    doc = json.loads(line)
    if doc["type"] == "feedback":
        return FeedbackRecord.model_validate(doc["feedback"])
    return (CallRecord.model_validate(doc["call"]),
            tuple(AttemptRecord.model_validate(a) for a in doc["attempts"]))


class SpillFile:
    """This writer's spill file, created on first append."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self._fh: IO[str] | None = None

    def append(self, entries: list[Entry]) -> None:
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open)
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fh.write("".join(entry_json(e) + "\n" for e in entries))
        # Flush to the OS so a process crash keeps the lines; no fsync (see the writer).
        self._fh.flush()

    @property
    def used(self) -> bool:
        return self._fh is not None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_entries(path: Path) -> tuple[list[Entry], int]:
    """The entries of a spill file, and how many lines could not be read."""
    entries: list[Entry] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                entries.append(entry_from_json(line))
            except (ValueError, KeyError, TypeError):
                bad += 1
    return entries, bad


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Lock a spill file for replay; yields False when another process holds it."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        fh.close()


def pending_files(directory: Path, exclude: Path | None = None) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{PREFIX}*.jsonl") if p != exclude)
