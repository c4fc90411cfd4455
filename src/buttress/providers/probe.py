"""Is a configured provider reachable? A cheap check for ``buttress models``.

Local models: the GGUF file exists (it is not loaded). Fakes: always. HTTP providers: one GET to
the provider's model-listing endpoint with the configured key. Keys are sent, never shown: the
``detail`` of a ``Reachability`` holds no header or key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from buttress.config import DEFAULT_BASE_URLS
from buttress.errors import ConfigError

if TYPE_CHECKING:
    from buttress.config import ProviderConfig

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Reachability:
    ok: bool
    detail: str  # "ok", "key rejected (401)", "missing key: $VAR", "unreachable: ..."


def local_model_file(cfg: ProviderConfig, default_path: Callable[[], Path]) -> Reachability:
    """A local provider is reachable when its GGUF file exists."""
    try:
        path = Path(cfg.model_path) if cfg.model_path else default_path()
    except ConfigError as exc:
        return Reachability(False, f"missing: {exc.problem}")
    if not path.is_file():
        return Reachability(False, f"missing model file: {path}")
    return Reachability(True, "ok")


def listing_request(cfg: ProviderConfig, key: str | None) -> tuple[str, dict[str, str]]:
    """The URL and headers of the provider's model-listing endpoint."""
    base = (cfg.base_url or DEFAULT_BASE_URLS[cfg.type]).rstrip("/")
    headers = dict(cfg.headers)
    if cfg.type == "anthropic":
        url = f"{base}/v1/models"
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif cfg.type == "gemini":
        url = f"{base}/v1beta/models"
        if key:
            headers["x-goog-api-key"] = key
    else:  # the OpenAI wire format: base_url already ends in /v1 (or its equivalent)
        url = f"{base}/models"
        if key:
            headers["Authorization"] = f"Bearer {key}"
    return url, headers


async def probe(cfg: ProviderConfig, env: Mapping[str, str], http: httpx.AsyncClient, *,
                timeout_s: float = 3.0,
                default_model_path: Callable[[], Path] | None = None) -> Reachability:
    """Check one provider. Never raises for an unreachable or misconfigured provider."""
    if cfg.type == "fake":
        return Reachability(True, "ok")
    if cfg.type == "local":
        if default_model_path is None:
            from buttress.providers.smollm2 import smollm2_path

            default_model_path = smollm2_path
        return local_model_file(cfg, default_model_path)
    key = None
    if cfg.api_key_env:
        key = env.get(cfg.api_key_env) or None
        if key is None:
            return Reachability(False, f"missing key: ${cfg.api_key_env}")
    url, headers = listing_request(cfg, key)
    try:
        response = await http.get(url, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        return Reachability(False, f"unreachable: no answer within {timeout_s:g}s")
    except httpx.HTTPError as exc:
        # the exception text names the URL at most, never a header
        return Reachability(False, f"unreachable: {type(exc).__name__}: {exc}")
    status = response.status_code
    if status in (401, 403):
        return Reachability(False, f"key rejected ({status})")
    if status >= 400:
        return Reachability(False, f"error: HTTP {status}")
    return Reachability(True, "ok")
