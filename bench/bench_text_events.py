"""What reading one text event of an OpenAI stream costs, the full way and by its bytes.

OpenAI's stream events carry an ``obfuscation`` string of random characters and length (on by
default). Each row reads the same 2,000 arrivals (one event each, as a relay reads them at a
few streams a second) and reports ns an event, the median of the rounds:

- ``full parse``: SSE framing, the JSON document and ``plain_text``: how every event of a padded
  stream was read before ``TextEvents`` learned padding;
- ``by bytes, unpadded``: ``TextEvents.text`` on events without padding (a stream asked with
  ``stream_options.include_obfuscation: false``, or any other OpenAI-compatible server);
- ``by bytes, padded``: ``TextEvents.text`` on OpenAI's padded events.

    PYTHONPATH=src python bench/bench_text_events.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time

import orjson

from buttress.providers.http import SSEDecoder, parse_json
from buttress.providers.openai_compat import plain_text
from buttress.providers.text_events import TextEvents

N = 2000


def event(text: str, pad: str | None) -> bytes:
    body = {"id": "chatcmpl-CTk2mP6ez8VrYbN0xQ4h1sLd9FwAa", "object": "chat.completion.chunk",
            "created": 1761012345, "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default", "system_fingerprint": "fp_560af6e559",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None,
                         "finish_reason": None}]}
    if pad is not None:
        body["obfuscation"] = pad
    return orjson.dumps(body)


def arrivals(rng: random.Random, padded: bool) -> list[bytes]:
    words = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]
    alphabet = string.ascii_letters + string.digits
    return [b"data: " + event(rng.choice(words), "".join(rng.choices(
        alphabet, k=rng.randint(1, 16))) if padded else None) + b"\n\n" for _ in range(N)]


def full(batch: list[bytes]) -> float:
    decoder = SSEDecoder()
    start = time.perf_counter_ns()
    for data in batch:
        for ev in decoder.feed(data):
            plain_text(parse_json(ev.data, provider="p", model="m"))
    return (time.perf_counter_ns() - start) / len(batch)


def by_bytes(batch: list[bytes]) -> float:
    texts = TextEvents()
    first = batch[0][6:-2]
    parsed = orjson.loads(first)
    texts.learn(first, parsed, plain_text(parsed) or "")
    if texts.text(batch[1]) is None:
        raise SystemExit("the template did not take: nothing to measure")
    start = time.perf_counter_ns()
    for data in batch:
        texts.text(data)
    return (time.perf_counter_ns() - start) / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(7)
    plain, padded = arrivals(rng, False), arrivals(rng, True)
    rows = {"full parse, padded": lambda: full(padded),
            "by bytes, unpadded": lambda: by_bytes(plain),
            "by bytes, padded": lambda: by_bytes(padded)}
    results = {name: statistics.median(fn() for _ in range(args.rounds))
               for name, fn in rows.items()}
    base = results["full parse, padded"]
    print(f"ns an event (median of {args.rounds} rounds of {N}):")
    for name, ns in results.items():
        print(f"  {name:20} {ns:8.0f}   x{ns / base:.2f}")


if __name__ == "__main__":
    main()
