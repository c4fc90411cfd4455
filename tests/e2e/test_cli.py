"""The ``buttress`` CLI end to end, through Typer's CliRunner, on fake providers."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buttress.cli.main import app
from buttress.config import load_config

# a wide terminal so Rich tables never fold the words the tests look for
runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})

PROMPT = """---
description: Greets people
params: {temperature: 0, max_tokens: 20}
---
[system]
Be kind.
[user]
Hello {{ name }}
"""

FAST_POLICY = """
[features.greet.policy]
max_retries = 1
backoff_base_s = 0
backoff_max_s = 0
"""


def project(tmp_path: Path, providers: str, models: str = '["main"]',
            extra: str = FAST_POLICY) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.md").write_text(PROMPT)
    (tmp_path / "buttress.toml").write_text(f"""
{providers}

[features.greet]
prompt = "greet"
models = {models}
{extra}
""")
    return tmp_path


HEALTHY = """
[providers.fake]
type = "fake"
replies = [{ text = "Hello there, friend!" }]

[models.main]
provider = "fake"
model = "fake-1"
"""


def invoke(project_dir: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr, with table borders blanked so rows read as words."""
    result = runner.invoke(app, ["-C", str(project_dir), *args])
    return result.exit_code, unbox(result.stdout), unbox(result.stderr)


def unbox(text: str) -> str:
    return re.sub("[│┃]", " ", text)


# -- init ----------------------------------------------------------------------------------------


def test_init_creates_the_example_project(tmp_path: Path) -> None:
    code, out, _ = invoke(tmp_path, "init")
    assert code == 0
    for name in ("buttress.toml", "prompts/triage.md", "schemas/triage.json", "evals/README.md"):
        assert (tmp_path / name).is_file(), name
        assert name in out
    assert "Next steps" in out
    config = load_config(tmp_path / "buttress.toml")
    assert config.features["triage"].models == ("primary-chaos", "local")
    assert config.providers["local_flaky"].chaos is not None
    assert config.providers["local_flaky"].chaos.error_rate > 0
    assert config.providers["local"].type == "local"
    assert config.providers["fake"].type == "fake"
    schema = json.loads((tmp_path / "schemas/triage.json").read_text())
    assert schema["required"] == ["category", "urgency", "refund_eligible"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["category"]["enum"] == [
        "billing", "technical", "account", "shipping", "other"]


def test_init_into_a_named_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0
    assert (tmp_path / "new" / "prompts" / "triage.md").is_file()


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "buttress.toml").write_text("# mine\n")
    code, _, err = invoke(tmp_path, "init")
    assert code == 2
    assert "refusing to overwrite" in err
    assert "buttress.toml" in err
    assert (tmp_path / "buttress.toml").read_text() == "# mine\n"
    assert not (tmp_path / "prompts").exists()  # nothing half-written

    code, _, _ = invoke(tmp_path, "init", "--force")
    assert code == 0
    assert "[features.triage]" in (tmp_path / "buttress.toml").read_text()


# -- config errors ---------------------------------------------------------------------------


def test_config_error_names_file_and_key_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "buttress.toml").write_text(
        '[providers.fake]\ntype = "fake"\ncolour = "blue"\n')
    code, out, err = invoke(tmp_path, "models")
    assert code == 2
    assert str(tmp_path / "buttress.toml") in err
    assert "providers.fake.colour" in err
    assert "unknown key" in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path, "call", "greet")
    assert code == 2
    assert "buttress.toml" in err
    assert "buttress init" in err


def test_unknown_feature_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = invoke(project(tmp_path, HEALTHY), "call", "nope")
    assert code == 2
    assert "unknown feature 'nope'" in err
    assert "greet" in err


# -- call ------------------------------------------------------------------------------------


def test_call_streams_the_answer_and_shows_the_attempt(tmp_path: Path) -> None:
    code, out, _ = invoke(project(tmp_path, HEALTHY), "call", "greet", "--var", "name=Ann")
    assert code == 0
    assert out.startswith("Hello there, friend!")
    assert re.search(r"1\s+primary\s+fake/fake-1\s+ok", out)
    assert "served by fake/fake-1" in out
    assert "latency" in out
    assert "TTFT" in out
    assert re.search(r"tokens \d+ prompt / \d+ completion", out)
    # the call went through the same client as library code, so the ledger has it
    with closing(sqlite3.connect(tmp_path / ".buttress" / "ledger.db")) as db:
        assert db.execute("select count(*) from calls").fetchone() == (1,)


