"""A gateway over FakeProvider-backed config, driven in-process through httpx's ASGI transport.

The provider named ``mock`` is of type ``openai`` in config (so calls are priced with real OpenAI
prices and budgets bite) but is served by a ``FakeProvider``, or by ``upstream`` when given (a
real adapter against a real socket: ``test_upstream.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai

from buttress.client import AsyncClient, ledger_spend
from buttress.config import parse_config
from buttress.costs.hook import CallPricing
from buttress.gateway.app import Gateway, GatewayApp
from buttress.gateway.key_budgets import KeyBudgets
from buttress.gateway.keys import KeyRing, KeyStore, open_key_store
from buttress.gateway.limits import RateLimiter
from buttress.ledger.writer import LedgerWriter
from buttress.providers.base import Provider
from buttress.testing.clock import ManualClock
from buttress.testing.fake import FakeProvider

CONFIG = """
[providers.mock]
type = "openai"
base_url = "http://upstream.invalid/v1"

[providers.backup]
type = "openai"
base_url = "http://upstream.invalid/v1"

[models.gpt]
provider = "mock"
model = "gpt-4o-mini-2024-07-18"

[models.backup]
provider = "backup"
model = "gpt-4o-mini-2024-07-18"

[features.greet]
prompt = "greet"
models = ["gpt", "backup"]

[ledger]
url = "sqlite:///ledger.db"
flush_interval_s = 0.01
"""

PROMPT = """---
description: Greets
params: {temperature: 0}
---
[system]
You greet people.
"""


def write_project(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "prompts" / "greet.md").write_text(PROMPT)
    path = root / "buttress.toml"
    path.write_text(CONFIG)
    return path


class Harness:
    """A gateway, its fake providers, key store and an SDK client bound to it."""

    def __init__(self, root: Path, *, mock: FakeProvider | None = None,
                 backup: FakeProvider | None = None, require_keys: bool = False,
                 upstream: Provider | None = None) -> None:
        self.root = root
        path = write_project(root)
        self.config = parse_config(path.read_text())
        self.clock = ManualClock()
        self.mock = mock or FakeProvider(name="mock")
        self.backup = backup or FakeProvider(name="backup")
        self.store: KeyStore = open_key_store("sqlite:///ledger.db", base_dir=root)
        from buttress.ledger.open import open_store

        self.ledger = LedgerWriter(open_store("sqlite:///ledger.db", base_dir=root),
                                   flush_interval_s=0.01)
        pricing = CallPricing({n: p.type for n, p in self.config.providers.items()})
        self.budgets = KeyBudgets(pricing.max_cost, spend_source=ledger_spend(self.ledger.store))
        self.client = AsyncClient(self.config, project_dir=root,
                                  # ``upstream``: a real provider in the fake's place
                                  providers={"mock": upstream or self.mock,
                                             "backup": self.backup},
                                  hooks=[self.budgets], ledger=self.ledger)
        self.gateway = Gateway(self.client, keys=KeyRing(self.store.list()), key_store=self.store,
                               key_budgets=self.budgets, limiter=RateLimiter(self.clock),
                               require_keys=require_keys, clock=self.clock)
        self.app = GatewayApp(self.gateway)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                      base_url="http://gateway.test")

    def sdk(self, api_key: str = "sk-none", **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=api_key, base_url="http://gateway.test/v1",
                                  http_client=self.http, max_retries=0, **kwargs)

    async def add_key(self, name: str = "app", **kwargs: Any) -> tuple[str, str]:
        key, secret = self.store.create(name, **kwargs)
        await self.gateway.reload_keys(force=True)
        return key.key_id, secret

    def records(self) -> list[Any]:
        self.ledger.flush()
        return self.ledger.store.query_calls()

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.client.aclose()
        self.ledger.store.close()
        self.store.close()


