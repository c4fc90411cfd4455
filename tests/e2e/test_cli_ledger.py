"""``buttress logs | show | replay | cost | feedback`` over a ledger filled by real client calls."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buttress.cli.main import app
from buttress.client import AsyncClient
from buttress.errors import BadRequest, StreamInterrupted
from buttress.evals.sampling import case_from_call
from buttress.ids import new_id
from buttress.ledger import CallRecord
from buttress.runtime import CallStream
from buttress.types import Message, Usage

# not shaped like any known key, so only the client's literal env-key scrubbing can catch it
SECRET = "zq7-SECRETSECRETSECRET-9x"
EMAIL = "ann@example.com"
ENV = {"OPENAI_API_KEY": SECRET}

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1", **ENV})

PROMPT = """---
description: Greets people
params: {temperature: 0, max_tokens: 20}
---
[system]
Be kind.
[user]
Hello {{ name }}
"""

CONFIG = """
[policy]
max_retries = 1
backoff_base_s = 0
backoff_max_s = 0

[providers.fake]
type = "fake"
replies = [{ text = "first answer" }, { text = "second answer\\nwith two lines" }]

[providers.echo]
type = "fake"

[providers.broken]
type = "fake"
replies = [{ error = "bad_request" }]

[providers.flaky]
type = "fake"
replies = [{ text = "never seen" }]

[providers.flaky.chaos]
seed = 1
error_rate = 1.0
kinds = { server_error = 1.0 }

[providers.openai]
type = "openai"
api_key_env = "OPENAI_API_KEY"
base_url = "http://127.0.0.1:9/v1"

[models.main]
provider = "fake"
model = "fake-1"

[models.echo]
provider = "echo"
model = "echo-1"

[models.broken]
provider = "broken"
model = "broken-1"

[models.flaky]
provider = "flaky"
model = "flaky-1"

[models.gpt]
provider = "openai"
model = "gpt-4o-2024-08-06"

[features.greet]
prompt = "greet"
models = ["main"]

[features.fails]
models = ["broken"]

[features.resilient]
prompt = "greet"
models = ["flaky", "echo"]

[features.chat]
models = ["echo"]
"""


def price(provider: str, model: str, usage: Usage) -> float:
    return usage.prompt_tokens * 1e-6 + usage.completion_tokens * 2e-6


@dataclass
class Ledger:
    root: Path
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.root / ".buttress" / "ledger.db"

    def records(self) -> list[CallRecord]:
        code, out, _ = invoke(self.root, "logs", "--json", "--limit", "1000")
        assert code == 0
        return [CallRecord.model_validate_json(line) for line in out.splitlines()]


async def _record_calls(root: Path) -> dict[str, str]:
    made: list[str] = []

    def ids() -> str:
        made.append(new_id())
        return made[-1]

    names: dict[str, str] = {}
    client = AsyncClient.from_config(root / "buttress.toml", env=ENV, price=price, ids=ids)
    async with client:
        names["ann"] = (await client.call("greet", {"name": "Ann"}, tags=["t1"])).call_id
        names["bob"] = (await client.call("greet", {"name": "Bob"})).call_id
        with pytest.raises(BadRequest):
            await client.call("fails", messages=[Message.user("hi")])
        names["fails"] = made[-1]
        names["resilient"] = (await client.call("resilient", {"name": "Cy"})).call_id
        names["secret"] = (await client.call("chat", messages=[
            Message.user(f"my key is {SECRET}, mail me at {EMAIL}")])).call_id
    return names


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.md").write_text(PROMPT)
    (tmp_path / "buttress.toml").write_text(CONFIG)
    # the client closes (flushing its ledger) before any command runs
    return Ledger(tmp_path, asyncio.run(_record_calls(tmp_path)))


def invoke(root: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-C", str(root), *args])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, re.sub("[│┃]", " ", result.stdout), result.stderr


def rows(out: str, ledger: Ledger) -> list[str]:
    """The call ids of a logs table's rows, in order, as full ids."""
    tails = {cid[-12:]: cid for cid in ledger.ids.values()}
    return [tails[word] for line in out.splitlines() for word in line.split() if word in tails]


