"""Eval throughput: 200 cases × 3 variants against a mock upstream with 200 ms latency at
concurrency 16, against the ideal time (cases × variants × latency / concurrency).

Run: PYTHONPATH=src python bench/bench_evals.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.evals.dataset import Case, Dataset, ScorerSpec, SuiteSettings
from buttress.evals.experiment import Experiment
from buttress.evals.results import Variant
from buttress.testing.fake import FakeProvider, Reply
from buttress.types import CallRequest

CASES, LATENCY_S, CONCURRENCY = 200, 0.2, 16
CONFIG = """
[providers.mock]
type = "fake"
[models.a]
provider = "mock"
model = "m-1"
[models.b]
provider = "mock"
model = "m-2"
[features.echo]
models = ["a"]
policy = { max_retries = 0 }
"""


def reply(request: CallRequest) -> Reply:
    return Reply(text=request.messages[-1].content or "", delay_s=LATENCY_S)


async def main() -> None:
    from buttress.types import Message

    cases = tuple(Case(id=f"c{i}", messages=(Message.user(f"answer {i}"),),
                       expected=f"answer {i}", tags=(f"s{i % 4}",)) for i in range(CASES))
    data = Dataset(name="bench", path=Path("bench.yaml"), split="main", cases=cases,
                   version="bench", settings=SuiteSettings(scorers=(ScorerSpec(name="exact"),)))
    variants = [Variant(name="a"), Variant(name="b", model="b"),
                Variant(name="c", params={"temperature": 0.5})]
    with tempfile.TemporaryDirectory() as tmp:
        client = AsyncClient(parse_config(CONFIG), project_dir=tmp,
                             providers={"mock": FakeProvider(name="mock", respond=reply)})
        async with client:
            started = time.perf_counter()
            run = await Experiment(client, "echo", data, variants=variants,
                                   concurrency=CONCURRENCY).run()
            elapsed = time.perf_counter() - started
    ideal = CASES * len(variants) * LATENCY_S / CONCURRENCY
    assert all(s.overall.value == 1.0 for s in run.summaries)
    print(f"{CASES} cases x {len(variants)} variants, {LATENCY_S * 1000:.0f} ms latency, "
          f"concurrency {CONCURRENCY}: {elapsed:.2f} s vs ideal {ideal:.2f} s "
          f"= {elapsed / ideal:.3f}x")


if __name__ == "__main__":
    asyncio.run(main())
