"""A process that records ~RATE calls/s into a SQLite ledger until it is killed.

After every committed batch it prints ``written N`` (flushed), so the parent knows which records
were durable at the moment it sends SIGKILL. Run as: python ledger_child.py DB_PATH [RATE].
"""

from __future__ import annotations

import sys
import time

from buttress.ledger import AttemptRecord, CallRecord
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter, WriterStats


def report(stats: WriterStats) -> None:
    print(f"written {stats.written}", flush=True)


def main() -> None:
    path, rate = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 2000.0
    writer = LedgerWriter(SQLiteStore(path), flush_interval_s=0.05, on_commit=report)
    body = "please summarise this note. " * 15
    start = time.monotonic()
    i = 0
    while True:
        cid = f"c{i:08d}"
        writer.record_call(
            CallRecord(call_id=cid, feature="notes", provider="fake", model_requested="m",
                       request={"messages": [{"role": "user", "content": body}]},
                       output_text="summary " * 20, created_at=time.time(), attempts=2,
                       prompt_tokens=120, completion_tokens=40, cost_usd=0.0001),
            [AttemptRecord(call_id=cid, index=0, kind="primary", status="error",
                           error_kind="timeout", started_at=time.time()),
             AttemptRecord(call_id=cid, index=1, kind="retry", started_at=time.time())])
        i += 1
        # Pace to the target rate; this is the child's load generator, not a test sleep.
        ahead = i / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


if __name__ == "__main__":
    main()
