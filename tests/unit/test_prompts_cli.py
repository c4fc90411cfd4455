"""``buttress prompts`` through Typer's CliRunner on the sub-app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from buttress.cli.prompts_cmd import app
from buttress.prompts import content_version

runner = CliRunner()

V1 = "---\ndescription: Greets people\n---\n[system]\nBe kind.\n[user]\nHello {{ name }}\n"
V2 = "---\ndescription: Greets people\n---\n[system]\nBe warm.\n[user]\nHello {{ name }}\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
                    "-c", "commit.gpgsign=false", *args],
                   cwd=repo, capture_output=True, check=True)


def write(project: Path, name: str, text: str) -> None:
    path = project / "prompts" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--project", str(project)])
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_name_version_labels_description(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    write(tmp_path, "other", "---\ndescription: Another one\n---\nhi\n")
    runner.invoke(app, ["label", "greet", "production", "--project", str(tmp_path)])
    code, out, _ = invoke(tmp_path, "list")
    assert code == 0
    greet_row = next(line for line in out.splitlines() if "greet" in line)
    assert content_version(V1.encode()) in greet_row
    assert "production" in greet_row
    assert "Greets people" in greet_row
    assert "Another one" in out


def test_list_marks_invalid_prompts_and_fails(tmp_path: Path) -> None:
    write(tmp_path, "bad", "---\nnope: 1\n---\nhi\n")
    code, out, _ = invoke(tmp_path, "list")
    assert code == 1
    assert "invalid" in out


def test_show_prints_the_file_verbatim(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, out, _ = invoke(tmp_path, "show", "greet")
    assert code == 0
    assert content_version(V1.encode()) in out
    assert V1 in out  # role markers survive: no Rich markup is applied to prompt text


def test_show_render_with_variables(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, out, _ = invoke(tmp_path, "show", "greet", "--render", "--var", "name=Ada")
    assert code == 0
    assert "[system]\nBe kind.\n[user]\nHello Ada" in out


def test_show_render_missing_variable_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, _, err = invoke(tmp_path, "show", "greet", "--render")
    assert code == 1
    assert "greet.md:7" in err
    assert "name" in err


def test_show_unknown_prompt_fails_cleanly(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path, "show", "nope")
    assert code == 1
    assert "no prompt named 'nope'" in err


def test_show_and_diff_old_versions_from_git(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path, "greet", V1)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "v1")
    write(tmp_path, "greet", V2)
    git(tmp_path, "commit", "-q", "-am", "v2")
    old = content_version(V1.encode())

    code, out, _ = invoke(tmp_path, "show", f"greet@{old}")
    assert code == 0
    assert "Be kind." in out

    code, out, _ = invoke(tmp_path, "diff", f"greet@{old[:7]}", "greet")
    assert code == 0
    lines = out.splitlines()
    assert f"--- greet@{old}" in lines
    assert f"+++ greet@{content_version(V2.encode())}" in lines
    assert "-Be kind." in lines
    assert "+Be warm." in lines


def test_diff_two_names_and_identical(tmp_path: Path) -> None:
    write(tmp_path, "a", V1)
    write(tmp_path, "b", V1)
    code, out, _ = invoke(tmp_path, "diff", "a", "b")
    assert code == 0
    assert "identical" in out


def test_lint_clean_and_with_problems(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, out, _ = invoke(tmp_path, "lint")
    assert code == 0
    assert "0 error(s)" in out

    write(tmp_path, "broken", "---\nvariables: [a]\noutput: schemas/x.json\n---\n{{ b }}\n")
    code, out, _ = invoke(tmp_path, "lint")
    assert code == 1
    assert f"{tmp_path}/prompts/broken.md:5: error: variable 'b' is used" in out
    assert f"{tmp_path}/prompts/broken.md:3: error: output schema" in out


def test_lint_imports_python_references_from_the_project(tmp_path: Path) -> None:
    (tmp_path / "lintproj_models_x7.py").write_text(
        "from pydantic import BaseModel\nclass Triage(BaseModel):\n    label: str\n")
    write(tmp_path, "p", "---\noutput: 'python:lintproj_models_x7:Triage'\n---\nhi\n")
    try:
        code, out, _ = invoke(tmp_path, "lint")
    finally:
        sys.modules.pop("lintproj_models_x7", None)
    assert code == 0, out
    assert str(tmp_path) not in sys.path  # lint restores the import path


def test_label_writes_lock_and_missing_label_errors(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, out, _ = invoke(tmp_path, "label", "greet", "staging")
    assert code == 0
    version = content_version(V1.encode())
    assert version in out
    lock = json.loads((tmp_path / "prompts" / "prompts.lock").read_text())
    assert lock == {"greet": {"staging": version}}

    code, _, err = invoke(tmp_path, "show", "greet@production")
    assert code == 1
    assert "prompts.lock" in err
    assert "no 'production' label" in err


def test_label_unknown_version_fails(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    code, _, err = invoke(tmp_path, "label", "greet", "production", "--version", "abcdef12")
    assert code == 1
    assert "no version 'abcdef12'" in err
