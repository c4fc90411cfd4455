"""Subsets, sampling production calls into cases, the embedding scorer, right-sizing ranks,
and experiments building their calls with ``client.prepare``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import UsageError
from buttress.evals.dataset import Case, Dataset, ScorerSpec, SuiteSettings, load_dataset, subset
from buttress.evals.embedding import EmbeddingSimilarity
from buttress.evals.experiment import Experiment
from buttress.evals.results import EvalRun, Metric, Variant, VariantSummary
from buttress.evals.rightsize import rank, recommendation
from buttress.evals.sampling import recover_inputs, write_cases
from buttress.prompts import PromptStore
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Call
from buttress.testing.fake import FakeProvider
from buttress.types import Message, ResponseFormat


def dataset(cases: tuple[Case, ...]) -> Dataset:
    return Dataset(name="d", path=Path("d.yaml"), split="main", cases=cases, version="v1",
                   settings=SuiteSettings(scorers=(ScorerSpec(name="exact"),)))


def test_subset_covers_every_first_tag_in_file_order() -> None:
    cases = tuple(Case(id=f"{t}{i}", tags=(t, "extra")) for t in "abcd" for i in range(5))
    picked = subset(dataset(cases), 6)
    assert [c.id for c in picked.cases] == ["a0", "a1", "b0", "b1", "c0", "d0"]
    assert picked.version == "v1"
    assert subset(dataset(cases), 100).cases == cases
    with pytest.raises(UsageError):
        subset(dataset(cases), 0)


PROMPT = """---
description: t
---
[system]
You triage tickets for {{ team }}.
[user]
Ticket from {{ team }}: {{ ticket }}
"""


def test_inputs_are_recovered_from_the_messages_a_prompt_rendered(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text(PROMPT)
    prompt = PromptStore(tmp_path).get("t")
    sent = [m.model_dump() for m in prompt.render({"team": "EMEA", "ticket": "It's\nbroken"})]
    assert recover_inputs(prompt, sent) == {"team": "EMEA", "ticket": "It's\nbroken"}
    edited = [sent[0], {"role": "user", "content": "something else"}]
    assert recover_inputs(prompt, edited) is None
    assert recover_inputs(prompt, sent[:1]) is None
    inconsistent = [sent[0], {"role": "user", "content": "Ticket from APAC: x"}]
    assert recover_inputs(prompt, inconsistent) is None


def test_write_cases_never_overwrites_and_appends_only_new_ids(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "new.yaml"
    first = [{"id": "call-1", "inputs": {"ticket": "a"}, "expected": "x", "needs_label": True}]
    assert write_cases(path, first, append=False, feature="triage") == 1
    with pytest.raises(UsageError, match="--append"):
        write_cases(path, first, append=False, feature="triage")
    more = [*first, {"id": "call-2", "messages": [{"role": "user", "content": "b"}],
                     "expected": None, "needs_label": True}]
    assert write_cases(path, more, append=True, feature="triage") == 1
    data = load_dataset(path)
    assert [c.id for c in data.cases] == ["call-1", "call-2"]
    assert all(c.needs_label for c in data.cases)
    assert data.settings.feature == "triage"
    assert path.read_text().startswith("# Sampled from the ledger")
    with pytest.raises(UsageError, match="YAML"):
        write_cases(tmp_path / "x.jsonl", first, append=False, feature="triage")


async def test_embedding_similarity_ranks_paraphrases_above_unrelated_text() -> None:
    scorer = EmbeddingSimilarity(ScorerSpec(name="embedding", params={"threshold": 0.5}))
    case = Case(id="c", expected="Please refund the duplicate charge on my card")
    close = await scorer.score("Refund the second charge on my credit card, please", case)
    far = await scorer.score("The mobile app crashes when I open settings", case)
    assert close.value > far.value
    assert close.passed
    assert not far.passed
    assert "similarity" in close.detail


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).parents[2] / "src")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, timeout=120,
                          check=False)


def test_embedding_scorer_uses_no_network() -> None:
    result = run_python("""
import asyncio, socket
def refuse(*a, **k):
    raise RuntimeError("network used")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.embedding import EmbeddingSimilarity
s = EmbeddingSimilarity(ScorerSpec(name="embedding"))
print(asyncio.run(s.score("refund me", Case(id="c", expected="give my money back"))).value)
""")
    assert result.returncode == 0, result.stderr
    assert 0.0 < float(result.stdout) <= 1.0


def test_embedding_scorer_without_the_extra_names_it() -> None:
    result = run_python("""
