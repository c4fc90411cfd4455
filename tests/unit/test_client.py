"""The clients: public surface, sync twin, feature calls, config errors, import hygiene."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from buttress.client import AsyncClient, Client
from buttress.config import is_floating, parse_config
from buttress.errors import ConfigError, UsageError
from buttress.types import CallRequest, Message

CONFIG = """
[providers.flaky]
type = "fake"
chaos = { seed = 3, error_rate = 0.5, kinds = { server_error = 1.0 } }

[providers.steady]
type = "fake"

[models.primary]
provider = "flaky"
model = "fake-large"

[models.backup]
provider = "steady"
model = "fake-small"

[features.greet]
prompt = "greet"
models = ["primary", "backup"]
policy = { max_retries = 0 }
params = { temperature = 0.3 }
"""

PROMPT = """---
description: Say hello
params: {max_tokens: 20, temperature: 0.9}
---
[system]
You greet people.
[user]
Hello, I am {{ name }}.
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "buttress.toml").write_text(CONFIG)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.md").write_text(PROMPT)
    return tmp_path


def test_sync_client_mirrors_the_async_client() -> None:
    public = [n for n, v in vars(AsyncClient).items()
              if not n.startswith("_") and callable(v) and n not in ("aclose", "from_config")]
    assert {"call", "stream", "complete", "stream_complete"} <= set(public)
    for name in public:
        async_sig = inspect.signature(getattr(AsyncClient, name))
        sync_sig = inspect.signature(getattr(Client, name))
        assert list(async_sig.parameters.values()) == list(sync_sig.parameters.values()), name
    assert inspect.signature(Client.__init__).parameters == \
        inspect.signature(AsyncClient.__init__).parameters


async def test_feature_call_renders_the_prompt_and_merges_params(project: Path) -> None:
    async with AsyncClient.from_config(project / "buttress.toml", env={}) as client:
        result = await client.call("greet", {"name": "Ada"}, max_tokens=5)
    assert result.feature == "greet"
    assert result.prompt_name == "greet"
    assert len(result.prompt_version or "") == 12
    assert result.text == "echo: Hello, I am Ada."


async def test_feature_params_precedence(project: Path) -> None:
    from buttress.testing import FakeProvider

    fake = FakeProvider(name="steady")
    config = parse_config(CONFIG.replace('models = ["primary", "backup"]',
                                         'models = ["backup"]'))
    async with AsyncClient(config, project_dir=project, providers={"steady": fake}) as client:
        await client.call("greet", {"name": "Ada"}, max_tokens=5)
    [request] = fake.requests
    assert request.max_tokens == 5  # call beats prompt
    assert request.temperature == 0.3  # feature beats prompt
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.model == "fake-small"


def test_sync_client_calls_and_streams(project: Path) -> None:
    with Client.from_config(project / "buttress.toml", env={}) as client:
        result = client.call("greet", {"name": "Bo"})
        assert "Bo" in result.text
        with client.stream_complete("backup", [Message.user("stream me")]) as stream:
            text = "".join(chunk.text for chunk in stream)
        assert text == "echo: stream me"
        assert stream.result is not None
        assert stream.result.model_served == "fake-small"


async def test_unknown_feature_and_model_are_usage_errors(project: Path) -> None:
    async with AsyncClient.from_config(project / "buttress.toml", env={}) as client:
        with pytest.raises(UsageError, match="unknown feature 'nope'"):
            await client.call("nope")
        with pytest.raises(UsageError, match="unknown model"):
            await client.complete("ghost", [Message.user("x")])


async def test_a_checked_request_prepares_the_same_call_as_a_model_call(project: Path) -> None:
    async with AsyncClient.from_config(project / "buttress.toml", env={}) as client:
        messages = (Message.user("hi"),)
        checked = client.prepare_request(
            "primary", CallRequest(model="", messages=messages, temperature=0.5, max_tokens=9),
            tags=("a",), user_id="u", session_id="s", key_id="k", cache="bypass")
        plain = client.prepare_model("primary", messages, tags=("a",), user_id="u",
                                     session_id="s", key_id="k", temperature=0.5,
                                     max_tokens=9)
        ids = {"call_id": "x", "trace_id": "x"}
        assert checked.model_copy(update=ids) == plain.model_copy(update=ids)
        with pytest.raises(UsageError, match="unknown model"):
            client.prepare_request("ghost", CallRequest(model="", messages=messages))