# -- logs ----------------------------------------------------------------------------------------


def test_logs_lists_every_call_newest_first(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "logs")
    assert code == 0
    ids = ledger.ids
    assert rows(out, ledger) == [ids["secret"], ids["resilient"], ids["fails"], ids["bob"],
                                 ids["ann"]]
    lines = {name: next(line for line in out.splitlines() if cid[-12:] in line)
             for name, cid in ids.items()}
    assert re.search(r"greet\s+greet@[0-9a-f]{12}\s+fake/fake-1\s+ok", lines["ann"])
    assert "error: bad_request" in lines["fails"]
    assert "echo/echo-1" in lines["resilient"]
    assert re.search(r"\d+/\d+\s+\$0\.\d{4}", lines["ann"])


def test_logs_filters(ledger: Ledger) -> None:
    ids = ledger.ids

    def listed(*args: str) -> list[str]:
        code, out, err = invoke(ledger.root, "logs", *args)
        assert code == 0, err
        return rows(out, ledger)

    assert listed("--feature", "greet") == [ids["bob"], ids["ann"]]
    assert listed("--status", "error") == [ids["fails"]]
    assert listed("--status", "ok", "--feature", "fails") == []
    assert listed("--model", "echo-1") == [ids["secret"], ids["resilient"]]
    assert listed("--provider", "broken") == [ids["fails"]]
    assert listed("--tag", "t1") == [ids["ann"]]
    assert listed("--limit", "2") == [ids["secret"], ids["resilient"]]
    assert len(listed("--since", "1h")) == 5
    assert listed("--since", "2999-01-01") == []
    assert listed("--until", "2000-01-01T00:00:00Z") == []
    version = ledger.records()[-1].prompt_version
    assert version
    assert listed("--prompt-version", version) == [ids["resilient"], ids["bob"], ids["ann"]]
    _, out, _ = invoke(ledger.root, "logs", "--feature", "nope")
    assert "no calls match" in out


def test_logs_json_lines_are_call_records(ledger: Ledger) -> None:
    records = ledger.records()
    assert [r.call_id for r in records] == [ledger.ids[n] for n in
                                            ("secret", "resilient", "fails", "bob", "ann")]
    by_id = {r.call_id: r for r in records}
    assert by_id[ledger.ids["fails"]].status == "error"
    assert by_id[ledger.ids["resilient"]].attempts == 3
    assert by_id[ledger.ids["ann"]].output_text == "first answer"


@pytest.mark.parametrize("args", [("--since", "yesterday"), ("--until", "5 parsecs"),
                                  ("--since", "7x"), ("--status", "fine")])
def test_logs_bad_option_exits_2(ledger: Ledger, args: tuple[str, str]) -> None:
    code, _, err = invoke(ledger.root, "logs", *args)
    assert code == 2
    assert args[0] in err
    assert len(err.strip().splitlines()) == 1


def test_logs_without_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "buttress.toml").write_text(CONFIG)
    code, _, err = invoke(tmp_path, "logs")
    assert code == 2
    assert "no ledger at" in err
    assert not (tmp_path / ".buttress" / "ledger.db").exists()  # reading created nothing


# -- show ----------------------------------------------------------------------------------------


def test_show_lists_the_call_and_every_attempt(ledger: Ledger) -> None:
    call_id = ledger.ids["resilient"]
    code, out, _ = invoke(ledger.root, "show", call_id[-12:])  # the id logs prints
    assert code == 0
    assert call_id in out
    assert re.search(r"feature\s+resilient", out)
    assert re.search(r"prompt\s+greet@[0-9a-f]{12}", out)
    assert re.search(r"environment\s+development", out)
    assert re.search(r"served by\s+echo/echo-1", out)
    assert re.search(r"tokens\s+\d+ prompt / \d+ completion", out)
    assert re.search(r"cache hit\s+no", out)
    assert '"max_tokens": 20' in out
    assert "[system]" in out
    assert "Be kind." in out
    assert "[user]" in out
    assert out.count("Hello Cy") == 2  # the request and the echoed output
    attempt = r"\s+\d+ ms\s+-\s+\d+/\d+\s+"  # latency, ttft, tokens
    assert re.search(rf"1\s+primary\s+flaky/flaky-1\s+error{attempt}-\s+unavailable: chaos", out)
    assert re.search(rf"2\s+retry\s+flaky/flaky-1\s+error{attempt}-\s+unavailable", out)
    assert re.search(rf"3\s+fallback\s+echo/echo-1\s+ok{attempt}\$0\.\d{{6}}", out)


