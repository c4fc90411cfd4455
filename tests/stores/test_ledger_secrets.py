"""Acceptance (store side): provider keys never reach the ledger's bytes on disk."""

from __future__ import annotations

from pathlib import Path

from buttress.ledger import AttemptRecord, CallRecord
from buttress.ledger.redaction import Redactor
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter

PATTERNED = "sk-test-SECRET123" + "4567890abcdefghij"
# A key no built-in pattern knows, as read from the environment by the CLI or server.
LITERAL = "local-provider-key-7f3a9c2e"


def db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_provider_keys_never_reach_the_database_files(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    store = SQLiteStore(db)
    # "store" keeps content verbatim, the weakest policy: secrets must still go.
    writer = LedgerWriter(store, redactor=Redactor(default="store", secrets=[LITERAL]))
    for i in range(50):
        cid = f"c{i}"
        writer.record_call(
            CallRecord(
                call_id=cid, feature="f", created_at=1_700_000_000.0 + i,
                request={"messages": [{"role": "user", "content": f"my key is {PATTERNED}"},
                                      {"role": "user", "content": f"and {LITERAL}!"}],
                         "extra": {"headers": {"Authorization": f"Bearer {LITERAL}"}}},
                output_text=f"echo {PATTERNED} {LITERAL}",
                output_value={"leak": [PATTERNED, f"x{LITERAL}x"]},
                status="error", error_message=f"401: invalid api key {PATTERNED}",
            ),
            [AttemptRecord(call_id=cid, index=0, status="error",
                           error_message=f"key={LITERAL} rejected", started_at=0.0)])
        writer.record_feedback(cid, "rejected", comment=f"it printed {PATTERNED}")
    writer.close(timeout=30)

    assert len(store.query_calls()) == 50
    wal = tmp_path / "ledger.db-wal"
    assert wal.exists()  # the scan covers the WAL, not just the db
    assert wal.stat().st_size > 0
    raw = db_bytes(db)
    assert PATTERNED.encode() not in raw
    assert LITERAL.encode() not in raw
    assert b"SECRET123" not in raw
    assert b"[REDACTED:secret]" in raw  # the records are there, scrubbed
    store.close()
    raw = db_bytes(db)
    assert PATTERNED.encode() not in raw
    assert LITERAL.encode() not in raw
