"""Judge calibration: how often a judge agrees with human labels (accuracy, Cohen's kappa,
confusion matrix, per slice), measured on a labelled dataset and stored per judge.

A calibration set is a dataset whose cases carry the ``output`` that was judged and the human
label as ``expected`` (``pass``/``fail``, true/false, or a grade). ``CalibrationStore`` keeps
one JSON file per judge identity (rubric version and model) under
``.buttress/evals/calibration/``; an edited rubric is a new judge and needs calibrating again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.evals.dataset import Dataset, JudgeSettings, ScorerSpec
from buttress.evals.judge import LLMJudge

SCHEMA_VERSION = 1


class Agreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    accuracy: float
    kappa: float
    labels: tuple[str, ...]
    confusion: dict[str, dict[str, int]]  # human label -> judge label -> count


class Calibration(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    judge_key: str
    judge: ScorerSpec
    dataset: str
    dataset_version: str
    created_at: float
    overall: Agreement
    slices: dict[str, Agreement]

    def acceptable(self, settings: JudgeSettings) -> bool:
        return (self.overall.kappa >= settings.min_kappa and
                self.overall.accuracy >= settings.min_accuracy)


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float:
    """Cohen's kappa of (human, judge) label pairs, computed in exact fractions.

    kappa = (p_o - p_e) / (1 - p_e); 1.0 when both raters use one and the same label throughout.
    """
    n = len(pairs)
    if n == 0:
        return 0.0
    observed = Fraction(sum(1 for h, j in pairs if h == j), n)
    humans = Counter(h for h, _ in pairs)
    judges = Counter(j for _, j in pairs)
    expected = sum((Fraction(humans[k], n) * Fraction(judges[k], n) for k in humans),
                   Fraction(0))
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return float((observed - expected) / (1 - expected))


def agreement(pairs: Sequence[tuple[str, str]]) -> Agreement:
    labels = tuple(sorted({label for pair in pairs for label in pair}))
    confusion = {h: dict.fromkeys(labels, 0) for h in labels}
    for h, j in pairs:
        confusion[h][j] += 1
    n = len(pairs)
    accuracy = sum(1 for h, j in pairs if h == j) / n if n else 0.0
    return Agreement(n=n, accuracy=accuracy, kappa=cohen_kappa(pairs), labels=labels,
                     confusion=confusion)


def human_label(value: Any) -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return str(value).strip().casefold()


async def calibrate(judge: LLMJudge, dataset: Dataset, *, concurrency: int = 8,
                    clock: Clock = SYSTEM_CLOCK) -> Calibration:
    """Run ``judge`` over a labelled dataset and measure its agreement with the labels."""
    for case in dataset.cases:
        if case.output is None or case.expected is None:
            raise ConfigError(f"case {case.id!r}: a calibration case needs `output` (what was "
                              "judged) and `expected` (the human label)",
                              source=str(dataset.path))
    gate = asyncio.Semaphore(concurrency)

    async def judged(output: str, case: Any) -> str:
        async with gate:
            score = await judge.score(output, case)
        return score.label or ("pass" if score.passed else "fail")

    verdicts = await asyncio.gather(*(judged(c.output or "", c) for c in dataset.cases))
    pairs = [(human_label(c.expected), v) for c, v in zip(dataset.cases, verdicts, strict=True)]
    slices: dict[str, list[tuple[str, str]]] = {}
    for case, pair in zip(dataset.cases, pairs, strict=True):
        for tag in case.tags:
            slices.setdefault(tag, []).append(pair)
    return Calibration(judge_key=judge.key, judge=judge.spec, dataset=dataset.name,
                       dataset_version=dataset.version, created_at=clock.wall(),
                       overall=agreement(pairs),
                       slices={tag: agreement(p) for tag, p in sorted(slices.items())})


class CalibrationStore:
    """One JSON file per judge identity under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, judge_key: str) -> Path:
        return self.root / f"{hashlib.sha256(judge_key.encode()).hexdigest()[:16]}.json"

    def save(self, calibration: Calibration) -> Path:
        path = self._path(calibration.judge_key)
        self.root.mkdir(parents=True, exist_ok=True)
        path.write_text(calibration.model_dump_json(indent=2), encoding="utf-8")
        return path

    def get(self, judge_key: str) -> Calibration | None:
        path = self._path(judge_key)
        if not path.is_file():
            return None
        try:
            return Calibration.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"unreadable calibration: {exc}", source=str(path)) from None