def test_show_a_failed_call(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "show", ledger.ids["fails"])
    assert code == 0
    assert re.search(r"status\s+error: bad_request", out)
    assert "fake: bad request" in out
    assert re.search(r"1\s+primary\s+broken/broken-1\s+error\s+.*bad_request: fake: bad", out)
    assert "(none)" in out  # no output


def test_show_json(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "show", ledger.ids["resilient"], "--json")
    assert code == 0
    data = json.loads(out)
    assert data["call"]["call_id"] == ledger.ids["resilient"]
    assert [a["kind"] for a in data["attempts"]] == ["primary", "retry", "fallback"]
    assert [a["status"] for a in data["attempts"]] == ["error", "error", "ok"]
    assert data["feedback"] == []


def test_show_unknown_id_exits_1(ledger: Ledger) -> None:
    code, _, err = invoke(ledger.root, "show", "ffffffffffff")
    assert code == 1
    assert "no call with id 'ffffffffffff'" in err


def test_show_ambiguous_prefix_lists_the_candidates(ledger: Ledger) -> None:
    # ids start with a nanosecond timestamp: calls made together share their first digits
    prefix = ledger.ids["ann"]
    while not all(cid.startswith(prefix) for cid in ledger.ids.values()):
        prefix = prefix[:-1]
    assert len(prefix) >= 4
    code, _, err = invoke(ledger.root, "show", prefix)
    assert code == 2
    assert "ambiguous" in err
    assert ledger.ids["ann"] in err
    assert ledger.ids["bob"] in err


# -- replay --------------------------------------------------------------------------------------


def test_replay_diffs_the_outputs_and_records_a_child_call(ledger: Ledger) -> None:
    bob = ledger.ids["bob"]
    # a fresh client starts the fake's script again, so the replay gets its first reply
    code, out, err = invoke(ledger.root, "replay", bob)
    assert code == 0, err
    assert "-second answer" in out
    assert "-with two lines" in out
    assert "+first answer" in out
    assert "on main" in out
    replays = [r for r in ledger.records() if "replay" in r.tags]
    assert len(replays) == 1
    child = replays[0]
    assert child.parent_id == bob
    assert child.feature == "greet"
    assert child.output_text == "first answer"
    original = next(r for r in ledger.records() if r.call_id == bob)
    assert child.prompt_version == original.prompt_version
    assert child.request["messages"] == original.request["messages"]
    assert child.request["max_tokens"] == 20
    assert child.call_id in out


def test_replay_on_another_model(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "replay", ledger.ids["ann"], "--model", "echo")
    assert code == 0
    assert "-first answer" in out
    assert "+echo: Hello Ann" in out  # the echo model answers with the stored user message
    child = next(r for r in ledger.records() if "replay" in r.tags)
    assert child.provider == "echo"


def test_replay_rerenders_the_prompt_with_new_variables(ledger: Ledger) -> None:
    code, out, err = invoke(ledger.root, "replay", ledger.ids["resilient"], "--var", "name=Zed")
    assert code == 0, err
    assert "-echo: Hello Cy" in out
    assert "+echo: Hello Zed" in out
    child = next(r for r in ledger.records() if "replay" in r.tags)
    assert child.attempts == 3  # the same chain, chaos included


