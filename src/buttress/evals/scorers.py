"""Scorers: named, parameterised checks of one output against one case.

A scorer has one required method, ``score(output, case) -> Score``. ``ScorerRegistry`` maps a name
to a factory taking the scorer's parameters, so a run that records its ``ScorerSpec`` list can
be rebuilt exactly. ``default_registry()`` holds the built-ins:

exact, normalized, json_schema, required_fields, fields, regex, contains, not_contains, length,
numeric, label (classification), embedding (similarity from the offline embedder, see
``embedding.py``) and judge (an LLM judge, see ``judge.py``).
"""

from __future__ import annotations

import abc
import json
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from buttress.errors import ConfigError
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.schema import validate

if TYPE_CHECKING:
    from buttress.client import AsyncClient


class Score(BaseModel):
    """One scorer's verdict on one output. ``label``/``expected_label`` feed classification
    metrics; ``reasoning`` is a judge's explanation, kept with the result."""

    model_config = ConfigDict(frozen=True)

    value: float
    passed: bool
    detail: str = ""
    label: str | None = None
    expected_label: str | None = None
    reasoning: str | None = None


class Scorer(Protocol):
    spec: ScorerSpec

    async def score(self, output: str, case: Case) -> Score: ...


@dataclass(frozen=True)
class ScorerContext:
    """What scorers may need beyond their parameters: judges call models through ``client``."""

    project_dir: Path = Path(".")
    client: AsyncClient | None = None
    tags: tuple[str, ...] = ()
    judge_calls: list[str] = field(default_factory=list)


ScorerFactory = Callable[[ScorerSpec, ScorerContext], Scorer]


class ScorerRegistry:
    """Scorer factories by name. Make one per use; nothing here is process-global."""

    def __init__(self, factories: Mapping[str, ScorerFactory] | None = None) -> None:
        self._factories: dict[str, ScorerFactory] = dict(factories or {})

    def register(self, name: str, factory: ScorerFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def build(self, spec: ScorerSpec, context: ScorerContext | None = None) -> Scorer:
        factory = self._factories.get(spec.name)
        if factory is None:
            raise ConfigError(f"unknown scorer {spec.name!r}; known: {', '.join(self.names())}",
                              key="scorers")
        return factory(spec, context or ScorerContext())


P = TypeVar("P", bound=BaseModel)


def params_of(model: type[P], spec: ScorerSpec) -> P:
    """The scorer's parameters, validated; a bad one names the scorer and the parameter."""
    try:
        return model.model_validate(spec.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        problem = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"scorer {spec.key!r}: {problem}", key=f"params.{key}") from None


class Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str | None = Field(None, description="compare this field of a JSON output")


# -- reading outputs and expectations ------------------------------------------------------------

_MISSING = object()


def parse_json(output: str) -> Any:
    """The JSON value in ``output`` (a fenced ```json block is unwrapped); ``_MISSING`` if none."""
    text = output.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def pick(output: str, field: str | None) -> Any:
    if field is None:
        return output
    value = parse_json(output)
    return value.get(field, _MISSING) if isinstance(value, dict) else _MISSING


def expected_of(case: Case, field: str | None) -> Any:
    if field is not None and isinstance(case.expected, Mapping):
        return case.expected.get(field)
    return case.expected


def _result(passed: bool, detail: str = "", value: float | None = None) -> Score:
    return Score(value=float(passed) if value is None else value, passed=passed, detail=detail)


class CheckScorer(abc.ABC):
    """A deterministic scorer: ``check`` is pure; ``score`` only wraps it."""

    params_model: ClassVar[type[BaseModel]] = Params

    def __init__(self, spec: ScorerSpec) -> None:
        self.spec = spec
        params_of(self.params_model, spec)  # a bad parameter fails when the run is built

    async def score(self, output: str, case: Case) -> Score:
        return self.check(output, case)

    @abc.abstractmethod
    def check(self, output: str, case: Case) -> Score:
        """Score ``output`` against ``case``: pure and synchronous."""


# -- the built-ins ------------------------------------------------------------------------------


class Exact(CheckScorer):
    """The output (or a JSON field) equals ``expected``; text is compared without the
    surrounding whitespace, structured expectations against the parsed JSON."""

    def check(self, output: str, case: Case) -> Score:
        f = params_of(Params, self.spec).field
        want = expected_of(case, f)
        got = pick(output, f)
        if isinstance(want, str) and isinstance(got, str):
            return _result(got.strip() == want.strip(), f"expected {want!r}")
        if f is None:
            got = parse_json(output)
        return _result(got == want, f"expected {want!r}")


class NormalizedParams(Params):
    case_sensitive: bool = False
    keep_punctuation: bool = False


_PUNCT = str.maketrans("", "", string.punctuation)


class Normalized(CheckScorer):
    """Equal after case folding, dropping punctuation and collapsing whitespace."""

    params_model = NormalizedParams

    def check(self, output: str, case: Case) -> Score:
        p = params_of(NormalizedParams, self.spec)
        got, want = pick(output, p.field), expected_of(case, p.field)

        def norm(v: Any) -> str:
            s = v if isinstance(v, str) else json.dumps(v)
            s = s if p.case_sensitive else s.casefold()
            s = s if p.keep_punctuation else s.translate(_PUNCT)
            return " ".join(s.split())

        ok = got is not _MISSING and norm(got) == norm(want)
        return _result(ok, f"expected {want!r}")


class SchemaParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    schema_file: str | None = None


class JsonSchema(CheckScorer):
    """The output is JSON valid against ``schema`` (inline) or ``schema_file`` (project path)."""

    params_model = SchemaParams

    def __init__(self, spec: ScorerSpec, context: ScorerContext) -> None:
        super().__init__(spec)
        p = params_of(SchemaParams, spec)
        schema: Any = p.schema_
        if p.schema_file is not None:
            path = context.project_dir / p.schema_file
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"scorer {spec.key!r}: cannot read schema: {exc}",
                                  source=str(path)) from None
        if not isinstance(schema, dict):
            raise ConfigError(f"scorer {spec.key!r}: give `schema` or `schema_file`",
                              key="params")
        self.schema: dict[str, Any] = schema

    def check(self, output: str, case: Case) -> Score:
        value = parse_json(output)
        if value is _MISSING:
            return _result(False, "not JSON")
        problems = validate(value, self.schema)
        return _result(not problems, "; ".join(problems[:3]))


class FieldsParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    fields: tuple[str, ...] = ()
    tolerances: dict[str, float] = Field(default_factory=dict)
    case_sensitive: bool = True


class RequiredFields(CheckScorer):
    params_model = FieldsParams

    def check(self, output: str, case: Case) -> Score:
        wanted = params_of(FieldsParams, self.spec).fields
        value = parse_json(output)
        if not isinstance(value, dict):
            return _result(False, "not a JSON object", 0.0)
        missing = [f for f in wanted if value.get(f) is None]
        frac = 1 - len(missing) / len(wanted) if wanted else 1.0
        return _result(not missing, f"missing {', '.join(missing)}" if missing else "", frac)


class Fields(CheckScorer):
    """Field by field against an ``expected`` mapping; the value is the fraction that match.
    Numbers match within ``tolerances[field]`` (absolute)."""

    params_model = FieldsParams

    def check(self, output: str, case: Case) -> Score:
        p = params_of(FieldsParams, self.spec)
        want = case.expected if isinstance(case.expected, Mapping) else {}
        names = p.fields or tuple(want)
        got = parse_json(output)
        if not isinstance(got, dict) or not names:
            return _result(False, "not a JSON object" if names else "nothing to compare", 0.0)
        wrong = [n for n in names if not _same(got.get(n, _MISSING), want.get(n),
                                               p.tolerances.get(n, 0.0), p.case_sensitive)]
        detail = "; ".join(f"{n}: {got.get(n)!r} != {want.get(n)!r}" for n in wrong)
        return _result(not wrong, detail, 1 - len(wrong) / len(names))


def _same(got: Any, want: Any, tolerance: float, case_sensitive: bool) -> bool:
    if _is_number(got) and _is_number(want):
        return abs(float(got) - float(want)) <= tolerance
    if isinstance(got, str) and isinstance(want, str) and not case_sensitive:
        return got.casefold() == want.casefold()
    return bool(got == want)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class RegexParams(Params):
    pattern: str
    ignore_case: bool = False
    full: bool = False


class Regex(CheckScorer):
    params_model = RegexParams

    def check(self, output: str, case: Case) -> Score:
        p = params_of(RegexParams, self.spec)
        try:
            rx = re.compile(p.pattern, re.IGNORECASE if p.ignore_case else 0)
        except re.error as exc:
            raise ConfigError(f"scorer {self.spec.key!r}: bad pattern: {exc}",
                              key="params.pattern") from None
        got = pick(output, p.field)
        text = got if isinstance(got, str) else ("" if got is _MISSING else json.dumps(got))
        found = rx.fullmatch(text) if p.full else rx.search(text)
        return _result(found is not None, f"/{p.pattern}/")


