"""LLM-as-judge: a rubric prompt file, a pass/fail or graded scale, the judge's reasoning kept.

The judge calls a model through ``AsyncClient`` like any feature (so retries, limits, the ledger
and budgets apply), either as a configured ``feature`` whose prompt is the rubric, or as a
``rubric`` prompt file sent to a ``model`` alias. The rubric sees ``inputs``, ``output``,
``expected`` and ``notes``, and should answer JSON: ``{"reasoning": ..., "verdict": "pass"}`` or
``{"reasoning": ..., "score": 4}``; a bare PASS/FAIL or number is understood too.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.errors import ButtressError, ConfigError
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.scorers import Score, ScorerContext, params_of, parse_json
from buttress.types import Message


class JudgeParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rubric: str | None = Field(None, description="prompt name of the rubric")
    model: str | None = Field(None, description="model alias the rubric is sent to")
    feature: str | None = Field(None, description="a configured feature that is the judge")
    scale: Literal["pass_fail", "graded"] = "pass_fail"
    min_grade: int = 1
    max_grade: int = 5
    pass_grade: int | None = Field(None, description="lowest passing grade (default: max)")

    @model_validator(mode="after")
    def _one_route(self) -> JudgeParams:
        if (self.feature is None) == (self.rubric is None or self.model is None):
            raise ValueError("give either `feature`, or both `rubric` and `model`")
        if self.min_grade >= self.max_grade:
            raise ValueError("min_grade must be below max_grade")
        return self


_VERDICT = re.compile(r"\b(pass|fail)\b", re.IGNORECASE)
_GRADE = re.compile(r"-?\d+")


class LLMJudge:
    """A scorer whose verdict comes from a model reading a rubric."""

    def __init__(self, spec: ScorerSpec, context: ScorerContext) -> None:
        self.spec = spec
        self.params = params_of(JudgeParams, spec)
        self.context = context

    @property
    def key(self) -> str:
        """The judge's identity for calibration: rubric version and model (or feature)."""
        p = self.params
        client = self.context.client
        if client is None:
            return f"{p.feature or p.rubric}:{p.model or ''}"
        if p.feature is not None:
            feature = client.config.features.get(p.feature)
            if feature is None:
                raise ConfigError(f"judge feature {p.feature!r} is not configured",
                                  key=f"scorers.{self.spec.key}")
            version = client.prompt(feature.prompt).version if feature.prompt else "none"
            return f"feature:{p.feature}@{version}:{','.join(feature.models)}"
        assert p.rubric is not None
        return f"{p.rubric}@{client.prompt(p.rubric).version}:{p.model}"

    async def score(self, output: str, case: Case) -> Score:
        client = self.context.client
        if client is None:
            raise ConfigError(f"scorer {self.spec.key!r} needs a client to call its judge")
        variables: dict[str, Any] = {"inputs": case.inputs, "output": output,
                                     "expected": case.expected, "notes": case.notes}
        tags = (*self.context.tags, "judge")
        p = self.params
        try:
            if p.feature is not None:
                result = await client.call(p.feature, variables, tags=tags)
            else:
                assert p.rubric is not None
                assert p.model is not None
                prompt = client.prompt(p.rubric)
                messages: tuple[Message, ...] = prompt.render(variables)
                params = {k: v for k, v in prompt.params.model_dump(exclude={"extra"}).items()
                          if v not in (None, ())}
                result = await client.complete(p.model, messages, tags=tags, **params)
        except ButtressError as exc:
            return Score(value=0.0, passed=False, detail=f"judge failed: {exc}",
                         label="<error>")
        self.context.judge_calls.append(result.call_id)
        return self.verdict(result.text)

    def verdict(self, text: str) -> Score:
        """Read the judge's answer into a score; an unreadable answer fails, with the text."""
        p = self.params
        data = parse_json(text)
        reasoning = str(data.get("reasoning", "")) if isinstance(data, dict) else text.strip()
        if p.scale == "pass_fail":
            raw = data.get("verdict") if isinstance(data, dict) else None
            if not isinstance(raw, str | bool):
                found = _VERDICT.findall(text)
                raw = found[-1] if found else None
            if isinstance(raw, bool):
                raw = "pass" if raw else "fail"
            if raw is None or raw.lower() not in ("pass", "fail"):
                return Score(value=0.0, passed=False, detail="unreadable verdict",
                             label="<invalid>", reasoning=reasoning)
            ok = raw.lower() == "pass"
            return Score(value=float(ok), passed=ok, label="pass" if ok else "fail",
                         reasoning=reasoning)
        grade = data.get("score") if isinstance(data, dict) else None
        if not isinstance(grade, int) or isinstance(grade, bool):
            found = _GRADE.findall(text)
            grade = int(found[-1]) if found else None
        if grade is None or not p.min_grade <= grade <= p.max_grade:
            return Score(value=0.0, passed=False, detail=f"grade out of scale: {grade}",
                         label="<invalid>", reasoning=reasoning)
        pass_grade = p.pass_grade if p.pass_grade is not None else p.max_grade
        value = (grade - p.min_grade) / (p.max_grade - p.min_grade)
        return Score(value=value, passed=grade >= pass_grade, label=str(grade),
                     detail=f"grade {grade}/{p.max_grade}", reasoning=reasoning)


def judge_factory(spec: ScorerSpec, context: ScorerContext) -> LLMJudge:
    return LLMJudge(spec, context)
