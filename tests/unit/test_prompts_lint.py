"""Prompt lint and output-schema references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from buttress.errors import ConfigError
from buttress.prompts import PromptStore, lint, resolve_output
from buttress.types import Message


def write(project: Path, relative: str, text: str) -> None:
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def problems_of(project: Path) -> list[str]:
    return [str(problem) for problem in lint(PromptStore(project / "prompts"), project)]


def test_clean_project_has_no_problems(tmp_path: Path) -> None:
    write(tmp_path, "schemas/triage.json", '{"type": "object"}')
    write(tmp_path, "prompts/triage.md",
          "---\noutput: schemas/triage.json\nvariables: {ticket: text}\n---\n{{ ticket }}\n")
    write(tmp_path, "prompts/typed.md", "---\noutput: 'python:buttress.types:Message'\n---\nhi\n")
    assert problems_of(tmp_path) == []


def test_used_but_undeclared_variable(tmp_path: Path) -> None:
    write(tmp_path, "prompts/p.md",
          "---\nvariables:\n  ticket: text\n---\n[system]\nhi\n[user]\n{{ ticket }} {{ tone }}\n")
    assert problems_of(tmp_path) == [
        f"{tmp_path}/prompts/p.md:8: error: variable 'tone' is used but not declared in "
        "'variables'"]


def test_declared_but_unused_variable_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "prompts/p.md", "---\ndescription: d\nvariables: [a, b]\n---\n{{ a }}\n")
    problems = lint(PromptStore(tmp_path / "prompts"), tmp_path)
    assert [(p.severity, p.line, p.message) for p in problems] == [
        ("warning", 3, "variable 'b' is declared but never used")]


def test_undeclared_variables_pass_when_nothing_is_declared(tmp_path: Path) -> None:
    write(tmp_path, "prompts/p.md", "{{ anything }}\n")
    assert problems_of(tmp_path) == []


def test_bad_front_matter_and_syntax_are_reported_per_file(tmp_path: Path) -> None:
    write(tmp_path, "prompts/a.md", "---\ndescription: d\nbogus: 1\n---\nhi\n")
    write(tmp_path, "prompts/b.md", "hello\n{% for x in %}\n")
    write(tmp_path, "prompts/c.md", "fine\n")
    problems = problems_of(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith(f"{tmp_path}/prompts/a.md:3: error: bogus: unknown key")
    assert problems[1].startswith(f"{tmp_path}/prompts/b.md:2: error: template syntax error")


def test_dangling_schema_path(tmp_path: Path) -> None:
    write(tmp_path, "prompts/p.md", "---\ndescription: d\noutput: schemas/nope.json\n---\nhi\n")
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path}/prompts/p.md:3: error: output schema "
                              "'schemas/nope.json' does not exist")


def test_schema_file_that_is_not_a_json_object(tmp_path: Path) -> None:
    write(tmp_path, "schemas/bad.json", "{oops")
    write(tmp_path, "schemas/list.json", "[]")
    write(tmp_path, "prompts/a.md", "---\noutput: schemas/bad.json\n---\nhi\n")
    write(tmp_path, "prompts/b.md", "---\noutput: schemas/list.json\n---\nhi\n")
    problems = problems_of(tmp_path)
    assert "not valid JSON" in problems[0]
    assert "must be a JSON object" in problems[1]


@pytest.mark.parametrize(("ref", "match"), [
    ("python:buttress.types:NoSuchModel", "has no 'NoSuchModel'"),
    ("python:no_such_module_for_lint:Model", "cannot import"),
    ("python:buttress.types:Role", "not a pydantic model"),
])
def test_dangling_python_reference(tmp_path: Path, ref: str, match: str) -> None:
    write(tmp_path, "prompts/p.md", f"---\noutput: '{ref}'\n---\nhi\n")
    (problem,) = problems_of(tmp_path)
    assert f"p.md:2: error: output '{ref}'" in problem
    assert match in problem


def test_lock_problems_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "prompts/p.md", "hi\n")
    write(tmp_path, "prompts/prompts.lock",
          json.dumps({"p": {"production": "0123456789ab"}, "gone": {"staging": "abcdef"}}))
    problems = lint(PromptStore(tmp_path / "prompts"), tmp_path)
    assert [(p.severity, "prompts.lock" in p.source) for p in problems] == [
        ("error", True), ("warning", True)]
    assert "neither the current file" in problems[0].message


def test_resolve_output_returns_schema_or_model(tmp_path: Path) -> None:
    write(tmp_path, "schemas/s.json", json.dumps({"type": "object"}))
    assert resolve_output("schemas/s.json", tmp_path) == {"type": "object"}
    model = resolve_output("python:buttress.types:Message", tmp_path)
    assert model is Message
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    with pytest.raises(ConfigError, match="relative to the project"):
        resolve_output(str(tmp_path / "schemas/s.json"), tmp_path)
