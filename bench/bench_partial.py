"""Partial-object parsing of a ~100 KB JSON answer streamed one token (~4 characters) at a time.

Three ways to get the object while it streams, each timed over the whole stream:

- ``single``: one ``jiter.from_json`` of the finished document (the floor; no partials at all);
- ``buttress``: ``PartialParser.feed`` per token, then ``finish()`` (a fresh partial per token);
- ``naive``: ``jiter.from_json(buffer, partial_mode="trailing-strings")`` of the whole buffer
  per token (quadratic; ``--quick`` times a prefix and scales it by the quadratic law, which
  underestimates it).

    python bench/bench_partial.py [--kb 100] [--shape records|text] [--quick]

``records`` is a list of small objects (typical structured output); ``text`` is a few fields, one
of them a long string (the worst case for materialising the open string on every token).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import jiter

from buttress.runtime.partial import PartialParser


def document(kb: int, shape: str) -> str:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "caf\u00e9", "na\u00efve", "\u2603", "quote\"d"]
    if shape == "text":
        body = " ".join(rng.choice(words) for _ in range(kb * 150))
        return json.dumps({"title": "report", "score": 0.93, "body": body[:kb * 1000],
                           "tags": ["a", "b"]})
    records, size = [], 0
    while size < kb * 1000:
        record = {"id": len(records), "name": " ".join(rng.choices(words, k=3)),
                  "score": round(rng.random(), 4), "ok": rng.random() < 0.5, "note": None,
                  "tags": rng.sample(words, 2), "pos": {"x": rng.randint(-99, 99), "y": 1.5}}
        records.append(record)
        size += len(json.dumps(record)) + 2
    return json.dumps({"title": "records", "count": len(records), "items": records})


def tokens(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kb", type=int, default=100)
    parser.add_argument("--shape", choices=["records", "text"], default="records")
    parser.add_argument("--quick", action="store_true", help="time the naive way on a prefix")
    args = parser.parse_args()
    text = document(args.kb, args.shape)
    pieces = tokens(text)
    data = text.encode()

    def single() -> None:
        jiter.from_json(data)

    def ours() -> None:
        p = PartialParser()
        for piece in pieces:
            p.feed(piece)
        assert p.finish().value == json.loads(text)

    def naive(upto: int) -> None:
        buffer = ""
        for piece in pieces[:upto]:
            buffer += piece
            jiter.from_json(buffer.encode(), partial_mode="trailing-strings")

    t_single = best(single, 20)
    t_ours = best(ours, 3)
    n = len(pieces)
    upto = min(n, 2500) if args.quick else n
    t_naive = best(lambda: naive(upto), 1) * (n / upto) ** 2

    print(f"document: {len(text) / 1000:.1f} KB ({args.shape}), {n} tokens of 4 characters")
    print(f"{'method':<10} {'total ms':>10} {'x single parse':>15} {'us per token':>13}")
    for name, t in (("single", t_single), ("buttress", t_ours), ("naive", t_naive)):
        print(f"{name:<10} {t * 1000:>10.2f} {t / t_single:>15.1f} {t / n * 1e6:>13.2f}")
    scaled = "" if upto == n else f" (naive timed on {upto} tokens, scaled quadratically)"
    print(f"buttress is {t_naive / t_ours:.0f}x faster than re-parsing everything{scaled}")


if __name__ == "__main__":
    main()
