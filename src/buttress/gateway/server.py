"""Running the gateway: build it from a project's config and serve it with uvicorn.

uvicorn runs with uvloop and httptools when installed, no access log and no per-request
logging. On SIGINT/SIGTERM it stops accepting connections, waits for in-flight requests
(``drain_s`` at most), then the app's lifespan closes the client, which flushes every queued
ledger record.

With no virtual keys the gateway is open (development), and only on a loopback address: binding
anything else without keys is refused, as is ``require_keys`` with no keys at all.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buttress.client import AsyncClient, ledger_spend
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.costs.hook import CallPricing
from buttress.errors import ConfigError, UsageError
from buttress.gateway.app import MAX_BODY_BYTES, Gateway, GatewayApp
from buttress.gateway.key_budgets import KeyBudgets
from buttress.gateway.keys import KeyRing, open_key_store
from buttress.runtime.hooks import CallHook


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_gateway(config_path: str | Path, *, env: Mapping[str, str] | None = None,
                  require_keys: bool = False, host: str = "127.0.0.1",
                  hooks: tuple[CallHook, ...] = (), max_body_bytes: int = MAX_BODY_BYTES,
                  clock: Clock = SYSTEM_CLOCK, **client_kwargs: Any) -> Gateway:
    """The gateway for a project's ``buttress.toml``: its client, ledger, keys and budgets."""
    from buttress.config import load_config

    config_path = Path(config_path)
    config = load_config(config_path)
    store = open_key_store(config.ledger.url, base_dir=config_path.parent, clock=clock)
    try:
        keys = KeyRing(store.list())
        if keys.empty and require_keys:
            raise UsageError("--require-keys was given but no key exists: create one with "
                             "`buttress keys create --name NAME`")
        if keys.empty and not is_loopback(host):
            raise UsageError(f"refusing to serve {host} without virtual keys: anyone could "
                             "spend through it. Create a key (`buttress keys create`) or bind "
                             "127.0.0.1")
        pricing = CallPricing({name: p.type for name, p in config.providers.items()})
        budgets = KeyBudgets(pricing.max_cost, clock=clock)
        client = AsyncClient.from_config(config_path, env=os.environ if env is None else env,
                                         hooks=(budgets, *hooks), clock=clock, **client_kwargs)
    except BaseException:
        store.close()
        raise
    if client.ledger is not None:
        budgets.spend_source = ledger_spend(client.ledger.store)
    return Gateway(client, keys=keys, key_store=store, key_budgets=budgets,
                   require_keys=require_keys, max_body_bytes=max_body_bytes, clock=clock)


def uvicorn_config(app: GatewayApp, host: str, port: int, *, drain_s: float = 30.0) -> Any:
    import uvicorn

    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    return uvicorn.Config(app, host=host, port=port, loop=loop, http=http, access_log=False,
                          log_level="warning", lifespan="on", server_header=False,
                          date_header=False, timeout_graceful_shutdown=max(1, round(drain_s)),
                          # the gateway never reads the client address: skip the middleware
                          # that rewrites it from X-Forwarded-* on every request
                          proxy_headers=False, backlog=4096,
                          # no WebSocket routes: uvicorn need not import a WebSocket library
                          ws="none")


def serve(config_path: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
          require_keys: bool = False, drain_s: float = 30.0) -> None:
    """Serve until SIGINT/SIGTERM, then drain and flush the ledger."""
    from buttress.gateway.uvicorn_server import GatewayServer

    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0..65535, got {port}", key="--port")
    gateway = build_gateway(config_path, require_keys=require_keys, host=host)
    GatewayServer(uvicorn_config(GatewayApp(gateway), host, port, drain_s=drain_s)).run()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
