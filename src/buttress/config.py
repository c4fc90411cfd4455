"""``buttress.toml``: providers, model aliases, features and policies, typed and immutable.

Secrets never live in the file: a provider names the environment variable that holds its key
(``api_key_env``), and only the edge (CLI, server, ``Client.from_config``) reads it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from buttress.costs.budgets import Budget
from buttress.costs.runaway import RunawayPolicy
from buttress.errors import ConfigError
from buttress.runtime.confidence import ConfidenceSpec
from buttress.runtime.policy import Policy
from buttress.runtime.structured import ContractMode
from buttress.testing.chaos import ChaosSettings

ProviderType = Literal["openai", "anthropic", "gemini", "local", "fake"]
RedactMode = Literal["store", "redact", "hash", "drop"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FakeReplyConfig(Strict):
    text: str = ""
    delay_ms: float = 0
    error: Literal["rate_limit", "server_error", "timeout", "auth", "bad_request"] | None = None


class ProviderConfig(Strict):
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    headers: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int | None = Field(None, ge=1)
    stream_usage: bool = Field(True, description="ask for usage in streams (OpenAI format)")
    contract_support: Literal["native", "instruct"] | None = Field(
        None, description="how output contracts are asked for; default: what the adapter has")
    # local llama.cpp
    model_path: str | None = None
    n_ctx: int = Field(2048, ge=128)
    n_threads: int | None = Field(None, ge=1)
    logits_all: bool = Field(False, description="keep every position's logits, so the local "
                             "model can return logprobs (confidence); costs memory and speed")
    # fake
    replies: tuple[FakeReplyConfig, ...] = ()
    chaos: ChaosSettings | None = None

    @model_validator(mode="after")
    def _fields_fit_type(self) -> ProviderConfig:
        if self.type != "local" and self.model_path is not None:
            raise ValueError("model_path applies only to type = 'local'")
        if self.type != "local" and self.logits_all:
            raise ValueError("logits_all applies only to type = 'local'")
        if self.type != "fake" and self.replies:
            raise ValueError("replies applies only to type = 'fake'")
        if self.type in ("local", "fake") and self.api_key_env:
            raise ValueError(f"a {self.type} provider takes no api_key_env")
        return self


class ModelConfig(Strict):
    """An alias: a provider and the provider's own model name."""

    provider: str
    model: str
    expected_latency_s: float | None = Field(
        None, gt=0, description="what a cascade's latency budget expects of this model")


class SemanticCacheConfig(Strict):
    threshold: float = Field(0.92, gt=0, le=1, description="cosine similarity for a hit")


class FeatureCacheConfig(Strict):
    """A feature's cache: exact always, semantic when ``semantic`` is set."""

    ttl_s: float = Field(3600, gt=0)
    semantic: SemanticCacheConfig | None = None


class EscalateConfig(Strict):
    on_invalid: bool = True
    min_confidence: float | None = Field(None, ge=0, le=1)


class FeatureConfig(Strict):
    prompt: str | None = Field(None, description="name of a prompt in prompts/")
    models: tuple[str, ...] = Field(min_length=1, description="aliases in fallback order")
    policy: dict[str, Any] = Field(default_factory=dict, description="overrides of [policy]")
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    redact: RedactMode | None = Field(None, description="content policy in the ledger")
    cache: FeatureCacheConfig | None = Field(None, description="absent: never cached")
    output: str | None = Field(None, description="output contract (schemas/x.json or "
                               "python:module:Model); default: the prompt's output")
    max_repairs: int = Field(1, ge=0, description="repair retries fed the validation errors")
    output_mode: ContractMode = "auto"
    confidence: ConfidenceSpec | None = None
    escalate: EscalateConfig | None = Field(None, description="cascade: when a tier escalates")
    latency_budget_s: float | None = Field(
        None, gt=0, description="cascade: skip tiers that cannot fit in the time left")


