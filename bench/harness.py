"""What the in-process benchmarks share with ``../shared/bench/gateway``: its mock upstream,
run on CPU 0 while the benchmark pins itself to CPU 1 (the harness's placement)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "gateway"
#: the mock-gpt project every gateway benchmark serves (``bench/gateway.toml``)
GATEWAY_TOML = Path(__file__).with_name("gateway.toml")


@contextlib.contextmanager
def mock_upstream(port: int, delay_ms: float, chunks: int = 20) -> Iterator[None]:
    """The harness's mock upstream on ``port`` (CPU 0), streaming ``chunks`` content chunks;
    this process moves to CPU 1."""
    mock = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(HARNESS / "mock_upstream.py"), "--port",
         str(port), "--delay-ms", str(delay_ms), "--chunks", str(chunks)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(0, {1})
        yield
    finally:
        mock.terminate()
        mock.wait()
