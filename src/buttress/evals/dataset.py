"""Datasets: eval cases read from YAML or JSONL files, versioned by content hash.

A YAML dataset is either a list of cases or a mapping with ``cases`` and the suite settings
(``feature``, ``scorers``, ``gate``, ``judge``). A JSONL dataset is one case per line. Every
problem names the file and the line of the offending case or key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from buttress.errors import ConfigError, UsageError
from buttress.types import Message

Split = Literal["main", "holdout"]
HOLDOUT_MARK = ".holdout"
SUFFIXES = (".yaml", ".yml", ".jsonl")


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Case(Strict):
    """One eval case. ``output`` is a fixed answer to score instead of calling the feature
    (judge-calibration sets carry the output the humans labelled)."""

    id: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    messages: tuple[Message, ...] = ()
    expected: Any = None
    tags: tuple[str, ...] = ()
    weight: float = Field(1.0, gt=0)
    notes: str = ""
    output: str | None = None
    needs_label: bool = Field(False, description="sampled from production, not yet labelled")


class ScorerSpec(Strict):
    """A scorer by registered name with its parameters; runs record these to be rebuilt."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="display name, when one scorer is used twice")

    @property
    def key(self) -> str:
        return self.label or self.name


class GateSettings(Strict):
    """When a run counts as a regression against its baseline (fractions, not points)."""

    max_overall_drop: float = Field(0.02, ge=0)
    max_slice_drop: float = Field(0.05, ge=0)
    min_slice_cases: int = Field(3, ge=1, description="smaller slices are reported, not gated")
    require_significance: bool = False
    alpha: float = Field(0.05, gt=0, lt=1)
    min_score: float | None = Field(None, ge=0, le=1)


class JudgeSettings(Strict):
    min_kappa: float = Field(0.6, ge=-1, le=1)
    min_accuracy: float = Field(0.0, ge=0, le=1)


class SuiteSettings(Strict):
    feature: str | None = None
    description: str = ""
    scorers: tuple[ScorerSpec, ...] = ()
    gate: GateSettings = GateSettings()
    judge: JudgeSettings = JudgeSettings()


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    split: Split
    cases: tuple[Case, ...]
    version: str
    settings: SuiteSettings

    @property
    def slices(self) -> list[str]:
        return sorted({tag for case in self.cases for tag in case.tags})


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:12]


def dataset_name(path: Path) -> tuple[str, Split]:
    stem = path.name
    for suffix in SUFFIXES:
        stem = stem.removesuffix(suffix)
    if stem.endswith(HOLDOUT_MARK):
        return stem.removesuffix(HOLDOUT_MARK), "holdout"
    return stem, "main"


def find_dataset(evals_dir: Path, name: str, split: Split = "main") -> Path | None:
    """``evals/NAME.yaml`` (or .yml/.jsonl); ``evals/NAME.holdout.*`` for the holdout."""
    stem = name + (HOLDOUT_MARK if split == "holdout" else "")
    for suffix in SUFFIXES:
        path = evals_dir / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def list_datasets(evals_dir: Path) -> list[str]:
    if not evals_dir.is_dir():
        return []
    return sorted({dataset_name(p)[0] for p in evals_dir.iterdir()
                   if p.is_file() and p.suffix in SUFFIXES})


def load_dataset(path: Path) -> Dataset:
    """Read, validate and version a dataset file."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read dataset: {exc}", source=str(path)) from None
    name, split = dataset_name(path)
    if path.suffix == ".jsonl":
        cases, settings = _jsonl_cases(text, str(path)), SuiteSettings()
    else:
        cases, settings = _yaml_cases(text, str(path))
    if not cases:
        raise ConfigError("dataset has no cases", source=str(path))
    return Dataset(name=name, path=path, split=split, cases=cases, version=content_hash(raw),
                   settings=settings)


def _jsonl_cases(text: str, source: str) -> tuple[Case, ...]:
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=source,
                              line=number) from None
        case = _case(data, source, number, {})
        _unique(case, seen, source, number)
        cases.append(case)
    return tuple(cases)


def _yaml_cases(text: str, source: str) -> tuple[tuple[Case, ...], SuiteSettings]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"not valid YAML: {exc.problem or exc.context}", source=source,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from None
    settings = SuiteSettings()
    case_nodes: Any = node
    if isinstance(data, Mapping):
        assert isinstance(node, yaml.MappingNode)
        keys = _key_lines(node)
        case_nodes = next((v for k, v in node.value if k.value == "cases"), None)
        data = dict(data)
        items = data.pop("cases", None)
        if items is None:
            raise ConfigError("no `cases` list", source=source)
        try:
            settings = SuiteSettings.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            top = str(err["loc"][0]) if err["loc"] else None
            raise ConfigError(_problem(err), source=source, key=_loc(err["loc"]),
                              line=keys.get(top or "")) from None
        data = items
    if not isinstance(data, list) or not isinstance(case_nodes, yaml.SequenceNode):
        raise ConfigError("expected a list of cases (or a mapping with `cases`)", source=source,
                          line=case_nodes.start_mark.line + 1 if case_nodes else None)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for item, item_node in zip(data, case_nodes.value, strict=True):
        line = item_node.start_mark.line + 1
        keys = _key_lines(item_node) if isinstance(item_node, yaml.MappingNode) else {}
        case = _case(item, source, line, keys)
        _unique(case, seen, source, line)
        cases.append(case)
    return tuple(cases), settings


def _key_lines(node: yaml.MappingNode) -> dict[str, int]:
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def _case(data: Any, source: str, line: int, key_lines: Mapping[str, int]) -> Case:
    if not isinstance(data, Mapping):
        raise ConfigError(f"a case must be a mapping, got {type(data).__name__}",
                          source=source, line=line)
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        top = str(err["loc"][0]) if err["loc"] else ""
        case_id = data.get("id")
        where = f"case {case_id!r}: " if isinstance(case_id, str) else ""
        raise ConfigError(where + _problem(err), source=source, key=_loc(err["loc"]) or None,
                          line=key_lines.get(top, line)) from None


def _unique(case: Case, seen: dict[str, int], source: str, line: int) -> None:
    if case.id in seen:
        raise ConfigError(f"duplicate case id {case.id!r} (first at line {seen[case.id]})",
                          source=source, line=line)
    seen[case.id] = line


def _problem(err: Any) -> str:
    return "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def subset(dataset: Dataset, limit: int) -> Dataset:
    """The first ``limit`` cases taken round-robin over the cases' first tags, so a quick run
    still covers every slice. Deterministic; the version stays the full dataset's."""
    if limit < 1:
        raise UsageError("limit must be at least 1")
    groups: dict[str, list[Case]] = {}
    for case in dataset.cases:
        groups.setdefault(case.tags[0] if case.tags else "", []).append(case)
    picked: list[Case] = []
    queues = [list(g) for g in groups.values()]
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    order = {c.id: i for i, c in enumerate(dataset.cases)}
    return replace(dataset, cases=tuple(sorted(picked, key=lambda c: order[c.id])))