def test_replay_at_a_prompt_version_needs_the_variables(ledger: Ledger) -> None:
    version = next(r for r in ledger.records() if r.call_id == ledger.ids["ann"]).prompt_version
    assert version
    code, _, err = invoke(ledger.root, "replay", ledger.ids["ann"], "--prompt-version", version)
    assert code == 2
    assert "needs name" in err
    assert "--var" in err
    code, _, err = invoke(ledger.root, "replay", ledger.ids["ann"], "--prompt-version",
                          "deadbeef", "--var", "name=A")
    assert code == 2
    assert "has no version 'deadbeef'" in err
    code, out, _ = invoke(ledger.root, "replay", ledger.ids["ann"], "--prompt-version", version,
                          "--var", "name=A", "--model", "echo")
    assert code == 0
    assert "+echo: Hello A" in out


def test_replay_of_a_call_without_a_prompt_cannot_rerender(ledger: Ledger) -> None:
    code, _, err = invoke(ledger.root, "replay", ledger.ids["fails"], "--var", "x=1")
    assert code == 2
    assert "was not made from a prompt" in err


def test_replay_that_fails_exits_1_and_is_recorded(ledger: Ledger) -> None:
    code, _, err = invoke(ledger.root, "replay", ledger.ids["fails"])
    assert code == 1
    assert "error: bad_request" in err
    child = next(r for r in ledger.records() if "replay" in r.tags)
    assert child.status == "error"
    assert child.parent_id == ledger.ids["fails"]
    assert child.call_id in err


def test_replay_says_when_the_stored_request_was_redacted(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "replay", ledger.ids["secret"])
    assert code == 0
    assert "note: the stored request was redacted" in out
    assert "identical" in out  # the echo repeats the (redacted) message it was sent


def test_replay_unknown_model_is_a_usage_error(ledger: Ledger) -> None:
    code, _, err = invoke(ledger.root, "replay", ledger.ids["ann"], "--model", "nope")
    assert code == 2
    assert "unknown model 'nope'" in err


# -- cost ----------------------------------------------------------------------------------------


