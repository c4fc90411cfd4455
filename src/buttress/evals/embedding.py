"""Embedding similarity: the cosine similarity of the output (or a JSON field) and the expected
text, from the offline embedder (wordllama, ``buttress[semantic]``: its weights ship in the
wheel and downloads are disabled, so scoring never touches the network).

The model loads on first use, off the event loop; one scorer instance loads it once.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from pydantic import Field

from buttress.errors import ConfigError
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.scorers import (
    _MISSING,
    Params,
    Score,
    ScorerContext,
    expected_of,
    params_of,
    pick,
)

if TYPE_CHECKING:
    from buttress.cache.embedder import Embedder


class EmbeddingParams(Params):
    threshold: float = Field(0.8, ge=-1, le=1, description="lowest similarity that passes")
    dim: int = Field(256, description="embedding size: 64, 128, 256, 512 or 1024")


class EmbeddingSimilarity:
    """Passes when the similarity reaches ``threshold``; the score's value is the similarity
    clipped to 0..1."""

    def __init__(self, spec: ScorerSpec, embedder: Embedder | None = None) -> None:
        self.spec = spec
        self.params = params_of(EmbeddingParams, spec)
        self._embedder = embedder

    def _model(self) -> Embedder:
        if self._embedder is None:
            try:
                import wordllama  # noqa: F401  (only to name the extra when it is missing)
            except ImportError:
                raise ConfigError(f"scorer {self.spec.key!r} needs the offline embedder; "
                                  "install the extra: pip install 'buttress[semantic]'",
                                  key="scorers") from None
            from buttress.cache.embedder import WordLlamaEmbedder

            self._embedder = WordLlamaEmbedder(dim=self.params.dim)
        return self._embedder

    async def score(self, output: str, case: Case) -> Score:
        p = self.params
        got, want = pick(output, p.field), expected_of(case, p.field)
        if got is _MISSING or want is None:
            return Score(value=0.0, passed=False, detail="nothing to compare")
        texts = [_text(got), _text(want)]
        model = self._model()
        vectors = await asyncio.to_thread(model.embed, texts)
        similarity = float(vectors[0] @ vectors[1])
        return Score(value=min(1.0, max(0.0, similarity)), passed=similarity >= p.threshold,
                     detail=f"similarity {similarity:.3f} (threshold {p.threshold})")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def embedding_factory(spec: ScorerSpec, context: ScorerContext) -> EmbeddingSimilarity:
    return EmbeddingSimilarity(spec)
