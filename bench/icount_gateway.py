"""Instructions a request of the gateway app, two revisions side by side: an A/B that the
machine's speed does not move.

Wall-clock CPU a request drifts by 15% to 2x on a shared machine within the hour, more than
most changes are worth (``bench/ab_gateway.sh`` alternates rounds to live with it). Counted
instructions do not drift: under ``valgrind --tool=callgrind`` each revision's gateway app runs
in-process (as ``bench/bench_gateway_cost.py`` drives it: a virtual key with RPM/TPM limits and
a budget, the ledger on) against the harness's mock upstream (its own process, not counted),
once with ``--few`` and once with ``--many`` requests; the difference over the difference in
requests is what one request costs, start-up excluded. The requests run under a serving
gateway's collector settings (``gateway.app.serving_collector``; a revision older than it runs
at Python's default, so compare it only with its like). The count is user-space instructions
of buttress, CPython, uvloop and every library; the kernel and the HTTP server are not in it.
The event loop's thread and the other threads (the ledger writer) are counted apart: the
writer's share a request depends on how many records each of its batches takes, which the
run's timing decides. The event loop's count for a plain request repeats to within about 1.5%;
for a stream to within about 5%, since under valgrind's slowdown a busy machine lets more of
the upstream's events arrive together (fewer reads). Compare revisions in one run.

    python bench/icount_gateway.py REV_A REV_B [--kind plain stream] [--few 8 --many 48]
    python bench/icount_gateway.py REV_A REV_B --kind stream --chunks 2 62   # a chunk's cost

With ``--chunks A B`` each revision's streams are counted with the mock sending A and then B
content chunks a stream: the difference over B - A is what relaying one chunk costs, and the
count at A is mostly a stream's fixed part.

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

    try:  # the collector as the gateway serves (revisions before it ran at Python's default)
        from buttress.gateway.app import serving_collector
    except ImportError:
        serving_collector = contextlib.nullcontext

    async def run() -> None:
        config, secret = project(Path(tempfile.mkdtemp()) / "p", ledger=True)
        gw = build_gateway(config)
        await gw.reload_keys(force=True)
        gw.client.load_prompts()
        app = GatewayApp(gw)

        async def worker(k: int) -> None:
            for _ in range(k):
                await request(app, BODIES[kind], secret)

        with serving_collector():
            await asyncio.gather(*(worker(n // 4) for _ in range(4)))
        await gw.client.aclose()  # the ledger's writes are counted too

    os.environ.setdefault("BENCH_UPSTREAM_KEY", "sk-mock-upstream")
    uvloop.run(run())


def instructions(src: Path, kind: str, n: int) -> tuple[int, int]:
    """Instructions of the event loop's thread and of every other thread (the ledger writer's
    share moves with how its batches fall, which timing decides: it is counted apart)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}/cg", sys.executable, __file__, "--workload", kind,
             str(n)],
            env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT / 'bench'}"},
            capture_output=True, text=True, check=True)
        totals = {}
        for path in Path(out).glob("cg-*"):
            found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
            if found is None:
                raise RuntimeError(f"no instruction count in {path.name}")
            totals[int(path.name.rsplit("-", 1)[1])] = int(found.group(1))
    if 1 not in totals:
        raise RuntimeError(f"no main thread among valgrind's outputs: {sorted(totals)}")
    return totals[1], sum(v for k, v in totals.items() if k != 1)


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
    parser.add_argument("--chunks", type=int, nargs=2, metavar=("A", "B"),
                        help="streams only: the instructions a chunk, from A and B chunks")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    from harness import mock_upstream

    if args.chunks:
        chunk_cost(args)
        return
    # streams as the harness sends them (20 chunks, 10 ms apart): one arrival per event, as
    # at 20 streams/s, even with the app slowed down 50-fold under valgrind
    with sources(args.revs) as srcs, mock_upstream(PORT, delay_ms=2):
        print(f"{'kind':7} {'revision':14} {'event loop':>12} {'other threads':>14} "
              f"{'all':>10}   (instructions a request)")
        for kind in args.kind:
            per = []
            for rev, src in zip(args.revs, srcs, strict=True):
                few = instructions(src, kind, args.few)
                many = instructions(src, kind, args.many)
                n = args.many - args.few
                loop, other = (many[0] - few[0]) / n, (many[1] - few[1]) / n
                per.append((loop, other))
                print(f"{kind:7} {rev[:14]:14} {loop / 1e3:10,.0f} k {other / 1e3:12,.0f} k "
                      f"{(loop + other) / 1e3:8,.0f} k")
            (a_loop, a_other), (b_loop, b_other) = per
            print(f"{kind:7} {'B / A':14} {b_loop / a_loop:12.3f} {b_other / a_other:14.3f} "
                  f"{(b_loop + b_other) / (a_loop + a_other):10.3f}")


def chunk_cost(args: argparse.Namespace) -> None:
    """Each revision's streams at two chunk counts: the instructions one chunk costs."""
    from harness import mock_upstream

    few, many = args.chunks
    print(f"{'revision':14} {'event loop a stream':>20} {'a chunk':>10}   (chunks {few} / {many})")
    with sources(args.revs) as srcs:
        for rev, src in zip(args.revs, srcs, strict=True):
            loops = []
            for chunks in (few, many):
                with mock_upstream(PORT, delay_ms=2, chunks=chunks):
                    low = instructions(src, "stream", args.few)[0]
                    high = instructions(src, "stream", args.many)[0]
                loops.append((high - low) / (args.many - args.few))
            print(f"{rev[:14]:14} {loops[0] / 1e3:9,.0f} k / {loops[1] / 1e3:,.0f} k "
                  f"{(loops[1] - loops[0]) / (many - few) / 1e3:8,.1f} k")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--workload":
        workload(sys.argv[2], int(sys.argv[3]))
    else:
        main()