import asyncio, sys
sys.modules["wordllama"] = None  # as if not installed
from buttress.errors import ConfigError
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.embedding import EmbeddingSimilarity
s = EmbeddingSimilarity(ScorerSpec(name="embedding"))
try:
    asyncio.run(s.score("a", Case(id="c", expected="b")))
except ConfigError as exc:
    print(exc)
""")
    assert "pip install 'buttress[semantic]'" in result.stdout, result.stderr


def summary(name: str, score: float, cost: float, p50: float) -> VariantSummary:
    return VariantSummary(variant=name, overall=Metric(value=score, low=score, high=score, n=10),
                          slices={}, scorers={}, calls=10, cost_usd=cost * 10,
                          latency_p50_s=p50, latency_p95_s=p50 * 2)


def test_rank_puts_the_cheapest_then_fastest_passing_model_first() -> None:
    run = EvalRun(run_id="r", created_at=0, feature="f", dataset="d", dataset_version="v",
                  split="main", epochs=1, scorers=(), variants=(), results=(), case_weights={},
                  case_tags={}, summaries=(
                      summary("large", 0.95, 0.010, 0.9), summary("medium", 0.85, 0.002, 0.5),
                      summary("medium-fast", 0.82, 0.002, 0.3), summary("tiny", 0.60, 0.0001, 0.1),
                      summary("broken", 0.10, 0.0, 0.1)))
    ranked = rank(run, 0.8)
    assert [c.model for c in ranked] == ["medium-fast", "medium", "large", "tiny", "broken"]
    assert [c.meets_bar for c in ranked] == [True, True, True, False, False]
    assert ranked[0].cost_per_call_usd == pytest.approx(0.002)
    text = recommendation(ranked, 0.8)
    assert text.startswith("use medium-fast: 82.0% (bar 80%)")
    assert "2 other model(s) also pass" in text
    assert recommendation(rank(run, 0.99), 0.99).startswith(
        "no model meets the quality bar of 99%; the best, large, scores 95.0%")


CONFIG = """
[providers.fake]
type = "fake"
[models.fake]
provider = "fake"
model = "fake-1"
[models.other]
provider = "fake"
model = "fake-2"
[features.echo]
prompt = "echo"
models = ["fake"]
params = { temperature = 0.3 }
"""


class CallLog:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def before(self, call: Call) -> None:
        self.calls.append(call)

    async def after(self, outcome: Outcome) -> None:
        return None


async def test_experiment_sends_what_client_prepare_builds(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "echo.md").write_text(
        "---\ndescription: e\nparams: {max_tokens: 9}\n---\n[user]\n{{ ticket }}\n")
    log, fake = CallLog(), FakeProvider(name="fake")
    fmt = ResponseFormat(type="json_schema", json_schema={"type": "object"}, name="echo")
    cases = (Case(id="a", inputs={"ticket": "hello"}, tags=("s",)),)
    data = Dataset(name="d", path=Path("d.yaml"), split="main", cases=cases, version="v",
                   settings=SuiteSettings(scorers=(ScorerSpec(name="contains",
                                                              params={"texts": ["hello"]}),)))
    async with AsyncClient(parse_config(CONFIG), project_dir=tmp_path, providers={"fake": fake},
                           hooks=[log]) as client:
        run = await Experiment(client, "echo", data, epochs=2, run_id="r1",
                               params={"response_format": fmt},
                               variants=[Variant(name="v", model="other",
                                                 params={"temperature": 0.9})]).run()
        expected = client.prepare("echo", {"ticket": "hello"}, models=["other"],
                                  temperature=0.9, response_format=fmt)
    assert run.summary().overall.value == 1.0
    first, second = log.calls
    assert first.request == expected.request
    assert first.request.temperature == 0.9
    assert first.request.max_tokens == 9
    assert first.request.response_format == fmt
    assert [t.model for t in first.targets] == ["fake-2"]
    assert first.prompt_name == "echo"
    assert first.prompt_version == expected.prompt_version
    assert set(first.tags) == {"eval:r1", "variant:v", "case:a", "epoch:0"}
    # the second trial samples the model again instead of reading the first one's answer
    assert (first.cache, second.cache) == ("use", "refresh")
    assert fake.requests[0].messages == (Message.user("hello"),)


async def test_experiment_refuses_an_unknown_model_before_calling(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "echo.md").write_text("---\ndescription: e\n---\n[user]\nhi\n")
    fake = FakeProvider(name="fake")
    async with AsyncClient(parse_config(CONFIG), project_dir=tmp_path,
                           providers={"fake": fake}) as client:
        experiment = Experiment(client, "echo", dataset((Case(id="a"),)),
                                variants=[Variant(model="nope")])
        with pytest.raises(UsageError, match="unknown model 'nope'"):
            await experiment.run()
    assert fake.requests == []
