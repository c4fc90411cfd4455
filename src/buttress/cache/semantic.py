"""The semantic cache: questions that mean the same, answered from one entry.

Each scope (feature, prompt version and every other part of the request, see
``keys.semantic_scope``) has its own index, so entries are never shared across features or
prompt versions. An index is a float32 matrix of unit vectors searched by one matrix-vector
product; the best candidates at or above the threshold are checked by ``guard`` (negations,
numbers) and the first that passes answers. Entries persist in the backend (``s:SCOPE:KEY`` ->
vector bytes and text) and a scope's index is rebuilt from them on its first use in a process;
entries other processes add later are not seen until a restart (their exact hits still are).
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from buttress.cache.backend import CacheBackend
from buttress.cache.embedder import Embedder
from buttress.cache.guard import Signature, compatible, signature

_HEADER = struct.Struct("<2sH")  # magic, dimensions
_MAGIC = b"S1"
_PUNCT = re.compile(r"[^\w'’]+")


def normalise(text: str) -> str:
    """What is embedded: case, punctuation and spacing do not change a question's meaning but
    do move its vector ("can I get a refund" vs "can i get a refund?": 0.96)."""
    return _PUNCT.sub(" ", text.lower()).strip()


@dataclass(frozen=True, slots=True)
class Match:
    key: str  # the exact-cache key of the answering entry
    score: float


class VectorIndex:
    """One scope's vectors: a growing matrix, brute-force dot product."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix: npt.NDArray[np.float32] = np.zeros((64, dim), dtype=np.float32)
        self._n = 0
        self._keys: list[str | None] = []
        self._signatures: list[Signature | None] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, key: str, vector: npt.NDArray[np.float32], sig: Signature) -> None:
        row = self._rows.get(key)
        if row is None:
            if self._n == len(self._matrix):
                grown = np.zeros((2 * len(self._matrix), self.dim), dtype=np.float32)
                grown[:self._n] = self._matrix[:self._n]
                self._matrix = grown
            row, self._n = self._n, self._n + 1
            self._rows[key] = row
            self._keys.append(key)
            self._signatures.append(sig)
        else:
            self._signatures[row] = sig
        self._matrix[row] = vector

    def remove(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            # a zero row scores 0, under any useful threshold; the slot is not reused
            self._matrix[row] = 0.0
            self._keys[row] = self._signatures[row] = None

    def search(self, vector: npt.NDArray[np.float32], threshold: float,
               limit: int = 8) -> list[tuple[float, str, Signature]]:
        """Up to ``limit`` entries scoring at least ``threshold``, best first."""
        if not self._n:
            return []
        scores = self._matrix[:self._n] @ vector
        found = np.flatnonzero(scores >= threshold)
        if len(found) > limit:
            found = found[np.argpartition(-scores[found], limit)[:limit]]
        found = found[np.argsort(-scores[found])]
        out = []
        for row in found.tolist():
            key, sig = self._keys[row], self._signatures[row]
            if key is not None and sig is not None:
                out.append((float(scores[row]), key, sig))
        return out


class SemanticCache:
    def __init__(self, backend: CacheBackend, embedder: Embedder, *,
                 max_candidates: int = 8) -> None:
        self.backend = backend
        self.embedder = embedder
        self.max_candidates = max_candidates
        self._indexes: dict[str, VectorIndex] = {}
        self._ready = False

    async def lookup(self, scope: str, text: str, threshold: float) -> Match | None:
        index = await self._index(scope)
        if not len(index):
            return None
        vector = self.embedder.embed([normalise(text)])[0]
        sig = signature(text)
        for score, key, candidate in index.search(vector, threshold, self.max_candidates):
            if compatible(sig, candidate):
                return Match(key, score)
        return None

    async def add(self, scope: str, text: str, key: str, ttl_s: float) -> None:
        index = await self._index(scope)
        vector = self.embedder.embed([normalise(text)])[0]
        index.add(key, vector, signature(text))
        await self.backend.set(f"s:{scope}:{key}", _encode(vector, text), ttl_s)

    async def forget(self, scope: str, key: str) -> None:
        """Drop an entry whose answer has gone (expired or evicted)."""
        index = self._indexes.get(scope)
        if index is not None:
            index.remove(key)
        await self.backend.delete(f"s:{scope}:{key}")

    def index(self, scope: str) -> VectorIndex | None:
        return self._indexes.get(scope)

    async def _index(self, scope: str) -> VectorIndex:
        index = self._indexes.get(scope)
        if index is not None:
            return index
        if not self._ready:
            # the model loads once, off the event loop (a few hundred ms from the wheel)
            load = getattr(self.embedder, "load", None)
            if load is not None:
                await asyncio.to_thread(load)
            self._ready = True
        built = VectorIndex(self.embedder.dim)
        prefix = f"s:{scope}:"
        for name, raw in await self.backend.scan(prefix):
            decoded = _decode(raw, self.embedder.dim)
            if decoded is not None:
                built.add(name[len(prefix):], decoded[0], signature(decoded[1]))
        # a concurrent first use may have built it too; keep one
        return self._indexes.setdefault(scope, built)


def _encode(vector: npt.NDArray[np.float32], text: str) -> bytes:
    return _HEADER.pack(_MAGIC, len(vector)) + vector.astype("<f4").tobytes() + text.encode()


def _decode(raw: bytes, dim: int) -> tuple[npt.NDArray[np.float32], str] | None:
    """The vector and text, or None for an entry from another format or embedder size."""
    if len(raw) < _HEADER.size:
        return None
    magic, stored_dim = _HEADER.unpack_from(raw)
    end = _HEADER.size + 4 * stored_dim
    if magic != _MAGIC or stored_dim != dim or len(raw) < end:
        return None
    vector = np.frombuffer(raw, dtype="<f4", count=dim, offset=_HEADER.size).astype(np.float32)
    try:
        return vector, raw[end:].decode()
    except UnicodeDecodeError:
        return None
