"""The ledger: every call, attempt and piece of feedback, redacted and recorded off the call path.

Owns the record shapes, the store seam with its SQLite and PostgreSQL stores, migrations,
redaction and the background writer, plus the call hooks that feed it (``hook.py``) and
metrics (``metrics.py``), the only modules here that import the runtime's values. It must not
import the gateway, CLI or dashboard; they import it. Importing it opens nothing;
``PostgresStore`` imports psycopg only when built.
"""

from buttress.ledger.records import (
    SCHEMA_VERSION,
    AttemptRecord,
    CallRecord,
    FeedbackRecord,
    Validation,
    request_payload,
)
from buttress.ledger.store import AggregateRow, CallFilter, LedgerStore

__all__ = [
    "SCHEMA_VERSION",
    "AggregateRow",
    "AttemptRecord",
    "CallFilter",
    "CallRecord",
    "FeedbackRecord",
    "LedgerStore",
    "Validation",
    "request_payload",
]