def test_cost_totals_match_the_records(ledger: Ledger) -> None:
    records = ledger.records()
    code, out, _ = invoke(ledger.root, "cost", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    total = lines[-1]
    assert total["by"] == "total"
    assert total["calls"] == len(records) == 5
    assert total["errors"] == 1
    assert total["prompt_tokens"] == sum(r.prompt_tokens for r in records)
    assert total["completion_tokens"] == sum(r.completion_tokens for r in records)
    assert total["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in records))
    assert total["cost_usd"] > 0
    groups = {line["key"]: line for line in lines[:-1]}
    assert set(groups) == {"greet", "fails", "resilient", "chat"}
    assert groups["greet"]["calls"] == 2
    greet_cost = sum(r.cost_usd or 0 for r in records if r.feature == "greet")
    assert groups["greet"]["cost_usd"] == pytest.approx(greet_cost)


def test_cost_table_by_model_has_a_total(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "cost", "--by", "model")
    assert code == 0
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    records = ledger.records()
    tokens_in = sum(r.prompt_tokens for r in records)
    assert re.search(rf"total\s+5\s+1\s+{tokens_in}\s+", total)
    assert re.search(r"echo-1\s+2\s+0", out)


def test_cost_by_tag_and_window(ledger: Ledger) -> None:
    code, out, _ = invoke(ledger.root, "cost", "--by", "tag")
    assert code == 0
    assert re.search(r"t1\s+1\s+0", out)
    code, out, _ = invoke(ledger.root, "cost", "--since", "2999-01-01")
    assert "no calls in this window" in out
    code, out, _ = invoke(ledger.root, "cost", "--since", "all", "--until", "2999-01-01")
    assert re.search(r"total\s+5\s+1", out)
    code, _, err = invoke(ledger.root, "cost", "--by", "colour")
    assert code == 2
    assert "--by 'colour'" in err
    code, _, err = invoke(ledger.root, "cost", "--since", "soon")
    assert code == 2


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_is_recorded_and_shown(ledger: Ledger) -> None:
    ann = ledger.ids["ann"]
    code, out, _ = invoke(ledger.root, "feedback", ann[-12:], "accepted")
    assert code == 0
    assert f"recorded accepted for call {ann}" in out
    code, _, _ = invoke(ledger.root, "feedback", ann, "score", "--value", "0.75",
                        "--comment", f"good, says {EMAIL}")
    assert code == 0
    code, out, _ = invoke(ledger.root, "show", ann, "--json")
    feedback = json.loads(out)["feedback"]
    assert [(f["signal"], f["value"]) for f in feedback] == [("accepted", None), ("score", 0.75)]
    assert EMAIL not in feedback[1]["comment"]  # redacted like call content
    code, out, _ = invoke(ledger.root, "show", ann)
    assert re.search(r"score\s+0\.75", out)


def test_feedback_errors(ledger: Ledger) -> None:
    ann = ledger.ids["ann"]
    code, _, err = invoke(ledger.root, "feedback", ann, "loved")
    assert code == 2
    assert "unknown feedback signal 'loved'" in err
    code, _, err = invoke(ledger.root, "feedback", ann, "score")
    assert code == 2
    assert "numeric value" in err
    code, _, err = invoke(ledger.root, "feedback", "ffffffffffff", "accepted")
    assert code == 1
    assert "no call with id" in err


# -- secrets -------------------------------------------------------------------------------------


def test_env_keys_never_reach_cli_output_or_the_ledger_files(ledger: Ledger) -> None:
    secret_call = ledger.ids["secret"]
    outputs = []
    for args in (("logs",), ("logs", "--json"), ("show", secret_call),
                 ("show", secret_call, "--json"), ("replay", secret_call),
                 ("feedback", secret_call, "rejected", "--comment", f"leaked {SECRET}"),
                 ("cost",), ("cost", "--json")):
        code, out, err = invoke(ledger.root, *args)
        assert code == 0, (args, err)
        outputs.append(out + err)
    text = "\n".join(outputs)
    assert SECRET not in text
    assert EMAIL not in text
    assert "[REDACTED:" in text  # the message is there, scrubbed
    stored = b"".join(p.read_bytes() for p in (ledger.root / ".buttress").rglob("*")
                      if p.is_file())
    assert SECRET.encode() not in stored
    with closing(sqlite3.connect(ledger.db)) as db:
        # the replay of the scrubbed call and the feedback were recorded too
        assert db.execute("select count(*) from calls").fetchone() == (6,)
        assert db.execute("select count(*) from feedback").fetchone() == (1,)


def test_a_stream_cut_mid_way_shows_what_it_delivered_and_samples_no_expected_output(
        tmp_path: Path) -> None:
    (tmp_path / "buttress.toml").write_text("""
[providers.cut]
type = "fake"
replies = [{ text = "Hello there, friend" }]

[providers.cut.chaos]
seed = 1
disconnect_rate = 1.0

[models.cut]
provider = "cut"
model = "cut-1"
""")

    async def stream() -> str:
        async with AsyncClient.from_config(tmp_path / "buttress.toml", env=ENV) as client:
            chunks: CallStream = client.stream_complete("cut", [Message.user("hi")])
            with pytest.raises(StreamInterrupted):
                await _read_all(chunks)
        return chunks.call.call_id

    call_id = asyncio.run(stream())
    code, out, _ = invoke(tmp_path, "show", call_id)
    assert code == 0
    assert re.search(r"status\s+error: stream_interrupted", out)
    assert "cut/cut-1: chaos: stream disconnected" in out  # which model failed, unredacted
    assert "(partial: delivered before the call ended)" in out
    assert "Hello th" in out  # the first chunk, which reached the caller
    [record] = Ledger(tmp_path).records()
    assert record.output_text == "Hello th"
    case = case_from_call(record, [])
    assert case["expected"] is None  # a partial text is no answer to expect
    assert "error" in case["tags"]


async def _read_all(stream: CallStream) -> None:
    async with stream:
        async for _chunk in stream:
            pass