def test_call_shows_a_retry(tmp_path: Path) -> None:
    providers = """
[providers.fake]
type = "fake"
replies = [{ error = "server_error" }, { text = "second time lucky" }]

[models.main]
provider = "fake"
model = "fake-1"
"""
    code, out, _ = invoke(project(tmp_path, providers), "call", "greet", "--var", "name=Ann")
    assert code == 0
    assert "second time lucky" in out
    assert re.search(r"1\s+primary\s+fake/fake-1\s+error\s+unavailable", out)
    assert re.search(r"2\s+retry\s+fake/fake-1\s+ok", out)
    assert "2 attempt(s)" in out


def test_call_falls_back_from_a_chaos_wrapped_primary(tmp_path: Path) -> None:
    providers = """
[providers.flaky]
type = "fake"
replies = [{ text = "never seen" }]

[providers.flaky.chaos]
seed = 1
error_rate = 1.0
kinds = { server_error = 1.0 }

[providers.fake]
type = "fake"
replies = [{ text = "from the fallback" }]

[models.primary]
provider = "flaky"
model = "flaky-1"

[models.main]
provider = "fake"
model = "fake-1"
"""
    code, out, _ = invoke(project(tmp_path, providers, '["primary", "main"]'),
                          "call", "greet", "--var", "name=Ann")
    assert code == 0
    assert "from the fallback" in out
    assert "never seen" not in out
    assert re.search(r"primary\s+flaky/flaky-1\s+error\s+unavailable: chaos", out)
    assert re.search(r"retry\s+flaky/flaky-1\s+error", out)
    assert re.search(r"fallback\s+fake/fake-1\s+ok", out)
    assert "served by fake/fake-1" in out


def test_a_failed_call_exits_1_and_lists_each_attempt(tmp_path: Path) -> None:
    providers = """
[providers.fake]
type = "fake"
replies = [{ error = "server_error" }]

[models.main]
provider = "fake"
model = "fake-1"
"""
    code, out, err = invoke(project(tmp_path, providers), "call", "greet", "--var", "name=A")
    assert code == 1
    assert "error: all_attempts_failed" in err
    assert "attempt 1: unavailable: fake/fake-1: fake: server error" in err
    assert "attempt 2: unavailable" in err
    assert re.search(r"2\s+retry\s+fake/fake-1\s+error", err)
    assert "Traceback" not in out + err


def test_a_non_retryable_error_is_not_retried(tmp_path: Path) -> None:
    providers = """
[providers.fake]
type = "fake"
replies = [{ error = "bad_request" }]

[models.main]
provider = "fake"
model = "fake-1"
"""
    code, _, err = invoke(project(tmp_path, providers), "call", "greet", "--var", "name=A")
    assert code == 1
    assert "error: bad_request" in err
    assert "retry" not in err