class ContainsParams(Params):
    texts: tuple[str, ...] = ()
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False


class Contains(CheckScorer):
    """Contains ``texts`` (default: the case's ``expected`` text or list)."""

    params_model = ContainsParams

    negate = False

    def check(self, output: str, case: Case) -> Score:
        p = params_of(ContainsParams, self.spec)
        texts: Sequence[Any] = p.texts or _as_list(expected_of(case, p.field))
        got = pick(output, p.field)
        hay = got if isinstance(got, str) else ""
        fold = (lambda s: s) if p.case_sensitive else str.casefold
        hits = [t for t in texts if fold(str(t)) in fold(hay)]
        if self.negate:
            return _result(not hits, f"contains {hits!r}" if hits else "")
        ok = len(hits) == len(texts) if p.mode == "all" else bool(hits)
        return _result(ok and bool(texts), f"missing {sorted(set(map(str, texts)) - set(hits))}")


class NotContains(Contains):
    negate = True


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class LengthParams(Params):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    unit: Literal["chars", "words"] = "chars"


class Length(CheckScorer):
    params_model = LengthParams

    def check(self, output: str, case: Case) -> Score:
        p = params_of(LengthParams, self.spec)
        got = pick(output, p.field)
        text = got if isinstance(got, str) else ""
        n = len(text.split()) if p.unit == "words" else len(text)
        ok = (p.min is None or n >= p.min) and (p.max is None or n <= p.max)
        return _result(ok, f"{n} {p.unit}")


class NumericParams(Params):
    tolerance: float = Field(0.0, ge=0)
    relative: bool = False


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class Numeric(CheckScorer):
    """The output's number (a JSON field, or the first number in the text) is within
    ``tolerance`` of ``expected`` (absolute, or a fraction of it when ``relative``)."""

    params_model = NumericParams

    def check(self, output: str, case: Case) -> Score:
        p = params_of(NumericParams, self.spec)
        want = expected_of(case, p.field)
        got = pick(output, p.field)
        if isinstance(got, str):
            found = _NUMBER.search(got)
            got = float(found.group()) if found else _MISSING
        if not _is_number(got) or not _is_number(want):
            return _result(False, f"no number to compare with {want!r}")
        limit = p.tolerance * abs(float(want)) if p.relative else p.tolerance
        ok = math.isfinite(float(got)) and abs(float(got) - float(want)) <= limit
        return _result(ok, f"{got} vs {want}")


class LabelParams(Params):
    labels: tuple[str, ...] = ()
    case_sensitive: bool = False


class Label(CheckScorer):
    """Classification: the predicted label (a JSON field or the whole output) against the
    expected one. Runs aggregate accuracy, per-class precision/recall and a confusion matrix."""

    params_model = LabelParams

    kind = "classification"

    def check(self, output: str, case: Case) -> Score:
        p = params_of(LabelParams, self.spec)
        got = pick(output, p.field)
        want = expected_of(case, p.field)

        def norm(s: str) -> str:
            return s.strip() if p.case_sensitive else s.strip().casefold()

        label = norm(str(got)) if got is not _MISSING and got is not None else "<missing>"
        expected = norm(str(want))
        if p.labels and label not in {norm(x) for x in p.labels}:
            label = "<invalid>"
        return Score(value=float(label == expected), passed=label == expected,
                     detail=f"{label} vs {expected}", label=label, expected_label=expected)


def _simple(cls: type[CheckScorer]) -> ScorerFactory:
    def factory(spec: ScorerSpec, context: ScorerContext) -> Scorer:
        return cls(spec)
    return factory


def default_registry() -> ScorerRegistry:
    """The built-in scorers."""
    from buttress.evals.embedding import embedding_factory
    from buttress.evals.judge import judge_factory

    return ScorerRegistry({
        "exact": _simple(Exact), "normalized": _simple(Normalized),
        "required_fields": _simple(RequiredFields), "fields": _simple(Fields),
        "regex": _simple(Regex), "contains": _simple(Contains),
        "not_contains": _simple(NotContains), "length": _simple(Length),
        "numeric": _simple(Numeric), "label": _simple(Label),
        "json_schema": JsonSchema, "judge": judge_factory, "embedding": embedding_factory,
    })
