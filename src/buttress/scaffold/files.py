"""Read the template tree shipped in this package and write it into a project directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from buttress.errors import UsageError

_ROOT = "project"


@dataclass(frozen=True, slots=True)
class ScaffoldFile:
    """One file to create: its path relative to the project, and its text."""

    path: PurePosixPath
    text: str


def scaffold_files() -> list[ScaffoldFile]:
    """Every template file, sorted by path."""
    root = files("buttress.scaffold").joinpath(_ROOT)
    return sorted((ScaffoldFile(rel, entry.read_text(encoding="utf-8"))
                   for rel, entry in _walk(root, PurePosixPath())), key=lambda f: f.path)


def _walk(node: Traversable, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for entry in node.iterdir():
        if entry.name.startswith(("__", ".")):  # __pycache__, editor droppings
            continue
        if entry.is_dir():
            yield from _walk(entry, rel / entry.name)
        else:
            yield rel / entry.name, entry


def write_scaffold(target: Path, *, force: bool = False) -> list[Path]:
    """Write the templates under ``target``; returns the files written.

    Refuses (``UsageError``, nothing written) when any file already exists, unless ``force``.
    """
    planned = [(target.joinpath(*f.path.parts), f) for f in scaffold_files()]
    existing = [path for path, _ in planned if path.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise UsageError(f"refusing to overwrite existing file(s): {names} (use --force)")
    written = []
    for path, template in planned:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.text, encoding="utf-8")
        written.append(path)
    return written
