"""The sealed holdout: a split locked by content hash, with every use counted.

``evals/holdout.lock`` (commit it) maps each holdout dataset to the version it was sealed at and
how many runs have used it. A holdout whose file no longer matches its seal is refused until it
is resealed on purpose, so an edit to the split cannot pass unnoticed; the use count makes
over-use (tuning against the holdout) visible in review.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from buttress.errors import ConfigError
from buttress.evals.dataset import Dataset

LOCK_NAME = "holdout.lock"


class Seal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    uses: int = 0
    last_used_at: float | None = None


class HoldoutLock:
    """Reads and writes ``holdout.lock``; one instance per command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def seals(self) -> dict[str, Seal]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: Seal.model_validate(v) for name, v in dict(data).items()}
        except (OSError, ValueError, TypeError, ValidationError) as exc:
            raise ConfigError(f"unreadable holdout lock: {exc}", source=str(self.path)) from None

    def check(self, dataset: Dataset, *, reseal: bool = False) -> Seal:
        """The holdout's seal, sealing it on first use; an edited split is an error."""
        if dataset.split != "holdout":
            raise ConfigError("not a holdout split", source=str(dataset.path))
        seals = self.seals()
        seal = seals.get(dataset.name)
        if seal is None or (reseal and seal.version != dataset.version):
            seal = Seal(version=dataset.version, uses=seal.uses if seal else 0)
            seals[dataset.name] = seal
            self._write(seals)
        elif seal.version != dataset.version:
            raise ConfigError(
                f"HOLDOUT EDITED: {dataset.path} is version {dataset.version} but was sealed at "
                f"{seal.version} in {self.path} after {seal.uses} use(s). Results against an "
                "edited holdout are not comparable; pass --reseal to accept the edit",
                source=str(dataset.path))
        return seal

    def record_use(self, dataset: Dataset, when: float) -> Seal:
        """Count one run against the holdout; returns the updated seal."""
        seals = self.seals()
        current = seals.get(dataset.name) or Seal(version=dataset.version)
        seal = Seal(version=current.version, uses=current.uses + 1, last_used_at=when)
        seals[dataset.name] = seal
        self._write(seals)
        return seal

    def _write(self, seals: dict[str, Seal]) -> None:
        data = {name: seal.model_dump() for name, seal in sorted(seals.items())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)
