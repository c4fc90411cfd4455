"""A prompt file's committed versions, read from git with the ``git`` command.

Nothing here runs at import or at load: git is asked only when a caller wants a commit id or an
older version. Without git, outside a repository, or on any git failure, there is simply no
history (an empty result), and the caller decides whether that is an error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Revision:
    """The content of a file as committed in ``commit`` (``short`` is git's abbreviation)."""

    commit: str
    short: str
    content: bytes


class GitHistory:
    """Reads committed versions of files through the git CLI (``git`` names the executable)."""

    def __init__(self, git: str = "git", timeout_s: float = 10.0) -> None:
        self._git = git
        self._timeout_s = timeout_s
        self._roots: dict[Path, Path | None] = {}

    def revisions(self, path: Path, limit: int | None = None) -> Iterator[Revision]:
        """Versions of ``path``, newest first, from the commits that touched it."""
        located = self._locate(path)
        if located is None:
            return
        root, relative = located
        args = ["log", "--format=%H %h"]
        if limit is not None:
            args.append(f"-n{limit}")
        listing = self._run([*args, "--", relative], root)
        if not listing:
            return
        commits = [line.split(" ", 1) for line in listing.decode().splitlines() if line]
        request = "".join(f"{full}:{relative}\n" for full, _ in commits).encode()
        blobs = self._run(["cat-file", "--batch"], root, request)
        if blobs is None:
            return
        for (full, short), content in zip(commits, _parse_batch(blobs), strict=False):
            if content is not None:  # None: the commit deleted the file
                yield Revision(full, short, content)

    def _locate(self, path: Path) -> tuple[Path, str] | None:
        directory = path.resolve().parent
        if directory not in self._roots:
            out = self._run(["rev-parse", "--show-toplevel"], directory)
            self._roots[directory] = Path(out.decode().strip()).resolve() if out else None
        root = self._roots[directory]
        if root is None:
            return None
        return root, path.resolve().relative_to(root).as_posix()

    def _run(self, args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes | None:
        try:
            done = subprocess.run([self._git, *args], cwd=cwd, input=stdin, capture_output=True,
                                  timeout=self._timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None


def _parse_batch(data: bytes) -> Iterator[bytes | None]:
    """Contents from ``git cat-file --batch`` output, ``None`` for a missing object."""
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        header = data[position:end].split()
        position = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            yield data[position:position + size]
            position += size + 1  # the content is followed by a newline
        else:
            yield None
