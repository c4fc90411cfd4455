"""Eval throughput: 200 cases × 3 variants against a mock upstream with 200 ms latency at
concurrency 16, against the ideal time (cases × variants × latency / concurrency).

Three measurements in one run, each as a ratio to the ideal:
1. buttress against an in-process fake provider (the harness's own overhead);
2. buttress against a mock OpenAI-compatible HTTP server (bench/mock_openai.py);
3. promptfoo against that same HTTP server, same cases, same three variants, concurrency 16,
   when it is installed: set PROMPTFOO to its executable (e.g. a temp dir's
   node_modules/.bin/promptfoo after `npm install promptfoo` there); skipped otherwise.

Run: PYTHONPATH=src python bench/bench_evals.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.evals.dataset import Case, Dataset, ScorerSpec, SuiteSettings
from buttress.evals.experiment import Experiment
from buttress.evals.results import Variant
from buttress.testing.fake import FakeProvider, Reply
from buttress.types import CallRequest, Message

CASES, LATENCY_S, CONCURRENCY = 200, 0.2, 16
VARIANTS = [Variant(name="a"), Variant(name="b", model="b"),
            Variant(name="c", params={"temperature": 0.5})]
IDEAL = CASES * len(VARIANTS) * LATENCY_S / CONCURRENCY
FEATURE = """
[models.a]
provider = "mock"
model = "m-1"
[models.b]
provider = "mock"
model = "m-2"
[features.echo]
models = ["a"]
policy = { max_retries = 0, attempt_timeout_s = 30, deadline_s = 60 }
"""


def reply(request: CallRequest) -> Reply:
    return Reply(text=request.messages[-1].content or "", delay_s=LATENCY_S)


def dataset() -> Dataset:
    cases = tuple(Case(id=f"c{i}", messages=(Message.user(f"answer {i}"),),
                       expected=f"answer {i}", tags=(f"s{i % 4}",)) for i in range(CASES))
    return Dataset(name="bench", path=Path("bench.yaml"), split="main", cases=cases,
                   version="bench", settings=SuiteSettings(scorers=(ScorerSpec(name="exact"),)))


async def run_buttress(client: AsyncClient) -> float:
    async with client:
        started = time.perf_counter()
        run = await Experiment(client, "echo", dataset(), variants=VARIANTS,
                               concurrency=CONCURRENCY).run()
        elapsed = time.perf_counter() - started
    assert all(s.overall.value == 1.0 for s in run.summaries), [
        (s.variant, s.overall.value, s.errors) for s in run.summaries]
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def promptfoo_config(base_url: str) -> str:
    providers = [{"id": f"openai:chat:{model}", "label": label,
                  "config": {"apiBaseUrl": base_url, "apiKey": "mock", **extra}}
                 for label, model, extra in (("a", "m-1", {}), ("b", "m-2", {}),
                                             ("c", "m-1", {"temperature": 0.5}))]
    tests = [{"vars": {"i": i}, "assert": [{"type": "equals", "value": f"answer {i}"}]}
             for i in range(CASES)]
    return json.dumps({"prompts": ["answer {{i}}"], "providers": providers, "tests": tests})


def run_promptfoo(exe: str, base_url: str) -> tuple[float, float, int]:
    """(wall seconds of `promptfoo eval`, of `promptfoo --version` (start-up), passes)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg, out = Path(tmp) / "promptfooconfig.json", Path(tmp) / "out.json"
        cfg.write_text(promptfoo_config(base_url))
        env = {**os.environ, "HOME": tmp, "PROMPTFOO_DISABLE_TELEMETRY": "1",
               "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_CONFIG_DIR": tmp,
               "NODE_NO_WARNINGS": "1"}
        started = time.perf_counter()
        subprocess.run([exe, "--version"], env=env, capture_output=True, check=True)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run([exe, "eval", "-c", str(cfg), "-j", str(CONCURRENCY),
                               "--no-cache", "--no-write", "--no-table", "--no-progress-bar",
                               "-o", str(out)], env=env, capture_output=True, text=True,
                              cwd=tmp, check=False)
        elapsed = time.perf_counter() - started
        if not out.is_file():
            raise RuntimeError(f"promptfoo failed ({done.returncode}): {done.stderr[-2000:]}")
        results = json.loads(out.read_text())["results"]
        passes = int(results.get("stats", {}).get("successes", 0))
    return elapsed, startup, passes


def main() -> None:
    print(f"{CASES} cases x {len(VARIANTS)} variants, {LATENCY_S * 1000:.0f} ms latency, "
          f"concurrency {CONCURRENCY}: ideal {IDEAL:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        fake = AsyncClient(parse_config('[providers.mock]\ntype = "fake"\n' + FEATURE),
                           project_dir=tmp,
                           providers={"mock": FakeProvider(name="mock", respond=reply)})
        elapsed = asyncio.run(run_buttress(fake))
    print(f"  buttress, in-process fake:   {elapsed:6.2f} s = {elapsed / IDEAL:.3f}x ideal")

    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mock_openai.py")),
                               str(port), str(LATENCY_S)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        base_url = f"http://127.0.0.1:{port}/v1"
        config = parse_config(f'[providers.mock]\ntype = "openai"\nbase_url = "{base_url}"\n'
                              f'api_key_env = "MOCK_KEY"\n' + FEATURE)
        with tempfile.TemporaryDirectory() as tmp:
            http = AsyncClient(config, project_dir=tmp, env={"MOCK_KEY": "mock"})
            elapsed = asyncio.run(run_buttress(http))
        print(f"  buttress, HTTP mock:         {elapsed:6.2f} s = {elapsed / IDEAL:.3f}x ideal")
        exe = os.environ.get("PROMPTFOO") or shutil.which("promptfoo")
        if exe is None:
            print("  promptfoo: not installed (set PROMPTFOO=/path/to/node_modules/.bin/"
                  "promptfoo after `npm install promptfoo` in a temp dir)")
            return
        elapsed, startup, passes = run_promptfoo(exe, base_url)
        print(f"  promptfoo, HTTP mock:        {elapsed:6.2f} s = {elapsed / IDEAL:.3f}x ideal "
              f"(of which {startup:.2f} s is node start-up; {passes}/"
              f"{CASES * len(VARIANTS)} passed)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
