"""``buttress eval rightsize``, ``compare``, ``sample`` and the HTML report, end to end on fake
providers (and, marked local_model, the scaffolded triage suite on the embedded model)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from buttress.cli.main import app
from buttress.ledger import CallRecord
from buttress.ledger.open import open_store
from buttress.ledger.records import FeedbackRecord

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})

RIGHT = '{"category": "billing", "urgency": "high"}'
WRONG = '{"category": "shipping", "urgency": "high"}'
PROMPT = "---\ndescription: triage\n---\n[system]\nTriage.\n[user]\n{{ ticket }}\n"


def make_project(tmp_path: Path, *, ledger: bool = False) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(PROMPT)
    (tmp_path / "evals").mkdir()
    cases = [{"id": f"{tag}{i}", "inputs": {"ticket": f"{tag} ticket {i}"},
              "expected": {"category": "billing"}, "tags": [tag]}
             for tag in ("refund", "invoice") for i in range(5)]
    (tmp_path / "evals" / "triage.yaml").write_text(json.dumps(
        {"feature": "triage", "gate": {"min_score": 0.8},
         "scorers": [{"name": "label", "params": {"field": "category"}}], "cases": cases}))
    (tmp_path / "buttress.toml").write_text(f"""
[providers.right]
type = "fake"
replies = [{{ text = '{RIGHT}' }}]
[providers.wrong]
type = "fake"
replies = [{{ text = '{WRONG}' }}]
[models.big]
provider = "right"
model = "big-1"
[models.small]
provider = "wrong"
model = "small-1"
[features.triage]
prompt = "triage"
models = ["big"]
[ledger]
enabled = {"true" if ledger else "false"}
""")
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--project", str(project), "eval", *args])
    return result.exit_code, result.output


def test_rightsize_recommends_the_model_that_meets_the_bar(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    code, output = invoke(project, "rightsize", "triage")
    assert code == 0, output
    rows = [line for line in output.splitlines() if re.match(r"\W*[12]\W", line)]
    assert "big" in rows[0]
    assert "yes" in rows[0]
    assert "small" in rows[1]
    assert "no" in rows[1]
    assert "use big: 100.0% (bar 80%)" in output
    code, output = invoke(project, "rightsize", "triage", "--models", "small")
    assert code == 0
    assert "no model meets the quality bar of 80%; the best, small, scores 0.0%" in output


def test_rightsize_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    code, output = invoke(project, "rightsize", "triage", "--models", "big,nope")
    assert code == 2
    assert "unknown model alias(es) nope" in output
    code, output = invoke(project, "rightsize", "nofeature")
    assert code == 2
    assert "unknown feature 'nofeature'" in output


def test_compare_a_worse_model_names_the_slices_and_says_no(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    code, output = invoke(project, "compare", "triage", "--model", "small")
    assert code == 1, output
    assert re.search(r"refund\W+5\W+100\.0%\W+0\.0%\W+-100\.0\W+mcnemar\W+0\.062\W+REGRESSED",
                     output)
    assert "do not upgrade: 0% (\u2212100) overall, but invoice cases 0% (\u2212100), " \
           "refund cases 0% (\u2212100)" in output
    assert "cost 0.0000 -> 0.0000 $" in output
    # the other way round the candidate is better: recommended, exit 0
    code, output = invoke(project, "compare", "triage", "--model", "big", "--current", "small")
    assert code == 0, output
    assert "upgrade to big: 100% (+100) overall; no slice regressed" in output


def test_run_writes_a_self_contained_html_report(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "evals" / "triage.yaml").write_text((project / "evals" / "triage.yaml")
                                                   .read_text().replace('"refund0"',
                                                                        '"<script>r0"'))
    html_path = tmp_path / "report.html"
    code, output = invoke(project, "run", "triage", "--html", str(html_path), "--limit", "4")
    assert code == 0, output
    run_file = next((project / ".buttress/evals/runs").glob("*.json"))
    assert [r["case_id"] for r in json.loads(run_file.read_text())["results"]] == [
        "<script>r0", "refund1", "invoice0", "invoice1"]  # a quick subset across the slices
    html = html_path.read_text()
    assert html.count("<svg") == 4  # overall, slices, cost, latency
    assert html.count('class="ci"') == 1 + 2  # a whisker per bar: overall + two slices
    assert "<script" not in html  # the case text is escaped, and there is no script at all
    assert "&lt;script&gt;" in html
    assert not re.search(r"(src|href)=\"?(https?:)?//", html)  # nothing from the network
    assert "refund" in html
    assert "invoice" in html
    assert "reports: " in output


def write_ledger(project: Path) -> list[str]:
    store = open_store("sqlite:///.buttress/ledger.db", base_dir=project)
    now = time.time()
    calls, feedback = [], []
    for i, (status, signal) in enumerate([("ok", "rejected"), ("ok", None), ("error", None),
                                          ("ok", "edited"), ("ok", "rejected")]):
        cid = f"call{i:02d}"
        calls.append(CallRecord(
            call_id=cid, feature="triage", prompt_name="triage", status=status,
            request={"messages": [{"role": "system", "content": "Triage."},
                                  {"role": "user", "content": f"ticket number {i}"}]},
            output_text=RIGHT if status == "ok" else None,
            error_kind="timeout" if status == "error" else None, created_at=now - 60 + i))
        if signal:
            feedback.append(FeedbackRecord(feedback_id=f"f{i}", call_id=cid, signal=signal,
                                           comment="wrong queue" if i == 0 else None,
                                           created_at=now))
    store.write(calls, feedback=feedback)
    store.close()
    return [c.call_id for c in calls]


def test_sample_production_calls_into_cases_to_label(tmp_path: Path) -> None:
    project = make_project(tmp_path, ledger=True)
    write_ledger(project)
    target = project / "evals" / "from_prod.yaml"
    code, output = invoke(project, "sample", "triage", "--to", "evals/from_prod.yaml",
                          "--feedback", "rejected", "--since", "7d")
    assert code == 0, output
    assert "2 case(s) to label" in output
    data = yaml.safe_load(target.read_text())
    assert data["feature"] == "triage"
    ids = [c["id"] for c in data["cases"]]
    assert sorted(ids) == ["call-call00", "call-call04"]
    first = next(c for c in data["cases"] if c["id"] == "call-call00")
    assert first["needs_label"] is True
    assert first["expected"] == json.loads(RIGHT)  # the output, as a draft to correct
    # the prompt version is unknown here, so the messages are kept (the prompt's system dropped)
    assert first["messages"] == [{"role": "user", "content": "ticket number 0"}]
    assert "feedback:rejected" in first["tags"]
    assert "wrong queue" in first["notes"]

    # never overwritten without --append; with it, only new calls are added
    code, output = invoke(project, "sample", "triage", "--to", "evals/from_prod.yaml")
    assert code == 2
    assert "pass --append" in output
    before = target.read_text()
    code, output = invoke(project, "sample", "triage", "--to", "evals/from_prod.yaml",
                          "--append", "--status", "error")
    assert code == 0, output
    assert "1 case(s) to label" in output
    after = target.read_text()
    assert after.startswith(before.rstrip("\n"))  # appended, the file's text kept
    cases = yaml.safe_load(after)["cases"]
    assert [c["id"] for c in cases][-1] == "call-call02"
    assert "error" in cases[-1]["tags"]

    # a run over sampled cases warns that they still need labels
    code, output = invoke(project, "run", "triage", "--dataset", "from_prod")
    assert "3 case(s) still need a label" in output


def test_sample_bad_filters_are_one_line_and_exit_2(tmp_path: Path) -> None:
    project = make_project(tmp_path, ledger=True)
    write_ledger(project)
    code, output = invoke(project, "sample", "triage", "--to", "evals/x.yaml",
                          "--feedback", "hated")
    assert code == 2
    assert "--feedback hated: expected one of" in output
    code, output = invoke(project, "sample", "triage", "--to", "evals/x.yaml",
                          "--status", "weird")
    assert code == 2
    code, output = invoke(project, "sample", "other", "--to", "evals/x.yaml")
    assert code == 2
    assert "no recorded call of feature 'other'" in output
    assert not (project / "evals" / "x.yaml").exists()


# -- the scaffolded suite on the embedded model ----------------------------------------------


@pytest.mark.local_model
def test_scaffolded_triage_suite_runs_on_the_embedded_model(tmp_path: Path) -> None:
    assert runner.invoke(app, ["--project", str(tmp_path), "init"]).exit_code == 0
    data = yaml.safe_load((tmp_path / "evals" / "triage.yaml").read_text())
    assert len(data["cases"]) >= 50
    assert len({c["tags"][0] for c in data["cases"]}) >= 4
    assert (tmp_path / "evals" / "triage.holdout.yaml").is_file()
    code, output = invoke(tmp_path, "run", "triage", "--limit", "8")
    assert code == 0, output
    assert "holdout split of 'triage' not run" in output
    reports = sorted((tmp_path / ".buttress/evals/reports").iterdir())
    assert {p.suffix for p in reports} == {".json", ".md", ".html"}
    run = json.loads(next(p for p in reports if p.suffix == ".json").read_text())["run"]
    assert len(run["results"]) == 8
    assert all(r["call_id"] for r in run["results"])  # every case really called the model
    slices = run["summaries"][0]["slices"]
    assert {"billing", "technical", "account", "shipping"} <= set(slices)
    assert sum(s["n"] for s in slices.values()) >= 8
    md = next(p for p in reports if p.suffix == ".md").read_text()
    assert re.search(r"\| billing \| \d+\.\d% \[", md)
    assert "<svg" in next(p for p in reports if p.suffix == ".html").read_text()
