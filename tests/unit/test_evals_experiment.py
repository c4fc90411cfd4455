"""Experiments through the client's runtime on a fake provider: scores, slices and metrics that
match numbers computed by hand, tags, epochs, judge calibration, comparison and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.evals.calibration import CalibrationStore, calibrate, cohen_kappa
from buttress.evals.compare import compare, gate_failures
from buttress.evals.dataset import GateSettings, ScorerSpec, load_dataset
from buttress.evals.experiment import Experiment, parse_variant, variant_warnings
from buttress.evals.judge import LLMJudge
from buttress.evals.report import to_json, to_markdown
from buttress.evals.results import Variant
from buttress.evals.scorers import ScorerContext, default_registry
from buttress.evals.store import RunStore
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Call
from buttress.testing.fake import FakeProvider
from buttress.types import CallRequest

CONFIG = """
[providers.fake]
type = "fake"
[providers.judge]
type = "fake"
[models.fake]
provider = "fake"
model = "fake-1"
[models.other]
provider = "fake"
model = "fake-2"
[models.judge]
provider = "judge"
model = "judge-1"
[features.triage]
prompt = "triage"
models = ["fake"]
policy = { max_retries = 0 }
"""

PROMPT = """---
description: triage
---
[system]
{{ style | default("Classify the ticket.") }}
[user]
{{ ticket }}
"""

RUBRIC = """---
description: rubric
---
[user]
Is this a good answer? {{ output }}
"""

# ticket -> category the fake model answers; refund tickets r3 and billing b3 are answered wrong
ANSWERS = {"r1": "refund", "r2": "refund", "r3": "bug", "r4": "refund",
           "b1": "billing", "b2": "billing", "b3": "refund",
           "g1": "bug", "g2": "bug", "g3": "bug"}
TRUTH = {"r": "refund", "b": "billing", "g": "bug"}
SLICE = {"r": "refund", "b": "billing", "g": "bug"}


def dataset_yaml() -> str:
    cases = []
    for cid in ANSWERS:
        weight = 2 if cid == "r1" else 1
        cases.append({"id": cid, "inputs": {"ticket": cid},
                      "expected": {"category": TRUTH[cid[0]]}, "tags": [SLICE[cid[0]]],
                      "weight": weight})
    return json.dumps({"feature": "triage",
                       "scorers": [{"name": "label", "params": {"field": "category"}}],
                       "gate": {"max_slice_drop": 0.05, "min_slice_cases": 3},
                       "cases": cases})


def model(request: CallRequest) -> str:
    system = request.messages[0].content or ""
    ticket = request.messages[-1].content or ""
    answer = ANSWERS[ticket]
    if "careless" in system and ticket.startswith("r"):
        answer = "bug"  # the worse prompt gets every refund wrong
    return json.dumps({"category": answer})


class TagLog:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def before(self, call: Call) -> None:
        self.calls.append(call)

    async def after(self, outcome: Outcome) -> None:
        return None


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(PROMPT)
    (tmp_path / "prompts" / "rubric.md").write_text(RUBRIC)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "triage.yaml").write_text(dataset_yaml())
    return tmp_path


def client(project: Path, log: TagLog | None = None, judge: FakeProvider | None = None
           ) -> AsyncClient:
    providers = {"fake": FakeProvider(name="fake", respond=model),
                 "judge": judge or FakeProvider(name="judge")}
    return AsyncClient(parse_config(CONFIG), project_dir=project, providers=providers,
                       hooks=[log] if log else ())


async def test_scores_slices_and_classification_match_hand_counts(project: Path) -> None:
    log = TagLog()
    data = load_dataset(project / "evals" / "triage.yaml")
    async with client(project, log) as c:
        run = await Experiment(c, "triage", data, run_id="run1").run()
    s = run.summary()
    # passes: r1 (weight 2), r2, r4, b1, b2, g1..g3 -> (2 + 7) of total weight 11
    assert s.overall.value == pytest.approx(9 / 11)
    assert s.slices["refund"].value == pytest.approx(4 / 5)  # r1 counts twice: (2+1+1)/5
    assert s.slices["billing"].value == pytest.approx(2 / 3)
    assert s.slices["bug"].value == 1.0
    assert s.slices["billing"].low < 2 / 3 < s.slices["billing"].high
    cls = s.classification["label"]
    assert cls.accuracy == pytest.approx(8 / 10)  # classification counts each call once
    # predicted refund: r1 r2 r4 b3 -> precision 3/4; true refund r1..r4 -> recall 3/4
    assert cls.classes["refund"].precision == pytest.approx(3 / 4)
    assert cls.classes["refund"].recall == pytest.approx(3 / 4)
    assert cls.classes["bug"].precision == pytest.approx(3 / 4)  # g1..g3 + r3
    assert cls.confusion["billing"]["refund"] == 1
    assert s.calls == 10
    assert s.errors == 0
    assert s.prompt_tokens > 0
    assert {t for call in log.calls for t in call.tags if t.startswith("eval:")} == {"eval:run1"}
    assert all(call.feature == "triage" and call.prompt_version for call in log.calls)


async def test_epochs_flag_flaky_cases_and_concurrency_is_bounded(project: Path) -> None:
    seen: dict[str, int] = {}
    in_flight = peak = 0

    def flaky(request: CallRequest) -> str:
        ticket = request.messages[-1].content or ""
        seen[ticket] = seen.get(ticket, 0) + 1
        if ticket == "g1" and seen[ticket] == 2:
            return json.dumps({"category": "refund"})
        return model(request)

    class Gauge(TagLog):
        async def before(self, call: Call) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)

        async def after(self, outcome: Outcome) -> None:
            nonlocal in_flight
            in_flight -= 1

    data = load_dataset(project / "evals" / "triage.yaml")
    c = AsyncClient(parse_config(CONFIG), project_dir=project,
                    providers={"fake": FakeProvider(name="fake", respond=flaky)},
                    hooks=[Gauge()])
    async with c:
        run = await Experiment(c, "triage", data, epochs=3, concurrency=2).run()
    s = run.summary()
    assert s.flaky == ("g1",)
    assert s.calls == 30
    assert peak <= 2
    assert run.case_values("current")["g1"] == pytest.approx(2 / 3)
    assert s.mean_case_std > 0


def test_variants_parse_and_warn_when_more_than_one_variable_differs() -> None:
    v = parse_variant("cheap:model=other,temperature=0.2")
    assert v == Variant(name="cheap", model="other", params={"temperature": 0.2})
    assert parse_variant("prompt=abcd12").prompt_version == "abcd12"
    warnings = variant_warnings([Variant(), v, Variant(model="other")])
    assert len(warnings) == 1
    assert "model, temperature" in warnings[0]


async def test_worse_prompt_fails_the_gate_and_names_the_slice(project: Path,
                                                               tmp_path: Path) -> None:
    data = load_dataset(project / "evals" / "triage.yaml")
    store = RunStore(tmp_path / "runs")
    async with client(project) as c:
        baseline = await Experiment(c, "triage", data, run_id="base").run()
    store.save(baseline)
    (project / "prompts" / "triage.md").write_text(
        PROMPT.replace("Classify the ticket.", "Be careless."))
    async with client(project) as c:
        worse = await Experiment(c, "triage", data, run_id="worse").run()
    base = store.load("base")
    assert base.summary().overall.value == pytest.approx(9 / 11)
    gate = data.settings.gate
    comparison = compare(worse, base, gate)
    # refund: baseline 4/5, now 0/5; overall (0 + 5) / 11 after 9 / 11
    refund = next(d for d in comparison.slices if d.name == "refund")
    assert refund.regressed
    assert refund.delta == pytest.approx(-4 / 5)
    assert refund.test == "mcnemar"
    assert refund.p_value == pytest.approx(2 * 1 / 8)  # 3 discordant pairs, all one way
    assert not next(d for d in comparison.slices if d.name == "bug").regressed
    assert comparison.headline == "45% (\u221236) overall, but refund cases 0% (\u221280)"
    failures = gate_failures(worse, comparison, gate)
    assert any(f.startswith("refund:") for f in failures)
    md = to_markdown(worse, comparison, failures)
    assert "refund cases 0%" in md
    assert "REGRESSED" in md
    assert json.loads(to_json(worse, comparison, failures))["gate"]["passed"] is False
    # against itself nothing regresses
    assert gate_failures(base, compare(base, base, gate), gate) == []


def judge_reply(request: CallRequest) -> str:
    # humans: p1..p6 pass, f1..f4 fail; the judge errs on p6 and f4
    output = (request.messages[-1].content or "").split()[-1]
    verdict = "pass" if output.startswith("p") else "fail"
    if output in ("p6", "f4"):
        verdict = "fail" if verdict == "pass" else "pass"
    return json.dumps({"reasoning": f"looked at {output}", "verdict": verdict})


async def test_judge_calibration_reproduces_the_hand_computed_kappa(project: Path) -> None:
    cases = [{"id": o, "output": o, "expected": "pass" if o.startswith("p") else "fail",
              "tags": ["early" if int(o[1]) <= 3 else "late"]}
             for o in ("p1", "p2", "p3", "p4", "p5", "p6", "f1", "f2", "f3", "f4")]
    spec = {"name": "judge", "params": {"rubric": "rubric", "model": "judge"}}
    (project / "evals" / "calib.yaml").write_text(json.dumps(
        {"scorers": [spec], "judge": {"min_kappa": 0.7}, "cases": cases}))
    data = load_dataset(project / "evals" / "calib.yaml")
    judge_provider = FakeProvider(name="judge", respond=judge_reply)
    log = TagLog()
    async with client(project, log, judge=judge_provider) as c:
        judge = default_registry().build(ScorerSpec.model_validate(spec),
                                         ScorerContext(project_dir=project, client=c))
        assert isinstance(judge, LLMJudge)
        found = await calibrate(judge, data)
        # confusion: pass/pass 5, pass/fail 1, fail/pass 1, fail/fail 3 -> p_o = 8/10,
        # p_e = 0.6*0.6 + 0.4*0.4 = 0.52, kappa = (0.8 - 0.52) / (1 - 0.52) = 7/12
        assert found.overall.kappa == 7 / 12
        assert found.overall.accuracy == 0.8
        assert found.overall.confusion == {"fail": {"fail": 3, "pass": 1},
                                           "pass": {"fail": 1, "pass": 5}}
        assert cohen_kappa([("a", "a")] * 3) == 1.0
        store = CalibrationStore(project / "calibration")
        store.save(found)
        assert store.get(judge.key) == found
        # an eval scored by this judge reports its calibration and refuses to gate on it
        run = await Experiment(c, "triage", data, calibrations=store,
                               scorers=[ScorerSpec.model_validate(spec)]).run()
    assert run.judges[0].agreement == found.overall
    assert not run.judges[0].acceptable  # 7/12 < 0.7
    reasons = gate_failures(run, None, GateSettings())
    assert reasons
    assert "not trusted to gate" in reasons[0]
    assert gate_failures(run, None, GateSettings(), force=True) == []
    assert run.results[0].scores["judge"].reasoning == "looked at p1"
    judged = [call for call in log.calls if "judge" in call.tags]
    assert len(judged) == 20  # 10 calibration verdicts, then 10 while scoring the run
    assert f"eval:{run.run_id}" in judged[-1].tags