def test_config_errors_name_file_key_and_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[providers.a]\ntype = "openai"\nmax_concurrency = 0\n', "conf.toml")
    assert str(info.value).startswith("conf.toml: providers.a.max_concurrency: ")
    with pytest.raises(ConfigError, match=r"conf.toml:2: not valid TOML"):
        parse_config('[providers.a]\ntype = \n', "conf.toml")
    with pytest.raises(ConfigError, match=r"models.m.provider: unknown provider 'x'"):
        parse_config('[models.m]\nprovider = "x"\nmodel = "y"\n', "conf.toml")
    with pytest.raises(ConfigError, match=r"features.f.policy.deadline_s"):
        parse_config(CONFIG + '\n[features.f]\nmodels = ["backup"]\n'
                     'policy = { deadline_s = -1 }\n', "conf.toml")
    with pytest.raises(ConfigError, match=r"providers.a.type: "):
        parse_config('[providers.a]\ntype = "nonsense"\n', "conf.toml")


def test_secrets_are_never_in_config() -> None:
    with pytest.raises(ConfigError, match="api_key: unknown key"):
        parse_config('[providers.a]\ntype = "openai"\napi_key = "sk-live"\n')


def test_floating_aliases_are_flagged() -> None:
    assert is_floating("gpt-4o")
    assert is_floating("claude-3-5-sonnet-latest")
    assert not is_floating("gpt-4o-2024-08-06")
    assert not is_floating("claude-3-5-sonnet-20241022")
    assert not is_floating("gemini-1.5-pro-002")
    config = parse_config('[providers.o]\ntype = "openai"\napi_key_env = "K"\n'
                          '[models.a]\nprovider = "o"\nmodel = "gpt-4o"\n'
                          '[models.b]\nprovider = "o"\nmodel = "gpt-4o-2024-08-06"\n')
    [warning] = config.pinning_warnings()
    assert warning.startswith("models.a: 'gpt-4o' is a floating alias")


async def test_missing_key_fails_that_provider_and_falls_back() -> None:
    config = parse_config('[providers.o]\ntype = "openai"\napi_key_env = "NO_SUCH_KEY"\n'
                          '[providers.f]\ntype = "fake"\n'
                          '[models.a]\nprovider = "o"\nmodel = "gpt-4o-2024-08-06"\n'
                          '[models.b]\nprovider = "f"\nmodel = "x"\n'
                          '[features.t]\nmodels = ["a", "b"]\n')
    async with AsyncClient(config, env={}) as client:
        result = await client.call("t", messages=[Message.user("hi")])
    assert result.provider == "f"
    assert result.attempts[0].error == "o/gpt-4o-2024-08-06: environment variable NO_SUCH_KEY " \
        "is not set"


def test_import_does_no_io_and_reads_no_environment() -> None:
    code = (
        "import os, sys, builtins\n"
        "opened = []\n"
        "real_open = builtins.open\n"
        "def spy(*a, **k):\n"
        "    opened.append(a[0]); return real_open(*a, **k)\n"
        "class Env(dict):\n"
        "    def __getitem__(self, k): raise SystemExit('read env ' + k)\n"
        "    def get(self, k, d=None): raise SystemExit('read env ' + k)\n"
        "builtins.open = spy\n"
        "import buttress, buttress.client, buttress.runtime\n"
        "import threading\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert 'llama_cpp' not in sys.modules\n"
        "print('opened', [p for p in opened if not str(p).endswith('.py')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "opened []"


def test_local_providers_differing_only_in_chaos_share_one_model() -> None:
    import httpx

    from buttress.providers.registry import build_providers
    from buttress.testing import ChaosProvider

    config = parse_config('[providers.local]\ntype = "local"\n'
                          '[providers.flaky]\ntype = "local"\nchaos = { error_rate = 0.5 }\n'
                          '[providers.other]\ntype = "local"\nn_ctx = 4096\n')
    built = build_providers(config.providers, {}, httpx.AsyncClient())
    flaky = built["flaky"]
    assert isinstance(flaky, ChaosProvider)
    assert flaky.name == "flaky"
    assert flaky.inner is built["local"]  # one engine, one loaded GGUF
    assert built["other"] is not built["local"]  # a different context size is another model


def test_local_logprobs_are_a_config_switch() -> None:
    import httpx

    from buttress.providers.llamacpp import LlamaCppProvider
    from buttress.providers.registry import build_providers

    config = parse_config('[providers.local]\ntype = "local"\nlogits_all = true\n')
    local = build_providers(config.providers, {}, httpx.AsyncClient())["local"]
    assert isinstance(local, LlamaCppProvider)
    assert local.logits_all
    with pytest.raises(ConfigError, match="logits_all applies only to type = 'local'"):
        parse_config('[providers.o]\ntype = "openai"\nlogits_all = true\n')


def test_load_prompts_caches_them_and_a_bad_one_stops_no_other(project: Path) -> None:
    (project / "prompts" / "broken.md").write_text("---\nnot: [valid\n---\nx\n")
    config = parse_config(CONFIG + '\n[features.bad]\nprompt = "broken"\nmodels = ["backup"]\n')
    client = AsyncClient(config, project_dir=project)
    client.load_prompts()  # logs the broken one, raises nothing
    assert ("greet", None) in client._rendered
    assert ("broken", None) not in client._rendered
