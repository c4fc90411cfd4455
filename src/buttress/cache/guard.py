"""Guards against semantic false hits: two questions close in meaning-space but not the same.

An embedding of "can I get a refund" sits next to "can I not get a refund" (cosine 0.95 with
wordllama) and "order 123" next to "order 456". So a candidate must also carry the same number
of negations and the same numbers (digits or number words) as the question.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?(?:\.[0-9]+)?")
_NEGATIONS = frozenset({
    "not", "no", "never", "nor", "neither", "none", "nobody", "nothing", "nowhere", "cannot",
    "without", "dont", "doesnt", "didnt", "cant", "wont", "isnt", "arent", "wasnt", "shouldnt",
    "couldnt", "wouldnt", "havent", "hasnt", "hadnt", "aint",
})
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORDS: dict[str, str] = {w: str(i) for i, w in enumerate(_UNITS)}
_NUMBER_WORDS.update({w: str(20 + 10 * i) for i, w in enumerate(_TENS)})
_NUMBER_WORDS.update({"hundred": "100", "thousand": "1000", "million": "1000000",
                      "billion": "1000000000", "dozen": "12", "half": "0.5", "twice": "2",
                      "double": "2", "first": "1st", "second": "2nd", "third": "3rd",
                      "once": "1"})


@dataclass(frozen=True, slots=True)
class Signature:
    """What must match exactly between a question and a cached one."""

    negations: int
    numbers: tuple[str, ...]  # sorted, normalised


def signature(text: str) -> Signature:
    negations = 0
    numbers: Counter[str] = Counter()
    for token in _TOKEN.findall(text.lower()):
        bare = token.replace("'", "").replace("’", "")
        if bare in _NEGATIONS or (bare.endswith("nt") and token.endswith(("n't", "n’t"))):
            negations += 1
        elif token[0].isdigit():
            numbers[_number(token)] += 1
        elif token in _NUMBER_WORDS:
            numbers[_NUMBER_WORDS[token]] += 1
    return Signature(negations, tuple(sorted(numbers.elements())))


def _number(token: str) -> str:
    digits = token.lstrip("0") or "0"
    return digits.removesuffix(".0") if "." in digits else digits


def compatible(a: Signature, b: Signature) -> bool:
    return a == b
