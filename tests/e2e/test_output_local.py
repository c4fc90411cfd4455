"""Acceptance: the real embedded model under the triage output contract.

Twenty calls, each ends schema-valid or in a typed miss, and the SQLite ledger shows every
repair. One call in four gets a token limit too small for any answer, so repairs (and misses)
happen for certain rather than by chance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter

SCAFFOLD = Path(__file__).parents[2] / "src" / "buttress" / "scaffold" / "project"

CONFIG = """
[providers.local]
type = "local"

[models.local]
provider = "local"
model = "smollm2-135m-instruct"

[features.triage]
prompt = "triage"
models = ["local"]
max_repairs = 1
params = { max_tokens = 48, temperature = 0 }

[features.triage.policy]
deadline_s = 60
attempt_timeout_s = 30
max_retries = 0
"""

TICKETS = [
    "I was charged twice for my subscription this month, please refund one.",
    "The app crashes every time I open the settings page.",
    "How do I change the email address on my account?",
    "My parcel has not arrived after three weeks.",
    "Can I get an invoice for my last payment?",
    "I forgot my password and the reset link does not work.",
    "The package arrived damaged, I want my money back.",
    "Your website is very slow today.",
    "Please delete my account and all my data.",
    "I was billed after I cancelled, refund me now!",
]


@pytest.mark.local_model
async def test_twenty_real_calls_end_valid_or_in_a_typed_miss(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_bytes(
        (SCAFFOLD / "prompts" / "triage.md").read_bytes())
    (tmp_path / "schemas").mkdir()
    schema: dict[str, Any] = json.loads((SCAFFOLD / "schemas" / "triage.json").read_text())
    (tmp_path / "schemas" / "triage.json").write_text(json.dumps(schema))
    store = SQLiteStore(tmp_path / "ledger.db")
    writer = LedgerWriter(store)

    results = []
    async with AsyncClient(parse_config(CONFIG), project_dir=tmp_path, ledger=writer) as client:
        for i in range(20):
            squeeze = {"max_tokens": 6} if i % 4 == 3 else {}
            results.append(await client.call("triage", {"ticket": TICKETS[i % len(TICKETS)]},
                                             **squeeze))
        writer.flush()

    repairs_in_ledger = 0
    for result in results:
        found = store.get_call(result.call_id)
        assert found is not None
        record, attempts = found
        repairs = [a for a in attempts if a.kind == "repair"]
        repairs_in_ledger += len(repairs)
        assert len(repairs) == sum(a.kind == "repair" for a in result.attempts)
        if result.miss is None:
            jsonschema.validate(result.value, schema)
            assert record.status == "ok"
            assert record.output_value == result.value
            assert record.validation is not None
            assert record.validation.outcome == ("repaired" if repairs else "passed")
        else:
            assert result.value is None
            assert result.miss.reasons
            assert result.miss.raw is not None
            assert record.status == "miss"
            assert record.validation is not None
            assert record.validation.outcome == "failed"
    store.close()

    squeezed = results[3::4]
    assert all(r.miss is not None for r in squeezed)  # six tokens hold no complete answer
    assert repairs_in_ledger >= len(squeezed)
    assert sum(r.miss is None for r in results) >= 10  # the grammar keeps full answers valid


@pytest.mark.local_model
async def test_local_logprobs_give_a_confidence_for_the_category(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "schemas").mkdir()
    for rel in ("prompts/triage.md", "schemas/triage.json"):
        (tmp_path / rel).write_text((SCAFFOLD / rel).read_text())
    config = parse_config(CONFIG.replace('type = "local"', 'type = "local"\nlogits_all = true')
                          .replace("max_repairs = 1", 'max_repairs = 1\nconfidence = '
                                   '{ method = "logprobs", field = "category" }'))
    async with AsyncClient(config, project_dir=tmp_path) as client:
        result = await client.call("triage", {"ticket": TICKETS[0]})
    assert result.value is not None, result.miss  # the grammar keeps it schema-valid
    assert result.confidence is not None
    assert 0.0 < result.confidence <= 1.0
