"""Instructions a request of the gateway app, two revisions side by side: an A/B that the
machine's speed does not move.

Wall-clock CPU a request drifts by 15% to 2x on a shared machine within the hour, more than
most changes are worth (``bench/ab_gateway.sh`` alternates rounds to live with it). Counted
instructions do not drift: under ``valgrind --tool=callgrind`` each revision's gateway app runs
in-process (as ``bench/bench_gateway_cost.py`` drives it: a virtual key with RPM/TPM limits and
a budget, the ledger on) against the harness's mock upstream (its own process, not counted),
once with ``--few`` and once with ``--many`` requests; the difference over the difference in
requests is what one request costs, start-up excluded. Repeats agree within about 3%. The
count is user-space instructions of buttress, CPython, uvloop and every library, threads
included (the ledger writer); the kernel and the HTTP server are not in it.

    python bench/icount_gateway.py REV_A REV_B [--kind plain stream] [--few 8 --many 48]

A revision is anything ``git archive`` takes, or ``WORKTREE`` (the working tree). Needs
valgrind (Debian package ``valgrind``) and ``../shared/bench/gateway`` (its mock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 9318  # bench_gateway_cost's mock port: its project() points there


def workload(kind: str, n: int) -> None:
    """``n`` requests of ``kind``, four at a time, through a fresh gateway app."""
    import uvloop
    from bench_gateway_cost import BODIES, project, request

    from buttress.gateway.app import GatewayApp
    from buttress.gateway.server import build_gateway

    async def run() -> None:
        config, secret = project(Path(tempfile.mkdtemp()) / "p", ledger=True)
        gw = build_gateway(config)
        await gw.reload_keys(force=True)
        gw.client.load_prompts()
        app = GatewayApp(gw)

        async def worker(k: int) -> None:
            for _ in range(k):
                await request(app, BODIES[kind], secret)

        await asyncio.gather(*(worker(n // 4) for _ in range(4)))
        await gw.client.aclose()  # the ledger's writes are counted too

    os.environ.setdefault("BENCH_UPSTREAM_KEY", "sk-mock-upstream")
    uvloop.run(run())


def instructions(src: Path, kind: str, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--workload", kind, str(n)],
        env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT / 'bench'}"},
        capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


@contextlib.contextmanager
def sources(revs: list[str]) -> Iterator[list[Path]]:
    tmp = Path(tempfile.mkdtemp())
    try:
        out = []
        for i, rev in enumerate(revs):
            if rev == "WORKTREE":
                out.append(ROOT / "src")
                continue
            dest = tmp / str(i)
            dest.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
            out.append(dest / "src")
        yield out
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("revs", nargs=2, metavar="REV")
    parser.add_argument("--kind", nargs="+", choices=("plain", "stream"),
                        default=["plain", "stream"])
    parser.add_argument("--few", type=int, default=8)
    parser.add_argument("--many", type=int, default=48)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    from harness import mock_upstream

    # streams as the harness sends them (20 chunks, 10 ms apart): one arrival per event, as
    # at 20 streams/s, even with the app slowed down 50-fold under valgrind
    with sources(args.revs) as srcs, mock_upstream(PORT, delay_ms=2):
        print(f"{'kind':7} {'revision':14} {'instructions a request':>24}")
        for kind in args.kind:
            per = []
            for rev, src in zip(args.revs, srcs, strict=True):
                few = instructions(src, kind, args.few)
                many = instructions(src, kind, args.many)
                per.append((many - few) / (args.many - args.few))
                print(f"{kind:7} {rev[:14]:14} {per[-1] / 1e3:22,.0f} k")
            print(f"{kind:7} {'B / A':14} {per[1] / per[0]:24.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--workload":
        workload(sys.argv[2], int(sys.argv[3]))
    else:
        main()
