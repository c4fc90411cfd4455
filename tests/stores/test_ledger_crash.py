"""Acceptance: kill -9 of a process writing 2,000 records/s loses nothing it had committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from buttress.ledger import CallFilter
from buttress.ledger.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("ledger_child.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def test_kill_9_keeps_every_committed_record_and_a_sound_file(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(db), "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    reported: list[int] = []
    enough = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("written "):
                reported.append(int(line.split()[1]))
                if reported[-1] >= 4000:  # about two seconds at 2,000 records/s
                    enough.set()
        enough.set()  # the child ended on its own: the assertions below will say why

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert enough.wait(60), "child never reached 4,000 written records"
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        reader.join(30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == -signal.SIGKILL
    flushed = max(reported)
    assert flushed >= 4000

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = {r[0] for r in conn.execute("SELECT call_id FROM calls")}
        attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()
    missing = [i for i in range(flushed) if f"c{i:08d}" not in ids]
    assert missing == []
    assert attempts == 2 * len(ids)  # a batch commits whole: no call without its attempts

    store = SQLiteStore(db)  # reopens cleanly and keeps working
    try:
        assert len(store.query_calls(CallFilter(limit=10))) == 10
    finally:
        store.close()
