"""``buttress eval run/list`` end to end on a fake provider that echoes the prompt."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from buttress.cli.main import app

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})

GOOD = """---
description: echo triage
---
[user]
{{ ticket }}
"""
# the deliberately worse version drops what refund tickets say
WORSE = """---
description: echo triage
---
[user]
{% if 'refund' in ticket %}no idea{% else %}{{ ticket }}{% endif %}
"""


def case(cid: str, word: str) -> dict[str, object]:
    return {"id": cid, "inputs": {"ticket": f"{word} ticket {cid}"}, "expected": word,
            "tags": [word]}


def make_project(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(GOOD)
    (tmp_path / "evals").mkdir()
    cases = [case(f"{w}{i}", w) for w in ("refund", "billing", "bug") for i in range(4)]
    (tmp_path / "evals" / "triage.yaml").write_text(json.dumps(
        {"feature": "triage", "scorers": [{"name": "contains"}], "cases": cases}))
    (tmp_path / "evals" / "triage.holdout.yaml").write_text(json.dumps(
        [case("h1", "refund"), case("h2", "bug")]))
    (tmp_path / "buttress.toml").write_text("""
[providers.fake]
type = "fake"
[models.fake]
provider = "fake"
model = "fake-1"
[features.triage]
prompt = "triage"
models = ["fake"]
[ledger]
enabled = false
""")
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--project", str(project), "eval", *args])
    return result.exit_code, result.output


def test_run_store_list_and_gate_a_worse_prompt(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    code, output = invoke(project, "run", "triage", "--gate")
    assert code == 0, output
    assert "100.0%" in output
    assert "gate passed" in output
    assert "holdout split of 'triage' not run" in output
    runs = sorted((project / ".buttress/evals/runs").glob("*.json"))
    assert len(runs) == 1
    base_id = runs[0].stem
    report = json.loads((project / ".buttress/evals/reports" / f"{base_id}.json").read_text())
    assert report["run"]["summaries"][0]["slices"]["refund"]["value"] == 1.0
    assert report["run"]["split"] == "main"

    (project / "prompts" / "triage.md").write_text(WORSE)
    code, output = invoke(project, "run", "triage", "--baseline", base_id[:10], "--gate")
    assert code == 1, output
    assert "GATE FAILED" in output
    assert "67% (\u221233) overall, but refund cases 0% (\u2212100)" in output
    md = sorted((project / ".buttress/evals/reports").glob("*.md"))[-1].read_text()
    assert "REGRESSED" in md
    assert "refund" in md

    code, output = invoke(project, "list")
    assert code == 0
    assert base_id[:12] in output
    assert "66.7%" in output


def test_holdout_runs_only_on_request_hides_outputs_and_counts_uses(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    code, _ = invoke(project, "run", "triage")
    assert code == 0
    lock = project / "evals" / "holdout.lock"
    assert not lock.exists()  # never touched without --holdout
    for expected_uses in (1, 2):
        code, output = invoke(project, "run", "triage", "--holdout")
        assert code == 0, output
        assert f"use #{expected_uses}" in output
        assert json.loads(lock.read_text())["triage"]["uses"] == expected_uses
    run_file = sorted((project / ".buttress/evals/runs").glob("*.json"))[-1]
    run = json.loads(run_file.read_text())
    assert run["split"] == "holdout"
    assert run["outputs_hidden"] is True
    assert run["holdout_uses"] == 2
    assert {r["output"] for r in run["results"]} == {None}
    assert "echo" not in run_file.read_text()
    assert run["summaries"][0]["overall"]["value"] == 1.0
    # an edited holdout is refused, naming the file
    (project / "evals" / "triage.holdout.yaml").write_text(json.dumps([case("h1", "bug")]))
    code, output = invoke(project, "run", "triage", "--holdout")
    assert code == 2
    assert "HOLDOUT EDITED" in output
    assert "triage.holdout.yaml" in output


def test_a_malformed_dataset_is_one_error_line_with_file_and_line(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "evals" / "triage.yaml").write_text("- id: a\n- id: b\n  weight: heavy\n")
    code, output = invoke(project, "run", "triage")
    assert code == 2
    assert "triage.yaml:3" in output