def test_call_json(tmp_path: Path) -> None:
    code, out, _ = invoke(project(tmp_path, HEALTHY), "call", "greet", "-v", "name=A", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["text"] == "Hello there, friend!"
    assert data["provider"] == "fake"
    assert [a["kind"] for a in data["attempts"]] == ["primary"]
    assert data["usage"]["completion_tokens"] > 0


def test_call_json_failure(tmp_path: Path) -> None:
    providers = HEALTHY.replace('{ text = "Hello there, friend!" }', '{ error = "auth" }')
    code, out, _ = invoke(project(tmp_path, providers), "call", "greet", "-v", "name=A",
                          "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert data["error"]["kind"] == "all_attempts_failed"
    assert [a["error_kind"] for a in data["error"]["attempts"]] == ["auth"]


def test_var_from_file_reaches_the_prompt(tmp_path: Path) -> None:
    providers = """
[providers.echo]
type = "fake"

[models.main]
provider = "echo"
model = "echo-1"
"""
    root = project(tmp_path, providers)
    (tmp_path / "name.txt").write_text("Zebediah")
    result = runner.invoke(app, ["-C", str(root), "call", "greet", "--var",
                                 f"name=@{tmp_path / 'name.txt'}"])
    assert result.exit_code == 0
    assert "Hello Zebediah" in result.stdout  # the fake echoes the user message


def test_bad_var_is_a_usage_error(tmp_path: Path) -> None:
    root = project(tmp_path, HEALTHY)
    code, _, err = invoke(root, "call", "greet", "--var", "name")
    assert code == 2
    assert "NAME=VALUE" in err
    code, _, err = invoke(root, "call", "greet", "--var", f"name=@{tmp_path / 'missing.txt'}")
    assert code == 2
    assert "cannot read" in err


# -- models ----------------------------------------------------------------------------------


def test_models_table(tmp_path: Path) -> None:
    providers = f"""
[providers.fake]
type = "fake"

[providers.gguf]
type = "local"
model_path = "{tmp_path / 'missing.gguf'}"

[providers.hosted]
type = "openai"
api_key_env = "BUTTRESS_TEST_SURELY_UNSET_KEY"

[models.main]
provider = "fake"
model = "fake-1"

[models.small]
provider = "gguf"
model = "tiny"

[models.gpt]
provider = "hosted"
model = "gpt-4o"

[models.gpt-pinned]
provider = "hosted"
model = "gpt-4o-2024-08-06"
"""
    code, out, _ = invoke(project(tmp_path, providers), "models")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert re.search(r"fake\s+fake\s+fake-1\s+n/a\s+ok", rows["main"])
    assert "missing model file" in rows["small"]
    assert "missing.gguf" in rows["small"]
    assert "missing key: $BUTTRESS_TEST_SURELY_UNSET_KEY" in rows["gpt"]
    assert "no (floating)" in rows["gpt"]
    assert re.search(r"gpt-4o-2024-08-06\s+yes", rows["gpt-pinned"])
    assert "warning: models.gpt: 'gpt-4o' is a floating alias" in out


def test_models_no_check(tmp_path: Path) -> None:
    code, out, _ = invoke(project(tmp_path, HEALTHY), "models", "--no-check")
    assert code == 0
    assert "not checked" in out


# -- the real local model --------------------------------------------------------------------


@pytest.mark.local_model
def test_call_triage_on_the_embedded_model(tmp_path: Path) -> None:
    assert invoke(tmp_path, "init")[0] == 0
    code, out, err = invoke(tmp_path, "call", "triage", "--var",
                            "ticket=I was charged twice this month, please refund me.")
    assert code == 0, err
    answer = json.loads(out[: out.index("}") + 1])
    assert set(answer) == {"category", "urgency", "refund_eligible"}
    assert "attempts" in out
    assert re.search(r"1\s+primary\s+local_flaky/smollm2-135m-instruct", out)
    assert "served by local" in out


@pytest.mark.local_model
def test_demo_shows_retries_and_fallbacks_on_the_embedded_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--no-serve"])
    out = unbox(result.stdout)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "demo" / "buttress.toml").is_file()
    assert len(re.findall(r"^  primary: .* answered by local", out, re.MULTILINE)) == 8
    assert "retry: " in out
    assert "fallback: ok" in out
    assert re.search(r"calls 8 · succeeded 8 · attempts \d+ · retries [1-9]", out)
    assert re.search(r"latency p50 .* · p95 ", out)
    assert "faults injected on the primary" in out


def test_the_eval_group_is_listed_but_imported_only_when_named() -> None:
    # `buttress serve` starts within its budget partly because it never imports the eval
    # harness (nor PyYAML, which only prompt files with front matter need)
    probe = ("import sys, buttress.cli.main; "
             "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('buttress.')} "
             "& {'evals'}), 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["[]", "False"]
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    assert re.search(r"\beval\b", listing.output)
    group = runner.invoke(app, ["eval", "--help"])
    assert group.exit_code == 0
    for command in ("run", "list", "calibrate", "rightsize", "compare", "sample"):
        assert re.search(rf"\b{command}\b", group.output), command
    assert "--install-completion" not in group.output
