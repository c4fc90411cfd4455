"""Virtual keys: hashed storage, 401/403, RPM/TPM limits (429 + Retry-After), budgets (402)."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import openai
import pytest

from buttress.gateway.errors import GatewayRefusal
from buttress.gateway.keys import KeyRing, hash_secret, key_id_of
from buttress.gateway.limits import RateLimiter
from buttress.testing.clock import ManualClock
from buttress.testing.fake import Reply
from buttress.types import Usage

from .harness import Harness

BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_keys_are_stored_hashed_and_recorded_by_id(harness: Harness) -> None:
    key_id, secret = await harness.add_key("app")
    assert key_id_of(secret) == key_id
    response = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert response.status_code == 200
    record = harness.records()[0]
    assert record.api_key_id == key_id
    stored = harness.store.get(key_id)
    assert stored is not None
    assert stored.secret_hash == hash_secret(secret)
    harness.ledger.flush()
    db = (harness.root / "ledger.db").read_bytes()
    wal = harness.root / "ledger.db-wal"
    blob = db + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in blob
    assert secret.split("_", 1)[1].encode() not in blob


async def test_missing_unknown_and_revoked_keys_get_401(harness: Harness) -> None:
    key_id, secret = await harness.add_key("app")
    sdk = harness.sdk("sk-bt-000000000000_" + "0" * 48)
    with pytest.raises(openai.AuthenticationError):
        await sdk.chat.completions.create(**BODY)
    no_key = await harness.http.post("/v1/chat/completions", json=BODY)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    wrong_secret = secret[:-4] + "ffff" if not secret.endswith("ffff") else secret[:-4] + "0000"
    assert (await harness.http.post("/v1/chat/completions", json=BODY,
                                    headers=auth(wrong_secret))).status_code == 401
    assert (await harness.http.post("/v1/chat/completions", json=BODY,
                                    headers=auth(secret))).status_code == 200
    harness.store.revoke(key_id)
    await harness.gateway.reload_keys()
    revoked = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert revoked.status_code == 401


async def test_open_without_keys_unless_required(make_harness: object) -> None:
    from collections.abc import Callable

    assert callable(make_harness)
    factory: Callable[..., Harness] = make_harness
    open_gw = factory()
    assert (await open_gw.http.post("/v1/chat/completions", json=BODY)).status_code == 200
    closed = factory(require_keys=True)
    assert (await closed.http.post("/v1/chat/completions", json=BODY)).status_code == 401


async def test_key_scoped_to_models_and_features(harness: Harness) -> None:
    key_id, secret = await harness.add_key("narrow", models=["backup"], features=[])
    sdk = harness.sdk(secret)
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.chat.completions.create(**BODY)
    ok = await sdk.chat.completions.create(**{**BODY, "model": "backup"})
    assert ok.choices[0].message.content
    listed = [m.id async for m in sdk.models.list()]
    assert listed == ["backup", "greet"]
    refused = [r for r in harness.records() if r.status == "error"]
    assert len(refused) == 1
    assert refused[0].error_kind == "model_not_allowed"
    assert refused[0].api_key_id == key_id
    assert refused[0].model_requested == "gpt"


async def test_rpm_limit_lets_exactly_the_allowed_number_through(harness: Harness) -> None:
    _, secret = await harness.add_key("burst", rpm=10)
    responses = await asyncio.gather(*(
        harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
        for _ in range(100)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 90
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"
    records = harness.records()
    assert len(records) == 100
    assert sum(r.error_kind == "key_rate_limited" for r in records) == 90
    # the bucket refills at rpm/60 a second
    harness.clock.advance(6.0)
    again = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert again.status_code == 200


async def test_tpm_limit_charges_actual_tokens(harness: Harness) -> None:
    harness.mock.script = iter([Reply(text="x", usage=Usage(prompt_tokens=30,
                                                            completion_tokens=20))])
    harness.mock.__post_init__()
    _, secret = await harness.add_key("tokens", tpm=40)
    first = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert first.status_code == 200
    second = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert second.status_code == 429
    assert "tokens" in second.json()["error"]["message"]


def test_token_bucket_retry_after_is_the_refill_time() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    assert limiter.admit("k", 2, None) is None
    assert limiter.admit("k", 2, None) is None
    assert limiter.admit("k", 2, None) == pytest.approx(30.0)
    clock.advance(30.0)
    assert limiter.admit("k", 2, None) is None


async def test_budget_never_overspent_by_more_than_one_call(harness: Harness) -> None:
    call = harness.client.prepare_model("gpt", [], max_tokens=50)
    max_cost = harness.budgets._max_cost(call.model_copy(update={
        "request": call.request.model_copy(update={"messages": (
            harness.client.prepare_model("gpt", [], max_tokens=50).request.messages)})}))
    assert max_cost > 0
    limit = max_cost * 5.5
    key_id, secret = await harness.add_key("budgeted", budget_daily_usd=limit)
    assert harness.budgets.book is not None
    responses = await asyncio.gather(*(
        harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
        for _ in range(100)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 402}
    refused = next(r for r in responses if r.status_code == 402)
    assert "budget" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "budget_exceeded"
    spent = sum(r.cost_usd or 0.0 for r in harness.records() if r.status == "ok")
    assert spent <= limit + max_cost
    status = harness.budgets.book.status()[0]
    assert status.scope == f"key:{key_id}"
    assert status.reserved_usd == pytest.approx(0.0, abs=1e-12)


async def test_keys_created_while_running_are_picked_up(harness: Harness) -> None:
    assert harness.gateway.keys.empty
    _, secret = harness.store.create("later")
    response = await harness.http.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert response.status_code == 200  # an unknown key id triggers a reload


async def test_only_a_keys_usual_header_is_remembered_and_only_until_the_keys_change(
        harness: Harness) -> None:
    key_id, secret = await harness.add_key("app")
    header = f"Bearer {secret}".encode()
    ring = harness.gateway.keys
    assert (await harness.gateway.authenticate(header)).key_id == key_id
    assert ring.verified[header].key_id == key_id
    wrong = header[:-4] + (b"0000" if not header.endswith(b"0000") else b"ffff")
    with pytest.raises(GatewayRefusal):
        await harness.gateway.authenticate(wrong)
    assert wrong not in ring.verified
    spaced = f"bearer   {secret}  ".encode()  # verifies, but is not the usual spelling
    assert (await harness.gateway.authenticate(spaced)).key_id == key_id
    assert list(ring.verified) == [header]  # other spellings cannot grow it
    harness.store.revoke(key_id)
    await harness.gateway.reload_keys()
    assert ring.verified == {}
    with pytest.raises(GatewayRefusal):
        await harness.gateway.authenticate(header)


def test_keyring_ignores_malformed_and_revoked() -> None:
    ring = KeyRing()
    assert ring.verify("not-a-key") is None
    assert ring.verify("sk-bt-_x") is None


async def test_key_cli_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from buttress.cli.main import app

    from .harness import write_project

    root = Path(str(tmp_path))
    write_project(root)
    runner = CliRunner()
    created = runner.invoke(app, ["-C", str(root), "keys", "create", "--name", "ci",
                                  "--models", "gpt,backup", "--rpm", "5",
                                  "--budget-daily", "1.5"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("sk-bt-")
    listed = runner.invoke(app, ["-C", str(root), "keys", "list", "--json"])
    assert listed.exit_code == 0
    assert secret not in listed.output
    assert '"rpm": 5' in listed.output
    assert '"budget_daily_usd": 1.5' in listed.output
    revoked = runner.invoke(app, ["-C", str(root), "keys", "revoke", "ci"])
    assert revoked.exit_code == 0, revoked.output
    conn = sqlite3.connect(root / "ledger.db")
    try:
        rows = conn.execute("SELECT revoked_at FROM virtual_keys").fetchall()
    finally:
        conn.close()
    assert rows[0][0] is not None
    missing = runner.invoke(app, ["-C", str(root), "keys", "revoke", "nobody"])
    assert missing.exit_code == 2


async def test_malformed_requests_get_4xx_and_the_server_keeps_serving(
        harness: Harness) -> None:
    http: httpx.AsyncClient = harness.http
    cases = [
        (b"{not json", 400), (b"[]", 400), (b'{"model": 1, "messages": []}', 400),
        (b'{"model": "gpt", "messages": [{"role": "wizard", "content": "x"}]}', 400),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "n": 2}', 400),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "bogus": 1}', 400),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], '
         b'"temperature": "hot"}', 400),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404),
        (b"x" * (harness.gateway.max_body_bytes + 1), 413),
    ]
    for body, status in cases:
        response = await http.post("/v1/chat/completions", content=body,
                                   headers={"content-type": "application/json"})
        assert response.status_code == status, body[:80]
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
    assert (await http.get("/v1/chat/completions")).status_code == 405
    assert (await http.get("/nowhere")).status_code == 404
    assert (await http.post("/v1/chat/completions", json=BODY,
                            headers={"x-buttress-cache": "sometimes"})).status_code == 400
    assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
    health = await http.get("/health")
    assert health.json() == {"status": "ok"}
    metrics = await http.get("/metrics")
    assert b"buttress_calls_total" in metrics.content
