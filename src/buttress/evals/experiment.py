"""Experiments: a dataset run across variants (prompt versions × models × parameters), with
repeated trials, through the client's runtime.

Every call goes through ``AsyncClient.runtime`` (provider concurrency limits, retries, fallback,
budgets, the ledger) and carries the tags ``eval:RUN_ID``, ``variant:LABEL`` and ``case:ID``. A
semaphore bounds how many cases are in flight. Calls are built by ``AsyncClient.prepare``, so an
experiment sends exactly what the feature sends, with the variant's prompt version, model and
parameters on top. Cases with a fixed ``output`` are scored without a call. Epochs after the
first refresh the cache rather than read it, so repeated trials sample the model again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buttress.client import AsyncClient
from buttress.errors import ButtressError, UsageError
from buttress.evals.aggregate import summarise
from buttress.evals.calibration import CalibrationStore
from buttress.evals.dataset import Case, Dataset, JudgeSettings, ScorerSpec
from buttress.evals.judge import LLMJudge
from buttress.evals.results import CaseResult, EvalRun, JudgeReport, Variant
from buttress.evals.scorers import Score, Scorer, ScorerContext, ScorerRegistry, default_registry
from buttress.ids import new_id
from buttress.runtime.result import CacheMode, Call

DEFAULT_SCORERS = (ScorerSpec(name="exact"),)

Progress = Callable[[int, int], None]


@dataclass
class Experiment:
    """``await Experiment(client, "triage", dataset, variants=[...]).run()`` -> ``EvalRun``."""

    client: AsyncClient
    feature: str
    dataset: Dataset
    variants: Sequence[Variant] = (Variant(),)
    scorers: Sequence[ScorerSpec] | None = None
    registry: ScorerRegistry = field(default_factory=default_registry)
    epochs: int = 1
    concurrency: int = 16
    run_id: str = field(default_factory=new_id)
    seed: int = 0
    calibrations: CalibrationStore | None = None
    hide_outputs: bool = False
    progress: Progress | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    cache: CacheMode = "use"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.concurrency < 1:
            raise UsageError("epochs and concurrency must be at least 1")
        if not self.variants:
            raise UsageError("an experiment needs at least one variant")
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            raise UsageError(f"variants must have distinct labels: {labels}")
        if self.feature not in self.client.config.features:
            raise UsageError(f"unknown feature {self.feature!r}; configured: "
                             f"{', '.join(sorted(self.client.config.features)) or 'none'}")
        self.specs = tuple(self.scorers or self.dataset.settings.scorers or DEFAULT_SCORERS)
        keys = [s.key for s in self.specs]
        if len(set(keys)) != len(keys):
            raise UsageError(f"two scorers share a name; give one a `label`: {keys}")
        self.tags = (f"eval:{self.run_id}",)
        context = ScorerContext(project_dir=self.client.project_dir, client=self.client,
                                tags=self.tags)
        self._scorers: list[Scorer] = [self.registry.build(s, context) for s in self.specs]

    async def run(self) -> EvalRun:
        clock = self.client.runtime.clock
        started_wall, started = clock.wall(), clock.now()
        calls = [self._prepare(v) for v in self.variants]
        gate = asyncio.Semaphore(self.concurrency)
        total = len(self.variants) * len(self.dataset.cases) * self.epochs
        done = 0

        async def one(v: Variant, build: _Builder, case: Case, epoch: int) -> CaseResult:
            nonlocal done
            async with gate:
                result = await self._case(v, build, case, epoch)
            done += 1
            if self.progress is not None:
                self.progress(done, total)
            return result

        results = await asyncio.gather(*(
            one(v, b, case, epoch) for v, b in zip(self.variants, calls, strict=True)
            for epoch in range(self.epochs) for case in self.dataset.cases))
        cases = self.dataset.cases
        summaries = tuple(summarise(v.label, [r for r in results if r.variant == v.label],
                                    cases, self._classification_keys(), seed=self.seed)
                          for v in self.variants)
        if self.hide_outputs:
            results = [_hidden(r) for r in results]
        return EvalRun(
            run_id=self.run_id, created_at=started_wall, feature=self.feature,
            dataset=self.dataset.name, dataset_version=self.dataset.version,
            split=self.dataset.split, epochs=self.epochs, seed=self.seed, scorers=self.specs,
            variants=tuple(self.variants), summaries=summaries, results=tuple(results),
            case_weights={c.id: c.weight for c in cases},
            case_tags={c.id: c.tags for c in cases}, judges=self._judges(),
            warnings=tuple(self._warnings()), outputs_hidden=self.hide_outputs,
            duration_s=clock.now() - started)

    def _warnings(self) -> list[str]:
        out = variant_warnings(self.variants)
        unlabelled = [c.id for c in self.dataset.cases if c.needs_label]
        if unlabelled:
            out.append(f"{len(unlabelled)} case(s) still need a label (needs_label: true), "
                       f"their expected output is only a draft: {', '.join(unlabelled[:5])}")
        return out

    def _classification_keys(self) -> list[str]:
        return [s.spec.key for s in self._scorers if getattr(s, "kind", "") == "classification"]

    def _judges(self) -> tuple[JudgeReport, ...]:
        settings: JudgeSettings = self.dataset.settings.judge
        out = []
        for scorer in self._scorers:
            if not isinstance(scorer, LLMJudge):
                continue
            key = scorer.key
            found = self.calibrations.get(key) if self.calibrations is not None else None
            out.append(JudgeReport(scorer=scorer.spec.key, judge_key=key,
                                   agreement=found.overall if found else None,
                                   acceptable=found is not None and found.acceptable(settings),
                                   min_kappa=settings.min_kappa))
        return tuple(out)

    def _prepare(self, variant: Variant) -> _Builder:
        """How to build this variant's call for a case: the client's own ``prepare``, so the
        experiment sends exactly what the feature would (prompt version, params, chain)."""
        client = self.client
        spec = client.config.features[self.feature]
        if variant.prompt_version and not spec.prompt:
            raise UsageError(f"feature {self.feature!r} has no prompt to take a version of")
        models = [variant.model] if variant.model else None
        client.targets(models or spec.models)  # an unknown alias fails before any call
        if spec.prompt:
            client.prompt(spec.prompt, variant.prompt_version)  # a bad version fails now too
        params = {**self.params, **variant.params}
        tags = (*self.tags, f"variant:{variant.label}")

        def build(case: Case, epoch: int) -> Call:
            if not spec.prompt and not case.messages:
                raise UsageError(f"case {case.id!r}: no prompt and no messages to send")
            # later epochs must sample the model again, not read the first epoch's answer
            cache: CacheMode = "refresh" if epoch and self.cache == "use" else self.cache
            return client.prepare(
                self.feature, case.inputs if spec.prompt else None, messages=case.messages,
                prompt_version=variant.prompt_version, models=models,
                tags=(*tags, f"case:{case.id}", f"epoch:{epoch}"), cache=cache, **params)
        return build

    async def _case(self, variant: Variant, build: _Builder, case: Case,
                    epoch: int) -> CaseResult:
        fields: dict[str, Any] = {}
        if case.output is not None:
            output: str | None = case.output
        else:
            try:
                result = await self.client.runtime.complete(build(case, epoch))
            except ButtressError as exc:
                output = None
                fields["error"] = f"{type(exc).__name__}: {exc}"
            else:
                output = result.text
                usage = result.total_usage
                fields.update(latency_s=result.latency_s, cost_usd=result.cost_usd,
                              prompt_tokens=usage.prompt_tokens,
                              completion_tokens=usage.completion_tokens,
                              call_id=result.call_id)
        if output is None:
            scores = {s.spec.key: Score(value=0.0, passed=False, detail="no output")
                      for s in self._scorers}
        else:
            scores = {s.spec.key: await s.score(output, case) for s in self._scorers}
        value = sum(s.value for s in scores.values()) / len(scores)
        return CaseResult(case_id=case.id, variant=variant.label, epoch=epoch, output=output,
                          scores=scores, passed=all(s.passed for s in scores.values()),
                          value=value, **fields)


_Builder = Callable[[Case, int], Call]


def _hidden(result: CaseResult) -> CaseResult:
    """A holdout result with what would leak the split removed: aggregates stay computable."""
    scores = {k: s.model_copy(update={"detail": "", "reasoning": None, "label": None,
                                      "expected_label": None})
              for k, s in result.scores.items()}
    return result.model_copy(update={"output": None, "scores": scores, "error": None})


def variant_warnings(variants: Sequence[Variant]) -> list[str]:
    """A warning for each pair of variants that differ in more than one variable."""
    out = []
    for i, a in enumerate(variants):
        for b in variants[i + 1:]:
            diff = a.differences(b)
            if len(diff) > 1:
                out.append(f"variants {a.label!r} and {b.label!r} differ in {len(diff)} "
                           f"variables ({', '.join(diff)}): a difference in score cannot be "
                           "attributed to one of them")
    return out


def parse_variant(text: str) -> Variant:
    """``[NAME:]prompt=VERSION,model=ALIAS,temperature=0.2`` (values parsed as JSON if they can
    be)."""
    import json

    name, sep, rest = text.partition(":")
    if not sep or "=" in name:
        name, rest = "", text
    fields: dict[str, Any] = {"name": name.strip()}
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"variant {text!r}: expected KEY=VALUE, got {part!r}")
        key = key.strip()
        if key == "prompt":
            fields["prompt_version"] = value.strip()
        elif key == "model":
            fields["model"] = value.strip()
        else:
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
    return Variant(params=params, **fields)
