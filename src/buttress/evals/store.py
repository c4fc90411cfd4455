"""Eval runs on disk: one JSON file per run under ``.buttress/evals/runs/`` (``RUN_ID.json``).

Plain files keep runs diffable and easy to archive from CI; ``EvalRun.schema_version`` guards
the format. A run is found by full id, unique id prefix, or ``latest``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from buttress.errors import ConfigError, UsageError
from buttress.evals.results import EvalRun

RUNS_DIR = Path(".buttress") / "evals" / "runs"


class RunStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, run: EvalRun) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{run.run_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(run.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    def ids(self) -> list[str]:
        """Run ids, oldest first (ids are time-ordered)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    def load(self, ref: str) -> EvalRun:
        ids = self.ids()
        if ref == "latest":
            if not ids:
                raise UsageError(f"no eval runs stored in {self.root}")
            found = [ids[-1]]
        else:
            found = [i for i in ids if i.startswith(ref)]
        if len(found) != 1:
            problem = "no run" if not found else f"{len(found)} runs"
            raise UsageError(f"{problem} match {ref!r} in {self.root}")
        path = self.root / f"{found[0]}.json"
        try:
            return EvalRun.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"unreadable eval run: {exc}", source=str(path)) from None

    def runs(self) -> list[EvalRun]:
        return [self.load(i) for i in self.ids()]