class LedgerConfig(Strict):
    enabled: bool = True
    url: str = Field("sqlite:///.buttress/ledger.db",
                     description="sqlite:///PATH (relative to the project) or postgresql://...")
    redact: RedactMode = Field("redact", description="default content policy for features")
    max_queue: int = Field(10_000, ge=1)
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(
        0.2, gt=0, description="longest a record waits before its batch is written: longer "
        "means fewer, larger transactions (less CPU a record) and more lost on kill -9")
    on_full: Literal["block", "drop", "spill"] = "spill"
    spill_dir: str = ".buttress/spill"


class CacheConfig(Strict):
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    url: str | None = Field(None, description="sqlite:///PATH (relative to the project; "
                            "default .buttress/cache.db) or redis://HOST:PORT/DB")
    namespace: str = Field("buttress:", description="key prefix, so caches can share a server")
    max_entries: int = Field(100_000, ge=1, description="memory backend bound")


class AlertsConfig(Strict):
    webhook_url_env: str | None = Field(
        None, description="environment variable holding a webhook URL for budget alerts")


class Config(Strict):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    policy: Policy = Policy()
    ledger: LedgerConfig = LedgerConfig()
    budgets: tuple[Budget, ...] = ()
    alerts: AlertsConfig = AlertsConfig()
    cache: CacheConfig = CacheConfig()
    runaway: RunawayPolicy = RunawayPolicy()
    environment: Literal["development", "staging", "production"] = "development"

    @model_validator(mode="after")
    def _references(self) -> Config:
        for alias, model in self.models.items():
            if model.provider not in self.providers:
                raise _RefError(f"models.{alias}.provider",
                                f"unknown provider {model.provider!r}; defined: "
                                f"{_names(self.providers)}")
        for name, feature in self.features.items():
            for i, alias in enumerate(feature.models):
                if alias not in self.models:
                    raise _RefError(f"features.{name}.models[{i}]",
                                    f"unknown model alias {alias!r}; defined: "
                                    f"{_names(self.models)}")
            try:
                self.policy.merged(feature.policy)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise _RefError(f"features.{name}.policy.{_loc(err['loc'])}",
                                err["msg"]) from None
        return self

    def feature_policy(self, feature: str) -> Policy:
        return self.policy.merged(self.features[feature].policy)

    def pinning_warnings(self) -> list[str]:
        """Configured models that are floating aliases rather than dated snapshots."""
        out = []
        for alias, model in self.models.items():
            kind = self.providers[model.provider].type
            if kind in ("local", "fake"):
                continue
            if is_floating(model.model):
                out.append(f"models.{alias}: {model.model!r} is a floating alias; the provider "
                           "may change what it serves without notice. Pin a dated snapshot.")
        return out


class _RefError(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(problem)


_SNAPSHOT = re.compile(r"(\d{4}-?\d{2}-?\d{2}|-\d{3,4}$|@\d|-v\d+(\.\d+)*(:\d+)?$|:\d+$)")


def is_floating(model: str) -> bool:
    """True when ``model`` names a moving target (``gpt-4o``, ``claude-3-5-sonnet-latest``)."""
    if model.endswith(("latest", "-preview")):
        return True
    return _SNAPSHOT.search(model) is None


def _names(d: dict[str, Any]) -> str:
    return ", ".join(sorted(d)) or "none"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(text: str, source: str = "buttress.toml") -> Config:
    """Parse and validate config text; every problem names ``source``, the key and the issue."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no lineno attribute: the position is only in the message
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(found.group(1)) if found else getattr(exc, "lineno", None)
        message = str(exc).split(" (at line")[0]
        column = f" (column {found.group(2)})" if found else ""
        raise ConfigError(f"not valid TOML: {message}{column}", source=source,
                          line=line) from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            ctx = err.get("ctx") or {}
            cause = ctx.get("error")
            if isinstance(cause, _RefError):
                raise ConfigError(cause.problem, source=source, key=cause.key) from None
        err = errors[0]
        key = _loc(err["loc"])
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(problem + more, source=source, key=key or None) from None


def load_config(path: str | Path) -> Config:
    """Read and parse a ``buttress.toml`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found (run `buttress init` to create one)",
                          source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    return parse_config(text, source=str(path))
